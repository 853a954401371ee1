//! Drivers: how a backend crate plugs into store URLs.
//!
//! Each backend crate exports one [`Driver`] (`annals_redb::DRIVER`, …): its
//! URL scheme, what the part after `://` names, its capabilities, and how
//! to open a store from a parsed URL. The `annals` facade opens a URL by
//! looking its scheme up among the drivers compiled in (`annals::open`),
//! or among drivers the caller gives (`annals::open_with`), so a backend
//! written outside this repository plugs into the facade, the CLI, the
//! benchmark and the reliability harness without editing them.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use crate::backend::{Capabilities, LogBackend, StoreConfig};
use crate::error::{Error, Field, Result};
use crate::kv::support::BackendOptions;

/// An open store of any backend.
pub type DynStore = Arc<dyn LogBackend>;

/// What the part of a store URL between `://` and `?` names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Target {
    /// Nothing (`memory://`).
    Nothing,
    /// A file (`redb:///var/lib/app/events.redb`).
    File,
    /// A folder the store owns (`fjall:///var/lib/app/events`).
    Folder,
    /// A database server (`postgres://user:password@host:port/db`): passed
    /// as written to the driver, its password never shown.
    Server,
}

impl Target {
    /// Whether a URL of this target names a file or a folder.
    pub fn takes_path(self) -> bool {
        matches!(self, Target::File | Target::Folder)
    }
}

/// How an open may touch the disk, whatever the URL's options say.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Access {
    /// As the URL's options say.
    AsTheUrlSays,
    /// Create nothing: a missing store is an error.
    Existing,
    /// Create and write nothing: every write is `Unsupported`.
    ReadOnly,
}

impl Access {
    /// Whether the open may create a store (`create` options are and-ed
    /// with it).
    pub fn may_create(self) -> bool {
        self == Access::AsTheUrlSays
    }

    /// Whether the store must be opened read-only (`read_only` options are
    /// or-ed with it).
    pub fn read_only(self) -> bool {
        self == Access::ReadOnly
    }
}

/// A parsed store URL as a driver sees it.
#[derive(Clone, Copy)]
pub struct OpenRequest<'a> {
    /// The URL as given, passwords included: never put it in a message.
    pub url: &'a str,
    /// The decoded path ([`Target::File`] and [`Target::Folder`] only).
    pub path: Option<&'a Path>,
    /// The decoded options, in the URL's order, each key at most once.
    pub params: &'a [(String, String)],
    /// How the open may touch the disk.
    pub access: Access,
}

impl<'a> OpenRequest<'a> {
    /// The options as `(key, value)` pairs, for an options type's
    /// `from_params`.
    pub fn params(&self) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The path, or an [`Error::InvalidInput`] saying the `scheme` needs
    /// one.
    pub fn path(&self, scheme: &str) -> Result<&'a Path> {
        self.path.ok_or_else(|| {
            Error::malformed(
                Field::StoreUrl,
                format!("the {scheme} backend needs a path"),
            )
        })
    }
}

/// A future that opens a store.
pub type OpenFuture = Pin<Box<dyn Future<Output = Result<DynStore>> + Send>>;

/// How a prepared store is opened.
pub enum Opening {
    /// Blocking I/O (files): run on tokio's blocking pool.
    Blocking(Box<dyn FnOnce() -> Result<DynStore> + Send>),
    /// Asynchronous I/O (a server connection).
    Async(OpenFuture),
}

/// A store checked from its URL, ready to open: everything that can be
/// decided without I/O is decided.
pub struct Prepared {
    /// The durability and limits the store will have.
    pub config: StoreConfig,
    /// What opens it.
    pub opening: Opening,
}

impl Prepared {
    /// A store opened by blocking I/O.
    pub fn blocking<S: LogBackend + 'static>(
        config: StoreConfig,
        open: impl FnOnce() -> Result<S> + Send + 'static,
    ) -> Prepared {
        Prepared {
            config,
            opening: Opening::Blocking(Box::new(move || Ok(Arc::new(open()?) as DynStore))),
        }
    }
}

/// The options of a backend whose URL names a file or folder: the URL's
/// query sets them ([`BackendOptions`]), and [`Access`] can take away
/// creating and writing.
pub trait PathOptions: BackendOptions + Send + 'static {
    /// Takes away what `access` does not allow: `create` options are
    /// and-ed with [`Access::may_create`], `read_only` ones or-ed with
    /// [`Access::read_only`].
    fn restrict(&mut self, access: Access);
}

/// The whole `prepare` of a [`Driver`] over files: the options from the
/// request's query, restricted by its access, and `open(path, options)`
/// on the blocking pool.
///
/// ```ignore
/// pub const DRIVER: Driver = Driver {
///     scheme: "fjall",
///     target: Target::Folder,
///     capabilities: Capabilities::ALL,
///     prepare: |request| prepare_path(request, open),
/// };
/// ```
pub fn prepare_path<O: PathOptions, S: LogBackend + 'static>(
    request: &OpenRequest<'_>,
    open: fn(std::path::PathBuf, O) -> Result<S>,
) -> Result<Prepared> {
    let mut options = O::from_params(request.params())?;
    options.restrict(request.access);
    let path = request.path(O::BACKEND)?.to_path_buf();
    let config = *options.config_mut();
    Ok(Prepared::blocking(config, move || open(path, options)))
}

/// What a backend crate exports so that store URLs can name it: one
/// `pub const DRIVER: Driver` per crate. `annals_fjall::DRIVER` is a
/// complete example in a dozen lines (see CONTRIBUTING.md, "Writing a
/// backend").
#[derive(Clone, Copy, Debug)]
pub struct Driver {
    /// The URL scheme, lowercase (`"fjall"`); also the name of the cargo
    /// feature of the `annals` facade that compiles the backend in, and of
    /// the backend in the benchmark's tables.
    pub scheme: &'static str,
    /// What the part after `://` names.
    pub target: Target,
    /// What the stores it opens offer (the conformance suite ignores the
    /// cases of what they do not).
    pub capabilities: Capabilities,
    /// Checks the request's options (no I/O) and says how to open it.
    pub prepare: fn(&OpenRequest<'_>) -> Result<Prepared>,
}

impl StoreConfig {
    /// The config of a backend whose options are only those every backend
    /// takes, plus `own` ones it ignores (`from_params` of
    /// [`StoreConfig::apply_param`]); an unknown key is
    /// [`Error::InvalidInput`] naming it and the `backend`.
    ///
    /// ```
    /// use annals_core::{Durability, StoreConfig};
    /// let config = StoreConfig::from_params("memory", [("durability", "relaxed")], &[])?;
    /// assert_eq!(config.durability, Durability::Relaxed);
    /// assert!(StoreConfig::from_params("memory", [("cache", "1")], &[]).is_err());
    /// # Ok::<(), annals_core::Error>(())
    /// ```
    pub fn from_params<'a>(
        backend: &str,
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
        own: &[&str],
    ) -> Result<StoreConfig> {
        let mut config = StoreConfig::default();
        for (key, value) in params {
            if !config.apply_param(key, value)? && !own.contains(&key) {
                return Err(StoreConfig::unknown_param(backend, key, own));
            }
        }
        Ok(config)
    }

    /// The options every backend takes that give this config, as URL
    /// parameters (`durability=relaxed&max_event_bytes=…`): what a harness
    /// appends to a store URL to open it with this config.
    ///
    /// ```
    /// use annals_core::StoreConfig;
    /// let config = StoreConfig::default();
    /// let params: Vec<(&str, String)> = config.to_params();
    /// let back = StoreConfig::from_params("memory", params.iter().map(|(k, v)| (*k, v.as_str())), &[])?;
    /// assert_eq!(back, config);
    /// # Ok::<(), annals_core::Error>(())
    /// ```
    pub fn to_params(&self) -> Vec<(&'static str, String)> {
        let durability = match self.durability {
            crate::Durability::Immediate => "immediate",
            crate::Durability::Relaxed => "relaxed",
        };
        vec![
            ("durability", durability.to_string()),
            ("max_event_bytes", self.limits.max_event_bytes.to_string()),
            (
                "max_append_events",
                self.limits.max_append_events.to_string(),
            ),
            ("max_append_bytes", self.limits.max_append_bytes.to_string()),
            ("max_read_count", self.limits.max_read_count.to_string()),
        ]
    }
}
