//! The generic HMAC signature header: prefix, separator, several signatures,
//! hex or base64 up to SHA-512, and the signed-content template.
//!
//! Input layout: one byte picks the shape (algorithm, encoding, prefix,
//! separator, template); the rest is split on the first 0xFF into the
//! header value and the body. Checked: decoding on the stack agrees with
//! decoding on the heap; the verifier never panics and never accepts the
//! fuzzer's header (it lacks the secret); and what `sign` makes verifies,
//! also after the fuzzer's value as another signature in the same header
//! (when that header stays visible ASCII: otherwise it is unreadable).
#![no_main]

use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use webhooks_core::secret::Secret;
use webhooks_core::verify::{
    Algorithm, Encoding, HmacConfig, HmacVerifier, Request, SignInput, Verifier, MAX_MAC_BYTES,
};

const NOW: i64 = 1_700_000_000;

fn config(pick: u8) -> HmacConfig {
    let algorithm = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512][usize::from(pick % 3)];
    let encoding = [Encoding::Hex, Encoding::Base64][usize::from(pick / 3 % 2)];
    let prefix = ["", "sha256=", "v1="][usize::from(pick / 6 % 3)];
    let separator = [None, Some(","), Some(" ")][usize::from(pick / 18 % 3)];
    let template = [None, Some("{timestamp}.{body}"), Some("{id}.{timestamp}.{body}")][usize::from(pick / 54 % 3)];
    HmacConfig {
        header: "x-signature".into(),
        algorithm,
        encoding,
        prefix: prefix.into(),
        separator: separator.map(str::to_string),
        secrets: vec![],
        timestamp_header: template.map(|_| "x-timestamp".to_string()),
        id_header: template.filter(|t| t.contains("{id}")).map(|_| "x-id".to_string()),
        signed_content: template.map(str::to_string),
        tolerance_secs: 300,
    }
}

fn request<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> Request<'a> {
    Request {
        method: &Method::POST,
        headers,
        query: &[],
        body,
        url: "https://example.test/webhooks/x",
        now: NOW,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (value, body) = match rest.iter().position(|b| *b == 0xff) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let config = config(pick);
    if let Ok(text) = std::str::from_utf8(value) {
        for encoding in [Encoding::Hex, Encoding::Base64] {
            let mut buf = [0u8; MAX_MAC_BYTES];
            let on_stack = encoding.decode_into(text, &mut buf).map(<[u8]>::to_vec);
            let on_heap = encoding.decode(text).filter(|d| d.len() <= MAX_MAC_BYTES);
            assert_eq!(on_stack, on_heap, "{encoding:?} of {text:?}");
        }
    }
    let v = HmacVerifier::new(config.clone(), vec![Secret::new(b"fuzz-secret".to_vec())]);
    let signed = v.sign(&SignInput {
        body,
        now: NOW,
        id: "msg_1",
        url: "",
    });
    let mut headers = HeaderMap::new();
    for (k, val) in &signed.headers {
        headers.insert(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(val).expect("value"),
        );
    }
    assert!(v.verify(&request(&headers, body)).is_ok(), "signed delivery rejected");
    let Ok(fuzzed) = HeaderValue::from_bytes(value) else {
        return;
    };
    let mut forged = headers.clone();
    forged.insert("x-signature", fuzzed);
    let accepted = v.verify(&request(&forged, body)).is_ok();
    // Only the signed value itself (or one that decodes to it) may pass.
    if accepted {
        let text = std::str::from_utf8(value).expect("accepted values are ASCII");
        let sig = &signed.headers[0].1;
        let core = |s: &str| {
            let s = s.trim().strip_prefix(config.prefix.as_str())?.trim().to_string();
            config.encoding.decode(&s)
        };
        let mine = core(sig);
        let parts: Vec<&str> = match &config.separator {
            Some(sep) => text.split(sep.as_str()).collect(),
            None => vec![text],
        };
        assert!(
            parts.iter().any(|p| core(p) == mine),
            "accepted a signature made without the secret: {text:?}"
        );
    }
    if let (Some(sep), Ok(text)) = (&config.separator, std::str::from_utf8(value)) {
        let several = format!("{text}{sep}{}", signed.headers[0].1);
        // A header that is not all visible ASCII is unreadable as a whole.
        if let Some(several) = HeaderValue::from_str(&several).ok().filter(|h| h.to_str().is_ok()) {
            let mut both = headers.clone();
            both.insert("x-signature", several);
            assert!(
                v.verify(&request(&both, body)).is_ok(),
                "a matching signature after another one was rejected"
            );
        }
    }
});
