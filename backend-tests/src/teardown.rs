//! Every store a case opens is closed before the case ends.
//!
//! Cases drop their stores without closing them, as an application may.
//! A store dropped that way finishes on a thread of its own (the writer of
//! a key-value store closes its engine when the last handle is gone), and
//! nothing waits for that thread: after the last case, `main` returned and
//! the process exited while a RocksDB database was still being closed on
//! it, and RocksDB aborted in its static destructors (`pthread lock:
//! Invalid argument`, SIGABRT) about one run in six. And the harness, with
//! the temporary folder the store lives in, was dropped with the case, so
//! such a close also failed on files deleted under it. So the runner hands
//! each case a [`Closing`] harness, which remembers every store it opens,
//! and [`close_all`] closes them once the case is over — `close` returns
//! only when the store has released its engine and its threads — before
//! the harness is dropped.

use std::sync::{Arc, Mutex, PoisonError};

use annals_core::{Capabilities, Error, LogBackend, Result, StoreConfig};

use crate::Harness;

/// A case's harness and the stores it opened, shared by the case's
/// [`Closing`] harness and the runner, which closes the stores and only
/// then drops the harness (whose temporary folder the stores live in).
pub(crate) struct Opened<H> {
    harness: H,
    stores: Mutex<Vec<Arc<dyn LogBackend>>>,
}

/// `H`, remembering every store it opens or reopens.
pub(crate) struct Closing<H>(Arc<Opened<H>>);

impl<H> Closing<H> {
    /// Wraps `harness`; the runner keeps [`opened`](Closing::opened).
    pub(crate) fn wrap(harness: H) -> Self {
        Closing(Arc::new(Opened {
            harness,
            stores: Mutex::default(),
        }))
    }

    /// The harness and the stores it opened.
    pub(crate) fn opened(&self) -> Arc<Opened<H>> {
        Arc::clone(&self.0)
    }

    fn remember(&self, store: Arc<dyn LogBackend>) -> Arc<dyn LogBackend> {
        self.0
            .stores
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&store));
        store
    }
}

#[async_trait::async_trait]
impl<H: Harness> Harness for Closing<H> {
    async fn new() -> Self {
        Closing::wrap(H::new().await)
    }

    async fn open(&self, config: StoreConfig) -> Result<Arc<dyn LogBackend>> {
        let store = self.0.harness.open(config).await?;
        Ok(self.remember(store))
    }

    async fn reopen(
        &self,
        store: Arc<dyn LogBackend>,
        config: StoreConfig,
    ) -> Result<Arc<dyn LogBackend>> {
        let store = self.0.harness.reopen(store, config).await?;
        Ok(self.remember(store))
    }

    fn capabilities() -> Capabilities {
        H::capabilities()
    }
}

/// Closes every store in `opened`, first opened first, and forgets them
/// (the harness is kept: drop `opened` afterwards).
/// A store the case closed itself answers [`Error::Closed`], which is
/// fine; any other error is returned (after the other stores are closed),
/// naming which store failed.
pub(crate) async fn close_all<H>(opened: &Opened<H>) -> std::result::Result<(), String> {
    let stores = std::mem::take(&mut *opened.stores.lock().unwrap_or_else(PoisonError::into_inner));
    let mut failures = Vec::new();
    for (i, store) in stores.into_iter().enumerate() {
        match store.close().await {
            Ok(()) | Err(Error::Closed) => {}
            Err(e) => failures.push(format!("store {i} (in order of opening): {}", chain(&e))),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "closing the case's stores failed: {}",
            failures.join("; ")
        ))
    }
}

/// `error` and its sources, each after a colon.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
