//! DynamoDB adapter: the notifier's delivery ledger
//! ([`tollgate_notify::ledger`]), one on-demand table with a TTL.
//!
//! Item: `pk` (`<event id>#<destination>`), `state` (`sending` or `sent`),
//! `owner` (the claim's random token), `lease_until` (epoch seconds; a
//! `sending` claim older than that may be taken over), `expires_at` (epoch
//! seconds, the table's TTL attribute). A claim is one conditional
//! `PutItem`; its loser reads the item (strongly consistent) to tell "sent"
//! from "being sent", and from its own claim written by an SDK retry. Only
//! the owner marks a claim sent or releases it. Each attempt is bounded
//! (1.5 s, two attempts); the caller bounds each call again by the time it
//! has. The connection is opened at init ([`DynamoLedger::warm`]) so that
//! a cold start's TLS handshake does not make the first claim time out.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::error::display::DisplayErrorContext;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tollgate_aws::SdkConfig;
use tollgate_notify::ledger::{Claim, DeliveryLedger};

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
                        .operation_attempt_timeout(Duration::from_millis(1500))
                        .operation_timeout(Duration::from_millis(3000))
                        .build(),
                )
                .build();
            (Client::from_conf(conf), t)
        });
        Self { inner }
    }

    /// Opens the connection (TLS handshake) at init with one read of a key
    /// that never exists; a failure is only logged (claims then retry).
    pub async fn warm(&self) {
        let Some((client, table)) = &self.inner else {
            return;
        };
        let read = client
            .get_item()
            .table_name(table)
            .key("pk", s("tollgate#warm-up"))
            .send();
        match tokio::time::timeout(Duration::from_secs(5), read).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %DisplayErrorContext(&e), "the delivery ledger's table could not be read at init")
            }
            Err(_) => tracing::warn!("the delivery ledger's table did not answer at init"),
        }
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
            return Ok(Claim::Won(String::new()));
        };
        let token = format!("{:032x}", fastrand::u128(..));
        let now = epoch_secs();
        let put = client
            .put_item()
            .table_name(table)
            .item("pk", s(key))
            .item("state", s("sending"))
            .item("owner", s(&token))
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
            Ok(_) => Ok(Claim::Won(token)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                // Taken: by whom? Unknown counts as someone else (the claim
                // exists; sending would risk the duplicate).
                let Ok(read) = client
                    .get_item()
                    .table_name(table)
                    .key("pk", s(key))
                    .consistent_read(true)
                    .send()
                    .await
                else {
                    return Ok(Claim::Elsewhere);
                };
                let field = |name: &str| {
                    read.item
                        .as_ref()
                        .and_then(|i| i.get(name))
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                };
                Ok(match (field("state").as_deref(), field("owner")) {
                    (Some("sent"), _) => Claim::AlreadyDelivered,
                    // Our own write, answered late and retried by the SDK.
                    (_, Some(owner)) if owner == token => Claim::Won(token),
                    _ => Claim::Elsewhere,
                })
            }
            Err(e) => Err(format!("PutItem: {}", DisplayErrorContext(&e))),
        }
    }

    async fn delivered(&self, key: &str, token: Option<&str>) -> Result<(), String> {
        let Some((client, table)) = &self.inner else {
            return Ok(());
        };
        let expires = n(epoch_secs() + RETENTION.as_secs());
        let Some(token) = token else {
            // Sent without a claim (the ledger did not answer then).
            return client
                .put_item()
                .table_name(table)
                .item("pk", s(key))
                .item("state", s("sent"))
                .item("expires_at", expires)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("PutItem: {}", DisplayErrorContext(&e)));
        };
        let updated = client
            .update_item()
            .table_name(table)
            .key("pk", s(key))
            .update_expression("SET #state = :sent, expires_at = :expires")
            .condition_expression("#owner = :token")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":sent", s("sent"))
            .expression_attribute_values(":expires", expires)
            .expression_attribute_values(":token", s(token))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(()),
            // Another environment took the claim over after our lease ran
            // out: it decides; nothing to record here.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(format!("UpdateItem: {}", DisplayErrorContext(&e))),
        }
    }

    async fn release(&self, key: &str, token: &str) {
        let Some((client, table)) = &self.inner else {
            return;
        };
        let deleted = client
            .delete_item()
            .table_name(table)
            .key("pk", s(key))
            .condition_expression("#state = :sending AND #owner = :token")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":sending", s("sending"))
            .expression_attribute_values(":token", s(token))
            .send()
            .await;
        if let Err(e) = deleted {
            // The claim then expires with its lease (or is someone else's).
            tracing::warn!(error = %DisplayErrorContext(&e), "could not release a delivery claim");
        }
    }
}
