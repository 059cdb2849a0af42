//! The AWS adapters against a real AWS API emulator (moto's server): the
//! same contract suites the SQLite adapters pass, plus what only AWS has
//! (item size limit, SSE on S3, Secrets Manager / Parameter Store).
//!
//! Needs `WEBHOOKS_TEST_AWS_ENDPOINT` (`eval "$(scripts/aws-emulator start)"`;
//! `scripts/test` always sets it). Without it each test prints why and passes.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use webhooks_aws::dynamodb::DynamoStore;
#[cfg(feature = "artifacts-s3")]
use webhooks_aws::s3::S3Artifacts;
use webhooks_aws::sqs::SqsQueue;
use webhooks_aws::{AwsEnv, CachedSecrets, Clients};
use webhooks_core::event::{Event, EventState};
#[cfg(feature = "artifacts-s3")]
use webhooks_core::ports::artifacts::ArtifactStore;
use webhooks_core::ports::queue::Queue;
use webhooks_core::ports::store::{Claim, ClaimOutcome, EventStore};
use webhooks_core::secret::{SecretError, SecretResolver};
use webhooks_testkit_aws::{create_queue_pair, create_table, unique};

/// The emulator's clients, or `None` (with a message) when no emulator is configured.
async fn emulator(test: &str) -> Option<Clients> {
    webhooks_testkit_aws::clients_for_test(test).await
}

#[tokio::test]
async fn dynamodb_store_passes_the_store_contract() {
    let Some(c) = emulator("dynamodb_store_passes_the_store_contract").await else {
        return;
    };
    let table = unique("contract");
    create_table(&c.dynamodb, &table).await.expect("create table");
    let store = DynamoStore::new(c.dynamodb.clone(), &table);
    webhooks_testkit::contract::store::run_all_with_prefix(&store, &table).await;
}

#[tokio::test]
async fn dynamodb_refusals_pass_the_contract_and_stay_out_of_the_event_store() {
    let Some(c) = emulator("dynamodb_refusals_pass_the_contract_and_stay_out_of_the_event_store").await else {
        return;
    };
    let table = unique("refusals");
    create_table(&c.dynamodb, &table).await.expect("create table");
    let log = webhooks_aws::dynamodb::DynamoRefusals::new(
        c.dynamodb.clone(),
        &table,
        webhooks_testkit::contract::refusals::BOUNDS,
    );
    webhooks_testkit::contract::refusals::run_all(&log).await;
    // The same table's event store neither lists them nor chokes on them.
    let store = DynamoStore::new(c.dynamodb.clone(), &table);
    let listed = store
        .list(&webhooks_core::ports::store::ListFilter::default())
        .await
        .expect("list");
    assert!(listed.is_empty(), "{listed:?}");
    store.purge_expired(i64::MAX).await.expect("purge");
    let refusals = webhooks_core::ports::refusals::RefusalLog::list(&log, None, 10)
        .await
        .expect("list");
    assert!(!refusals.is_empty(), "the purge leaves refusals to TTL");
}

#[tokio::test]
async fn dynamodb_store_leaves_out_payloads_over_the_item_limit() {
    let Some(c) = emulator("dynamodb_store_leaves_out_payloads_over_the_item_limit").await else {
        return;
    };
    let table = unique("big");
    create_table(&c.dynamodb, &table).await.expect("create table");
    let store = DynamoStore::new(c.dynamodb.clone(), &table);
    let filler = "x".repeat(450 * 1024);
    let ev = Event {
        payload: webhooks_core::payload::Payload::from_text(format!(r#"{{"id":"big","fill":"{filler}"}}"#)),
        ..webhooks_testkit::fixtures::event("p", "big", "t")
    };
    let claim = Claim {
        event: &ev,
        state: EventState::Received,
        now: 100,
        lease_secs: 30,
        ttl_secs: 1000,
    };
    assert_eq!(store.claim(claim.clone()).await.expect("claim"), ClaimOutcome::Claimed);
    let rec = store.get(&ev.key()).await.expect("get").expect("record");
    assert!(
        rec.payload.is_none() && rec.payload_omitted,
        "the record says the payload was left out"
    );
    // A record just under the budget keeps it.
    let ev = webhooks_testkit::fixtures::event("p", "small", "t");
    let claim = Claim { event: &ev, ..claim };
    store.claim(claim).await.expect("claim");
    let rec = store.get(&ev.key()).await.expect("get").expect("record");
    assert_eq!(rec.payload.as_ref().map(|p| p.as_str()), Some(ev.payload.as_str()));
    assert!(!rec.payload_omitted);
}

#[tokio::test]
async fn dynamodb_store_is_unavailable_when_the_table_is_missing() {
    let Some(c) = emulator("dynamodb_store_is_unavailable_when_the_table_is_missing").await else {
        return;
    };
    let store = DynamoStore::new(c.dynamodb.clone(), &unique("missing"));
    let ev = webhooks_testkit::fixtures::event("p", "e", "t");
    let err = store.get(&ev.key()).await.expect_err("no table");
    assert!(err.to_string().contains("ResourceNotFound"), "{err}");
}

#[tokio::test]
async fn sqs_queue_passes_the_queue_contract() {
    let Some(c) = emulator("sqs_queue_passes_the_queue_contract").await else {
        return;
    };
    let (url, dlq) = create_queue_pair(&c.sqs, &unique("contract"), 30, 5)
        .await
        .expect("queues");
    let queue = SqsQueue::new(c.sqs.clone(), &url, &dlq);
    webhooks_testkit::contract::queue::run_all(&queue).await;
}

#[tokio::test]
async fn dynamodb_and_sqs_pass_the_admission_contract() {
    let Some(c) = emulator("dynamodb_and_sqs_pass_the_admission_contract").await else {
        return;
    };
    let table = unique("admission");
    create_table(&c.dynamodb, &table).await.expect("create table");
    let (url, dlq) = create_queue_pair(&c.sqs, &unique("admission"), 30, 5)
        .await
        .expect("queues");
    let store = std::sync::Arc::new(DynamoStore::new(c.dynamodb.clone(), &table));
    let queue = std::sync::Arc::new(SqsQueue::new(c.sqs.clone(), &url, &dlq));
    let admission = webhooks_core::ports::admission::EnqueueThenClaim::new(store.clone(), queue.clone());
    webhooks_testkit::contract::admission::run_all(&admission, store.as_ref(), queue.as_ref(), &table).await;
}

#[tokio::test]
async fn sqs_queue_carries_attributes_and_parks_poison_messages() {
    let Some(c) = emulator("sqs_queue_carries_attributes_and_parks_poison_messages").await else {
        return;
    };
    let (url, dlq) = create_queue_pair(&c.sqs, &unique("attrs"), 30, 5)
        .await
        .expect("queues");
    let queue = SqsQueue::new(c.sqs.clone(), &url, &dlq);
    queue
        .send(&[&webhooks_testkit::fixtures::event(
            "gigstack",
            "evt_1",
            "invoice.created",
        )])
        .await
        .expect("send");
    let raw = c
        .sqs
        .receive_message()
        .queue_url(&url)
        .message_attribute_names("All")
        .visibility_timeout(0)
        .send()
        .await
        .expect("receive");
    let attrs: HashMap<String, String> = raw.messages()[0]
        .message_attributes()
        .expect("attributes")
        .iter()
        .map(|(k, v)| (k.clone(), v.string_value().unwrap_or_default().to_string()))
        .collect();
    assert_eq!(attrs.get("provider").map(String::as_str), Some("gigstack"));
    assert_eq!(attrs.get("event_id").map(String::as_str), Some("evt_1"));
    assert_eq!(attrs.get("event_type").map(String::as_str), Some("invoice.created"));
    let d = queue
        .receive(10, std::time::Duration::from_secs(30))
        .await
        .expect("receive");
    queue.ack(&d[0]).await.expect("ack");
    // A body that is not an envelope goes to the DLQ with the reason.
    c.sqs
        .send_message()
        .queue_url(&url)
        .message_body("{not an envelope")
        .send()
        .await
        .expect("send poison");
    assert!(queue
        .receive(10, std::time::Duration::from_secs(30))
        .await
        .expect("receive")
        .is_empty());
    let parked = c
        .sqs
        .receive_message()
        .queue_url(&dlq)
        .message_attribute_names("All")
        .send()
        .await
        .expect("receive dlq");
    let m = &parked.messages()[0];
    assert_eq!(m.body(), Some("{not an envelope"));
    let reason = m
        .message_attributes()
        .and_then(|a| a.get("reason"))
        .and_then(|v| v.string_value());
    assert!(reason.is_some_and(|r| !r.is_empty()), "{reason:?}");
    assert_eq!(queue.depth(false).await.expect("depth"), 0);
}

#[tokio::test]
async fn sqs_queue_send_fails_when_the_queue_is_gone() {
    let Some(c) = emulator("sqs_queue_send_fails_when_the_queue_is_gone").await else {
        return;
    };
    let (url, dlq) = create_queue_pair(&c.sqs, &unique("gone"), 30, 5).await.expect("queues");
    c.sqs.delete_queue().queue_url(&url).send().await.expect("delete");
    let queue = SqsQueue::new(c.sqs.clone(), &url, &dlq);
    let err = queue
        .send(&[&webhooks_testkit::fixtures::event("p", "e", "t")])
        .await
        .expect_err("no queue");
    assert!(
        matches!(err, webhooks_core::ports::queue::QueueError::Unavailable(_)),
        "{err}"
    );
}

#[cfg(feature = "artifacts-s3")]
#[tokio::test]
async fn s3_artifacts_are_encrypted_and_confined() {
    let Some(c) = emulator("s3_artifacts_are_encrypted_and_confined").await else {
        return;
    };
    let bucket = unique("pdfs");
    c.s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
    let store = S3Artifacts::new(c.s3.clone(), &bucket, None);
    let at = store
        .put("gigstack/inv_1.pdf", b"%PDF-1.4 test", "application/pdf")
        .await
        .expect("put");
    assert_eq!(at, format!("s3://{bucket}/gigstack/inv_1.pdf"));
    let head =
        c.s3.head_object()
            .bucket(&bucket)
            .key("gigstack/inv_1.pdf")
            .send()
            .await
            .expect("head");
    assert_eq!(head.server_side_encryption().map(|s| s.as_str()), Some("AES256"));
    assert_eq!(head.content_type(), Some("application/pdf"));
    let got =
        c.s3.get_object()
            .bucket(&bucket)
            .key("gigstack/inv_1.pdf")
            .send()
            .await
            .expect("get")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
    assert_eq!(&got[..], b"%PDF-1.4 test");
    assert!(store.put("../escape.pdf", b"x", "application/pdf").await.is_err());
    let missing = S3Artifacts::new(c.s3.clone(), &unique("nobucket"), None);
    assert!(missing.put("a.pdf", b"x", "application/pdf").await.is_err());
}

#[tokio::test]
async fn secrets_are_prefetched_once_from_secrets_manager_and_ssm() {
    let Some(c) = emulator("secrets_are_prefetched_once_from_secrets_manager_and_ssm").await else {
        return;
    };
    let prefix = unique("webhooks");
    let plain = format!("{prefix}/gigstack");
    let json = format!("{prefix}/bundle");
    let param = format!("/{prefix}/tf-token");
    c.secrets_manager
        .create_secret()
        .name(&plain)
        .secret_string("gs-secret-value")
        .send()
        .await
        .expect("secret");
    c.secrets_manager
        .create_secret()
        .name(&json)
        .secret_string(r#"{"piriod":"pi-token","n":5}"#)
        .send()
        .await
        .expect("secret");
    c.ssm
        .put_parameter()
        .overwrite(true)
        .name(&param)
        .value("tf-token-value")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("parameter");
    let overlay = format!(
        r#"
        [providers.tusfacturas]
        verifier = {{ scheme = "token", name = "TF-WebhookToken", in = "header", secrets = ["ssm:{param}"] }}
        [providers.piriod]
        verifier = {{ scheme = "token", name = "token", in = "query", secrets = ["secretsmanager:{json}#piriod"] }}
        [handlers]
        gigstack_api_key = "secretsmanager:{json}#n"
        notify_url = "secretsmanager:{prefix}/does-not-exist"
        "#
    );
    let texts = vec![webhooks_core::config::DEFAULT_TOML.to_string(), overlay];
    let env_plain = plain.clone();
    let env = move |name: &str| match name {
        "GIGSTACK_WEBHOOK_SECRET" => Some(format!("secretsmanager:{env_plain}")),
        "GIGSTACK_WEBHOOK_SECRET_PREVIOUS" => Some("literal-looking-but-plain".to_string()),
        _ => None,
    };
    let cache = CachedSecrets::prefetch(&c, &texts, env).await;
    assert_eq!(cache.len(), 5, "{cache:?}");
    assert_eq!(
        cache.resolve("env:GIGSTACK_WEBHOOK_SECRET").expect("gs").expose(),
        b"gs-secret-value"
    );
    assert_eq!(
        cache
            .resolve("env:GIGSTACK_WEBHOOK_SECRET_PREVIOUS")
            .expect("prev")
            .expose(),
        b"literal-looking-but-plain"
    );
    assert_eq!(
        cache.resolve(&format!("ssm:{param}")).expect("ssm").expose(),
        b"tf-token-value"
    );
    assert_eq!(
        cache
            .resolve(&format!("secretsmanager:{json}#piriod"))
            .expect("json")
            .expose(),
        b"pi-token"
    );
    assert_eq!(
        cache
            .resolve(&format!("secretsmanager:{json}#n"))
            .expect("json n")
            .expose(),
        b"5"
    );
    let missing = cache
        .resolve(&format!("secretsmanager:{prefix}/does-not-exist"))
        .expect_err("missing");
    assert!(matches!(missing, SecretError::Source { .. }), "{missing:?}");
    assert!(
        missing.to_string().contains("does-not-exist") && missing.to_string().contains("ResourceNotFound"),
        "{missing}"
    );
    // Resolution is from the cache: nothing is fetched after cold start.
    let not_prefetched = cache.resolve("ssm:/never/seen").expect_err("not prefetched");
    assert!(not_prefetched.to_string().contains("prefetched"), "{not_prefetched}");
    // Debug output names secrets, never values.
    let debug = format!("{cache:?}");
    assert!(
        !debug.contains("gs-secret-value") && !debug.contains("tf-token-value"),
        "{debug}"
    );
}

#[tokio::test]
async fn cold_start_reads_the_config_overlay_from_ssm_and_names_what_is_missing() {
    let Some(c) = emulator("cold_start_reads_the_config_overlay_from_ssm_and_names_what_is_missing").await else {
        return;
    };
    let name = unique("cold");
    let param = format!("/{name}/config");
    c.ssm
        .put_parameter()
        .overwrite(true)
        .name(&param)
        .value("[retry]\nmax_attempts = 2\n")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .expect("parameter");
    let vars: HashMap<&str, String> = HashMap::from([
        ("EVENTS_TABLE", format!("{name}-events")),
        ("QUEUE_URL", "http://127.0.0.1:1/000000000000/missing".to_string()),
        ("DLQ_URL", "http://127.0.0.1:1/000000000000/missing-dlq".to_string()),
        ("ARTIFACTS_BUCKET", format!("{name}-artifacts")),
        ("WEBHOOKS_CONFIG", format!("ssm:{param}")),
    ]);
    let env = AwsEnv::from_lookup(|k| vars.get(k).cloned()).expect("env");
    let (_, text) = webhooks_aws::load_overlay(&env, &c)
        .await
        .expect("overlay")
        .expect("some overlay");
    assert!(text.contains("max_attempts = 2"));
    // The table does not exist: the cold start fails naming it.
    let err = c.warm_up(&env).await.expect_err("no table");
    assert!(err.to_string().contains(&format!("{name}-events")), "{err}");
    create_table(&c.dynamodb, &env.events_table).await.expect("table");
    let err = c.warm_up(&env).await.expect_err("no queue");
    assert!(err.to_string().contains("SQS queue"), "{err}");
    let missing = AwsEnv {
        config: Some(format!("ssm:/{name}/nope")),
        ..env
    };
    let err = webhooks_aws::load_overlay(&missing, &c)
        .await
        .expect_err("missing parameter");
    assert!(
        err.to_string().contains("WEBHOOKS_CONFIG") && err.to_string().contains("nope"),
        "{err}"
    );
}

/// A provider whose secret cannot be fetched at cold start is not switched
/// off (404 makes some senders disable the endpoint): it answers 503 with
/// retry-after, the fetch is tried again with backoff, and once the secret
/// exists the provider is served.
#[tokio::test]
async fn a_secret_unavailable_at_cold_start_answers_503_until_it_can_be_fetched() {
    let Some(endpoint) = webhooks_testkit_aws::endpoint_for_test(
        "a_secret_unavailable_at_cold_start_answers_503_until_it_can_be_fetched",
    ) else {
        return;
    };
    let sdk = webhooks_testkit_aws::sdk_config(&endpoint).await;
    let c = Clients::new(&sdk);
    let name = unique("pending");
    create_table(&c.dynamodb, &format!("{name}-events"))
        .await
        .expect("table");
    let (queue_url, dlq_url) = create_queue_pair(&c.sqs, &name, 30, 5).await.expect("queues");
    let secret = format!("{name}/acme-token");
    let dir = tempfile::tempdir().expect("tempdir");
    let overlay = dir.path().join("overlay.toml");
    std::fs::write(
        &overlay,
        format!(
            r#"
            [providers.gigstack]
            enabled = false
            [providers.tusfacturas]
            enabled = false
            [providers.piriod]
            enabled = false
            [providers.acme]
            verifier = {{ scheme = "token", name = "X-Token", in = "header", secrets = ["secretsmanager:{secret}"] }}
            event_id = "body:/id"
            "#
        ),
    )
    .expect("overlay");
    let env = AwsEnv {
        events_table: format!("{name}-events"),
        queue_url,
        dlq_url,
        artifacts_bucket: format!("{name}-artifacts"),
        artifacts_kms_key: None,
        config: Some(overlay.display().to_string()),
        endpoint_url: Some(endpoint.clone()),
        metrics_namespace: "Webhooks".into(),
    };
    let runtime = webhooks_aws::cold_start(&env, &sdk).await.expect("the function starts");
    // Through the HTTP router (what the ingest function serves), so the
    // answer's headers are checked too, not only the pipeline's outcome.
    let router = webhooks_core::http::router(runtime.app.ingest.clone());
    let deliver = || async {
        let request = http::Request::post("/webhooks/acme")
            .header("content-type", "application/json")
            .header("x-token", "acme-token-value")
            .body(axum::body::Body::from(r#"{"id":"evt_acme_1","type":"t"}"#))
            .expect("request");
        let response = tower::ServiceExt::oneshot(router.clone(), request)
            .await
            .expect("infallible");
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("a JSON answer");
        (status, retry_after, body)
    };
    let (status, retry_after, body) = deliver().await;
    assert_eq!(status, 503, "not served yet: {body}");
    assert_eq!(body, serde_json::json!({"error": "unavailable"}));
    assert!(
        retry_after
            .as_deref()
            .and_then(|s| s.parse::<u32>().ok())
            .is_some_and(|secs| secs > 0),
        "503 says when to come back: {retry_after:?}"
    );
    c.secrets_manager
        .create_secret()
        .name(&secret)
        .secret_string("acme-token-value")
        .send()
        .await
        .expect("secret");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (status, retry_after, body) = deliver().await;
        if status == 200 {
            // Served and admitted (no handler for type "t": recorded as ignored).
            assert_eq!(body["ids"], serde_json::json!(["evt_acme_1"]), "{body}");
            break;
        }
        assert_eq!((status, retry_after.as_deref()), (503, Some("5")), "{body}");
        assert!(std::time::Instant::now() < deadline, "the provider was never served");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// An event as the processor hands it to a handler.
#[cfg(feature = "eventbridge")]
fn paid_event(id: &str) -> Event {
    Event {
        payload: webhooks_core::payload::Payload::from_text(format!(r#"{{"id":"{id}","data":{{"total":10.5}}}}"#)),
        ..webhooks_testkit::fixtures::event("gigstack", id, "invoice.paid")
    }
}

#[cfg(feature = "eventbridge")]
#[tokio::test]
async fn eventbridge_handler_puts_the_event_on_the_bus() {
    use webhooks_aws::eventbridge::PutOnBus;
    use webhooks_core::handlers::Handler;
    let Some(c) = emulator("eventbridge_handler_puts_the_event_on_the_bus").await else {
        return;
    };
    // A bus, and a rule that copies what the handler puts to a queue we read.
    let bus = unique("bus");
    c.eventbridge
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("create bus");
    let queue_url = c
        .sqs
        .create_queue()
        .queue_name(unique("eb-target"))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    let queue_arn = c
        .sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
        .expect("queue arn");
    let rule = unique("rule");
    c.eventbridge
        .put_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .event_pattern(r#"{"source":["webhooks.gigstack"]}"#)
        .send()
        .await
        .expect("put rule");
    c.eventbridge
        .put_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(&queue_arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("put targets");

    let ev = paid_event("evt_eb_1");
    let out = PutOnBus::new(c.eventbridge.clone(), &bus)
        .handle(&ev)
        .await
        .expect("put on the bus");
    assert_eq!(out["bus"], bus.as_str());
    assert!(out["eventbridge_id"].is_string(), "{out}");

    let mut received = Vec::new();
    for _ in 0..10 {
        let got = c
            .sqs
            .receive_message()
            .queue_url(&queue_url)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        received.extend(got.messages.unwrap_or_default());
        if !received.is_empty() {
            break;
        }
    }
    assert_eq!(received.len(), 1, "the rule delivered the event once");
    let delivered: serde_json::Value =
        serde_json::from_str(received[0].body().expect("body")).expect("an EventBridge event");
    assert_eq!(delivered["source"], "webhooks.gigstack");
    assert_eq!(delivered["detail-type"], "invoice.paid");
    assert_eq!(delivered["detail"], ev.payload_value());

    // Nothing answers: retryable, naming the bus.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let nowhere = webhooks_testkit_aws::sdk_config(&format!("http://127.0.0.1:{closed}")).await;
    let err = PutOnBus::new(aws_sdk_eventbridge::Client::new(&nowhere), &bus)
        .handle(&ev)
        .await
        .expect_err("no endpoint");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains(&bus), "{err}");
}

/// `eventbridge:BUS` names exist only on AWS: the cold start registers one
/// handler per bus the config names, where the core app alone refuses them.
/// (No AWS call is made while building, so no emulator is needed.)
#[tokio::test]
async fn the_cold_start_registers_every_eventbridge_bus_the_config_names() {
    use webhooks_core::config::AppConfig;
    let config = AppConfig::from_overlay(Some((
        "test",
        "[providers.gigstack.handlers]\n\"invoice.paid\" = [\"eventbridge:orders\", \"forward:erp\"]\n\"*\" = [\"eventbridge:audit\"]",
    )))
    .expect("config");
    let secrets = webhooks_core::secret::MapResolver::default().with("GIGSTACK_WEBHOOK_SECRET", "s");
    let sdk = webhooks_testkit_aws::sdk_config("http://127.0.0.1:1").await;
    let env = AwsEnv {
        events_table: "events".into(),
        queue_url: "http://127.0.0.1:1/000000000000/q".into(),
        dlq_url: "http://127.0.0.1:1/000000000000/dlq".into(),
        artifacts_bucket: "artifacts".into(),
        artifacts_kms_key: None,
        config: None,
        endpoint_url: None,
        metrics_namespace: "Webhooks".into(),
    };
    let mut seen = Vec::new();
    webhooks_aws::build(&env, Clients::new(&sdk), &config, &secrets, |registry, _| {
        for name in ["eventbridge:orders", "eventbridge:audit"] {
            if registry.contains(name) {
                seen.push(name);
            }
        }
    })
    .expect("the AWS app builds");
    assert_eq!(seen, ["eventbridge:orders", "eventbridge:audit"]);

    // The same config without the AWS cold start: refused, naming the handler.
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = webhooks_core::app::Ports::new(
        std::sync::Arc::new(webhooks_testkit::memory::store::MemoryStore::new()),
        std::sync::Arc::new(webhooks_testkit::memory::queue::MemoryQueue::new()),
        std::sync::Arc::new(webhooks_core::ports::artifacts::LocalDir::new(dir.path())),
    );
    let err = webhooks_core::app::App::build(&config, &secrets, ports)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("eventbridge:"), "{err}");
}

/// Secrets Manager not answering (every connection closed before a
/// response): the batch's secrets are each reported unavailable, naming the
/// reference, and not asked for again one by one, which would only wait as
/// long again. The connections counted are the batch's own attempts.
#[tokio::test]
async fn a_batch_without_an_answer_reports_each_secret_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(socket);
        }
    });
    let c = Clients::new(&webhooks_testkit_aws::sdk_config(&endpoint).await);
    let overlay = r#"
        [handlers]
        gigstack_api_key = "secretsmanager:webhooks/one"
        notify_url = "secretsmanager:webhooks/two"
    "#;
    let texts = vec![overlay.to_string()];
    let cache = CachedSecrets::prefetch(&c, &texts, |_| None).await;
    assert_eq!(cache.len(), 2, "{cache:?}");
    for reference in ["secretsmanager:webhooks/one", "secretsmanager:webhooks/two"] {
        let err = cache.resolve(reference).expect_err("no answer");
        assert!(matches!(err, SecretError::Source { .. }), "{err:?}");
        assert!(err.to_string().contains(reference), "{err}");
    }
    let attempts = connections.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (1..=3).contains(&attempts),
        "one batch request (at most 3 attempts), no single fetches after it: {attempts} connections"
    );
}
