//! # tollgate-aws-ssm
//!
//! The SSM Parameter Store adapter of `tollgate_core::ports::ParameterStore`:
//! [`SsmParameters`] reads one parameter (SecureString decrypted) at init
//! (check specs, notifier rules, webhook secrets). Invariant: reads only,
//! so linking it never needs `ssm:PutParameter`; the one writer (deploy-hook's
//! hook-failure records) is that function's own adapter.

use aws_sdk_ssm::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use tollgate_aws::SdkConfig;
use tollgate_core::ports::{ParameterError, ParameterStore};
use tollgate_core::secret::Secret;

/// SSM-backed [`ParameterStore`].
#[derive(Debug, Clone)]
pub struct SsmParameters {
    client: tollgate_aws::Lazy<Client>,
}

impl SsmParameters {
    /// Builds the client.
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            client: {
                let sdk = sdk.clone();
                tollgate_aws::lazy(move || Client::new(&sdk))
            },
        }
    }
}

impl ParameterStore for SsmParameters {
    async fn get_parameter(&self, name: &str) -> Result<Secret, ParameterError> {
        let out = self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| {
                use aws_smithy_types::error::metadata::ProvideErrorMetadata;
                let code = e.code().unwrap_or_default().to_owned();
                let detail = DisplayErrorContext(&e).to_string();
                match code.as_str() {
                    "ParameterNotFound" => ParameterError::NotFound {
                        name: name.to_owned(),
                    },
                    "AccessDeniedException" | "AccessDenied" => ParameterError::Denied {
                        name: name.to_owned(),
                        detail,
                    },
                    _ => ParameterError::Other {
                        name: name.to_owned(),
                        detail,
                    },
                }
            })?;
        out.parameter
            .and_then(|p| p.value)
            .map(Secret::new)
            .ok_or_else(|| ParameterError::Other {
                name: name.to_owned(),
                detail: "the answer carried no value".to_owned(),
            })
    }
}
