//! `forget` and `retention`: crypto-shredding and retention policies of
//! the event-store layer (`annals::store`), and the copy of the data keys
//! that `migrate` makes.

use std::time::Duration;

use annals::store::shred::KEYS_PREFIX;
use annals::{AuxWrite, Error, EventStore, MasterKey, RetentionPolicy, Store, StreamId, Version};

use crate::commands::{close, open_for_maintenance};
use crate::fail::{Fail, Failure};

/// The environment variable the master key is read from: never a flag,
/// which other users of the machine could read in the process list.
pub const MASTER_KEY_VAR: &str = "ANNALS_MASTER_KEY";

/// What a retention command applies to.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// One stream's own policy.
    #[arg(long, value_name = "ID")]
    stream: Option<String>,
    /// The default of every stream whose id starts with this prefix.
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
}

/// `annals retention …`.
#[derive(clap::Subcommand, Debug)]
pub enum RetentionCommand {
    /// Sets a stream's policy or a prefix's default (reads through the
    /// store honour it at once; `enforce` removes the events for good).
    Set {
        /// The store's URL.
        url: String,
        #[command(flatten)]
        target: Target,
        /// Keep only the last N events.
        #[arg(long, value_name = "N")]
        max_count: Option<u64>,
        /// Keep only events younger than this (e.g. 30d, 12h, 90min).
        #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
        max_age: Option<Duration>,
        /// Keep only events from this version on.
        #[arg(long, value_name = "V")]
        truncate_before: Option<u64>,
    },
    /// Removes a stream's policy or a prefix's default.
    Clear {
        /// The store's URL.
        url: String,
        #[command(flatten)]
        target: Target,
    },
    /// Lists the prefix defaults and the streams' own policies; with
    /// --stream, the policy that applies to that stream.
    Show {
        /// The store's URL.
        url: String,
        /// Only the policy that applies to this stream.
        #[arg(long, value_name = "ID")]
        stream: Option<String>,
    },
    /// Truncates every stream to what its policy keeps (streams are never
    /// deleted), then optionally compacts.
    Enforce {
        /// The store's URL.
        url: String,
        /// Compact afterwards, to give the space back.
        #[arg(long)]
        compact: bool,
    },
}

/// `annals forget URL SUBJECT`: deletes the subject's data key.
pub async fn forget(url: &str, subject: &str, compact: bool) -> Result<(), Failure> {
    let master = MasterKey::from_env(MASTER_KEY_VAR).fail()?;
    let backend = open_for_maintenance(url).await?;
    let result = forget_open(&backend, master, subject, compact).await;
    let closed = close(&backend).await;
    result?;
    closed
}

async fn forget_open(
    backend: &Store,
    master: MasterKey,
    subject: &str,
    compact: bool,
) -> Result<(), Failure> {
    let store = EventStore::builder(backend.clone())
        .master_key(master)
        .open()
        .await
        .fail()?;
    if store.forget(subject).await.fail()? {
        println!("forgot the subject: its events now read as erased");
    } else {
        println!("the subject had no key: nothing sealed for it, or forgotten already");
    }
    if compact {
        backend.compact().await.fail()?;
        println!("compacted");
    }
    Ok(())
}

/// Runs `annals retention …`.
pub async fn retention(command: RetentionCommand) -> Result<(), Failure> {
    let url = match &command {
        RetentionCommand::Set { url, .. }
        | RetentionCommand::Clear { url, .. }
        | RetentionCommand::Show { url, .. }
        | RetentionCommand::Enforce { url, .. } => url.clone(),
    };
    let backend = open_for_maintenance(&url).await?;
    let result = retention_open(EventStore::new(backend.clone()), command).await;
    let closed = close(&backend).await;
    result?;
    closed
}

async fn retention_open(store: EventStore, command: RetentionCommand) -> Result<(), Failure> {
    match command {
        RetentionCommand::Set {
            target,
            max_count,
            max_age,
            truncate_before,
            ..
        } => {
            let mut policy = RetentionPolicy::default();
            policy.max_count = max_count;
            policy.max_age = max_age;
            policy.truncate_before = truncate_before.map(Version);
            match (target.stream, target.prefix) {
                (Some(stream), _) => {
                    let id = StreamId::new(stream).fail()?;
                    store.set_retention(&id, policy).await.fail()?;
                    println!("stream {:?}: {policy}", id.as_str());
                }
                (None, Some(prefix)) => {
                    store.set_default_retention(&prefix, policy).await.fail()?;
                    println!("streams starting with {prefix:?}: {policy}");
                }
                (None, None) => return Err(no_target()),
            }
        }
        RetentionCommand::Clear { target, .. } => match (target.stream, target.prefix) {
            (Some(stream), _) => {
                let id = StreamId::new(stream).fail()?;
                store.clear_retention(&id).await.fail()?;
                println!("stream {:?}: no policy of its own", id.as_str());
            }
            (None, Some(prefix)) => {
                store.clear_default_retention(&prefix).await.fail()?;
                println!("streams starting with {prefix:?}: no default");
            }
            (None, None) => return Err(no_target()),
        },
        RetentionCommand::Show {
            stream: Some(stream),
            ..
        } => {
            let id = StreamId::new(stream).fail()?;
            match store.retention(&id).await.fail()? {
                None => println!("stream {:?}: no policy", id.as_str()),
                Some((policy, annals::store::PolicySource::Stream)) => {
                    println!("stream {:?}: {policy} (its own)", id.as_str());
                }
                Some((policy, annals::store::PolicySource::Prefix(p))) => {
                    println!(
                        "stream {:?}: {policy} (default of prefix {p:?})",
                        id.as_str()
                    );
                }
            }
        }
        RetentionCommand::Show { stream: None, .. } => {
            let defaults = store.default_retentions().await.fail()?;
            let streams = store.stream_retentions().await.fail()?;
            if defaults.is_empty() && streams.is_empty() {
                println!("no retention policy");
            }
            for (prefix, policy) in defaults {
                println!("prefix {prefix:?}: {policy}");
            }
            for (id, policy) in streams {
                println!("stream {:?}: {policy}", id.as_str());
            }
        }
        RetentionCommand::Enforce { compact, .. } => {
            let report = store.enforce_retention().await.fail()?;
            println!(
                "checked {} streams, truncated {}, removed {} events",
                report.streams_checked, report.streams_truncated, report.events_removed
            );
            if compact {
                store.backend().compact().await.fail()?;
                println!("compacted");
            }
        }
    }
    Ok(())
}

fn no_target() -> Failure {
    Failure::input("give --stream ID or --prefix PREFIX")
}

/// Copies the key check and the wrapped data keys of crypto-shredding
/// from `source` to `target` (before the events), so sealed events stay
/// readable there with the same master key, and forgotten ones stay
/// erased. A target that holds other keys under the same names (made with
/// another master key) is refused, and nothing of it is overwritten.
pub async fn copy_keys(source: &Store, target: &Store) -> Result<u64, Failure> {
    if !source.capabilities().aux || !target.capabilities().aux {
        return Ok(0);
    }
    let page = source
        .limits()
        .max_read_count
        .min(target.limits().max_append_events)
        .clamp(1, 256);
    let mut after: Option<Vec<u8>> = None;
    let mut copied = 0;
    loop {
        let entries = source
            .aux_scan(KEYS_PREFIX.as_bytes(), after.as_deref(), page)
            .await
            .fail()?;
        let full = entries.len() == page;
        for (key, value) in entries {
            let write = AuxWrite::put(key.clone(), value.clone()).if_absent();
            match target.aux_write(vec![write]).await {
                Ok(()) => copied += 1,
                Err(Error::AppendConditionFailed { .. }) => {
                    if target.aux_get(&key).await.fail()?.as_deref() != Some(value.as_slice()) {
                        return Err(Failure::input(format!(
                            "the target already holds other crypto-shredding keys ({}): \
                             it was used with another master key",
                            String::from_utf8_lossy(&key)
                        )));
                    }
                }
                Err(e) => return Err(e.into()),
            }
            after = Some(key);
        }
        if !full {
            return Ok(copied);
        }
    }
}
