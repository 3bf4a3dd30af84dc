//! Notification destinations. Each type lives in one module that owns its
//! configuration (environment variables, its entry in the rules document,
//! validation), its renderer and its delivery specifics:
//! [`slack`], [`teams`], [`webhook`], [`sns`], [`amazonq`], [`slackbot`].
//!
//! This module owns what they share: the registration list (the
//! `destinations!` invocation below, which generates [`DestinationKind`],
//! [`DestinationDoc`], [`Unresolved`] and [`Target`] and the dispatch to the
//! modules), the https URL check, and [`Via`], the transports a delivery
//! may use. Retries (`deliver`), the ledger, routing (`rules`) and the
//! invocation (`handler`) stay where they are.
//!
//! Adding a destination type: a module `destinations/<name>.rs` with the
//! items below, and one line in the `destinations!` invocation.
//! - `TYPE`: the `type` in the rules document (the variant's name in
//!   lowercase) and the [`DestinationKind::as_str`] name;
//! - `VAR`: the environment variable that creates a destination named
//!   `TYPE`, used as its origin in messages;
//! - `Doc` (its `destinations.<name>` entry, `deny_unknown_fields`, a
//!   `Debug` that never prints secrets), `Unresolved` and `Target`;
//! - `from_env`, `from_doc`, `resolve`, `has_plain_secret`, `deliver`.
//!
//! Depends on `secret_ref`, `render`, `deliver` and `model`; never on
//! `config` or `rules` (both depend on this module).

use crate::deliver::{Attempts, ChatTransport, RetryPolicy, classify_answer, with_retries};
use crate::model::Notification;
use crate::secret_ref::{ResolveError, SecretCache, SecretRef};
use serde::Deserialize;
use std::fmt;
use tokio::time::Instant;
use tollgate_core::config::{ConfigError, Env};
use tollgate_core::ports::{ParameterStore, SecretStore};
use tollgate_core::secret::Secret;

/// The registration list: `Variant => module`, one line per destination
/// type, in the order the environment variables are read.
macro_rules! destinations {
    ($($(#[$doc:meta])* $variant:ident => $module:ident,)*) => {
        $(pub mod $module;)*

        /// Destination types.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
        #[serde(rename_all = "lowercase")]
        pub enum DestinationKind {
            $($(#[$doc])* $variant,)*
        }

        impl DestinationKind {
            /// Lowercase name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $module::TYPE,)*
                }
            }
        }

        /// A destination as written in the rules document.
        #[derive(Clone, PartialEq, Eq, Deserialize)]
        #[serde(tag = "type", rename_all = "lowercase")]
        pub enum DestinationDoc {
            $($(#[$doc])* $variant($module::Doc),)*
        }

        impl fmt::Debug for DestinationDoc {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // URLs may be plain values (local use): each `Doc` redacts them.
                match self {
                    $(Self::$variant(d) => fmt::Debug::fmt(d, f),)*
                }
            }
        }

        /// A destination's secret references and settings, not resolved yet.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Unresolved {
            $($(#[$doc])* $variant($module::Unresolved),)*
        }

        /// Resolved target (secrets in [`Secret`]s).
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Target {
            $($(#[$doc])* $variant($module::Target),)*
        }

        impl Unresolved {
            /// The type.
            pub fn kind(&self) -> DestinationKind {
                match self {
                    $(Self::$variant(_) => DestinationKind::$variant,)*
                }
            }

            /// Whether a secret is given as a plain value (local use).
            pub fn has_plain_secret(&self) -> bool {
                match self {
                    $(Self::$variant(u) => $module::has_plain_secret(u),)*
                }
            }
        }

        impl Target {
            /// The type.
            pub fn kind(&self) -> DestinationKind {
                match self {
                    $(Self::$variant(_) => DestinationKind::$variant,)*
                }
            }
        }

        /// The destinations the environment variables create, in
        /// registration order, each named after its type.
        pub fn from_env(env: &impl Env) -> Result<Vec<DestinationSpec>, ConfigError> {
            let mut out = Vec::new();
            $(
                if let Some(u) = $module::from_env(env)? {
                    out.push(DestinationSpec {
                        name: $module::TYPE.to_owned(),
                        unresolved: Unresolved::$variant(u),
                        origin: $module::VAR.to_owned(),
                    });
                }
            )*
            Ok(out)
        }

        /// A destination declared in the rules document; `origin` is its
        /// path (`TOLLGATE_NOTIFY_RULES destinations.ops`).
        pub fn from_doc(
            name: &str,
            origin: String,
            doc: DestinationDoc,
        ) -> Result<DestinationSpec, ConfigError> {
            let unresolved = match doc {
                $(DestinationDoc::$variant(d) => Unresolved::$variant($module::from_doc(&origin, d)?),)*
            };
            Ok(DestinationSpec {
                name: name.to_owned(),
                unresolved,
                origin,
            })
        }

        /// Resolves a destination's secrets and validates them.
        pub async fn resolve(
            spec: &DestinationSpec,
            cache: &mut SecretCache,
            secrets: &impl SecretStore,
            params: &impl ParameterStore,
        ) -> Result<Target, ResolveError> {
            Ok(match &spec.unresolved {
                $(Unresolved::$variant(u) => Target::$variant(
                    $module::resolve(&spec.origin, u, cache, secrets, params).await?,
                ),)*
            })
        }

        /// Renders `n` for `dest` and delivers it, with retries until `deadline`.
        pub async fn deliver<H: ChatTransport, P: sns::TopicPublisher>(
            dest: &Destination,
            n: &Notification,
            deadline: Instant,
            via: &Via<'_, H, P>,
        ) -> Attempts {
            match &dest.target {
                $(Target::$variant(t) => $module::deliver(t, &dest.name, n, deadline, via).await,)*
            }
        }
    };
}

destinations! {
    /// Slack incoming webhook.
    Slack => slack,
    /// Teams Workflows webhook.
    Teams => teams,
    /// Generic JSON webhook.
    Webhook => webhook,
    /// SNS topic.
    Sns => sns,
    /// Amazon Q in chat (AWS Chatbot) custom notifications over SNS.
    AmazonQ => amazonq,
    /// Slack bot (Web API): one live message per run, with a thread.
    SlackBot => slackbot,
}

/// A destination before its secrets are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationSpec {
    /// Name used in routes.
    pub name: String,
    /// The type's own settings.
    pub unresolved: Unresolved,
    /// Where it was configured, for messages (`TOLLGATE_SLACK_WEBHOOK`,
    /// `TOLLGATE_NOTIFY_RULES destinations.ops`).
    pub origin: String,
}

impl DestinationSpec {
    /// The type.
    pub fn kind(&self) -> DestinationKind {
        self.unresolved.kind()
    }
}

/// A destination ready to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Name.
    pub name: String,
    /// Where to send.
    pub target: Target,
}

impl Destination {
    /// The type.
    pub fn kind(&self) -> DestinationKind {
        self.target.kind()
    }
}

/// The transports a delivery may use, and the retry tuning.
#[derive(Debug)]
pub struct Via<'a, H, P> {
    /// Webhook POSTs.
    pub http: &'a H,
    /// SNS publishes.
    pub sns: &'a P,
    /// Retry tuning.
    pub policy: &'a RetryPolicy,
    /// The runs' live-message records (Slack bot mode).
    pub releases: &'a dyn crate::release::ReleaseStore,
}

impl<H: ChatTransport, P> Via<'_, H, P> {
    /// POSTs `body` to `url` with retries; an answer is sorted by
    /// [`classify_answer`].
    pub async fn post(
        &self,
        name: &str,
        url: &Secret,
        headers: Vec<(&'static str, Secret)>,
        body: Vec<u8>,
        deadline: Instant,
    ) -> Attempts {
        with_retries(name, deadline, self.policy, |window| {
            let body = body.clone();
            let headers = &headers;
            async move {
                let answer = self.http.post_json(url, headers, body, window).await?;
                classify_answer(&answer)
            }
        })
        .await
    }
}

/// Where a webhook URL was configured: the variable itself, or the
/// document path's `.url`.
pub(crate) fn url_origin(origin: &str) -> String {
    if origin.starts_with("TOLLGATE_") && !origin.contains(' ') {
        origin.to_owned()
    } else {
        format!("{origin}.url")
    }
}

/// Resolves a webhook URL reference and checks it ([`check_url`]).
pub(crate) async fn resolve_url(
    origin: &str,
    url: &SecretRef,
    cache: &mut SecretCache,
    secrets: &impl SecretStore,
    params: &impl ParameterStore,
) -> Result<Secret, ResolveError> {
    let url_origin = url_origin(origin);
    let url = cache.get(&url_origin, url, secrets, params).await?;
    check_url(&url_origin, &url)?;
    Ok(url)
}

/// The URL must be https (http only for a loopback host, for local tests).
pub(crate) fn check_url(origin: &str, url: &Secret) -> Result<(), ConfigError> {
    let u = url.expose().trim();
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| {
            u.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        });
    let https = u.strip_prefix("https://").is_some_and(|rest| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        !host.is_empty() && !u.contains(char::is_whitespace)
    });
    if https || loopback {
        Ok(())
    } else {
        Err(ConfigError::invalid_secret(
            origin,
            "the value is not an https URL (a secret reference must start with secretsmanager: or ssm:, or be an ARN)",
            "https://hooks.slack.com/services/…, secretsmanager:<name>[#key] or ssm:<parameter>",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_match_the_document_tags() {
        for (kind, doc) in [
            (DestinationKind::Slack, r#"{"type": "slack", "url": "u"}"#),
            (DestinationKind::Teams, r#"{"type": "teams", "url": "u"}"#),
            (
                DestinationKind::Webhook,
                r#"{"type": "webhook", "url": "u"}"#,
            ),
            (
                DestinationKind::Sns,
                r#"{"type": "sns", "topic_arn": "arn:aws:sns:eu-west-1:1:t"}"#,
            ),
            (
                DestinationKind::AmazonQ,
                r#"{"type": "amazonq", "topic_arn": "arn:aws:sns:eu-west-1:1:q"}"#,
            ),
            (
                DestinationKind::SlackBot,
                r#"{"type": "slackbot", "token": "ssm:/slack/bot", "channel": "C0123456789"}"#,
            ),
        ] {
            let parsed: DestinationDoc = serde_json::from_str(doc).expect("parses");
            let spec = from_doc("x", "here".to_owned(), parsed).expect("valid");
            assert_eq!(spec.kind(), kind);
            assert_eq!(
                serde_json::to_value(kind).expect("serialises"),
                serde_json::json!(kind.as_str())
            );
        }
    }

    #[test]
    fn unknown_fields_in_a_destination_are_refused() {
        let err =
            serde_json::from_str::<DestinationDoc>(r#"{"type": "slack", "url": "u", "x": 1}"#)
                .expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `x`"), "{err}");
    }
}
