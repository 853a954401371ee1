//! annals-memory
#![forbid(unsafe_code)]
