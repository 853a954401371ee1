//! The backends under test: how to open a fresh annals store of each, and
//! its raw-engine baseline, in a place of its own.

use std::fmt;
use std::path::{Path, PathBuf};

use annals::driver::{Driver, Target};
use annals::{Durability, Store};
use serde::Serialize;

use crate::raw::{self, RawEngine, RawResult};

/// A backend under test: one of the drivers compiled into annals here
/// (`annals::drivers`, from this crate's cargo features), compared, hashed
/// and ordered by its scheme's place in that list (the report's order).
#[derive(Clone, Copy)]
pub struct Backend(&'static Driver);

impl Backend {
    /// Every backend compiled in, in report order.
    pub fn all() -> Vec<Backend> {
        annals::drivers().into_iter().map(Backend).collect()
    }

    /// The backend of a scheme (`--backends fjall`), or why there is none.
    pub fn parse(name: &str) -> Result<Backend, String> {
        annals::driver_for(name).map(Backend).ok_or_else(|| {
            let known: Vec<&str> = annals::Scheme::all().map(|s| s.name()).collect();
            format!(
                "{name:?} is not compiled in (annals knows {}; compiled in: {})",
                known.join(", "),
                Backend::all()
                    .iter()
                    .map(|b| b.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    /// Its name in URLs and tables.
    pub fn name(self) -> &'static str {
        self.0.scheme
    }

    /// Its driver.
    pub fn driver(self) -> &'static Driver {
        self.0
    }

    /// Its place in report order.
    pub fn rank(self) -> usize {
        annals::drivers()
            .iter()
            .position(|d| d.scheme == self.0.scheme)
            .unwrap_or(usize::MAX)
    }

    /// Whether it keeps files (and so has a size on disk).
    pub fn has_disk(self) -> bool {
        self.0.target != Target::Nothing
    }

    /// Whether its stores live on a database server (PostgreSQL).
    pub fn is_server(self) -> bool {
        self.0.target == Target::Server
    }
}

impl PartialEq for Backend {
    fn eq(&self, other: &Backend) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Backend {}

impl std::hash::Hash for Backend {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl PartialOrd for Backend {
    fn partial_cmp(&self, other: &Backend) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Backend {
    fn cmp(&self, other: &Backend) -> std::cmp::Ordering {
        (self.rank(), self.name()).cmp(&(other.rank(), other.name()))
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Backend {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
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
        let url = if backend.is_server() {
            let server = self.postgres()?;
            let schema = format!("bench_{}", name.replace('-', "_"));
            drop_schema(server, &schema).await?;
            // Enough connections for the 64 concurrent readers of the
            // page workloads.
            format!(
                "{}?schema={schema}&durability={durability}&pool_size=16",
                server.url
            )
        } else {
            let options = format!("durability={durability}");
            match backend.driver().target {
                Target::File => format!(
                    "{backend}://{}?{options}",
                    url_path(&self.folder(backend, name)?.join(format!("store.{backend}")))
                ),
                Target::Folder => format!(
                    "{backend}://{}?{options}",
                    url_path(&self.folder(backend, name)?)
                ),
                Target::Nothing | Target::Server => format!("{backend}://?{options}"),
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
        match backend.name() {
            "memory" => Ok(raw::memory()),
            "redb" => raw::redb(&self.folder(backend, name)?),
            #[cfg(feature = "rocksdb")]
            "rocksdb" => raw::rocksdb(&self.folder(backend, name)?),
            #[cfg(feature = "sled")]
            "sled" => raw::sled(&self.folder(backend, name)?),
            #[cfg(feature = "fjall")]
            "fjall" => raw::fjall(&self.folder(backend, name)?),
            #[cfg(feature = "postgres")]
            "postgres" => {
                let server = self.postgres()?;
                let schema = format!("raw_{}", name.replace('-', "_"));
                let table =
                    raw::postgres::PlainTable::create(&server.conninfo, &schema, connections)
                        .await?;
                Ok(Box::new(table))
            }
            other => Err(format!("{other}: no raw-engine baseline in raw.rs")),
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
        match backend.name() {
            #[cfg(feature = "postgres")]
            "postgres" => {
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
