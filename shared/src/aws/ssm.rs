//! SSM Parameter Store adapter: reads one parameter (SecureString decrypted)
//! (the write port, [`ParameterWriter`], is adapted in
//! [`super::ssm_write`]). Reads serve init: check specs, notifier rules,
//! webhook secrets.

use super::SdkConfig;
use crate::secret::Secret;
use aws_sdk_ssm::Client;
use aws_smithy_types::error::display::DisplayErrorContext;

/// Why a parameter could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParameterError {
    /// The parameter does not exist.
    #[error("SSM parameter {name:?} does not exist; create it or fix the name")]
    NotFound {
        /// Parameter name.
        name: String,
    },
    /// The role may not read it.
    #[error(
        "reading SSM parameter {name:?} was denied ({detail}); grant ssm:GetParameter on it (and kms:Decrypt for a SecureString with a customer key)"
    )]
    Denied {
        /// Parameter name.
        name: String,
        /// Service message.
        detail: String,
    },
    /// Anything else.
    #[error("reading SSM parameter {name:?} failed: {detail}")]
    Other {
        /// Parameter name.
        name: String,
        /// Service message.
        detail: String,
    },
}

/// Port: fetches a parameter's value.
pub trait ParameterStore: Send + Sync {
    /// The value of `name`, decrypted, as a secret (callers that know it is
    /// not secret may expose it).
    fn get_parameter(
        &self,
        name: &str,
    ) -> impl std::future::Future<Output = Result<Secret, ParameterError>> + Send;
}

/// SSM-backed [`ParameterStore`].
#[derive(Debug, Clone)]
pub struct SsmParameters {
    client: Client,
}

impl SsmParameters {
    /// Builds the client.
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            client: Client::new(sdk),
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

/// Why a parameter could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PutParameterError {
    /// The role may not write it.
    #[error(
        "writing SSM parameter {name:?} was denied ({detail}); grant ssm:PutParameter on it to the function's role"
    )]
    Denied {
        /// Parameter name.
        name: String,
        /// Service message.
        detail: String,
    },
    /// The value or name was refused (too long, bad characters, a reserved
    /// prefix, or too many parameters in the account).
    #[error("SSM refused parameter {name:?} ({detail}); check the name prefix and the value size")]
    Rejected {
        /// Parameter name.
        name: String,
        /// Service message.
        detail: String,
    },
    /// Anything else (throttling, 5xx, network).
    #[error("writing SSM parameter {name:?} failed: {detail}")]
    Other {
        /// Parameter name.
        name: String,
        /// Service message.
        detail: String,
    },
}

/// Port: writes a plain (`String`) parameter, replacing any earlier value.
/// The SSM adapter is [`super::ssm_write::SsmParameterWriter`], in its own
/// file so only the function that writes is granted `ssm:PutParameter`.
pub trait ParameterWriter: Send + Sync {
    /// `PutParameter` with `Type: String` and `Overwrite: true`. The value
    /// must not be secret: String parameters are stored unencrypted.
    fn put_parameter(
        &self,
        name: &str,
        value: &str,
    ) -> impl std::future::Future<Output = Result<(), PutParameterError>> + Send;
}
