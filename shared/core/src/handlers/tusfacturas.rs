//! TusFacturas (Argentina, AFIP/ARCA invoicing) handler.
//!
//! TusFacturas' webhook only says that a document changed; its own guide
//! (developers.tusfacturas.app, "Webhook": "Ejecutar la consulta avanzada por
//! ext. reference para traer la info del comprobante") is to look the document
//! up by the `external_reference` it carries. That lookup is
//! `POST {tusfacturas_api_url}/facturacion/consulta_avanzada` with the
//! credentials in the JSON body ("Consulta por external reference" /
//! "Consulta avanzada de comprobantes enviados"):
//!
//! ```json
//! {"usertoken": "...", "apikey": "...", "apitoken": "...", "busqueda_tipo": "EXT_REF",
//!  "pagina": 0, "limite": 20, "comprobante": {"external_reference": "...", "operacion": "V"}}
//! ```
//!
//! It answers `{"error": "N"|"S", "errores": [...], "rta", "total",
//! "comprobantes": [{"cliente": {...}, "comprobante": {"numero", "cae",
//! "status", ...}}]}`, newest first. Application errors come back as HTTP 200
//! with `"error": "S"`: those are permanent, with TusFacturas' own message.

use super::http_call::{endpoint, missing_setting, scalar_text, text_at, Call};
use super::{Handler, HandlerDeps, HandlerError};
use crate::event::Event;
use crate::secret::Secret;
use async_trait::async_trait;
use serde_json::{json, Map, Value};

const NAME: &str = "tusfacturas.lookup";

/// Documents per lookup: one external reference normally has one document,
/// plus the failed or queued attempts that preceded it.
const PAGE_LIMIT: u32 = 20;

/// Looks the document named by the webhook's `external_reference` up in the
/// TusFacturas API and records a compact summary (error flag, count, and the
/// newest document's number, CAE and status).
pub struct Lookup {
    deps: HandlerDeps,
}

impl Lookup {
    pub fn new(deps: &HandlerDeps) -> Self {
        Self { deps: deps.clone() }
    }

    /// The three credentials, or a permanent error naming every missing one.
    fn credentials(&self) -> Result<[&Secret; 3], HandlerError> {
        let s = &self.deps.settings;
        match (&s.tusfacturas_apikey, &s.tusfacturas_apitoken, &s.tusfacturas_usertoken) {
            (Some(k), Some(a), Some(u)) => Ok([k, a, u]),
            (k, a, u) => {
                let missing: Vec<(&str, &str)> = [
                    (k.is_none(), ("tusfacturas_apikey", "TUSFACTURAS_APIKEY")),
                    (a.is_none(), ("tusfacturas_apitoken", "TUSFACTURAS_APITOKEN")),
                    (u.is_none(), ("tusfacturas_usertoken", "TUSFACTURAS_USERTOKEN")),
                ]
                .into_iter()
                .filter_map(|(absent, names)| absent.then_some(names))
                .collect();
                if let [(setting, env)] = missing.as_slice() {
                    return Err(missing_setting(s, NAME, setting, env));
                }
                let list = missing
                    .iter()
                    .map(|(setting, env)| match s.unreadable.get(*setting) {
                        Some(why) => format!("handlers.{setting} (could not be read: {why})"),
                        None => format!("handlers.{setting} (env:{env})"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                Err(HandlerError::Permanent(format!("{NAME}: not set: {list}")))
            }
        }
    }
}

/// The `error`/`errores` verdict of an answer: `Err` with TusFacturas'
/// messages when `error` is `"S"`.
fn application_error(answer: &Value, call: &Call) -> Result<(), HandlerError> {
    if answer.get("error").and_then(Value::as_str) != Some("S") {
        return Ok(());
    }
    let messages: Vec<String> = match answer.get("errores") {
        Some(Value::Array(list)) => list.iter().filter_map(scalar_text).collect(),
        Some(v) => scalar_text(v).into_iter().collect(),
        None => Vec::new(),
    };
    let mut text = messages.join("; ");
    if text.is_empty() {
        text = "no message".into();
    }
    let text: String = text.chars().take(500).collect();
    Err(HandlerError::Permanent(
        call.mask(&format!("{NAME}: TusFacturas answered error S: {text}")),
    ))
}

/// What the record keeps about one document.
fn document_summary(document: &Value) -> Map<String, Value> {
    // Advanced-query entries wrap the document as {"cliente", "comprobante"};
    // accept a bare document too.
    let doc = document
        .get("comprobante")
        .filter(|c| c.is_object())
        .unwrap_or(document);
    let mut out = Map::new();
    for (key, pointers) in [
        ("tipo", &["/tipo"][..]),
        ("punto_venta", &["/punto_venta"]),
        ("numero", &["/numero"]),
        ("cae", &["/cae"]),
        ("vencimiento_cae", &["/vencimiento_cae"]),
        ("estado", &["/estado", "/status"]),
        ("external_reference", &["/external_reference"]),
    ] {
        // Numbers stay numbers; strings are trimmed (TusFacturas pads the CAE).
        let value = pointers.iter().find_map(|p| match doc.pointer(p)? {
            Value::Number(n) => Some(Value::Number(n.clone())),
            other => scalar_text(other).map(Value::String),
        });
        if let Some(v) = value {
            out.insert(key.into(), v);
        }
    }
    out
}

#[async_trait]
impl Handler for Lookup {
    async fn handle(&self, event: &Event) -> Result<Value, HandlerError> {
        let payload = event.payload_value();
        let reference = text_at(&payload, &["/external_reference", "/comprobante/external_reference"])
            .ok_or_else(|| HandlerError::Permanent(format!("{NAME}: payload has no external_reference")))?;
        let [apikey, apitoken, usertoken] = self.credentials()?;
        let url = endpoint(
            &self.deps.settings.tusfacturas_api_url,
            "handlers.tusfacturas_api_url",
            &["facturacion", "consulta_avanzada"],
            false,
        )?;
        let body = json!({
            "usertoken": usertoken.expose_str(),
            "apikey": apikey.expose_str(),
            "apitoken": apitoken.expose_str(),
            "busqueda_tipo": "EXT_REF",
            "pagina": 0,
            "limite": PAGE_LIMIT,
            "comprobante": { "external_reference": reference, "operacion": "V" },
        });
        let call = Call::new("TusFacturas consulta_avanzada")
            .masking(Some(apikey))
            .masking(Some(apitoken))
            .masking(Some(usertoken));
        let reply = call.send(self.deps.http.post(url).json(&body)).await?;
        let answer = reply.json("TusFacturas consulta_avanzada")?;
        application_error(&answer, &call)?;
        let documents: Vec<&Value> = match (answer.get("comprobantes"), answer.get("comprobante")) {
            (Some(Value::Array(list)), _) => list.iter().collect(),
            (_, Some(single)) if single.is_object() => vec![&answer],
            _ => Vec::new(),
        };
        let mut result = Map::new();
        result.insert("external_reference".into(), json!(reference));
        result.insert(
            "error".into(),
            json!(answer.get("error").and_then(Value::as_str).unwrap_or("N")),
        );
        let total = answer
            .get("total")
            .and_then(Value::as_u64)
            .unwrap_or(documents.len() as u64);
        result.insert("total".into(), json!(total));
        if let Some(newest) = documents.first() {
            result.extend(document_summary(newest));
        }
        Ok(Value::Object(result))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::super::test_support::{assert_classifies, assert_no_secret, deps, event, TestServer};
    use super::super::{Handler, ResolvedSettings};
    use super::*;
    use std::sync::Arc;

    const APIKEY: &str = "tf_apikey_11111";
    const APITOKEN: &str = "tf_apitoken_22222";
    const USERTOKEN: &str = "tf_usertoken_33333";
    const SECRETS: &[&str] = &[APIKEY, APITOKEN, USERTOKEN];

    fn settings(base: &str) -> ResolvedSettings {
        ResolvedSettings {
            tusfacturas_api_url: format!("{base}/app/api/v2"),
            tusfacturas_apikey: Some(Secret::new(APIKEY.as_bytes().to_vec())),
            tusfacturas_apitoken: Some(Secret::new(APITOKEN.as_bytes().to_vec())),
            tusfacturas_usertoken: Some(Secret::new(USERTOKEN.as_bytes().to_vec())),
            ..Default::default()
        }
    }

    fn webhook() -> Value {
        json!({"external_reference": "ORD-1001", "estado": "OK"})
    }

    fn found() -> Value {
        json!({"error": "N", "errores": [], "rta": "OK", "total": 2, "comprobantes": [
            {"cliente": {"razon_social": "Pirulo", "email": "x@y.z"},
             "comprobante": {"tipo": "FACTURA B", "punto_venta": 2, "numero": 6, "cae": "65301278726386 ",
                             "vencimiento_cae": "30/05/2021", "external_reference": "ORD-1001", "status": "EMITIDO",
                             "detalle": [{"cantidad": 1}], "comprobante_pdf_url": "https://x/6.pdf"}},
            {"comprobante": {"numero": 5, "status": "ENVIADO A PROCESAR - CON ERROR"}}]})
    }

    #[tokio::test]
    async fn looks_the_document_up_by_external_reference() {
        let server = TestServer::start().await;
        server.reply_json(200, found());
        let dir = tempfile::tempdir().unwrap();
        let h = Lookup::new(&deps(settings(server.base()), dir.path()));
        let out = h.handle(&event("tusfacturas", "comprobante", webhook())).await;
        assert_no_secret(&out, SECRETS);
        assert_eq!(
            out.unwrap(),
            json!({"external_reference": "ORD-1001", "error": "N", "total": 2, "tipo": "FACTURA B",
                   "punto_venta": 2, "numero": 6, "cae": "65301278726386", "vencimiento_cae": "30/05/2021",
                   "estado": "EMITIDO"})
        );
        let req = server.single_request();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/app/api/v2/facturacion/consulta_avanzada");
        assert_eq!(req.header("content-type").as_deref(), Some("application/json"));
        assert_eq!(
            req.json(),
            json!({"usertoken": USERTOKEN, "apikey": APIKEY, "apitoken": APITOKEN, "busqueda_tipo": "EXT_REF",
                   "pagina": 0, "limite": 20, "comprobante": {"external_reference": "ORD-1001", "operacion": "V"}})
        );
    }

    #[tokio::test]
    async fn nothing_found_is_recorded_not_failed() {
        let server = TestServer::start().await;
        server.reply_json(
            200,
            json!({"error": "N", "errores": [], "rta": "OK", "total": 0, "comprobantes": []}),
        );
        let dir = tempfile::tempdir().unwrap();
        let h = Lookup::new(&deps(settings(server.base()), dir.path()));
        let out = h.handle(&event("tusfacturas", "comprobante", webhook())).await.unwrap();
        assert_eq!(out, json!({"external_reference": "ORD-1001", "error": "N", "total": 0}));
    }

    #[tokio::test]
    async fn error_s_on_http_200_is_permanent_with_their_message() {
        let server = TestServer::start().await;
        server.reply_json(
            200,
            json!({"error": "S", "errores": ["Credenciales invalidas", format!("apikey {APIKEY} no habilitada")]}),
        );
        let dir = tempfile::tempdir().unwrap();
        let h = Lookup::new(&deps(settings(server.base()), dir.path()));
        let out = h.handle(&event("tusfacturas", "comprobante", webhook())).await;
        assert_no_secret(&out, SECRETS);
        let err = out.expect_err("error S");
        assert!(!err.is_retryable(), "{err}");
        assert!(err.to_string().contains("Credenciales invalidas"), "{err}");
    }

    #[tokio::test]
    async fn missing_external_reference_is_permanent() {
        let server = TestServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let h = Lookup::new(&deps(settings(server.base()), dir.path()));
        let err = h
            .handle(&event("tusfacturas", "comprobante", json!({"estado": "OK"})))
            .await
            .expect_err("no ref");
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("external_reference"));
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn missing_credentials_name_the_settings() {
        let server = TestServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let mut one = settings(server.base());
        one.tusfacturas_apitoken = None;
        let err = Lookup::new(&deps(one, dir.path()))
            .handle(&event("tusfacturas", "comprobante", webhook()))
            .await
            .expect_err("no apitoken");
        assert!(!err.is_retryable());
        let text = err.to_string();
        assert!(
            text.contains("handlers.tusfacturas_apitoken") && text.contains("TUSFACTURAS_APITOKEN"),
            "{text}"
        );

        let none = ResolvedSettings {
            tusfacturas_api_url: server.base().to_string(),
            ..Default::default()
        };
        let text = Lookup::new(&deps(none, dir.path()))
            .handle(&event("tusfacturas", "comprobante", webhook()))
            .await
            .expect_err("none")
            .to_string();
        for name in ["tusfacturas_apikey", "tusfacturas_apitoken", "tusfacturas_usertoken"] {
            assert!(text.contains(name), "{text}");
        }
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn lookup_classifies_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        assert_classifies(
            |base| {
                let h: Arc<dyn Handler> = Arc::new(Lookup::new(&deps(settings(base), &path)));
                (h, event("tusfacturas", "comprobante", webhook()))
            },
            SECRETS,
        )
        .await;
    }
}
