//! Typed events: Rust types stored as JSON (serde_json), one event type
//! per Rust type, with a schema version (see the `upcast` module) and,
//! optionally, a subject whose key seals the data (see the `shred`
//! module).

use annals_core::{
    AppendResult, BoxError, Direction, Error, ExpectedVersion, Field, NewEvent, RecordedEvent,
    Result, StreamId, Version,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::EventStore;
use crate::shred::{self, Decoded};
use crate::upcast;

/// A Rust type stored as events of type [`EVENT_TYPE`](TypedEvent::EVENT_TYPE),
/// with its data as JSON.
///
/// ```
/// use annals_store::TypedEvent;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// struct ItemAdded {
///     sku: String,
///     qty: u32,
/// }
///
/// impl TypedEvent for ItemAdded {
///     const EVENT_TYPE: &'static str = "ItemAdded";
///     fn tags(&self) -> Vec<String> {
///         vec![format!("sku:{}", self.sku)]
///     }
/// }
///
/// let event = ItemAdded { sku: "apple".into(), qty: 2 }.to_new_event()?;
/// assert_eq!(event.event_type, "ItemAdded");
/// assert_eq!(event.data, br#"{"sku":"apple","qty":2}"#);
/// assert_eq!(event.tags, ["sku:apple"]);
/// # Ok::<(), annals_core::Error>(())
/// ```
pub trait TypedEvent: Serialize + DeserializeOwned {
    /// The event type this Rust type is stored as (1 to 255 bytes, no NUL).
    const EVENT_TYPE: &'static str;

    /// The schema version of this type's JSON, from 1 (the default). Raise
    /// it when the JSON changes, and register an upcaster from the
    /// previous version on the store
    /// ([`EventStoreBuilder::upcaster`](crate::EventStoreBuilder::upcaster)):
    /// events written before then are upcast when read. It is stored in
    /// the event's metadata (`{"annals_schema":N}`, only above 1).
    const VERSION: u32 = 1;

    /// The subject (a person, a tenant: an id of the application's) whose
    /// key seals this event's data, or `None` (the default) to store it in
    /// the clear. A sealed event's data reads as [`Decoded::Erased`] once
    /// [`EventStore::forget`] has forgotten its subject. Use an opaque id
    /// (a customer number, not an e-mail address): the subject is stored
    /// only as a keyed hash, but the application's stream ids, tags and
    /// metadata are not encrypted.
    fn subject(&self) -> Option<String> {
        None
    }

    /// The tags an event carries (\[D2\]); none by default.
    fn tags(&self) -> Vec<String> {
        Vec::new()
    }

    /// The event to append, in the clear: type
    /// [`EVENT_TYPE`](TypedEvent::EVENT_TYPE), data as JSON,
    /// [`tags`](TypedEvent::tags), the schema [`VERSION`](TypedEvent::VERSION)
    /// in the metadata above 1. (Sealing happens in
    /// [`EventStore::append_typed`].) A value JSON cannot hold (a map with
    /// non-string keys…), or a `VERSION` of 0, is `Error::InvalidInput`.
    fn to_new_event(&self) -> Result<NewEvent> {
        if Self::VERSION == 0 {
            return Err(Error::malformed(
                Field::Setting,
                format!(
                    "{}: schema versions start at 1, VERSION is 0",
                    Self::describe()
                ),
            ));
        }
        let data = serde_json::to_vec(self).map_err(|e| {
            Error::malformed(
                Field::Data,
                format!(
                    "cannot encode {} (event type {:?}) as JSON: {e}",
                    std::any::type_name::<Self>(),
                    Self::EVENT_TYPE
                ),
            )
        })?;
        Ok(NewEvent::builder(Self::EVENT_TYPE)
            .data(data)
            .metadata(upcast::metadata_for(Self::VERSION))
            .tags(self.tags())
            .build())
    }

    /// Decodes a recorded event as it is, without a store: no upcasting,
    /// no aliases, no decryption (use [`EventStore::decode`] for those). One
    /// of another type or schema version, sealed data, or data that is not
    /// this type's JSON is `Error::Decode` naming its stream, version and
    /// type.
    fn from_recorded(event: &RecordedEvent) -> Result<Self> {
        let fail = |source: BoxError| upcast::decode_error(event, &Self::describe(), source);
        if event.event_type != Self::EVENT_TYPE {
            return Err(fail(
                format!("its type is not {:?}", Self::EVENT_TYPE).into(),
            ));
        }
        if shred::is_sealed(event) {
            return Err(fail(
                "its data is sealed: decode it through EventStore::decode".into(),
            ));
        }
        let version = upcast::stored_version(event)?;
        if version < Self::VERSION {
            return Err(upcast::missing_upcaster(event, version, Self::VERSION));
        }
        if version > Self::VERSION {
            return Err(fail(
                format!(
                    "it was written at schema version {version}, newer than this type's {}",
                    Self::VERSION
                )
                .into(),
            ));
        }
        serde_json::from_slice(&event.data).map_err(|e| fail(e.into()))
    }

    /// The Rust type, its event type and version, for messages.
    #[doc(hidden)]
    fn describe() -> String {
        format!(
            "{} (event type {:?}, schema version {})",
            std::any::type_name::<Self>(),
            Self::EVENT_TYPE,
            Self::VERSION
        )
    }
}

/// A decoded event with the event it was read from (its stream, version,
/// position, id, time…).
#[derive(Clone, PartialEq, Debug)]
pub struct Typed<E> {
    /// The decoded value, or the marker of erased data.
    pub event: Decoded<E>,
    /// The stored event.
    pub recorded: RecordedEvent,
}

impl EventStore {
    /// Appends typed events to `stream` if `expected` holds (\[A1\]–\[A5\]).
    /// Events with a [`subject`](TypedEvent::subject) have their data
    /// sealed with its key (see [`EventStore::append_sealed`]); that needs
    /// a store opened with the master key, else `Error::InvalidInput`.
    pub async fn append_typed<E: TypedEvent>(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[E],
    ) -> Result<AppendResult> {
        let events = events
            .iter()
            .map(|e| Ok((e.to_new_event()?, e.subject())))
            .collect::<Result<Vec<_>>>()?;
        self.append_prepared(stream, expected, events).await
    }

    /// Reads up to `count` events of `stream` from version `from` on
    /// through the store's read path ([`EventStore::read_stream`]:
    /// retention, decryption, aliases, upcasting) and decodes each as `E`
    /// — erased data as [`Decoded::Erased`]. An event of another type,
    /// whose data does not decode, or whose schema version has no upcaster
    /// chain to `E::VERSION`, is `Error::Decode` naming its stream, version
    /// and type.
    pub async fn read_typed<E: TypedEvent>(
        &self,
        stream: &StreamId,
        from: Version,
        count: usize,
    ) -> Result<Vec<Typed<E>>> {
        let page = self
            .read_stream(stream, from, count, Direction::Forward)
            .await?;
        page.events
            .into_iter()
            .map(|recorded| {
                Ok(Typed {
                    event: self.decode_revealed(recorded.clone())?,
                    recorded,
                })
            })
            .collect()
    }
}
