//! The annals conformance suite against the fjall backend.
#![allow(missing_docs)]

fn main() -> std::process::ExitCode {
    annals_backend_tests::run_driver!(annals_fjall::DRIVER)
}
