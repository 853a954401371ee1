//! # annals-core
//!
//! The contract of annals: the types of an append-only event log, the
//! [`LogBackend`] trait every storage backend implements, the one [`Error`]
//! enum, and — in [`kv`] — everything an ordered key-value engine needs to
//! become a backend: record codec, key layout, and a generic store with a
//! single group-committing writer. [`layer`]: wrapping any backend in
//! cross-cutting behaviour (tracing, metrics, your own).
//!
//! Clause IDs in brackets (`[A4]`) refer to the contract,
//! [`docs/contract.md`](https://github.com/annals-rs/annals/blob/main/docs/contract.md) in the repository.
#![forbid(unsafe_code)]

mod backend;
pub mod check;
pub mod driver;
mod error;
mod event;
mod expect;
pub mod files;
pub mod kv;
pub mod layer;
pub mod rules;
mod verify;

pub use backend::{
    Append, AppendResult, Batch, BatchPart, Capabilities, Direction, Durability, HeadWatch, Limits,
    LogBackend, Page, StoreConfig, StreamInfo, fresh_head_watch, parse_param, validate_aux_writes,
};
pub use error::{
    BoxError, CorruptionAt, Error, FailedCondition, Field, InvalidReason, Limit, Result,
    SHOWN_BYTES, show_bytes, show_text,
};
pub use event::{
    MAX_NAME_BYTES, MAX_STREAM_ID_BYTES, MAX_TAGS, NewEvent, NewEventBuilder, Position,
    RecordedEvent, StreamId, Timestamp, Version,
};
pub use expect::{
    AppendCondition, AuxCondition, AuxWrite, ExpectedVersion, MAX_AUX_KEY_BYTES, MAX_QUERY_ITEMS,
    Query, QueryItem, validate_aux_key,
};
pub use rules::StreamMeta;
pub use uuid::Uuid;
pub use verify::{MAX_LISTED_PROBLEMS, Problem, VerifyProgress, VerifyReport};
