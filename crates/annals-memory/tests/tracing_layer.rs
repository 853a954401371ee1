//! TracingLayer over the in-memory backend: a capturing subscriber checks
//! the spans' names and fields and the events for an append, a failed
//! expectation, an idempotent replay and a read.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use annals_core::layer::{LayerExt, StreamIds, TracingLayer};
use annals_core::{
    Append, Direction, ExpectedVersion, LogBackend, NewEvent, Result, StoreConfig, StreamId,
    Version,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

/// A span or an event as captured: its name (an event's message) and
/// fields as text.
#[derive(Clone, Debug, Default)]
struct Captured {
    name: String,
    fields: BTreeMap<String, String>,
    /// The span an event belongs to (index in `spans`).
    parent: Option<usize>,
}

impl Captured {
    fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .map_or_else(|| panic!("no field {name} in {self:?}"), String::as_str)
    }
}

impl Visit for Captured {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.fields
            .insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.name = text;
        } else {
            self.fields.insert(field.name().to_owned(), text);
        }
    }
}

#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<Vec<Captured>>>,
    events: Arc<Mutex<Vec<Captured>>>,
    /// Only `INFO` and above, as a production subscriber.
    info_only: bool,
}

impl Capture {
    fn spans(&self) -> Vec<Captured> {
        self.spans.lock().expect("not poisoned").clone()
    }
    fn events(&self) -> Vec<Captured> {
        self.events.lock().expect("not poisoned").clone()
    }
    fn last_span(&self, name: &str) -> (usize, Captured) {
        let spans = self.spans();
        let index = spans
            .iter()
            .rposition(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name} in {spans:?}"));
        (index, spans[index].clone())
    }
}

impl Subscriber for Capture {
    // Asked at each callsite every time: the tests' subscribers differ.
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        !self.info_only || *metadata.level() <= Level::INFO
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut span = Captured {
            name: attrs.metadata().name().to_owned(),
            ..Captured::default()
        };
        attrs.record(&mut span);
        let mut spans = self.spans.lock().expect("not poisoned");
        spans.push(span);
        Id::from_u64(spans.len() as u64)
    }
    fn record(&self, id: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock().expect("not poisoned");
        let index = usize::try_from(id.into_u64() - 1).expect("small");
        values.record(&mut spans[index]);
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut captured = Captured {
            parent: event
                .parent()
                .map(|id| usize::try_from(id.into_u64() - 1).expect("small")),
            ..Captured::default()
        };
        event.record(&mut captured);
        self.events.lock().expect("not poisoned").push(captured);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn events(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| NewEvent::builder("Added").data(vec![0u8; 10 + i]).build())
        .collect()
}

#[tokio::test]
async fn spans_and_events_of_appends_failures_replays_and_reads() -> Result<()> {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let store =
        annals_memory::open(StoreConfig::default())?.layer(TracingLayer::new().backend("memory"));
    let cart = StreamId::new("cart-1")?;

    // An append: what it wrote and where it landed.
    let written = events(2);
    store
        .append(&cart, ExpectedVersion::NoStream, written.clone())
        .await?;
    let (_, span) = capture.last_span("annals.append");
    for (field, value) in [
        ("backend", "memory"),
        ("stream", "cart-1"),
        ("streams", "1"),
        ("events", "2"),
        ("bytes", "21"),
        ("aux_writes", "0"),
        ("expected", "no_stream"),
        ("conditional", "false"),
        ("first_version", "0"),
        ("last_version", "1"),
        ("first_position", "1"),
        ("last_position", "2"),
        ("replayed", "false"),
        ("outcome", "ok"),
    ] {
        assert_eq!(span.field(field), value, "field {field} of {span:?}");
    }
    assert!(!span.fields.contains_key("error.kind"));

    // A failed expectation: the error on the span, and an event in it.
    let failed = store
        .append(&cart, ExpectedVersion::exact(5), events(1))
        .await;
    assert!(failed.is_err_and(|e| e.is_wrong_expected_version()));
    let (index, span) = capture.last_span("annals.append");
    assert_eq!(span.field("outcome"), "error");
    assert_eq!(span.field("expected"), "exact");
    assert_eq!(span.field("error.kind"), "wrong_expected_version");
    let message = span.field("error.message");
    assert!(
        message.contains("actual 1") && message.contains("cart-1"),
        "{message}"
    );
    assert!(!span.fields.contains_key("last_position"));
    let event = capture
        .events()
        .into_iter()
        .find(|e| e.name == "expectation failed")
        .expect("an expectation-failed event");
    assert_eq!(event.parent, Some(index));
    assert_eq!(event.field("actual"), "1");
    assert_eq!(event.field("stream"), "cart-1");

    // The first append again, same event ids: an idempotent replay.
    let replay = Append::new(cart.clone(), ExpectedVersion::NoStream, written);
    store.append_with(replay).await?;
    let (index, span) = capture.last_span("annals.append_with");
    assert_eq!(span.field("replayed"), "true");
    assert_eq!(span.field("last_position"), "2");
    assert_eq!(span.field("outcome"), "ok");
    let event = capture
        .events()
        .into_iter()
        .find(|e| e.name.starts_with("idempotent replay"))
        .expect("a replay event");
    assert_eq!(event.parent, Some(index));

    // A read: the page asked for and the page answered.
    store
        .read_stream(&cart, Version(1), 10, Direction::Backward)
        .await?;
    let (_, span) = capture.last_span("annals.read_stream");
    for (field, value) in [
        ("backend", "memory"),
        ("stream", "cart-1"),
        ("from", "1"),
        ("count", "10"),
        ("direction", "backward"),
        ("page_size", "2"),
        ("head", "2"),
        ("outcome", "ok"),
    ] {
        assert_eq!(span.field(field), value, "field {field} of {span:?}");
    }
    Ok(())
}

#[tokio::test]
async fn stream_ids_can_be_hashed_or_hidden() -> Result<()> {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let cart = StreamId::new("cart-1")?;
    let hashed = annals_memory::open(StoreConfig::default())?
        .layer(TracingLayer::with_streams(StreamIds::Hashed));
    hashed
        .append(&cart, ExpectedVersion::Any, events(1))
        .await?;
    let (_, span) = capture.last_span("annals.append");
    let shown = span.field("stream");
    assert_eq!(shown.len(), 16, "{shown}");
    assert!(shown.chars().all(|c| c.is_ascii_hexdigit()) && !shown.contains("cart"));
    // An error's message names the stream: only its kind shows.
    hashed
        .append(&cart, ExpectedVersion::NoStream, events(1))
        .await
        .expect_err("the stream exists");
    let (_, span) = capture.last_span("annals.append");
    assert_eq!(span.field("error.kind"), "wrong_expected_version");
    assert!(!span.fields.contains_key("error.message"), "{span:?}");
    assert!(!format!("{span:?}").contains("cart"), "{span:?}");
    // The default name is the backend's type.
    assert_eq!(span.field("backend"), "KvStore<MemoryEngine>");

    let hidden = annals_memory::open(StoreConfig::default())?
        .layer(TracingLayer::with_streams(StreamIds::Hidden));
    hidden.stream_version(&cart).await.ok();
    let (_, span) = capture.last_span("annals.stream_version");
    assert!(!span.fields.contains_key("stream"), "{span:?}");
    assert_eq!(span.field("error.kind"), "stream_not_found");
    Ok(())
}

/// Under a subscriber at `INFO` (as in production) an append makes no
/// span, and a failed expectation still makes its event, which then names
/// the backend and the operation itself.
#[tokio::test]
async fn at_info_appends_make_no_span_and_a_failure_still_makes_its_event() -> Result<()> {
    let capture = Capture {
        info_only: true,
        ..Capture::default()
    };
    let _guard = tracing::subscriber::set_default(capture.clone());
    let store =
        annals_memory::open(StoreConfig::default())?.layer(TracingLayer::new().backend("memory"));
    let cart = StreamId::new("cart-1")?;
    store
        .append(&cart, ExpectedVersion::NoStream, events(1))
        .await?;
    let failed = store
        .append(&cart, ExpectedVersion::NoStream, events(1))
        .await;
    assert!(failed.is_err_and(|e| e.is_wrong_expected_version()));
    store
        .read_stream(&cart, Version(0), 10, Direction::Forward)
        .await?;

    assert!(capture.spans().is_empty(), "{:?}", capture.spans());
    let events = capture.events();
    let [event] = events.as_slice() else {
        panic!("one event expected: {events:?}");
    };
    assert_eq!(event.name, "expectation failed");
    assert_eq!(event.parent, None);
    for (field, value) in [
        ("backend", "memory"),
        ("operation", "append"),
        ("stream", "cart-1"),
        ("actual", "0"),
    ] {
        assert_eq!(event.field(field), value, "{field}");
    }
    Ok(())
}
