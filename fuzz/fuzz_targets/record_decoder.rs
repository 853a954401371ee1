//! Every record decoder on arbitrary bytes, raw and sealed (so the payload
//! reaches postcard): an error or a value, never a panic.
#![no_main]

use annals::Position;
use annals::kv::codec;
use annals::kv::layout::{self, StoreMeta, StreamMeta};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = layout::log_key(Position(7));
    let _ = codec::unseal(&key, data);
    let _ = codec::decode_event(&key, Position(7), data);
    let _ = codec::decode::<StreamMeta>(&key, data);
    let _ = codec::decode::<StoreMeta>(&key, data);
    let sealed = codec::seal(&key, data);
    let _ = codec::decode_event(&key, Position(7), &sealed);
    let _ = codec::decode::<StreamMeta>(&key, &sealed);
    let _ = codec::decode::<StoreMeta>(&key, &sealed);
    let _ = codec::decode::<u64>(&key, &sealed);
});
