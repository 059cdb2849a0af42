//! `webhook-signature` lists and `whsec_` secrets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhooks_core::verify::standard_webhooks::{decode_secret, parse_signatures};

fuzz_target!(|data: &[u8]| {
    let _ = decode_secret(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let sigs = parse_signatures(text);
        assert!(sigs.len() <= text.split(' ').count());
    }
});
