//! gigstack (Mexico, CFDI invoicing) handlers.
//!
//! Payload shape: gigstack's published webhook example (blog.gigstack.pro,
//! "gigstack Webhooks: Automatiza tu Flujo de Facturación con Eventos") is
//! `{"id": "evt_...", "event"|"type": "invoice.created", "data": {"id":
//! "inv_...", "uuid": "<fiscal UUID>", "total": ..., "currency": "MXN",
//! "client": {"id", "legal_name", "rfc"}, "pdf_url": ..., "xml_url": ...}}`.
//! gigstack's own tutorial reads MongoDB-style ids (`data._id` for the
//! invoice, the payment and the client, `data.client.email`,
//! `data.invoice`), so every id is read as `_id` first and `id` second.
//! Every field is read from `data` when the payload has one and from the top
//! level otherwise, so a flattened payload works too.

use super::http_call::{endpoint, missing_setting, scalar_text, text_at, Call};
use super::notify::{escape, Notifier};
use super::{Handler, HandlerDeps, HandlerError};
use crate::event::Event;
use async_trait::async_trait;
use serde_json::{json, Map, Value};

/// Largest invoice PDF we accept (a CFDI PDF is tens of KB).
const MAX_PDF_BYTES: usize = 20 * 1024 * 1024;

/// Where an object's id is: gigstack's `_id` first, `id` second.
const ID: &[&str] = &["/_id", "/id"];

/// The object the event is about: `data` when present, else the payload.
fn subject(payload: &Value) -> &Value {
    match payload.get("data") {
        Some(data) if data.is_object() => data,
        _ => payload,
    }
}

/// A value usable as one path segment of an artifact name: letters, digits,
/// `-` and `_`, at most 64 characters (a fiscal UUID is 36).
fn path_safe(value: &str) -> bool {
    !value.is_empty() && value.len() <= 64 && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `invoice.created`: tells the team on the notify webhook.
pub struct NotifyInvoiceCreated {
    notifier: Notifier,
}

impl NotifyInvoiceCreated {
    pub fn new(deps: &HandlerDeps) -> Self {
        Self {
            notifier: Notifier::new(deps),
        }
    }
}

/// "gigstack: invoice inv_1 created for ACME SA, total 11600 MXN", leaving out
/// what the payload does not have.
fn invoice_created_text(invoice: &Value) -> String {
    let mut text = String::from("gigstack: invoice");
    if let Some(id) = text_at(invoice, ID) {
        text.push_str(&format!(" {}", escape(&id)));
    }
    text.push_str(" created");
    let client = text_at(
        invoice,
        &[
            "/client/legal_name",
            "/client/name",
            "/client/company",
            "/client_name",
            "/client",
        ],
    );
    // The tutorial's handlers reach the client by `data.client.email`.
    let email = text_at(invoice, &["/client/email"]);
    match (client, email) {
        (Some(name), Some(email)) => text.push_str(&format!(" for {} <{}>", escape(&name), escape(&email))),
        (Some(who), None) | (None, Some(who)) => text.push_str(&format!(" for {}", escape(&who))),
        (None, None) => {}
    }
    if let Some(total) = text_at(invoice, &["/total"]) {
        text.push_str(&format!(", total {}", escape(&total)));
        if let Some(currency) = text_at(invoice, &["/currency"]) {
            text.push_str(&format!(" {}", escape(&currency)));
        }
    }
    text
}

#[async_trait]
impl Handler for NotifyInvoiceCreated {
    async fn handle(&self, event: &Event) -> Result<Value, HandlerError> {
        let payload = event.payload_value();
        let invoice = subject(&payload);
        let text = invoice_created_text(invoice);
        let mut result = Map::new();
        if let Some(id) = text_at(invoice, ID) {
            result.insert("invoice".into(), json!(id));
        }
        match self.notifier.send(event, &text).await? {
            Some(status) => {
                result.insert("notified".into(), json!(true));
                result.insert("status".into(), json!(status));
            }
            None => {
                result.insert("notified".into(), json!(false));
            }
        }
        Ok(Value::Object(result))
    }
}

/// `invoice.stamped`: downloads the stamped invoice's PDF (`data.pdf_url` or
/// `pdf_url`) and keeps it as `invoices/{uuid}.pdf` in the artifact store, so
/// the document survives the provider's retention and the account's plan.
pub struct StoreInvoicePdf {
    deps: HandlerDeps,
}

impl StoreInvoicePdf {
    pub fn new(deps: &HandlerDeps) -> Self {
        Self { deps: deps.clone() }
    }

    /// The gigstack API key, but only for a URL on the configured gigstack
    /// API origin: a `pdf_url` pointing elsewhere (a CDN, a signed storage
    /// link) never receives the key.
    fn bearer_for(&self, url: &reqwest::Url) -> Option<String> {
        let key = self.deps.settings.gigstack_api_key.as_ref()?;
        let api = reqwest::Url::parse(&self.deps.settings.gigstack_api_url).ok()?;
        (api.origin() == url.origin()).then(|| key.expose_str())
    }
}

#[async_trait]
impl Handler for StoreInvoicePdf {
    async fn handle(&self, event: &Event) -> Result<Value, HandlerError> {
        let payload = event.payload_value();
        let pdf_url = text_at(&payload, &["/data/pdf_url", "/pdf_url"]).ok_or_else(|| {
            HandlerError::Permanent("gigstack.store_invoice_pdf: payload has no data.pdf_url (or pdf_url)".into())
        })?;
        let uuid = text_at(&payload, &["/data/uuid", "/uuid"]).ok_or_else(|| {
            HandlerError::Permanent("gigstack.store_invoice_pdf: payload has no fiscal data.uuid (or uuid)".into())
        })?;
        if !path_safe(&uuid) {
            return Err(HandlerError::Permanent(
                "gigstack.store_invoice_pdf: uuid is not a plain identifier (letters, digits, - and _ only)".into(),
            ));
        }
        let url = reqwest::Url::parse(&pdf_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                HandlerError::Permanent("gigstack.store_invoice_pdf: pdf_url is not an http(s) URL".into())
            })?;
        let mut request = self.deps.http.get(url.clone()).header("accept", "application/pdf");
        if let Some(key) = self.bearer_for(&url) {
            request = request.bearer_auth(key);
        }
        let reply = Call::new("gigstack invoice PDF download")
            .masking(self.deps.settings.gigstack_api_key.as_ref())
            .max_body(MAX_PDF_BYTES)
            .send(request)
            .await?;
        if !reply.body.starts_with(b"%PDF-") {
            return Err(HandlerError::Permanent(format!(
                "gigstack.store_invoice_pdf: download is not a PDF (HTTP {}, content-type {}, {} bytes)",
                reply.status,
                reply.content_type.as_deref().unwrap_or("none"),
                reply.body.len()
            )));
        }
        let path = format!("invoices/{uuid}.pdf");
        let location = self
            .deps
            .artifacts
            .put(&path, &reply.body, "application/pdf")
            .await
            .map_err(|e| match e {
                crate::ports::artifacts::ArtifactError::BadPath(_) => {
                    HandlerError::Permanent(format!("gigstack.store_invoice_pdf: {e}"))
                }
                crate::ports::artifacts::ArtifactError::Unavailable(_) => {
                    HandlerError::Retryable(format!("gigstack.store_invoice_pdf: {e}"))
                }
            })?;
        Ok(json!({ "uuid": uuid, "location": location, "bytes": reply.body.len() }))
    }
}

/// `payment.received`: asks gigstack to issue the payment complement (CFDI
/// "complemento de pago") for each invoice the payment settles.
pub struct PaymentComplement {
    deps: HandlerDeps,
}

impl PaymentComplement {
    pub fn new(deps: &HandlerDeps) -> Self {
        Self { deps: deps.clone() }
    }
}

/// The invoice ids a payment refers to: `invoice` (an id or an object with
/// one), `invoice_id`, or `invoices` (gigstack's register-payment answer
/// lists them as an array), deduplicated in order.
fn payment_invoices(payment: &Value) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let mut add = |v: &Value| {
        let id = scalar_text(v).or_else(|| text_at(v, ID));
        if let Some(id) = id {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    };
    if let Some(v) = payment.get("invoice") {
        add(v);
    }
    if let Some(v) = payment.get("invoice_id") {
        add(v);
    }
    if let Some(Value::Array(list)) = payment.get("invoices") {
        list.iter().for_each(&mut add);
    }
    ids
}

#[async_trait]
impl Handler for PaymentComplement {
    async fn handle(&self, event: &Event) -> Result<Value, HandlerError> {
        const NAME: &str = "gigstack.payment_complement";
        let payload = event.payload_value();
        let payment = subject(&payload);
        let invoices = payment_invoices(payment);
        if invoices.is_empty() {
            return Ok(json!({ "skipped": "no invoice" }));
        }
        let payment_id = text_at(payment, ID)
            .ok_or_else(|| HandlerError::Permanent(format!("{NAME}: payment has no id (data._id or data.id)")))?;
        let settings = &self.deps.settings;
        let key = settings
            .gigstack_api_key
            .as_ref()
            .ok_or_else(|| missing_setting(settings, NAME, "gigstack_api_key", "GIGSTACK_API_KEY"))?;
        let call = Call::new("gigstack payment complement").masking(Some(key));
        let mut done = Vec::with_capacity(invoices.len());
        for invoice in &invoices {
            let url = endpoint(
                &settings.gigstack_api_url,
                "handlers.gigstack_api_url",
                &["invoices", invoice, "payment-complement"],
                false,
            )?;
            let request = self
                .deps
                .http
                .post(url)
                .bearer_auth(key.expose_str())
                // A retry after a partial failure re-posts earlier invoices;
                // where the API honours idempotency keys it answers the
                // first result instead of issuing a second complement.
                .header("Idempotency-Key", format!("{}:{}:{invoice}", event.provider, event.id))
                .json(&json!({ "payment_id": payment_id }));
            let reply = call.send(request).await?;
            let answer: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            let mut entry = json!({ "invoice": invoice, "status": reply.status });
            if let Some(id) = text_at(&answer, &["/data/_id", "/data/id", "/_id", "/id"]) {
                entry["id"] = json!(id);
            }
            done.push(entry);
        }
        Ok(json!({ "payment_id": payment_id, "complements": done }))
    }
}

/// `client.validated`: when gigstack reports the client's fiscal data as
/// invalid (`is_valid: false`), alerts on the notify webhook so someone fixes
/// it before the next invoice fails to stamp.
pub struct AlertInvalidClient {
    notifier: Notifier,
}

impl AlertInvalidClient {
    pub fn new(deps: &HandlerDeps) -> Self {
        Self {
            notifier: Notifier::new(deps),
        }
    }
}

/// `is_valid` as a boolean (also `"true"`/`"false"` strings), from `data` or the top level.
fn is_valid(payload: &Value) -> Option<bool> {
    ["/data/is_valid", "/is_valid"]
        .iter()
        .find_map(|p| match payload.pointer(p)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        })
}

#[async_trait]
impl Handler for AlertInvalidClient {
    async fn handle(&self, event: &Event) -> Result<Value, HandlerError> {
        let payload = event.payload_value();
        let valid = is_valid(&payload).ok_or_else(|| {
            HandlerError::Permanent("gigstack.alert_invalid_client: payload has no boolean is_valid".into())
        })?;
        if valid {
            return Ok(json!({ "alerted": false }));
        }
        let client = subject(&payload);
        let mut text = String::from("gigstack: client");
        let id = text_at(client, &["/_id", "/id", "/client/_id", "/client/id"]);
        if let Some(name) = text_at(client, &["/legal_name", "/name", "/client/legal_name", "/client/name"]) {
            text.push_str(&format!(" {}", escape(&name)));
        }
        if let Some(tax_id) = text_at(client, &["/rfc", "/tax_id", "/client/rfc", "/client/tax_id"]) {
            text.push_str(&format!(" (RFC {})", escape(&tax_id)));
        }
        if let Some(id) = &id {
            text.push_str(&format!(" [{}]", escape(id)));
        }
        text.push_str(" failed fiscal validation; invoices to it will not stamp until it is fixed");
        let mut result = json!({ "alerted": true });
        if let Some(id) = id {
            result["client"] = json!(id);
        }
        match self.notifier.send(event, &text).await? {
            Some(status) => {
                result["notified"] = json!(true);
                result["status"] = json!(status);
            }
            None => result["notified"] = json!(false),
        }
        Ok(result)
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

    const KEY: &str = "sk_test_gigstack_0123456789";
    const PDF: &[u8] = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n";

    fn settings(base: &str) -> ResolvedSettings {
        ResolvedSettings {
            notify_url: Some(format!("{base}/services/T0/B0/notifytoken")),
            gigstack_api_url: format!("{base}/v2"),
            gigstack_api_key: Some(Secret::new(KEY.as_bytes().to_vec())),
            ..Default::default()
        }
    }

    fn invoice_created() -> Value {
        json!({"id": "evt_1", "type": "invoice.created", "data": {
            "id": "inv_123", "uuid": "A1B2C3D4-E5F6-7890-ABCD-EF1234567890", "total": 11600, "currency": "MXN",
            "client": {"id": "cli_456", "legal_name": "Empresa <Cliente> SA", "rfc": "ECL920318XXX"}}})
    }

    fn stamped(pdf_url: &str) -> Value {
        json!({"id": "evt_2", "type": "invoice.stamped",
               "data": {"id": "inv_123", "uuid": "A1B2C3D4-E5F6-7890-ABCD-EF1234567890", "pdf_url": pdf_url}})
    }

    fn payment(invoice: Value) -> Value {
        json!({"id": "evt_3", "type": "payment.received", "data": {"id": "pay_789", "total": 1160, "invoice": invoice}})
    }

    // ---- notify_invoice_created ----

    #[tokio::test]
    async fn invoice_created_posts_a_slack_message() {
        let server = TestServer::start().await;
        server.reply(200, "text/plain", "ok");
        let dir = tempfile::tempdir().unwrap();
        let h = NotifyInvoiceCreated::new(&deps(settings(server.base()), dir.path()));
        let out = h.handle(&event("gigstack", "invoice.created", invoice_created())).await;
        assert_no_secret(&out, &[KEY, "notifytoken"]);
        assert_eq!(
            out.unwrap(),
            json!({"invoice": "inv_123", "notified": true, "status": 200})
        );
        let req = server.single_request();
        assert_eq!(
            (req.method.as_str(), req.path.as_str()),
            ("POST", "/services/T0/B0/notifytoken")
        );
        assert_eq!(req.header("content-type").as_deref(), Some("application/json"));
        assert_eq!(
            req.header("authorization"),
            None,
            "the API key never goes to the notify webhook"
        );
        let text = req.json()["text"].as_str().unwrap().to_string();
        assert!(text.contains("inv_123"), "{text}");
        assert!(text.contains("Empresa &lt;Cliente&gt; SA"), "{text}");
        assert!(text.contains("11600 MXN"), "{text}");
    }

    #[tokio::test]
    async fn invoice_created_leaves_out_missing_parts() {
        assert_eq!(
            invoice_created_text(&json!({"id": "inv_9"})),
            "gigstack: invoice inv_9 created"
        );
        assert_eq!(
            invoice_created_text(&json!({"client": "ACME", "total": "10.5"})),
            "gigstack: invoice created for ACME, total 10.5"
        );
    }

    #[tokio::test]
    async fn invoice_created_without_notify_url_logs_only() {
        let dir = tempfile::tempdir().unwrap();
        let h = NotifyInvoiceCreated::new(&deps(ResolvedSettings::default(), dir.path()));
        let out = h
            .handle(&event("gigstack", "invoice.created", invoice_created()))
            .await
            .unwrap();
        assert_eq!(out["notified"], false);
    }

    #[tokio::test]
    async fn invoice_created_classifies_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        assert_classifies(
            |base| {
                let h: Arc<dyn Handler> = Arc::new(NotifyInvoiceCreated::new(&deps(settings(base), &path)));
                (h, event("gigstack", "invoice.created", invoice_created()))
            },
            &[KEY, "notifytoken"],
        )
        .await;
    }

    // ---- store_invoice_pdf ----

    #[tokio::test]
    async fn stamped_invoice_pdf_is_stored_under_its_uuid() {
        let server = TestServer::start().await;
        server.reply(200, "application/pdf", PDF);
        let dir = tempfile::tempdir().unwrap();
        let h = StoreInvoicePdf::new(&deps(settings(server.base()), dir.path()));
        let pdf_url = server.url("/v2/invoices/inv_123/pdf");
        let out = h.handle(&event("gigstack", "invoice.stamped", stamped(&pdf_url))).await;
        assert_no_secret(&out, &[KEY]);
        let out = out.unwrap();
        let expected = dir.path().join("invoices/A1B2C3D4-E5F6-7890-ABCD-EF1234567890.pdf");
        assert_eq!(out["location"], expected.display().to_string());
        assert_eq!(out["bytes"], PDF.len());
        assert_eq!(std::fs::read(&expected).unwrap(), PDF);
        let req = server.single_request();
        assert_eq!(
            (req.method.as_str(), req.path.as_str()),
            ("GET", "/v2/invoices/inv_123/pdf")
        );
        assert_eq!(
            req.header("authorization"),
            Some(format!("Bearer {KEY}")),
            "same origin as the API"
        );
    }

    #[tokio::test]
    async fn pdf_url_at_top_level_is_accepted_and_other_origins_get_no_key() {
        let api = TestServer::start().await;
        let cdn = TestServer::start().await;
        cdn.reply(200, "application/pdf", PDF);
        let dir = tempfile::tempdir().unwrap();
        let h = StoreInvoicePdf::new(&deps(settings(api.base()), dir.path()));
        let payload = json!({"uuid": "u-1", "pdf_url": cdn.url("/files/u-1.pdf")});
        let out = h.handle(&event("gigstack", "invoice.stamped", payload)).await.unwrap();
        assert_eq!(out["bytes"], PDF.len());
        assert_eq!(std::fs::read(dir.path().join("invoices/u-1.pdf")).unwrap(), PDF);
        assert_eq!(cdn.single_request().header("authorization"), None);
        assert!(api.requests().is_empty());
    }

    #[tokio::test]
    async fn stamped_payload_problems_are_permanent() {
        let server = TestServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let h = StoreInvoicePdf::new(&deps(settings(server.base()), dir.path()));
        let url = server.url("/x.pdf");
        let cases = [
            (json!({"data": {"uuid": "u1"}}), "pdf_url"),
            (json!({"data": {"pdf_url": url}}), "uuid"),
            (json!({"data": {"uuid": "../../etc/passwd", "pdf_url": url}}), "uuid"),
            (json!({"data": {"uuid": "a/b", "pdf_url": url}}), "uuid"),
            (
                json!({"data": {"uuid": "u1", "pdf_url": "file:///etc/passwd"}}),
                "pdf_url",
            ),
        ];
        for (payload, mentions) in cases {
            let err = h
                .handle(&event("gigstack", "invoice.stamped", payload.clone()))
                .await
                .expect_err("bad payload");
            assert!(!err.is_retryable(), "{payload}: {err}");
            assert!(err.to_string().contains(mentions), "{payload}: {err}");
        }
        assert!(server.requests().is_empty(), "nothing is downloaded for a bad payload");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing is written");
    }

    #[tokio::test]
    async fn a_download_that_is_not_a_pdf_is_permanent() {
        let server = TestServer::start().await;
        server.reply(200, "text/html", "<html>login</html>");
        let dir = tempfile::tempdir().unwrap();
        let h = StoreInvoicePdf::new(&deps(settings(server.base()), dir.path()));
        let err = h
            .handle(&event("gigstack", "invoice.stamped", stamped(&server.url("/p.pdf"))))
            .await
            .expect_err("html");
        assert!(!err.is_retryable(), "{err}");
        assert!(err.to_string().contains("not a PDF"), "{err}");
    }

    #[tokio::test]
    async fn pdf_download_classifies_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        assert_classifies(
            |base| {
                let h: Arc<dyn Handler> = Arc::new(StoreInvoicePdf::new(&deps(settings(base), &path)));
                (
                    h,
                    event(
                        "gigstack",
                        "invoice.stamped",
                        stamped(&format!("{base}/v2/invoices/inv_123/pdf")),
                    ),
                )
            },
            &[KEY],
        )
        .await;
    }

    // ---- payment_complement ----

    #[tokio::test]
    async fn payment_with_invoice_requests_a_complement() {
        let server = TestServer::start().await;
        server.reply_json(201, json!({"data": {"id": "cmp_1", "uuid": "X", "xml": "<big/>"}}));
        let dir = tempfile::tempdir().unwrap();
        let h = PaymentComplement::new(&deps(settings(server.base()), dir.path()));
        let out = h
            .handle(&event("gigstack", "payment.received", payment(json!("inv_123"))))
            .await;
        assert_no_secret(&out, &[KEY]);
        assert_eq!(
            out.unwrap(),
            json!({"payment_id": "pay_789", "complements": [{"invoice": "inv_123", "status": 201, "id": "cmp_1"}]})
        );
        let req = server.single_request();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/v2/invoices/inv_123/payment-complement");
        assert_eq!(req.header("authorization"), Some(format!("Bearer {KEY}")));
        assert_eq!(req.header("content-type").as_deref(), Some("application/json"));
        assert_eq!(
            req.header("idempotency-key").as_deref(),
            Some("gigstack:evt_test_1:inv_123")
        );
        assert_eq!(req.json(), json!({"payment_id": "pay_789"}));
    }

    /// gigstack's tutorial: MongoDB-style `_id` on the payment, the invoice
    /// it settles and the client.
    #[tokio::test]
    async fn tutorial_payment_with_underscore_ids_requests_a_complement() {
        let server = TestServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let h = PaymentComplement::new(&deps(settings(server.base()), dir.path()));
        let payload = json!({"type": "payment.received", "data": {"_id": "pay_mongo_1", "amount": 100, "invoice": {"_id": "inv_mongo_1"}}});
        let out = h.handle(&event("gigstack", "payment.received", payload)).await.unwrap();
        assert_eq!(out["payment_id"], "pay_mongo_1");
        let req = server.single_request();
        assert_eq!(req.path, "/v2/invoices/inv_mongo_1/payment-complement");
        assert_eq!(req.json(), json!({"payment_id": "pay_mongo_1"}));
    }

    #[tokio::test]
    async fn tutorial_invoice_with_underscore_id_is_named_with_its_client_email() {
        let server = TestServer::start().await;
        server.reply(200, "text/plain", "ok");
        let dir = tempfile::tempdir().unwrap();
        let h = NotifyInvoiceCreated::new(&deps(settings(server.base()), dir.path()));
        let payload = json!({"type": "invoice.created", "data": {"_id": "inv_mongo_2", "total": 1160, "currency": "MXN", "client": {"legal_name": "ACME SA", "email": "pagos@acme.mx"}}});
        let out = h.handle(&event("gigstack", "invoice.created", payload)).await.unwrap();
        assert_eq!(out["invoice"], "inv_mongo_2");
        let text = server.single_request().json()["text"].as_str().unwrap().to_string();
        assert_eq!(
            text,
            "gigstack: invoice inv_mongo_2 created for ACME SA <pagos@acme.mx>, total 1160 MXN"
        );
    }

    #[test]
    fn underscore_ids_win_over_plain_ones() {
        assert_eq!(
            payment_invoices(&json!({"invoice": {"_id": "a", "id": "b"}})),
            vec!["a"]
        );
        assert_eq!(text_at(&json!({"_id": "m", "id": "p"}), ID).as_deref(), Some("m"));
        assert_eq!(text_at(&json!({"id": "p"}), ID).as_deref(), Some("p"));
    }

    #[tokio::test]
    async fn payment_invoice_shapes() {
        assert_eq!(payment_invoices(&json!({"invoice": {"id": "i1"}})), vec!["i1"]);
        assert_eq!(payment_invoices(&json!({"invoice_id": 42})), vec!["42"]);
        assert_eq!(
            payment_invoices(&json!({"invoice": "i1", "invoices": ["i1", "i2"]})),
            vec!["i1", "i2"]
        );
        assert!(payment_invoices(&json!({"invoice": null, "invoices": []})).is_empty());
    }

    #[tokio::test]
    async fn payment_for_several_invoices_posts_each_with_an_encoded_id() {
        let server = TestServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let h = PaymentComplement::new(&deps(settings(server.base()), dir.path()));
        let payload = json!({"data": {"id": "pay_1", "invoices": ["inv_a", "../admin"]}});
        let out = h.handle(&event("gigstack", "payment.received", payload)).await.unwrap();
        assert_eq!(out["complements"].as_array().unwrap().len(), 2);
        let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(
            paths,
            vec![
                "/v2/invoices/inv_a/payment-complement",
                "/v2/invoices/..%2Fadmin/payment-complement"
            ]
        );
    }

    #[tokio::test]
    async fn payment_without_invoice_is_skipped() {
        let server = TestServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let h = PaymentComplement::new(&deps(settings(server.base()), dir.path()));
        let out = h
            .handle(&event("gigstack", "payment.received", payment(Value::Null)))
            .await
            .unwrap();
        assert_eq!(out, json!({"skipped": "no invoice"}));
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn payment_without_api_key_names_the_setting() {
        let server = TestServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(server.base());
        s.gigstack_api_key = None;
        let h = PaymentComplement::new(&deps(s, dir.path()));
        let err = h
            .handle(&event("gigstack", "payment.received", payment(json!("inv_1"))))
            .await
            .expect_err("no key");
        assert!(!err.is_retryable());
        let text = err.to_string();
        assert!(
            text.contains("handlers.gigstack_api_key") && text.contains("GIGSTACK_API_KEY"),
            "{text}"
        );
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn payment_without_id_is_permanent() {
        let server = TestServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let h = PaymentComplement::new(&deps(settings(server.base()), dir.path()));
        let err = h
            .handle(&event(
                "gigstack",
                "payment.received",
                json!({"data": {"invoice": "inv_1"}}),
            ))
            .await
            .expect_err("no payment id");
        assert!(!err.is_retryable(), "{err}");
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn payment_complement_masks_an_echoed_key() {
        let server = TestServer::start().await;
        server.reply_json(401, json!({"error": format!("invalid key {KEY}")}));
        let dir = tempfile::tempdir().unwrap();
        let h = PaymentComplement::new(&deps(settings(server.base()), dir.path()));
        let out = h
            .handle(&event("gigstack", "payment.received", payment(json!("inv_1"))))
            .await;
        assert_no_secret(&out, &[KEY]);
        assert!(!out.expect_err("401").is_retryable());
    }

    #[tokio::test]
    async fn payment_complement_classifies_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        assert_classifies(
            |base| {
                let h: Arc<dyn Handler> = Arc::new(PaymentComplement::new(&deps(settings(base), &path)));
                (h, event("gigstack", "payment.received", payment(json!("inv_123"))))
            },
            &[KEY],
        )
        .await;
    }

    // ---- alert_invalid_client ----

    #[tokio::test]
    async fn tutorial_invalid_client_with_underscore_id_is_named() {
        let server = TestServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let h = AlertInvalidClient::new(&deps(settings(server.base()), dir.path()));
        let payload = json!({"type": "client.validated", "data": {"_id": "cli_mongo_1", "legal_name": "ACME", "is_valid": false}});
        let out = h.handle(&event("gigstack", "client.validated", payload)).await.unwrap();
        assert_eq!(out["client"], "cli_mongo_1");
        assert!(server.single_request().json()["text"]
            .as_str()
            .unwrap()
            .contains("[cli_mongo_1]"));
    }

    #[tokio::test]
    async fn invalid_client_is_alerted() {
        let server = TestServer::start().await;
        server.reply(200, "text/plain", "ok");
        let dir = tempfile::tempdir().unwrap();
        let h = AlertInvalidClient::new(&deps(settings(server.base()), dir.path()));
        let payload = json!({"type": "client.validated",
                             "data": {"id": "cli_1", "legal_name": "ACME", "rfc": "AAA010101AAA", "is_valid": false}});
        let out = h.handle(&event("gigstack", "client.validated", payload)).await;
        assert_no_secret(&out, &[KEY, "notifytoken"]);
        assert_eq!(
            out.unwrap(),
            json!({"alerted": true, "client": "cli_1", "notified": true, "status": 200})
        );
        let req = server.single_request();
        assert_eq!(
            (req.method.as_str(), req.path.as_str()),
            ("POST", "/services/T0/B0/notifytoken")
        );
        assert_eq!(req.header("content-type").as_deref(), Some("application/json"));
        let text = req.json()["text"].as_str().unwrap().to_string();
        assert!(
            text.contains("ACME") && text.contains("AAA010101AAA") && text.contains("cli_1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn valid_client_sends_nothing() {
        let server = TestServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let h = AlertInvalidClient::new(&deps(settings(server.base()), dir.path()));
        for payload in [json!({"data": {"is_valid": true}}), json!({"is_valid": "true"})] {
            let out = h.handle(&event("gigstack", "client.validated", payload)).await.unwrap();
            assert_eq!(out, json!({"alerted": false}));
        }
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn client_validation_without_is_valid_is_permanent() {
        let dir = tempfile::tempdir().unwrap();
        let h = AlertInvalidClient::new(&deps(ResolvedSettings::default(), dir.path()));
        let err = h
            .handle(&event("gigstack", "client.validated", json!({"data": {"id": "cli_1"}})))
            .await
            .expect_err("missing is_valid");
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("is_valid"));
    }

    #[tokio::test]
    async fn invalid_client_without_notify_url_logs_only() {
        let dir = tempfile::tempdir().unwrap();
        let h = AlertInvalidClient::new(&deps(ResolvedSettings::default(), dir.path()));
        let out = h
            .handle(&event("gigstack", "client.validated", json!({"is_valid": false})))
            .await
            .unwrap();
        assert_eq!(out, json!({"alerted": true, "notified": false}));
    }

    #[tokio::test]
    async fn alert_invalid_client_classifies_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        assert_classifies(
            |base| {
                let h: Arc<dyn Handler> = Arc::new(AlertInvalidClient::new(&deps(settings(base), &path)));
                (
                    h,
                    event(
                        "gigstack",
                        "client.validated",
                        json!({"data": {"id": "c", "is_valid": false}}),
                    ),
                )
            },
            &[KEY, "notifytoken"],
        )
        .await;
    }
}
