//! Store URLs: `scheme://path?key=value&…`, parsed without any I/O.
//!
//! Parsed by hand rather than with the `url` crate: a store URL has no host,
//! and the WHATWG rules would read `redb://data/events.redb` as host `data`;
//! by hand, every error can also say exactly what to write instead.

use std::collections::HashSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use annals_core::driver::{Access, Driver, OpenRequest, Prepared, Target};
use annals_core::{Error, Field, Result};

/// A backend a store URL can name: its scheme and what the part after
/// `://` names. The backends annals ships have a constant each
/// ([`Scheme::Redb`], …) whether or not they are compiled in; any other
/// backend's is [`Scheme::of`] its [`Driver`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Scheme {
    name: &'static str,
    target: Target,
}

#[allow(non_upper_case_globals)]
impl Scheme {
    /// `memory://`: the in-memory backend (cargo feature `memory`).
    pub const Memory: Scheme = Scheme::new("memory", Target::Nothing);
    /// `redb:///path/file.redb`: the embedded default backend, one redb file
    /// (cargo feature `redb`).
    pub const Redb: Scheme = Scheme::new("redb", Target::File);
    /// `rocksdb:///path/dir`: a RocksDB folder (cargo feature `rocksdb`).
    pub const RocksDb: Scheme = Scheme::new("rocksdb", Target::Folder);
    /// `sled:///path/dir`: a sled folder (cargo feature `sled`).
    pub const Sled: Scheme = Scheme::new("sled", Target::Folder);
    /// `fjall:///path/dir`: a fjall folder (cargo feature `fjall`).
    pub const Fjall: Scheme = Scheme::new("fjall", Target::Folder);
    /// `postgres://user:pass@host:port/db?schema=…`: a schema of a
    /// PostgreSQL database (cargo feature `postgres`); its "path" is the
    /// connection's `user:pass@host:port/db`.
    pub const Postgres: Scheme = Scheme::new("postgres", Target::Server);

    /// A scheme named `name` (lowercase) whose URLs name `target`.
    pub const fn new(name: &'static str, target: Target) -> Scheme {
        Scheme { name, target }
    }

    /// The scheme of a driver's URLs.
    pub const fn of(driver: &Driver) -> Scheme {
        Scheme::new(driver.scheme, driver.target)
    }

    /// Every backend annals ships, compiled in or not, in the order error
    /// messages list them.
    pub fn all() -> impl Iterator<Item = Scheme> {
        crate::SHIPPED.iter().map(|(scheme, _)| *scheme)
    }

    /// The scheme as written in a URL (`"redb"`); for the backends annals
    /// ships, also the name of the cargo feature that compiles it in.
    pub fn name(self) -> &'static str {
        self.name
    }

    /// What the part of its URLs after `://` names.
    pub fn target(self) -> Target {
        self.target
    }

    /// Whether this build of annals can open stores of this scheme
    /// ([`annals::drivers`](crate::drivers) has its driver).
    pub fn is_compiled(self) -> bool {
        crate::drivers().iter().any(|d| d.scheme == self.name)
    }

    /// Whether a URL of this scheme names a file or folder (`redb`,
    /// `rocksdb`, `sled`, `fjall`; not `memory`, nor `postgres`, whose URL
    /// names a server).
    pub fn takes_path(self) -> bool {
        self.target.takes_path()
    }

    /// Whether a URL of this scheme names a database server
    /// (`postgres://user:password@host:port/db`): its part between `://`
    /// and `?` is the connection, passed as written to the driver, and its
    /// password is never shown ([`StoreUrl::redacted`]).
    pub fn takes_server(self) -> bool {
        self.target == Target::Server
    }

    /// The URL of a store at `path`, with `%`, `?`, `#`, spaces and control
    /// characters percent-encoded, so that [`StoreUrl::parse`] gives `path`
    /// back. Append options as `?key=value&…`.
    ///
    /// Fails for [`Scheme::Memory`] (it takes no path) and
    /// [`Scheme::Postgres`] (it names a server), for an empty path, a path
    /// with a `..` component (see [`StoreUrl`]), and for a path that is not
    /// UTF-8 (a store URL cannot carry it; open
    /// such a store through its backend crate, e.g. [`crate::redb::open`]).
    ///
    /// ```
    /// use annals::{Scheme, StoreUrl};
    /// let url = Scheme::Redb.url_for("/var/lib/my app/events?.redb")?;
    /// assert_eq!(url, "redb:///var/lib/my%20app/events%3F.redb");
    /// let parsed = StoreUrl::parse(&format!("{url}?durability=relaxed"))?;
    /// assert_eq!(parsed.path(), Some("/var/lib/my app/events?.redb".as_ref()));
    /// # Ok::<(), annals::Error>(())
    /// ```
    pub fn url_for(self, path: impl AsRef<Path>) -> Result<String> {
        let path = path.as_ref();
        if self.takes_server() {
            return Err(Error::malformed(
                Field::StoreUrl,
                format!(
                    "the {self} backend names a server, not a path: write \
                     {self}://user:password@host:port/database"
                ),
            ));
        }
        if !self.takes_path() {
            return Err(Error::malformed(
                Field::StoreUrl,
                format!(
                    "the {self} backend takes no path (its URL is {self}://), but got {path:?}"
                ),
            ));
        }
        let Some(text) = path.to_str() else {
            return Err(Error::malformed(
                Field::StoreUrl,
                format!(
                    "path {path:?} is not UTF-8, which a store URL cannot carry; \
                     open the store through its backend crate instead"
                ),
            ));
        };
        if text.is_empty() {
            return Err(Error::empty(
                Field::StoreUrl,
                format!("the {self} backend needs a path, but got an empty one"),
            ));
        }
        check_path(path)
            .map_err(|why| Error::malformed(Field::StoreUrl, format!("path {path:?}: {why}")))?;
        let mut url = format!("{self}://");
        for c in text.chars() {
            match c {
                '%' | '?' | '#' | ' ' => push_escaped(&mut url, c),
                c if c.is_control() => push_escaped(&mut url, c),
                c => url.push(c),
            }
        }
        Ok(url)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Appends `c` as `%XX` escapes of its UTF-8 bytes.
fn push_escaped(out: &mut String, c: char) {
    let mut buf = [0u8; 4];
    for byte in c.encode_utf8(&mut buf).bytes() {
        out.push_str(&format!("%{byte:02X}"));
    }
}

/// A parsed store URL: which backend, where, and with which options.
///
/// The syntax is `scheme://path?key=value&key=value`:
///
/// - `scheme` is one of [`Scheme::all`] (case-insensitive), or of the
///   drivers given to [`StoreUrl::parse_with`];
/// - `path` is everything between `://` and `?`, percent-decoded:
///   `redb:///var/lib/app/events.redb` is the absolute path
///   `/var/lib/app/events.redb`; `redb://events.redb` or
///   `redb://./data/events.redb` are relative to the current directory.
///   There is no host part. `memory://` takes no path. Write `%` as `%25`,
///   `?` as `%3F` and `#` as `%23` ([`Scheme::url_for`] does it). A path
///   with a `..` component (`redb:///srv/app/../../etc/x`, also written
///   `%2E%2E`) is refused: a store's path says where it is, without
///   climbing out of a folder;
/// - options are `key=value` pairs, percent-decoded (`+` is a space), each
///   key at most once. Which keys exist depends on the backend; the
///   options every backend takes are `durability` (`immediate` |
///   `relaxed`), `max_event_bytes`, `max_append_events`, `max_append_bytes`
///   and `max_read_count`.
///
/// **A store URL is trusted configuration, never user input.** It chooses
/// which files a program creates, opens and writes (any absolute path the
/// process may write to) and how (`create`, `file_mode`, …). Take it from
/// the program's own configuration; never build it from what a user of
/// the program typed or sent. Refusing `..` only keeps honest mistakes
/// out: it confines nothing.
///
/// Parsing checks the syntax, the scheme and the path, in any build of
/// annals; [`open`](crate::open) then checks that the backend is compiled
/// in ([`StoreUrl::check_compiled`]) and its options, before it touches the
/// disk. Every error is [`Error::InvalidInput`] naming the URL.
///
/// ```
/// use annals::{Scheme, StoreUrl};
/// let url = StoreUrl::parse("redb:///var/lib/app/events.redb?durability=relaxed")?;
/// assert_eq!(url.scheme(), Scheme::Redb);
/// assert_eq!(url.path(), Some("/var/lib/app/events.redb".as_ref()));
/// assert_eq!(url.params().collect::<Vec<_>>(), [("durability", "relaxed")]);
///
/// let err = StoreUrl::parse("mysql://localhost/events").unwrap_err();
/// assert!(err.to_string().contains("unknown scheme \"mysql\""));
/// # Ok::<(), annals::Error>(())
/// ```
#[derive(Clone)]
pub struct StoreUrl {
    url: String,
    scheme: Scheme,
    /// `None` when the backend is not compiled in.
    driver: Option<&'static Driver>,
    path: Option<PathBuf>,
    params: Vec<(String, String)>,
}

/// The schemes a parse knows: each with its driver when compiled in.
type Known<'a> = &'a [(Scheme, Option<&'static Driver>)];

impl StoreUrl {
    /// Parses a store URL (see the type's documentation) of a backend
    /// annals ships. Does no I/O.
    pub fn parse(url: &str) -> Result<StoreUrl> {
        StoreUrl::parse_in(crate::SHIPPED, url)
    }

    /// Parses a store URL of one of `drivers` (and only those): a backend
    /// written outside annals. Does no I/O.
    ///
    /// ```
    /// use annals::StoreUrl;
    /// # if annals::Scheme::Memory.is_compiled() {
    /// let drivers = annals::drivers();
    /// let url = StoreUrl::parse_with(&drivers, "memory://?durability=relaxed")?;
    /// assert_eq!(url.scheme().name(), "memory");
    /// assert!(StoreUrl::parse_with(&[], "memory://").is_err());
    /// # }
    /// # Ok::<(), annals::Error>(())
    /// ```
    pub fn parse_with(drivers: &[&'static Driver], url: &str) -> Result<StoreUrl> {
        let known: Vec<_> = drivers.iter().map(|d| (Scheme::of(d), Some(*d))).collect();
        StoreUrl::parse_in(&known, url)
    }

    fn parse_in(known: Known<'_>, url: &str) -> Result<StoreUrl> {
        let invalid = |why: String| {
            Error::malformed(
                Field::StoreUrl,
                format!("store URL {:?}: {why}", redact(url)),
            )
        };

        let Some((scheme_text, rest)) = url.split_once("://") else {
            return Err(invalid(missing_separator(url)));
        };
        let (scheme, driver) = *known
            .iter()
            .find(|(s, _)| s.name().eq_ignore_ascii_case(scheme_text))
            .ok_or_else(|| invalid(unknown_scheme(known, scheme_text)))?;
        if rest.contains('#') {
            return Err(invalid(
                "it has a fragment (#…), which store URLs do not use; write # in a path as %23"
                    .into(),
            ));
        }
        let (raw_path, raw_query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };

        // A server's connection part is the driver's to decode; decoding
        // errors here could show its password.
        let path = if scheme.takes_server() {
            String::new()
        } else {
            decode(raw_path, false).map_err(|why| invalid(format!("in the path: {why}")))?
        };
        let path = match (scheme.takes_path(), path.is_empty()) {
            (true, false) => {
                if path.contains('\0') {
                    return Err(invalid("the path contains a NUL byte (%00)".into()));
                }
                let path = PathBuf::from(path);
                check_path(&path).map_err(|why| invalid(format!("path {path:?}: {why}")))?;
                Some(path)
            }
            (true, true) => {
                return Err(invalid(format!(
                    "the {scheme} backend needs a path: {scheme}:///absolute/path or \
                     {scheme}://relative/path"
                )));
            }
            (false, true) => None,
            (false, false) => {
                return Err(invalid(format!(
                    "the {scheme} backend takes no path, but got {path:?}; write \
                     {scheme}:// (options go after ?)"
                )));
            }
        };

        let mut params: Vec<(String, String)> = Vec::new();
        let mut seen = HashSet::new();
        // Empty pieces (`?`, `a=1&&b=2`, a trailing `&`) are skipped, as
        // form decoding does.
        for piece in raw_query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let Some((raw_key, raw_value)) = piece.split_once('=') else {
                return Err(invalid(format!(
                    "option {piece:?} has no value; write key=value"
                )));
            };
            let key = decode(raw_key, true)
                .map_err(|why| invalid(format!("in option {raw_key:?}: {why}")))?;
            let value = decode(raw_value, true).map_err(|why| {
                if is_secret(&key) {
                    invalid(format!(
                        "the value of option {key:?} is not valid percent-encoded UTF-8"
                    ))
                } else {
                    invalid(format!("in the value of option {key:?}: {why}"))
                }
            })?;
            if key.is_empty() {
                return Err(invalid(format!(
                    "option {piece:?} has no name; write key=value"
                )));
            }
            if !seen.insert(key.clone()) {
                return Err(invalid(format!("option {key:?} is given twice")));
            }
            params.push((key, value));
        }

        Ok(StoreUrl {
            url: url.to_string(),
            scheme,
            driver,
            path,
            params,
        })
    }

    /// Fails with [`Error::InvalidInput`] naming the cargo feature to
    /// enable unless this build of annals can open this URL's backend.
    ///
    /// ```
    /// use annals::StoreUrl;
    /// let url = StoreUrl::parse("rocksdb:///var/lib/app/events")?;
    /// match url.check_compiled() {
    ///     Ok(()) => assert!(annals::Scheme::RocksDb.is_compiled()),
    ///     Err(err) => assert!(err.to_string().contains("compiled without feature \"rocksdb\"")),
    /// }
    /// # Ok::<(), annals::Error>(())
    /// ```
    pub fn check_compiled(&self) -> Result<()> {
        self.driver().map(|_| ())
    }

    /// The driver that opens this URL, or the error of
    /// [`StoreUrl::check_compiled`].
    pub fn driver(&self) -> Result<&'static Driver> {
        self.driver
            .ok_or_else(|| self.invalid(not_compiled(self.scheme)))
    }

    /// Checks the options as its driver reads them (no I/O) and says how
    /// to open the store, `access` taking away what it does not allow.
    pub(crate) fn prepare(&self, access: Access) -> Result<Prepared> {
        let request = OpenRequest {
            url: &self.url,
            path: self.path.as_deref(),
            params: &self.params,
            access,
        };
        (self.driver()?.prepare)(&request).map_err(|e| self.in_context(e))
    }

    /// The durability and limits a store opened from this URL will have,
    /// from its options, which are all checked as [`open`](crate::open)
    /// checks them (the backend must be compiled in). No I/O: a program
    /// can check its input against the store's limits before it opens, or
    /// creates, anything.
    ///
    /// ```
    /// use annals::StoreUrl;
    /// if annals::Scheme::Redb.is_compiled() {
    ///     let url = StoreUrl::parse("redb:///var/lib/app/e.redb?max_event_bytes=1024")?;
    ///     assert_eq!(url.config()?.limits.max_event_bytes, 1024);
    /// }
    /// # Ok::<(), annals::Error>(())
    /// ```
    pub fn config(&self) -> Result<annals_core::StoreConfig> {
        self.prepare(Access::AsTheUrlSays)
            .map(|prepared| prepared.config)
    }

    /// The backend.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The decoded path; `None` for `memory://`.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The decoded options, in the URL's order.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The URL as given, password and all: pass it to what opens the
    /// store, never to a message or a log (use [`StoreUrl::redacted`] or
    /// `Display`).
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The URL with its password (`user:password@` and any `password=`
    /// option) replaced by `***`: what messages, `Display` and `Debug` show.
    ///
    /// ```
    /// use annals::StoreUrl;
    /// let url = StoreUrl::parse("postgres://app:s3cret@db.example:5432/events?schema=shop")?;
    /// assert_eq!(url.redacted(), "postgres://app:***@db.example:5432/events?schema=shop");
    /// assert_eq!(url.to_string(), url.redacted());
    /// assert!(!format!("{url:?}").contains("s3cret"));
    /// # Ok::<(), annals::Error>(())
    /// ```
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }

    /// An [`Error::InvalidInput`] about this URL.
    pub(crate) fn invalid(&self, why: impl fmt::Display) -> Error {
        Error::malformed(
            Field::StoreUrl,
            format!("store URL {:?}: {why}", self.redacted()),
        )
    }

    /// Puts this URL in front of an option's [`Error::InvalidInput`] (its
    /// reason kept); other errors pass through.
    pub(crate) fn in_context(&self, error: Error) -> Error {
        if error.is_invalid_input() {
            error.in_context(format_args!("store URL {:?}", self.redacted()))
        } else {
            error
        }
    }
}

/// Two URLs are equal when they are written alike and name the same
/// scheme (whose driver is then the same).
impl PartialEq for StoreUrl {
    fn eq(&self, other: &StoreUrl) -> bool {
        (&self.url, self.scheme, &self.path, &self.params)
            == (&other.url, other.scheme, &other.path, &other.params)
    }
}

impl Eq for StoreUrl {}

impl FromStr for StoreUrl {
    type Err = Error;
    fn from_str(url: &str) -> Result<StoreUrl> {
        StoreUrl::parse(url)
    }
}

/// The URL without its password ([`StoreUrl::redacted`]).
impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Shows the URL without its password ([`StoreUrl::redacted`]).
impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreUrl")
            .field("url", &self.redacted())
            .field("scheme", &self.scheme)
            .field("path", &self.path)
            .field("params", &RedactedParams(&self.params))
            .finish()
    }
}

struct RedactedParams<'a>(&'a [(String, String)]);

impl fmt::Debug for RedactedParams<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, v)| {
                let v = if is_secret(k) { "***" } else { v.as_str() };
                (k.as_str(), v)
            }))
            .finish()
    }
}

/// Whether an option's value is a secret, never shown.
fn is_secret(key: &str) -> bool {
    key.eq_ignore_ascii_case("password")
}

/// `url` with the password of its user info and the value of any
/// `password` option replaced by `***`. Works on any text, parsed or not
/// (error messages about malformed URLs show it too); the user info of
/// URLs whose scheme names a file (redb, rocksdb, sled, memory) is kept, as
/// `@` and `:` are ordinary characters of a path.
pub(crate) fn redact(url: &str) -> String {
    let (head, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        // No `://`: a malformed URL; hide whatever precedes an `@`.
        None => {
            return match url.rsplit_once('@') {
                Some((before, after)) => match before.split_once(':') {
                    Some((scheme, _)) => format!("{scheme}:***@{after}"),
                    None => format!("***@{after}"),
                },
                None => url.to_string(),
            };
        }
    };
    let is_path = Scheme::all()
        .any(|s| !s.takes_server() && s.name().eq_ignore_ascii_case(head.trim_end_matches("://")));
    let mut out = head;
    let mut rest = rest;
    if !is_path {
        // The user info ends at the last `@` before any option value, even
        // when a careless password holds a raw `/`, `?` or `#`.
        let options_start = rest.find('=').unwrap_or(rest.len());
        if let Some(at) = rest.get(..options_start).and_then(|r| r.rfind('@')) {
            let userinfo = rest.get(..at).unwrap_or_default();
            match userinfo.split_once(':') {
                Some((user, _)) => out.push_str(&format!("{user}:***@")),
                None => out.push_str(&format!("{userinfo}@")),
            }
            rest = rest.get(at + 1..).unwrap_or_default();
        }
    }
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    out.push_str(location);
    if let Some(query) = query {
        out.push('?');
        let pieces: Vec<String> = query
            .split('&')
            .map(|piece| match piece.split_once('=') {
                Some((key, _)) if decode(key, true).is_ok_and(|k| is_secret(&k)) => {
                    format!("{key}=***")
                }
                _ => piece.to_string(),
            })
            .collect();
        out.push_str(&pieces.join("&"));
    }
    out
}

/// Why a text without `://` is not a store URL, with what to write.
fn missing_separator(url: &str) -> String {
    let example = "memory:// or redb:///var/lib/app/events.redb";
    if let Some((head, rest)) = url.split_once(':')
        && let Some(scheme) = Scheme::all().find(|s| s.name().eq_ignore_ascii_case(head))
    {
        let absolute = rest.starts_with('/');
        let rest = rest.trim_start_matches('/');
        let suggestion = match (scheme.takes_path(), absolute) {
            // `redb:/tmp/x` most likely meant the absolute path.
            (true, true) => format!("{scheme}:///{rest}"),
            (true, false) => format!("{scheme}://{rest}"),
            (false, _) => format!("{scheme}://"),
        };
        return format!(
            "expected \"://\" after the scheme; did you mean {suggestion:?}? (e.g. {example})"
        );
    }
    format!("not a store URL; expected scheme://path?options, e.g. {example}")
}

/// Lists the schemes a parse knows, marking those not compiled in.
fn known_schemes(known: Known<'_>) -> String {
    let names: Vec<String> = known
        .iter()
        .map(|(s, driver)| match driver {
            None => format!("{s} (needs feature \"{s}\")"),
            Some(_) => s.name().to_string(),
        })
        .collect();
    names.join(", ")
}

fn unknown_scheme(known: Known<'_>, scheme: &str) -> String {
    format!(
        "unknown scheme {scheme:?}; annals knows {}",
        known_schemes(known)
    )
}

fn not_compiled(scheme: Scheme) -> String {
    format!(
        "annals was compiled without feature \"{scheme}\"; enable it in Cargo.toml: \
         annals = {{ version = \"{}\", features = [\"{scheme}\"] }}",
        env!("CARGO_PKG_VERSION")
    )
}

/// Why a store's path is refused: a `..` component.
fn check_path(path: &Path) -> std::result::Result<(), String> {
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(
            "it has a \"..\" component; write the path without climbing out of a folder \
             (a store URL is trusted configuration: build it from the program's own settings, \
             never from user input)"
                .into(),
        );
    }
    Ok(())
}

/// Percent-decodes `raw` (and, in a query, `+` to a space); the result must
/// be UTF-8.
fn decode(raw: &str, plus_is_space: bool) -> std::result::Result<String, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(byte) = bytes.next() {
        match byte {
            b'%' => {
                let high = bytes.next().and_then(hex_value);
                let low = bytes.next().and_then(hex_value);
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(format!(
                        "{raw:?} has a % not followed by two hex digits; write % itself as %25"
                    ));
                };
                out.push(high << 4 | low);
            }
            b'+' if plus_is_space => out.push(b' '),
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|_| format!("{raw:?} decodes to bytes that are not UTF-8"))
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests;
