//! SQS adapter of the CodeDeploy metric gate's queue: implements
//! [`GateQueue`] with `SendMessage` and `DelaySeconds` (the function
//! consumes the same queue through its event source mapping, so it never
//! calls `ReceiveMessage` itself).

use aws_sdk_sqs::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use tollgate_aws::SdkConfig;
use tollgate_deploy::gate_hook::{BoxFuture, GateQueue};

/// Sends metric gate tickets to one queue.
#[derive(Debug, Clone)]
pub struct SqsGateQueue {
    client: tollgate_aws::Lazy<Client>,
    url: String,
}

impl SqsGateQueue {
    /// Builds the client for the queue at `url` (`TOLLGATE_GATE_QUEUE_URL`).
    pub fn new(sdk: &SdkConfig, url: String) -> Self {
        Self {
            client: {
                let sdk = sdk.clone();
                tollgate_aws::lazy(move || Client::new(&sdk))
            },
            url,
        }
    }
}

impl GateQueue for SqsGateQueue {
    fn send<'a>(&'a self, body: &'a str, delay_s: u32) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.client
                .send_message()
                .queue_url(&self.url)
                .message_body(body)
                .delay_seconds(i32::try_from(delay_s).unwrap_or(900))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    use aws_smithy_types::error::metadata::ProvideErrorMetadata;
                    let code = e.code().unwrap_or_default().to_owned();
                    let detail = DisplayErrorContext(&e).to_string();
                    if code.contains("AccessDenied") {
                        format!(
                            "sqs:SendMessage was denied ({detail}); grant it on the gate queue to the function's role"
                        )
                    } else {
                        format!("sqs:SendMessage failed: {detail}")
                    }
                })
        })
    }
}
