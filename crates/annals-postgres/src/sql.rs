//! The SQL of reads and checks, shared by the readers (on pooled
//! connections) and the writer (inside its transaction).

use annals_core::{
    CorruptionAt, Direction, Error, Position, Query, RecordedEvent, Result, StreamId, Timestamp,
    Version,
};
use tokio_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::schema::db;
pub use annals_core::kv::layout::StreamMeta;

/// The columns of an event, in the order [`event_from`] reads them.
const EVENT_COLUMNS: &str = "e.position, e.stream_id, e.version, e.recorded_at, e.event_id, \
                             e.event_type, e.data, e.metadata, e.tags";

/// A u64 of the contract as a bigint; values above `i64::MAX` (which the
/// store never hands out) are clamped, which keeps every range the same.
pub fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A bigint read back as a u64; a negative one is damage.
pub fn unbig(n: i64, what: &str) -> Result<u64> {
    u64::try_from(n)
        .map_err(|_| Error::corruption(CorruptionAt::Unknown, format!("{what} is negative ({n})")))
}

/// The event in `row`, from column `at` on.
fn event_from(row: &Row, at: usize) -> Result<RecordedEvent> {
    let position = unbig(row.get(at), "an event's position")?;
    let stream: String = row.get(at + 1);
    let stream_id = StreamId::new(stream).map_err(|e| {
        Error::corruption(
            CorruptionAt::Position(Position(position)),
            format!("event at position {position}: {e}"),
        )
    })?;
    Ok(RecordedEvent {
        stream_id,
        stream_version: Version(unbig(row.get(at + 2), "an event's version")?),
        position: Position(position),
        recorded_at: Timestamp(unbig(row.get(at + 3), "an event's recorded_at")?),
        event_id: row.get(at + 4),
        event_type: row.get(at + 5),
        data: row.get(at + 6),
        metadata: row.get(at + 7),
        tags: row.get(at + 8),
    })
}

/// A page's rows: the head in column 0, then an event (absent when the
/// page is empty).
fn page_from(rows: &[Row]) -> Result<(Position, Vec<RecordedEvent>)> {
    let head = match rows.first() {
        Some(row) => Position(unbig(row.get(0), "the head")?),
        None => Position(0),
    };
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        if row.get::<_, Option<i64>>(1).is_some() {
            events.push(event_from(row, 1)?);
        }
    }
    Ok((head, events))
}

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

fn param(params: &mut Params, value: impl ToSql + Sync + Send + 'static) -> String {
    params.push(Box::new(value));
    format!("${}", params.len())
}

fn order(direction: Direction) -> &'static str {
    match direction {
        Direction::Forward => "ASC",
        Direction::Backward => "DESC",
    }
}

/// Events of the log (matching `query`, if any) from `from` in
/// `direction`, at most `count`, and the head, all from one snapshot
/// (one statement). Every part is an index range scan ([R7]): the log by
/// position, or per query item one walk of the tag index (its first tag)
/// or of the type index (per type), each stopping at `count`.
pub async fn scan_log(
    client: &impl GenericClient,
    from: Position,
    count: usize,
    direction: Direction,
    query: Option<&Query>,
) -> Result<(Position, Vec<RecordedEvent>)> {
    let (sql, params) = scan_log_sql(from, count, direction, query);
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
    let rows = client
        .query(&sql, &refs)
        .await
        .map_err(db("reading the log"))?;
    page_from(&rows)
}

/// The SQL of [`scan_log`] and its parameters (public to the crate so a
/// test can EXPLAIN it).
pub fn scan_log_sql(
    from: Position,
    count: usize,
    direction: Direction,
    query: Option<&Query>,
) -> (String, Params) {
    let mut params: Params = Vec::new();
    let from = param(&mut params, big(from.0));
    let limit = param(&mut params, i64::try_from(count).unwrap_or(i64::MAX));
    let (cmp, ord) = match direction {
        Direction::Forward => (">=", order(direction)),
        Direction::Backward => ("<=", order(direction)),
    };
    let inner = match query {
        Some(q) if !q.matches_everything() => {
            let mut parts = Vec::new();
            for item in &q.items {
                let types = (!item.types.is_empty()).then(|| item.types.clone());
                if let Some((first, rest)) = item.tags.split_first() {
                    let tag = param(&mut params, first.clone());
                    let mut filter = String::new();
                    if !rest.is_empty() {
                        let rest = param(&mut params, rest.to_vec());
                        filter.push_str(&format!(" AND e.tags @> {rest}::text[]"));
                    }
                    if let Some(types) = types {
                        let types = param(&mut params, types);
                        filter.push_str(&format!(" AND e.event_type = ANY({types}::text[])"));
                    }
                    parts.push(format!(
                        "(SELECT t.position FROM annals_event_tags t \
                         JOIN annals_events e ON e.position = t.position \
                         WHERE t.tag = {tag} AND t.position {cmp} {from}{filter} \
                         ORDER BY t.position {ord} LIMIT {limit})"
                    ));
                } else {
                    for t in item.types.iter() {
                        let t = param(&mut params, t.clone());
                        parts.push(format!(
                            "(SELECT e.position FROM annals_events e \
                             WHERE e.event_type = {t} AND e.position {cmp} {from} \
                             ORDER BY e.position {ord} LIMIT {limit})"
                        ));
                    }
                }
            }
            format!(
                "SELECT {EVENT_COLUMNS} FROM annals_events e WHERE e.position IN \
                 (SELECT DISTINCT p.position FROM ({}) p ORDER BY p.position {ord} LIMIT {limit}) \
                 ORDER BY e.position {ord}",
                parts.join(" UNION ALL ")
            )
        }
        _ => format!(
            "SELECT {EVENT_COLUMNS} FROM annals_events e WHERE e.position {cmp} {from} \
             ORDER BY e.position {ord} LIMIT {limit}"
        ),
    };
    let sql = format!(
        "SELECT h.head, e.* FROM annals_head h LEFT JOIN LATERAL ({inner}) e ON true \
         WHERE h.id = 1 ORDER BY e.position {ord}"
    );
    (sql, params)
}

/// The metadata of `stream`.
pub async fn stream_meta(
    client: &impl GenericClient,
    stream: &StreamId,
) -> Result<Option<StreamMeta>> {
    let row = client
        .query_opt(STREAM_META_SQL, &[&stream.as_str()])
        .await
        .map_err(db("reading a stream's metadata"))?;
    row.map(|r| meta_from(&r, 0)).transpose()
}

/// The statement of [`stream_meta`]; its one parameter is the stream id.
pub const STREAM_META_SQL: &str =
    "SELECT next_version, floor, created, deleted FROM annals_streams WHERE stream_id = $1";

/// The stream metadata in `row`, from column `at` on.
pub fn meta_from(row: &Row, at: usize) -> Result<StreamMeta> {
    Ok(StreamMeta {
        next_version: unbig(row.get(at), "a stream's next version")?,
        floor: unbig(row.get(at + 1), "a stream's floor")?,
        created: unbig(row.get(at + 2), "a stream's created version")?,
        deleted: row.get(at + 3),
    })
}

/// The SQL of [`read_stream`]: its parameters are the stream, `from` and
/// the count. One walk of the `(stream_id, version)` index ([R7]).
pub fn read_stream_sql(direction: Direction) -> String {
    let (cmp, ord) = match direction {
        Direction::Forward => (">=", order(direction)),
        Direction::Backward => ("<=", order(direction)),
    };
    format!(
        "SELECT h.head, s.deleted, {EVENT_COLUMNS} FROM annals_head h \
         LEFT JOIN annals_streams s ON s.stream_id = $1 \
         LEFT JOIN LATERAL (SELECT * FROM annals_events e \
             WHERE e.stream_id = $1 AND e.version {cmp} $2 ORDER BY e.version {ord} LIMIT $3) e \
             ON NOT s.deleted \
         WHERE h.id = 1 ORDER BY e.version {ord}"
    )
}

/// Reads a stream ([R1], [R2]) and the head, in one statement.
pub async fn read_stream(
    client: &impl GenericClient,
    stream: &StreamId,
    from: Version,
    count: usize,
    direction: Direction,
) -> Result<(Position, Vec<RecordedEvent>)> {
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    let rows = client
        .query(
            &read_stream_sql(direction),
            &[&stream.as_str(), &big(from.0), &count],
        )
        .await
        .map_err(db("reading a stream"))?;
    let exists = rows
        .first()
        .is_some_and(|r| r.get::<_, Option<bool>>(1) == Some(false));
    if !exists {
        return Err(Error::StreamNotFound(stream.clone()));
    }
    let head = match rows.first() {
        Some(row) => Position(unbig(row.get(0), "the head")?),
        None => Position(0),
    };
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.get::<_, Option<i64>>(2).is_some() {
            events.push(event_from(row, 2)?);
        }
    }
    Ok((head, events))
}
