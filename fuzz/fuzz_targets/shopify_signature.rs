//! `X-Shopify-Hmac-Sha256` (base64).
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhooks_core::verify::shopify::parse_signature;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(sig) = parse_signature(text) {
            assert_eq!(sig.len(), 32);
        }
    }
});
