//! Model-based tests: random sequences of operations — appends with every
//! expectation kind, batches, DCB conditions, truncations, deletions, aux
//! writes, close/reopen — run against every backend and against a naive
//! model written here from the contract, docs/contract.md (a list of events
//! and a map of streams, not any backend). After every operation the store
//! must answer as the model does: the same outcome, and the same reads
//! (each stream both ways, the log both ways, a tag query, stream versions,
//! the stream list, the aux space). Proptest shrinks a failing sequence to
//! a small one.
//!
//! Cases per backend: `ANNALS_MODEL_CASES` (default 200); the long mode is e.g.
//! `ANNALS_MODEL_CASES=10000 cargo test --workspace --release --test model`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;

use annals::{
    Append, AppendCondition, AuxWrite, Batch, Direction, Error, ExpectedVersion, NewEvent,
    Position, Query, Store, StreamId, Uuid, Version,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const STREAMS: [&str; 3] = ["a", "b", "c"];
const TAGS: [&str; 2] = ["x", "y"];

#[derive(Clone, Debug)]
enum Expect {
    Any,
    NoStream,
    Exists,
    Exact(u64),
}

impl Expect {
    fn to_annals(&self) -> ExpectedVersion {
        match self {
            Expect::Any => ExpectedVersion::Any,
            Expect::NoStream => ExpectedVersion::NoStream,
            Expect::Exists => ExpectedVersion::StreamExists,
            Expect::Exact(v) => ExpectedVersion::exact(*v),
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Append {
        stream: usize,
        expect: Expect,
        events: usize,
        tag: usize,
    },
    Conditional {
        stream: usize,
        expect: Expect,
        tag: usize,
        /// How far below the head `after` is (0: at the head).
        back: u64,
    },
    Batch {
        first: usize,
        expects: (Expect, Expect),
        tag: usize,
    },
    Truncate {
        stream: usize,
        before: u64,
    },
    Delete {
        stream: usize,
        expect: Expect,
    },
    AuxPut {
        key: u8,
        value: u8,
    },
    AuxDelete {
        key: u8,
    },
    Reopen,
}

fn expect() -> impl Strategy<Value = Expect> {
    prop_oneof![
        Just(Expect::Any),
        Just(Expect::NoStream),
        Just(Expect::Exists),
        (0u64..6).prop_map(Expect::Exact),
    ]
}

fn op(reopen: bool) -> impl Strategy<Value = Op> {
    let reopen_weight = if reopen { 1 } else { 0 };
    prop_oneof![
        6 => (0..3usize, expect(), 1..4usize, 0..2usize)
            .prop_map(|(stream, expect, events, tag)| Op::Append { stream, expect, events, tag }),
        2 => (0..3usize, expect(), 0..2usize, 0u64..4)
            .prop_map(|(stream, expect, tag, back)| Op::Conditional { stream, expect, tag, back }),
        2 => (0..3usize, (expect(), expect()), 0..2usize)
            .prop_map(|(first, expects, tag)| Op::Batch { first, expects, tag }),
        1 => (0..3usize, 0u64..8).prop_map(|(stream, before)| Op::Truncate { stream, before }),
        1 => (0..3usize, expect()).prop_map(|(stream, expect)| Op::Delete { stream, expect }),
        1 => (0u8..3, any::<u8>()).prop_map(|(key, value)| Op::AuxPut { key, value }),
        1 => (0u8..3).prop_map(|key| Op::AuxDelete { key }),
        reopen_weight => Just(Op::Reopen),
    ]
}

/// An event as the model keeps it.
#[derive(Clone, Debug, PartialEq)]
struct Ev {
    id: Uuid,
    stream: String,
    version: u64,
    position: u64,
    tag: String,
}

#[derive(Clone, Copy, Default, Debug)]
struct StreamState {
    next_version: u64,
    floor: u64,
    deleted: bool,
}

impl StreamState {
    fn last(&self) -> Option<u64> {
        (!self.deleted && self.next_version > 0).then(|| self.next_version - 1)
    }
    fn readable(&self, version: u64) -> bool {
        !self.deleted && version >= self.floor && version < self.next_version
    }
}

/// The naive model: every event ever written, and each stream's numbers.
#[derive(Default, Debug)]
struct Model {
    log: Vec<Ev>,
    streams: BTreeMap<String, StreamState>,
    aux: BTreeMap<Vec<u8>, Vec<u8>>,
    head: u64,
}

impl Model {
    fn state(&self, stream: &str) -> StreamState {
        self.streams.get(stream).copied().unwrap_or_default()
    }

    fn satisfies(&self, stream: &str, expect: &Expect) -> bool {
        let last = self.state(stream).last();
        match expect {
            Expect::Any => true,
            Expect::NoStream => last.is_none(),
            Expect::Exists => last.is_some(),
            Expect::Exact(v) => last == Some(*v),
        }
    }

    fn readable(&self) -> impl Iterator<Item = &Ev> {
        self.log
            .iter()
            .filter(|e| self.state(&e.stream).readable(e.version))
    }

    /// Whether a readable event tagged `tag` is above `after`.
    fn condition_fails(&self, tag: &str, after: u64) -> bool {
        self.readable().any(|e| e.tag == tag && e.position > after)
    }

    /// Records an append the store made.
    fn record(&mut self, stream: &str, events: &[NewEvent], first_position: u64) {
        let mut state = self.state(stream);
        if state.deleted {
            // Recreated: numbering goes on, the old events stay dead.
            state = StreamState {
                next_version: state.next_version,
                floor: state.next_version,
                deleted: false,
            };
        }
        for (i, e) in events.iter().enumerate() {
            self.log.push(Ev {
                id: e.event_id,
                stream: stream.to_string(),
                version: state.next_version,
                position: first_position + i as u64,
                tag: e.tags[0].clone(),
            });
            state.next_version += 1;
        }
        self.head = first_position + events.len() as u64 - 1;
        self.streams.insert(stream.to_string(), state);
    }
}

fn new_events(n: usize, tag: &str) -> Vec<NewEvent> {
    (0..n)
        .map(|_| NewEvent::builder("T").tag(tag).data(b"d".to_vec()).build())
        .collect()
}

fn sid(name: &str) -> StreamId {
    StreamId::new(name).unwrap()
}

/// Checks the store's outcome against the model's expectation, where
/// `ok` says whether the model expects success.
fn outcome<T: std::fmt::Debug>(
    what: &Op,
    ok: bool,
    result: &annals::Result<T>,
) -> Result<(), TestCaseError> {
    match (ok, result) {
        (true, Ok(_)) | (false, Err(_)) => Ok(()),
        (true, Err(e)) => Err(TestCaseError::fail(format!(
            "{what:?}: the model expects success, the store said {e}"
        ))),
        (false, Ok(r)) => Err(TestCaseError::fail(format!(
            "{what:?}: the model expects a failure, the store did {r:?}"
        ))),
    }
}

async fn apply(store: &Store, model: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    match op {
        Op::Append {
            stream,
            expect,
            events,
            tag,
        } => {
            let s = STREAMS[*stream];
            let events = new_events(*events, TAGS[*tag]);
            let ok = model.satisfies(s, expect);
            let r = store
                .append(&sid(s), expect.to_annals(), events.clone())
                .await;
            outcome(op, ok, &r)?;
            match r {
                Ok(r) => model.record(s, &events, r.first_position.0),
                Err(e) => prop_assert!(e.is_wrong_expected_version(), "{op:?}: {e}"),
            }
        }
        Op::Conditional {
            stream,
            expect,
            tag,
            back,
        } => {
            let s = STREAMS[*stream];
            let after = model.head.saturating_sub(*back);
            let events = new_events(1, TAGS[*tag]);
            let expectation_ok = model.satisfies(s, expect);
            let condition_ok = !model.condition_fails(TAGS[*tag], after);
            let append = Append::new(sid(s), expect.to_annals(), events.clone()).condition(
                AppendCondition::new(Query::tags([TAGS[*tag]]), Some(Position(after))),
            );
            let r = store.append_with(append).await;
            outcome(op, expectation_ok && condition_ok, &r)?;
            match r {
                Ok(r) => model.record(s, &events, r.first_position.0),
                // [A3] the expectation's error wins.
                Err(e) if !expectation_ok => {
                    prop_assert!(e.is_wrong_expected_version(), "{op:?}: {e}")
                }
                Err(e) => prop_assert!(
                    matches!(e, Error::AppendConditionFailed { .. }),
                    "{op:?}: {e}"
                ),
            }
        }
        Op::Batch {
            first,
            expects,
            tag,
        } => {
            let (s1, s2) = (STREAMS[*first], STREAMS[(*first + 1) % 3]);
            let (e1, e2) = (new_events(1, TAGS[*tag]), new_events(2, TAGS[*tag]));
            let ok = model.satisfies(s1, &expects.0) && model.satisfies(s2, &expects.1);
            let batch = Batch::default()
                .part(sid(s1), expects.0.to_annals(), e1.clone())
                .part(sid(s2), expects.1.to_annals(), e2.clone());
            let r = store.append_batch(batch).await;
            outcome(op, ok, &r)?;
            match r {
                Ok(results) => {
                    model.record(s1, &e1, results[0].first_position.0);
                    model.record(s2, &e2, results[1].first_position.0);
                }
                Err(e) => prop_assert!(e.is_wrong_expected_version(), "{op:?}: {e}"),
            }
        }
        Op::Truncate { stream, before } => {
            let s = STREAMS[*stream];
            let state = model.state(s);
            let ok = state.last().is_some();
            let r = store.truncate_stream(&sid(s), Version(*before)).await;
            outcome(op, ok, &r)?;
            match r {
                Ok(()) => {
                    let floor = (*before).min(state.next_version).max(state.floor);
                    model
                        .streams
                        .insert(s.to_string(), StreamState { floor, ..state });
                }
                Err(e) => prop_assert!(matches!(e, Error::StreamNotFound(_)), "{op:?}: {e}"),
            }
        }
        Op::Delete { stream, expect } => {
            let s = STREAMS[*stream];
            let state = model.state(s);
            let exists = state.last().is_some();
            let ok = exists && model.satisfies(s, expect);
            let r = store.delete_stream(&sid(s), expect.to_annals()).await;
            outcome(op, ok, &r)?;
            match r {
                Ok(()) => {
                    model.streams.insert(
                        s.to_string(),
                        StreamState {
                            deleted: true,
                            ..state
                        },
                    );
                }
                // [S4] on a stream that does not exist: Exact and
                // StreamExists fail the expectation, Any and NoStream are
                // StreamNotFound.
                Err(e) if !exists && matches!(expect, Expect::Any | Expect::NoStream) => {
                    prop_assert!(matches!(e, Error::StreamNotFound(_)), "{op:?}: {e}")
                }
                Err(e) => prop_assert!(e.is_wrong_expected_version(), "{op:?}: {e}"),
            }
        }
        Op::AuxPut { key, value } => {
            store
                .aux_put(&[b'k', *key], &[*value])
                .await
                .map_err(fail)?;
            model.aux.insert(vec![b'k', *key], vec![*value]);
        }
        Op::AuxDelete { key } => {
            store
                .aux_write(vec![AuxWrite::delete(vec![b'k', *key])])
                .await
                .map_err(fail)?;
            model.aux.remove(&vec![b'k', *key]);
        }
        Op::Reopen => {}
    }
    Ok(())
}

fn fail(e: Error) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// Every read the store answers must equal the model's.
async fn compare(store: &Store, model: &Model) -> Result<(), TestCaseError> {
    let view = |e: &annals::RecordedEvent| Ev {
        id: e.event_id,
        stream: e.stream_id.as_str().to_string(),
        version: e.stream_version.0,
        position: e.position.0,
        tag: e.tags[0].clone(),
    };
    let readable: Vec<Ev> = model.readable().cloned().collect();
    let all = store
        .read_all(Position(0), 1000, Direction::Forward, None)
        .await
        .map_err(fail)?;
    prop_assert_eq!(
        all.events.iter().map(view).collect::<Vec<_>>(),
        readable.clone(),
        "read_all forward"
    );
    let back = store
        .read_all(Position::MAX, 1000, Direction::Backward, None)
        .await
        .map_err(fail)?;
    let mut reversed = readable.clone();
    reversed.reverse();
    prop_assert_eq!(
        back.events.iter().map(view).collect::<Vec<_>>(),
        reversed,
        "read_all backward"
    );
    let tagged = store
        .read_all(
            Position(0),
            1000,
            Direction::Forward,
            Some(&Query::tags(["x"])),
        )
        .await
        .map_err(fail)?;
    let model_tagged: Vec<Ev> = readable.iter().filter(|e| e.tag == "x").cloned().collect();
    prop_assert_eq!(
        tagged.events.iter().map(view).collect::<Vec<_>>(),
        model_tagged,
        "tag query"
    );
    prop_assert_eq!(
        store.has_events().await.map_err(fail)?,
        !readable.is_empty()
    );

    let mut listed = Vec::new();
    for s in STREAMS {
        let state = model.state(s);
        let version = store.stream_version(&sid(s)).await;
        match state.last() {
            Some(last) => {
                prop_assert_eq!(version.map_err(fail)?, Version(last), "version of {}", s);
                listed.push((s.to_string(), last));
                let page = store
                    .read_stream(&sid(s), Version(0), 1000, Direction::Forward)
                    .await
                    .map_err(fail)?;
                let expected: Vec<Ev> =
                    readable.iter().filter(|e| e.stream == s).cloned().collect();
                prop_assert_eq!(
                    page.events.iter().map(view).collect::<Vec<_>>(),
                    expected.clone(),
                    "read_stream {}",
                    s
                );
                let page = store
                    .read_stream(&sid(s), Version(u64::MAX), 1000, Direction::Backward)
                    .await
                    .map_err(fail)?;
                let mut expected = expected;
                expected.reverse();
                prop_assert_eq!(
                    page.events.iter().map(view).collect::<Vec<_>>(),
                    expected,
                    "read_stream {} backward",
                    s
                );
            }
            None => {
                prop_assert!(
                    matches!(version, Err(Error::StreamNotFound(_))),
                    "{s}: {version:?}"
                );
                let page = store
                    .read_stream(&sid(s), Version(0), 10, Direction::Forward)
                    .await;
                prop_assert!(
                    matches!(page, Err(Error::StreamNotFound(_))),
                    "{s}: {page:?}"
                );
            }
        }
    }
    let streams = store.list_streams(None, 100).await.map_err(fail)?;
    let streams: Vec<(String, u64)> = streams
        .iter()
        .map(|s| (s.id.as_str().to_string(), s.last_version.0))
        .collect();
    prop_assert_eq!(streams, listed, "list_streams");
    let aux = store.aux_scan(b"", None, 100).await.map_err(fail)?;
    let model_aux: Vec<(Vec<u8>, Vec<u8>)> = model.aux.clone().into_iter().collect();
    prop_assert_eq!(aux, model_aux, "aux_scan");
    Ok(())
}

/// Runs `cases` random sequences on stores opened by `open(dir)`.
fn run(driver: &annals::driver::Driver, default_cases: u32, reopen: bool) {
    let backend = driver.scheme;
    let cases = std::env::var("ANNALS_MODEL_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default_cases);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(op(reopen), 1..30), |ops| {
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let url = annals_reliability::store_url(driver, dir.path(), "m", "durability=relaxed");
            let mut store = annals::open(&url).await.map_err(fail)?;
            let mut model = Model::default();
            for op in &ops {
                if let Op::Reopen = op {
                    store.close().await.map_err(fail)?;
                    store = annals::open(&url).await.map_err(fail)?;
                } else {
                    apply(&store, &mut model, op).await?;
                }
                compare(&store, &model).await?;
            }
            store.close().await.map_err(fail)?;
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{backend}: {e}");
    }
    println!("{backend}: {cases} cases agree with the model");
}

/// Every backend, one after the other; those that keep files are also
/// closed and reopened at random.
#[test]
fn every_backend_agrees_with_the_model() {
    for driver in annals_reliability::backends() {
        run(driver, 200, driver.capabilities.persistent);
    }
}
