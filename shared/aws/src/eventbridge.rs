//! The `eventbridge:BUS` handler: puts the event on an EventBridge bus, so
//! rules route it to whatever AWS offers (Step Functions, SQS, another
//! account) without code here. Registered only on AWS, by the cold start,
//! for every `eventbridge:` name the configuration uses.
//!
//! The entry: `Source` = `webhooks.<provider>`, `DetailType` = the event
//! type, `Detail` = the payload JSON as received. Outcomes are classified
//! like an HTTP handler's: throttling, 5xx and transport failures retry; an
//! entry refused by validation (a payload over the 256 KiB entry limit, a
//! detail that is not a JSON object) or a 4xx (no such bus, no permission)
//! fails for good.
//!
//! Only a build with feature `eventbridge` (the processor) links the client;
//! the ingest registers the same names with [`register_unlinked`], since it
//! builds the same app from the same config but never runs a handler.

#[cfg(feature = "eventbridge")]
use aws_sdk_eventbridge::config::http::HttpResponse;
#[cfg(feature = "eventbridge")]
use aws_sdk_eventbridge::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
#[cfg(feature = "eventbridge")]
use aws_sdk_eventbridge::operation::put_events::PutEventsError;
#[cfg(feature = "eventbridge")]
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
#[cfg(feature = "eventbridge")]
use serde_json::json;
use serde_json::Value;
use webhooks_core::event::Event;
use webhooks_core::handlers::{Handler, HandlerError, HandlerRegistry};

/// The handler-name prefix that names a bus.
pub const PREFIX: &str = "eventbridge:";

/// Puts events on one bus.
#[cfg(feature = "eventbridge")]
pub struct PutOnBus {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

#[cfg(feature = "eventbridge")]
impl PutOnBus {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: &str) -> Self {
        Self {
            client,
            bus: bus.to_string(),
        }
    }
}

/// Registers a [`PutOnBus`] under every `eventbridge:BUS` name in `names`
/// (the handler names the providers use). A name with an empty bus is left
/// unregistered, so start-up refuses it as an unknown handler.
#[cfg(feature = "eventbridge")]
pub fn register<'a>(
    registry: &mut HandlerRegistry,
    client: &aws_sdk_eventbridge::Client,
    names: impl IntoIterator<Item = &'a str>,
) {
    for (name, bus) in buses(names) {
        if !registry.contains(name) {
            registry.register(name, std::sync::Arc::new(PutOnBus::new(client.clone(), bus)));
        }
    }
}

/// Registers, in a build without the EventBridge client (the ingest), a
/// [`NotLinked`] handler under every `eventbridge:BUS` name, so the same
/// config builds the same app (an unknown name would fail the cold start)
/// although this function never runs a handler.
pub fn register_unlinked<'a>(registry: &mut HandlerRegistry, names: impl IntoIterator<Item = &'a str>) {
    for (name, bus) in buses(names) {
        if !registry.contains(name) {
            registry.register(name, std::sync::Arc::new(NotLinked { bus: bus.to_string() }));
        }
    }
}

/// The `eventbridge:BUS` names among `names`, with their bus; a name with an
/// empty bus is not one.
fn buses<'a>(names: impl IntoIterator<Item = &'a str>) -> impl Iterator<Item = (&'a str, &'a str)> {
    names.into_iter().filter_map(|name| {
        let bus = name.strip_prefix(PREFIX).filter(|b| !b.trim().is_empty())?;
        Some((name, bus))
    })
}

/// The stand-in for [`PutOnBus`] in a build without the client: fails for
/// good, naming the bus and why, should anything ever run it.
pub struct NotLinked {
    bus: String,
}

#[async_trait::async_trait]
impl Handler for NotLinked {
    async fn handle(&self, _event: &Event) -> Result<Value, HandlerError> {
        Err(HandlerError::Permanent(format!(
            "EventBridge bus {}: this function is built without the EventBridge client (feature `eventbridge`); the processor runs these handlers",
            self.bus
        )))
    }
}

/// Error codes of a failed entry (or a whole call) that a later attempt may
/// not meet.
fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "Throttling"
            | "ThrottledException"
            | "TooManyRequestsException"
            | "LimitExceededException"
            | "InternalException"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
    )
}

/// A failed entry (`FailedEntryCount` > 0): retryable when EventBridge was
/// throttling or failing inside, permanent otherwise (validation, size).
pub fn classify_entry(bus: &str, code: &str, message: &str) -> HandlerError {
    let text = format!("EventBridge bus {bus}: entry refused: {code}: {message}");
    if is_transient_code(code) {
        HandlerError::Retryable(text)
    } else {
        HandlerError::Permanent(text)
    }
}

/// A failed call: transport failures, timeouts, 5xx, 429 and throttling codes
/// retry; a request that could not be built and any other 4xx (no such bus,
/// access denied, validation) are permanent.
pub fn classify_call(
    bus: &str,
    code: Option<&str>,
    status: Option<u16>,
    transport: bool,
    detail: &str,
) -> HandlerError {
    let text = format!("EventBridge bus {bus}: {detail}");
    let retryable =
        transport || code.is_some_and(is_transient_code) || status.is_some_and(|s| s == 408 || s == 429 || s >= 500);
    if retryable {
        HandlerError::Retryable(text)
    } else {
        HandlerError::Permanent(text)
    }
}

#[cfg(feature = "eventbridge")]
fn classify_sdk(bus: &str, error: &SdkError<PutEventsError, HttpResponse>) -> HandlerError {
    let detail = DisplayErrorContext(error).to_string();
    match error {
        SdkError::ConstructionFailure(_) => HandlerError::Permanent(format!("EventBridge bus {bus}: {detail}")),
        SdkError::ServiceError(_) => {
            let status = error.raw_response().map(|r| r.status().as_u16());
            classify_call(bus, error.code(), status, false, &detail)
        }
        // Timeouts, dispatch failures, unreadable responses.
        _ => classify_call(bus, error.code(), None, true, &detail),
    }
}

#[cfg(feature = "eventbridge")]
#[async_trait::async_trait]
impl Handler for PutOnBus {
    async fn handle(&self, event: &Event) -> Result<Value, HandlerError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(format!("webhooks.{}", event.provider))
            .detail_type(&*event.event_type)
            .detail(event.payload.as_str())
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| classify_sdk(&self.bus, &e))?;
        let first = out.entries().first();
        if out.failed_entry_count() > 0 {
            let code = first.and_then(|e| e.error_code()).unwrap_or("unknown");
            let message = first.and_then(|e| e.error_message()).unwrap_or("");
            return Err(classify_entry(&self.bus, code, message));
        }
        Ok(json!({
            "bus": self.bus,
            "eventbridge_id": first.and_then(|e| e.event_id()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_internal_failures_retry_validation_does_not() {
        assert!(classify_entry("b", "ThrottlingException", "slow down").is_retryable());
        assert!(classify_entry("b", "InternalFailure", "").is_retryable());
        let e = classify_entry("b", "MalformedDetail", "Detail is malformed.");
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("MalformedDetail"), "{e}");
        assert!(!classify_entry("b", "ValidationException", "too big").is_retryable());
    }

    #[test]
    fn calls_are_classified_by_status_code_and_transport() {
        assert!(classify_call("b", None, Some(500), false, "x").is_retryable());
        assert!(classify_call("b", None, Some(429), false, "x").is_retryable());
        assert!(classify_call("b", Some("ThrottlingException"), Some(400), false, "x").is_retryable());
        assert!(classify_call("b", None, None, true, "connection refused").is_retryable());
        assert!(!classify_call("b", Some("ResourceNotFoundException"), Some(400), false, "x").is_retryable());
        assert!(!classify_call("b", Some("AccessDeniedException"), Some(403), false, "x").is_retryable());
    }

    #[cfg(feature = "eventbridge")]
    #[test]
    fn only_named_buses_are_registered() {
        let config = aws_sdk_eventbridge::Config::builder()
            .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
            .build();
        let client = aws_sdk_eventbridge::Client::from_conf(config);
        let mut registry = HandlerRegistry::new();
        register(
            &mut registry,
            &client,
            ["eventbridge:orders", "eventbridge:", "forward:erp", "x"],
        );
        assert!(registry.contains("eventbridge:orders"));
        assert!(!registry.contains("eventbridge:"));
        assert!(!registry.contains("forward:erp"));
    }

    /// Without the client the same names are registered (the config builds
    /// the same app), and running one fails for good, saying why.
    #[tokio::test]
    async fn without_the_client_the_same_names_are_registered_and_refuse_to_run() {
        let mut registry = HandlerRegistry::new();
        register_unlinked(
            &mut registry,
            ["eventbridge:orders", "eventbridge:", "forward:erp", "x"],
        );
        assert!(registry.contains("eventbridge:orders"));
        assert!(!registry.contains("eventbridge:"));
        assert!(!registry.contains("forward:erp"));
        let event = webhooks_testkit::fixtures::event("gigstack", "e1", "invoice.paid");
        let handler = registry.get("eventbridge:orders").expect("registered");
        let err = handler.handle(&event).await.expect_err("refuses");
        assert!(!err.is_retryable(), "{err}");
        assert!(
            err.to_string().contains("orders") && err.to_string().contains("feature `eventbridge`"),
            "{err}"
        );
    }
}
