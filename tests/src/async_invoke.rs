//! Lambda's asynchronous invocation with an `OnFailure` SQS destination, as
//! far as the dead-letter path needs it, over a real queue on moto.
//!
//! Lambda itself is not available here, so the test plays its part: when an
//! invocation under [`crate::LocalLambda`] ends without an answer (the
//! process killed, out of memory or frozen past its deadline) or in an
//! error, [`FailureQueue::send_failed`] sends the destination record Lambda
//! would send (`requestContext`, `requestPayload` = the event,
//! `responseContext`, `responsePayload` = the error) to the queue.
//! [`FailureQueue::poll`] then does what the event source mapping does:
//! receives a batch, turns it into the SQS event the consumer gets, and
//! [`FailureQueue::settle`] deletes the records the consumer did not list in
//! `batchItemFailures`.

use crate::{Invocation, Moto};
use aws_credential_types::Credentials;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde_json::{Value, json};

/// A queue on moto standing for a function's on-failure destination.
#[derive(Debug)]
pub struct FailureQueue {
    sqs: aws_sdk_sqs::Client,
    url: String,
    arn: String,
}

/// One received batch: the SQS event for the consumer and the receipt
/// handles to settle it.
#[derive(Debug)]
pub struct Batch {
    /// `{"Records": [...]}` as Lambda's SQS event source mapping sends it.
    pub event: Value,
    receipts: Vec<(String, String)>,
}

impl FailureQueue {
    /// Creates the queue `name` on moto.
    pub async fn create(moto: &Moto, name: &str) -> FailureQueue {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(moto.url())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "AKIALAMBDASERVICE001",
                "lambda-service-secret",
                None,
                None,
                "lambda",
            ))
            .load()
            .await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let url = sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("queue created in moto")
            .queue_url
            .expect("queue url");
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .expect("queue arn");
        FailureQueue { sqs, url, arn }
    }

    /// Sends the destination record of an invocation of `function` that
    /// ended in `outcome` after `attempts` runs; returns the record.
    pub async fn send_failed(
        &self,
        function: &str,
        event: &Value,
        outcome: &Invocation,
        attempts: u32,
    ) -> Value {
        let record = destination_record(function, event, outcome, attempts);
        self.send_raw(&record.to_string()).await;
        record
    }

    /// Sends any body (a duplicate, or a poison message).
    pub async fn send_raw(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .expect("message sent to moto");
    }

    /// Receives up to ten messages (visible again after `visibility_secs`
    /// unless settled), as the event source mapping's SQS event.
    pub async fn poll(&self, visibility_secs: i32) -> Batch {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .visibility_timeout(visibility_secs)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive from moto");
        let mut records = Vec::new();
        let mut receipts = Vec::new();
        for m in out.messages.unwrap_or_default() {
            let id = m.message_id.clone().unwrap_or_default();
            let receipt = m.receipt_handle.clone().unwrap_or_default();
            let attributes: serde_json::Map<String, Value> = m
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                .collect();
            records.push(json!({
                "messageId": id,
                "receiptHandle": receipt,
                "body": m.body.unwrap_or_default(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body.unwrap_or_default(),
                "eventSource": "aws:sqs",
                "eventSourceARN": self.arn,
                "awsRegion": "us-east-1",
            }));
            receipts.push((id, receipt));
        }
        Batch {
            event: json!({ "Records": records }),
            receipts,
        }
    }

    /// Settles a batch from the consumer's answer: every record not listed
    /// in `batchItemFailures` is deleted (the rest become visible again).
    /// Returns the number deleted.
    pub async fn settle(&self, batch: &Batch, answer: &Value) -> usize {
        let failed: Vec<&str> = answer["batchItemFailures"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["itemIdentifier"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let mut deleted = 0;
        for (id, receipt) in &batch.receipts {
            if failed.contains(&id.as_str()) {
                continue;
            }
            self.sqs
                .delete_message()
                .queue_url(&self.url)
                .receipt_handle(receipt)
                .send()
                .await
                .expect("delete from moto");
            deleted += 1;
        }
        deleted
    }

    /// Messages in the queue, visible or in flight.
    pub async fn depth(&self) -> u64 {
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .filter_map(|k| attrs.get(k).and_then(|v| v.parse::<u64>().ok()))
        .sum()
    }
}

/// The record Lambda sends to an `OnFailure` destination after the last
/// attempt of `event` ended in `outcome`.
pub fn destination_record(
    function: &str,
    event: &Value,
    outcome: &Invocation,
    attempts: u32,
) -> Value {
    let request_id = format!(
        "{:08x}-7e57-4d1e-a000-{:012x}",
        std::process::id(),
        attempts
    );
    let (error_type, message) = match outcome {
        Invocation::Exited(_) => (
            "Runtime.ExitError".to_owned(),
            format!("RequestId: {request_id} Error: Runtime exited with error: signal: killed"),
        ),
        Invocation::Timeout => (
            "Sandbox.Timedout".to_owned(),
            format!("RequestId: {request_id} Error: Task timed out"),
        ),
        Invocation::Error {
            error_type,
            error_message,
        } => (error_type.clone(), error_message.clone()),
        Invocation::Response(v) => panic!("a successful invocation has no failure record: {v}"),
    };
    json!({
        "version": "1.0",
        "timestamp": "2026-11-25T10:15:42.371Z",
        "requestContext": {
            "requestId": request_id,
            "functionArn": format!("arn:aws:lambda:us-east-1:111111111111:function:{function}:$LATEST"),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": error_type, "errorMessage": message},
    })
}
