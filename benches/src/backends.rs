//! The backends under test: how to open a fresh annals store of each, and
//! its raw-engine baseline, in a place of its own.

use std::fmt;
use std::path::{Path, PathBuf};

use annals::{Durability, Store};
use clap::ValueEnum;
use serde::Serialize;

use crate::raw::{self, RawEngine, RawResult};

/// A backend annals ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `memory://`
    Memory,
    /// `redb://` (the default)
    Redb,
    /// `rocksdb://`
    Rocksdb,
    /// `sled://`
    Sled,
    /// `postgres://`
    Postgres,
}

impl Backend {
    /// Every backend, in report order.
    pub const ALL: [Backend; 5] = [
        Backend::Memory,
        Backend::Redb,
        Backend::Rocksdb,
        Backend::Sled,
        Backend::Postgres,
    ];

    /// Its name in URLs and tables.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Redb => "redb",
            Backend::Rocksdb => "rocksdb",
            Backend::Sled => "sled",
            Backend::Postgres => "postgres",
        }
    }

    /// Whether this build of the tool has it (cargo features).
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::Memory | Backend::Redb => true,
            Backend::Rocksdb => cfg!(feature = "rocksdb"),
            Backend::Sled => cfg!(feature = "sled"),
            Backend::Postgres => cfg!(feature = "postgres"),
        }
    }

    /// Whether it keeps files (and so has a size on disk).
    pub fn has_disk(self) -> bool {
        self != Backend::Memory
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the stores of one run live.
pub struct Places {
    /// Folder for the embedded stores (removed at the end of the run).
    pub dir: PathBuf,
    /// The PostgreSQL server, when the run has one.
    pub postgres: Option<PostgresServer>,
}

/// A PostgreSQL server: a throwaway local cluster, or one given by URL.
pub struct PostgresServer {
    /// `postgres://` URL of the database (without query).
    pub url: String,
    /// The same as a key=value connection string, for the raw table.
    // Read by the raw table only, which the `postgres` feature brings.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub conninfo: String,
    /// Kept to stop the cluster at the end.
    #[cfg(feature = "postgres")]
    pub _cluster: Option<annals_postgres::cluster::TempCluster>,
}

impl Places {
    /// A fresh folder for one store named `name`.
    fn folder(&self, backend: Backend, name: &str) -> RawResult<PathBuf> {
        let dir = self.dir.join(format!("{backend}-{name}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(dir)
    }

    fn postgres(&self) -> RawResult<&PostgresServer> {
        self.postgres
            .as_ref()
            .ok_or_else(|| "no PostgreSQL server in this run".to_string())
    }

    /// Opens a fresh annals store of `backend` named `name`.
    pub async fn open(
        &self,
        backend: Backend,
        name: &str,
        durability: Durability,
    ) -> RawResult<Store> {
        let durability = match durability {
            Durability::Immediate => "immediate",
            Durability::Relaxed => "relaxed",
        };
        let url = match backend {
            Backend::Memory => "memory://".to_string(),
            Backend::Redb => format!(
                "redb://{}?durability={durability}",
                url_path(&self.folder(backend, name)?.join("store.redb"))
            ),
            Backend::Rocksdb | Backend::Sled => format!(
                "{backend}://{}?durability={durability}",
                url_path(&self.folder(backend, name)?)
            ),
            Backend::Postgres => {
                let server = self.postgres()?;
                let schema = format!("bench_{}", name.replace('-', "_"));
                drop_schema(server, &schema).await?;
                // Enough connections for the 64 concurrent readers of the
                // page workloads.
                format!(
                    "{}?schema={schema}&durability={durability}&pool_size=16",
                    server.url
                )
            }
        };
        annals::open(&url)
            .await
            .map_err(|e| format!("opening {url}: {e}"))
    }

    /// Opens a fresh raw engine of `backend` named `name`; `connections`
    /// is how many writers will use it at once.
    pub async fn open_raw(
        &self,
        backend: Backend,
        name: &str,
        connections: usize,
    ) -> RawResult<Box<dyn RawEngine>> {
        let _ = connections;
        match backend {
            Backend::Memory => Ok(raw::memory()),
            Backend::Redb => raw::redb(&self.folder(backend, name)?),
            #[cfg(feature = "rocksdb")]
            Backend::Rocksdb => raw::rocksdb(&self.folder(backend, name)?),
            #[cfg(feature = "sled")]
            Backend::Sled => raw::sled(&self.folder(backend, name)?),
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                let server = self.postgres()?;
                let schema = format!("raw_{}", name.replace('-', "_"));
                let table =
                    raw::postgres::PlainTable::create(&server.conninfo, &schema, connections)
                        .await?;
                Ok(Box::new(table))
            }
            #[allow(unreachable_patterns)]
            other => Err(format!("{other} is not compiled into this build")),
        }
    }
}

impl Places {
    /// Workload 3's `read_all` baseline on the store `name` of `size`
    /// events, where the engine has one: PostgreSQL's plain `SELECT` over
    /// the annals table.
    pub async fn raw_read_all(
        &self,
        backend: Backend,
        name: &str,
        size: u64,
    ) -> RawResult<Option<crate::workload::Rate>> {
        match backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                let server = self.postgres()?;
                let schema = format!("bench_{}", name.replace('-', "_"));
                let rate = raw::postgres::plain_scan(
                    &server.conninfo,
                    &schema,
                    crate::workload::SCAN_PAGE,
                    size,
                )
                .await?;
                Ok(Some(rate))
            }
            _ => {
                let _ = (name, size);
                Ok(None)
            }
        }
    }
}

/// Drops `schema` if a previous run left it.
async fn drop_schema(server: &PostgresServer, schema: &str) -> RawResult<()> {
    #[cfg(feature = "postgres")]
    {
        let (client, connection) = tokio_postgres::connect(&server.conninfo, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("connecting to PostgreSQL: {e}"))?;
        let task = tokio::spawn(connection);
        let dropped = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .map_err(|e| format!("dropping schema {schema}: {e}"));
        drop(client);
        let _ = task.await;
        dropped
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = (server, schema);
        Ok(())
    }
}

/// `path` as the path part of a store URL: `redb://` + `/abs/path`.
fn url_path(path: &Path) -> String {
    path.display().to_string()
}

/// Starts the PostgreSQL server of a run: `url` when given (its
/// conninfo is the URL itself), else a throwaway cluster with `fsync` on,
/// so that durable figures are real.
#[cfg(feature = "postgres")]
pub fn postgres_server(url: Option<&str>) -> RawResult<PostgresServer> {
    use annals_postgres::cluster::{ClusterOptions, TempCluster};
    if let Some(url) = url {
        return Ok(PostgresServer {
            url: url.to_string(),
            conninfo: url.to_string(),
            _cluster: None,
        });
    }
    let cluster = TempCluster::start(ClusterOptions {
        fsync: true,
        ..ClusterOptions::default()
    })
    .map_err(|e| e.to_string())?;
    Ok(PostgresServer {
        url: cluster.url(),
        conninfo: cluster.conninfo(),
        _cluster: Some(cluster),
    })
}

/// Without the `postgres` feature there is no server.
#[cfg(not(feature = "postgres"))]
pub fn postgres_server(url: Option<&str>) -> RawResult<PostgresServer> {
    let _ = url;
    Err("built without the postgres feature".into())
}
