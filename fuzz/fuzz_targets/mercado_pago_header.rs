//! `x-signature: ts=...,v1=...` and the manifest built from it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhooks_core::verify::mercado_pago::{manifest, normalize_data_id, parse_header};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(parsed) = parse_header(text) {
            let _ = parsed.unix_seconds();
            assert!(manifest(None, None, Some(parsed.ts)).starts_with("ts:"));
        }
        let id = normalize_data_id(text);
        assert_eq!(id.len(), text.len());
    }
});
