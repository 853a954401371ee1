//! Throwaway PostgreSQL servers, for tests and benchmarks: `initdb` into a
//! temporary folder, `pg_ctl start` listening only on a Unix socket in that
//! folder (no port to collide on), stopped and removed by `stop` or on
//! drop. As root, which `initdb` refuses, the servers run as the `postgres`
//! user. [`TempCluster`] is one server; [`ReplicatedCluster`] a primary and
//! a streaming standby that a test can fail over.
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
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

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

/// The server binaries, and the user the servers run as (`postgres` when
/// this process is root, which `initdb` refuses).
#[derive(Clone, Debug)]
struct Tools {
    bin: PathBuf,
    run_as: Option<&'static str>,
}

impl Tools {
    fn find() -> Result<Tools> {
        let bin = find_binaries().ok_or_else(|| {
            fail(
                "starting",
                unavailable().unwrap_or_else(|| "no server binaries".into()),
            )
        })?;
        Ok(Tools {
            bin,
            run_as: is_root().then_some("postgres"),
        })
    }

    /// Gives `path` to the servers' user (when it is not this process's).
    fn give(&self, path: &Path) -> Result<()> {
        let Some(user) = self.run_as else {
            return Ok(());
        };
        let status = Command::new("chown")
            .args([user, utf8(path)?])
            .status()
            .map_err(|e| fail("running chown", e))?;
        if status.success() {
            Ok(())
        } else {
            Err(fail(
                path.display(),
                format!("cannot give it to the {user} user"),
            ))
        }
    }

    /// Runs `tool` (as the servers' user); its standard output.
    fn run(&self, tool: &str, args: &[&str]) -> Result<String> {
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
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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
}

/// One server: its data folder, the folder of its Unix socket, and
/// whether it runs.
#[derive(Debug)]
struct Server {
    /// Holds `data/`, the socket and `server.log`.
    home: PathBuf,
    /// The TCP port, with TLS.
    port: Option<u16>,
    running: AtomicBool,
}

impl Server {
    fn new(home: PathBuf, port: Option<u16>) -> Server {
        Server {
            home,
            port,
            running: AtomicBool::new(false),
        }
    }

    fn data(&self) -> PathBuf {
        self.home.join("data")
    }

    /// `pg_ctl start` with `settings` (`-c name=value …`), waiting until
    /// the server accepts connections.
    fn start(&self, tools: &Tools, options: &ClusterOptions, settings: &str) -> Result<()> {
        let fsync = if options.fsync { "on" } else { "off" };
        let network = match self.port {
            Some(port) => format!(
                "-c listen_addresses=127.0.0.1,127.0.0.2 -p {port} -c ssl=on \
                 -c ssl_cert_file=server.crt -c ssl_key_file=server.key"
            ),
            None => "-c listen_addresses=''".to_string(),
        };
        let all = format!(
            "{network} -k {} -c fsync={fsync} -c max_connections={} -c shared_buffers=64MB {settings}",
            utf8(&self.home)?,
            options.max_connections,
        );
        let log = self.home.join("server.log");
        let data = self.data();
        tools
            .run(
                "pg_ctl",
                &[
                    "-D",
                    utf8(&data)?,
                    "-l",
                    utf8(&log)?,
                    "-o",
                    &all,
                    "-w",
                    "-t",
                    "120",
                    "start",
                ],
            )
            .map_err(|e| {
                // What the server said is in its log.
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = said.lines().rev().take(10).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                e.in_context(format!("server log: {}", tail.join(" | ")))
            })?;
        self.running.store(true, Ordering::Release);
        Ok(())
    }

    /// Removes the socket and its lock file a killed server left: the
    /// lock names a process that may not have been reaped yet, which the
    /// next server would take for a live one.
    fn clear_socket(&self) -> Result<()> {
        let port = self.port.unwrap_or(5432);
        for name in [format!(".s.PGSQL.{port}"), format!(".s.PGSQL.{port}.lock")] {
            let path = self.home.join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(fail(path.display(), e)),
            }
        }
        Ok(())
    }

    /// `pg_ctl stop` in `mode` (`fast`, or `immediate`: a crash).
    fn stop(&self, tools: &Tools, mode: &str) -> Result<()> {
        let data = self.data();
        tools.run("pg_ctl", &["-D", utf8(&data)?, "-m", mode, "-w", "stop"])?;
        self.running.store(false, Ordering::Release);
        Ok(())
    }

    /// The process id of its postmaster (the first line of
    /// `postmaster.pid`).
    fn postmaster(&self) -> Result<u32> {
        let file = self.data().join("postmaster.pid");
        let text = std::fs::read_to_string(&file).map_err(|e| fail(file.display(), e))?;
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| fail(file.display(), "no process id on its first line"))
    }

    /// Kills the server the way a power cut or a crashed machine would:
    /// every one of its processes (the postmaster and all its children)
    /// stopped at once with SIGSTOP, so that none acts on another's death,
    /// then killed with SIGKILL. Returns once they are gone.
    fn kill(&self) -> Result<()> {
        let postmaster = self.postmaster()?;
        signal("STOP", &[postmaster])?;
        // Stopped, the postmaster starts no new child.
        let mut all = children(postmaster);
        signal("STOP", &all)?;
        all.push(postmaster);
        signal("KILL", &all)?;
        self.running.store(false, Ordering::Release);
        let deadline = Instant::now() + Duration::from_secs(30);
        while all.iter().any(|&pid| alive(pid)) {
            if Instant::now() > deadline {
                return Err(fail("killing the server", "its processes are still alive"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// The `postgres` database on its socket, for libpq tools and
    /// tokio-postgres (the key=value form).
    fn conninfo(&self) -> String {
        // The socket's name has the port in it.
        let port = self.port.map_or(String::new(), |p| format!(" port={p}"));
        format!(
            "host={}{port} user=annals dbname=postgres",
            self.home.display()
        )
    }

    /// Runs `sql` with `psql` on the server; what it prints (unaligned,
    /// tuples only).
    fn sql(&self, tools: &Tools, sql: &str) -> Result<String> {
        let out = tools.run(
            "psql",
            &[
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.conninfo(),
                "-c",
                sql,
            ],
        )?;
        Ok(out.trim().to_string())
    }
}

/// Sends `SIG<name>` to every process of `pids`.
fn signal(name: &str, pids: &[u32]) -> Result<()> {
    if pids.is_empty() {
        return Ok(());
    }
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    // A process that is already gone is no failure: kill's status is not
    // checked, only that it ran.
    Command::new("kill")
        .arg(format!("-{name}"))
        .args(&pids)
        .output()
        .map(drop)
        .map_err(|e| fail("running kill", e))
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // After the command (in parentheses, which may hold anything):
            // state, then the parent's id.
            let after = &stat[stat.rfind(')')? + 1..];
            let parent: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
            (parent == pid).then_some(child)
        })
        .collect()
}

/// Whether `pid` is a process that has not exited (a zombie has).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// A running throwaway cluster.
#[derive(Debug)]
pub struct TempCluster {
    dir: tempfile::TempDir,
    tools: Tools,
    options: ClusterOptions,
    server: Server,
}

/// A new temporary folder, given to the servers' user.
fn temp_home(tools: &Tools) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("annals-pg-")
        .tempdir()
        .map_err(|e| fail("creating a temporary folder", e))?;
    tools.give(dir.path())?;
    Ok(dir)
}

/// `initdb` of `server`'s data folder.
fn initdb(tools: &Tools, server: &Server) -> Result<()> {
    let data = server.data();
    tools
        .run(
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
        )
        .map(drop)
}

impl TempCluster {
    /// `initdb` and `pg_ctl start` in a new temporary folder; returns once
    /// the server accepts connections.
    pub fn start(options: ClusterOptions) -> Result<TempCluster> {
        let tools = Tools::find()?;
        let dir = temp_home(&tools)?;
        let port = match options.tls {
            Some(_) => Some(free_port()?),
            None => None,
        };
        let server = Server::new(dir.path().to_path_buf(), port);
        let cluster = TempCluster {
            dir,
            tools,
            options,
            server,
        };
        initdb(&cluster.tools, &cluster.server)?;
        if let Some(tls) = &cluster.options.tls {
            cluster.write_owned("server.crt", &tls.cert_pem)?;
            cluster.write_owned("server.key", &tls.key_pem)?;
        }
        cluster.server.start(&cluster.tools, &cluster.options, "")?;
        Ok(cluster)
    }

    /// Writes a file of the data folder, readable by the server's user
    /// only (PostgreSQL refuses a key others can read).
    fn write_owned(&self, name: &str, text: &str) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.server.data().join(name);
        std::fs::write(&path, text).map_err(|e| fail(path.display(), e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| fail(path.display(), e))?;
        self.tools.give(&path)
    }

    /// The connection string (key=value form) of the cluster's `postgres`
    /// database, for [`open`](crate::open).
    pub fn conninfo(&self) -> String {
        self.server.conninfo()
    }

    /// The cluster's `postgres` database over TCP and TLS,
    /// `postgres://annals@<host>:<port>/postgres`, when it was started with
    /// [`ClusterOptions::tls`]; `host` is what the client names (and checks
    /// the certificate against with `verify-full`).
    pub fn tcp_url(&self, host: &str) -> Option<String> {
        self.server
            .port
            .map(|port| format!("postgres://annals@{host}:{port}/postgres"))
    }

    /// The cluster's `postgres` database as a `postgres://` URL (the socket
    /// folder percent-encoded as the host), for `annals::open`.
    pub fn url(&self) -> String {
        let port = self.server.port.map_or(String::new(), |p| format!(":{p}"));
        format!(
            "postgres://annals@{}{port}/postgres",
            url_host(&self.server.home)
        )
    }

    /// Stops the server the way a crash would (`immediate`: no checkpoint)
    /// and starts it again.
    pub fn crash_and_restart(&self) -> Result<()> {
        self.server.stop(&self.tools, "immediate")?;
        self.server.start(&self.tools, &self.options, "")
    }

    /// Stops the server and removes its folder. Needed for a cluster kept
    /// in a `static`, which is never dropped.
    pub fn stop(&self) -> Result<()> {
        if self.server.running.load(Ordering::Acquire) {
            self.server.stop(&self.tools, "fast")?;
        }
        remove_folder(self.dir.path())
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        if self.server.running.load(Ordering::Acquire) {
            // Best effort: a server left running would outlive the process.
            let _ = self.server.stop(&self.tools, "fast");
        }
    }
}

/// A folder path as the host of a `postgres://` URL: percent-encoded.
fn url_host(path: &Path) -> String {
    path.display()
        .to_string()
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn remove_folder(path: &Path) -> Result<()> {
    std::fs::remove_dir_all(path)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(e),
        })
        .map_err(|e| fail(format!("removing {}", path.display()), e))
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

/// How the primary of a [`ReplicatedCluster`] waits for its standby.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Replication {
    /// `synchronous_standby_names = '*'`, `synchronous_commit = on`: a
    /// commit returns once the standby has the WAL on disk; it may not be
    /// visible there yet.
    Synchronous,
    /// `synchronous_commit = remote_apply`: a commit returns once the
    /// standby has applied it, so reads there see it.
    RemoteApply,
    /// No synchronous standby: a commit returns once it is on the
    /// primary's disk; a failover loses what the standby had not received.
    Asynchronous,
}

/// Where the primary and the standby of a [`ReplicatedCluster`] are.
#[derive(Debug)]
struct Roles {
    /// The slot (0 or 1) of the primary.
    primary: usize,
    /// Whether the other slot runs a standby.
    standby: bool,
}

/// A throwaway primary and streaming hot standby, for failover tests: two
/// slots (each a folder with its data and its Unix socket), one the
/// primary, the other a standby made with `pg_basebackup` that streams
/// from it — synchronously or not ([`Replication`]). [`kill_primary`]
/// kills the primary like a crashed machine, [`promote`] makes the standby
/// the primary, and [`add_standby`] makes a new standby in the free slot,
/// so that a test can fail over any number of times while the two-host
/// [`conninfo`] stays the same.
///
/// ```no_run
/// # async fn demo() -> annals_core::Result<()> {
/// use annals_postgres::cluster::{ClusterOptions, Replication, ReplicatedCluster};
/// use annals_postgres::PostgresOptions;
///
/// let cluster = ReplicatedCluster::start(ClusterOptions::default(), Replication::Synchronous)?;
/// // Two hosts, and target_session_attrs=read-write: the store follows the primary.
/// let store = annals_postgres::open(&cluster.conninfo(), PostgresOptions::default()).await?;
/// cluster.kill_primary()?;
/// cluster.promote()?;
/// cluster.add_standby()?;
/// # drop(store);
/// cluster.stop()?;
/// # Ok(())
/// # }
/// ```
///
/// [`kill_primary`]: ReplicatedCluster::kill_primary
/// [`promote`]: ReplicatedCluster::promote
/// [`add_standby`]: ReplicatedCluster::add_standby
/// [`conninfo`]: ReplicatedCluster::conninfo
#[derive(Debug)]
pub struct ReplicatedCluster {
    dir: tempfile::TempDir,
    tools: Tools,
    options: ClusterOptions,
    replication: Replication,
    slots: [Server; 2],
    roles: Mutex<Roles>,
}

impl ReplicatedCluster {
    /// Starts a primary, then a standby streaming from it; returns once the
    /// standby streams (and, unless [`Replication::Asynchronous`], is the
    /// primary's synchronous standby). TLS ([`ClusterOptions::tls`]) is not
    /// offered here.
    pub fn start(options: ClusterOptions, replication: Replication) -> Result<ReplicatedCluster> {
        if options.tls.is_some() {
            return Err(fail(
                "starting a replicated cluster",
                "TLS is not offered (the servers listen on Unix sockets only)",
            ));
        }
        let tools = Tools::find()?;
        let dir = temp_home(&tools)?;
        let mut homes = Vec::with_capacity(2);
        for name in ["a", "b"] {
            let home = dir.path().join(name);
            std::fs::create_dir(&home).map_err(|e| fail(home.display(), e))?;
            tools.give(&home)?;
            homes.push(home);
        }
        let [a, b]: [PathBuf; 2] = homes
            .try_into()
            .map_err(|_| fail("starting a replicated cluster", "two slots"))?;
        let cluster = ReplicatedCluster {
            dir,
            tools,
            options,
            replication,
            slots: [Server::new(a, None), Server::new(b, None)],
            roles: Mutex::new(Roles {
                primary: 0,
                standby: false,
            }),
        };
        initdb(&cluster.tools, &cluster.slots[0])?;
        cluster.slots[0].start(&cluster.tools, &cluster.options, &cluster.settings())?;
        cluster.add_standby()?;
        Ok(cluster)
    }

    /// The settings every server of the cluster starts with.
    fn settings(&self) -> String {
        let commit = match self.replication {
            Replication::RemoteApply => "remote_apply",
            Replication::Synchronous | Replication::Asynchronous => "on",
        };
        // A standby ahead of nothing: it keeps no WAL for anyone, and its
        // hot standby feedback keeps the primary from vacuuming rows its
        // reads still see.
        format!("-c synchronous_commit={commit} -c hot_standby_feedback=on -c wal_keep_size=64MB")
    }

    fn roles(&self) -> std::sync::MutexGuard<'_, Roles> {
        self.roles.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn primary(&self) -> &Server {
        &self.slots[self.roles().primary]
    }

    fn standby(&self) -> Option<&Server> {
        let roles = self.roles();
        roles.standby.then(|| &self.slots[1 - roles.primary])
    }

    /// Both slots, primary or not, with `target_session_attrs=read-write`
    /// (key=value form): a store opened with it reaches whichever is the
    /// primary, before and after a failover.
    pub fn conninfo(&self) -> String {
        format!(
            "host={},{} user=annals dbname=postgres target_session_attrs=read-write",
            self.slots[0].home.display(),
            self.slots[1].home.display()
        )
    }

    /// Both slots as a `postgres://` URL (the socket folders percent-encoded
    /// as hosts), for `annals::open`: add `?target_session_attrs=read-write`
    /// (an annals option there) to follow the primary.
    pub fn url(&self) -> String {
        format!(
            "postgres://annals@{},{}/postgres",
            url_host(&self.slots[0].home),
            url_host(&self.slots[1].home)
        )
    }

    /// The primary alone (key=value form).
    pub fn primary_conninfo(&self) -> String {
        self.primary().conninfo()
    }

    /// The standby alone (key=value form), if one runs.
    pub fn standby_conninfo(&self) -> Option<String> {
        self.standby().map(Server::conninfo)
    }

    /// Kills every process of the primary at once (SIGSTOP, then
    /// SIGKILL), as a crashed machine: no checkpoint, no goodbye to the
    /// standby or the clients. Its clients' connections then fail, and no
    /// server takes writes until [`promote`](Self::promote).
    pub fn kill_primary(&self) -> Result<()> {
        self.primary().kill()
    }

    /// Promotes the standby (`pg_ctl promote`, waiting until it takes
    /// writes): it becomes the primary, without a standby until
    /// [`add_standby`](Self::add_standby). Fails when no standby runs.
    pub fn promote(&self) -> Result<()> {
        let mut roles = self.roles();
        if !roles.standby {
            return Err(fail("promoting", "no standby runs"));
        }
        let old = roles.primary;
        if self.slots[old].running.load(Ordering::Acquire) {
            return Err(fail(
                "promoting",
                "the primary still runs: kill it (or stop it) first, or two servers would take writes",
            ));
        }
        let next = 1 - old;
        let data = self.slots[next].data();
        self.tools.run(
            "pg_ctl",
            &["-D", utf8(&data)?, "-w", "-t", "120", "promote"],
        )?;
        roles.primary = next;
        roles.standby = false;
        Ok(())
    }

    /// Makes a standby of the primary in the free slot (the dead former
    /// primary's folder is removed): `pg_basebackup` with its WAL, started
    /// as a hot standby streaming from the primary, and, unless
    /// [`Replication::Asynchronous`], named the primary's synchronous
    /// standby. Returns once it streams.
    pub fn add_standby(&self) -> Result<()> {
        let mut roles = self.roles();
        if roles.standby {
            return Err(fail("adding a standby", "one runs already"));
        }
        let primary = &self.slots[roles.primary];
        let standby = &self.slots[1 - roles.primary];
        if standby.running.load(Ordering::Acquire) {
            standby.stop(&self.tools, "immediate")?;
        }
        let data = standby.data();
        remove_folder(&data)?;
        standby.clear_socket()?;
        self.tools.run(
            "pg_basebackup",
            &[
                "-D",
                utf8(&data)?,
                "-d",
                &primary.conninfo(),
                "-X",
                "stream",
                "-R",
                "-c",
                "fast",
                "--no-sync",
            ],
        )?;
        // The copy holds the primary's ALTER SYSTEM settings: a standby
        // promoted with synchronous_standby_names set would wait for a
        // standby of its own on every commit.
        let auto = data.join("postgresql.auto.conf");
        let text = std::fs::read_to_string(&auto).map_err(|e| fail(auto.display(), e))?;
        let kept: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("synchronous_standby_names"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&auto, kept).map_err(|e| fail(auto.display(), e))?;
        standby.start(&self.tools, &self.options, &self.settings())?;
        let names = match self.replication {
            Replication::Asynchronous => "''",
            Replication::Synchronous | Replication::RemoteApply => "'*'",
        };
        primary.sql(
            &self.tools,
            &format!("ALTER SYSTEM SET synchronous_standby_names = {names}"),
        )?;
        primary.sql(&self.tools, "SELECT pg_reload_conf()")?;
        let want = match self.replication {
            Replication::Asynchronous => "async",
            Replication::Synchronous | Replication::RemoteApply => "sync",
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = primary.sql(
                &self.tools,
                "SELECT state || ' ' || sync_state FROM pg_stat_replication",
            )?;
            if state == format!("streaming {want}") {
                break;
            }
            if Instant::now() > deadline {
                return Err(fail(
                    "adding a standby",
                    format!("it does not stream as {want} (pg_stat_replication: {state:?})"),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        roles.standby = true;
        Ok(())
    }

    /// The process id of the standby's WAL receiver (the process that reads
    /// what the primary sends), for tests that stop it (`kill -STOP`) to
    /// hold a commit in the primary's wait for its standby.
    pub fn standby_wal_receiver(&self) -> Result<u32> {
        let standby = self
            .standby()
            .ok_or_else(|| fail("finding the WAL receiver", "no standby runs"))?;
        let pid = standby.sql(&self.tools, "SELECT pid FROM pg_stat_wal_receiver")?;
        pid.parse()
            .map_err(|_| fail("finding the WAL receiver", format!("pid {pid:?}")))
    }

    /// Runs `sql` on the primary with `psql`; what it prints (unaligned,
    /// tuples only).
    pub fn sql_on_primary(&self, sql: &str) -> Result<String> {
        self.primary().sql(&self.tools, sql)
    }

    /// Runs `sql` on the standby with `psql`; what it prints.
    pub fn sql_on_standby(&self, sql: &str) -> Result<String> {
        self.standby()
            .ok_or_else(|| fail("running SQL on the standby", "no standby runs"))?
            .sql(&self.tools, sql)
    }

    /// Stops every server and removes the folders. Needed for a cluster
    /// kept in a `static`, which is never dropped.
    pub fn stop(&self) -> Result<()> {
        for server in &self.slots {
            if server.running.load(Ordering::Acquire) {
                server.stop(&self.tools, "fast")?;
            }
        }
        remove_folder(self.dir.path())
    }
}

impl Drop for ReplicatedCluster {
    fn drop(&mut self) {
        for server in &self.slots {
            if server.running.load(Ordering::Acquire) {
                // Best effort: a server left running would outlive the process.
                let _ = server.stop(&self.tools, "immediate");
            }
        }
    }
}
