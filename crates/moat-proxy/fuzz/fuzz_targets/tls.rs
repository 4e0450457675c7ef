// cargo +nightly fuzz run tls   (from crates/moat-proxy)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = moat_proxy::tls::parse_client_hello(data);
});
