//! Secret references (`secretsmanager:…`, `ssm:…`, ARNs, plain values) and
//! their resolution: the one syntax is [`tollgate_core::secret_ref`], shared
//! with the check spec's `variables:`; re-exported here for the notifier's
//! destinations.

pub use tollgate_core::secret_ref::{
    ResolveError, SecretCache, SecretRef, is_arn_of, parse_secret_ref,
};
