//! The ingest Lambda: the same axum router as `webhooks serve`, run by
//! `lambda_http` behind API Gateway (HTTP API, payload v2). This crate only
//! wires: the pipeline is `webhooks_core::pipeline::ingest`, the adapters are
//! `webhooks_aws::{dynamodb, sqs}`, the cold start is
//! `webhooks_aws::bootstrap::cold_start`.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use webhooks_aws::emf::Emf;
use webhooks_aws::Runtime;
use webhooks_core::http::SourceIp;

/// The shared router, with API Gateway's request id as `x-request-id` when
/// the caller sent none, so every log line of a delivery carries the id that
/// API Gateway's access log shows; after each answer, what the request
/// recorded goes to the log as CloudWatch metrics (EMF). API Gateway's
/// `sourceIp` (the address that connected to it, which a sender cannot
/// forge the way it can an `X-Forwarded-For` entry) goes to the refusal log.
pub fn router(runtime: &Runtime) -> axum::Router {
    let metrics = runtime.metrics.clone();
    webhooks_core::http::router(runtime.app.ingest.clone())
        .layer(axum::middleware::from_fn(move |req: Request, next: Next| {
            let metrics = metrics.clone();
            async move { flush_metrics(&metrics, next.run(req).await) }
        }))
        .layer(axum::middleware::map_request(api_gateway_request_id))
        .layer(axum::middleware::map_request(api_gateway_source_ip))
}

/// Writes what the request recorded as one EMF document in the log, with
/// the request's id.
fn flush_metrics(metrics: &Emf, response: Response) -> Response {
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    metrics.flush(&[("request_id", request_id.into())]);
    response
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

/// Hands API Gateway's `sourceIp` to the router as [`SourceIp`].
async fn api_gateway_source_ip(mut req: Request) -> Request {
    let ip = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone(),
        _ => None,
    };
    if let Some(ip) = ip.filter(|ip| !ip.is_empty()) {
        req.extensions_mut().insert(SourceIp(ip));
    }
    req
}
