//! annals
#![forbid(unsafe_code)]
