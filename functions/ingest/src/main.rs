//! Ingest Lambda entry point: tracing, typed environment (fails naming the
//! missing variable), clients and secrets once, then the shared router.

use webhooks_aws::AwsEnv;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let env = AwsEnv::from_env().inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let runtime = webhooks_aws::init("ingest", &env)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    lambda_http::run(ingest::router(&runtime)).await
}
