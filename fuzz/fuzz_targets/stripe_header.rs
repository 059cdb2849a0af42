//! `Stripe-Signature: t=...,v1=...`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhooks_core::verify::stripe::parse_header;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(parsed) = parse_header(text) {
            assert!(parsed.timestamp >= 0);
            assert!(!parsed.v1.is_empty());
        }
    }
});
