//! The ingest Lambda: the same axum router as `webhooks serve`, run by
//! `lambda_http` behind API Gateway (HTTP API, payload v2). This crate only
//! wires: the pipeline is `webhooks_shared::ingest`, the adapters are
//! `webhooks_shared::{store::dynamodb, queue::sqs}`, the cold start is
//! `webhooks_shared::aws::cold_start`.

use axum::extract::Request;
use axum::http::HeaderValue;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use webhooks_shared::aws::Runtime;

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
