//! Consumer checkpoints: the last position a named consumer has processed,
//! kept in the aux space (\[X1\]) under `annals-store/checkpoint/<name>`.

use annals_core::{Append, AppendResult, AuxWrite, Batch, Position, Query, Result};

use crate::EventStore;
use crate::keys;
use crate::subscription::Subscription;

impl EventStore {
    /// The last position consumer `name` saved as processed; `None` if it
    /// never saved one (or it was reset).
    pub async fn checkpoint(&self, name: &str) -> Result<Option<Position>> {
        let key = keys::checkpoint(name)?;
        match self.backend().aux_get(&key).await? {
            Some(value) => keys::decode_position(&key, &value).map(Some),
            None => Ok(None),
        }
    }

    /// Saves `position` as the last one consumer `name` processed.
    pub async fn save_checkpoint(&self, name: &str, position: Position) -> Result<()> {
        let key = keys::checkpoint(name)?;
        self.backend()
            .aux_put(&key, &keys::encode_position(position))
            .await
    }

    /// Forgets consumer `name`'s checkpoint: it starts from the beginning
    /// next time.
    pub async fn reset_checkpoint(&self, name: &str) -> Result<()> {
        let key = keys::checkpoint(name)?;
        self.backend().aux_delete(&key).await
    }

    /// A subscription to the global log (optionally filtered) that starts
    /// right after consumer `name`'s checkpoint — at the beginning if it
    /// has none.
    pub async fn subscribe_from_checkpoint(
        &self,
        name: &str,
        query: Option<Query>,
    ) -> Result<Subscription> {
        let from = match self.checkpoint(name).await? {
            Some(p) => p.next(),
            None => Position::START,
        };
        self.subscribe_all(from, query)
    }

    /// The aux write that moves consumer `name`'s checkpoint from
    /// `previous` (the checkpoint it resumed from; `None`: it had none) to
    /// `position`. Add it to an [`Append`], a [`Batch`] or an `aux_write`
    /// so the checkpoint commits with them, all or nothing (\[X2\]). If the
    /// checkpoint is no longer `previous` — another instance of the
    /// consumer moved it — the whole write fails with
    /// `Error::AppendConditionFailed` and nothing is written.
    pub fn checkpoint_write(
        name: &str,
        previous: Option<Position>,
        position: Position,
    ) -> Result<AuxWrite> {
        let key = keys::checkpoint(name)?;
        let write = AuxWrite::put(key, keys::encode_position(position));
        Ok(match previous {
            Some(p) => write.if_equals(keys::encode_position(p)),
            None => write.if_absent(),
        })
    }

    /// Appends `append` and moves consumer `name`'s checkpoint from
    /// `previous` to `position` in the same atomic write (\[X2\]): either the
    /// events are written and the checkpoint says so, or neither. A process
    /// manager that handles the event at `position` this way acts on each
    /// event exactly once, across crashes: after a crash it resumes from the
    /// checkpoint, which covers exactly the events whose reactions were
    /// written.
    ///
    /// Fails with `Error::AppendConditionFailed` (and writes nothing) if the
    /// checkpoint is not `previous` any more.
    pub async fn append_with_checkpoint(
        &self,
        append: Append,
        name: &str,
        previous: Option<Position>,
        position: Position,
    ) -> Result<AppendResult> {
        let write = Self::checkpoint_write(name, previous, position)?;
        self.backend().append_with(append.aux(write)).await
    }

    /// [`append_with_checkpoint`](EventStore::append_with_checkpoint) for a
    /// batch over several streams.
    pub async fn append_batch_with_checkpoint(
        &self,
        batch: Batch,
        name: &str,
        previous: Option<Position>,
        position: Position,
    ) -> Result<Vec<AppendResult>> {
        let write = Self::checkpoint_write(name, previous, position)?;
        self.backend().append_batch(batch.aux(write)).await
    }
}
