//! The read path of the store: what every read through the [`EventStore`]
//! (its `read_stream`, subscriptions, `load`, typed reads) does to the
//! events the backend returns, in this order:
//!
//! 1. **retention**: events beyond their stream's policy are left out;
//! 2. **decryption**: sealed data is opened with its subject's key — or,
//!    the key having been forgotten, left sealed: the event is *erased*;
//! 3. **aliases and upcasting**: the event type is renamed, and JSON data
//!    of an older schema version is upcast to the newest one registered.
//!    An event whose upcasting fails is left at its stored version, so a
//!    raw consumer that does not care about its type is not stopped; the
//!    typed decode of that event reports the error.

use std::sync::Arc;

use annals_core::{Direction, Error, Page, RecordedEvent, Result, StreamId, Version};

use crate::EventStore;
use crate::retention::{Clock, PageRetention};
use crate::shred::{self, Decoded, KeyRing, Opened, PageKeys};
use crate::typed::TypedEvent;
use crate::upcast::{self, Schema};

/// What the store applies on read: upcasters and aliases, the key ring of
/// crypto-shredding, the clock of retention.
#[derive(Debug)]
pub(crate) struct History {
    pub schema: Schema,
    pub keys: Option<KeyRing>,
    pub clock: Arc<dyn Clock>,
}

/// The state of revealing one page: policies and keys looked up once per
/// page, never kept longer.
pub(crate) struct PageReveal {
    retention: PageRetention,
    keys: PageKeys,
}

impl EventStore {
    pub(crate) async fn page_reveal(&self) -> Result<PageReveal> {
        let retention =
            PageRetention::load(self.backend().as_ref(), self.inner.history.clock.as_ref()).await?;
        Ok(PageReveal {
            retention,
            keys: PageKeys::default(),
        })
    }

    /// Applies the read path to one event; `None` if retention leaves it
    /// out.
    pub(crate) async fn reveal_one(
        &self,
        page: &mut PageReveal,
        mut event: RecordedEvent,
    ) -> Result<Option<RecordedEvent>> {
        let backend = self.backend().as_ref();
        if !page.retention.keeps(backend, &event).await? {
            return Ok(None);
        }
        if let Some(ring) = &self.inner.history.keys {
            self.open_sealed(ring, &mut page.keys, &mut event).await?;
        }
        // A failure leaves the data as stored (renamed only): its typed
        // decode reports why.
        let _ = self.inner.history.schema.upcast(&mut event);
        Ok(Some(event))
    }

    /// Opens `event`'s sealed data in place; erased data stays sealed.
    async fn open_sealed(
        &self,
        ring: &KeyRing,
        keys: &mut PageKeys,
        event: &mut RecordedEvent,
    ) -> Result<()> {
        let opened = {
            let Some(envelope) = shred::envelope(event)? else {
                return Ok(());
            };
            let key = keys
                .get(ring, self.backend().as_ref(), envelope.subject)
                .await?;
            envelope.open(event, key)?
        };
        if let Opened::Plain(data) = opened {
            event.data = data;
        }
        Ok(())
    }

    /// Applies what reads through the store apply — retention, decryption,
    /// aliases and upcasting — to events read straight from the backend
    /// (a `read_all` page, index lookups). Events retention leaves out are
    /// dropped, so the result may be shorter; erased events stay sealed
    /// (see [`is_sealed`](crate::is_sealed) and [`EventStore::decode`]).
    pub async fn reveal(&self, events: Vec<RecordedEvent>) -> Result<Vec<RecordedEvent>> {
        let mut page = self.page_reveal().await?;
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            if let Some(event) = self.reveal_one(&mut page, event).await? {
                out.push(event);
            }
        }
        Ok(out)
    }

    /// Reads up to `count` events of `stream` like the backend's
    /// `read_stream` (\[R1\], \[R2\]), through the store's read path:
    /// retention (the page starts at the first event kept), decryption,
    /// aliases and upcasting. A backward page stops at the first event
    /// kept, so it may be short.
    pub async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        count: usize,
        direction: Direction,
    ) -> Result<Page> {
        let backend = self.backend();
        let first = self.first_kept(stream).await?;
        let from = match direction {
            Direction::Forward => from.max(first),
            Direction::Backward => from,
        };
        let mut page = backend.read_stream(stream, from, count, direction).await?;
        if matches!(direction, Direction::Backward) && from < first {
            page.events.clear();
        }
        page.events.retain(|e| e.stream_version >= first);
        page.events = self.reveal(std::mem::take(&mut page.events)).await?;
        Ok(page)
    }

    /// The first version of `stream` retention keeps (0 without a policy):
    /// by count and version, then by age, found by bisection over the
    /// versions since `recorded_at` never decreases along a stream (\[D3\]),
    /// so it costs O(log n) one-event reads, not a walk over old events.
    pub(crate) async fn first_kept(&self, stream: &StreamId) -> Result<Version> {
        let backend = self.backend();
        let Some((policy, _)) = (if backend.capabilities().aux {
            self.retention(stream).await?
        } else {
            None
        }) else {
            return Ok(Version(0));
        };
        let last = match backend.stream_version(stream).await {
            Ok(v) => v,
            Err(Error::StreamNotFound(_)) => return Ok(Version(0)),
            Err(e) => return Err(e),
        };
        let end = Version(last.0.saturating_add(1));
        let mut lo = policy.first_kept_by_version(last).min(end);
        if let Some(oldest) = policy.oldest_kept_at(self.inner.history.clock.now()) {
            // The answer is in lo..=end: the first readable version whose
            // event is young enough.
            let mut hi = end;
            while lo < hi {
                let mid = Version(lo.0 + (hi.0 - lo.0) / 2);
                let page = backend
                    .read_stream(stream, mid, 1, Direction::Forward)
                    .await?;
                match page.events.first() {
                    Some(e) if e.recorded_at >= oldest => hi = mid,
                    Some(e) if e.stream_version < hi => {
                        lo = Version(e.stream_version.0.saturating_add(1));
                    }
                    _ => lo = hi,
                }
            }
        }
        Ok(lo)
    }

    /// Decodes `event` — read from the backend or through the store — as
    /// `E`: sealed data is opened (or is [`Decoded::Erased`] once its
    /// subject was forgotten), old names and schema versions are brought
    /// to today's. An event of another type, data that does not decode, a
    /// schema version with no upcaster to `E::VERSION`, or sealed data on
    /// a store opened without the master key is `Error::Decode` naming its
    /// stream, version and type.
    pub async fn decode<E: TypedEvent>(&self, event: &RecordedEvent) -> Result<Decoded<E>> {
        let mut event = event.clone();
        if let Some(ring) = &self.inner.history.keys {
            let mut keys = PageKeys::default();
            self.open_sealed(ring, &mut keys, &mut event).await?;
        }
        self.decode_revealed(event)
    }

    /// Decodes an event that went through the read path.
    pub(crate) fn decode_revealed<E: TypedEvent>(
        &self,
        mut event: RecordedEvent,
    ) -> Result<Decoded<E>> {
        if shred::is_sealed(&event) {
            if self.inner.history.keys.is_none() {
                return Err(upcast::decode_error(
                    &event,
                    &E::describe(),
                    "its data is sealed for a subject: open the EventStore with the master key \
                     (EventStoreBuilder::master_key) to read it"
                        .into(),
                ));
            }
            return Ok(Decoded::Erased);
        }
        // Brings the event to the newest version (a second time does
        // nothing), and reports why it could not.
        self.inner.history.schema.upcast(&mut event)?;
        E::from_recorded(&event).map(Decoded::Event)
    }
}
