//! The ingest Lambda: the same axum router as `webhooks serve`, run by
//! `lambda_http` behind API Gateway (HTTP API, payload v2). This crate only
//! wires: the pipeline is `webhooks_shared::ingest`, the adapters are
//! `webhooks_shared::{store::dynamodb, queue::sqs}`, the cold start is
//! `webhooks_shared::aws::cold_start`.

use axum::extract::Request;
use axum::http::HeaderValue;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use std::time::Instant;
use webhooks_shared::aws::{self, AwsEnv, AwsError, Runtime};

/// Cold start: SDK config, clients, first connections, config, secrets, app.
pub async fn init(env: &AwsEnv) -> Result<Runtime, AwsError> {
    let started = Instant::now();
    let sdk = aws::sdk_config(env.endpoint_url.as_deref()).await;
    let runtime = aws::cold_start(env, &sdk, |_, _| {}).await?;
    tracing::info!(init_ms = started.elapsed().as_millis() as u64, "ingest initialised");
    Ok(runtime)
}

/// The shared router, with API Gateway's request id as `x-request-id` when
/// the caller sent none, so every log line of a delivery carries the id that
/// API Gateway's access log shows.
pub fn router(runtime: &Runtime) -> axum::Router {
    webhooks_shared::http::router(runtime.app.ingest.clone())
        .layer(axum::middleware::map_request(api_gateway_request_id))
}

async fn api_gateway_request_id(mut req: Request) -> Request {
    if req.headers().contains_key("x-request-id") {
        return req;
    }
    let id = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    if let Some(v) = id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        req.headers_mut().insert("x-request-id", v);
    }
    req
}
