//! DynamoDB adapter: the notifier's delivery ledger
//! ([`crate::notify::ledger`]), one on-demand table with a TTL.
//!
//! Item: `pk` (`<event id>#<destination>`), `state` (`sending` or `sent`),
//! `lease_until` (epoch seconds; a `sending` claim older than that may be
//! taken over), `expires_at` (epoch seconds, the table's TTL attribute).
//! A claim is one conditional `PutItem`; its loser reads the item
//! (strongly consistent) to tell "sent" from "being sent". Calls are
//! bounded (1.5 s each, two attempts) so a slow table cannot eat the
//! notification's deadline.

use super::SdkConfig;
use crate::notify::ledger::{Claim, DeliveryLedger};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::error::display::DisplayErrorContext;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a delivered record is kept: longer than any redelivery
/// (EventBridge retries for up to 24 h, Lambda keeps async events up to 6 h).
pub const RETENTION: Duration = Duration::from_secs(3 * 24 * 3600);

/// The ledger on a DynamoDB table; `None`: no table (every claim won).
#[derive(Debug, Clone)]
pub struct DynamoLedger {
    inner: Option<(Client, String)>,
}

impl DynamoLedger {
    /// Builds the client for `table` (none: a ledger that always lets send).
    pub fn new(sdk: &SdkConfig, table: Option<String>) -> Self {
        let inner = table.map(|t| {
            let conf = aws_sdk_dynamodb::config::Builder::from(sdk)
                .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
                .timeout_config(
                    aws_config::timeout::TimeoutConfig::builder()
                        .operation_attempt_timeout(Duration::from_millis(700))
                        .operation_timeout(Duration::from_millis(1500))
                        .build(),
                )
                .build();
            (Client::from_conf(conf), t)
        });
        Self { inner }
    }
}

fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

impl DeliveryLedger for DynamoLedger {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, String> {
        let Some((client, table)) = &self.inner else {
            return Ok(Claim::Won);
        };
        let now = epoch_secs();
        let put = client
            .put_item()
            .table_name(table)
            .item("pk", s(key))
            .item("state", s("sending"))
            .item("lease_until", n(now + lease.as_secs().max(1)))
            .item("expires_at", n(now + RETENTION.as_secs()))
            .condition_expression(
                "attribute_not_exists(pk) OR (#state = :sending AND lease_until < :now)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":sending", s("sending"))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match put {
            Ok(_) => Ok(Claim::Won),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                let item = client
                    .get_item()
                    .table_name(table)
                    .key("pk", s(key))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| format!("GetItem: {}", DisplayErrorContext(&e)))?;
                let state = item
                    .item
                    .as_ref()
                    .and_then(|i| i.get("state"))
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str);
                Ok(match state {
                    Some("sent") => Claim::AlreadyDelivered,
                    _ => Claim::Elsewhere,
                })
            }
            Err(e) => Err(format!("PutItem: {}", DisplayErrorContext(&e))),
        }
    }

    async fn delivered(&self, key: &str) -> Result<(), String> {
        let Some((client, table)) = &self.inner else {
            return Ok(());
        };
        client
            .update_item()
            .table_name(table)
            .key("pk", s(key))
            .update_expression("SET #state = :sent")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":sent", s("sent"))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("UpdateItem: {}", DisplayErrorContext(&e)))
    }

    async fn release(&self, key: &str) {
        let Some((client, table)) = &self.inner else {
            return;
        };
        let deleted = client
            .delete_item()
            .table_name(table)
            .key("pk", s(key))
            .condition_expression("#state = :sending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":sending", s("sending"))
            .send()
            .await;
        if let Err(e) = deleted {
            // The claim then expires with its lease.
            tracing::warn!(error = %DisplayErrorContext(&e), "could not release a delivery claim");
        }
    }
}
