//! Every decoder of bytes from disk and every parser of user text, on
//! arbitrary input: an error or a value, never a panic (SPEC M6, E1).
//! Values that pass the checksum (`seal` over arbitrary payloads) reach the
//! postcard decoders themselves. `PROPTEST_CASES` raises the case count.
#![allow(clippy::unwrap_used, missing_docs)]

use annals::kv::codec;
use annals::kv::layout::{self, StoreMeta, StreamMeta};
use annals::{Error, Position, StoreUrl, StreamId};
use proptest::prelude::*;

/// Keys of every space of the layout, and random ones.
fn any_key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<u64>().prop_map(|p| layout::log_key(Position(p))),
        ("[a-z]{1,8}", any::<u64>())
            .prop_map(|(s, v)| layout::stream_index_key(&s, annals::Version(v))),
        "[a-z]{1,8}".prop_map(|s| layout::stream_meta_key(&s)),
        proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

fn is_corruption_or_ok<T>(result: annals::Result<T>) -> bool {
    matches!(result, Ok(_) | Err(Error::Corruption { .. }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2000)
    ))]

    #[test]
    fn raw_bytes_never_panic_a_decoder(key in any_key(), value in proptest::collection::vec(any::<u8>(), 0..300), position in any::<u64>()) {
        prop_assert!(is_corruption_or_ok(codec::unseal(&key, &value)));
        prop_assert!(is_corruption_or_ok(codec::decode::<StreamMeta>(&key, &value)));
        prop_assert!(is_corruption_or_ok(codec::decode::<StoreMeta>(&key, &value)));
        prop_assert!(is_corruption_or_ok(codec::decode::<u64>(&key, &value)));
        prop_assert!(is_corruption_or_ok(codec::decode_event(&key, Position(position), &value)));
        let _ = layout::describe_key(&key);
        let _ = layout::trailing_number(&key);
    }

    #[test]
    fn sealed_garbage_never_panics_postcard(key in any_key(), payload in proptest::collection::vec(any::<u8>(), 0..300)) {
        // The checksum passes: the payload reaches postcard.
        let value = codec::seal(&key, &payload);
        prop_assert_eq!(codec::unseal(&key, &value).unwrap(), &payload[..]);
        prop_assert!(is_corruption_or_ok(codec::decode::<StreamMeta>(&key, &value)));
        prop_assert!(is_corruption_or_ok(codec::decode::<StoreMeta>(&key, &value)));
        prop_assert!(is_corruption_or_ok(codec::decode_event(&key, Position(1), &value)));
    }

    #[test]
    fn damaged_event_records_are_corruption_never_a_wrong_event(
        data in proptest::collection::vec(any::<u8>(), 0..64),
        flip in any::<usize>(),
        bit in 0u8..8,
    ) {
        let key = layout::log_key(Position(9));
        let tags = vec!["t".to_string()];
        let parts = codec::EventParts {
            stream_id: "s",
            version: annals::Version(3),
            recorded_at: annals::Timestamp(5),
            event_id: annals::Uuid::from_u128(77),
            event_type: "T",
            data: &data,
            metadata: b"m",
            tags: &tags,
        };
        let mut value = codec::encode_event(&key, &parts).unwrap();
        let at = flip % value.len();
        value[at] ^= 1 << bit;
        let decoded = codec::decode_event(&key, Position(9), &value);
        prop_assert!(matches!(decoded, Err(Error::Corruption { .. })), "{decoded:?}");
    }

    #[test]
    fn any_text_never_panics_the_url_parser(url in ".{0,80}") {
        match StoreUrl::parse(&url) {
            Ok(parsed) => { let _ = parsed.check_compiled(); }
            Err(e) => prop_assert!(matches!(e, Error::InvalidInput { .. }), "{e}"),
        }
    }

    #[test]
    fn url_like_text_never_panics_the_url_parser(
        // Every scheme annals ships, one upper-cased, and one it does not.
        scheme in proptest::sample::select(
            annals::Scheme::all()
                .map(|s| s.name().to_string())
                .chain(["REDB".to_string(), "x".to_string()])
                .collect::<Vec<_>>()
        ),
        rest in "[/%a-zA-Z0-9?&=#+._ -]{0,60}",
    ) {
        let url = format!("{scheme}://{rest}");
        if let Err(e) = StoreUrl::parse(&url) {
            prop_assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
        }
    }

    #[test]
    fn any_text_never_panics_stream_id_validation(id in ".{0,40}") {
        if let Err(e) = StreamId::new(id) {
            prop_assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
        }
    }
}
