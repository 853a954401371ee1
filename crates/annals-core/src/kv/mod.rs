//! The generic store over any ordered key-value engine.
//!
//! An engine implements [`KvEngine`] (atomic batch commit, snapshot reads);
//! [`KvStore`] turns it into a [`LogBackend`](crate::LogBackend) with the
//! shared key layout, record codec and append logic.

mod engine;

pub use engine::{KvEngine, KvSnapshot, Scan, Visitor, WriteBatch};
