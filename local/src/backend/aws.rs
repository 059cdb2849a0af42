//! The AWS backend: the table and queues named by flags, or by a stack's
//! outputs (CloudFormation `DescribeStacks`), with the same SDK settings as
//! the functions (short timeouts, few retries).

use crate::cli::BackendArgs;
use anyhow::Context;
use aws_sdk_cloudformation::error::DisplayErrorContext;
use std::collections::HashMap;
use std::sync::Arc;
use webhooks_aws::dynamodb::{DynamoRefusals, DynamoStore};
use webhooks_aws::sqs::SqsQueue;
use webhooks_aws::Clients;
use webhooks_core::ports::queue::Queue;
use webhooks_core::ports::refusals::{RefusalBounds, RefusalLog};
use webhooks_core::ports::store::EventStore;

/// The outputs of `template.yaml` that name what the commands use.
pub const TABLE_OUTPUT: &str = "EventsTableName";
pub const QUEUE_OUTPUT: &str = "QueueUrl";
pub const DLQ_OUTPUT: &str = "DeadLetterQueueUrl";

/// The table and the two queues, each from its flag or else the stack.
#[derive(Debug, PartialEq, Eq)]
struct Resources {
    table: String,
    queue_url: String,
    dlq_url: String,
}

/// The store, the queue and the refusal log (items in the same table).
pub async fn open(args: &BackendArgs) -> anyhow::Result<(Arc<dyn EventStore>, Arc<dyn Queue>, Arc<dyn RefusalLog>)> {
    let sdk = webhooks_aws::sdk_config(args.endpoint_url.as_deref()).await;
    let outputs = match &args.stack {
        Some(stack) => stack_outputs(&aws_sdk_cloudformation::Client::new(&sdk), stack).await?,
        None => HashMap::new(),
    };
    let resources = resolve(args, &outputs)?;
    let clients = Clients::new(&sdk);
    let store = DynamoStore::new(clients.dynamodb.clone(), &resources.table);
    let queue = SqsQueue::new(clients.sqs.clone(), &resources.queue_url, &resources.dlq_url);
    let refusals = DynamoRefusals::new(clients.dynamodb.clone(), &resources.table, RefusalBounds::default());
    Ok((Arc::new(store), Arc::new(queue), Arc::new(refusals)))
}

/// Every output of `stack`, by key.
async fn stack_outputs(cfn: &aws_sdk_cloudformation::Client, stack: &str) -> anyhow::Result<HashMap<String, String>> {
    let described = cfn
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| format!("reading the outputs of stack `{stack}` (is it deployed, in this region?)"))?;
    let found = described
        .stacks()
        .first()
        .with_context(|| format!("no stack `{stack}` in this region"))?;
    Ok(found
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
        .collect())
}

/// Each resource from its flag, else from the stack's outputs; an error
/// names the flag and the output that would give the missing one.
fn resolve(args: &BackendArgs, outputs: &HashMap<String, String>) -> anyhow::Result<Resources> {
    let pick = |flag: &Option<String>, name: &str, output: &str| -> anyhow::Result<String> {
        if let Some(value) = flag {
            return Ok(value.clone());
        }
        match (&args.stack, outputs.get(output)) {
            (_, Some(value)) => Ok(value.clone()),
            (Some(stack), None) => anyhow::bail!("stack `{stack}` has no output {output}: give {name}"),
            (None, None) => anyhow::bail!("the AWS backend needs --stack NAME, or {name}"),
        }
    };
    Ok(Resources {
        table: pick(&args.table, "--table", TABLE_OUTPUT)?,
        queue_url: pick(&args.queue_url, "--queue-url", QUEUE_OUTPUT)?,
        dlq_url: pick(&args.dlq_url, "--dlq-url", DLQ_OUTPUT)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{BackendKind, StoreArgs};

    fn args(stack: Option<&str>, table: Option<&str>) -> BackendArgs {
        BackendArgs {
            backend: Some(BackendKind::Aws),
            store: StoreArgs { db: "unused.db".into() },
            stack: stack.map(str::to_string),
            table: table.map(str::to_string),
            queue_url: None,
            dlq_url: None,
            endpoint_url: None,
        }
    }

    fn outputs() -> HashMap<String, String> {
        [(TABLE_OUTPUT, "t"), (QUEUE_OUTPUT, "q"), (DLQ_OUTPUT, "d")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_flag_overrides_the_stack_output() {
        let got = resolve(&args(Some("s"), Some("mine")), &outputs()).expect("resolves");
        assert_eq!(
            got,
            Resources {
                table: "mine".into(),
                queue_url: "q".into(),
                dlq_url: "d".into()
            }
        );
    }

    #[test]
    fn a_missing_output_is_named_with_the_flag_that_gives_it() {
        let mut partial = outputs();
        partial.remove(DLQ_OUTPUT);
        let err = resolve(&args(Some("s"), None), &partial).expect_err("incomplete");
        assert_eq!(
            err.to_string(),
            "stack `s` has no output DeadLetterQueueUrl: give --dlq-url"
        );
        let err = resolve(&args(None, Some("t")), &HashMap::new()).expect_err("no queue");
        assert_eq!(err.to_string(), "the AWS backend needs --stack NAME, or --queue-url");
    }
}
