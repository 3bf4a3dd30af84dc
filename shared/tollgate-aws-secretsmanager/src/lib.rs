//! # tollgate-aws-secretsmanager
//!
//! Secrets Manager adapter for `tollgate_core::ports::SecretStore`: reads one
//! secret's string value, at init (the notifier's webhook URLs and tokens).
//! Invariant: the only crate that names `aws-sdk-secretsmanager`; errors
//! never carry the value.

use aws_sdk_secretsmanager::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use tollgate_aws::SdkConfig;
use tollgate_core::ports::{SecretError, SecretStore};
use tollgate_core::secret::Secret;

/// Secrets Manager-backed [`SecretStore`].
#[derive(Debug, Clone)]
pub struct SecretsManagerSecrets {
    client: tollgate_aws::Lazy<Client>,
}

impl SecretsManagerSecrets {
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

impl SecretStore for SecretsManagerSecrets {
    async fn get_secret_string(&self, id: &str) -> Result<Secret, SecretError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| {
                let code = e.code().unwrap_or_default().to_owned();
                let detail = DisplayErrorContext(&e).to_string();
                match code.as_str() {
                    "ResourceNotFoundException" => SecretError::NotFound { id: id.to_owned() },
                    "AccessDeniedException" | "AccessDenied" => SecretError::Denied {
                        id: id.to_owned(),
                        detail,
                    },
                    _ => SecretError::Other {
                        id: id.to_owned(),
                        detail,
                    },
                }
            })?;
        out.secret_string
            .map(Secret::new)
            .ok_or_else(|| SecretError::NotAString { id: id.to_owned() })
    }
}
