//! Presets for senders without an event id, through the real router: the
//! delivery their own code signs is answered 200 and stored under the key
//! the preset composes; a tampered body, another key or a malformed proof
//! is answered 401 with its reason, and nothing is stored.

use crate::harness::{post, secrets, Harness};

const OVERLAY: &str = r#"
[providers.lemon_squeezy]
preset = "lemon_squeezy"
secrets = ["env:LEMON_SQUEEZY_TEST_SECRET"]
handlers = { "*" = ["test.effect"] }

[providers.wompi]
preset = "wompi"
secrets = ["env:WOMPI_TEST_EVENTS_SECRET_NEW", "env:WOMPI_TEST_EVENTS_SECRET"]
handlers = { "*" = ["test.effect"] }

# The plugin's fixture is from 2018: the preset's 48 h window would refuse
# it today, so this copy of the preset has a window of 20 years (the
# preset's own window is checked below).
[providers.wompi_2018]
preset = "wompi"
verifier = { scheme = "property_checksum", tolerance_secs = 631152000 }
secrets = ["env:WOMPI_TEST_EVENTS_SECRET_NEW", "env:WOMPI_TEST_EVENTS_SECRET"]
handlers = { "*" = ["test.effect"] }
"#;

fn harness() -> Harness {
    Harness::with_overlay_and_secrets(
        OVERLAY,
        secrets()
            .with("LEMON_SQUEEZY_TEST_SECRET", "lemon_test_secret")
            .with("WOMPI_TEST_EVENTS_SECRET_NEW", "test_events_rotated")
            // The events secret of the WooCommerce plugin's test bootstrap.
            .with("WOMPI_TEST_EVENTS_SECRET", "test_events_XXXXXXXXXXXX"),
    )
}

#[tokio::test]
async fn a_lemon_squeezy_delivery_is_stored_under_its_composed_key_and_a_forged_one_refused() {
    let h = harness();
    let body = r#"{"meta":{"event_name":"order_created","custom_data":{"billable_id":"1","billable_type":"user"}},"data":{"type":"orders","id":"104","attributes":{"status":"paid","updated_at":"2024-05-02T10:00:00.000000Z"}}}"#;
    // HMAC-SHA256 hex of the body with the secret, as the Laravel package
    // computes it (hash_hmac), computed independently with Python's hmac.
    let sig = "3c9f9fe7a0de62e638664cade511a6a08893d4324d63fd7e161f5c8ed477137b".to_string();
    let (status, _, text) = h
        .call(post(
            "/webhooks/lemon_squeezy",
            body,
            &[("X-Signature", &sig), ("X-Event-Name", "order_created")],
        ))
        .await;
    assert_eq!(status.as_u16(), 200, "{text}");
    let key = "order_created:orders:104:2024-05-02T10:00:00.000000Z";
    let record = h
        .record("lemon_squeezy", key)
        .await
        .expect("stored under the composed key");
    assert_eq!(record.event_type, "order_created");

    let refused = [
        (body.replace("paid", "refunded"), sig.clone(), "invalid_signature"),
        (body.to_string(), hmac_hex("another", body), "invalid_signature"),
    ];
    for (body, sig, reason) in refused {
        let (status, json, _) = h
            .call(post("/webhooks/lemon_squeezy", &body, &[("X-Signature", &sig)]))
            .await;
        assert_eq!((status.as_u16(), json["error"].as_str()), (401, Some(reason)));
    }
    let (status, json, _) = h.call(post("/webhooks/lemon_squeezy", body, &[])).await;
    assert_eq!(
        (status.as_u16(), json["error"].as_str()),
        (401, Some("missing_signature"))
    );
}

/// HMAC-SHA256 hex, for a signature made with a key the provider lacks.
fn hmac_hex(key: &str, body: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn the_wompi_plugins_fixture_is_stored_and_malformed_or_forged_copies_are_refused() {
    let h = harness();
    let body = include_str!("../data/wompi_plugin_event.json");
    let (status, json, _) = h.call(post("/webhooks/wompi", body, &[])).await;
    assert_eq!(
        (status.as_u16(), json["error"].as_str()),
        (401, Some("timestamp_out_of_tolerance")),
        "the preset's window refuses a delivery from 2018"
    );
    let (status, _, text) = h.call(post("/webhooks/wompi_2018", body, &[])).await;
    assert_eq!(status.as_u16(), 200, "the previous secret of the rotation list: {text}");
    let key = "11128-1578502783-84081:APPROVED:1530291411";
    let record = h
        .record("wompi_2018", key)
        .await
        .expect("stored under the composed key");
    assert_eq!(record.event_type, "transaction.updated");

    let refused = [
        (
            "\"status\":\"APPROVED\"",
            "\"status\":\"DECLINED\"",
            "invalid_signature",
        ),
        (
            "\"transaction.amount_in_cents\"",
            "\"transaction.amount\"",
            "invalid_signature",
        ),
        (
            "\"status\":\"APPROVED\"",
            "\"status\":[\"APPROVED\"]",
            "invalid_signature",
        ),
        ("\"checksum\": \"8", "\"checksum\": \"X", "invalid_signature"),
        ("\"checksum\"", "\"check\"", "missing_signature"),
        ("\"timestamp\"", "\"time\"", "missing_signature"),
    ];
    for (from, to, reason) in refused {
        assert!(body.contains(from), "{from}");
        let (status, json, _) = h.call(post("/webhooks/wompi_2018", &body.replace(from, to), &[])).await;
        assert_eq!((status.as_u16(), json["error"].as_str()), (401, Some(reason)), "{to}");
    }
}
