//! Retention: how long a stream's events are kept. A policy (keep the last
//! N events, events younger than an age, events from a version on) is set
//! per stream or as a default for every stream whose id starts with a
//! prefix (`session-` keeps 30 days), and kept in the aux space:
//!
//! ```text
//! annals-store/retention/stream/<stream id>   policy (JSON)
//! annals-store/retention/prefix/<prefix>      policy (JSON)
//! ```
//!
//! A stream's own policy wins over the defaults; among defaults, the
//! longest matching prefix wins. Policies do not combine.
//!
//! **Reads through the [`EventStore`] honour a policy at once**: its
//! reads, subscriptions, `load` and typed reads leave out the events
//! beyond it from the moment it is set. **The backend itself still returns
//! them** ([`EventStore::backend`] reads, exports) until
//! [`EventStore::enforce_retention`] removes them for good with the
//! contract's `truncate_stream` (\[S3\]) — a stream is truncated, never
//! deleted, so its numbering carries on — and `compact` (\[M1\]) gives the
//! space back. Run it now and then (a daily job, the `annals retention
//! enforce` command).
//!
//! The age of an event is taken from its `recorded_at` against the store's
//! [`Clock`] (the system clock unless the builder is given another, e.g. a
//! [`ManualClock`] in tests).

use annals_core::{CorruptionAt, Field};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use annals_core::{
    Direction, Error, LogBackend, RecordedEvent, Result, StreamId, Timestamp, Version, show_bytes,
};
use serde::{Deserialize, Serialize};

use crate::EventStore;
use crate::keys;

/// Most prefix defaults a store may hold (each read looks at all of them).
pub const MAX_PREFIX_POLICIES: usize = 256;

/// Where the store's time comes from, for the age of events.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Default, Debug)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that says what it is told: for tests of retention by age.
/// Clones share the time.
///
/// ```
/// use annals_store::{Clock, ManualClock};
/// use std::time::Duration;
/// let clock = ManualClock::new(annals_core::Timestamp(1_000_000));
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(clock.now().as_micros(), 3_000_000);
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock that reads `now` until changed.
    pub fn new(now: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicU64::new(now.0)))
    }

    /// Sets the time.
    pub fn set(&self, now: Timestamp) {
        self.0.store(now.0, Ordering::SeqCst);
    }

    /// Moves the time on by `by` (saturating).
    pub fn advance(&self, by: Duration) {
        let micros = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(micros))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// How much of a stream to keep. An event is kept while it satisfies
/// every limit that is set.
///
/// ```
/// use annals_store::RetentionPolicy;
/// use std::time::Duration;
/// let policy = RetentionPolicy::default().max_count(1000).max_age(Duration::from_secs(30 * 86_400));
/// assert_eq!(policy.max_count, Some(1000));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[non_exhaustive]
pub struct RetentionPolicy {
    /// Keep only the last this many events of the stream (at least 1).
    pub max_count: Option<u64>,
    /// Keep only events recorded less than this long ago (at least 1 µs).
    pub max_age: Option<Duration>,
    /// Keep only events with a version at or above this one.
    pub truncate_before: Option<Version>,
}

impl RetentionPolicy {
    /// Keeps only the last `count` events.
    #[must_use]
    pub fn max_count(mut self, count: u64) -> Self {
        self.max_count = Some(count);
        self
    }

    /// Keeps only events recorded less than `age` ago.
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Keeps only events from version `version` on.
    #[must_use]
    pub fn truncate_before(mut self, version: Version) -> Self {
        self.truncate_before = Some(version);
        self
    }

    /// A policy with no limit, a `max_count` of 0 or a `max_age` of 0 is
    /// `Error::InvalidInput`.
    pub fn validate(&self) -> Result<()> {
        if self.max_count.is_none() && self.max_age.is_none() && self.truncate_before.is_none() {
            return Err(Error::malformed(
                Field::Setting,
                "a retention policy sets at least one of max_count, max_age and truncate_before \
                 (to drop a policy, clear it)",
            ));
        }
        if self.max_count == Some(0) {
            return Err(Error::malformed(
                Field::Setting,
                "retention max_count = 0 would keep nothing: use truncate_before, or delete the stream",
            ));
        }
        if self.max_age.is_some_and(|a| a.as_micros() == 0) {
            return Err(Error::malformed(
                Field::Setting,
                "retention max_age is under a microsecond: it would keep nothing",
            ));
        }
        Ok(())
    }

    /// The first version kept of a stream whose last version is `last`,
    /// by `max_count` and `truncate_before` (age is checked per event).
    pub(crate) fn first_kept_by_version(&self, last: Version) -> Version {
        let by_count = self
            .max_count
            .map_or(0, |n| last.0.saturating_add(1).saturating_sub(n));
        let by_version = self.truncate_before.map_or(0, |v| v.0);
        Version(by_count.max(by_version))
    }

    /// The oldest `recorded_at` kept at `now`, if the age is limited.
    pub(crate) fn oldest_kept_at(&self, now: Timestamp) -> Option<Timestamp> {
        self.max_age.map(|age| {
            let micros = u64::try_from(age.as_micros()).unwrap_or(u64::MAX);
            Timestamp(now.0.saturating_sub(micros))
        })
    }
}

impl fmt::Display for RetentionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(n) = self.max_count {
            parts.push(format!("max_count={n}"));
        }
        if let Some(a) = self.max_age {
            parts.push(format!("max_age={}s", a.as_secs_f64()));
        }
        if let Some(v) = self.truncate_before {
            parts.push(format!("truncate_before={v}"));
        }
        f.write_str(&parts.join(" "))
    }
}

/// A policy as stored (JSON, so tools can show it).
#[derive(Serialize, Deserialize)]
struct StoredPolicy {
    format: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_age_micros: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    truncate_before: Option<u64>,
}

fn encode(policy: &RetentionPolicy) -> Vec<u8> {
    let stored = StoredPolicy {
        format: 1,
        max_count: policy.max_count,
        max_age_micros: policy
            .max_age
            .map(|a| u64::try_from(a.as_micros()).unwrap_or(u64::MAX)),
        truncate_before: policy.truncate_before.map(|v| v.0),
    };
    serde_json::to_vec(&stored).unwrap_or_default()
}

fn decode(key: &[u8], value: &[u8]) -> Result<RetentionPolicy> {
    let damaged = |why: String| {
        Error::corruption(
            CorruptionAt::AuxKey(key.to_vec()),
            format!(
                "retention policy at aux key {} is not one this version wrote: {why}",
                show_bytes(key)
            ),
        )
    };
    let stored: StoredPolicy = serde_json::from_slice(value).map_err(|e| damaged(e.to_string()))?;
    if stored.format != 1 {
        return Err(damaged(format!("format {}", stored.format)));
    }
    let policy = RetentionPolicy {
        max_count: stored.max_count,
        max_age: stored.max_age_micros.map(Duration::from_micros),
        truncate_before: stored.truncate_before.map(Version),
    };
    policy.validate().map_err(|e| damaged(e.to_string()))?;
    Ok(policy)
}

/// Where a stream's policy comes from.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum PolicySource {
    /// The stream's own policy.
    Stream,
    /// The default of streams starting with this prefix.
    Prefix(String),
}

/// What [`EventStore::enforce_retention`] did.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct RetentionReport {
    /// Streams whose policy was looked at.
    pub streams_checked: u64,
    /// Streams truncated further.
    pub streams_truncated: u64,
    /// Events removed from reads (by their versions).
    pub events_removed: u64,
}

/// The retention of one page's streams, looked up once per page.
pub(crate) struct PageRetention {
    /// `None`: the store holds no policy at all.
    prefixes: Option<Vec<(String, RetentionPolicy)>>,
    now: Timestamp,
    /// Per stream: the first version and the oldest time kept.
    streams: std::collections::HashMap<StreamId, Option<(Version, Timestamp)>>,
}

impl PageRetention {
    /// Loads the prefix defaults (one scan; nothing more when the store has
    /// no policy at all, or no aux space).
    pub(crate) async fn load(backend: &dyn LogBackend, clock: &dyn Clock) -> Result<Self> {
        let mut page = PageRetention {
            prefixes: None,
            now: clock.now(),
            streams: Default::default(),
        };
        if !backend.capabilities().aux
            || backend
                .aux_scan(keys::RETENTION.as_bytes(), None, 1)
                .await?
                .is_empty()
        {
            return Ok(page);
        }
        page.prefixes = Some(prefix_policies(backend).await?);
        Ok(page)
    }

    /// Whether `event` is kept.
    pub(crate) async fn keeps(
        &mut self,
        backend: &dyn LogBackend,
        event: &RecordedEvent,
    ) -> Result<bool> {
        let Some(prefixes) = &self.prefixes else {
            return Ok(true);
        };
        if !self.streams.contains_key(&event.stream_id) {
            let limits = match policy_of(backend, prefixes, &event.stream_id).await? {
                None => None,
                Some((policy, _)) => {
                    let first = if policy.max_count.is_some() {
                        match backend.stream_version(&event.stream_id).await {
                            Ok(last) => policy.first_kept_by_version(last),
                            // Deleted since the read: nothing of it is kept.
                            Err(Error::StreamNotFound(_)) => Version(u64::MAX),
                            Err(e) => return Err(e),
                        }
                    } else {
                        policy.first_kept_by_version(Version(0))
                    };
                    Some((
                        first,
                        policy.oldest_kept_at(self.now).unwrap_or(Timestamp(0)),
                    ))
                }
            };
            self.streams.insert(event.stream_id.clone(), limits);
        }
        Ok(match self.streams.get(&event.stream_id) {
            Some(Some((first, oldest))) => {
                event.stream_version >= *first && event.recorded_at >= *oldest
            }
            _ => true,
        })
    }
}

/// Every prefix default, in key order (at most one more than
/// [`MAX_PREFIX_POLICIES`]: enough to refuse another).
async fn prefix_policies(backend: &dyn LogBackend) -> Result<Vec<(String, RetentionPolicy)>> {
    let prefix = keys::RETENTION_PREFIX.as_bytes();
    let page = backend
        .limits()
        .max_read_count
        .clamp(1, MAX_PREFIX_POLICIES + 1);
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let entries = backend.aux_scan(prefix, after.as_deref(), page).await?;
        let full = entries.len() == page;
        for (key, value) in entries {
            let name = key
                .strip_prefix(prefix)
                .and_then(|k| std::str::from_utf8(k).ok())
                .ok_or_else(|| {
                    Error::corruption(
                        CorruptionAt::AuxKey(key.clone()),
                        format!("retention prefix key {} is not UTF-8", show_bytes(&key)),
                    )
                })?
                .to_string();
            out.push((name, decode(&key, &value)?));
            after = Some(key);
        }
        if !full || out.len() > MAX_PREFIX_POLICIES {
            return Ok(out);
        }
    }
}

/// The policy that applies to `stream`, and where it comes from.
async fn policy_of(
    backend: &dyn LogBackend,
    prefixes: &[(String, RetentionPolicy)],
    stream: &StreamId,
) -> Result<Option<(RetentionPolicy, PolicySource)>> {
    if let Ok(key) = keys::retention_stream(stream)
        && let Some(value) = backend.aux_get(&key).await?
    {
        return Ok(Some((decode(&key, &value)?, PolicySource::Stream)));
    }
    Ok(prefixes
        .iter()
        .filter(|(p, _)| stream.as_str().starts_with(p.as_str()))
        .max_by_key(|(p, _)| p.len())
        .map(|(p, policy)| (*policy, PolicySource::Prefix(p.clone()))))
}

fn check_prefix(prefix: &str) -> Result<()> {
    // A prefix is a stream id's beginning, so it obeys the same rules
    // ([D1]); the key must fit the aux space too.
    StreamId::new(prefix).map_err(|e| {
        Error::malformed(
            Field::Setting,
            format!("retention prefix {prefix:?} is not a stream id prefix: {e}"),
        )
    })?;
    Ok(())
}

impl EventStore {
    /// Sets `stream`'s own retention policy (replacing one it had). Reads
    /// through this store honour it at once; [`enforce_retention`](EventStore::enforce_retention)
    /// removes the events beyond it from the backend. The stream need not
    /// exist yet. An invalid policy, or a stream id too long for an aux
    /// key, is `Error::InvalidInput`.
    pub async fn set_retention(&self, stream: &StreamId, policy: RetentionPolicy) -> Result<()> {
        policy.validate()?;
        let key = keys::retention_stream(stream)?;
        self.backend().aux_put(&key, &encode(&policy)).await
    }

    /// Removes `stream`'s own policy (a prefix default may then apply).
    /// Events hidden by it come back until enforced; enforced ones are gone.
    pub async fn clear_retention(&self, stream: &StreamId) -> Result<()> {
        let key = keys::retention_stream(stream)?;
        self.backend().aux_delete(&key).await
    }

    /// Sets the default policy of every stream whose id starts with
    /// `prefix` and has no policy of its own. At most
    /// [`MAX_PREFIX_POLICIES`] prefixes; more is `Error::InvalidInput`.
    pub async fn set_default_retention(&self, prefix: &str, policy: RetentionPolicy) -> Result<()> {
        check_prefix(prefix)?;
        policy.validate()?;
        let key = keys::retention_prefix(prefix)?;
        let backend = self.backend();
        if backend.aux_get(&key).await?.is_none()
            && prefix_policies(backend.as_ref()).await?.len() >= MAX_PREFIX_POLICIES
        {
            return Err(Error::malformed(
                Field::Setting,
                format!(
                    "the store holds {MAX_PREFIX_POLICIES} retention prefixes already, the most it may: \
                 cannot add {prefix:?}"
                ),
            ));
        }
        backend.aux_put(&key, &encode(&policy)).await
    }

    /// Removes the default of `prefix`.
    pub async fn clear_default_retention(&self, prefix: &str) -> Result<()> {
        check_prefix(prefix)?;
        let key = keys::retention_prefix(prefix)?;
        self.backend().aux_delete(&key).await
    }

    /// Every prefix default, in byte order of the prefixes.
    pub async fn default_retentions(&self) -> Result<Vec<(String, RetentionPolicy)>> {
        prefix_policies(self.backend().as_ref()).await
    }

    /// The policy that applies to `stream` — its own, or the default of
    /// the longest prefix it starts with — and where it comes from.
    pub async fn retention(
        &self,
        stream: &StreamId,
    ) -> Result<Option<(RetentionPolicy, PolicySource)>> {
        let backend = self.backend().as_ref();
        let prefixes = prefix_policies(backend).await?;
        policy_of(backend, &prefixes, stream).await
    }

    /// Every stream with a policy of its own, in byte order of their ids.
    pub async fn stream_retentions(&self) -> Result<Vec<(StreamId, RetentionPolicy)>> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = self.stream_retention_page(after).await?;
            out.extend(page);
            match next {
                Some(key) => after = Some(key),
                None => return Ok(out),
            }
        }
    }

    /// One page of the streams with a policy of their own, after aux key
    /// `after`, and the key to read on from (`None` after the last page).
    async fn stream_retention_page(
        &self,
        after: Option<Vec<u8>>,
    ) -> Result<(Vec<(StreamId, RetentionPolicy)>, Option<Vec<u8>>)> {
        let prefix = keys::RETENTION_STREAM.as_bytes();
        let entries = self
            .backend()
            .aux_scan(prefix, after.as_deref(), self.page_size())
            .await?;
        let full = entries.len() == self.page_size();
        let mut page = Vec::with_capacity(entries.len());
        let mut last = None;
        for (key, value) in entries {
            let id = key
                .strip_prefix(prefix)
                .and_then(|k| std::str::from_utf8(k).ok())
                .and_then(|k| StreamId::new(k).ok())
                .ok_or_else(|| {
                    Error::corruption(
                        CorruptionAt::AuxKey(key.clone()),
                        format!(
                            "retention key {} does not end in a stream id",
                            show_bytes(&key)
                        ),
                    )
                })?;
            page.push((id, decode(&key, &value)?));
            last = Some(key);
        }
        Ok((page, last.filter(|_| full)))
    }

    /// Removes from the backend, with `truncate_stream` (\[S3\]), every event
    /// that the retention policies leave out: streams with a policy of
    /// their own, then the streams of every prefix default. Streams are
    /// truncated, never deleted. Follow with `backend().compact()` to give
    /// the space back (\[M1\]).
    pub async fn enforce_retention(&self) -> Result<RetentionReport> {
        let mut report = RetentionReport::default();
        // A page at a time: memory stays flat however many streams have
        // a policy of their own.
        let mut after = None;
        loop {
            let (page, next) = self.stream_retention_page(after).await?;
            for (stream, _) in page {
                self.enforce_one(&stream, &mut report).await?;
            }
            match next {
                Some(key) => after = Some(key),
                None => break,
            }
        }
        let backend = self.backend().clone();
        let prefixes = prefix_policies(backend.as_ref()).await?;
        for (prefix, _) in &prefixes {
            let mut after = StreamId::new(prefix.as_str())?;
            // The stream named exactly like the prefix comes first.
            self.enforce_if_from(&after, prefix, &prefixes, &mut report)
                .await?;
            loop {
                let page = backend.list_streams(Some(&after), self.page_size()).await?;
                let full = page.len() == self.page_size();
                let mut done = !full;
                for info in page {
                    if !info.id.as_str().starts_with(prefix.as_str()) {
                        done = true;
                        break;
                    }
                    self.enforce_if_from(&info.id, prefix, &prefixes, &mut report)
                        .await?;
                    after = info.id;
                }
                if done {
                    break;
                }
            }
        }
        Ok(report)
    }

    /// Enforces the policy of `stream` if it comes from `prefix`'s default.
    async fn enforce_if_from(
        &self,
        stream: &StreamId,
        prefix: &str,
        prefixes: &[(String, RetentionPolicy)],
        report: &mut RetentionReport,
    ) -> Result<()> {
        let source = policy_of(self.backend().as_ref(), prefixes, stream).await?;
        if matches!(source, Some((_, PolicySource::Prefix(p))) if p == prefix) {
            self.enforce_one(stream, report).await?;
        }
        Ok(())
    }

    /// Enforces the policy that applies to `stream` alone (nothing if it
    /// has none or does not exist). Returns how many events it removed.
    pub async fn enforce_retention_of(&self, stream: &StreamId) -> Result<u64> {
        let mut report = RetentionReport::default();
        self.enforce_one(stream, &mut report).await?;
        Ok(report.events_removed)
    }

    async fn enforce_one(&self, stream: &StreamId, report: &mut RetentionReport) -> Result<()> {
        let backend = self.backend();
        if !backend.stream_exists(stream).await? {
            return Ok(());
        }
        report.streams_checked += 1;
        // The same rule as reads: what they leave out is what goes.
        let cut = self.first_kept(stream).await?;
        let Some(first) = backend
            .read_stream(stream, Version(0), 1, Direction::Forward)
            .await?
            .events
            .first()
            .map(|e| e.stream_version)
        else {
            return Ok(());
        };
        if cut > first {
            backend.truncate_stream(stream, cut).await?;
            report.streams_truncated += 1;
            report.events_removed += cut.0 - first.0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_kept_by_count_and_version() {
        let p = RetentionPolicy::default().max_count(3);
        assert_eq!(p.first_kept_by_version(Version(9)), Version(7));
        assert_eq!(p.first_kept_by_version(Version(1)), Version(0));
        let p = p.truncate_before(Version(8));
        assert_eq!(p.first_kept_by_version(Version(9)), Version(8));
    }

    #[test]
    fn policies_round_trip_and_bad_ones_are_refused() {
        let p = RetentionPolicy::default()
            .max_age(Duration::from_secs(60))
            .truncate_before(Version(4));
        assert_eq!(decode(b"k", &encode(&p)).expect("a policy"), p);
        assert!(RetentionPolicy::default().validate().is_err());
        assert!(RetentionPolicy::default().max_count(0).validate().is_err());
        assert!(
            RetentionPolicy::default()
                .max_age(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(matches!(
            decode(b"k", b"junk"),
            Err(Error::Corruption { .. })
        ));
        assert!(matches!(
            decode(b"k", br#"{"format":1}"#),
            Err(Error::Corruption { .. })
        ));
    }
}
