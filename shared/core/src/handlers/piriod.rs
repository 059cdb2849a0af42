//! Piriod (Chile, billing and payments) handler.
//!
//! Piriod's webhook is unsigned and carries only `{event, object_id}`
//! (docs.piriod.com, "Webhooks": the notification has the event type and the
//! id of the object it fired for), so the handler reconciles by fetching the
//! object from the API, authenticated as Piriod documents it
//! (docs.piriod.com, "Authentication"): `Authorization: Token <api token>`
//! plus `x-simple-workspace: <workspace id>` on every request.
//!
//! The collection comes from the event name's prefix (`payment.succeeded` ->
//! `/payments/{id}/`). The prefixes map onto the resources Piriod's own SDK
//! (github.com/piriod/piriod-node-sdk, `validateResource`) knows; an event
//! whose prefix is not one of them is a permanent error rather than a guess.

use super::http_call::{endpoint, missing_setting, scalar_text, text_at, Call};
use super::{Handler, HandlerDeps, HandlerError};
use crate::event::Event;
use async_trait::async_trait;
use serde_json::{json, Map, Value};

const NAME: &str = "piriod.fetch_object";

/// Event prefix (singular, without `_`/`-`) -> API collection.
const COLLECTIONS: &[(&str, &str)] = &[
    ("payment", "payments"),
    ("invoice", "invoices"),
    ("customer", "customers"),
    ("subscription", "subscriptions"),
    ("creditnote", "creditnotes"),
    ("debitnote", "debitnotes"),
    ("plan", "plans"),
    ("product", "products"),
    ("coupon", "coupons"),
    ("addon", "addons"),
    ("order", "orders"),
    ("source", "sources"),
    ("contact", "contacts"),
    ("retention", "retentions"),
    ("usage", "usages"),
];

/// The API collection for an event name (`payment.succeeded` -> `payments`,
/// `credit_note.created` -> `creditnotes`), singular or plural prefix.
pub fn collection_for(event_name: &str) -> Option<&'static str> {
    let prefix: String = event_name
        .split('.')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    let lookup = |p: &str| COLLECTIONS.iter().find(|(k, _)| *k == p).map(|(_, c)| *c);
    lookup(&prefix).or_else(|| prefix.strip_suffix('s').and_then(lookup))
}

/// Fetches the object a Piriod event names and records a compact summary
/// (id, status, amounts, related ids), which is how an unsigned Piriod
/// notification is trusted: by what the API says, not by what was posted.
pub struct FetchObject {
    deps: HandlerDeps,
}

impl FetchObject {
    pub fn new(deps: &HandlerDeps) -> Self {
        Self { deps: deps.clone() }
    }
}

/// The fields of a Piriod object worth keeping on the record. Nested objects
/// (customer, invoice, ...) are reduced to their id.
fn summary(object: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for key in [
        "id",
        "status",
        "number",
        "amount",
        "amount_due",
        "total",
        "currency",
        "date",
        "due_date",
        "payment_date",
        "created",
        "updated",
    ] {
        match object.get(key) {
            Some(v @ (Value::Number(_) | Value::Bool(_))) => {
                out.insert(key.into(), v.clone());
            }
            Some(v) => {
                if let Some(text) = scalar_text(v).filter(|t| t.len() <= 128) {
                    out.insert(key.into(), json!(text));
                }
            }
            None => {}
        }
    }
    for key in ["customer", "invoice", "subscription", "document"] {
        if let Some(id) = object
            .get(key)
            .and_then(|v| scalar_text(v).or_else(|| v.get("id").and_then(scalar_text)))
        {
            out.insert(key.into(), json!(id));
        }
    }
    out
}

#[async_trait]
impl Handler for FetchObject {
    async fn handle(&self, event: &Event) -> Result<Value, HandlerError> {
        let payload = event.payload_value();
        let object_id = text_at(&payload, &["/object_id"])
            .ok_or_else(|| HandlerError::Permanent(format!("{NAME}: payload has no object_id")))?;
        let event_name = text_at(&payload, &["/event"]).unwrap_or_else(|| event.event_type.to_string());
        let collection = collection_for(&event_name).ok_or_else(|| {
            HandlerError::Permanent(format!(
                "{NAME}: event `{}` names no known Piriod collection",
                event_name.chars().take(64).collect::<String>()
            ))
        })?;
        let settings = &self.deps.settings;
        let token = settings
            .piriod_api_token
            .as_ref()
            .ok_or_else(|| missing_setting(settings, NAME, "piriod_api_token", "PIRIOD_API_TOKEN"))?;
        let workspace = settings
            .piriod_workspace
            .as_deref()
            .filter(|w| !w.trim().is_empty())
            .ok_or_else(|| missing_setting(settings, NAME, "piriod_workspace", "PIRIOD_WORKSPACE"))?;
        let url = endpoint(
            &settings.piriod_api_url,
            "handlers.piriod_api_url",
            &[collection, &object_id],
            true,
        )?;
        let request = self
            .deps
            .http
            .get(url)
            .header("authorization", format!("Token {}", token.expose_str()))
            .header("x-simple-workspace", workspace)
            .header("accept", "application/json");
        let reply = Call::new(format!("Piriod GET {collection}"))
            .masking(Some(token))
            .send(request)
            .await?;
        let object = reply.json("Piriod object")?;
        let mut result = Map::new();
        result.insert("collection".into(), json!(collection));
        result.insert("object_id".into(), json!(object_id));
        result.insert("http_status".into(), json!(reply.status));
        result.insert("object".into(), Value::Object(summary(&object)));
        Ok(Value::Object(result))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::super::test_support::{assert_classifies, assert_no_secret, deps, event, TestServer};
    use super::super::{Handler, ResolvedSettings};
    use super::*;
    use crate::secret::Secret;
    use std::sync::Arc;

    const TOKEN: &str = "piriod_token_abcdef123456";
    const WORKSPACE: &str = "acc_01H8XYZ123ABC";

    fn settings(base: &str) -> ResolvedSettings {
        ResolvedSettings {
            piriod_api_url: base.to_string(),
            piriod_api_token: Some(Secret::new(TOKEN.as_bytes().to_vec())),
            piriod_workspace: Some(WORKSPACE.into()),
            ..Default::default()
        }
    }

    fn webhook(name: &str, id: &str) -> Value {
        json!({"event": name, "object_id": id})
    }

    #[tokio::test]
    async fn payment_events_fetch_the_payment() {
        let server = TestServer::start().await;
        server.reply_json(
            200,
            json!({"id": "pay_1", "status": "succeeded", "amount": 11900, "currency": "CLP",
                   "customer": {"id": "cus_1", "name": "ACME", "email": "a@b.c"}, "invoice": "inv_9",
                   "description": "a long description that is not kept", "metadata": {"k": "v"}}),
        );
        let dir = tempfile::tempdir().unwrap();
        let h = FetchObject::new(&deps(settings(server.base()), dir.path()));
        let out = h
            .handle(&event(
                "piriod",
                "payment.succeeded",
                webhook("payment.succeeded", "pay_1"),
            ))
            .await;
        assert_no_secret(&out, &[TOKEN]);
        assert_eq!(
            out.unwrap(),
            json!({"collection": "payments", "object_id": "pay_1", "http_status": 200,
                   "object": {"id": "pay_1", "status": "succeeded", "amount": 11900, "currency": "CLP",
                              "customer": "cus_1", "invoice": "inv_9"}})
        );
        let req = server.single_request();
        assert_eq!((req.method.as_str(), req.path.as_str()), ("GET", "/payments/pay_1/"));
        assert_eq!(req.header("authorization"), Some(format!("Token {TOKEN}")));
        assert_eq!(req.header("x-simple-workspace").as_deref(), Some(WORKSPACE));
        assert_eq!(req.header("accept").as_deref(), Some("application/json"));
        assert!(req.body.is_empty());
    }

    #[tokio::test]
    async fn other_prefixes_pick_their_collection() {
        for (name, path) in [
            ("invoice.finalized", "/invoices/o1/"),
            ("customer.created", "/customers/o1/"),
            ("subscription.cancelled", "/subscriptions/o1/"),
            ("credit_note.created", "/creditnotes/o1/"),
        ] {
            let server = TestServer::start().await;
            server.reply_json(200, json!({"id": "o1"}));
            let dir = tempfile::tempdir().unwrap();
            let h = FetchObject::new(&deps(settings(server.base()), dir.path()));
            let out = h.handle(&event("piriod", name, webhook(name, "o1"))).await.unwrap();
            assert_eq!(out["object"]["id"], "o1");
            assert_eq!(server.single_request().path, path, "{name}");
        }
    }

    #[test]
    fn collections_by_prefix() {
        assert_eq!(collection_for("payment.succeeded"), Some("payments"));
        assert_eq!(collection_for("payments.failed"), Some("payments"));
        assert_eq!(collection_for("debit-note.created"), Some("debitnotes"));
        assert_eq!(collection_for("document.created"), None);
        assert_eq!(collection_for(""), None);
    }

    #[tokio::test]
    async fn unknown_prefix_and_missing_object_id_are_permanent() {
        let server = TestServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let h = FetchObject::new(&deps(settings(server.base()), dir.path()));
        let err = h
            .handle(&event("piriod", "widget.created", webhook("widget.created", "w1")))
            .await
            .expect_err("unknown");
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("widget.created"));
        let err = h
            .handle(&event(
                "piriod",
                "payment.succeeded",
                json!({"event": "payment.succeeded"}),
            ))
            .await
            .expect_err("no id");
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("object_id"));
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn object_ids_cannot_leave_the_collection_path() {
        let server = TestServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let h = FetchObject::new(&deps(settings(server.base()), dir.path()));
        h.handle(&event(
            "piriod",
            "payment.succeeded",
            webhook("payment.succeeded", "../customers/x"),
        ))
        .await
        .unwrap();
        assert_eq!(server.single_request().path, "/payments/..%2Fcustomers%2Fx/");
    }

    #[tokio::test]
    async fn unset_credentials_name_the_setting() {
        let server = TestServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let ev = event("piriod", "payment.succeeded", webhook("payment.succeeded", "pay_1"));

        let mut s = settings(server.base());
        s.piriod_api_token = None;
        let text = FetchObject::new(&deps(s, dir.path()))
            .handle(&ev)
            .await
            .expect_err("token")
            .to_string();
        assert!(
            text.contains("handlers.piriod_api_token") && text.contains("PIRIOD_API_TOKEN"),
            "{text}"
        );

        let mut s = settings(server.base());
        s.piriod_workspace = None;
        let err = FetchObject::new(&deps(s, dir.path()))
            .handle(&ev)
            .await
            .expect_err("workspace");
        assert!(!err.is_retryable());
        let text = err.to_string();
        assert!(
            text.contains("handlers.piriod_workspace") && text.contains("PIRIOD_WORKSPACE"),
            "{text}"
        );
        assert!(!text.contains(TOKEN));
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn fetch_object_classifies_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        assert_classifies(
            |base| {
                let h: Arc<dyn Handler> = Arc::new(FetchObject::new(&deps(settings(base), &path)));
                (
                    h,
                    event("piriod", "payment.succeeded", webhook("payment.succeeded", "pay_1")),
                )
            },
            &[TOKEN],
        )
        .await;
    }
}
