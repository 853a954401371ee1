//! Snapshots: one per stream, the state of the stream's aggregate as of a
//! version, kept in the aux space under `annals-store/snapshot/<stream>`.

use annals_core::{
    AuxWrite, Direction, Error, ExpectedVersion, FailedCondition, Field, InvalidReason, Limit,
    RecordedEvent, Result, StreamId, Version,
};

use crate::EventStore;
use crate::keys;

/// How many times a snapshot write is retried when a concurrent one wins.
const SAVE_ATTEMPTS: usize = 16;

/// A stream's state as of `version`, in bytes of the application's choice.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Snapshot {
    /// The version of the last event the state includes.
    pub version: Version,
    /// The state.
    pub data: Vec<u8>,
}

impl EventStore {
    /// Saves `data` as the state of `stream` as of `version` (the version
    /// of the last event it includes), replacing an older snapshot. Answers
    /// whether it was saved: `false` when a snapshot of a later version is
    /// kept already (it stays).
    ///
    /// The stream must exist and `version` must be at most its last
    /// version: `Error::StreamNotFound`, or `Error::InvalidInput` naming
    /// both versions. `data` may take up to the backend's
    /// `max_event_bytes` minus 9 bytes.
    pub async fn save_snapshot(
        &self,
        stream: &StreamId,
        version: Version,
        data: &[u8],
    ) -> Result<bool> {
        let key = keys::snapshot(stream)?;
        let value = keys::encode_snapshot(version, data);
        let max = self.backend().limits().max_event_bytes;
        if value.len() > max {
            return Err(Error::limit(
                Limit::AuxValueBytes,
                max,
                value.len(),
                format!(
                    "snapshot of stream {stream} at version {version} has {} bytes of data, \
                     more than max_event_bytes = {max} less 9 bytes of header",
                    data.len()
                ),
            ));
        }
        let last = self.backend().stream_version(stream).await?;
        if version > last {
            return Err(Error::invalid(
                InvalidReason::Conflict(Field::Version),
                format!(
                    "snapshot of stream {stream} at version {version}: its last version is {last}"
                ),
            ));
        }
        for _ in 0..SAVE_ATTEMPTS {
            let current = self.backend().aux_get(&key).await?;
            let write = match &current {
                Some(old) => {
                    // A damaged snapshot is replaced, not kept.
                    if let Ok((kept, _)) = keys::decode_snapshot(&key, old)
                        && kept > version
                    {
                        return Ok(false);
                    }
                    AuxWrite::put(key.clone(), value.clone()).if_equals(old.clone())
                }
                None => AuxWrite::put(key.clone(), value.clone()).if_absent(),
            };
            match self.backend().aux_write(vec![write]).await {
                Ok(()) => {}
                Err(e) if e.is_condition_failed() => continue,
                Err(e) => return Err(e),
            }
            // A delete that ran between the version check and the write
            // must not leave this snapshot behind for a recreated stream.
            return match self.backend().stream_version(stream).await {
                Ok(_) => Ok(true),
                Err(Error::StreamNotFound(_)) => {
                    let undo = AuxWrite::delete(key).if_equals(value);
                    match self.backend().aux_write(vec![undo]).await {
                        Ok(()) => {}
                        Err(e) if e.is_condition_failed() => {}
                        Err(e) => return Err(e),
                    }
                    Err(Error::StreamNotFound(stream.clone()))
                }
                Err(e) => Err(e),
            };
        }
        Err(Error::condition_failed(
            FailedCondition::AuxKey(key),
            format!(
                "the snapshot of stream {stream} changed {SAVE_ATTEMPTS} times while saving one at version {version}"
            ),
        ))
    }

    /// The latest snapshot of `stream`, if any. A snapshot of a stream that
    /// does not exist (deleted), or of a version above its last one, is
    /// never returned (and is removed).
    pub async fn latest_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>> {
        // A stream id too long for a snapshot key never has a snapshot.
        let Ok(key) = keys::snapshot(stream) else {
            return Ok(None);
        };
        let Some(value) = self.backend().aux_get(&key).await? else {
            return Ok(None);
        };
        let (version, data) = keys::decode_snapshot(&key, &value)?;
        let last = match self.backend().stream_version(stream).await {
            Ok(v) => Some(v),
            Err(Error::StreamNotFound(_)) => None,
            Err(e) => return Err(e),
        };
        if last.is_some_and(|last| version <= last) {
            return Ok(Some(Snapshot { version, data }));
        }
        // Left behind by a delete that did not go through the store. Only
        // this value goes: a fresh save meanwhile stays.
        match self
            .backend()
            .aux_write(vec![AuxWrite::delete(key).if_equals(value)])
            .await
        {
            Ok(()) => Ok(None),
            Err(e) if e.is_condition_failed() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The latest snapshot of `stream` and every readable event after it
    /// (every event, without a snapshot), oldest first: what rebuilding the
    /// stream's state needs. The events come through the store's read path
    /// ([`EventStore::read_stream`]): retention, decryption, aliases,
    /// upcasting. `Error::StreamNotFound` if the stream does not exist.
    pub async fn load(&self, stream: &StreamId) -> Result<(Option<Snapshot>, Vec<RecordedEvent>)> {
        let snapshot = self.latest_snapshot(stream).await?;
        let mut from = match &snapshot {
            Some(s) => Version(s.version.0.saturating_add(1)),
            None => Version::FIRST,
        };
        from = from.max(self.first_kept(stream).await?);
        let page_size = self.inner.page_size;
        let mut events = Vec::new();
        loop {
            let page = self
                .backend()
                .read_stream(stream, from, page_size, Direction::Forward)
                .await?;
            let short = page.events.len() < page_size;
            if let Some(last) = page.events.last() {
                from = Version(last.stream_version.0.saturating_add(1));
            }
            events.extend(self.reveal(page.events).await?);
            if short {
                return Ok((snapshot, events));
            }
        }
    }

    /// Deletes `stream` if `expected` holds (\[S4\]), and its snapshot, so a
    /// stream recreated later never starts from the old state.
    ///
    /// The snapshot is removed before and after the stream: a crash in
    /// between leaves the stream without its snapshot (which only costs a
    /// replay), never a deleted stream with one.
    pub async fn delete_stream(&self, stream: &StreamId, expected: ExpectedVersion) -> Result<()> {
        let Ok(key) = keys::snapshot(stream) else {
            // Too long an id for a snapshot: there is none to remove.
            return self.backend().delete_stream(stream, expected).await;
        };
        let actual = match self.backend().stream_version(stream).await {
            Ok(v) => Some(v),
            Err(Error::StreamNotFound(_)) => None,
            Err(e) => return Err(e),
        };
        // A delete that will be refused keeps the snapshot.
        let will_run = actual.is_some() && expected.is_satisfied_by(actual);
        if will_run {
            self.backend().aux_delete(&key).await?;
        }
        self.backend().delete_stream(stream, expected).await?;
        self.backend().aux_delete(&key).await
    }
}
