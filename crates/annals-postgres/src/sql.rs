//! The SQL of reads and checks, shared by the readers (on pooled
//! connections) and the writer (inside its transaction).

use annals_core::{
    CorruptionAt, Direction, Error, Position, Query, RecordedEvent, Result, StreamId, Timestamp,
    Version,
};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

use crate::schema::db;
pub use annals_core::StreamMeta;

/// The columns of an event, in the order [`event_from`] reads them.
const EVENT_COLUMNS: &str = "e.position, e.stream_id, e.version, e.recorded_at, e.event_id, \
                             e.event_type, e.data, e.metadata, e.tags";

/// The largest version or position a bigint column holds: the writer
/// hands out none above it ([`annals_core::rules::Planned::within`]).
pub const MAX: u64 = i64::MAX.unsigned_abs();

/// A u64 of the contract as a bigint; values above [`MAX`] (which the store
/// never hands out) are clamped, which keeps every range the same.
pub fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A bigint read back as a u64; a negative one is damage.
pub fn unbig(n: i64, what: &str) -> Result<u64> {
    u64::try_from(n)
        .map_err(|_| Error::corruption(CorruptionAt::Unknown, format!("{what} is negative ({n})")))
}

/// Sorts a page in `direction` by `key`.
fn sort_by(events: &mut [RecordedEvent], direction: Direction, key: fn(&RecordedEvent) -> u64) {
    match direction {
        Direction::Forward => events.sort_by_key(key),
        Direction::Backward => events.sort_by_key(|e| std::cmp::Reverse(key(e))),
    }
}

/// Column `at` of `row`; a value that does not decode (a NULL, a wrong
/// type: a row written behind the store's back) is [`Error::Corruption`]
/// naming `what`, never a panic.
pub fn col<'a, T: FromSql<'a>>(row: &'a Row, at: usize, what: &str) -> Result<T> {
    col_of(row, at, what, CorruptionAt::Unknown)
}

/// [`col`] of a row whose place in the store is known (`place`).
fn col_of<'a, T: FromSql<'a>>(
    row: &'a Row,
    at: usize,
    what: &str,
    place: CorruptionAt,
) -> Result<T> {
    row.try_get(at).map_err(|e| {
        let why = std::error::Error::source(&e).map_or(String::new(), |s| format!(" ({s})"));
        Error::corruption(place, format!("{what} does not decode: {e}{why}"))
    })
}

/// A bigint column read back as a u64 (see [`unbig`]).
pub fn col_u64(row: &Row, at: usize, what: &str) -> Result<u64> {
    unbig(col(row, at, what)?, what)
}

/// The event in `row`, from column `at` on.
fn event_from(row: &Row, at: usize) -> Result<RecordedEvent> {
    let position = col_u64(row, at, "an event's position")?;
    let place = || CorruptionAt::Position(Position(position));
    let field = |name: &str| format!("event at position {position}: its {name}");
    let get_u64 = |i: usize, name: &str| -> Result<u64> {
        let n: i64 = col_of(row, at + i, &field(name), place())?;
        u64::try_from(n)
            .map_err(|_| Error::corruption(place(), format!("{} is negative ({n})", field(name))))
    };
    let stream: String = col_of(row, at + 1, &field("stream id"), place())?;
    let stream_id = StreamId::new(stream)
        .map_err(|e| Error::corruption(place(), format!("event at position {position}: {e}")))?;
    Ok(RecordedEvent {
        stream_id,
        stream_version: Version(get_u64(2, "version")?),
        position: Position(position),
        recorded_at: Timestamp(get_u64(3, "recorded_at")?),
        event_id: col_of(row, at + 4, &field("event id"), place())?,
        event_type: col_of(row, at + 5, &field("type"), place())?,
        data: col_of(row, at + 6, &field("data"), place())?,
        metadata: col_of(row, at + 7, &field("metadata"), place())?,
        tags: col_of(row, at + 8, &field("tags"), place())?,
    })
}

/// A page's rows: the head in column 0, then an event (absent when the
/// page is empty).
fn page_from(rows: &[Row]) -> Result<(Position, Vec<RecordedEvent>)> {
    let head = match rows.first() {
        Some(row) => Position(col_u64(row, 0, "the head")?),
        None => Position(0),
    };
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        if col::<Option<i64>>(row, 1, "an event's position")?.is_some() {
            events.push(event_from(row, 1)?);
        }
    }
    Ok((head, events))
}

/// The parameters of a statement.
pub type Params = Vec<Box<dyn ToSql + Sync + Send>>;

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
/// (one statement, prepared once per connection). Every part is an index
/// range scan (\[R7\]): the log by position, or per distinct query item one
/// walk of the tag index (its first tag) or of the type index (per type),
/// each stopping at `count`.
pub async fn scan_log(
    client: &impl GenericClient,
    from: Position,
    count: usize,
    direction: Direction,
    query: Option<&Query>,
) -> Result<(Position, Vec<RecordedEvent>)> {
    let (sql, params) = scan_log_sql(from, count, direction, query);
    let rows = query_prepared(client, &sql, &params, "reading the log").await?;
    let (head, mut events) = page_from(&rows)?;
    // The statement has no outer ORDER BY (a sort the planner would add
    // over the lateral walk, which is ordered already): make sure here,
    // at O(n) for the ordered rows it gets.
    sort_by(&mut events, direction, |e| e.position.0);
    Ok((head, events))
}

/// Runs `sql` as a statement prepared once per connection (one round trip
/// after the first time).
pub async fn query_prepared(
    client: &impl GenericClient,
    sql: &str,
    params: &Params,
    what: &str,
) -> Result<Vec<Row>> {
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(db("preparing a statement"))?;
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
    client.query(&statement, &refs).await.map_err(db(what))
}

/// The SQL of a `read_all` page and its parameters (public so a
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
    let (cmp, ord) = bounds(direction);
    let inner = match query {
        Some(q) if !q.matches_everything() => {
            let positions = matching_positions(q, &from, &limit, direction, &mut params);
            format!(
                "SELECT {EVENT_COLUMNS} FROM ({positions}) p \
                 JOIN annals_events e ON e.position = p.position ORDER BY p.position {ord}"
            )
        }
        _ => format!(
            "SELECT {EVENT_COLUMNS} FROM annals_events e WHERE e.position {cmp} {from} \
             ORDER BY e.position {ord} LIMIT {limit}"
        ),
    };
    let sql = format!(
        "SELECT h.head, e.* FROM annals_head h LEFT JOIN LATERAL ({inner}) e ON true \
         WHERE h.id = 1"
    );
    (sql, params)
}

/// The comparison and order of a walk in `direction`.
fn bounds(direction: Direction) -> (&'static str, &'static str) {
    match direction {
        Direction::Forward => (">=", order(direction)),
        Direction::Backward => ("<=", order(direction)),
    }
}

/// A `SELECT position …` of the events matching `query` (which does not
/// match everything) from `$from` in `direction`, at most `$limit`, in
/// order. Repeated items, types and tags are walked once, so the cost is
/// bounded by the page and the distinct index ranges.
fn matching_positions(
    query: &Query,
    from: &str,
    limit: &str,
    direction: Direction,
    params: &mut Params,
) -> String {
    let (cmp, ord) = bounds(direction);
    let mut items: Vec<(Vec<String>, Vec<String>)> = query
        .items
        .iter()
        .map(|item| {
            let mut types = item.types.clone();
            types.sort();
            types.dedup();
            let mut tags = item.tags.clone();
            tags.sort();
            tags.dedup();
            (types, tags)
        })
        .collect();
    items.sort();
    items.dedup();
    let mut parts = Vec::new();
    let mut lone_types: Vec<String> = Vec::new();
    for (types, tags) in items {
        let Some((first, rest)) = tags.split_first() else {
            lone_types.extend(types);
            continue;
        };
        let tag = param(params, first.clone());
        let mut filter = String::new();
        if !rest.is_empty() {
            let rest = param(params, rest.to_vec());
            filter.push_str(&format!(" AND e.tags @> {rest}::text[]"));
        }
        if !types.is_empty() {
            let types = param(params, types);
            filter.push_str(&format!(" AND e.event_type = ANY({types}::text[])"));
        }
        // Without a filter the tag index alone answers (an index-only scan).
        let join = if filter.is_empty() {
            ""
        } else {
            " JOIN annals_events e ON e.position = t.position"
        };
        parts.push(format!(
            "(SELECT t.position FROM annals_event_tags t{join} \
             WHERE t.tag = {tag} AND t.position {cmp} {from}{filter} \
             ORDER BY t.position {ord} LIMIT {limit})"
        ));
    }
    lone_types.sort();
    lone_types.dedup();
    for t in lone_types {
        let t = param(params, t);
        parts.push(format!(
            "(SELECT e.position FROM annals_events e \
             WHERE e.event_type = {t} AND e.position {cmp} {from} \
             ORDER BY e.position {ord} LIMIT {limit})"
        ));
    }
    match parts.as_slice() {
        [one] => one.clone(),
        _ => format!(
            "SELECT u.position FROM ({}) u ORDER BY u.position {ord} LIMIT {limit}",
            parts.join(" UNION ")
        ),
    }
}

/// \[A8\]: whether an event matching `query` lies at or after `from`.
pub async fn any_match_from(
    client: &impl GenericClient,
    from: Position,
    query: &Query,
) -> Result<bool> {
    let mut params: Params = Vec::new();
    let from_param = param(&mut params, big(from.0));
    let sql = if query.matches_everything() {
        format!("SELECT EXISTS (SELECT 1 FROM annals_events e WHERE e.position >= {from_param})")
    } else {
        let limit = param(&mut params, 1i64);
        let positions =
            matching_positions(query, &from_param, &limit, Direction::Forward, &mut params);
        format!("SELECT EXISTS ({positions})")
    };
    let rows = query_prepared(client, &sql, &params, "checking a condition").await?;
    match rows.first() {
        Some(row) => col(row, 0, "a condition check"),
        None => Ok(false),
    }
}

/// The metadata of `stream`.
pub async fn stream_meta(
    client: &impl GenericClient,
    stream: &StreamId,
) -> Result<Option<StreamMeta>> {
    let params: Params = vec![Box::new(stream.as_str().to_string())];
    let rows = query_prepared(
        client,
        STREAM_META_SQL,
        &params,
        "reading a stream's metadata",
    )
    .await?;
    rows.first().map(|r| meta_from(r, 0)).transpose()
}

/// The statement of [`stream_meta`]; its one parameter is the stream id.
pub const STREAM_META_SQL: &str =
    "SELECT next_version, floor, created, deleted FROM annals_streams WHERE stream_id = $1";

/// The stream metadata in `row`, from column `at` on.
pub fn meta_from(row: &Row, at: usize) -> Result<StreamMeta> {
    Ok(StreamMeta {
        next_version: col_u64(row, at, "a stream's next version")?,
        floor: col_u64(row, at + 1, "a stream's floor")?,
        created: col_u64(row, at + 2, "a stream's created version")?,
        deleted: col(row, at + 3, "a stream's deleted flag")?,
    })
}

/// The SQL of [`read_stream`]: its parameters are the stream, `from` and
/// the count. One walk of the `(stream_id, version)` index (\[R7\]).
pub fn read_stream_sql(direction: Direction) -> String {
    let (cmp, ord) = bounds(direction);
    format!(
        "SELECT h.head, s.deleted, {EVENT_COLUMNS} FROM annals_head h \
         LEFT JOIN annals_streams s ON s.stream_id = $1 \
         LEFT JOIN LATERAL (SELECT * FROM annals_events e \
             WHERE e.stream_id = $1 AND e.version {cmp} $2 ORDER BY e.version {ord} LIMIT $3) e \
             ON NOT s.deleted \
         WHERE h.id = 1"
    )
}

/// Reads a stream (\[R1\], \[R2\]) and the head, in one statement.
pub async fn read_stream(
    client: &impl GenericClient,
    stream: &StreamId,
    from: Version,
    count: usize,
    direction: Direction,
) -> Result<(Position, Vec<RecordedEvent>)> {
    let params: Params = vec![
        Box::new(stream.as_str().to_string()),
        Box::new(big(from.0)),
        Box::new(i64::try_from(count).unwrap_or(i64::MAX)),
    ];
    let rows = query_prepared(
        client,
        &read_stream_sql(direction),
        &params,
        "reading a stream",
    )
    .await?;
    let deleted = match rows.first() {
        Some(row) => col::<Option<bool>>(row, 1, "a stream's deleted flag")?,
        None => None,
    };
    if deleted != Some(false) {
        return Err(Error::StreamNotFound(stream.clone()));
    }
    let head = match rows.first() {
        Some(row) => Position(col_u64(row, 0, "the head")?),
        None => Position(0),
    };
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        if col::<Option<i64>>(row, 2, "an event's position")?.is_some() {
            events.push(event_from(row, 2)?);
        }
    }
    sort_by(&mut events, direction, |e| e.stream_version.0);
    Ok((head, events))
}
