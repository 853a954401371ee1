//! The annals conformance suite.
#![forbid(unsafe_code)]
