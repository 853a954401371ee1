//! The store URL parser on arbitrary text: a URL or an InvalidInput error,
//! never a panic.
#![no_main]

use annals::StoreUrl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(url) = StoreUrl::parse(text)
    {
        let _ = url.check_compiled();
        let _ = url.params().count();
    }
});
