//! A throwaway PostgreSQL cluster for the tests: `initdb` into a temporary
//! folder, `pg_ctl start` listening only on a Unix socket in that folder,
//! stopped (and the folder removed) when the test process ends. As root,
//! which `initdb` refuses, the server runs as the `postgres` user.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use annals_core::{Result, StoreConfig};
use annals_postgres::{PostgresOptions, PostgresStore};

/// A running cluster.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<&'static str>,
}

/// Where the server binaries are: `$ANNALS_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<major>/bin`, else `pg_ctl` on the PATH.
fn find_bin() -> Option<PathBuf> {
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
    Path::new(path.trim()).parent().map(Path::to_path_buf)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Why the tests cannot get a server, if they cannot.
pub fn unavailable() -> Option<String> {
    match find_bin() {
        None => Some(
            "no PostgreSQL server binaries (initdb, pg_ctl) found in /usr/lib/postgresql/*/bin, \
             $ANNALS_PG_BIN or the PATH; install them with `apt-get install -y postgresql`"
                .into(),
        ),
        Some(_) => None,
    }
}

impl Cluster {
    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let mut command = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        let out = command.args(args).output().unwrap_or_else(|e| {
            panic!("cannot run {}: {e}", program.display());
        });
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start() -> Cluster {
        let bin = find_bin().expect("PostgreSQL binaries");
        let dir = tempfile::Builder::new()
            .prefix("annals-pg-")
            .tempdir()
            .expect("a temporary folder");
        let run_as = is_root().then_some("postgres");
        if let Some(user) = run_as {
            let ok = Command::new("chown")
                .args([user, dir.path().to_str().expect("a UTF-8 temp path")])
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "cannot give {} to the {user} user",
                dir.path().display()
            );
        }
        let cluster = Cluster { dir, bin, run_as };
        let data = cluster.data();
        let data = data.to_str().expect("a UTF-8 temp path");
        cluster.run(
            "initdb",
            &[
                "-D",
                data,
                "-U",
                "annals",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--data-checksums",
            ],
        );
        cluster.start_server();
        cluster
    }

    /// `pg_ctl start`, waiting until the server accepts connections.
    fn start_server(&self) {
        // Only a Unix socket in the cluster's folder: no port to collide on.
        // fsync is off by default to keep the suite fast (the durability of
        // PostgreSQL itself is not what it tests); ANNALS_PG_FSYNC=on for
        // measurements.
        let fsync = std::env::var("ANNALS_PG_FSYNC").unwrap_or_else(|_| "off".into());
        let options = format!(
            "-c listen_addresses='' -k {} -c fsync={fsync} -c max_connections=300 -c shared_buffers=64MB",
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let data = self.data();
        let data = data.to_str().expect("a UTF-8 temp path");
        let log = log.to_str().expect("a UTF-8 temp path");
        self.run(
            "pg_ctl",
            &["-D", data, "-l", log, "-o", &options, "-w", "start"],
        );
    }

    /// `pg_ctl stop` in `mode` (`fast`, or `immediate`: a crash).
    fn stop_server(&self, mode: &str) {
        let data = self.data();
        let data = data.to_str().expect("a UTF-8 temp path");
        self.run("pg_ctl", &["-D", data, "-m", mode, "-w", "stop"]);
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The connection string of the cluster's `postgres` database.
    pub fn conninfo(&self) -> String {
        format!(
            "host={} user=annals dbname=postgres",
            self.dir.path().display()
        )
    }

    /// The cluster's `postgres` database as a `postgres://` URL.
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
        format!("postgres://annals@{host}/postgres")
    }

    /// Stops the server ("immediate": a crash, which is what the crash test
    /// wants) and starts it again.
    pub fn crash_and_restart(&self) {
        self.stop_server("immediate");
        self.start_server();
    }

    /// Stops the server and removes its folder (a `TempDir` in a static is
    /// never dropped).
    pub fn stop(&self) {
        self.stop_server("fast");
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The cluster of this test process, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(Cluster::start)
}

/// Stops the cluster if it was started.
pub fn stop_cluster() {
    if let Some(c) = CLUSTER.get() {
        c.stop();
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
    };
    annals_postgres::open(&cluster().conninfo(), options).await
}

/// Whether the tests must fail rather than be ignored without a server.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}
