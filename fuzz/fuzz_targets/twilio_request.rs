//! `X-Twilio-Signature`, the URL variants and the form parameters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhooks_core::verify::twilio::{parse_signature, signed_content, sorted_form_params, url_variants};

fuzz_target!(|data: &[u8]| {
    let (head, body) = data.split_at(data.len() / 2);
    if let Ok(text) = std::str::from_utf8(head) {
        if let Ok(sig) = parse_signature(text) {
            assert_eq!(sig.len(), 20);
        }
        let variants = url_variants(text);
        assert_eq!(variants[0], text);
        if let Ok(params) = sorted_form_params(body) {
            assert!(params.windows(2).all(|w| w[0] <= w[1]));
            assert!(signed_content(text, &params).starts_with(text.as_bytes()));
        }
    }
});
