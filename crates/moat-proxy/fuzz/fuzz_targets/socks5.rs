// cargo +nightly fuzz run socks5   (from crates/moat-proxy)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = moat_proxy::parse_socks(data);
});
