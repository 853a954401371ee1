//! Each branch of each rule.

use super::*;
use crate::backend::BatchPart;
use crate::error::FailedCondition;
use crate::event::Timestamp;
use crate::expect::Query;

fn stream() -> StreamId {
    StreamId::new("s").expect("a valid id")
}

/// A live stream with versions `floor..next`, created at `created`.
fn live(next_version: u64, floor: u64, created: u64) -> StreamMeta {
    StreamMeta {
        next_version,
        floor,
        created,
        deleted: false,
    }
}

fn deleted(next_version: u64) -> StreamMeta {
    StreamMeta {
        next_version,
        floor: next_version,
        created: 0,
        deleted: true,
    }
}

fn events(n: usize) -> Vec<NewEvent> {
    (0..n).map(|_| NewEvent::builder("E").build()).collect()
}

/// `new` as stored at versions from `first` and positions from `position`.
fn stored(stream: &StreamId, new: &[NewEvent], first: u64, position: u64) -> Vec<RecordedEvent> {
    new.iter()
        .zip(0..)
        .map(|(e, i)| RecordedEvent {
            stream_id: stream.clone(),
            stream_version: Version(first + i),
            position: Position(position + i),
            recorded_at: Timestamp(0),
            event_id: e.event_id,
            event_type: e.event_type.clone(),
            data: Vec::new(),
            metadata: Vec::new(),
            tags: Vec::new(),
        })
        .collect()
}

fn condition() -> AppendCondition {
    AppendCondition::new(Query::types(["E"]), Some(Position(4)))
}

#[test]
fn stream_meta_states() {
    assert_eq!(StreamMeta::default().last_version(), None);
    assert_eq!(live(3, 0, 0).last_version(), Some(Version(2)));
    assert_eq!(deleted(3).last_version(), None);
    assert_eq!(StreamMeta::for_append(None), StreamMeta::default());
    assert_eq!(StreamMeta::for_append(Some(live(3, 1, 0))), live(3, 1, 0));
    assert_eq!(StreamMeta::for_append(Some(deleted(3))), live(3, 3, 3));
    let m = live(3, 1, 0);
    assert!(!m.is_readable(0) && m.is_readable(1) && m.is_readable(2) && !m.is_readable(3));
    assert!(!deleted(3).is_readable(2));
}

#[test]
fn expectations() {
    let s = stream();
    let wrong = |expected, meta| {
        check_expected(&s, expected, meta)
            .expect_err("refused")
            .is_wrong_expected_version()
    };
    assert!(check_expected(&s, ExpectedVersion::Any, None).is_ok());
    assert!(check_expected(&s, ExpectedVersion::NoStream, None).is_ok());
    assert!(check_expected(&s, ExpectedVersion::NoStream, Some(deleted(3))).is_ok());
    assert!(wrong(ExpectedVersion::NoStream, Some(live(1, 0, 0))));
    assert!(wrong(ExpectedVersion::StreamExists, None));
    assert!(wrong(ExpectedVersion::StreamExists, Some(deleted(3))));
    assert!(check_expected(&s, ExpectedVersion::StreamExists, Some(live(1, 0, 0))).is_ok());
    // A truncated stream still exists, at its last version.
    assert!(check_expected(&s, ExpectedVersion::exact(2), Some(live(3, 3, 0))).is_ok());
    assert!(wrong(ExpectedVersion::exact(1), Some(live(3, 0, 0))));
    assert!(wrong(ExpectedVersion::exact(2), Some(deleted(3))));
    match check_expected(&s, ExpectedVersion::exact(1), Some(live(3, 0, 0))) {
        Err(Error::WrongExpectedVersion {
            expected, actual, ..
        }) => {
            assert_eq!(expected, ExpectedVersion::exact(1));
            assert_eq!(actual, Some(Version(2)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn condition_starts_after_its_after() {
    assert_eq!(condition_start(&condition()), Some(Position(5)));
    let none = AppendCondition::new(Query::types(["E"]), None);
    assert_eq!(condition_start(&none), Some(Position(1)));
    let end = AppendCondition::new(Query::types(["E"]), Some(Position(u64::MAX)));
    assert_eq!(condition_start(&end), None);
}

/// The error and retry of a refused append.
fn refused(decision: Result<AppendDecision>) -> (Error, Retry) {
    match decision.expect("decided") {
        AppendDecision::Refused { error, retry } => (error, retry),
        other => panic!("{other:?}"),
    }
}

const BY_CONDITION: Retry = Retry {
    versions: None,
    by_condition: true,
};

#[test]
fn append_decisions() {
    let s = stream();
    let never = || -> Result<bool> { panic!("the condition is not asked") };
    // Expectation holds, no condition: write.
    let plain = Append::new(s.clone(), ExpectedVersion::exact(2), events(2));
    let decision = decide_append(&plain, Some(live(3, 0, 0)), never).expect("decided");
    assert!(matches!(decision, AppendDecision::Write));
    // Expectation fails: refused, replayable at the versions after it.
    let (error, retry) = refused(decide_append(&plain, Some(live(5, 0, 0)), never));
    assert!(error.is_wrong_expected_version());
    let at_versions = Retry {
        versions: Some((3, 4)),
        by_condition: false,
    };
    assert_eq!(retry, at_versions);
    // Expectation fails with a condition: look by condition too, never
    // asking whether it fails (here the versions after it are too few).
    let conditional = plain.clone().condition(condition());
    let (error, retry) = refused(decide_append(&conditional, Some(live(4, 0, 0)), never));
    assert!(error.is_wrong_expected_version());
    assert_eq!(retry, BY_CONDITION);
    // Expectation holds, condition holds: write.
    let decision = decide_append(&conditional, Some(live(3, 0, 0)), || Ok(false));
    assert!(matches!(decision, Ok(AppendDecision::Write)));
    // Expectation holds, condition fails: refused with the condition's
    // failure, replayable by condition only.
    let (error, retry) = refused(decide_append(&conditional, Some(live(3, 0, 0)), || {
        Ok(true)
    }));
    assert!(matches!(
        error.failed_condition(),
        Some(FailedCondition::Events(c)) if *c == condition()
    ));
    assert_eq!(retry, BY_CONDITION);
    // The condition's check failing fails the decision.
    let failing = decide_append(&conditional, Some(live(3, 0, 0)), || Err(Error::Closed));
    assert!(failing.expect_err("its error").is_closed());
}

#[test]
fn batch_checks() {
    let (a, b) = (stream(), StreamId::new("t").expect("a valid id"));
    let batch = Batch::new(vec![
        BatchPart::new(a, ExpectedVersion::NoStream, events(1)),
        BatchPart::new(b, ExpectedVersion::exact(0), events(1)),
    ]);
    let metas = [None, Some(live(1, 0, 0))];
    assert!(check_batch(&batch, &metas, || panic!("no condition")).is_ok());
    let wrong = check_batch(&batch, &[None, Some(live(2, 0, 0))], || Ok(false))
        .expect_err("part 1 refused");
    assert_eq!(wrong.part(), Some(1));
    assert!(wrong.root().is_wrong_expected_version());
    let conditional = Batch {
        condition: Some(condition()),
        ..batch
    };
    assert!(check_batch(&conditional, &metas, || Ok(false)).is_ok());
    let failed = check_batch(&conditional, &metas, || Ok(true)).expect_err("refused");
    assert!(failed.is_condition_failed());
    // A part's expectation is checked before the condition.
    let wrong = check_batch(&conditional, &[Some(live(1, 0, 0)), metas[1]], || {
        panic!("not asked")
    });
    assert_eq!(wrong.expect_err("part 0 refused").part(), Some(0));
}

#[test]
fn replay_versions_cases() {
    let m = live(5, 0, 2);
    assert_eq!(
        replay_versions(ExpectedVersion::NoStream, Some(m), 2),
        Some((2, 3))
    );
    assert_eq!(
        replay_versions(ExpectedVersion::exact(1), Some(m), 3),
        Some((2, 4))
    );
    // More events than there are after it.
    assert_eq!(replay_versions(ExpectedVersion::exact(1), Some(m), 4), None);
    // Truncated away.
    assert_eq!(
        replay_versions(ExpectedVersion::exact(1), Some(live(5, 3, 0)), 2),
        None
    );
    assert_eq!(replay_versions(ExpectedVersion::Any, Some(m), 1), None);
    assert_eq!(
        replay_versions(ExpectedVersion::StreamExists, Some(m), 1),
        None
    );
    assert_eq!(replay_versions(ExpectedVersion::NoStream, None, 1), None);
    assert_eq!(
        replay_versions(ExpectedVersion::NoStream, Some(deleted(5)), 1),
        None
    );
    assert_eq!(
        replay_versions(ExpectedVersion::exact(u64::MAX), Some(m), 1),
        None
    );
    assert_eq!(replay_versions(ExpectedVersion::exact(1), Some(m), 0), None);
}

#[test]
fn replays_by_versions() {
    let s = stream();
    let new = events(2);
    let found = stored(&s, &new, 3, 10);
    let result = replayed(3, &new, &found).expect("the same events");
    assert_eq!(result.first_version, Version(3));
    assert_eq!(result.last_version, Version(4));
    assert_eq!(result.first_position, Position(10));
    assert_eq!(result.last_position, Position(11));
    // Other versions, other ids, fewer events, more events: not a retry.
    assert_eq!(replayed(2, &new, &found), None);
    assert_eq!(replayed(3, &events(2), &found), None);
    assert_eq!(replayed(3, &new, &found[..1]), None);
    assert_eq!(replayed(3, &new[..1], &found), None);
    let mut reordered = found.clone();
    reordered.swap(0, 1);
    assert_eq!(replayed(3, &new, &reordered), None);
    assert_eq!(replayed(3, &[], &[]), None);
}

#[test]
fn replays_by_condition() {
    let (s, t) = (stream(), StreamId::new("t").expect("a valid id"));
    let new = events(2);
    let found = stored(&s, &new, 0, 7);
    let result = replayed_by_condition(&s, &new, &found).expect("its own events");
    assert_eq!(result.first_position, Position(7));
    assert_eq!(result.last_version, Version(1));
    // In another stream, other ids, another event besides: not a retry.
    assert_eq!(replayed_by_condition(&t, &new, &found), None);
    assert_eq!(replayed_by_condition(&s, &events(2), &found), None);
    let mut more = found.clone();
    more.extend(stored(&s, &events(1), 2, 9));
    assert_eq!(replayed_by_condition(&s, &new, &more), None);
}

#[test]
fn aux_conditions() {
    let stored = |key: &[u8]| -> Result<Option<Cow<'static, [u8]>>> {
        Ok((key == b"k").then_some(Cow::Borrowed(b"v".as_slice())))
    };
    let writes = [
        AuxWrite::put("k", "w").if_equals("v"),
        AuxWrite::put("n", "w").if_absent(),
    ];
    assert!(check_aux(&writes, stored).is_ok());
    let unequal = check_aux(&[AuxWrite::put("k", "w").if_equals("x")], stored);
    assert!(unequal.expect_err("refused").is_condition_failed());
    let present = check_aux(&[AuxWrite::delete("k").if_absent()], stored);
    assert!(present.expect_err("refused").is_condition_failed());
    // An unconditional write is not looked up.
    let unasked = check_aux(&[AuxWrite::put("k", "w")], |_| panic!("not asked"));
    assert!(unasked.is_ok());
    let failing = check_aux(&writes, |_| Err(Error::Closed));
    assert!(failing.expect_err("its error").is_closed());
}

#[test]
fn deletes() {
    let s = stream();
    let gone = delete(&s, ExpectedVersion::Any, Some(live(3, 1, 0))).expect("deleted");
    assert_eq!(
        gone,
        StreamMeta {
            next_version: 3,
            floor: 3,
            created: 0,
            deleted: true
        }
    );
    assert!(delete(&s, ExpectedVersion::exact(2), Some(live(3, 0, 0))).is_ok());
    assert!(delete(&s, ExpectedVersion::StreamExists, Some(live(3, 0, 0))).is_ok());
    // No such stream: not found, or a wrong version for an expectation
    // that names one.
    for meta in [None, Some(deleted(3)), Some(StreamMeta::default())] {
        let e = delete(&s, ExpectedVersion::Any, meta).expect_err("no stream");
        assert!(e.is_stream_not_found());
        let e = delete(&s, ExpectedVersion::NoStream, meta).expect_err("no stream");
        assert!(e.is_stream_not_found());
        let e = delete(&s, ExpectedVersion::exact(2), meta).expect_err("no stream");
        assert!(e.is_wrong_expected_version());
        let e = delete(&s, ExpectedVersion::StreamExists, meta).expect_err("no stream");
        assert!(e.is_wrong_expected_version());
    }
    let e = delete(&s, ExpectedVersion::exact(1), Some(live(3, 0, 0))).expect_err("refused");
    assert!(e.is_wrong_expected_version());
    let e = delete(&s, ExpectedVersion::NoStream, Some(live(3, 0, 0))).expect_err("refused");
    assert!(e.is_wrong_expected_version());
}

#[test]
fn truncations() {
    let s = stream();
    let m = live(5, 1, 0);
    assert_eq!(
        truncate(&s, Version(3), Some(m)).expect("truncated"),
        Some(live(5, 3, 0))
    );
    // Beyond the end: every event, the stream stays.
    assert_eq!(
        truncate(&s, Version(9), Some(m)).expect("truncated"),
        Some(live(5, 5, 0))
    );
    // At or below the floor: nothing changes.
    assert_eq!(truncate(&s, Version(1), Some(m)).expect("nothing"), None);
    assert_eq!(truncate(&s, Version(0), Some(m)).expect("nothing"), None);
    for meta in [None, Some(deleted(3))] {
        let e = truncate(&s, Version(1), meta).expect_err("no stream");
        assert!(e.is_stream_not_found());
    }
}

#[test]
fn append_places() {
    let planned = plan_append(None, 0, 2).expect("room");
    assert_eq!(planned.meta, live(2, 0, 0));
    assert_eq!(
        planned.result,
        AppendResult {
            first_version: Version(0),
            last_version: Version(1),
            first_position: Position(1),
            last_position: Position(2),
        }
    );
    let planned = plan_append(Some(live(3, 1, 0)), 7, 1).expect("room");
    assert_eq!(planned.meta, live(4, 1, 0));
    assert_eq!(planned.result.first_version, Version(3));
    assert_eq!(planned.result.first_position, Position(8));
    // A deleted stream is recreated, its numbering continuing.
    let planned = plan_append(Some(deleted(3)), 7, 2).expect("room");
    assert_eq!(planned.meta, live(5, 3, 3));
    assert_eq!(planned.result.first_version, Version(3));
    // Numbers at their end: damage, never a wrap.
    assert_eq!(
        plan_append(None, u64::MAX - 1, 2),
        Err(NoRoom::Positions {
            after: u64::MAX - 1,
            n: 2
        })
    );
    assert_eq!(
        plan_append(Some(live(u64::MAX, 0, 0)), 0, 1),
        Err(NoRoom::Versions {
            next: u64::MAX,
            n: 1
        })
    );
    assert!(plan_append(None, 0, 0).is_err());
    let e = NoRoom::Versions { next: 9, n: 1 }.error(&stream(), CorruptionAt::Unknown);
    assert!(e.is_corruption());
    assert!(e.to_string().contains("stream s"), "{e}");
}

#[test]
fn batch_places() {
    let planned = plan_batch([(None, 2), (Some(live(3, 0, 0)), 1)], 7).expect("room");
    assert_eq!(planned.len(), 2);
    assert_eq!(planned[0].result.first_position, Position(8));
    assert_eq!(planned[0].result.last_position, Position(9));
    assert_eq!(planned[1].result.first_position, Position(10));
    assert_eq!(planned[1].result.first_version, Version(3));
    assert_eq!(planned[1].meta, live(4, 0, 0));
    // The part with no room fails the batch, by its index.
    let full = plan_batch([(None, 1), (Some(live(u64::MAX, 0, 0)), 1)], 0);
    assert_eq!(
        full,
        Err((
            1,
            NoRoom::Versions {
                next: u64::MAX,
                n: 1
            }
        ))
    );
    let full = plan_batch([(None, 1), (None, 2)], u64::MAX - 2);
    assert_eq!(
        full,
        Err((
            1,
            NoRoom::Positions {
                after: u64::MAX - 1,
                n: 2
            }
        ))
    );
    assert_eq!(plan_batch([], 5), Ok(vec![]));
}

/// Versions at the very end of the range are compared without overflow:
/// a replay found at u64::MAX matches, and one event too many is no match
/// (not a panic).
#[test]
fn replayed_at_the_last_version_does_not_overflow() {
    let s = stream();
    let one = events(1);
    let found = stored(&s, &one, u64::MAX, 1);
    let result = replayed(u64::MAX, &one, &found).expect("the same event");
    assert_eq!(result.last_version, Version(u64::MAX));
    let two = events(2);
    let mut found = stored(&s, &two[..1], u64::MAX, 1);
    found.extend(stored(&s, &two[1..], u64::MAX, 2));
    assert!(replayed(u64::MAX, &two, &found).is_none());
}

/// A caller that gives fewer stream states than parts gets an error, never
/// a batch whose last parts went unchecked.
#[test]
fn check_batch_refuses_states_that_do_not_match_its_parts() {
    let batch = Batch::new(vec![])
        .part(stream(), ExpectedVersion::NoStream, events(1))
        .part(
            StreamId::new("t").expect("valid"),
            ExpectedVersion::NoStream,
            events(1),
        );
    let e = check_batch(&batch, &[None], || Ok(false)).expect_err("one state for two parts");
    assert!(
        e.to_string()
            .contains("1 stream states for a batch of 2 parts"),
        "{e}"
    );
}

/// A backend with narrower numbers refuses a place past its largest one,
/// by what runs out first.
#[test]
fn within_refuses_numbers_past_the_backends_largest() {
    let max = 100;
    let fits = plan_append(Some(live(98, 0, 0)), 98, 2).expect("room in u64");
    assert_eq!(fits.within(max), Ok(fits));
    let positions = plan_append(Some(live(5, 0, 0)), 99, 2).expect("room in u64");
    assert_eq!(
        positions.within(max),
        Err(NoRoom::Positions { after: 99, n: 2 })
    );
    // Versions 99 and 100 fit, but the stream's next version, 101, not.
    let versions = plan_append(Some(live(99, 0, 0)), 5, 2).expect("room in u64");
    assert_eq!(
        versions.within(max),
        Err(NoRoom::Versions { next: 99, n: 2 })
    );
}
