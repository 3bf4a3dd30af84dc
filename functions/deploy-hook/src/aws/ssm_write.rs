//! SSM Parameter Store write adapter: `PutParameter` of plain String
//! parameters, for deploy-hook's hook-failure records
//! ([`tollgate_core::hook_failures`]). Kept apart from the read adapter
//! (`tollgate_aws_ssm::SsmParameters`) so that only the function that writes needs
//! `ssm:PutParameter`.

use aws_sdk_ssm::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use tollgate_aws::SdkConfig;
use tollgate_core::ports::{ParameterWriter, PutParameterError};

/// SSM-backed [`ParameterWriter`]. SDK retries are limited to 2 attempts:
/// the write is best effort under its own short time bound.
#[derive(Debug, Clone)]
pub struct SsmParameterWriter {
    client: tollgate_aws::Lazy<Client>,
}

impl SsmParameterWriter {
    /// Builds the client.
    pub fn new(sdk: &SdkConfig) -> Self {
        let retry = aws_config::retry::RetryConfig::standard().with_max_attempts(2);
        Self {
            client: {
                let conf = aws_sdk_ssm::config::Builder::from(sdk)
                    .retry_config(retry)
                    .build();
                tollgate_aws::lazy(move || Client::from_conf(conf))
            },
        }
    }
}

impl ParameterWriter for SsmParameterWriter {
    async fn put_parameter(&self, name: &str, value: &str) -> Result<(), PutParameterError> {
        self.client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                use aws_smithy_types::error::metadata::ProvideErrorMetadata;
                let code = e.code().unwrap_or_default().to_owned();
                let detail = DisplayErrorContext(&e).to_string();
                let name = name.to_owned();
                match code.as_str() {
                    "AccessDeniedException" | "AccessDenied" => {
                        PutParameterError::Denied { name, detail }
                    }
                    "ValidationException"
                    | "ParameterLimitExceeded"
                    | "ParameterPatternMismatchException"
                    | "ParameterMaxVersionLimitExceeded"
                    | "HierarchyLevelLimitExceededException"
                    | "HierarchyTypeMismatchException"
                    | "UnsupportedParameterType" => PutParameterError::Rejected { name, detail },
                    _ => PutParameterError::Other { name, detail },
                }
            })
    }
}
