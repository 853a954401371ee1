//! The annals conformance suite against the fjall backend.
#![allow(missing_docs)]

fn main() -> std::process::ExitCode {
    annals_backend_tests::run_driver!(
        annals_fjall::DRIVER,
        (
            "lifecycle::m2_disk_bytes_drop_after_delete_and_compact",
            "fjall frees its journal (64 MiB, preallocated) only when it rotates it"
        ),
    )
}
