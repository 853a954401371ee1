//! The generic store over any ordered key-value engine.
//!
//! An engine implements [`KvEngine`] (atomic batch commit, snapshot reads);
//! [`KvStore`] turns it into a [`LogBackend`](crate::LogBackend) with the
//! shared key layout ([`layout`]), record codec ([`codec`]) and append
//! logic (one group-committing writer thread).

pub mod codec;
mod engine;
pub mod figures;
pub mod layout;
mod read;
mod store;
pub mod support;
mod verify;
mod writer;

pub use engine::{KvEngine, KvSnapshot, Scan, Visitor, WriteBatch};
pub use store::KvStore;
