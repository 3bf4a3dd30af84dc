//! Slack's request signatures (v0): `X-Slack-Signature: v0=<hex>` where
//! `<hex>` is HMAC-SHA256, keyed with the app's signing secret, over
//! `v0:{X-Slack-Request-Timestamp}:{raw body}`. The comparison is constant
//! time (`hmac`'s `verify_slice`), and a timestamp more than
//! [`MAX_SKEW_SECS`] away from now, in either direction, is refused, so a
//! captured request cannot be replayed later.
//!
//! Every refusal is a [`SignatureError`], which the endpoint answers with
//! 401 and logs without the body or the header values.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tollgate_core::secret::Secret;

/// Largest distance between the request's timestamp and now (5 minutes).
pub const MAX_SKEW_SECS: i64 = 300;
/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-slack-signature";
/// The timestamp header.
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";

/// What to check when genuine Slack requests are refused (logged with a
/// refusal, never sent back).
pub const SIGNATURE_ERROR_HINT: &str = "if Slack's own clicks are refused, check that \
    TOLLGATE_SLACK_SIGNING_SECRET names the app's Signing Secret (Basic Information › App \
    Credentials) and that the function's clock is right";

type HmacSha256 = Hmac<Sha256>;

/// Why a request's signature was refused. The text names what was wrong,
/// never a header value or the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header is missing.
    #[error("the request is not signed (no {0} header)")]
    Missing(&'static str),
    /// The timestamp is not a number of seconds.
    #[error("the request's timestamp is not a Unix time")]
    BadTimestamp,
    /// Too old or too far in the future.
    #[error(
        "the request's timestamp is {0} s away from now (at most {MAX_SKEW_SECS} s): a stale or replayed request"
    )]
    Stale(i64),
    /// Not `v0=` followed by 64 hex digits.
    #[error("the signature is not a Slack v0 signature")]
    BadFormat,
    /// The HMAC does not match.
    #[error(
        "the signature does not match the body (wrong signing secret, or the body was changed)"
    )]
    Mismatch,
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

fn mac(secret: &Secret, timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

/// Checks a request: the timestamp within [`MAX_SKEW_SECS`] of `now`
/// (Unix seconds), then the signature over the raw body, in constant time.
pub fn verify(
    secret: &Secret,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?;
    let signature = signature.ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let skew = now.saturating_sub(ts);
    if skew.saturating_abs() > MAX_SKEW_SECS {
        return Err(SignatureError::Stale(skew));
    }
    let given = signature
        .trim()
        .strip_prefix("v0=")
        .and_then(decode_hex)
        .ok_or(SignatureError::BadFormat)?;
    mac(secret, timestamp.trim(), body)
        .verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

/// The `X-Slack-Signature` value for a body (Slack's side: local stand-ins
/// and tests sign their requests with it).
pub fn sign(secret: &Secret, timestamp: &str, body: &[u8]) -> String {
    let bytes = mac(secret, timestamp, body).finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's documented example ("Verifying requests from Slack"): its
    // signing secret, timestamp, slash-command body and resulting signature.
    const DOC_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const DOC_TIMESTAMP: &str = "1531420618";
    const DOC_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const DOC_SIGNATURE: &str =
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn doc_secret() -> Secret {
        Secret::new(DOC_SECRET)
    }

    #[test]
    fn slacks_documented_example_verifies() {
        assert_eq!(
            sign(&doc_secret(), DOC_TIMESTAMP, DOC_BODY.as_bytes()),
            DOC_SIGNATURE
        );
        let now = 1_531_420_618 + 30;
        assert_eq!(
            verify(
                &doc_secret(),
                Some(DOC_TIMESTAMP),
                Some(DOC_SIGNATURE),
                DOC_BODY.as_bytes(),
                now
            ),
            Ok(())
        );
        // Upper-case hex is the same signature.
        let upper = format!("v0={}", DOC_SIGNATURE[3..].to_uppercase());
        assert_eq!(
            verify(
                &doc_secret(),
                Some(DOC_TIMESTAMP),
                Some(&upper),
                DOC_BODY.as_bytes(),
                now
            ),
            Ok(())
        );
    }

    #[test]
    fn skew_is_refused_both_ways_at_five_minutes() {
        let ts = 1_531_420_618;
        let check = |now: i64| {
            verify(
                &doc_secret(),
                Some(DOC_TIMESTAMP),
                Some(DOC_SIGNATURE),
                DOC_BODY.as_bytes(),
                now,
            )
        };
        assert_eq!(check(ts + 300), Ok(()));
        assert_eq!(check(ts - 300), Ok(()));
        assert_eq!(check(ts + 301), Err(SignatureError::Stale(301)));
        assert_eq!(check(ts - 301), Err(SignatureError::Stale(-301)));
        // A day later: a replay.
        assert!(matches!(check(ts + 86_400), Err(SignatureError::Stale(_))));
    }

    #[test]
    fn tampered_bodies_wrong_secrets_and_odd_headers_are_refused() {
        let now = 1_531_420_618;
        let body = DOC_BODY.replace("roadrunner", "coyote");
        assert_eq!(
            verify(
                &doc_secret(),
                Some(DOC_TIMESTAMP),
                Some(DOC_SIGNATURE),
                body.as_bytes(),
                now
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                &Secret::new("another-secret"),
                Some(DOC_TIMESTAMP),
                Some(DOC_SIGNATURE),
                DOC_BODY.as_bytes(),
                now
            ),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is part of what is signed.
        assert_eq!(
            verify(
                &doc_secret(),
                Some("1531420619"),
                Some(DOC_SIGNATURE),
                DOC_BODY.as_bytes(),
                now
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                &doc_secret(),
                None,
                Some(DOC_SIGNATURE),
                DOC_BODY.as_bytes(),
                now
            ),
            Err(SignatureError::Missing(TIMESTAMP_HEADER))
        );
        assert_eq!(
            verify(
                &doc_secret(),
                Some(DOC_TIMESTAMP),
                None,
                DOC_BODY.as_bytes(),
                now
            ),
            Err(SignatureError::Missing(SIGNATURE_HEADER))
        );
        assert_eq!(
            verify(
                &doc_secret(),
                Some("soon"),
                Some(DOC_SIGNATURE),
                DOC_BODY.as_bytes(),
                now
            ),
            Err(SignatureError::BadTimestamp)
        );
        for bad in [
            "v1=a2114d57",
            "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "v0=zz",
            "v0=",
        ] {
            assert_eq!(
                verify(
                    &doc_secret(),
                    Some(DOC_TIMESTAMP),
                    Some(bad),
                    DOC_BODY.as_bytes(),
                    now
                ),
                Err(SignatureError::BadFormat),
                "{bad}"
            );
        }
        // No message quotes what it was given.
        let e = SignatureError::Mismatch.to_string();
        assert!(!e.contains("a2114d57") && !e.contains(DOC_SECRET), "{e}");
    }
}
