//! Container image references and the image policy.
//!
//! The policy turns the "tag images with the git SHA" practice into a gate:
//! mutable tags such as `latest` are rejected, and optionally only a digest
//! or a SHA-like tag is accepted, from allow-listed registries only.
//!
//! Owns the policy's type ([`ImagePolicy`]), its parsing from the
//! `"image_policy"` field (shared by `verify-artifact` and `ecs-deploy`) and
//! its judgement ([`violations`]).

use crate::params::{Fields, ParamError, shorten};
use std::fmt;

/// How strictly image references must be pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pin {
    /// Any tag that is not in the mutable list (`latest`, …), or a digest.
    #[default]
    ImmutableTag,
    /// A digest, or a tag holding a git SHA (7–64 hex characters).
    DigestOrShaTag,
    /// A digest (`@sha256:…`).
    Digest,
}

impl Pin {
    /// The spelling in `UserParameters`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ImmutableTag => "immutable-tag",
            Self::DigestOrShaTag => "digest-or-sha-tag",
            Self::Digest => "digest",
        }
    }
}

/// Tags rejected by default because they move.
pub const DEFAULT_MUTABLE_TAGS: [&str; 8] = [
    "latest", "main", "master", "develop", "dev", "stable", "edge", "nightly",
];

/// The image policy applied to every image reference found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePolicy {
    /// How images must be pinned.
    pub pin: Pin,
    /// Registries (or `registry/repository` prefixes, or `*.suffix` patterns)
    /// images may come from; empty allows any.
    pub allowed_registries: Vec<String>,
    /// Tags rejected unless pinned by digest (compared case-insensitively).
    /// Replaces [`DEFAULT_MUTABLE_TAGS`] when given; `latest` is rejected
    /// whatever the list says.
    pub mutable_tags: Vec<String>,
}

impl Default for ImagePolicy {
    fn default() -> Self {
        Self {
            pin: Pin::default(),
            allowed_registries: Vec::new(),
            mutable_tags: DEFAULT_MUTABLE_TAGS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }
}

/// Reads the `"image_policy"` field; the default policy when absent.
pub(crate) fn parse_image_policy(f: &mut Fields<'_>) -> Result<ImagePolicy, ParamError> {
    let Some(mut p) = f.opt_object("image_policy")? else {
        return Ok(ImagePolicy::default());
    };
    p.known(&["pin", "allowed_registries", "mutable_tags"])?;
    let mut policy = ImagePolicy::default();
    if let Some(pin) = p.opt_string("pin", "how images must be pinned")? {
        policy.pin = match pin.as_str() {
            "immutable-tag" => Pin::ImmutableTag,
            "digest-or-sha-tag" => Pin::DigestOrShaTag,
            "digest" => Pin::Digest,
            other => {
                return Err(ParamError::new(
                    &p.path("pin"),
                    format!(
                        "\"{}\" is not a pin mode; use \"immutable-tag\" (default: no mutable tags such as latest), \"digest-or-sha-tag\" or \"digest\"",
                        shorten(other)
                    ),
                    p.example,
                ));
            }
        };
    }
    if let Some(list) = p.opt_string_list("allowed_registries", "registry hosts")? {
        policy.allowed_registries = list;
    }
    if let Some(list) = p.opt_string_list("mutable_tags", "tags that are always rejected")? {
        policy.mutable_tags = list;
    }
    Ok(policy)
}

/// A parsed image reference: `[registry/]repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The reference as written.
    pub raw: String,
    /// Registry host (with port); `docker.io` when none is written.
    pub registry: String,
    /// Repository path inside the registry.
    pub repository: String,
    /// Tag, when written.
    pub tag: Option<String>,
    /// Digest (`sha256:…`), when written.
    pub digest: Option<String>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RefError(String);

impl ImageRef {
    /// Parses a reference the way Docker does.
    pub fn parse(raw: &str) -> Result<Self, RefError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(RefError("the image reference is empty".into()));
        }
        if text.chars().any(char::is_whitespace) {
            return Err(RefError("the image reference contains whitespace".into()));
        }
        let (name, digest) = match text.split_once('@') {
            Some((n, d)) => (n, Some(parse_digest(d)?)),
            None => (text, None),
        };
        let last_slash = name.rfind('/');
        let (path, tag) = match name.rfind(':') {
            Some(colon) if last_slash.is_none_or(|s| colon > s) => {
                (&name[..colon], Some(&name[colon + 1..]))
            }
            _ => (name, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag)?;
        }
        let (registry, repository) = match path.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), rest.to_owned())
            }
            _ => ("docker.io".to_owned(), path.to_owned()),
        };
        if repository.is_empty()
            || repository.split('/').any(str::is_empty)
            || !repository.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/')
            })
        {
            return Err(RefError(format!(
                "\"{repository}\" is not a valid repository name (lowercase letters, digits, . _ - and /)"
            )));
        }
        Ok(Self {
            raw: text.to_owned(),
            registry,
            repository,
            tag: tag.map(str::to_owned),
            digest,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn parse_digest(d: &str) -> Result<String, RefError> {
    let Some((algo, hex)) = d.split_once(':') else {
        return Err(RefError(format!(
            "the digest \"{d}\" must look like sha256:<64 hex characters>"
        )));
    };
    let ok = match algo {
        "sha256" => hex.len() == 64,
        "sha384" => hex.len() == 96,
        "sha512" => hex.len() == 128,
        _ => false,
    } && hex
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if ok {
        Ok(d.to_owned())
    } else {
        Err(RefError(format!(
            "the digest \"{d}\" must look like sha256:<64 lowercase hex characters>"
        )))
    }
}

fn validate_tag(tag: &str) -> Result<(), RefError> {
    let valid = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(RefError(format!(
            "\":{tag}\" is not a valid tag (letters, digits, _ . -, at most 128 characters)"
        )))
    }
}

/// True for tags that carry a git SHA: a part (split on `-`, `_`, `.`) of
/// 7–64 hex characters that has a digit or is at least 12 long (so words
/// such as `defaced` do not count).
pub fn is_sha_like(tag: &str) -> bool {
    tag.split(['-', '_', '.']).any(|part| {
        (7..=64).contains(&part.len())
            && part.chars().all(|c| c.is_ascii_hexdigit())
            && (part.len() >= 12 || part.chars().any(|c| c.is_ascii_digit()))
    })
}

/// Checks one reference against the policy. Returns every violation, each a
/// sentence saying what to change; empty when the image is acceptable.
pub fn violations(image: &str, policy: &ImagePolicy) -> Vec<String> {
    let r = match ImageRef::parse(image) {
        Ok(r) => r,
        Err(e) => return vec![format!("\"{image}\" is not a valid image reference: {e}")],
    };
    let mut out = Vec::new();
    if !policy.allowed_registries.is_empty()
        && !policy
            .allowed_registries
            .iter()
            .any(|allowed| registry_allowed(&r, allowed))
    {
        out.push(format!(
            "\"{image}\" comes from registry {}, which is not in image_policy.allowed_registries ({})",
            r.registry,
            policy.allowed_registries.join(", ")
        ));
    }
    if r.digest.is_some() {
        return out;
    }
    match &r.tag {
        None => out.push(format!(
            "\"{image}\" has no tag, which means :latest, a tag that moves; tag the image with the git SHA or pin it by digest (@sha256:…)"
        )),
        Some(tag)
            if tag.eq_ignore_ascii_case("latest")
                || policy
                    .mutable_tags
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(tag)) =>
        {
            out.push(format!(
                "\"{image}\" uses the mutable tag :{tag}; what it points to can change between this check and the deploy. Tag the image with the git SHA or pin it by digest (@sha256:…)"
            ))
        }
        Some(tag) => match policy.pin {
            Pin::ImmutableTag => {}
            Pin::DigestOrShaTag if is_sha_like(tag) => {}
            Pin::DigestOrShaTag => out.push(format!(
                "\"{image}\" has tag :{tag}, which is neither a digest nor a git SHA, as image_policy.pin \"digest-or-sha-tag\" requires; tag it with the commit SHA (e.g. :3f9c2ab) or pin it by digest"
            )),
            Pin::Digest => out.push(format!(
                "\"{image}\" is not pinned by digest, as image_policy.pin \"digest\" requires; use repository@sha256:…"
            )),
        },
    }
    out
}

fn registry_allowed(r: &ImageRef, allowed: &str) -> bool {
    let allowed = allowed.trim_end_matches('/');
    if let Some(suffix) = allowed.strip_prefix('*') {
        return r.registry.ends_with(suffix);
    }
    if allowed.contains('/') {
        let full = format!("{}/{}", r.registry, r.repository);
        return full == allowed || full.starts_with(&format!("{allowed}/"));
    }
    r.registry.eq_ignore_ascii_case(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::testing::assert_rejected;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn policy(pin: Pin) -> ImagePolicy {
        ImagePolicy {
            pin,
            ..ImagePolicy::default()
        }
    }

    #[test]
    fn references_are_parsed() {
        let r = ImageRef::parse("111111111111.dkr.ecr.us-east-1.amazonaws.com/web:3f9c2ab")
            .expect("valid");
        assert_eq!(r.registry, "111111111111.dkr.ecr.us-east-1.amazonaws.com");
        assert_eq!(r.repository, "web");
        assert_eq!(r.tag.as_deref(), Some("3f9c2ab"));
        assert_eq!(r.digest, None);

        let r = ImageRef::parse("localhost:5000/team/api").expect("valid");
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "team/api");
        assert_eq!(r.tag, None);

        let r = ImageRef::parse(&format!("nginx:1.27@{DIGEST}")).expect("valid");
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.tag.as_deref(), Some("1.27"));
        assert_eq!(r.digest.as_deref(), Some(DIGEST));
    }

    #[test]
    fn bad_references_are_rejected() {
        for bad in [
            "",
            "web app:1",
            "Web:1",
            "web:",
            "web:-x",
            "web@sha256:abc",
            "registry.example.com//web:1",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn latest_and_untagged_are_rejected_by_default() {
        let p = ImagePolicy::default();
        let v = violations(
            "111111111111.dkr.ecr.us-east-1.amazonaws.com/web:latest",
            &p,
        );
        assert_eq!(v.len(), 1);
        assert!(v[0].contains("mutable tag :latest"), "{}", v[0]);
        let v = violations("nginx", &p);
        assert!(v[0].contains("has no tag"), "{}", v[0]);
        assert!(violations("web:LATEST", &p)[0].contains("mutable"));
        assert!(violations("web:v1.4.2", &p).is_empty());
        // A digest pins even a moving tag.
        assert!(violations(&format!("web:latest@{DIGEST}"), &p).is_empty());
    }

    #[test]
    fn sha_tags_and_digests() {
        let p = policy(Pin::DigestOrShaTag);
        assert!(violations("web:3f9c2ab", &p).is_empty());
        assert!(violations("web:main-3f9c2ab1e0d4", &p).is_empty());
        assert!(violations(&format!("web@{DIGEST}"), &p).is_empty());
        let v = violations("web:v1.4.2", &p);
        assert!(v[0].contains("neither a digest nor a git SHA"), "{}", v[0]);
        assert!(!violations("web:defaced", &p).is_empty());

        let p = policy(Pin::Digest);
        assert!(violations("web:3f9c2ab", &p)[0].contains("not pinned by digest"));
        assert!(violations(&format!("web@{DIGEST}"), &p).is_empty());
    }

    #[test]
    fn registries_are_allow_listed() {
        let p = ImagePolicy {
            allowed_registries: vec![
                "111111111111.dkr.ecr.us-east-1.amazonaws.com".into(),
                "ghcr.io/acme".into(),
                "*.dkr.ecr.eu-west-1.amazonaws.com".into(),
            ],
            ..ImagePolicy::default()
        };
        assert!(
            violations(
                "111111111111.dkr.ecr.us-east-1.amazonaws.com/web:1a2b3c4",
                &p
            )
            .is_empty()
        );
        assert!(violations("ghcr.io/acme/web:1a2b3c4", &p).is_empty());
        assert!(
            violations(
                "222222222222.dkr.ecr.eu-west-1.amazonaws.com/web:1a2b3c4",
                &p
            )
            .is_empty()
        );
        let v = violations("ghcr.io/evil/web:1a2b3c4", &p);
        assert!(
            v[0].contains("not in image_policy.allowed_registries"),
            "{}",
            v[0]
        );
        let v = violations("nginx:latest", &p);
        assert_eq!(v.len(), 2, "{v:?}");
    }

    #[test]
    fn custom_mutable_tags() {
        let p = ImagePolicy {
            mutable_tags: vec!["prod".into()],
            ..ImagePolicy::default()
        };
        assert!(!violations("web:prod", &p).is_empty());
        assert!(violations("web:main", &p).is_empty());
        // latest is always rejected, whatever the list says.
        assert!(!violations("web:latest", &p).is_empty());
    }

    #[test]
    fn malformed_policies_name_the_field() {
        assert_rejected(&[
            (
                r#"{"action":"verify-artifact","image_policy":{"pin":"always"}}"#,
                "image_policy.pin",
                "not a pin mode",
            ),
            (
                r#"{"action":"verify-artifact","image_policy":{"allowed_registry":["x"]}}"#,
                "image_policy.allowed_registry",
                "did you mean \"allowed_registries\"",
            ),
            (
                r#"{"action":"verify-artifact","image_policy":"strict"}"#,
                "image_policy",
                "must be an object",
            ),
        ]);
    }
}
