//! CloudWatch Logs adapter: implements [`LogReader`] with `GetLogEvents`
//! (from the end of the stream, at most the lines asked for), for the last
//! lines of a failed `run-task` container. Never asks for unmasked data
//! (data protection masks stay on).

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::config::Region;
use tollgate_aws::{SdkConfig, classify};
use tollgate_pipeline::task::{LinesFuture, LogError, LogReader};
use tollgate_report::ReportError;

/// Reads log streams with the function's role.
#[derive(Debug, Clone)]
pub struct CloudWatchLogs {
    client: tollgate_aws::Lazy<Client>,
}

impl CloudWatchLogs {
    /// Builds the client (the SDK's standard retries: these are reads).
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            client: {
                let sdk = sdk.clone();
                tollgate_aws::lazy(move || Client::new(&sdk))
            },
        }
    }

    /// A client for `region` when it is not the function's own.
    fn client_for(&self, region: Option<&str>) -> Client {
        match region {
            Some(r) if self.client.config().region().map(|x| x.as_ref()) != Some(r) => {
                Client::from_conf(
                    self.client
                        .config()
                        .to_builder()
                        .region(Region::new(r.to_owned()))
                        .build(),
                )
            }
            _ => (*self.client).clone(),
        }
    }
}

impl LogReader for CloudWatchLogs {
    fn last_lines<'a>(
        &'a self,
        group: &'a str,
        stream: &'a str,
        region: Option<&'a str>,
        limit: usize,
    ) -> LinesFuture<'a> {
        Box::pin(async move {
            let out = self
                .client_for(region)
                .get_log_events()
                .log_group_name(group)
                .log_stream_name(stream)
                .start_from_head(false)
                .limit(i32::try_from(limit.clamp(1, 10_000)).unwrap_or(100))
                .send()
                .await
                .map_err(|e| match classify(e, &[]) {
                    ReportError::AccessDenied { code, message } => LogError::Denied {
                        detail: format!("{code}: {message}"),
                    },
                    ReportError::Rejected { code, .. } if code == "ResourceNotFoundException" => {
                        LogError::NotFound {
                            group: group.to_owned(),
                            stream: stream.to_owned(),
                        }
                    }
                    other => LogError::Failed {
                        detail: other.to_string(),
                    },
                })?;
            let mut events = out.events.unwrap_or_default();
            // Oldest first; never more than asked for, whatever the answer holds.
            events.sort_by_key(|e| e.timestamp.unwrap_or_default());
            let start = events.len().saturating_sub(limit);
            Ok(events
                .into_iter()
                .skip(start)
                .filter_map(|e| e.message)
                .collect())
        })
    }
}
