// cargo +nightly fuzz run http   (from crates/moat-proxy)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = moat_proxy::parse_http(data) {
        let _ = r.origin_head();
    }
    if let Ok(r) = moat_proxy::parse_origin(data) {
        let _ = r.origin_head();
    }
});
