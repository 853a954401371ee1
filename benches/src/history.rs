//! Workload 7: reads through the event-store layer's history features, in
//! one run on one store: events as stored (the backend's `read_stream`),
//! typed reads of events at today's schema version, typed reads of events
//! written at version 1 and upcast through a two-step chain (1 → 2 → 3),
//! and typed reads of sealed events (decrypted with their subjects' keys,
//! crypto-shredding).

use std::time::Instant;

use annals::store::MasterKey;
use annals::{
    Direction, Durability, EventStore, ExpectedVersion, Store, StreamId, TypedEvent, Version,
};
use serde::{Deserialize, Serialize};

use crate::backends::{Backend, Places};
use crate::raw::RawResult;
use crate::workload::Rate;

/// Events per stream (and per typed read page).
const STREAM: u64 = 500;
/// Subjects the sealed events belong to (a key each).
const SUBJECTS: u64 = 50;
/// Timed rounds of each kind of read (after one to warm up).
const ROUNDS: usize = 3;

/// Workload 7 — events/s of whole-stream reads in 500-event pages (the
/// best of three rounds, after one to warm the caches up).
#[derive(Clone, Debug, Serialize)]
pub struct HistoryReads {
    /// Events of each kind.
    pub events: u64,
    /// `read_stream` on the backend, no decoding.
    pub stored: Rate,
    /// `read_typed` of events at today's version (JSON decode only).
    pub typed: Rate,
    /// `read_typed` of version-1 events upcast 1 → 2 → 3.
    pub upcast: Rate,
    /// `read_typed` of sealed events (decryption, then decode).
    pub sealed: Rate,
}

#[derive(Serialize, Deserialize)]
struct ProfileV1 {
    customer: String,
    name: String,
}
impl TypedEvent for ProfileV1 {
    const EVENT_TYPE: &'static str = "ProfileSet";
}

#[derive(Serialize, Deserialize)]
struct Profile {
    customer: String,
    full_name: String,
    locale: String,
    #[serde(skip)]
    sealed: bool,
}
impl TypedEvent for Profile {
    const EVENT_TYPE: &'static str = "ProfileSet";
    const VERSION: u32 = 3;
    fn subject(&self) -> Option<String> {
        self.sealed.then(|| self.customer.clone())
    }
}

fn stream(kind: &str, i: u64) -> RawResult<StreamId> {
    StreamId::new(format!("{kind}-{i}")).map_err(|e| e.to_string())
}

fn name(i: u64) -> String {
    format!("Customer Number {i:08} of the benchmark")
}

/// Runs workload 7 on a fresh store of `backend` with `events` events of
/// each kind.
pub async fn history_reads(
    places: &Places,
    backend: Backend,
    events: u64,
) -> RawResult<HistoryReads> {
    let events = (events / STREAM).max(1) * STREAM;
    let store: Store = places.open(backend, "history", Durability::Relaxed).await?;
    let es = EventStore::builder(store.clone())
        .master_key(MasterKey::new([7; 32]))
        .upcaster("ProfileSet", 1, |v| {
            Ok(serde_json::json!({ "customer": v["customer"], "full_name": v["name"] }))
        })
        .upcaster("ProfileSet", 2, |mut v| {
            v["locale"] = "en".into();
            Ok(v)
        })
        .open()
        .await
        .map_err(|e| e.to_string())?;
    let err = |e: annals::Error| e.to_string();
    for s in 0..events / STREAM {
        let today: Vec<Profile> = (0..STREAM)
            .map(|i| Profile {
                customer: format!("c-{}", (s * STREAM + i) % SUBJECTS),
                full_name: name(i),
                locale: "en".into(),
                sealed: false,
            })
            .collect();
        let old: Vec<ProfileV1> = (0..STREAM)
            .map(|i| ProfileV1 {
                customer: format!("c-{i}"),
                name: name(i),
            })
            .collect();
        es.append_typed(&stream("typed", s)?, ExpectedVersion::NoStream, &today)
            .await
            .map_err(err)?;
        es.append_typed(&stream("upcast", s)?, ExpectedVersion::NoStream, &old)
            .await
            .map_err(err)?;
        let sealed: Vec<Profile> = today
            .into_iter()
            .map(|p| Profile { sealed: true, ..p })
            .collect();
        es.append_typed(&stream("sealed", s)?, ExpectedVersion::NoStream, &sealed)
            .await
            .map_err(err)?;
    }

    let streams = events / STREAM;
    // Round 0 warms the caches up; the best of the timed rounds counts.
    let mut best: [Option<Rate>; 4] = [None, None, None, None];
    for round in 0..=ROUNDS {
        for (slot, kind) in ["stored", "typed", "upcast", "sealed"]
            .into_iter()
            .enumerate()
        {
            let started = Instant::now();
            for s in 0..streams {
                let got = if kind == "stored" {
                    store
                        .read_stream(
                            &stream("typed", s)?,
                            Version(0),
                            STREAM as usize,
                            Direction::Forward,
                        )
                        .await
                        .map_err(err)?
                        .events
                        .len()
                } else {
                    es.read_typed::<Profile>(&stream(kind, s)?, Version(0), STREAM as usize)
                        .await
                        .map_err(err)?
                        .iter()
                        .filter(|t| t.event.event().is_some())
                        .count()
                };
                check(got as u64, kind)?;
            }
            let rate = Rate::new(events, started.elapsed(), Vec::new());
            let entry = best.get_mut(slot).ok_or("four kinds")?;
            if round > 0
                && entry
                    .as_ref()
                    .is_none_or(|b| rate.per_second > b.per_second)
            {
                *entry = Some(rate);
            }
        }
    }
    store.close().await.map_err(err)?;
    let [Some(stored), Some(typed), Some(upcast), Some(sealed)] = best else {
        return Err("a kind of read was not measured".into());
    };
    Ok(HistoryReads {
        events,
        stored,
        typed,
        upcast,
        sealed,
    })
}

fn check(got: u64, what: &str) -> RawResult<()> {
    if got == STREAM {
        Ok(())
    } else {
        Err(format!(
            "{what}: read {got} events of a {STREAM}-event stream"
        ))
    }
}
