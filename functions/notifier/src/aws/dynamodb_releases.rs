//! DynamoDB adapter: the Slack bot mode's release records
//! ([`tollgate_notify::release`]), in the delivery ledger's table (its keys
//! start with `release#`, so they never meet the ledger's
//! `<event id>#<destination>` keys).
//!
//! Item: `pk` (`release#<destination>#<run>`), `version` (number; each write
//! is conditional on the version read, the first on the item not
//! existing), `body` (the record as JSON: channel, `ts`, the stage strip,
//! the final state, the applied and answered event ids; no secret),
//! `expires_at` (the table's TTL attribute: a run's record is kept for
//! [`RETENTION`] after its last event). Reads are strongly consistent.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::error::display::DisplayErrorContext;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tollgate_aws::SdkConfig;
use tollgate_notify::release::{BoxFuture, ReleaseRecord, ReleaseStore};

/// How long a run's record outlives its last event (a release may wait
/// days at an approval; Lambda keeps a retried event up to 6 h).
pub const RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);

/// Release records on a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoReleases {
    client: tollgate_aws::Lazy<Client>,
    table: String,
}

impl DynamoReleases {
    /// Builds the client for `table` (bounded attempts, as the ledger's).
    pub fn new(sdk: &SdkConfig, table: String) -> Self {
        let conf = aws_sdk_dynamodb::config::Builder::from(sdk)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(1500))
                    .operation_timeout(Duration::from_millis(3000))
                    .build(),
            )
            .build();
        Self {
            client: tollgate_aws::lazy(move || Client::from_conf(conf)),
            table,
        }
    }

    /// The Slack bot mode's records: on `table` (the ledger's) when there is
    /// one, else in this execution environment's memory.
    pub fn shared(sdk: &SdkConfig, table: Option<&str>) -> std::sync::Arc<dyn ReleaseStore> {
        match table {
            Some(t) => std::sync::Arc::new(Self::new(sdk, t.to_owned())),
            None => std::sync::Arc::new(tollgate_notify::release::MemoryReleases::default()),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<ReleaseRecord>, String> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| format!("GetItem: {}", DisplayErrorContext(&e)))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let version = item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or("the record has no version")?;
        let body = item
            .get("body")
            .and_then(|v| v.as_s().ok())
            .ok_or("the record has no body")?;
        let mut rec: ReleaseRecord =
            serde_json::from_str(body).map_err(|e| tollgate_core::text::describe_json_error(&e))?;
        rec.version = version;
        Ok(Some(rec))
    }

    async fn put(&self, key: &str, rec: &ReleaseRecord) -> Result<bool, String> {
        let body = serde_json::to_string(rec).map_err(|e| e.to_string())?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(key.to_owned()))
            .item("version", AttributeValue::N((rec.version + 1).to_string()))
            .item("body", AttributeValue::S(body))
            .item(
                "expires_at",
                AttributeValue::N((now + RETENTION.as_secs()).to_string()),
            );
        put = if rec.version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("#version = :v")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":v", AttributeValue::N(rec.version.to_string()))
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(format!("PutItem: {}", DisplayErrorContext(&e))),
        }
    }
}

impl ReleaseStore for DynamoReleases {
    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ReleaseRecord>, String>> {
        Box::pin(self.get(key))
    }

    fn store<'a>(
        &'a self,
        key: &'a str,
        record: &'a ReleaseRecord,
    ) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(self.put(key, record))
    }
}
