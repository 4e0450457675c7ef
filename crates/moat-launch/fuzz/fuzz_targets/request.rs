// cargo +nightly fuzz run request   (from crates/moat-launch)
// Whatever the bytes, decoding never panics, and what decodes re-encodes
// to something that decodes to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_launch::request::Request;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Request::decode(data) {
        assert_eq!(Request::decode(&r.encode()), Ok(r));
    }
});
