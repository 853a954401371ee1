//! `verify` in SQL: the same checks as the key-value stores' (gap-free
//! versions, stream rows agreeing with the events, the tag index agreeing
//! with the events' tags, nothing beyond the head), as set queries in one
//! read-only snapshot. Page checksums are PostgreSQL's own (M6): a damaged
//! page makes these queries fail, which `verify` reports as an error.

use annals_core::{Problem, Result, VerifyReport};
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use crate::schema::db;

/// Each query lists at most this many problems; the report counts the rest.
const LIST: i64 = 1000;

/// A check: a query whose rows are problems, and how to word one.
struct Check {
    sql: &'static str,
    describe: fn(&Row) -> Result<Problem>,
}

fn col<'a, T: FromSql<'a>>(row: &'a Row, at: usize) -> Result<T> {
    row.try_get(at).map_err(db("reading a verify row"))
}

const CHECKS: &[Check] = &[
    Check {
        // Versions of a stream must follow each other.
        sql: "SELECT stream_id, prev, version FROM (
                SELECT stream_id, version,
                       lag(version) OVER (PARTITION BY stream_id ORDER BY version) AS prev
                FROM annals_events) t
              WHERE prev IS NOT NULL AND version <> prev + 1 LIMIT $1",
        describe: |row| {
            let (stream, prev, version): (String, i64, i64) =
                (col(row, 0)?, col(row, 1)?, col(row, 2)?);
            Ok(Problem {
                location: format!("stream {stream:?} version {version}"),
                message: format!("versions {}..{version} are missing before it", prev + 1),
            })
        },
    },
    Check {
        // A stream row must agree with its events: none when deleted,
        // exactly floor..next_version otherwise.
        sql: "SELECT s.stream_id, s.next_version, s.floor, s.deleted,
                     count(e.version), min(e.version), max(e.version)
              FROM annals_streams s LEFT JOIN annals_events e ON e.stream_id = s.stream_id
              GROUP BY s.stream_id, s.next_version, s.floor, s.deleted
              HAVING (s.deleted AND count(e.version) > 0)
                  OR (NOT s.deleted AND (count(e.version) <> s.next_version - s.floor
                      OR (count(e.version) > 0 AND (min(e.version) <> s.floor
                          OR max(e.version) <> s.next_version - 1))))
              LIMIT $1",
        describe: |row| {
            let stream: String = col(row, 0)?;
            let (next, floor, deleted): (i64, i64, bool) =
                (col(row, 1)?, col(row, 2)?, col(row, 3)?);
            let (count, min, max): (i64, Option<i64>, Option<i64>) =
                (col(row, 4)?, col(row, 5)?, col(row, 6)?);
            let expected = if deleted {
                "it is deleted, so none".to_string()
            } else {
                format!("versions {floor}..{next}")
            };
            Ok(Problem {
                location: format!("stream {stream:?}"),
                message: format!(
                    "holds {count} events (versions {}..={}) but {expected}",
                    min.map_or("-".into(), |v| v.to_string()),
                    max.map_or("-".into(), |v| v.to_string())
                ),
            })
        },
    },
    Check {
        sql: "SELECT e.position, e.stream_id FROM annals_events e
              WHERE NOT EXISTS (SELECT 1 FROM annals_streams s WHERE s.stream_id = e.stream_id)
              LIMIT $1",
        describe: |row| {
            let (position, stream): (i64, String) = (col(row, 0)?, col(row, 1)?);
            Ok(Problem {
                location: format!("event at position {position}"),
                message: format!("stream {stream:?} has no row in annals_streams"),
            })
        },
    },
    Check {
        // Every tag an event carries is in the tag index …
        sql: "SELECT e.position, t.tag FROM annals_events e, unnest(e.tags) AS t(tag)
              WHERE NOT EXISTS (SELECT 1 FROM annals_event_tags g
                                WHERE g.tag = t.tag AND g.position = e.position)
              LIMIT $1",
        describe: |row| {
            let (position, tag): (i64, String) = (col(row, 0)?, col(row, 1)?);
            Ok(Problem {
                location: format!("event at position {position}"),
                message: format!("tag {tag:?} index entry is missing"),
            })
        },
    },
    Check {
        // … and every tag index entry points at an event carrying the tag.
        sql: "SELECT g.tag, g.position FROM annals_event_tags g
              WHERE NOT EXISTS (SELECT 1 FROM annals_events e
                                WHERE e.position = g.position AND g.tag = ANY(e.tags))
              LIMIT $1",
        describe: |row| {
            let (tag, position): (String, i64) = (col(row, 0)?, col(row, 1)?);
            Ok(Problem {
                location: format!("tag index entry of {tag:?} at position {position}"),
                message: "points at no event carrying that tag".into(),
            })
        },
    },
    Check {
        sql: "SELECT e.position, h.head FROM annals_events e, annals_head h
              WHERE h.id = 1 AND e.position > h.head ORDER BY e.position LIMIT $1",
        describe: |row| {
            let (position, head): (i64, i64) = (col(row, 0)?, col(row, 1)?);
            Ok(Problem {
                location: format!("event at position {position}"),
                message: format!("is beyond the store's head (position {head})"),
            })
        },
    },
];

/// Runs every check in one read-only snapshot.
pub async fn verify(client: &mut deadpool_postgres::Object) -> Result<VerifyReport> {
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(db("starting verify's snapshot"))?;
    let counts = tx
        .query_one(
            "SELECT (SELECT count(*) FROM annals_events), (SELECT count(*) FROM annals_streams),
                    (SELECT count(*) FROM annals_event_tags), (SELECT count(*) FROM annals_aux)",
            &[],
        )
        .await
        .map_err(db("counting the store's rows"))?;
    let count = |at| -> Result<u64> { Ok(u64::try_from(col::<i64>(&counts, at)?).unwrap_or(0)) };
    let mut report = VerifyReport {
        events: count(0)?,
        streams: count(1)?,
        ..VerifyReport::default()
    };
    report.records = report.events + report.streams + count(2)? + count(3)? + 1;
    for check in CHECKS {
        let rows = tx
            .query(check.sql, &[&LIST])
            .await
            .map_err(db("running a verify query"))?;
        for row in &rows {
            report.add((check.describe)(row)?);
        }
    }
    tx.commit().await.map_err(db("ending verify's snapshot"))?;
    Ok(report)
}
