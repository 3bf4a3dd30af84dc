//! The spec's `variables:` map: `${NAME}` values that come from Secrets
//! Manager or SSM Parameter Store, never from the spec itself.
//!
//! ```yaml
//! variables:
//!   TOKEN: secretsmanager:tollgate/web#token   # one key of a JSON secret
//!   API_KEY: ssm:/tollgate/web/api-key         # a SecureString, decrypted
//! ```
//!
//! Each value is a reference in the one syntax Tollgate uses everywhere
//! ([`tollgate_core::secret_ref`]); a plain value is refused. The caller
//! resolves them once ([`resolve`], through the core ports) and inserts them
//! with [`Vars::insert_secret`], so every resolved value is redacted from
//! every result text the engine produces. Names are checked against the
//! caller's own variables ([`SecretVariables::clashes`]): a spec may not
//! redefine `TARGET`.

use super::error::SpecError;
use super::template::Vars;
use serde_json::Value;
use std::collections::BTreeMap;
use tollgate_core::Secret;
use tollgate_core::config::ConfigError;
use tollgate_core::ports::{ParameterStore, SecretStore};
use tollgate_core::secret_ref::{ResolveError, SecretCache, SecretRef, parse_reference};

/// Most entries in `variables:` (each is a read at first use).
pub const MAX_SECRET_VARIABLES: usize = 16;
/// Largest value one secret variable may resolve to. Check variables are
/// tokens and keys, not documents; the bound keeps a resolved spec within
/// its memory budget (the redactor keeps several echoed forms of each
/// value, some up to a few times its length).
pub const MAX_SECRET_VARIABLE_BYTES: usize = 4 * 1024;
/// Largest total of all of a spec's resolved values.
pub const MAX_SECRET_VARIABLES_TOTAL_BYTES: usize = 16 * 1024;

/// The parsed `variables:` map, by name. `Debug` shows references, never
/// values (there are none here).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretVariables {
    refs: BTreeMap<String, SecretRef>,
}

/// Resolved values, by name; `Debug` is redacted ([`Secret`]).
#[derive(Debug, Clone, Default)]
pub struct ResolvedVariables {
    values: Vec<(String, Secret)>,
}

impl ResolvedVariables {
    /// Adds every value to `vars` as a secret (redacted from results).
    pub fn apply(&self, vars: &mut Vars) {
        for (name, value) in &self.values {
            vars.insert_secret(name.clone(), value.expose());
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Bytes the values take (for memory budgets).
    pub fn bytes(&self) -> usize {
        self.values
            .iter()
            .map(|(n, v)| n.len() + v.expose().len())
            .sum()
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl SecretVariables {
    /// Parses the `variables` field.
    pub(crate) fn parse(v: &Value) -> Result<Self, SpecError> {
        let Value::Object(map) = v else {
            return Err(SpecError::invalid(
                "variables",
                "expected a mapping of NAME: reference, e.g. {TOKEN: \"secretsmanager:tollgate/web#token\"}",
            ));
        };
        if map.len() > MAX_SECRET_VARIABLES {
            return Err(SpecError::invalid(
                "variables",
                format!(
                    "{} entries; at most {MAX_SECRET_VARIABLES} (one JSON secret can hold several keys)",
                    map.len()
                ),
            ));
        }
        let mut refs = BTreeMap::new();
        for (name, raw) in map {
            if !valid_name(name) {
                return Err(SpecError::invalid(
                    "variables",
                    "a variable name uses letters, digits and _ and does not start with a digit",
                ));
            }
            let path = format!("variables.{name}");
            let Value::String(raw) = raw else {
                return Err(SpecError::invalid(
                    &path,
                    format!(
                        "expected a reference string: {}",
                        tollgate_core::secret_ref::REFERENCE_FORMS
                    ),
                ));
            };
            let r = parse_reference(&path, raw).map_err(|e| match e {
                // Never the value: it may be the token itself.
                ConfigError::Invalid {
                    problem, expected, ..
                } => SpecError::invalid(&path, format!("{problem}; expected {expected}")),
                ConfigError::Missing { hint, .. } => SpecError::invalid(&path, hint),
            })?;
            refs.insert(name.clone(), r);
        }
        Ok(Self { refs })
    }

    /// The names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.refs.keys().map(String::as_str)
    }

    /// The references, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SecretRef)> {
        self.refs.iter().map(|(n, r)| (n.as_str(), r))
    }

    /// True when the spec declares none.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// A spec error when a declared name is one the caller supplies itself
    /// (`supplied`, e.g. deploy-hook's `TARGET`), naming the entry point.
    pub fn clashes<'a>(
        &self,
        supplied: impl IntoIterator<Item = &'a str>,
        entry_point: &str,
    ) -> Result<(), SpecError> {
        let supplied: Vec<&str> = supplied.into_iter().collect();
        match self.refs.keys().find(|n| supplied.contains(&n.as_str())) {
            Some(name) => Err(SpecError::invalid(
                &format!("variables.{name}"),
                format!("{entry_point} supplies ${{{name}}} itself; give the secret another name"),
            )),
            None => Ok(()),
        }
    }

    /// Reads every reference once through `cache` (a JSON secret named by
    /// several variables is read once). Errors name the variable and the
    /// reference, never a value.
    pub async fn resolve(
        &self,
        cache: &mut SecretCache,
        secrets: &impl SecretStore,
        params: &impl ParameterStore,
    ) -> Result<ResolvedVariables, ResolveError> {
        let mut values = Vec::with_capacity(self.refs.len());
        let mut total = 0usize;
        for (name, r) in &self.refs {
            let origin = format!("variables.{name} ({})", r.describe());
            let value = cache.get(&origin, r, secrets, params).await?;
            let len = value.expose().len();
            total += len;
            if len > MAX_SECRET_VARIABLE_BYTES {
                return Err(too_large(
                    &origin,
                    format!(
                        "the value is {len} bytes; a check variable holds at most \
                         {MAX_SECRET_VARIABLE_BYTES} (a token or key, not a document): point it \
                         at a JSON key of the secret (#key) or store the token alone"
                    ),
                ));
            }
            if total > MAX_SECRET_VARIABLES_TOTAL_BYTES {
                return Err(too_large(
                    &origin,
                    format!(
                        "the spec's variables hold {total} bytes so far; all of them together \
                         hold at most {MAX_SECRET_VARIABLES_TOTAL_BYTES}: use fewer or shorter secrets"
                    ),
                ));
            }
            values.push((name.clone(), value));
        }
        Ok(ResolvedVariables { values })
    }
}

/// A resolved value over its bound; names the variable, never the value.
fn too_large(origin: &str, problem: String) -> ResolveError {
    ResolveError::Config(ConfigError::Invalid {
        var: origin.to_owned(),
        shown: "<redacted>".to_owned(),
        problem,
        expected: format!(
            "at most {MAX_SECRET_VARIABLE_BYTES} bytes per variable and \
             {MAX_SECRET_VARIABLES_TOTAL_BYTES} in all"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tollgate_test_support::parameters::FakeStore;

    fn parse(yaml: &str) -> Result<SecretVariables, SpecError> {
        let v: Value = serde_saphyr::from_str(yaml).expect("yaml");
        SecretVariables::parse(&v)
    }

    #[test]
    fn references_parse_and_plain_values_are_refused_unquoted() {
        let vars =
            parse("{TOKEN: 'secretsmanager:tollgate/web#token', KEY: 'ssm:/tollgate/web/key'}")
                .expect("valid");
        assert_eq!(vars.names().collect::<Vec<_>>(), ["KEY", "TOKEN"]);
        let err = parse("{TOKEN: 'Bearer hunter2-very-secret'}").expect_err("plain");
        let text = err.to_string();
        assert!(text.starts_with("variables.TOKEN: "), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("secretsmanager:"), "{text}");
        assert!(parse("{1X: 'ssm:/a'}").is_err());
        assert!(parse("{X: 3}").is_err());
        assert!(parse("[a]").is_err());
    }

    #[test]
    fn a_name_the_entry_point_supplies_is_refused() {
        let vars = parse("{TARGET: 'ssm:/a'}").expect("valid");
        let err = vars
            .clashes(["TARGET", "HOOK"], "deploy-hook")
            .expect_err("clash");
        assert_eq!(
            err.to_string(),
            "variables.TARGET: deploy-hook supplies ${TARGET} itself; give the secret another name"
        );
    }

    #[tokio::test]
    async fn resolution_reads_each_secret_once_and_never_shows_values() {
        let vars = parse(
            "{TOKEN: 'secretsmanager:web#token', USER: 'secretsmanager:web#user', KEY: 'ssm:/web/key'}",
        )
        .expect("valid");
        let store = FakeStore::with(HashMap::from([
            (
                "web".to_owned(),
                r#"{"token": "tok-Zq81", "user": "svc-web"}"#.to_owned(),
            ),
            ("/web/key".to_owned(), "key-77aa".to_owned()),
        ]));
        let (secrets, params) = (store.clone(), store.clone());
        let mut cache = SecretCache::default();
        let resolved = vars
            .resolve(&mut cache, &secrets, &params)
            .await
            .expect("resolved");
        assert_eq!(store.reads(), ["/web/key", "web"], "one read per secret");
        let shown = format!("{resolved:?}");
        assert!(!shown.contains("tok-Zq81"), "{shown}");
        let mut v = Vars::new();
        resolved.apply(&mut v);
        assert_eq!(v.get("TOKEN"), Some("tok-Zq81"));
        assert_eq!(v.get("KEY"), Some("key-77aa"));
        assert!(!format!("{v:?}").contains("key-77aa"));

        let missing = parse("{T: 'secretsmanager:web#nope'}").expect("valid");
        let err = missing
            .resolve(&mut SecretCache::default(), &secrets, &params)
            .await
            .expect_err("no key");
        let text = err.to_string();
        assert!(
            text.contains("variables.T (secretsmanager:web#nope)"),
            "{text}"
        );
        assert!(!text.contains("tok-Zq81"), "{text}");
    }

    #[tokio::test]
    async fn values_over_their_bounds_are_refused_by_name_never_shown() {
        let big = format!("tok-{}", "z".repeat(MAX_SECRET_VARIABLE_BYTES));
        let near = "y".repeat(MAX_SECRET_VARIABLE_BYTES);
        let store = FakeStore::with(HashMap::from([
            ("big".to_owned(), big.clone()),
            ("a".to_owned(), near.clone()),
            ("b".to_owned(), near.clone()),
            ("c".to_owned(), near.clone()),
            ("d".to_owned(), near.clone()),
            ("e".to_owned(), "x-small".to_owned()),
        ]));
        let (secrets, params) = (store.clone(), store.clone());

        let one = parse("{T: 'secretsmanager:big'}").expect("valid");
        let err = one
            .resolve(&mut SecretCache::default(), &secrets, &params)
            .await
            .expect_err("too big");
        let text = err.to_string();
        assert!(text.contains("variables.T (secretsmanager:big)"), "{text}");
        assert!(text.contains("at most 4096"), "{text}");
        assert!(!text.contains("zzzz"), "{text}");

        let four =
            parse("{A: 'secretsmanager:a', B: 'secretsmanager:b', C: 'secretsmanager:c', D: 'secretsmanager:d'}")
                .expect("valid");
        let resolved = four
            .resolve(&mut SecretCache::default(), &secrets, &params)
            .await
            .expect("exactly the total bound");
        assert_eq!(resolved.len(), 4);

        let five = parse(
            "{A: 'secretsmanager:a', B: 'secretsmanager:b', C: 'secretsmanager:c', D: 'secretsmanager:d', E: 'secretsmanager:e'}",
        )
        .expect("valid");
        let err = five
            .resolve(&mut SecretCache::default(), &secrets, &params)
            .await
            .expect_err("over the total");
        let text = err.to_string();
        assert!(text.contains("variables.E"), "{text}");
        assert!(text.contains("at most 16384"), "{text}");
        assert!(
            !text.contains("x-small") && !text.contains("yyyy"),
            "{text}"
        );
    }
}
