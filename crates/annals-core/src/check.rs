//! The checks every store makes before a call touches its data: the store
//! is open (\[M4\]), writable, and the input valid and within its
//! [`Limits`] (\[D2\], \[R1\]) — so a bad call fails with a typed error
//! and nothing written, whatever the backend.
//!
//! Each check lives here once. [`KvStore`](crate::kv::KvStore) and
//! annals-postgres call [`Checks`] at the top of every method, so the
//! stores they open check without any layer; a backend written directly
//! against [`LogBackend`](crate::LogBackend) gets the same checks from
//! [`CheckLayer`](crate::layer::CheckLayer), which calls these too.
//!
//! ```
//! use annals_core::check::Checks;
//! use annals_core::{Limits, StreamId, ExpectedVersion, Append};
//!
//! let checks = Checks::new(Limits::default(), false);
//! let empty = Append::new(StreamId::new("s")?, ExpectedVersion::Any, vec![]);
//! assert!(checks.append(&empty).unwrap_err().is_invalid_input());
//! assert!(checks.close());
//! assert!(checks.read_stream(10).unwrap_err().is_closed());
//! # Ok::<(), annals_core::Error>(())
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::backend::{Append, Batch, Limits, validate_aux_writes};
use crate::error::{Error, Field, Result};
use crate::expect::{AuxWrite, Query, validate_aux_key};

/// Whether a store is closed, shared by whatever needs to know (a read
/// running in another thread, say).
#[derive(Clone, Debug, Default)]
pub struct Gate(Arc<AtomicBool>);

impl Gate {
    /// An open gate.
    pub fn new() -> Self {
        Gate::default()
    }

    /// Whether the store is closed.
    pub fn is_closed(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// [`Error::Closed`] once the store is closed.
    pub fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Closes it; `true` for the call that closed it, `false` when it was
    /// closed already (\[M4\]: a second close does nothing and is `Ok`).
    pub fn close(&self) -> bool {
        !self.0.swap(true, Ordering::AcqRel)
    }
}

/// The checks of one store: its limits, whether it is read-only, and its
/// [`Gate`]. One method per call of [`LogBackend`](crate::LogBackend) that
/// takes input; the others need only [`Checks::open`].
#[derive(Clone, Debug)]
pub struct Checks {
    limits: Limits,
    read_only: bool,
    gate: Gate,
}

impl Checks {
    /// The checks of an open store with `limits` (checked when the store
    /// opened: [`Limits::validate`]); a `read_only` store refuses writes.
    pub fn new(limits: Limits, read_only: bool) -> Self {
        Checks {
            limits,
            read_only,
            gate: Gate::new(),
        }
    }

    /// The limits checked.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The store's gate.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Closes the store's gate: see [`Gate::close`].
    pub fn close(&self) -> bool {
        self.gate.close()
    }

    /// [`Error::Closed`] once the store is closed.
    pub fn open(&self) -> Result<()> {
        self.gate.check_open()
    }

    /// The store is open and may write: [`Error::Unsupported`] naming
    /// `what` on a read-only store.
    pub fn writable(&self, what: &str) -> Result<()> {
        self.open()?;
        if self.read_only {
            return Err(Error::Unsupported(format!(
                "{what}: the store was opened read-only (read_only=true)"
            )));
        }
        Ok(())
    }

    /// `append` and `append_with` (\[A7\], \[D2\]).
    pub fn append(&self, append: &Append) -> Result<()> {
        self.writable("append")?;
        append.validate(&self.limits)
    }

    /// `append_batch` (\[A6\], \[D2\]).
    pub fn batch(&self, batch: &Batch) -> Result<()> {
        self.writable("append_batch")?;
        batch.validate(&self.limits)
    }

    /// `read_stream`: at most `max_read_count` events a page.
    pub fn read_stream(&self, count: usize) -> Result<()> {
        self.open()?;
        self.limits.check_read_count(count)
    }

    /// `read_all`: the page's size and the query (\[R6\]).
    pub fn read_all(&self, count: usize, query: Option<&Query>) -> Result<()> {
        self.read_stream(count)?;
        query.map_or(Ok(()), Query::validate)
    }

    /// `list_streams`: the page's size.
    pub fn list_streams(&self, limit: usize) -> Result<()> {
        self.open()?;
        self.limits.check_page_limit("list_streams", limit)
    }

    /// `aux_get`: the key (\[X1\]).
    pub fn aux_get(&self, key: &[u8]) -> Result<()> {
        self.open()?;
        validate_aux_key(key)
    }

    /// `aux_scan`: the page's size.
    pub fn aux_scan(&self, limit: usize) -> Result<()> {
        self.open()?;
        self.limits.check_page_limit("aux_scan", limit)
    }

    /// `aux_write` (and `aux_put`, `aux_delete`): at least one write, each
    /// valid, all within the limits (\[X1\], \[X2\]).
    pub fn aux_write(&self, writes: &[AuxWrite]) -> Result<()> {
        self.writable("aux_write")?;
        if writes.is_empty() {
            return Err(Error::empty(Field::AuxWrites, "aux_write has no writes"));
        }
        validate_aux_writes(writes, &self.limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{NewEvent, StreamId};
    use crate::expect::{ExpectedVersion, QueryItem};

    fn append() -> Append {
        let stream = StreamId::new("s").expect("a valid id");
        Append::new(
            stream,
            ExpectedVersion::Any,
            vec![NewEvent::builder("E").build()],
        )
    }

    #[test]
    fn a_closed_store_refuses_everything() {
        let checks = Checks::new(Limits::default(), false);
        assert!(checks.open().is_ok());
        assert!(checks.close(), "the first close closes");
        assert!(!checks.close(), "a second close finds it closed");
        assert!(checks.gate().is_closed());
        let refused = [
            checks.open(),
            checks.writable("x"),
            checks.append(&append()),
            checks.batch(&Batch::new(vec![])),
            checks.read_stream(1),
            checks.read_all(1, None),
            checks.list_streams(1),
            checks.aux_get(b"k"),
            checks.aux_scan(1),
            checks.aux_write(&[AuxWrite::put("k", "v")]),
        ];
        for result in refused {
            assert!(result.expect_err("closed").is_closed());
        }
        // A clone shares the gate.
        assert!(Checks::new(Limits::default(), false).gate().clone().close());
    }

    #[test]
    fn a_read_only_store_refuses_writes_naming_them() {
        let checks = Checks::new(Limits::default(), true);
        let e = checks.append(&append()).expect_err("read-only");
        assert!(
            matches!(&e, Error::Unsupported(m) if m.starts_with("append:")),
            "{e}"
        );
        let e = checks
            .aux_write(&[AuxWrite::put("k", "v")])
            .expect_err("read-only");
        assert!(
            matches!(&e, Error::Unsupported(m) if m.starts_with("aux_write:")),
            "{e}"
        );
        // A valid batch, so that only the read-only check can refuse it.
        let batch = Batch::new(vec![]).part(
            StreamId::new("s").expect("valid"),
            ExpectedVersion::Any,
            vec![NewEvent::builder("E").build()],
        );
        let e = checks.batch(&batch).expect_err("read-only");
        assert!(
            matches!(&e, Error::Unsupported(m) if m.starts_with("append_batch:")),
            "{e}"
        );
        for what in ["delete_stream", "truncate_stream", "compact"] {
            let e = checks.writable(what).expect_err("read-only");
            assert!(
                matches!(&e, Error::Unsupported(m) if m.starts_with(what)),
                "{e}"
            );
        }
        assert!(checks.read_stream(1).is_ok());
        assert!(checks.aux_get(b"k").is_ok());
    }

    #[test]
    fn input_is_checked_against_the_limits() {
        let limits = Limits::default();
        let checks = Checks::new(limits, false);
        assert!(checks.append(&append()).is_ok());
        let mut empty = append();
        empty.events.clear();
        assert!(checks.append(&empty).expect_err("empty").is_invalid_input());
        assert!(
            checks
                .batch(&Batch::new(vec![]))
                .expect_err("empty")
                .is_invalid_input()
        );
        let too_many = limits.max_read_count + 1;
        assert!(checks.read_stream(limits.max_read_count).is_ok());
        assert!(
            checks
                .read_stream(too_many)
                .expect_err("too many")
                .is_invalid_input()
        );
        assert!(checks.read_all(too_many, None).is_err());
        let bad_query = Query::single(QueryItem::new().with_type(""));
        assert!(checks.read_all(1, Some(&bad_query)).is_err());
        assert!(checks.read_all(1, Some(&Query::types(["E"]))).is_ok());
        assert!(checks.list_streams(usize::MAX).is_err());
        assert!(checks.aux_scan(usize::MAX).is_err());
        assert!(
            checks
                .aux_get(b"")
                .expect_err("empty key")
                .is_invalid_input()
        );
        assert!(checks.aux_get(b"k").is_ok());
        assert!(
            checks
                .aux_write(&[])
                .expect_err("no writes")
                .is_invalid_input()
        );
        assert!(checks.aux_write(&[AuxWrite::put("", "v")]).is_err());
        assert!(checks.aux_write(&[AuxWrite::put("k", "v")]).is_ok());
    }
}
