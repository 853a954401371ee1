//! `open` by URL: every backend, its options, and the errors.
// Built without any backend, most helpers have nothing to test.
#![cfg_attr(not(any(feature = "memory", feature = "redb")), allow(dead_code))]

use super::*;

/// The message of the `InvalidInput` that opening `url` must give; checks
/// that it names the URL.
async fn open_err(url: &str) -> String {
    match open(url).await {
        Ok(store) => panic!("{url:?} should not open, got {store:?}"),
        Err(Error::InvalidInput { message: msg, .. }) => {
            let shown = store_url::redact(url);
            assert!(
                msg.contains(&format!("{shown:?}")),
                "{msg:?} does not name {shown:?}"
            );
            msg
        }
        Err(other) => panic!("{url:?}: not InvalidInput: {other:?}"),
    }
}

/// Everything an error shows: its message, its `Debug`, and its sources'.
fn everything_shown(error: &Error) -> String {
    let mut shown = format!("{error}\n{error:?}");
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        shown.push_str(&format!("\n{s}\n{s:?}"));
        source = s.source();
    }
    shown
}

/// No password of a store URL appears in any message or `Debug` output, on
/// any path: malformed URLs, unknown schemes and options, a backend not
/// compiled in, connections that fail.
#[tokio::test]
async fn passwords_are_never_shown() {
    const SECRET: &str = "s3cret";
    let urls = [
        "postgres://alice:s3cret-pw@127.0.0.1:1/app",
        "postgres://alice:s3cret-pw@127.0.0.1:1/app?schema=shop&durability=relaxed",
        "POSTGRES://alice:s3cret-pw@127.0.0.1:1/app?cache=1",
        "postgres://alice:s3cret-pw@127.0.0.1:1/app?schema=Bad-Name",
        "postgres://alice:s3cret-pw@127.0.0.1:1/app?pool_size=0",
        "postgres://alice:s3cret-pw@127.0.0.1:1/app?password=s3cret-pw",
        "postgres://alice@127.0.0.1:1/app?Password=s3cret-pw",
        "postgres://alice@127.0.0.1:1/app?password=%zzs3cret-pw",
        "postgres://alice:s3cret-pw@127.0.0.1:1/app?durability",
        "postgres://alice:s3cret#pw@127.0.0.1:1/app",
        "postgres://alice:s3cret?pw@127.0.0.1:1/app",
        "postgres://alice:s3cret?pw@127.0.0.1:1/app?schema=x",
        "postgres://alice:s3c%72et-pw@127.0.0.1:1/app",
        "postgres://alice:s3cret/pw@127.0.0.1:1/app",
        "postgres://alice:s3cret-pw@127.0.0.1:notaport/app",
        "postgres://alice:s3cret-pw@[::1/app",
        "postgres:alice:s3cret-pw@127.0.0.1/app",
        "postgres:/alice:s3cret-pw@127.0.0.1/app",
        "mysql://alice:s3cret-pw@127.0.0.1/app",
        "alice:s3cret-pw@127.0.0.1/app",
    ];
    for url in urls {
        let mut shown = String::new();
        match StoreUrl::parse(url) {
            Ok(parsed) => {
                shown.push_str(&format!("{parsed}\n{parsed:?}\n{}", parsed.redacted()));
                if let Err(e) = parsed.check_compiled() {
                    shown.push_str(&everything_shown(&e));
                }
            }
            Err(e) => shown.push_str(&everything_shown(&e)),
        }
        match open(url).await {
            Ok(store) => panic!("{url:?} opened: {store:?}"),
            Err(e) => shown.push_str(&everything_shown(&e)),
        }
        // (A decoded `s3c%72et` would show as `s3cret` too.)
        assert!(
            !shown.contains(SECRET),
            "{url:?} shows its password:\n{shown}"
        );
    }
}

/// Appends one event and reads it back.
async fn round_trip(store: &Store) {
    let stream = StreamId::new("s").expect("valid id");
    let written = store
        .append(
            &stream,
            ExpectedVersion::Any,
            vec![NewEvent::builder("T").tag("t").build()],
        )
        .await
        .expect("append");
    let page = store
        .read_stream(&stream, written.first_version, 1, Direction::Forward)
        .await
        .expect("read");
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].event_type, "T");
}

#[cfg(feature = "memory")]
mod memory {
    use super::*;

    #[tokio::test]
    async fn opens() {
        let store = open("memory://").await.expect("memory://");
        assert!(!store.capabilities().persistent);
        assert_eq!(store.limits(), Limits::default());
        round_trip(&store).await;
        store.close().await.expect("close");
    }

    #[tokio::test]
    async fn takes_the_common_options() {
        let store = open("memory://?durability=relaxed&max_read_count=500&max_event_bytes=1024")
            .await
            .expect("valid options");
        assert_eq!(store.limits().max_read_count, 500);
        assert_eq!(store.limits().max_event_bytes, 1024);
        // The limit is in force.
        let err = store
            .read_all(Position::START, 501, Direction::Forward, None)
            .await
            .expect_err("count above the limit");
        assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn refuses_unknown_and_bad_options() {
        let msg = open_err("memory://?cache_size=1").await;
        assert!(msg.contains("unknown option \"cache_size\""), "{msg}");
        assert!(msg.contains("durability, max_event_bytes"), "{msg}");
        let msg = open_err("memory://?max_read_count=ten").await;
        assert!(msg.contains("max_read_count"), "{msg}");
        assert!(msg.contains("\"ten\""), "{msg}");
        let msg = open_err("memory://?max_read_count=0").await;
        assert!(msg.contains("max_read_count"), "{msg}");
        let msg = open_err("memory://?durability=eventually").await;
        assert!(msg.contains("\"eventually\""), "{msg}");
    }

    #[tokio::test]
    async fn open_memory_takes_a_config() {
        let config = StoreConfig {
            durability: Durability::Relaxed,
            ..StoreConfig::default()
        };
        let store = open_memory(config).expect("open_memory");
        round_trip(&store).await;
        // Every handle is the same store.
        let other = Arc::clone(&store);
        assert!(other.has_events().await.expect("has_events"));
    }

    /// Outside a tokio runtime `open` runs on the calling thread instead of
    /// panicking for want of a blocking pool.
    #[test]
    fn opens_outside_a_runtime() {
        use std::future::Future;
        use std::pin::pin;
        use std::task::{Context, Poll, Waker};

        let mut future = pin!(open("memory://"));
        let mut cx = Context::from_waker(Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(_store)) => {}
            Poll::Ready(Err(e)) => panic!("open failed: {e}"),
            Poll::Pending => panic!("open waited for a runtime"),
        }
    }
}

#[cfg(feature = "redb")]
mod redb {
    use super::*;

    fn url(dir: &tempfile::TempDir, file: &str) -> String {
        Scheme::Redb
            .url_for(dir.path().join(file))
            .expect("a UTF-8 temporary path")
    }

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().expect("a temporary folder")
    }

    #[tokio::test]
    async fn opens_persists_and_reopens() {
        let dir = tempdir();
        let url = url(&dir, "nested/events.redb");
        let store = open(&url).await.expect("redb://");
        assert!(store.capabilities().persistent);
        round_trip(&store).await;
        store.close().await.expect("close");
        assert!(dir.path().join("nested/events.redb").is_file());

        let store = open(&url).await.expect("reopen");
        let page = store
            .read_all(Position::START, 10, Direction::Forward, None)
            .await
            .expect("read_all");
        assert_eq!(page.events.len(), 1);
        store.close().await.expect("close");
    }

    #[tokio::test]
    async fn takes_common_and_engine_options() {
        let dir = tempdir();
        let url = format!(
            "{}?durability=relaxed&max_read_count=7&cache_size=1048576&sync_interval_ms=0",
            url(&dir, "events.redb")
        );
        let store = open(&url).await.expect("valid options");
        assert_eq!(store.limits().max_read_count, 7);
        round_trip(&store).await;
        store.close().await.expect("close");
    }

    #[tokio::test]
    async fn refuses_bad_options_before_touching_the_disk() {
        let dir = tempdir();
        let file = dir.path().join("events.redb");
        let base = url(&dir, "events.redb");
        for (query, named) in [
            ("bogus=1", "bogus"),
            ("cache_size=lots", "cache_size"),
            ("durability=sometimes", "sometimes"),
            ("max_append_events=0", "max_append_events"),
        ] {
            let msg = open_err(&format!("{base}?{query}")).await;
            assert!(msg.contains(named), "{msg}");
        }
        assert!(!file.exists(), "a refused URL created {file:?}");
    }

    #[tokio::test]
    async fn io_errors_are_errors() {
        let dir = tempdir();
        // A folder where the file should be.
        std::fs::create_dir(dir.path().join("folder.redb")).expect("mkdir");
        let msg = open_err(&url(&dir, "folder.redb")).await;
        assert!(msg.contains("is a folder"), "{msg}");
        // A missing file with create=false.
        let err = open(&format!("{}?create=false", url(&dir, "missing.redb")))
            .await
            .expect_err("missing file");
        assert!(err.to_string().contains("missing.redb"), "{err}");
    }

    #[tokio::test]
    async fn existing_and_read_only_opens_create_nothing() {
        let dir = tempdir();
        let missing = url(&dir, "sub/missing.redb");
        for url in [missing.clone(), format!("{missing}?create=true")] {
            assert!(open_existing(&url).await.is_err());
            assert!(open_read_only(&url).await.is_err());
        }
        assert!(!dir.path().join("sub").exists(), "nothing created");
        let url = url(&dir, "events.redb");
        let store = open(&url).await.expect("created");
        round_trip(&store).await;
        store.close().await.expect("close");
        let store = open_existing(&url).await.expect("exists");
        round_trip(&store).await;
        store.close().await.expect("close");
        let store = open_read_only(&url).await.expect("exists");
        let refused = store.compact().await;
        assert!(matches!(refused, Err(Error::Unsupported(_))), "{refused:?}");
        store.close().await.expect("close");
        // The URL's limits, checked without opening anything.
        let config = StoreUrl::parse(&format!("{url}?max_event_bytes=1000&cache_size=10"))
            .and_then(|u| u.config())
            .expect("valid");
        assert_eq!(config.limits.max_event_bytes, 1000);
        let err = StoreUrl::parse(&format!("{url}?max_event_bytes=x"))
            .and_then(|u| u.config())
            .expect_err("invalid");
        assert!(err.to_string().contains("max_event_bytes"), "{err}");
    }

    #[tokio::test]
    async fn a_file_opens_once() {
        let dir = tempdir();
        let url = url(&dir, "events.redb");
        let store = open(&url).await.expect("first open");
        let err = open(&url).await.expect_err("the file is locked");
        assert!(!matches!(err, Error::InvalidInput { .. }), "{err:?}");
        store.close().await.expect("close");
    }
}

#[tokio::test]
async fn refuses_urls_it_cannot_open() {
    let mut cases = vec![
        ("mysql://localhost/events", "unknown scheme \"mysql\""),
        ("/var/lib/app/events.redb", "not a store URL"),
        ("", "not a store URL"),
        ("redb://", "needs a path"),
        ("memory:///x", "takes no path"),
    ];
    if !cfg!(feature = "redb") {
        cases.push(("redb:///x.redb", "feature \"redb\""));
    }
    if !cfg!(feature = "rocksdb") {
        cases.push(("rocksdb:///var/lib/app/events", "feature \"rocksdb\""));
    }
    if !cfg!(feature = "sled") {
        cases.push(("sled:///var/lib/app/events", "feature \"sled\""));
    }
    if !cfg!(feature = "postgres") {
        cases.push(("postgres://localhost/events", "feature \"postgres\""));
    }
    if !cfg!(feature = "memory") {
        cases.push(("memory://", "feature \"memory\""));
    }
    for (url, says) in cases {
        let msg = open_err(url).await;
        assert!(msg.contains(says), "{url:?}: {msg}");
    }
}

/// The folder backends: each opens by URL, keeps what it wrote across
/// reopen, and refuses an unknown option naming it.
#[cfg(any(feature = "rocksdb", feature = "sled", feature = "fjall"))]
mod folder_backends {
    use super::*;

    async fn opens_reopens_and_checks_options(scheme: Scheme, extra: &str) {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let base = scheme.url_for(dir.path().join("store")).expect("a URL");
        let url = format!("{base}?durability=relaxed{extra}");
        let store = open(&url).await.expect("opens");
        round_trip(&store).await;
        store.close().await.expect("close");
        let store = open(&url).await.expect("reopens");
        let stream = StreamId::new("s").expect("valid id");
        assert_eq!(
            store.stream_version(&stream).await.expect("kept"),
            Version(0)
        );
        store.close().await.expect("close");
        let msg = open_err(&format!("{base}?no_such_option=1")).await;
        assert!(msg.contains("no_such_option"), "{msg}");
        existing_and_read_only(scheme, &dir).await;
    }

    /// `open_existing` and `open_read_only` create nothing, whatever the
    /// URL says; a read-only store refuses writes.
    async fn existing_and_read_only(scheme: Scheme, dir: &tempfile::TempDir) {
        let missing = dir.path().join("missing");
        let url = scheme.url_for(&missing).expect("a URL");
        for create in ["", "?create=true", "?create_if_missing=true"] {
            let url = format!("{url}{create}");
            // An option of another backend is refused before anything.
            let _ = open_existing(&url).await.expect_err("missing");
            let _ = open_read_only(&url).await.expect_err("missing");
        }
        assert!(!missing.exists(), "nothing created");
        let store = open_read_only(&scheme.url_for(dir.path().join("store")).expect("a URL"))
            .await
            .expect("opens read-only");
        let stream = StreamId::new("s").expect("valid id");
        assert_eq!(
            store.stream_version(&stream).await.expect("read"),
            Version(0)
        );
        let refused = store
            .append(
                &stream,
                ExpectedVersion::Any,
                vec![NewEvent::builder("T").build()],
            )
            .await;
        assert!(matches!(refused, Err(Error::Unsupported(_))), "{refused:?}");
        store.close().await.expect("close");
    }

    #[cfg(feature = "rocksdb")]
    #[tokio::test]
    async fn rocksdb_by_url() {
        opens_reopens_and_checks_options(Scheme::RocksDb, "&compression=zstd").await;
    }

    #[cfg(feature = "sled")]
    #[tokio::test]
    async fn sled_by_url() {
        opens_reopens_and_checks_options(Scheme::Sled, "&flush_every_ms=100").await;
    }

    #[cfg(feature = "fjall")]
    #[tokio::test]
    async fn fjall_by_url() {
        opens_reopens_and_checks_options(Scheme::Fjall, "&cache_size=1048576").await;
    }
}

/// The postgres URL: annals' options are checked before any connection.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_url_options_are_checked_first() {
    let msg = open_err("postgres://app:secret@localhost:5432/events?cache=1").await;
    assert!(
        msg.contains("unknown option \"cache\" for the postgres backend"),
        "{msg}"
    );
    assert!(msg.contains("schema") && msg.contains("pool_size"), "{msg}");
    let msg = open_err("postgres://localhost/events?schema=Not-Valid").await;
    assert!(msg.contains("schema name \"Not-Valid\""), "{msg}");
    let msg = open_err("postgres://localhost/events?pool_size=0").await;
    assert!(msg.contains("pool_size"), "{msg}");
}

/// The driver registry: the shipped backends and one written elsewhere.
#[cfg(feature = "memory")]
mod registry {
    use super::*;
    use crate::driver::{Driver, Prepared, Target};

    /// A backend written outside annals: the memory engine under a scheme
    /// of its own, taking only the options every backend takes.
    const TOY: Driver = Driver {
        scheme: "toy",
        target: Target::Nothing,
        capabilities: Capabilities::ALL_IN_MEMORY,
        prepare: |request| {
            let config = StoreConfig::from_params("toy", request.params(), &[])?;
            Ok(Prepared::blocking(config, move || {
                annals_memory::open(config)
            }))
        },
    };

    #[tokio::test]
    async fn a_third_party_driver_opens_through_open_with() {
        let mut drivers = crate::drivers();
        drivers.push(&TOY);
        let store = open_with(&drivers, "TOY://?durability=relaxed")
            .await
            .expect("toy://");
        round_trip(&store).await;
        store.close().await.expect("close");

        let err = open_with(&drivers, "toy://?cache=1&password=s3cret")
            .await
            .expect_err("unknown option");
        let msg = err.to_string();
        assert!(err.is_invalid_input(), "{msg}");
        assert!(
            msg.contains("unknown option \"cache\" for the toy backend"),
            "{msg}"
        );
        assert!(
            msg.contains("password=***") && !msg.contains("s3cret"),
            "{msg}"
        );

        let err = open("toy://").await.expect_err("not among annals' drivers");
        assert!(err.to_string().contains("unknown scheme \"toy\""), "{err}");
        let err = open_with(&[&TOY], "memory://")
            .await
            .expect_err("only the drivers given");
        let msg = err.to_string();
        assert!(
            msg.contains("unknown scheme \"memory\"; annals knows toy"),
            "{msg}"
        );
    }

    #[test]
    fn every_shipped_scheme_has_its_driver_exactly_when_compiled_in() {
        for scheme in Scheme::all() {
            let driver = driver_for(scheme.name());
            assert_eq!(driver.is_some(), scheme.is_compiled(), "{scheme}");
            if let Some(driver) = driver {
                assert_eq!(Scheme::of(driver), scheme);
            }
        }
        assert_eq!(
            drivers().len(),
            Scheme::all().filter(|s| s.is_compiled()).count()
        );
    }
}
