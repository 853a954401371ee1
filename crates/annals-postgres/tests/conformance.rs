//! The annals conformance suite against PostgreSQL: a throwaway cluster
//! started by the test, one schema per case.
#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use std::process::ExitCode;
use std::sync::Arc;

use annals_backend_tests::Harness;
use annals_core::{Capabilities, LogBackend, Result, StoreConfig};

/// One schema of the shared cluster.
struct PostgresHarness(String);

#[async_trait::async_trait]
impl Harness for PostgresHarness {
    async fn new() -> Self {
        PostgresHarness(support::fresh_schema())
    }

    async fn open(&self, config: StoreConfig) -> Result<Arc<dyn LogBackend>> {
        Ok(Arc::new(support::open(&self.0, config).await?))
    }

    fn capabilities() -> Capabilities {
        annals_postgres::CAPABILITIES
    }
}

fn main() -> ExitCode {
    let without_server = match support::without_server("PostgreSQL conformance case") {
        Ok(ignored) => ignored,
        Err(code) => return code,
    };
    if without_server {
        let args = libtest_mimic::Arguments::from_args();
        let trials = annals_backend_tests::trials::<PostgresHarness>()
            .into_iter()
            .map(|t| t.with_ignored_flag(true))
            .collect();
        return libtest_mimic::run(&args, trials).exit_code();
    }
    // One case at a time: the cases share one server, where a transaction
    // of one case (a VACUUM FULL of another compact case, say) holds back
    // the cleanup another case's compact measures.
    let args = libtest_mimic::Arguments {
        test_threads: Some(1),
        ..libtest_mimic::Arguments::from_args()
    };
    let code = annals_backend_tests::run_with::<PostgresHarness>(args);
    support::stop_cluster();
    code
}
