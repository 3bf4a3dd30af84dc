//! SNS adapter: publishes one notification to a topic.
//!
//! The SDK's own retries are off: the notifier's delivery loop retries within
//! the invocation's deadline (see `notify::deliver`). FIFO topics get a
//! deduplication id (event id + destination), which closes the duplicate
//! window for them.

use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use tollgate_aws::{SdkConfig, classify, no_sdk_retries};
use tollgate_notify::deliver::DeliveryError;
use tollgate_notify::destinations::sns::{SnsMessage, TopicPublisher};
use tollgate_report::ReportError;

/// Publishes to SNS topics.
#[derive(Debug, Clone)]
pub struct SnsPublisher {
    client: tollgate_aws::Lazy<Client>,
}

impl SnsPublisher {
    /// Builds the client (SDK retries off: the delivery loop retries).
    pub fn new(sdk: &SdkConfig) -> Self {
        let conf = aws_sdk_sns::config::Builder::from(sdk)
            .retry_config(no_sdk_retries())
            .build();
        Self {
            client: tollgate_aws::lazy(move || Client::from_conf(conf)),
        }
    }
}

impl TopicPublisher for SnsPublisher {
    async fn publish(
        &self,
        topic_arn: &str,
        message: &SnsMessage,
        dedupe_id: &str,
    ) -> Result<(), DeliveryError> {
        let mut req = self
            .client
            .publish()
            .topic_arn(topic_arn)
            .subject(&message.subject)
            .message(&message.message);
        for (name, value) in &message.attributes {
            let attr = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| DeliveryError::Permanent {
                    status: None,
                    detail: format!("message attribute {name}: {e}"),
                })?;
            req = req.message_attributes(name, attr);
        }
        if topic_arn.ends_with(".fifo") {
            req = req
                .message_group_id(message.group.clone())
                .message_deduplication_id(dedupe_id);
        }
        req.send()
            .await
            .map(|_| ())
            .map_err(|e| from_report_error(classify(e, &[])))
    }
}

fn from_report_error(e: ReportError) -> DeliveryError {
    let retryable = e.is_retryable();
    let (status, detail) = match &e {
        ReportError::Server { status, .. } => (Some(*status), e.to_string()),
        ReportError::Throttled { .. } => (Some(429), e.to_string()),
        ReportError::AccessDenied { .. } => (
            Some(403),
            format!(
                "{e}; grant sns:Publish on the topic (and kms:GenerateDataKey/kms:Decrypt for an encrypted topic)"
            ),
        ),
        _ => (None, e.to_string()),
    };
    if retryable {
        DeliveryError::Retryable {
            status,
            retry_after: None,
            detail,
        }
    } else {
        DeliveryError::Permanent { status, detail }
    }
}
