//! Secret references (`secretsmanager:…`, `ssm:…`, ARNs, plain values) and
//! their resolution, once per secret id, for the life of the execution
//! environment's init. Owns [`SecretRef`], [`parse_secret_ref`], the
//! per-init [`SecretCache`] and [`ResolveError`]; knows no destination and
//! no rule, so both `config` and `destinations` depend on it one way.
//!
//! A secret reference is one of:
//! - `secretsmanager:<name-or-arn>` or a Secrets Manager ARN, optionally
//!   followed by `#<json-key>` when the secret is a JSON object;
//! - `ssm:<parameter-name>` or an SSM parameter ARN (SecureString, decrypted);
//! - a plain `https://…` URL, for local use only (a warning is logged, without
//!   the value). `http://` is accepted only for `localhost`/`127.0.0.1`.
//!
//! Resolved values are held in [`Secret`]s: `Debug` is redacted, nothing logs
//! them, and errors name the variable and the reference, never the value.

use std::collections::HashMap;
use std::fmt;
use tollgate_core::config::ConfigError;
use tollgate_core::ports::{ParameterError, ParameterStore};
use tollgate_core::ports::{SecretError, SecretStore};
use tollgate_core::secret::Secret;

/// Where a secret value comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// Secrets Manager secret (name or ARN), optionally one key of its JSON.
    SecretsManager {
        /// Name or ARN.
        id: String,
        /// JSON key.
        key: Option<String>,
    },
    /// SSM parameter (name or ARN).
    Ssm {
        /// Name or ARN.
        name: String,
    },
    /// The value itself (local use).
    Plain(Secret),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SecretsManager { id, key } => match key {
                Some(k) => write!(f, "secretsmanager:{id}#{k}"),
                None => write!(f, "secretsmanager:{id}"),
            },
            Self::Ssm { name } => write!(f, "ssm:{name}"),
            Self::Plain(s) => write!(f, "plain {s:?}"),
        }
    }
}

/// Whether `raw` is an ARN of `service` (`arn:aws*:<service>:…`).
pub(crate) fn is_arn_of(raw: &str, service: &str) -> bool {
    let mut parts = raw.splitn(4, ':');
    parts.next() == Some("arn")
        && parts.next().is_some_and(|p| p.starts_with("aws"))
        && parts.next() == Some(service)
}

/// Parses a secret reference. `origin` names the variable (or document
/// path) for messages; the value is never echoed.
pub fn parse_secret_ref(origin: &str, raw: &str) -> Result<SecretRef, ConfigError> {
    let raw = raw.trim();
    let split_key = |s: &str| -> (String, Option<String>) {
        match s.split_once('#') {
            Some((id, key)) if !key.is_empty() => (id.to_owned(), Some(key.to_owned())),
            Some((id, _)) => (id.to_owned(), None),
            None => (s.to_owned(), None),
        }
    };
    if let Some(rest) = raw.strip_prefix("secretsmanager:") {
        let (id, key) = split_key(rest);
        if id.is_empty() {
            return Err(ConfigError::invalid(
                origin,
                raw,
                "the secret name is empty",
                "secretsmanager:<name-or-arn>[#json-key], e.g. secretsmanager:tollgate/slack#url",
            ));
        }
        return Ok(SecretRef::SecretsManager { id, key });
    }
    if is_arn_of(raw, "secretsmanager") {
        let (id, key) = split_key(raw);
        return Ok(SecretRef::SecretsManager { id, key });
    }
    if let Some(name) = raw.strip_prefix("ssm:") {
        if name.is_empty() {
            return Err(ConfigError::invalid(
                origin,
                raw,
                "the parameter name is empty",
                "ssm:<parameter-name>, e.g. ssm:/tollgate/slack-webhook",
            ));
        }
        return Ok(SecretRef::Ssm {
            name: name.to_owned(),
        });
    }
    if is_arn_of(raw, "ssm") {
        return Ok(SecretRef::Ssm {
            name: raw.to_owned(),
        });
    }
    Ok(SecretRef::Plain(Secret::new(raw)))
}

/// A secret reference could not be resolved. `config::InitError` takes
/// each variant over as its own.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The value is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A secret could not be read.
    #[error("{origin}: {source}")]
    Secret {
        /// Variable or document path.
        origin: String,
        /// What went wrong.
        source: SecretError,
    },
    /// A parameter could not be read.
    #[error("{origin}: {source}")]
    Parameter {
        /// Variable or document path.
        origin: String,
        /// What went wrong.
        source: ParameterError,
    },
}

/// Secret values read during one init, by secret id (a JSON secret holding
/// both a URL and a token is read once).
/// `Debug` shows the ids read, never a value.
#[derive(Debug, Default)]
pub struct SecretCache {
    raw: HashMap<String, Secret>,
}

impl SecretCache {
    /// Resolves `r`; `origin` names where it was configured, for messages.
    pub async fn get(
        &mut self,
        origin: &str,
        r: &SecretRef,
        secrets: &impl SecretStore,
        params: &impl ParameterStore,
    ) -> Result<Secret, ResolveError> {
        match r {
            SecretRef::Plain(s) => Ok(s.clone()),
            SecretRef::Ssm { name } => {
                let cache_key = format!("ssm:{name}");
                if let Some(v) = self.raw.get(&cache_key) {
                    return Ok(v.clone());
                }
                let v =
                    params
                        .get_parameter(name)
                        .await
                        .map_err(|source| ResolveError::Parameter {
                            origin: origin.to_owned(),
                            source,
                        })?;
                self.raw.insert(cache_key, v.clone());
                Ok(v)
            }
            SecretRef::SecretsManager { id, key } => {
                let cache_key = format!("sm:{id}");
                let whole = match self.raw.get(&cache_key) {
                    Some(v) => v.clone(),
                    None => {
                        let v = secrets.get_secret_string(id).await.map_err(|source| {
                            ResolveError::Secret {
                                origin: origin.to_owned(),
                                source,
                            }
                        })?;
                        self.raw.insert(cache_key, v.clone());
                        v
                    }
                };
                let Some(key) = key else {
                    return Ok(Secret::new(whole.expose().trim()));
                };
                let parsed: serde_json::Value =
                    serde_json::from_str(whole.expose()).map_err(|_| {
                        ConfigError::invalid_secret(
                            origin,
                            format!("secret {id:?} is not a JSON object, so it has no key `{key}`"),
                            "store the secret as JSON ({\"url\": \"https://…\"}) or drop the #key",
                        )
                    })?;
                match parsed.get(key).and_then(|v| v.as_str()) {
                    Some(v) => Ok(Secret::new(v.trim())),
                    None => Err(ConfigError::invalid_secret(
                        origin,
                        format!("secret {id:?} has no string key `{key}`"),
                        "a key that exists in the secret's JSON",
                    )
                    .into()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOOK: &str = "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX";

    #[test]
    fn secret_references() {
        assert_eq!(
            parse_secret_ref("V", "secretsmanager:tollgate/slack#url").expect("ok"),
            SecretRef::SecretsManager {
                id: "tollgate/slack".into(),
                key: Some("url".into())
            }
        );
        let arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tollgate/slack-AbCdEf";
        assert_eq!(
            parse_secret_ref("V", arn).expect("ok"),
            SecretRef::SecretsManager {
                id: arn.into(),
                key: None
            }
        );
        assert_eq!(
            parse_secret_ref("V", "ssm:/tollgate/teams").expect("ok"),
            SecretRef::Ssm {
                name: "/tollgate/teams".into()
            }
        );
        let plain = parse_secret_ref("V", HOOK).expect("ok");
        assert!(!format!("{plain:?}").contains("SECRET"));
        assert!(parse_secret_ref("V", "secretsmanager:").is_err());
    }
}
