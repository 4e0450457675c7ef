// cargo +nightly fuzz run dns   (from crates/moat-proxy)
// Whatever the bytes, the stub answers or stays silent, never panics; it
// asks about a name only for a well-formed question.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_proxy::dns::{reply, Answer};

fuzz_target!(|data: &[u8]| {
    let _ = reply(data, &mut |_| Answer::Address(std::net::Ipv4Addr::new(198, 18, 0, 1)));
    let _ = reply(data, &mut |_| Answer::Refused);
});
