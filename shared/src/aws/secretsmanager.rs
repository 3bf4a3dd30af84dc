//! Secrets Manager adapter: reads one secret's string value.
//! Used at init to fetch webhook URLs and tokens for the notifier.

use super::SdkConfig;
use crate::secret::Secret;
use aws_sdk_secretsmanager::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Why a secret could not be read. Never carries the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The secret does not exist.
    #[error("secret {id:?} does not exist in Secrets Manager; create it or fix the reference")]
    NotFound {
        /// Secret id or ARN.
        id: String,
    },
    /// The role may not read it.
    #[error(
        "reading secret {id:?} was denied ({detail}); grant secretsmanager:GetSecretValue on it \
         (and kms:Decrypt when it uses a customer managed key)"
    )]
    Denied {
        /// Secret id or ARN.
        id: String,
        /// Service message.
        detail: String,
    },
    /// The secret holds binary data, not a string.
    #[error(
        "secret {id:?} has no SecretString (binary secrets are not supported); store the value as a string"
    )]
    NotAString {
        /// Secret id or ARN.
        id: String,
    },
    /// Anything else.
    #[error("reading secret {id:?} failed: {detail}")]
    Other {
        /// Secret id or ARN.
        id: String,
        /// Service message.
        detail: String,
    },
}

/// Port: fetches a secret's string value.
pub trait SecretStore: Send + Sync {
    /// The `SecretString` of `id` (name or ARN), current version.
    fn get_secret_string(
        &self,
        id: &str,
    ) -> impl std::future::Future<Output = Result<Secret, SecretError>> + Send;
}

/// Secrets Manager-backed [`SecretStore`].
#[derive(Debug, Clone)]
pub struct SecretsManagerSecrets {
    client: Client,
}

impl SecretsManagerSecrets {
    /// Builds the client.
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            client: Client::new(sdk),
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
