//! Subscriptions: catch up by reading the log in pages, then follow new
//! commits through the head watch (\[R8\]). Each page goes through the
//! store's read path (retention, decryption, aliases, upcasting).

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use annals_core::{
    Direction, Error, HeadWatch, Position, Query, RecordedEvent, Result, StreamId, Version,
};
use futures::Stream;
use futures::stream::BoxStream;

use crate::EventStore;

/// A live, ordered stream of events: every event from where it started,
/// then every new one as it is committed, in commit order, each exactly
/// once. Made by [`EventStore::subscribe_all`](crate::EventStore::subscribe_all),
/// [`subscribe_stream`](crate::EventStore::subscribe_stream) and
/// [`subscribe_from_checkpoint`](crate::EventStore::subscribe_from_checkpoint).
///
/// It holds at most one page of events: it reads a page from the log, hands
/// it out, and reads the next one, so a slow consumer simply reads the log
/// later and costs no memory. Once caught up it waits on the store's head
/// watch, which is all a commit costs a waiting subscription.
///
/// Events come through the store's read path: those retention leaves out
/// are skipped, sealed data is opened (an erased event comes with its data
/// still sealed: [`EventStore::decode`](crate::EventStore::decode) reads it
/// as [`Decoded::Erased`](crate::Decoded::Erased), which does not stop a
/// projection), old types and schema versions are brought to today's.
/// It never ends
/// on its own: after an error (for instance [`Error::Closed`] once the
/// store is closed) it yields that error and then ends. Dropping it stops
/// it.
pub struct Subscription {
    inner: BoxStream<'static, Result<RecordedEvent>>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl Stream for Subscription {
    type Item = Result<RecordedEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// What a subscription reads.
enum Source {
    /// The global log from `next` on, optionally filtered.
    All {
        next: Position,
        query: Option<Query>,
    },
    /// One stream from version `next` on.
    Stream { stream: StreamId, next: Version },
}

struct Follower {
    store: EventStore,
    source: Source,
    page_size: usize,
    watch: HeadWatch,
    /// The events of the last page not handed out yet.
    buffer: VecDeque<RecordedEvent>,
    /// The position of the last event read from the log (before
    /// retention), as far as known: what the lag is counted from.
    read_up_to: Option<Position>,
    /// The last page was short: the log held nothing more when it was
    /// read, so the next read waits for the head to move.
    caught_up: bool,
    done: bool,
}

impl Subscription {
    fn start(store: EventStore, source: Source, page_size: usize) -> Result<Self> {
        if let Source::All {
            query: Some(query), ..
        } = &source
        {
            query.validate()?;
        }
        // The watch is taken before the first read, so no commit after that
        // read can pass unnoticed.
        let watch = store.backend().watch_head()?;
        let read_up_to = match &source {
            Source::All { next, .. } => Some(Position(next.0.saturating_sub(1))),
            // Where a stream's versions are in the log is known once one
            // of its events is read.
            Source::Stream { .. } => None,
        };
        let follower = Follower {
            read_up_to,
            store,
            source,
            page_size,
            watch,
            buffer: VecDeque::new(),
            caught_up: false,
            done: false,
        };
        let inner = futures::stream::unfold(follower, |mut f| async move {
            let item = f.next().await?;
            Some((item, f))
        });
        Ok(Subscription {
            inner: Box::pin(inner),
        })
    }

    pub(crate) fn all(
        store: EventStore,
        from: Position,
        query: Option<Query>,
        page_size: usize,
    ) -> Result<Self> {
        let source = Source::All { next: from, query };
        Self::start(store, source, page_size)
    }

    pub(crate) fn stream(
        store: EventStore,
        stream: StreamId,
        from: Version,
        page_size: usize,
    ) -> Result<Self> {
        Self::start(store, Source::Stream { stream, next: from }, page_size)
    }
}

impl Follower {
    /// The next item, or `None` once the subscription has ended.
    async fn next(&mut self) -> Option<Result<RecordedEvent>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.buffer.pop_front() {
                return Some(Ok(event));
            }
            if self.caught_up {
                // Returns at once if the head moved since the mark taken
                // before the last read; fails once the store is closed.
                if self.watch.changed().await.is_err() {
                    self.done = true;
                    return Some(Err(Error::Closed));
                }
                self.caught_up = false;
            }
            // Mark the head before reading: whatever commits after this
            // mark wakes `changed`, whatever committed before is readable
            // ([R5], [R8]). Together: no gap at the switch to live.
            let head = *self.watch.borrow_and_update();
            if let Some(read) = self.read_up_to {
                record_lag(&self.source, head.0.saturating_sub(read.0));
            }
            if let Err(e) = self.read_page().await {
                self.done = true;
                return Some(Err(e));
            }
        }
    }

    /// Reads the next page into the buffer, moving `next` past it.
    async fn read_page(&mut self) -> Result<()> {
        let backend = self.store.backend();
        let events = match &mut self.source {
            Source::All { next, query } => {
                let page = backend
                    .read_all(*next, self.page_size, Direction::Forward, query.as_ref())
                    .await?;
                if let Some(last) = page.events.last() {
                    *next = last.position.next();
                }
                page.events
            }
            Source::Stream { stream, next } => {
                let read = backend
                    .read_stream(stream, *next, self.page_size, Direction::Forward)
                    .await;
                let events = match read {
                    Ok(page) => page.events,
                    // Not written yet, or deleted: wait for it ([S4] lets
                    // it come back with later versions).
                    Err(Error::StreamNotFound(_)) => Vec::new(),
                    Err(e) => return Err(e),
                };
                if let Some(last) = events.last() {
                    *next = Version(last.stream_version.0.saturating_add(1));
                }
                events
            }
        };
        if let Some(last) = events.last() {
            self.read_up_to = Some(last.position);
        }
        // Caught up is decided on what the log held, before retention
        // leaves anything out.
        self.caught_up = events.len() < self.page_size;
        self.buffer.extend(self.store.reveal(events).await?);
        Ok(())
    }
}

/// Name of the histogram of subscription lag (feature `metrics`): before
/// each page a subscription reads, how many positions the head is past the
/// last event it read (0 when caught up). Label `source`: `all` or
/// `stream`. A stream subscription records it once it has read one event.
pub const LAG_METRIC: &str = "annals.subscription.lag";

/// Records the lag before a page read (nothing without feature `metrics`
/// or a recorder).
fn record_lag(source: &Source, lag: u64) {
    #[cfg(feature = "metrics")]
    {
        let source = match source {
            Source::All { .. } => "all",
            Source::Stream { .. } => "stream",
        };
        metrics::histogram!(LAG_METRIC, "source" => source).record(lag as f64);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (source, lag);
}
