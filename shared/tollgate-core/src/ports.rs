//! Ports used by more than one function: reading a parameter (check specs,
//! notifier rules, webhook secrets), writing one (deploy-hook's hook-failure
//! records) and reading a secret. The adapters are `tollgate-aws-ssm` and
//! `tollgate-aws-secretsmanager`; the fakes are in `tollgate-test-support`.

use crate::secret::Secret;

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
/// The SSM adapter is deploy-hook's `aws::ssm_write::SsmParameterWriter`, in its own
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
