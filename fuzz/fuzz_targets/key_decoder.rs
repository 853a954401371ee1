//! The key decoders on arbitrary keys: never a panic.
#![no_main]

use annals::kv::layout;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|key: &[u8]| {
    let _ = layout::describe_key(key);
    let _ = layout::trailing_number(key);
    let _ = layout::prefix_end(key);
});
