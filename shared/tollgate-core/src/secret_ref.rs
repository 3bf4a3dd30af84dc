//! Secret references (`secretsmanager:…`, `ssm:…`, ARNs, plain values) and
//! their resolution, once per secret id, through the [`SecretStore`] and
//! [`ParameterStore`] ports. Owns [`SecretRef`], [`parse_secret_ref`] (the
//! notifier's destinations), [`parse_reference`] (the check spec's
//! `variables:`, which never take a plain value), the [`SecretCache`] and
//! [`ResolveError`]. One syntax for every place a user names a secret.
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

use crate::config::ConfigError;
use crate::ports::{ParameterError, ParameterStore};
use crate::ports::{SecretError, SecretStore};
use crate::secret::Secret;
use std::collections::HashMap;
use std::fmt;

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
pub fn is_arn_of(raw: &str, service: &str) -> bool {
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

/// The forms [`parse_reference`] accepts, for messages.
pub const REFERENCE_FORMS: &str = "secretsmanager:<name-or-arn>[#json-key], a Secrets Manager \
    secret ARN[#json-key], ssm:<parameter-name> or an SSM parameter ARN, e.g. \
    secretsmanager:tollgate/web#token";

/// Parses a reference that must name a store: a plain value is refused
/// (a misspelt prefix such as `secretmanager:` would otherwise be sent as
/// the secret itself). `origin` names the field; the value is never echoed.
pub fn parse_reference(origin: &str, raw: &str) -> Result<SecretRef, ConfigError> {
    match parse_secret_ref(origin, raw)? {
        SecretRef::Plain(_) => Err(ConfigError::invalid_secret(
            origin,
            "it is not a reference to Secrets Manager or SSM (the value itself never goes here)",
            REFERENCE_FORMS,
        )),
        r => Ok(r),
    }
}

impl SecretRef {
    /// The reference as written (never a plain value), for messages.
    pub fn describe(&self) -> String {
        format!("{self:?}")
    }
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

/// Secret values read through one cache, by secret id (a JSON secret
/// holding both a URL and a token is read once).
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

    #[test]
    fn a_strict_reference_refuses_plain_values_without_echoing_them() {
        let err = parse_reference("variables.TOKEN", "secretmanager:tok-Very-Secret-1")
            .expect_err("misspelt prefix");
        let text = err.to_string();
        assert!(text.starts_with("variables.TOKEN"), "{text}");
        assert!(!text.contains("Very-Secret"), "{text}");
        assert!(text.contains("secretsmanager:<name-or-arn>"), "{text}");
        assert_eq!(
            parse_reference("V", "ssm:/tollgate/web/token").expect("ok"),
            SecretRef::Ssm {
                name: "/tollgate/web/token".into()
            }
        );
    }
}
