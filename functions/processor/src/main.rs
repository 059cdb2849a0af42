//! Processor Lambda entry point: tracing, typed environment (fails naming
//! the missing variable), clients and secrets once, then SQS batches
//! (and the operator's DLQ commands).

use lambda_runtime::{service_fn, LambdaEvent};
use processor::Function;
use webhooks_aws::AwsEnv;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let env = AwsEnv::from_env().inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let runtime = webhooks_aws::init("processor", &env)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let function = Function::from_runtime(&runtime);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let function = function.clone();
        async move {
            function
                .invoke(event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
