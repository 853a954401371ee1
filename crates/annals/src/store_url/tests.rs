//! Every shape of store URL, good and bad.

use super::*;

fn parse(url: &str) -> StoreUrl {
    StoreUrl::parse(url).unwrap_or_else(|e| panic!("{url:?} should parse: {e}"))
}

/// The message of the `InvalidInput` that parsing `url` must give; checks
/// that it names the URL.
fn parse_err(url: &str) -> String {
    match StoreUrl::parse(url) {
        Ok(parsed) => panic!("{url:?} should not parse, got {parsed:?}"),
        Err(Error::InvalidInput { message: msg, .. }) => {
            let shown = redact(url);
            assert!(
                msg.contains(&format!("{shown:?}")),
                "{msg:?} does not name {shown:?}"
            );
            msg
        }
        Err(other) => panic!("{url:?}: not InvalidInput: {other:?}"),
    }
}

fn params(url: &StoreUrl) -> Vec<(&str, &str)> {
    url.params().collect()
}

#[test]
fn memory_takes_no_path() {
    for url in ["memory://", "memory://?", "MEMORY://", "Memory://?&"] {
        let parsed = parse(url);
        assert_eq!(parsed.scheme(), Scheme::Memory);
        assert_eq!(parsed.path(), None);
        assert!(params(&parsed).is_empty(), "{url}");
        assert_eq!(parsed.as_str(), url);
        assert_eq!(parsed.to_string(), url);
    }
    for url in [
        "memory:///tmp/x",
        "memory://x",
        "memory://%20?durability=relaxed",
    ] {
        let msg = parse_err(url);
        assert!(msg.contains("takes no path"), "{msg}");
    }
}

#[test]
fn options_are_decoded_in_order() {
    let parsed = parse("memory://?durability=relaxed&max_read_count=500");
    assert_eq!(
        params(&parsed),
        [("durability", "relaxed"), ("max_read_count", "500")]
    );
    // Empty pieces are skipped; `+` is a space and `%XX` a byte in options;
    // a value may contain `=`.
    let parsed = parse("memory://?&a=1&&b%5Fc=x+y%2Bz&d=e=f&");
    assert_eq!(
        params(&parsed),
        [("a", "1"), ("b_c", "x y+z"), ("d", "e=f")]
    );
    // An empty value is a value.
    assert_eq!(params(&parse("memory://?a=")), [("a", "")]);
}

#[test]
fn bad_options() {
    let msg = parse_err("memory://?durability");
    assert!(msg.contains("option \"durability\" has no value"), "{msg}");
    let msg = parse_err("memory://?=relaxed");
    assert!(msg.contains("has no name"), "{msg}");
    let msg = parse_err("memory://?a=1&a=2");
    assert!(msg.contains("option \"a\" is given twice"), "{msg}");
    // Twice after decoding counts too.
    let msg = parse_err("memory://?a=1&%61=2");
    assert!(msg.contains("given twice"), "{msg}");
    let msg = parse_err("memory://?a=%zz");
    assert!(msg.contains("value of option \"a\""), "{msg}");
    let msg = parse_err("memory://?%ff=1");
    assert!(msg.contains("not UTF-8"), "{msg}");
}

#[test]
fn redb_paths() {
    for (url, path) in [
        ("redb:///abs/path/file.redb", "/abs/path/file.redb"),
        ("redb://./relative/file.redb", "./relative/file.redb"),
        ("redb://relative.redb", "relative.redb"),
        ("redb:///a/..b/c..", "/a/..b/c.."),
        ("redb:///a/./b.redb", "/a/./b.redb"),
        ("redb://.../x", ".../x"),
        ("REDB:///x.redb", "/x.redb"),
        ("redb:///a%20b/c%3Fd%23e%25f.redb", "/a b/c?d#e%f.redb"),
        // `+` is literal in a path; only options use it for spaces.
        ("redb:///a+b.redb", "/a+b.redb"),
        ("redb:///d%C3%A9j%C3%A0/vu.redb", "/déjà/vu.redb"),
        ("redb:///déjà/vu.redb", "/déjà/vu.redb"),
        ("redb:///a b.redb", "/a b.redb"),
        ("redb:///C:/data/e.redb", "/C:/data/e.redb"),
        ("redb://C:/data/e.redb", "C:/data/e.redb"),
        // A URL-shaped path is still a path: there is no host part.
        ("redb://localhost/e.redb", "localhost/e.redb"),
        ("redb:///x.redb://y", "/x.redb://y"),
    ] {
        let parsed = parse(url);
        assert_eq!(parsed.scheme(), Scheme::Redb, "{url}");
        assert_eq!(parsed.path(), Some(Path::new(path)), "{url}");
        assert!(params(&parsed).is_empty(), "{url}");
    }
    let parsed = parse("redb:///var/lib/app/events.redb?durability=relaxed&cache_size=1048576");
    assert_eq!(parsed.path(), Some(Path::new("/var/lib/app/events.redb")));
    assert_eq!(
        params(&parsed),
        [("durability", "relaxed"), ("cache_size", "1048576")]
    );
}

#[test]
fn redb_needs_a_path() {
    for url in ["redb://", "redb://?durability=relaxed", "redb://?"] {
        let msg = parse_err(url);
        assert!(msg.contains("needs a path"), "{msg}");
        assert!(msg.contains("redb:///absolute/path"), "{msg}");
    }
}

#[test]
fn bad_paths() {
    for url in [
        "redb:///x%",
        "redb:///x%4",
        "redb:///x%zz.redb",
        "redb:///x%%41",
    ] {
        let msg = parse_err(url);
        assert!(msg.contains("in the path"), "{msg}");
        assert!(msg.contains("%25"), "{msg}");
    }
    let msg = parse_err("redb:///x%FF.redb");
    assert!(msg.contains("not UTF-8"), "{msg}");
    let msg = parse_err("redb:///x%00.redb");
    assert!(msg.contains("NUL"), "{msg}");
    let msg = parse_err("redb:///x.redb#frag");
    assert!(msg.contains("%23"), "{msg}");
}

#[test]
fn parent_components_are_refused() {
    for url in [
        "redb:///../../etc/x",
        "redb://../up.redb",
        "redb:///srv/app/../../etc/passwd",
        "redb:///a/%2E%2E/b.redb",
        "redb:///a/%2e%2e",
        "redb://..",
        "sled:///data/..",
        "rocksdb://x/../y?durability=relaxed",
    ] {
        let msg = parse_err(url);
        assert!(msg.contains("\"..\" component"), "{url}: {msg}");
        assert!(msg.contains("trusted configuration"), "{url}: {msg}");
    }
    // A postgres URL's "path" is its connection part, not a file path.
    assert!(StoreUrl::parse("postgres://u:a/../b@host/db").is_ok());
    let err = Scheme::Redb
        .url_for("/srv/../etc/x.redb")
        .expect_err("a .. component");
    assert!(err.to_string().contains("\"..\" component"), "{err}");
}

/// The message of the `InvalidInput` that `check_compiled` must give for
/// `url`, which parses.
fn compiled_err(url: &str) -> String {
    match parse(url).check_compiled() {
        Ok(()) => panic!("{url:?} should not be compiled in"),
        Err(Error::InvalidInput { message: msg, .. }) => {
            let shown = redact(url);
            assert!(
                msg.contains(&format!("{shown:?}")),
                "{msg:?} does not name {shown:?}"
            );
            msg
        }
        Err(other) => panic!("{url:?}: not InvalidInput: {other:?}"),
    }
}

#[test]
fn backends_not_compiled_name_their_feature() {
    for (url, scheme) in [
        ("memory://", Scheme::Memory),
        ("redb:///x.redb", Scheme::Redb),
    ] {
        if scheme.is_compiled() {
            assert!(parse(url).check_compiled().is_ok(), "{url}");
        } else {
            let msg = compiled_err(url);
            assert!(
                msg.contains(&format!("compiled without feature \"{scheme}\"")),
                "{msg}"
            );
            assert!(msg.contains(&format!("features = [\"{scheme}\"]")), "{msg}");
        }
    }
}

#[test]
#[cfg(not(any(feature = "rocksdb", feature = "sled")))]
fn optional_backends_not_compiled_name_their_feature() {
    for (url, feature) in [
        ("rocksdb:///var/lib/app/events", "rocksdb"),
        ("sled:///var/lib/app/events", "sled"),
        ("RocksDB://rel/dir?durability=relaxed", "rocksdb"),
    ] {
        let msg = compiled_err(url);
        assert!(
            msg.contains(&format!("compiled without feature \"{feature}\"")),
            "{msg}"
        );
        assert!(msg.contains("enable it in Cargo.toml"), "{msg}");
    }
}

#[test]
fn unknown_schemes_list_the_known_ones() {
    for (url, scheme) in [
        ("mysql://localhost/events", "mysql"),
        ("file:///tmp/x", "file"),
        ("://x", ""),
        ("redbx:///x", "redbx"),
    ] {
        let msg = parse_err(url);
        assert!(msg.contains(&format!("unknown scheme {scheme:?}")), "{msg}");
        for known in Scheme::all() {
            assert!(msg.contains(known.name()), "{msg} lacks {known}");
        }
        if !cfg!(feature = "rocksdb") {
            assert!(msg.contains("rocksdb (needs feature \"rocksdb\")"), "{msg}");
        }
    }
}

#[test]
fn not_a_url() {
    for url in [
        "",
        "events.redb",
        "/var/lib/app/events.redb",
        "C:\\data\\e.redb",
        "memory",
    ] {
        let msg = parse_err(url);
        assert!(msg.contains("not a store URL"), "{msg}");
        assert!(msg.contains("redb:///"), "{msg}");
    }
    for (url, suggestion) in [
        ("redb:/tmp/x.redb", "redb:///tmp/x.redb"),
        ("redb:events.redb", "redb://events.redb"),
        ("Redb:", "redb://"),
        ("memory:", "memory://"),
        ("memory:/", "memory://"),
        ("sled:x", "sled://x"),
    ] {
        let msg = parse_err(url);
        assert!(
            msg.contains(&format!("did you mean {suggestion:?}")),
            "{msg}"
        );
    }
}

#[test]
fn from_str_is_parse() {
    let parsed: Result<StoreUrl> = "mysql://x".parse();
    assert!(matches!(parsed, Err(Error::InvalidInput { .. })));
}

#[test]
fn url_for_round_trips() {
    for path in [
        "/var/lib/app/events.redb",
        "relative/events.redb",
        "./events.redb",
        "/a b/c?d#e%f&g=h+i.redb",
        "/déjà/vu\n\t\u{7f}.redb",
        "/%41%zz",
    ] {
        let url = Scheme::Redb
            .url_for(path)
            .unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert!(!url.contains(' ') && !url.contains('\n'), "{url}");
        let parsed = parse(&url);
        assert_eq!(parsed.path(), Some(Path::new(path)), "{url}");
        // Options appended after the encoded path stay options.
        let parsed = parse(&format!("{url}?durability=relaxed"));
        assert_eq!(parsed.path(), Some(Path::new(path)), "{url}");
        assert_eq!(params(&parsed), [("durability", "relaxed")]);
    }
    assert_eq!(
        Scheme::Redb.url_for("/a b?.redb").ok().as_deref(),
        Some("redb:///a%20b%3F.redb")
    );
}

#[test]
fn url_for_refuses_what_a_url_cannot_carry() {
    let err = Scheme::Memory
        .url_for("/tmp/x")
        .expect_err("memory takes no path");
    assert!(err.to_string().contains("takes no path"), "{err}");
    let err = Scheme::Postgres
        .url_for("/tmp/x")
        .expect_err("postgres names a server");
    assert!(err.to_string().contains("names a server"), "{err}");
    let err = Scheme::Redb.url_for("").expect_err("empty path");
    assert!(err.to_string().contains("needs a path"), "{err}");
    #[cfg(unix)]
    {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let err = Scheme::Redb
            .url_for(OsStr::from_bytes(b"/tmp/\xff.redb"))
            .expect_err("not UTF-8");
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }
}

#[test]
fn scheme_names_and_features() {
    let names: Vec<&str> = Scheme::all().map(|s| s.name()).collect();
    assert_eq!(
        names,
        ["memory", "redb", "rocksdb", "sled", "fjall", "postgres"]
    );
    assert_eq!(Scheme::Fjall.is_compiled(), cfg!(feature = "fjall"));
    assert!(Scheme::Fjall.takes_path());
    assert_eq!(Scheme::Postgres.is_compiled(), cfg!(feature = "postgres"));
    assert_eq!(Scheme::Memory.is_compiled(), cfg!(feature = "memory"));
    assert_eq!(Scheme::Redb.is_compiled(), cfg!(feature = "redb"));
    assert_eq!(Scheme::RocksDb.is_compiled(), cfg!(feature = "rocksdb"));
    assert_eq!(Scheme::Sled.is_compiled(), cfg!(feature = "sled"));
    assert!(!Scheme::Memory.takes_path());
    assert!(Scheme::Redb.takes_path() && Scheme::RocksDb.takes_path() && Scheme::Sled.takes_path());
}

/// Every short string over the characters that matter to the parser, alone
/// and after each scheme: parsing answers Ok or `InvalidInput`, never a
/// panic, and what parses keeps its path free of NUL.
#[test]
fn never_panics() {
    const ALPHABET: [&str; 16] = [
        ":", "/", "?", "#", "%", "=", "&", "+", "a", "F", "é", "\0", "%0", "://", "..", "%2E",
    ];
    let mut tails = vec![String::new()];
    for _ in 0..3 {
        let longer: Vec<String> = tails
            .iter()
            .flat_map(|t| ALPHABET.iter().map(move |c| format!("{t}{c}")))
            .collect();
        tails.extend(longer);
    }
    tails.sort();
    tails.dedup();
    for prefix in [
        "",
        "memory",
        "memory://",
        "redb://",
        "redb:///",
        "sled://",
        "x://",
    ] {
        for tail in &tails {
            let url = format!("{prefix}{tail}");
            match StoreUrl::parse(&url) {
                Ok(parsed) => {
                    let path = parsed.path().unwrap_or(Path::new(""));
                    assert!(!path.to_string_lossy().contains('\0'), "{url:?}");
                    assert!(
                        !path
                            .components()
                            .any(|c| c == std::path::Component::ParentDir),
                        "{url:?}"
                    );
                }
                Err(Error::InvalidInput { .. }) => {}
                Err(other) => panic!("{url:?}: {other:?}"),
            }
        }
    }
}

#[test]
fn postgres_urls_name_a_server_and_hide_the_password() {
    assert!(!Scheme::Postgres.takes_path() && Scheme::Postgres.takes_server());
    let url = parse("postgres://alice:s3cret@db.example:5432/app?schema=shop&sslmode=require");
    assert_eq!(url.scheme(), Scheme::Postgres);
    assert_eq!(url.path(), None);
    assert_eq!(params(&url), [("schema", "shop"), ("sslmode", "require")]);
    assert_eq!(
        url.as_str(),
        "postgres://alice:s3cret@db.example:5432/app?schema=shop&sslmode=require"
    );
    for (given, shown) in [
        (
            "postgres://alice:s3cret@db.example:5432/app?schema=shop",
            "postgres://alice:***@db.example:5432/app?schema=shop",
        ),
        ("postgres://alice@db/app", "postgres://alice@db/app"),
        (
            "postgres://db/app?password=s3cret",
            "postgres://db/app?password=***",
        ),
        ("postgres://a:s3c/ret@db/app", "postgres://a:***@db/app"),
        (
            "postgres://a:s3c?ret@db/app?schema=x",
            "postgres://a:***@db/app?schema=x",
        ),
        (
            "postgres://db/app?sslrootcert=/etc/a@b.pem",
            "postgres://db/app?sslrootcert=/etc/a@b.pem",
        ),
        // A path may hold `@` and `:`: it is shown as it is.
        ("redb:///data/a:b@c.redb", "redb:///data/a:b@c.redb"),
        ("postgres:alice:s3cret@db/app", "postgres:***@db/app"),
    ] {
        assert_eq!(redact(given), shown, "{given}");
    }
    // A socket folder as the host, percent-encoded, is no path either.
    let socket = parse("postgres://annals@%2Ftmp%2Fpg/postgres");
    assert_eq!(socket.path(), None);
    assert!(!format!("{url:?}").contains("s3cret"));
}
