//! The tables of a store and their versioned migrations.
//!
//! | table          | what                                                        |
//! |----------------|-------------------------------------------------------------|
//! | `annals_head`  | one row: last position, reserved positions, last recorded_at; every write locks it, which orders commits (\[R4\]) |
//! | `annals_live`  | UNLOGGED, one row: emptied by PostgreSQL after a crash, which tells the next writer to skip the positions a `Relaxed` store may have lost (\[D5\]) |
//! | `annals_streams` | per stream: next version, truncation floor, first version since (re)creation, deleted |
//! | `annals_events`  | the log by position, with `(stream_id, version)` and `(event_type, position)` indexes |
//! | `annals_event_tags` | `(tag, position)`: the tag index |
//! | `annals_aux`   | the aux key-value space                                     |
//!
//! and one function, `annals_guard`: the writer's one-round-trip path
//! (see [`crate::writer`]) calls it first in its transaction; it locks the
//! head by writing the new head row and raises `AN001` unless the head row
//! and the named streams were as the writer last left them (which rolls
//! the transaction back), then sends the round's `NOTIFY`.

use annals_core::{CorruptionAt, Error, Field, InvalidReason, Result};
use tokio_postgres::Client;

/// The migrations, in order: migration `i + 1` is `MIGRATIONS[i]`. A
/// released migration is never edited; changes come as new ones.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE annals_head (
    id smallint PRIMARY KEY CHECK (id = 1),
    head bigint NOT NULL,
    reserved bigint NOT NULL,
    last_recorded_at bigint NOT NULL
);
INSERT INTO annals_head VALUES (1, 0, 0, 0);
CREATE UNLOGGED TABLE annals_live (id smallint PRIMARY KEY);
CREATE TABLE annals_streams (
    stream_id text COLLATE "C" PRIMARY KEY,
    next_version bigint NOT NULL,
    floor bigint NOT NULL,
    created bigint NOT NULL,
    deleted boolean NOT NULL
);
CREATE TABLE annals_events (
    position bigint PRIMARY KEY,
    stream_id text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    event_type text COLLATE "C" NOT NULL,
    tags text[] NOT NULL,
    event_id uuid NOT NULL,
    data bytea NOT NULL,
    metadata bytea NOT NULL,
    recorded_at bigint NOT NULL,
    UNIQUE (stream_id, version)
);
CREATE INDEX annals_events_type ON annals_events (event_type, position);
CREATE TABLE annals_event_tags (
    tag text COLLATE "C" NOT NULL,
    position bigint NOT NULL,
    PRIMARY KEY (tag, position)
);
CREATE TABLE annals_aux (
    key bytea PRIMARY KEY,
    value bytea NOT NULL
);
"#,
    r#"
CREATE FUNCTION annals_guard(
    g_sync text, g_lock_timeout text,
    g_head bigint, g_reserved bigint, g_recorded_at bigint,
    g_new_head bigint, g_new_reserved bigint, g_new_recorded_at bigint,
    g_streams text[], g_next_versions bigint[], g_floors bigint[], g_created bigint[],
    g_deleted boolean[]
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- The transaction's settings, as the writer's slow way sets them with
    -- its BEGIN: a durable commit keeps a server's remote_apply.
    PERFORM set_config('synchronous_commit',
        CASE WHEN g_sync = 'on' AND current_setting('synchronous_commit') = 'remote_apply'
            THEN 'remote_apply' ELSE g_sync END, true);
    PERFORM set_config('lock_timeout', g_lock_timeout, true);
    -- The head row locked by its update: in READ COMMITTED, an UPDATE
    -- that waited for another writer's lock checks its WHERE again on the
    -- row that writer left, and so finds nothing if it moved.
    UPDATE annals_head
        SET head = g_new_head, reserved = g_new_reserved, last_recorded_at = g_new_recorded_at
        WHERE id = 1 AND head = g_head AND reserved = g_reserved
            AND last_recorded_at = g_recorded_at;
    IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM annals_live) THEN
        RAISE EXCEPTION 'annals: the head moved since this writer last wrote'
            USING ERRCODE = 'AN001';
    END IF;
    -- A statement of its own: it sees every commit before the lock.
    IF EXISTS (
        SELECT 1
        FROM unnest(g_streams, g_next_versions, g_floors, g_created, g_deleted)
            AS x(stream_id, next_version, floor, created, deleted)
        LEFT JOIN annals_streams s ON s.stream_id = x.stream_id COLLATE "C"
        WHERE (s.next_version, s.floor, s.created, s.deleted)
            IS DISTINCT FROM (x.next_version, x.floor, x.created, x.deleted)
    ) THEN
        RAISE EXCEPTION 'annals: a stream changed since this writer last wrote'
            USING ERRCODE = 'AN001';
    END IF;
    -- A hint for the stores that LISTEN (they read the head from the table).
    IF g_new_head > g_head THEN
        PERFORM pg_notify(current_schema() || '_annals_head', g_new_head::text);
    END IF;
END
$$;
"#,
];

/// Checks a schema name: 1 to 63 bytes of `a-z`, `0-9` and `_`, not
/// starting with a digit (so it never needs quoting and cannot inject SQL).
pub fn validate_schema(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(Error::malformed(
            Field::StoreOption,
            format!(
                "schema name {name:?} is not 1 to 63 characters of a-z, 0-9 and _ (not starting with a digit)"
            ),
        ))
    }
}

/// Creates the schema when missing (unless `create` is false: then a
/// schema without a store is an error and nothing is created) and applies
/// the migrations it lacks, under an advisory lock so that stores opening
/// at once migrate once.
pub async fn migrate(client: &mut Client, schema: &str, create: bool) -> Result<()> {
    let tx = client
        .transaction()
        .await
        .map_err(db("starting a migration"))?;
    tx.batch_execute(&format!(
        "SELECT pg_advisory_xact_lock(hashtext('annals migrate {schema}'))"
    ))
    .await
    .map_err(db("locking the schema for migration"))?;
    if !create {
        require_store(&tx, schema, "option create=false").await?;
    }
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         SET LOCAL search_path TO {schema};
         CREATE TABLE IF NOT EXISTS annals_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(db("creating the schema"))?;
    let row = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM annals_migrations",
            &[],
        )
        .await
        .map_err(db("reading the schema version"))?;
    let applied = known_version(schema, crate::sql::col(&row, 0, "the schema version")?)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.batch_execute(sql)
            .await
            .map_err(db(&format!("applying migration {}", i + 1)))?;
        tx.execute(
            "INSERT INTO annals_migrations (version) VALUES ($1)",
            &[&(i as i32 + 1)],
        )
        .await
        .map_err(db("recording a migration"))?;
    }
    tx.commit().await.map_err(db("committing the migration"))
}

/// The schema version `applied` as a count of migrations, if this build
/// knows it.
fn known_version(schema: &str, applied: i32) -> Result<usize> {
    let known = MIGRATIONS.len();
    let count = usize::try_from(applied).map_err(|_| {
        Error::corruption(
            CorruptionAt::Unknown,
            format!("schema {schema} is at version {applied}, below 0"),
        )
    })?;
    if count > known {
        return Err(Error::invalid(
            InvalidReason::Conflict(Field::StoreOption),
            format!(
                "schema {schema} is at version {applied}, newer than this build of annals knows ({known})"
            ),
        ));
    }
    Ok(count)
}

/// [`Error::InvalidInput`] (an unknown store URL) unless `schema` holds a
/// store; `why` says why none is created.
async fn require_store(
    client: &(impl tokio_postgres::GenericClient + Sync),
    schema: &str,
    why: &str,
) -> Result<()> {
    let row = client
        .query_one(
            "SELECT to_regclass(quote_ident($1) || '.annals_migrations') IS NOT NULL",
            &[&schema],
        )
        .await
        .map_err(db("looking for the store"))?;
    if crate::sql::col::<bool>(&row, 0, "whether the store exists")? {
        Ok(())
    } else {
        Err(Error::invalid(
            InvalidReason::Unknown(Field::StoreUrl),
            format!("no annals store in schema {schema} of this database ({why})"),
        ))
    }
}

/// Checks, without writing anything, that `schema` holds a store at the
/// version this build writes: what a read-only store (on a hot standby,
/// where nothing can be created or migrated) opens.
pub async fn check(client: &Client, schema: &str) -> Result<()> {
    require_store(client, schema, "a read-only store creates none").await?;
    let row = client
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {schema}.annals_migrations"),
            &[],
        )
        .await
        .map_err(db("reading the schema version"))?;
    let applied = known_version(schema, crate::sql::col(&row, 0, "the schema version")?)?;
    if applied < MIGRATIONS.len() {
        return Err(Error::invalid(
            InvalidReason::Conflict(Field::StoreOption),
            format!(
                "schema {schema} is at version {applied}, older than this build of annals \
                 ({}): open it once read-write (on the primary) to migrate it",
                MIGRATIONS.len()
            ),
        ));
    }
    Ok(())
}

/// Maps a driver error to an [`Error`] saying what annals was doing:
/// [`Error::Unavailable`] when the server could not be reached or is going
/// away ([`connection_lost`]), else [`Error::Backend`].
pub fn db(what: &str) -> impl FnOnce(tokio_postgres::Error) -> Error + '_ {
    move |e| {
        if connection_lost(&e) {
            Error::unavailable(what.to_string(), e)
        } else {
            Error::backend(what.to_string(), e)
        }
    }
}

/// Whether `e` says that no server could serve the statement — the
/// connection failed, was lost, or the server is shutting down, starting up
/// or refused a read-write session — rather than that a server refused the
/// statement itself.
pub fn connection_lost(e: &tokio_postgres::Error) -> bool {
    if let Some(db) = e.as_db_error() {
        // 08: connection exception; 57P01-57P03: admin shutdown, crash
        // shutdown, cannot connect now (starting up, in recovery).
        let code = db.code().code();
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03");
    }
    // Not a server's answer: the connection closed, or an I/O error (which
    // includes a failed connect, a timed-out one, and a server that does
    // not allow writes under target_session_attrs=read-write).
    e.is_closed()
        || std::error::Error::source(e)
            .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some())
}
