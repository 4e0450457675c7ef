// cargo +nightly fuzz run tls   (from crates/moat)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = moat::proxy::tls::parse_client_hello(data);
});
