//! The throwaway PostgreSQL cluster of this test process
//! ([`annals_postgres::cluster`]), started on first use, and fresh schemas
//! in it.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use annals_core::{Result, StoreConfig};
use annals_postgres::cluster::{ClusterOptions, TempCluster};
use annals_postgres::{PostgresOptions, PostgresStore};

pub use annals_postgres::cluster::unavailable;

static CLUSTER: OnceLock<TempCluster> = OnceLock::new();

/// The cluster of this test process, started on first use. fsync is off to
/// keep the suite fast (PostgreSQL's own durability is not what it tests);
/// `ANNALS_PG_FSYNC=on` for measurements.
pub fn cluster() -> &'static TempCluster {
    CLUSTER.get_or_init(|| {
        let options = ClusterOptions {
            fsync: std::env::var("ANNALS_PG_FSYNC").is_ok_and(|v| v == "on"),
            ..ClusterOptions::default()
        };
        TempCluster::start(options).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// Stops the cluster if it was started.
pub fn stop_cluster() {
    if let Some(c) = CLUSTER.get() {
        c.stop().unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A fresh schema name, unique in this process.
pub fn fresh_schema() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("case_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Opens a store in `schema` of the cluster.
pub async fn open(schema: &str, config: StoreConfig) -> Result<PostgresStore> {
    let options = PostgresOptions {
        config,
        schema: schema.to_string(),
        pool_size: 8,
        ..PostgresOptions::default()
    };
    annals_postgres::open(&cluster().conninfo(), options).await
}

/// The runtime a test runs on: four workers, so that a test's tasks race.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a runtime: {e}"))
}

/// Whether the tests must fail rather than be ignored without a server.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether every `what` must be reported ignored: no server binaries here.
/// Under CI they are required: then the exit code of a failed run.
pub fn without_server(what: &str) -> Result<bool, std::process::ExitCode> {
    let Some(why) = unavailable() else {
        return Ok(false);
    };
    if in_ci() {
        eprintln!("error: CI=true but the PostgreSQL tests cannot run: {why}");
        return Err(std::process::ExitCode::FAILURE);
    }
    eprintln!("note: every {what} is ignored: {why}");
    Ok(true)
}

/// A connection to the cluster's `postgres` database as `user` (with
/// `search_path` set to `schema` when given), for SQL behind the store's back.
pub async fn connect_as(user: &str, schema: Option<&str>) -> tokio_postgres::Client {
    let conninfo = cluster()
        .conninfo()
        .replace("user=annals", &format!("user={user}"));
    let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting as {user}: {e}"));
    tokio::spawn(connection);
    if let Some(schema) = schema {
        client
            .batch_execute(&format!("SET search_path TO {schema}"))
            .await
            .unwrap_or_else(|e| panic!("search_path: {e}"));
    }
    client
}

/// The cluster's superuser, in `schema`.
pub async fn admin(schema: &str) -> tokio_postgres::Client {
    connect_as("annals", Some(schema)).await
}
