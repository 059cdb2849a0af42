//! Whole verifiers over arbitrary headers, query and body: they never panic,
//! and never accept anything (every scheme needs an HMAC under a secret the
//! fuzzer does not have, so an accepted input is a forgery).
//!
//! Input layout: one byte picks the scheme; the rest is split on 0xFF into
//! header value 1, header value 2, header value 3, a query value and the body.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use webhooks_core::secret::Secret;
use webhooks_core::verify::{
    GithubConfig, GithubVerifier, MercadoPagoConfig, MercadoPagoVerifier, MetaConfig, MetaVerifier, Request,
    ShopifyConfig, ShopifyVerifier, SlackConfig, SlackVerifier, StandardWebhooksConfig, StandardWebhooksVerifier,
    StripeConfig, StripeVerifier, TwilioConfig, TwilioVerifier, Verifier,
};

fn secret() -> Vec<Secret> {
    vec![Secret::new(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_vec())]
}

fn verifier(pick: u8) -> (Box<dyn Verifier>, [&'static str; 3], &'static str) {
    match pick % 8 {
        0 => (
            Box::new(StandardWebhooksVerifier::new(
                StandardWebhooksConfig {
                    secrets: vec![],
                    tolerance_secs: 300,
                },
                vec![Secret::new(b"0123456789abcdef".to_vec())],
            )),
            ["webhook-id", "webhook-timestamp", "webhook-signature"],
            "x",
        ),
        1 => (
            Box::new(StripeVerifier::new(
                StripeConfig {
                    secrets: vec![],
                    tolerance_secs: 300,
                    header: "Stripe-Signature".into(),
                },
                secret(),
            )),
            ["stripe-signature", "x-a", "x-b"],
            "x",
        ),
        2 => (
            Box::new(GithubVerifier::new(GithubConfig { secrets: vec![] }, secret())),
            ["x-hub-signature-256", "x-a", "x-b"],
            "x",
        ),
        3 => (
            Box::new(ShopifyVerifier::new(ShopifyConfig { secrets: vec![] }, secret())),
            ["x-shopify-hmac-sha256", "x-a", "x-b"],
            "x",
        ),
        4 => (
            Box::new(SlackVerifier::new(
                SlackConfig {
                    secrets: vec![],
                    tolerance_secs: 300,
                },
                secret(),
            )),
            ["x-slack-signature", "x-slack-request-timestamp", "x-b"],
            "x",
        ),
        5 => (
            Box::new(MetaVerifier::new(
                MetaConfig {
                    secrets: vec![],
                    verify_tokens: vec![],
                },
                secret(),
                vec![Secret::new(b"tok".to_vec())],
            )),
            ["x-hub-signature-256", "x-a", "x-b"],
            "hub.verify_token",
        ),
        6 => (
            Box::new(MercadoPagoVerifier::new(
                MercadoPagoConfig {
                    secrets: vec![],
                    tolerance_secs: 300,
                },
                secret(),
            )),
            ["x-signature", "x-request-id", "x-b"],
            "data.id",
        ),
        _ => (
            Box::new(TwilioVerifier::new(TwilioConfig { secrets: vec![] }, secret())),
            ["x-twilio-signature", "content-type", "x-b"],
            "bodySHA256",
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut fields = rest.splitn(5, |b| *b == 0xff);
    let values: Vec<&[u8]> = (0..4).map(|_| fields.next().unwrap_or_default()).collect();
    let body = fields.next().unwrap_or_default();
    let (v, names, query_name) = verifier(pick);
    let mut headers = HeaderMap::new();
    for (name, value) in names.iter().zip(&values[..3]) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    let query = vec![
        (query_name.to_string(), String::from_utf8_lossy(values[3]).into_owned()),
        ("hub.mode".to_string(), "subscribe".to_string()),
        ("hub.challenge".to_string(), "1".to_string()),
    ];
    let req = Request {
        method: &Method::POST,
        headers: &headers,
        query: &query,
        body,
        url: "https://example.test/webhooks/x",
        now: 1_700_000_000,
    };
    assert!(
        v.verify(&req).is_err(),
        "accepted a delivery not signed with the secret"
    );
    let _ = v.challenge(&req);
    if let Some(h) = v.handshake(&req) {
        assert!(h.status == 403 || values[3] == b"tok");
    }
});
