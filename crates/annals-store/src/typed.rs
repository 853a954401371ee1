//! Typed events: Rust types stored as JSON (serde_json), one event type
//! per Rust type.

use annals_core::{
    AppendResult, BoxError, Direction, Error, ExpectedVersion, Field, NewEvent, RecordedEvent,
    Result, StreamId, Version,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::EventStore;

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

    /// The tags an event carries ([D2]); none by default.
    fn tags(&self) -> Vec<String> {
        Vec::new()
    }

    /// The event to append: type [`EVENT_TYPE`](TypedEvent::EVENT_TYPE),
    /// data as JSON, [`tags`](TypedEvent::tags). A value JSON cannot hold
    /// (a map with non-string keys…) is `Error::InvalidInput`.
    fn to_new_event(&self) -> Result<NewEvent> {
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
            .tags(self.tags())
            .build())
    }

    /// Decodes a recorded event. One of another type, or whose data is not
    /// this type's JSON, is `Error::Decode` naming its stream, version and
    /// type.
    fn from_recorded(event: &RecordedEvent) -> Result<Self> {
        let fail = |source: BoxError| Error::Decode {
            stream: event.stream_id.clone(),
            version: event.stream_version,
            event_type: event.event_type.clone(),
            target: format!(
                "{} (event type {:?})",
                std::any::type_name::<Self>(),
                Self::EVENT_TYPE
            ),
            source,
        };
        if event.event_type != Self::EVENT_TYPE {
            return Err(fail(
                format!("its type is not {:?}", Self::EVENT_TYPE).into(),
            ));
        }
        serde_json::from_slice(&event.data).map_err(|e| fail(e.into()))
    }
}

/// A decoded event with the event it was read from (its stream, version,
/// position, id, time…).
#[derive(Clone, PartialEq, Debug)]
pub struct Typed<E> {
    /// The decoded value.
    pub event: E,
    /// The stored event.
    pub recorded: RecordedEvent,
}

impl EventStore {
    /// Appends typed events to `stream` if `expected` holds ([A1]–[A5]).
    pub async fn append_typed<E: TypedEvent>(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[E],
    ) -> Result<AppendResult> {
        let events = events
            .iter()
            .map(TypedEvent::to_new_event)
            .collect::<Result<Vec<_>>>()?;
        self.backend().append(stream, expected, events).await
    }

    /// Reads up to `count` events of `stream` from version `from` on
    /// ([R1]) and decodes each as `E`. An event of another type, or whose
    /// data does not decode, is `Error::Decode` naming its stream, version
    /// and type.
    pub async fn read_typed<E: TypedEvent>(
        &self,
        stream: &StreamId,
        from: Version,
        count: usize,
    ) -> Result<Vec<Typed<E>>> {
        let page = self
            .backend()
            .read_stream(stream, from, count, Direction::Forward)
            .await?;
        page.events
            .into_iter()
            .map(|recorded| {
                Ok(Typed {
                    event: E::from_recorded(&recorded)?,
                    recorded,
                })
            })
            .collect()
    }
}
