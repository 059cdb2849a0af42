//! `Authorization: Basic <base64(user:password)>`.
//!
//! Checked: the verifier never panics; it accepts exactly the headers whose
//! credential decodes to the configured `user:password`; and whatever user
//! name and password the fuzzer picks (a user name holds no `:`, as RFC 7617
//! says), what `sign` makes verifies.
#![no_main]

use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use webhooks_core::secret::Secret;
use webhooks_core::verify::{BasicAuthConfig, BasicAuthVerifier, Encoding, Request, SignInput, Verifier};

fn verifier(user: &str, password: &str) -> BasicAuthVerifier {
    BasicAuthVerifier::new(
        BasicAuthConfig {
            username: user.into(),
            passwords: vec![],
        },
        vec![Secret::new(password.as_bytes().to_vec())],
    )
}

fn verify(v: &BasicAuthVerifier, value: HeaderValue) -> bool {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, value);
    v.verify(&Request {
        method: &Method::POST,
        headers: &headers,
        query: &[],
        body: b"",
        url: "https://example.test/webhooks/x",
        now: 0,
    })
    .is_ok()
}

fuzz_target!(|data: &[u8]| {
    let fixed = verifier("webhooks", "pa:ss word");
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let expected = std::str::from_utf8(data)
            .ok()
            .and_then(|t| t.strip_prefix("Basic "))
            .and_then(|b| Encoding::Base64.decode(b))
            .is_some_and(|c| c == b"webhooks:pa:ss word");
        assert_eq!(verify(&fixed, value), expected, "{data:?}");
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (user, password) = text.split_once(':').unwrap_or((text, ""));
    let v = verifier(user, password);
    let signed = v.sign(&SignInput {
        body: b"",
        now: 0,
        id: "",
        url: "",
    });
    let value = HeaderValue::from_str(&signed.headers[0].1).expect("base64 is a header value");
    assert!(verify(&v, value), "signed credentials rejected");
});
