//! The conformance suite against a backend's [`Driver`]: a file or folder
//! backend needs no harness of its own, only
//! `annals_backend_tests::run_driver!(my_backend::DRIVER)`.

use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;

pub use annals_core::driver::Driver;
use annals_core::driver::{Access, OpenRequest, Opening, Target};
use annals_core::{Capabilities, Error, LogBackend, Result, StoreConfig};

/// A type that names one driver (what [`run_driver!`](crate::run_driver)
/// defines for its argument).
pub trait StaticDriver: Send + Sync + 'static {
    /// The driver.
    const DRIVER: &'static Driver;
}

/// A [`Harness`](crate::Harness) opening stores through `D`'s driver in a
/// fresh temp dir: `store.<scheme>` for a [`Target::File`] backend, the
/// folder `store` for a [`Target::Folder`] one, nothing for
/// [`Target::Nothing`]. Not for [`Target::Server`] backends, which need a
/// server (an error naming the scheme).
pub struct DriverHarness<D> {
    dir: tempfile::TempDir,
    driver: PhantomData<D>,
}

impl<D: StaticDriver> DriverHarness<D> {
    /// Where the store lives: what the URL's path would be.
    pub fn store_path(&self) -> Option<PathBuf> {
        store_path(D::DRIVER, self.dir.path())
    }
}

/// The path a store of `driver` gets in the empty folder `dir`:
/// `dir/store.<scheme>` for a file, `dir/store` for a folder, none for
/// the other targets.
pub fn store_path(driver: &Driver, dir: &std::path::Path) -> Option<PathBuf> {
    match driver.target {
        Target::File => Some(dir.join(format!("store.{}", driver.scheme))),
        Target::Folder => Some(dir.join("store")),
        Target::Nothing | Target::Server => None,
    }
}

/// Opens a store of `driver` at `path` (see [`store_path`]) with `config`,
/// as `annals::open` would from `scheme://path?durability=…&max_…=…`.
pub async fn open_driver(
    driver: &Driver,
    path: Option<PathBuf>,
    config: StoreConfig,
) -> Result<Arc<dyn LogBackend>> {
    if driver.target == Target::Server {
        return Err(Error::Unsupported(format!(
            "the {} backend names a server: give the suite a harness of its own",
            driver.scheme
        )));
    }
    let params: Vec<(String, String)> = config
        .to_params()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let url = format!("{}://", driver.scheme);
    let request = OpenRequest {
        url: &url,
        path: path.as_deref(),
        params: &params,
        access: Access::AsTheUrlSays,
    };
    match (driver.prepare)(&request)?.opening {
        Opening::Blocking(open) => tokio::task::spawn_blocking(open)
            .await
            .map_err(|e| Error::backend("opening the store on the blocking pool", e))?,
        Opening::Async(open) => open.await,
    }
}

#[async_trait::async_trait]
impl<D: StaticDriver> crate::Harness for DriverHarness<D> {
    async fn new() -> Self {
        DriverHarness {
            dir: tempfile::tempdir().expect("a temp dir for the store"),
            driver: PhantomData,
        }
    }

    async fn open(&self, config: StoreConfig) -> Result<Arc<dyn LogBackend>> {
        open_driver(D::DRIVER, self.store_path(), config).await
    }

    fn capabilities() -> Capabilities {
        D::DRIVER.capabilities
    }

    fn files(&self) -> Option<PathBuf> {
        self.store_path().map(|_| self.dir.path().to_path_buf())
    }
}

/// Runs the conformance suite against a driver (a `const` or `static`
/// [`Driver`]): the whole `main` of a backend's `tests/conformance.rs`.
/// Known gaps, `(case, why)`, may follow: see
/// [`run_with_gaps`](crate::run_with_gaps).
///
/// ```ignore
/// fn main() -> std::process::ExitCode {
///     annals_backend_tests::run_driver!(annals_fjall::DRIVER)
/// }
/// ```
#[macro_export]
macro_rules! run_driver {
    ($driver:expr $(, ($case:expr, $why:expr))* $(,)?) => {{
        struct ThisDriver;
        impl $crate::driver::StaticDriver for ThisDriver {
            const DRIVER: &'static $crate::driver::Driver = &$driver;
        }
        $crate::run_with_gaps::<$crate::driver::DriverHarness<ThisDriver>>(&[$(($case, $why)),*])
    }};
}
