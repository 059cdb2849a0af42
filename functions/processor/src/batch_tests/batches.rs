//! The processor function fed real messages received from moto's queue:
//! batch responses, exactly-once handlers, backoff, the DLQ after
//! maxReceiveCount, poison messages and panics isolated per record.
//!
//! Needs `WEBHOOKS_TEST_AWS_ENDPOINT` (`eval "$(scripts/aws-emulator start)"`;
//! `scripts/test` always sets it). Without it the emulator tests print why and pass.

use super::support::*;
use crate::{BatchHandler, RunOne};
use std::sync::Arc;
use std::time::{Duration, Instant};
use webhooks_core::event::{EventKey, EventState};
use webhooks_core::pipeline::process::Disposition;
use webhooks_core::ports::queue::{Queue, ReceivedMessage};
use webhooks_core::ports::store::EventStore;
use webhooks_testkit_aws::sqs_event;

/// Every SQS event file in `events/`, with the ids of the records in it that
/// are poison (not an event envelope).
const SQS_EVENTS: &[(&str, &[&str])] = &[
    ("sqs-batch.json", &[]),
    ("sqs-batch-poison.json", &["0b5e1c7a-0000-4000-8000-000000000005"]),
];

#[test]
fn every_sqs_event_file_is_read_by_a_test() {
    for name in event_files().iter().filter(|n| n.starts_with("sqs-")) {
        assert!(
            SQS_EVENTS.iter().any(|(f, _)| f == name),
            "events/{name} is read by no test: add it to SQS_EVENTS in functions/processor/src/batch_tests/batches.rs"
        );
    }
}

/// Ingests API Gateway event files through the real ingest router.
async fn ingest(runtime: &webhooks_aws::Runtime, files: &[&str]) {
    let router = ingest::router(runtime);
    for file in files {
        let answer = invoke_http(&router, &read_event(file)).await;
        assert_eq!(answer.status, 200, "{file}: {answer:?}");
    }
}

/// A fresh stack whose queue holds the three seed providers' sample events,
/// received (with real receipt handles) and counted by the handlers.
async fn three_queued(
    endpoint: &str,
    name: &str,
) -> (Stack, Counter, webhooks_aws::Runtime, Vec<aws_sdk_sqs::types::Message>) {
    let stack = Stack::create(endpoint, name, 5).await;
    let counter = Counter::default();
    let runtime = stack.runtime(COUNT_ALL, &counter);
    ingest(
        &runtime,
        &[
            "apigw-gigstack-invoice-created.json",
            "apigw-tusfacturas-comprobante.json",
            "apigw-piriod-invoice-created.json",
        ],
    )
    .await;
    let messages = stack.receive_raw(3, 180).await;
    assert_eq!(messages.len(), 3);
    (stack, counter, runtime, messages)
}

/// The operator's `dead_letters` command lists exactly `key`, with a reason
/// that says `why`, and no payload.
async fn assert_lists_one_dead_letter(function: &crate::Function, key: &EventKey, why: &str) {
    let listed = function
        .invoke(serde_json::json!({"action": "dead_letters"}))
        .await
        .expect("dead letters");
    let items = listed["dead_letters"].as_array().expect("a list");
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["id"], &*key.id, "{listed}");
    assert!(items[0]["reason"].as_str().is_some_and(|r| r.contains(why)), "{listed}");
    assert!(items[0].get("payload").is_none(), "no payloads in listings");
}

fn failures(r: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

#[tokio::test]
async fn processes_real_messages_from_the_queue() {
    let Some(endpoint) = endpoint("processes_real_messages_from_the_queue") else {
        return;
    };
    let (_stack, counter, runtime, messages) = three_queued(&endpoint, "proc-real").await;
    let handler = BatchHandler::from_runtime(&runtime);
    let response = handler.handle(sqs_event(&messages)).await;
    assert!(failures(&response).is_empty(), "{response:?}");
    for key in [
        EventKey::new("gigstack", "evt_gs_test_0001"),
        EventKey::new("tusfacturas", "pedido-2026-0042:aprobado:76123456789012"),
        stored_key(&runtime, "piriod", "invoice.created:inv_cl_test_7781").await,
    ] {
        let rec = runtime.store.get(&key).await.expect("get").expect("record");
        assert_eq!(rec.state, EventState::Done, "{key}");
        assert_eq!(rec.attempts, 1, "{key}");
        assert!(rec.results.contains_key(COUNTER), "{key}: {:?}", rec.results);
        assert_eq!(counter.runs(&key.id), 1, "{key}");
    }
    assert_eq!(
        runtime.queue.depth(false).await.expect("depth"),
        0,
        "processed messages are deleted"
    );
}

#[tokio::test]
async fn a_duplicate_never_runs_a_handler_twice() {
    let Some(endpoint) = endpoint("a_duplicate_never_runs_a_handler_twice") else {
        return;
    };
    let stack = Stack::create(&endpoint, "proc-dup", 5).await;
    let counter = Counter::default();
    let runtime = stack.runtime(COUNT_ALL, &counter);
    // The provider sends the same event twice: the second is a duplicate at
    // ingest, whose message went out before ingest knew it for one.
    ingest(
        &runtime,
        &["apigw-gigstack-invoice-created.json", "apigw-gigstack-duplicate.json"],
    )
    .await;
    let both = stack.receive_raw(2, 180).await;
    assert_eq!(both.len(), 2, "a message for each delivery");
    // SQS delivers at least once: put the same envelope on the queue again.
    stack.send_raw(both[0].body().expect("body")).await;
    let handler = BatchHandler::from_runtime(&runtime);
    // Both in one batch: run in turn, the second finds the event finished
    // and is acknowledged, rather than finding it leased and going back.
    let response = handler.handle(sqs_event(&both)).await;
    assert!(
        failures(&response).is_empty(),
        "an event's messages in one batch are all settled: {response:?}"
    );
    let first = &both[..1];
    let again = stack.receive_raw(1, 180).await;
    assert_eq!(again.len(), 1);
    let response = handler.handle(sqs_event(&again)).await;
    assert!(
        failures(&response).is_empty(),
        "the copy of a DONE event is acknowledged: {response:?}"
    );
    // And a third delivery of the original to the same batch handler.
    let response = handler.handle(sqs_event(first)).await;
    assert!(failures(&response).is_empty(), "{response:?}");
    assert_eq!(counter.runs("evt_gs_test_0001"), 1, "the handler ran once");
    assert_eq!(runtime.queue.depth(false).await.expect("depth"), 0);
}

#[tokio::test]
async fn a_failing_record_is_retried_with_backoff_then_dead_lettered() {
    let Some(endpoint) = endpoint("a_failing_record_is_retried_with_backoff_then_dead_lettered") else {
        return;
    };
    const MAX: u32 = 3;
    let stack = Stack::create(&endpoint, "proc-retry", MAX).await;
    let counter = Counter::default();
    counter.fail_with("upstream 503");
    let overlay = format!("{COUNT_ALL}\n[retry]\nmax_attempts = {MAX}\nbase_delay_ms = 1000\nmax_delay_ms = 2000\n");
    let runtime = stack.runtime(&overlay, &counter);
    ingest(&runtime, &["apigw-piriod-invoice-created.json"]).await;
    let key = stored_key(&runtime, "piriod", "invoice.created:inv_cl_test_7781").await;
    let handler = BatchHandler::from_runtime(&runtime);
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last_attempt: Option<Instant> = None;
    let mut attempts = 0;
    while attempts < MAX {
        assert!(Instant::now() < deadline, "gave up waiting after {attempts} attempts");
        // Poll as the event source mapping does, with the queue's visibility.
        let got = stack.receive_raw(1, 180).await;
        let Some(message) = got.first() else { continue };
        let now = Instant::now();
        if let Some(prev) = last_attempt {
            // The backoff is base * 2^(n-1) with jitter in [50%, 100%], in whole seconds.
            assert!(
                now - prev >= Duration::from_millis(900),
                "retried after {:?}, before the backoff",
                now - prev
            );
        }
        last_attempt = Some(now);
        attempts += 1;
        let count: u32 = message
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse().ok())
            .expect("receive count");
        assert_eq!(count, attempts, "SQS counts the receives");
        let response = handler.handle(sqs_event(&got)).await;
        let rec = runtime.store.get(&key).await.expect("get").expect("record");
        if attempts < MAX {
            assert_eq!(failures(&response), vec![message.message_id().expect("id").to_string()]);
            assert_eq!(rec.state, EventState::Queued, "waiting for its next attempt");
            assert_eq!(rec.last_error.as_deref(), Some("test.count: retryable: upstream 503"));
        } else {
            assert!(
                failures(&response).is_empty(),
                "a dead-lettered record is settled: {response:?}"
            );
            assert_eq!(rec.state, EventState::Failed);
            assert_eq!(rec.attempts, MAX);
        }
    }
    assert_eq!(counter.runs(&key.id), MAX);
    let dead = stack.dlq_messages().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let reason = dead[0].1.clone().unwrap_or_default();
    assert!(reason.contains(&format!("gave up after {MAX} attempts")), "{reason}");
    assert_eq!(
        runtime.queue.depth(false).await.expect("depth"),
        0,
        "not on the main queue any more"
    );

    // The operator's redrive: back to the main queue with a fresh count, record requeued.
    // Through the function's operator commands, as `aws lambda invoke` would.
    let function = crate::Function::from_runtime(&runtime);
    assert_lists_one_dead_letter(&function, &key, "gave up").await;
    let moved = function
        .invoke(serde_json::json!({"action": "redrive", "max": 10}))
        .await
        .expect("redrive");
    assert_eq!(moved, serde_json::json!({"redriven": [key.to_string()]}));
    assert!(function.invoke(serde_json::json!({"action": "explode"})).await.is_err());
    let rec = runtime.store.get(&key).await.expect("get").expect("record");
    assert_eq!((rec.state, rec.attempts), (EventState::Queued, 0));
    let back = stack.receive_raw(1, 180).await;
    assert_eq!(back.len(), 1);
    let fixed = Counter::default();
    let runtime = stack.runtime(&overlay, &fixed);
    let response = BatchHandler::from_runtime(&runtime).handle(sqs_event(&back)).await;
    assert!(failures(&response).is_empty(), "{response:?}");
    assert_eq!(
        runtime.store.get(&key).await.expect("get").expect("record").state,
        EventState::Done
    );
}

#[tokio::test]
async fn sqs_event_files_through_the_batch_handler() {
    let Some(endpoint) = endpoint("sqs_event_files_through_the_batch_handler") else {
        return;
    };
    for (file, poison) in SQS_EVENTS {
        let stack = Stack::create(&endpoint, "proc-files", 5).await;
        let counter = Counter::default();
        let runtime = stack.runtime(COUNT_ALL, &counter);
        let mut event: aws_lambda_events::event::sqs::SqsEvent =
            serde_json::from_str(&read_event(file)).expect("an SQS event");
        // The file's receipt handles are samples: put each body on the real
        // queue and take the real handle, keeping the file's message id.
        for record in &event.records {
            stack.send_raw(record.body.as_deref().expect("body")).await;
        }
        let received = stack.receive_raw(event.records.len(), 180).await;
        assert_eq!(received.len(), event.records.len(), "{file}");
        for record in &mut event.records {
            let body = record.body.clone();
            let real = received.iter().find(|m| m.body() == body.as_deref()).expect("received");
            record.receipt_handle = real.receipt_handle().map(str::to_string);
        }
        let response = BatchHandler::from_runtime(&runtime).handle(event.clone()).await;
        assert!(failures(&response).is_empty(), "{file}: {response:?}");
        let dead = stack.dlq_messages().await;
        assert_eq!(dead.len(), poison.len(), "{file}: {dead:?}");
        for (body, reason) in &dead {
            assert!(body.contains("not an event envelope"), "{file}: {body}");
            assert!(
                reason.as_deref().is_some_and(|r| !r.is_empty()),
                "{file}: the reason travels"
            );
        }
        for record in &event.records {
            if poison.contains(&record.message_id.as_deref().unwrap_or_default()) {
                continue;
            }
            let envelope: serde_json::Value =
                serde_json::from_str(record.body.as_deref().expect("body")).expect("json");
            let key = EventKey::new(
                envelope["provider"].as_str().expect("provider"),
                envelope["id"].as_str().expect("id"),
            );
            let rec = runtime
                .store
                .get(&key)
                .await
                .expect("get")
                .expect("record created from the envelope");
            assert_eq!(rec.state, EventState::Done, "{file}: {key}");
            assert_eq!(counter.runs(&key.id), 1, "{file}: {key}");
        }
        assert_eq!(runtime.queue.depth(false).await.expect("depth"), 0, "{file}");
    }
}

#[tokio::test]
async fn a_panic_in_one_record_fails_only_that_record() {
    let Some(endpoint) = endpoint("a_panic_in_one_record_fails_only_that_record") else {
        return;
    };
    let (_stack, counter, runtime, messages) = three_queued(&endpoint, "proc-panic").await;
    let processor = runtime.app.processor.clone();
    let run: RunOne = Arc::new(move |delivery: ReceivedMessage| {
        let processor = processor.clone();
        Box::pin(async move {
            if delivery.event.provider == "tusfacturas" {
                panic!("injected panic outside the handlers");
            }
            processor.run(&delivery, webhooks_core::time::unix_now()).await
        })
    });
    let handler = BatchHandler::with_runner(runtime.queue.clone(), run);
    let response = handler.handle(sqs_event(&messages)).await;
    let tf = messages
        .iter()
        .find(|m| m.body().is_some_and(|b| b.contains("\"provider\":\"tusfacturas\"")))
        .and_then(|m| m.message_id())
        .expect("tusfacturas message");
    assert_eq!(
        failures(&response),
        vec![tf.to_string()],
        "only the panicking record fails"
    );
    assert_eq!(counter.runs("evt_gs_test_0001"), 1);
    assert_eq!(counter.runs("invoice.created:inv_cl_test_7781"), 1);
    // The others are settled; the failed one stays on the queue for SQS to redeliver.
    assert_eq!(runtime.queue.depth(false).await.expect("depth"), 1);
}

#[tokio::test]
async fn retry_dispositions_are_batch_item_failures() {
    let Some(endpoint) = endpoint("retry_dispositions_are_batch_item_failures") else {
        return;
    };
    let stack = Stack::create(&endpoint, "proc-disp", 5).await;
    let runtime = stack.runtime(COUNT_ALL, &Counter::default());
    ingest(
        &runtime,
        &[
            "apigw-gigstack-invoice-created.json",
            "apigw-piriod-invoice-created.json",
        ],
    )
    .await;
    let messages = stack.receive_raw(2, 180).await;
    assert_eq!(messages.len(), 2);
    let queue = runtime.queue.clone();
    let run: RunOne = Arc::new(move |delivery: ReceivedMessage| {
        let queue = queue.clone();
        Box::pin(async move {
            if delivery.event.provider == "gigstack" {
                queue.ack(&delivery).await.expect("ack");
                Disposition::Ack
            } else {
                Disposition::RetryAfter(Duration::from_secs(1))
            }
        })
    });
    let response = BatchHandler::with_runner(runtime.queue.clone(), run)
        .handle(sqs_event(&messages))
        .await;
    let piriod = messages
        .iter()
        .find(|m| m.body().is_some_and(|b| b.contains("\"provider\":\"piriod\"")))
        .and_then(|m| m.message_id())
        .expect("piriod message");
    assert_eq!(failures(&response), vec![piriod.to_string()]);
    let json = serde_json::to_value(&response).expect("serializes");
    assert_eq!(
        json["batchItemFailures"][0]["itemIdentifier"], piriod,
        "the shape Lambda reads: {json}"
    );
}

/// A record whose processing crashes every time (a panic, or a timeout of
/// the whole function, after its lease was taken) is never settled by the
/// processor: SQS's redrive policy moves it to the DLQ after maxReceiveCount
/// receives on its own, its record still PROCESSING. Listing the dead
/// letters marks the record FAILED with a reason that says so. The
/// operator's redrive then brings it back with its record reset, and it is
/// processed once.
#[tokio::test]
async fn a_crash_looping_record_is_moved_by_the_redrive_policy_and_redriven() {
    let Some(endpoint) = endpoint("a_crash_looping_record_is_moved_by_the_redrive_policy_and_redriven") else {
        return;
    };
    const MAX_RECEIVES: u32 = 2;
    let stack = Stack::create(&endpoint, "proc-crash", MAX_RECEIVES).await;
    let counter = Counter::default();
    // Leases of 1 s: each crashed lease has run out by the next receive.
    let overlay = format!("{COUNT_ALL}\n[retry]\nmax_attempts = {MAX_RECEIVES}\nprocessing_lease_secs = 1\n");
    let runtime = stack.runtime(&overlay, &counter);
    ingest(&runtime, &["apigw-gigstack-invoice-created.json"]).await;
    let key = EventKey::new("gigstack", "evt_gs_test_0001");
    // The processor takes the lease, then dies in the handlers.
    let store = runtime.store.clone();
    let crash: RunOne = Arc::new(move |delivery: ReceivedMessage| {
        let store = store.clone();
        Box::pin(async move {
            let now = webhooks_core::time::unix_now();
            store.lease(&delivery.event, now, 1, 86_400).await.expect("lease");
            panic!("the function crashed")
        })
    });
    let crashing = BatchHandler::with_runner(runtime.queue.clone(), crash);
    let mut receives = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    // Receive with a 1 s visibility until SQS stops handing the message out.
    loop {
        assert!(Instant::now() < deadline, "the redrive policy never moved it");
        let got = stack.receive_raw(1, 1).await;
        if got.is_empty() {
            if stack.dlq_messages().await.len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        receives += 1;
        let response = crashing.handle(sqs_event(&got)).await;
        assert_eq!(failures(&response).len(), 1, "a crashed record is a batch item failure");
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert_eq!(receives, MAX_RECEIVES, "moved after maxReceiveCount receives");
    assert_eq!(counter.runs(&key.id), 0);
    let function = crate::Function::from_runtime(&runtime);
    let why = format!("moved to the dead-letter queue by the queue's redrive policy after {MAX_RECEIVES} receives");
    assert_eq!(
        runtime.store.get(&key).await.expect("get").expect("record").state,
        EventState::Processing,
        "the redrive policy moved it behind the record's back"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the last update's lease period
    assert_lists_one_dead_letter(&function, &key, &why).await;
    let rec = runtime.store.get(&key).await.expect("get").expect("record");
    assert_eq!(
        (rec.state, rec.last_error.as_deref()),
        (EventState::Failed, Some(why.as_str()))
    );
    let moved = function
        .invoke(serde_json::json!({"action": "redrive"}))
        .await
        .expect("redrive");
    assert_eq!(moved, serde_json::json!({"redriven": [key.to_string()]}));
    let back = stack.receive_raw(1, 180).await;
    assert_eq!(back.len(), 1);
    let response = BatchHandler::from_runtime(&runtime).handle(sqs_event(&back)).await;
    assert!(failures(&response).is_empty(), "{response:?}");
    let rec = runtime.store.get(&key).await.expect("get").expect("record");
    assert_eq!(rec.state, EventState::Done);
    assert_eq!(counter.runs(&key.id), 1, "processed once after the redrive");
    assert!(stack.dlq_messages().await.is_empty());
}

/// A message whose record another processor holds is retried until that
/// lease ends, however many receives that takes: at the queue's
/// maxReceiveCount it is re-sent fresh (receive count back at zero), so
/// SQS's redrive policy never moves it to the dead letters while its record
/// waits (left there, the record would say QUEUED with nothing to run it).
#[tokio::test]
async fn a_message_waiting_for_another_processors_lease_never_reaches_the_dead_letters() {
    let Some(endpoint) = endpoint("a_message_waiting_for_another_processors_lease_never_reaches_the_dead_letters")
    else {
        return;
    };
    const MAX_RECEIVES: u32 = 2;
    let stack = Stack::create(&endpoint, "proc-busy", MAX_RECEIVES).await;
    let counter = Counter::default();
    let overlay = format!("{COUNT_ALL}\n[retry]\nmax_attempts = {MAX_RECEIVES}\n");
    let runtime = stack.runtime(&overlay, &counter);
    ingest(&runtime, &["apigw-gigstack-invoice-created.json"]).await;
    let key = EventKey::new("gigstack", "evt_gs_test_0001");
    let record = runtime.store.get(&key).await.expect("get").expect("record");
    assert_eq!(record.state, EventState::Queued);

    // Another processor leases the record at `then` for 1 s. This one
    // processes every receive as of `then` (the stores compare leases with
    // the time they are given): the lease stays live for it however many
    // receives pass, and each wait is 1 s of real time.
    let then = webhooks_core::time::unix_now();
    let event = webhooks_core::event::Event {
        provider: record.provider.clone(),
        id: record.event_id.clone(),
        event_type: record.event_type.clone(),
        received_at: record.received_at,
        payload: record.payload.clone().expect("payload kept"),
        request_id: None,
        original: None,
    };
    let leased = runtime.store.lease(&event, then, 1, 86_400).await.expect("lease");
    assert!(matches!(leased, webhooks_core::ports::store::LeaseOutcome::Leased(_)));
    let processor = runtime.app.processor.clone();
    let as_of_then: RunOne = Arc::new(move |message: ReceivedMessage| {
        let processor = processor.clone();
        Box::pin(async move { processor.run(&message, then).await })
    });
    let waiting = BatchHandler::with_runner(runtime.queue.clone(), as_of_then);

    let receives = 3 * MAX_RECEIVES + 1;
    let mut fresh = 0;
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut done = 0;
    while done < receives {
        assert!(Instant::now() < deadline, "only {done} receives in time");
        let got = stack.receive_raw(1, 30).await;
        let Some(message) = got.first() else { continue };
        done += 1;
        let count: u32 = message
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse().ok())
            .expect("receive count");
        assert!(
            count <= MAX_RECEIVES,
            "received {count} times: past the redrive policy's limit"
        );
        let response = waiting.handle(sqs_event(&got)).await;
        if count == MAX_RECEIVES {
            // Replaced by a fresh copy: nothing for SQS to deliver again.
            assert!(failures(&response).is_empty(), "{response:?}");
            fresh += 1;
        } else {
            assert_eq!(failures(&response).len(), 1, "{response:?}");
        }
        assert!(
            stack.dlq_messages().await.is_empty(),
            "dead-lettered after {done} receives"
        );
        let rec = runtime.store.get(&key).await.expect("get").expect("record");
        assert_eq!(
            (rec.state, rec.attempts),
            (EventState::Processing, 1),
            "the other processor's"
        );
    }
    assert!(fresh >= 3, "re-sent fresh at each limit: {fresh}");
    assert_eq!(counter.runs(&key.id), 0, "nothing ran under another's lease");

    // The other processor gives its attempt up (a retryable failure): the
    // record says QUEUED, and the one message left on the main queue runs it.
    let settlement = webhooks_core::ports::store::Settlement {
        state: EventState::Queued,
        error: Some("other processor: retryable".into()),
        results: serde_json::Map::new(),
        history: Vec::new(),
        next_attempt_at: None,
        now: then,
    };
    runtime.store.settle(&key, settlement).await.expect("settle");
    assert!(stack.dlq_messages().await.is_empty());
    let back = stack.receive_raw(1, 180).await;
    assert_eq!(back.len(), 1, "one message, never a copy too many");
    let response = BatchHandler::from_runtime(&runtime).handle(sqs_event(&back)).await;
    assert!(failures(&response).is_empty(), "{response:?}");
    let rec = runtime.store.get(&key).await.expect("get").expect("record");
    assert_eq!(rec.state, EventState::Done);
    assert_eq!(counter.runs(&key.id), 1);
    assert!(stack.dlq_messages().await.is_empty());
    assert!(
        stack.receive_raw(1, 0).await.is_empty(),
        "nothing left on the main queue"
    );
}
