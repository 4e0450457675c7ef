// cargo +nightly fuzz run request   (from crates/moat-spec)
// Whatever the bytes, decoding never panics, and what decodes re-encodes
// to something that decodes to the same spec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_spec::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = wire::decode(data) {
        assert_eq!(wire::decode(&wire::encode(&spec)), Ok(spec));
    }
});
