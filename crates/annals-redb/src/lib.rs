//! annals-redb
#![forbid(unsafe_code)]
