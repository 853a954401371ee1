//! A throwaway PostgreSQL cluster, for tests and benchmarks: `initdb` into a
//! temporary folder, `pg_ctl start` listening only on a Unix socket in that
//! folder (no port to collide on), stopped and removed by
//! [`TempCluster::stop`] or on drop. As root, which `initdb` refuses, the
//! server runs as the `postgres` user.
//!
//! ```no_run
//! # async fn demo() -> annals_core::Result<()> {
//! use annals_postgres::cluster::{ClusterOptions, TempCluster};
//!
//! let cluster = TempCluster::start(ClusterOptions::default())?;
//! let store = annals_postgres::open(&cluster.conninfo(), Default::default()).await?;
//! # drop(store);
//! cluster.stop()?;
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use annals_core::{Error, Result};

/// How to run the throwaway server.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// PostgreSQL's `fsync`: off makes a test suite fast (PostgreSQL's own
    /// durability is not what it tests); on for durable measurements.
    pub fsync: bool,
    /// `max_connections`.
    pub max_connections: u32,
    /// Also listen on TCP (127.0.0.1 and 127.0.0.2, a free port) with TLS, with this
    /// certificate and key; `None`: a Unix socket only.
    pub tls: Option<ServerTls>,
}

/// The certificate of a cluster that offers TLS.
#[derive(Clone)]
pub struct ServerTls {
    /// The server's certificate chain, PEM.
    pub cert_pem: String,
    /// The server's private key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            fsync: false,
            max_connections: 300,
            tls: None,
        }
    }
}

/// A running throwaway cluster.
#[derive(Debug)]
pub struct TempCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<&'static str>,
    options: ClusterOptions,
    /// The TCP port, with TLS.
    port: Option<u16>,
    stopped: AtomicBool,
}

/// Where the server binaries are: `$ANNALS_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<major>/bin` (Debian), else the folder of `pg_ctl`
/// on the PATH.
pub fn find_binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ANNALS_PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").exists().then_some(dir);
    }
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    majors.sort();
    if let Some((_, bin)) = majors.pop() {
        return Some(bin);
    }
    let found = Command::new("sh")
        .args(["-c", "command -v pg_ctl"])
        .output()
        .ok()?;
    let path = String::from_utf8(found.stdout).ok()?;
    let dir = Path::new(path.trim()).parent()?;
    dir.join("initdb").exists().then(|| dir.to_path_buf())
}

/// Why no throwaway cluster can be started here, if none can.
pub fn unavailable() -> Option<String> {
    find_binaries().is_none().then(|| {
        "no PostgreSQL server binaries (initdb, pg_ctl) found in /usr/lib/postgresql/*/bin, \
         $ANNALS_PG_BIN or the PATH; install them with `apt-get install -y postgresql`"
            .to_string()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn fail(what: impl std::fmt::Display, why: impl std::fmt::Display) -> Error {
    Error::backend(
        format!("throwaway PostgreSQL cluster: {what}"),
        why.to_string(),
    )
}

fn utf8(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| fail(path.display(), "the path is not UTF-8"))
}

impl TempCluster {
    /// `initdb` and `pg_ctl start` in a new temporary folder; returns once
    /// the server accepts connections.
    pub fn start(options: ClusterOptions) -> Result<TempCluster> {
        let bin = find_binaries().ok_or_else(|| {
            fail(
                "starting",
                unavailable().unwrap_or_else(|| "no server binaries".into()),
            )
        })?;
        let dir = tempfile::Builder::new()
            .prefix("annals-pg-")
            .tempdir()
            .map_err(|e| fail("creating a temporary folder", e))?;
        let run_as = is_root().then_some("postgres");
        if let Some(user) = run_as {
            let status = Command::new("chown")
                .args([user, utf8(dir.path())?])
                .status()
                .map_err(|e| fail("running chown", e))?;
            if !status.success() {
                return Err(fail(
                    dir.path().display(),
                    format!("cannot give the folder to the {user} user"),
                ));
            }
        }
        let port = match options.tls {
            Some(_) => Some(free_port()?),
            None => None,
        };
        let cluster = TempCluster {
            dir,
            bin,
            run_as,
            options,
            port,
            stopped: AtomicBool::new(true),
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                utf8(&data)?,
                "-U",
                "annals",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--data-checksums",
            ],
        )?;
        if let Some(tls) = &cluster.options.tls {
            cluster.write_owned("server.crt", &tls.cert_pem)?;
            cluster.write_owned("server.key", &tls.key_pem)?;
        }
        cluster.start_server()?;
        Ok(cluster)
    }

    /// Writes a file of the data folder, readable by the server's user
    /// only (PostgreSQL refuses a key others can read).
    fn write_owned(&self, name: &str, text: &str) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.data().join(name);
        std::fs::write(&path, text).map_err(|e| fail(path.display(), e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| fail(path.display(), e))?;
        if let Some(user) = self.run_as {
            let status = Command::new("chown")
                .args([user, utf8(&path)?])
                .status()
                .map_err(|e| fail("running chown", e))?;
            if !status.success() {
                return Err(fail(path.display(), "cannot give it to the server's user"));
            }
        }
        Ok(())
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<()> {
        let program = self.bin.join(tool);
        let mut command = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        let out = command
            .args(args)
            .output()
            .map_err(|e| fail(format!("running {}", program.display()), e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(fail(
                format!("{tool} {args:?}"),
                format!(
                    "{}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ))
        }
    }

    /// `pg_ctl start`, waiting until the server accepts connections.
    fn start_server(&self) -> Result<()> {
        let fsync = if self.options.fsync { "on" } else { "off" };
        let network = match self.port {
            Some(port) => format!(
                "-c listen_addresses=127.0.0.1,127.0.0.2 -p {port} -c ssl=on \
                 -c ssl_cert_file=server.crt -c ssl_key_file=server.key"
            ),
            None => "-c listen_addresses=''".to_string(),
        };
        let options = format!(
            "{network} -k {} -c fsync={fsync} -c max_connections={} -c shared_buffers=64MB",
            utf8(self.dir.path())?,
            self.options.max_connections,
        );
        let log = self.dir.path().join("server.log");
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D",
                utf8(&data)?,
                "-l",
                utf8(&log)?,
                "-o",
                &options,
                "-w",
                "start",
            ],
        )?;
        self.stopped.store(false, Ordering::Release);
        Ok(())
    }

    /// `pg_ctl stop` in `mode` (`fast`, or `immediate`: a crash).
    fn stop_server(&self, mode: &str) -> Result<()> {
        let data = self.data();
        self.run("pg_ctl", &["-D", utf8(&data)?, "-m", mode, "-w", "stop"])?;
        self.stopped.store(true, Ordering::Release);
        Ok(())
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The connection string (key=value form) of the cluster's `postgres`
    /// database, for [`open`](crate::open).
    pub fn conninfo(&self) -> String {
        // The socket's name has the port in it.
        let port = self.port.map_or(String::new(), |p| format!(" port={p}"));
        format!(
            "host={}{port} user=annals dbname=postgres",
            self.dir.path().display()
        )
    }

    /// The cluster's `postgres` database over TCP and TLS,
    /// `postgres://annals@<host>:<port>/postgres`, when it was started with
    /// [`ClusterOptions::tls`]; `host` is what the client names (and checks
    /// the certificate against with `verify-full`).
    pub fn tcp_url(&self, host: &str) -> Option<String> {
        self.port
            .map(|port| format!("postgres://annals@{host}:{port}/postgres"))
    }

    /// The cluster's `postgres` database as a `postgres://` URL (the socket
    /// folder percent-encoded as the host), for `annals::open`.
    pub fn url(&self) -> String {
        let host: String = self
            .dir
            .path()
            .display()
            .to_string()
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    char::from(b).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect();
        let port = self.port.map_or(String::new(), |p| format!(":{p}"));
        format!("postgres://annals@{host}{port}/postgres")
    }

    /// Stops the server the way a crash would (`immediate`: no checkpoint)
    /// and starts it again.
    pub fn crash_and_restart(&self) -> Result<()> {
        self.stop_server("immediate")?;
        self.start_server()
    }

    /// Stops the server and removes its folder. Needed for a cluster kept
    /// in a `static`, which is never dropped.
    pub fn stop(&self) -> Result<()> {
        if !self.stopped.load(Ordering::Acquire) {
            self.stop_server("fast")?;
        }
        std::fs::remove_dir_all(self.dir.path())
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            })
            .map_err(|e| fail(format!("removing {}", self.dir.path().display()), e))
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| fail("finding a free port", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| fail("finding a free port", e))
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        if !self.stopped.load(Ordering::Acquire) {
            // Best effort: a server left running would outlive the process.
            let _ = self.stop_server("fast");
        }
    }
}
