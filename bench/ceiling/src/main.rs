//! `ceiling`: what this machine answers when a receiver stores nothing.
//!
//! The work of the Flask peer (`bench/peers/flask_receiver.py`), written
//! the way a Rust team would write it first: axum on tokio, the gigstack
//! HMAC-SHA256 over the body checked against `X-Gigstack-Signature`, the
//! JSON parsed for `id` and `type`, and `{"status":"accepted","ids":[id]}`.
//! No claim, no queue, no database, no log line, no metrics. Its rate and
//! latency under `scripts/bench-load --ceiling` bound what `webhooks serve`
//! can reach on the same core: the HTTP work alone, kernel included.
//!
//!     GIGSTACK_WEBHOOK_SECRET=... ceiling --addr 127.0.0.1:8000

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use clap::Parser;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(about = "Receive signed gigstack deliveries and store nothing: the load benchmark's ceiling.")]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
    /// The gigstack signing secret.
    #[arg(long, env = "GIGSTACK_WEBHOOK_SECRET", hide_env_values = true)]
    secret: String,
}

/// The signing key, ready to clone per request.
type Key = Arc<Hmac<sha2::Sha256>>;

/// The two fields the peer reads; serde skips the rest of the object.
#[derive(Deserialize)]
struct Delivery {
    id: String,
    #[serde(rename = "type")]
    _type: String,
}

fn app(secret: &str) -> Router {
    let key: Key = Arc::new(
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length"),
    );
    Router::new()
        .route("/webhooks/gigstack", post(gigstack))
        .with_state(key)
}

/// 401 unless the signature is the body's HMAC, 400 unless the body is a
/// JSON object with a string `id` and `type`, else 200 with the id.
async fn gigstack(State(key): State<Key>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let given = headers
        .get("x-gigstack-signature")
        .and_then(|v| hex::decode(v.as_bytes()).ok());
    let mut mac = (*key).clone();
    mac.update(&body);
    let signed = given.is_some_and(|sig| mac.verify_slice(&sig).is_ok());
    if !signed {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid signature"}))).into_response();
    }
    match serde_json::from_slice::<Delivery>(&body) {
        Ok(delivery) => Json(json!({"status": "accepted", "ids": [delivery.id]})).into_response(),
        Err(_) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid JSON or missing id/type"})),
        )
            .into_response(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let listener = match tokio::net::TcpListener::bind(args.addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("ceiling: cannot listen on {}: {e}", args.addr);
            return ExitCode::from(2);
        }
    };
    match axum::serve(listener, app(&args.secret)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ceiling: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    const SECRET: &str = "whsec_ceiling";

    fn sign(body: &str) -> String {
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).expect("key");
        mac.update(body.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    async fn post(body: &str, signature: &str) -> (StatusCode, serde_json::Value) {
        let request = Request::post("/webhooks/gigstack")
            .header("content-type", "application/json")
            .header("x-gigstack-signature", signature)
            .body(Body::from(body.to_owned()))
            .expect("request");
        let response = app(SECRET).oneshot(request).await.expect("answer");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).expect("JSON answer"))
    }

    #[tokio::test]
    async fn a_signed_delivery_is_accepted_with_its_id() {
        let body = r#"{"id":"evt_1","type":"invoice.created","data":{"object":{}}}"#;
        let (status, answer) = post(body, &sign(body)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer, json!({"status": "accepted", "ids": ["evt_1"]}));
    }

    #[tokio::test]
    async fn a_wrong_or_malformed_signature_is_a_401() {
        let body = r#"{"id":"evt_1","type":"invoice.created"}"#;
        let (status, _) = post(body, &sign("something else")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = post(body, "not hex").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn a_body_without_id_or_type_is_a_400() {
        let body = r#"{"id":"evt_1"}"#;
        let (status, _) = post(body, &sign(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
