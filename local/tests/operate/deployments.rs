//! The two deployments the suite runs on.

use crate::suite::Deployment;
use crate::support::{self, gigstack_signature, Serve, Sink, Workdir};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;
use webhooks_aws::{AwsEnv, Clients, Runtime};
use webhooks_core::config::AppConfig;
use webhooks_core::secret::MapResolver;

/// `webhooks serve` on a temporary SQLite file; it processes by itself.
pub struct Embedded {
    wd: Workdir,
    serve: Serve,
    client: reqwest::Client,
}

impl Embedded {
    pub fn start(sink: &Sink) -> Self {
        let wd = Workdir::new();
        let serve = Serve::start(&wd, &wd.config(sink, 5, 100), &[]);
        Self {
            wd,
            serve,
            client: reqwest::Client::new(),
        }
    }
}

impl Deployment for Embedded {
    fn cli(&self, args: &[&str]) -> Output {
        support::run(&self.wd, args)
    }

    async fn deliver(&self, body: &str) -> u16 {
        support::post_gigstack(&self.client, &self.serve, body).await.0
    }

    async fn pump(&self) {}
}

/// The template's table, queue pair and bucket, as a CloudFormation stack
/// with the outputs `--stack` reads (the SAM template itself needs the
/// Serverless transform, which the emulator does not run).
const STACK_TEMPLATE: &str = r#"{
  "Resources": {
    "EventsTable": {
      "Type": "AWS::DynamoDB::Table",
      "Properties": {
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
          {"AttributeName": "pk", "AttributeType": "S"},
          {"AttributeName": "state", "AttributeType": "S"},
          {"AttributeName": "received_at", "AttributeType": "N"}
        ],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [{
          "IndexName": "by_state",
          "KeySchema": [
            {"AttributeName": "state", "KeyType": "HASH"},
            {"AttributeName": "received_at", "KeyType": "RANGE"}
          ],
          "Projection": {"ProjectionType": "ALL"}
        }]
      }
    },
    "DeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {"MessageRetentionPeriod": 1209600}},
    "EventsQueue": {
      "Type": "AWS::SQS::Queue",
      "Properties": {
        "VisibilityTimeout": 180,
        "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}, "maxReceiveCount": 5}
      }
    },
    "ArtifactsBucket": {"Type": "AWS::S3::Bucket"}
  },
  "Outputs": {
    "EventsTableName": {"Value": {"Ref": "EventsTable"}},
    "QueueUrl": {"Value": {"Ref": "EventsQueue"}},
    "DeadLetterQueueUrl": {"Value": {"Ref": "DeadLetterQueue"}},
    "ArtifactsBucketName": {"Value": {"Ref": "ArtifactsBucket"}}
  }
}"#;

/// The binary with the emulator's endpoint and test credentials, and
/// nothing inherited that could point it elsewhere.
pub fn aws_command(wd: &Workdir, endpoint: &str, args: &[&str]) -> Command {
    let mut cmd = support::command(wd, args);
    cmd.args(["--endpoint-url", endpoint])
        .env_remove("AWS_PROFILE")
        .env_remove("WEBHOOKS_STACK")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

/// A stack in the emulator, fed by the real functions' code: the ingest
/// router (what API Gateway invokes) and the processor's batch handler (what
/// the SQS event source invokes), with the same config overlay as `serve`.
pub struct AwsStack {
    wd: Workdir,
    endpoint: String,
    stack: String,
    router: axum::Router,
    batch: processor::BatchHandler,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    _runtime: Arc<Runtime>,
}

impl AwsStack {
    pub async fn create(endpoint: &str, sink: &Sink) -> Self {
        let sdk = webhooks_testkit_aws::sdk_config(endpoint).await;
        let stack = webhooks_testkit_aws::unique("operate");
        let cfn = aws_sdk_cloudformation::Client::new(&sdk);
        cfn.create_stack()
            .stack_name(&stack)
            .template_body(STACK_TEMPLATE)
            .send()
            .await
            .expect("create stack");
        let described = cfn.describe_stacks().stack_name(&stack).send().await.expect("describe");
        let output = |key: &str| -> String {
            described.stacks()[0]
                .outputs()
                .iter()
                .find(|o| o.output_key() == Some(key))
                .and_then(|o| o.output_value())
                .unwrap_or_else(|| panic!("output {key}"))
                .to_string()
        };
        let env = AwsEnv {
            events_table: output("EventsTableName"),
            queue_url: output("QueueUrl"),
            dlq_url: output("DeadLetterQueueUrl"),
            artifacts_bucket: output("ArtifactsBucketName"),
            artifacts_kms_key: None,
            config: None,
            endpoint_url: Some(endpoint.to_string()),
            metrics_namespace: "Webhooks".into(),
        };
        let wd = Workdir::new();
        let overlay = std::fs::read_to_string(wd.config(sink, 5, 100)).expect("overlay");
        let config = AppConfig::from_overlay(Some(("test overlay", overlay.as_str()))).expect("config");
        let secrets = MapResolver(
            [
                ("GIGSTACK_WEBHOOK_SECRET", support::GIGSTACK_SECRET),
                ("GIGSTACK_API_KEY", support::GIGSTACK_API_KEY),
                ("TF_WEBHOOK_TOKEN", support::TF_TOKEN),
                ("PIRIOD_WEBHOOK_TOKEN", support::PIRIOD_TOKEN),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        let clients = Clients::new(&sdk);
        let runtime = webhooks_aws::build(&env, clients.clone(), &config, &secrets, |_, _| {}).expect("app builds");
        Self {
            router: ingest::router(&runtime),
            batch: processor::BatchHandler::from_runtime(&runtime),
            sqs: clients.sqs.clone(),
            queue_url: env.queue_url.clone(),
            wd,
            endpoint: endpoint.to_string(),
            stack,
            _runtime: Arc::new(runtime),
        }
    }
}

impl AwsStack {
    /// `webhooks console` on a free loopback port against this stack; the
    /// child and the console's base URL (`http://127.0.0.1:PORT`).
    pub fn console(&self) -> (std::process::Child, String) {
        use std::io::BufRead;
        let args = [
            "console",
            "--addr",
            "127.0.0.1:0",
            "--backend",
            "aws",
            "--stack",
            self.stack.as_str(),
        ];
        let mut child = aws_command(&self.wd, &self.endpoint, &args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn webhooks console");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("console on http://") {
                    let addr = rest.split('/').next().unwrap_or_default().to_string();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the console said where it listens");
        (child, format!("http://{addr}"))
    }

    /// Runs the binary with the stack's flags and the suite's configuration
    /// (its 5 s processing lease).
    pub fn cli_with_config(&self, args: &[&str]) -> Output {
        let config = self.wd.path("config.toml");
        let mut all = args.to_vec();
        all.extend(["--config", config.to_str().expect("utf-8 path")]);
        self.cli(&all)
    }

    /// Receives every message on the main queue without processing it, as
    /// a processor that dies before settling would, until SQS's redrive
    /// policy (maxReceiveCount 5) has moved them all to the dead letters.
    /// Returns how many receives it took.
    pub async fn receive_until_redriven(&self) -> u32 {
        let mut receives = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .send()
                .await
                .expect("receive");
            if got.messages().is_empty() {
                return receives;
            }
            receives += 1;
            assert!(
                Instant::now() < deadline,
                "still on the queue after {receives} receives"
            );
        }
    }
}

impl Deployment for AwsStack {
    fn cli(&self, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--backend", "aws", "--stack", &self.stack]);
        aws_command(&self.wd, &self.endpoint, &all)
            .output()
            .expect("run webhooks")
    }

    async fn deliver(&self, body: &str) -> u16 {
        let request = axum::http::Request::post("/webhooks/gigstack")
            .header("content-type", "application/json")
            .header("x-gigstack-signature", gigstack_signature(body))
            .body(axum::body::Body::from(body.to_string()))
            .expect("request");
        let response = self.router.clone().oneshot(request).await.expect("infallible");
        response.status().as_u16()
    }

    /// One batch of what is visible on the queue, as the event source
    /// mapping would hand it over.
    async fn pump(&self) {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        let messages = received.messages();
        if messages.is_empty() {
            return;
        }
        let event = webhooks_testkit_aws::sqs_event(messages);
        let response = self.batch.handle(event).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "nothing here is retried: {response:?}"
        );
    }
}
