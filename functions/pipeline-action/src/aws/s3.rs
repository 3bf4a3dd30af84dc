//! S3 adapter for pipeline artifacts: implements [`ArtifactStore`].
//!
//! Every call builds a client from the job's `artifactCredentials` (the
//! function's own role never touches the artifact bucket), on top of the
//! shared SDK configuration (region, endpoint override, HTTP client). Uploads
//! use SSE-KMS with the job's `encryptionKey` when the job names one.
//! With an endpoint override (local tests) the client uses path-style
//! addressing, since `bucket.127.0.0.1` cannot resolve.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use tollgate_aws::{SdkConfig, classify};
use tollgate_pipeline::artifact::{ArtifactError, ArtifactStore};
use tollgate_report::ReportError;
use tollgate_report::events::codepipeline::{ArtifactCredentials, EncryptionKey, S3Location};

/// Codes meaning the credentials themselves were refused.
const BAD_CREDENTIAL_CODES: &[&str] = &[
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidToken",
    "TokenRefreshRequired",
    "SignatureDoesNotMatch",
];

/// Artifact access through the job's credentials.
#[derive(Debug, Clone)]
pub struct S3Artifacts {
    sdk: SdkConfig,
    path_style: bool,
}

impl S3Artifacts {
    /// Uses the shared configuration; path-style addressing when an endpoint
    /// override (`AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_S3`) is set.
    pub fn new(sdk: &SdkConfig) -> Self {
        let path_style =
            sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        Self {
            sdk: sdk.clone(),
            path_style,
        }
    }

    fn client(&self, credentials: &ArtifactCredentials) -> Client {
        // No expiry is passed: S3 itself judges the session, and an expired
        // one comes back as ExpiredToken with a clear message.
        let creds = Credentials::new(
            credentials.access_key_id.expose(),
            credentials.secret_access_key.expose(),
            credentials
                .session_token
                .as_ref()
                .map(|t| t.expose().to_owned()),
            None,
            "codepipeline-artifact-credentials",
        );
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk)
            .credentials_provider(SharedCredentialsProvider::new(creds))
            .force_path_style(self.path_style)
            .build();
        Client::from_conf(conf)
    }
}

/// Removes any trace of the credentials from a message.
fn scrub(text: &str, credentials: &ArtifactCredentials) -> String {
    let mut out = text.to_owned();
    let secrets = [
        Some(credentials.access_key_id.expose()),
        Some(credentials.secret_access_key.expose()),
        credentials.session_token.as_ref().map(|t| t.expose()),
    ];
    for s in secrets.into_iter().flatten().filter(|s| s.len() >= 4) {
        out = out.replace(s, "<redacted>");
    }
    out
}

struct Target<'a> {
    artifact: &'a str,
    location: &'a S3Location,
    credentials: &'a ArtifactCredentials,
    kms_key: Option<&'a str>,
}

fn to_artifact_error<E>(err: SdkError<E, HttpResponse>, t: &Target<'_>) -> ArtifactError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = match &err {
        SdkError::ServiceError(ctx) => Some(ctx.raw().status().as_u16()),
        SdkError::ResponseError(ctx) => Some(ctx.raw().status().as_u16()),
        _ => None,
    };
    let artifact = t.artifact.to_owned();
    let bucket = t.location.bucket_name.clone();
    let key = t.location.object_key.clone();
    let class = classify(err, &[]);
    let detail = |code: &str, message: &str| {
        let text = match (code.is_empty(), message.is_empty()) {
            (false, false) => format!("{code}: {message}"),
            (false, true) => code.to_owned(),
            (true, false) => message.to_owned(),
            (true, true) => format!("HTTP {}", status.unwrap_or(0)),
        };
        scrub(&text, t.credentials)
    };
    match class {
        ReportError::Throttled { code, message } | ReportError::Server { code, message, .. } => {
            ArtifactError::Unavailable {
                artifact,
                bucket,
                key,
                detail: detail(&code, &message),
            }
        }
        ReportError::Transport(m) => ArtifactError::Unavailable {
            artifact,
            bucket,
            key,
            detail: scrub(&m, t.credentials),
        },
        ReportError::Timeout(d) => ArtifactError::Unavailable {
            artifact,
            bucket,
            key,
            detail: format!("no answer within {d:?}"),
        },
        ReportError::AccessDenied { code, message }
        | ReportError::Rejected { code, message }
        | ReportError::AlreadyReported { code, message } => {
            let text = detail(&code, &message);
            if code == "NoSuchKey" || code == "NoSuchBucket" || status == Some(404) {
                ArtifactError::NotFound {
                    artifact,
                    bucket,
                    key,
                    detail: text,
                }
            } else if BAD_CREDENTIAL_CODES.contains(&code.as_str()) {
                ArtifactError::BadCredentials {
                    bucket,
                    key,
                    detail: text,
                }
            } else if code.starts_with("KMS") || message.to_ascii_lowercase().contains("kms") {
                ArtifactError::Kms {
                    artifact,
                    bucket,
                    key,
                    detail: text,
                    key_hint: t.kms_key.map(|k| format!(" ({k})")).unwrap_or_default(),
                }
            } else if code == "AccessDenied" || status == Some(403) {
                ArtifactError::Denied {
                    artifact,
                    bucket,
                    key,
                    detail: text,
                }
            } else {
                ArtifactError::Other {
                    artifact,
                    bucket,
                    key,
                    detail: text,
                }
            }
        }
    }
}

impl ArtifactStore for S3Artifacts {
    async fn get(
        &self,
        artifact: &str,
        location: &S3Location,
        credentials: &ArtifactCredentials,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ArtifactError> {
        let t = Target {
            artifact,
            location,
            credentials,
            kms_key: None,
        };
        let out = self
            .client(credentials)
            .get_object()
            .bucket(&location.bucket_name)
            .key(&location.object_key)
            .send()
            .await
            .map_err(|e| to_artifact_error(e, &t))?;
        let too_large = |size: u64| ArtifactError::TooLarge {
            artifact: artifact.to_owned(),
            bucket: location.bucket_name.clone(),
            key: location.object_key.clone(),
            size,
            max: max_bytes,
        };
        let announced = out.content_length().and_then(|l| u64::try_from(l).ok());
        if let Some(len) = announced
            && len > max_bytes
        {
            return Err(too_large(len));
        }
        // Streamed into one buffer sized from Content-Length: the artifact is
        // held once (collecting the body and then copying it out held it two
        // or three times, and a 49 MiB artifact peaked at 112–133 MiB, near
        // the 128 MB the template gives the function). The limit is enforced
        // while reading, so a body longer than announced cannot grow past it.
        let capacity = usize::try_from(announced.unwrap_or(0).min(max_bytes)).unwrap_or(0);
        let mut bytes = Vec::with_capacity(capacity);
        let mut body = out.body;
        loop {
            let chunk = body
                .try_next()
                .await
                .map_err(|e| ArtifactError::Unavailable {
                    artifact: artifact.to_owned(),
                    bucket: location.bucket_name.clone(),
                    key: location.object_key.clone(),
                    detail: format!("the download broke off: {e}"),
                })?;
            let Some(chunk) = chunk else { break };
            let size = bytes.len() as u64 + chunk.len() as u64;
            if size > max_bytes {
                return Err(too_large(size));
            }
            bytes.extend_from_slice(&chunk);
        }
        tracing::debug!(artifact, bytes = bytes.len(), "artifact downloaded");
        Ok(bytes)
    }

    async fn put(
        &self,
        artifact: &str,
        location: &S3Location,
        credentials: &ArtifactCredentials,
        body: Vec<u8>,
        encryption_key: Option<&EncryptionKey>,
    ) -> Result<(), ArtifactError> {
        let kms = encryption_key.filter(|k| k.kind.eq_ignore_ascii_case("KMS"));
        let t = Target {
            artifact,
            location,
            credentials,
            kms_key: kms.map(|k| k.id.as_str()),
        };
        let mut request = self
            .client(credentials)
            .put_object()
            .bucket(&location.bucket_name)
            .key(&location.object_key)
            .content_type("application/zip")
            .body(ByteStream::from(body));
        if let Some(key) = kms {
            request = request
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(&key.id);
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| to_artifact_error(e, &t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::secret::Secret;
    use tollgate_test_support::http::{Reply, Request, Stub};

    const FUNCTION_KEY: &str = "AKIAFUNCTIONROLE0001";

    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        authorization: String,
        sse: Option<String>,
        sse_key: Option<String>,
        body_len: usize,
    }

    impl From<&Request> for Seen {
        fn from(r: &Request) -> Self {
            let header = |n: &str| r.header(n).map(str::to_owned);
            Seen {
                method: r.method.clone(),
                path: r.path.clone(),
                authorization: header("authorization").unwrap_or_default(),
                sse: header("x-amz-server-side-encryption"),
                sse_key: header("x-amz-server-side-encryption-aws-kms-key-id"),
                body_len: r.body.len(),
            }
        }
    }

    /// A loopback "S3" (the shared stub) answering every request with
    /// `status` and `body`: its URL and the stub, which records requests.
    async fn fake_s3(status: u16, body: &'static str) -> (String, Stub) {
        fake_s3_with(status, body, false).await
    }

    /// `chunked`: the body is sent with `Transfer-Encoding: chunked`, so no
    /// `Content-Length` announces its size.
    async fn fake_s3_with(status: u16, body: &'static str, chunked: bool) -> (String, Stub) {
        let content_type = if status == 200 {
            "application/octet-stream"
        } else {
            "application/xml"
        };
        let mut reply = Reply::status(status)
            .header("content-type", content_type)
            .body(body);
        if chunked {
            reply = reply.header("transfer-encoding", "chunked");
        }
        let stub = Stub::replying(reply).await;
        (stub.url(""), stub)
    }

    async fn store(url: &str) -> S3Artifacts {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                FUNCTION_KEY,
                "function-secret",
                None,
                None,
                "test",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        S3Artifacts::new(&sdk)
    }

    fn creds() -> ArtifactCredentials {
        ArtifactCredentials {
            access_key_id: Secret::new("ASIAJOBARTIFACTS0001"),
            secret_access_key: Secret::new("job-secret-access-key"),
            session_token: Some(Secret::new("job-session-token-value")),
            expiration_time: None,
        }
    }

    fn loc() -> S3Location {
        S3Location {
            bucket_name: "codepipeline-us-east-1-111111111111".into(),
            object_key: "web-pipeline/BuildOutpu/Xa9bQ2e".into(),
        }
    }

    #[tokio::test]
    async fn downloads_are_signed_with_the_job_credentials_path_style() {
        let (url, s3) = fake_s3(200, "zipbytes").await;
        let body = store(&url)
            .await
            .get("BuildOutput", &loc(), &creds(), 1024)
            .await
            .expect("downloaded");
        assert_eq!(body, b"zipbytes");
        let seen = Seen::from(&s3.requests()[0]);
        assert_eq!(seen.method, "GET");
        assert_eq!(
            seen.path,
            "/codepipeline-us-east-1-111111111111/web-pipeline/BuildOutpu/Xa9bQ2e"
        );
        assert!(
            seen.authorization
                .contains("Credential=ASIAJOBARTIFACTS0001/"),
            "{}",
            seen.authorization
        );
        assert!(!seen.authorization.contains(FUNCTION_KEY));
    }

    #[tokio::test]
    async fn uploads_use_sse_kms_with_the_job_key() {
        let (url, s3) = fake_s3(200, "").await;
        let key = EncryptionKey {
            id: "arn:aws:kms:us-east-1:111111111111:key/1234".into(),
            kind: "KMS".into(),
        };
        store(&url)
            .await
            .put("Verified", &loc(), &creds(), b"zip".to_vec(), Some(&key))
            .await
            .expect("uploaded");
        let seen = Seen::from(&s3.requests()[0]);
        assert_eq!(seen.method, "PUT");
        assert_eq!(seen.sse.as_deref(), Some("aws:kms"));
        assert_eq!(
            seen.sse_key.as_deref(),
            Some("arn:aws:kms:us-east-1:111111111111:key/1234")
        );
        assert!(
            seen.authorization
                .contains("Credential=ASIAJOBARTIFACTS0001/")
        );
        assert_eq!(seen.body_len, 3);
    }

    #[tokio::test]
    async fn s3_errors_name_bucket_and_key_without_secrets() {
        let (url, _s3) = fake_s3(404, "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>").await;
        let err = store(&url)
            .await
            .get("BuildOutput", &loc(), &creds(), 1024)
            .await
            .expect_err("missing");
        assert!(matches!(err, ArtifactError::NotFound { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains(
                "s3://codepipeline-us-east-1-111111111111/web-pipeline/BuildOutpu/Xa9bQ2e"
            ),
            "{text}"
        );
        assert!(text.contains("NoSuchKey"), "{text}");

        let (url, _s3) = fake_s3(
            403,
            "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
        )
        .await;
        let err = store(&url)
            .await
            .get("BuildOutput", &loc(), &creds(), 1024)
            .await
            .expect_err("denied");
        assert!(matches!(err, ArtifactError::Denied { .. }), "{err:?}");

        let (url, _s3) = fake_s3(403, "<Error><Code>AccessDenied</Code><Message>User is not authorized to perform: kms:Decrypt</Message></Error>").await;
        let err = store(&url)
            .await
            .get("BuildOutput", &loc(), &creds(), 1024)
            .await
            .expect_err("kms");
        assert!(matches!(err, ArtifactError::Kms { .. }), "{err:?}");

        let (url, _s3) = fake_s3(400, "<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>").await;
        let err = store(&url)
            .await
            .get("BuildOutput", &loc(), &creds(), 1024)
            .await
            .expect_err("expired");
        assert!(
            matches!(err, ArtifactError::BadCredentials { .. }),
            "{err:?}"
        );
        for e in [err.to_string(), format!("{err:?}")] {
            for secret in [
                "job-secret-access-key",
                "job-session-token-value",
                "ASIAJOBARTIFACTS0001",
            ] {
                assert!(!e.contains(secret), "{e}");
            }
        }
    }

    #[tokio::test]
    async fn oversized_objects_are_refused() {
        let (url, _s3) = fake_s3(200, "0123456789").await;
        let err = store(&url)
            .await
            .get("BuildOutput", &loc(), &creds(), 4)
            .await
            .expect_err("too big");
        assert!(
            matches!(
                err,
                ArtifactError::TooLarge {
                    size: 10,
                    max: 4,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn the_limit_holds_without_a_content_length() {
        let (url, _s3) = fake_s3_with(200, "0123456789", true).await;
        let err = store(&url)
            .await
            .get("BuildOutput", &loc(), &creds(), 4)
            .await
            .expect_err("too big");
        assert!(
            matches!(err, ArtifactError::TooLarge { max: 4, .. }),
            "{err:?}"
        );
        let (url, _s3) = fake_s3_with(200, "0123456789", true).await;
        let body = store(&url)
            .await
            .get("BuildOutput", &loc(), &creds(), 10)
            .await
            .expect("exactly at the limit");
        assert_eq!(body, b"0123456789");
    }

    #[test]
    fn scrub_removes_every_credential() {
        let creds = ArtifactCredentials {
            access_key_id: Secret::new("ASIAEXAMPLE"),
            secret_access_key: Secret::new("s3cr3tValue"),
            session_token: Some(Secret::new("TOKENVALUE")),
            expiration_time: None,
        };
        let text = scrub(
            "key ASIAEXAMPLE secret s3cr3tValue token TOKENVALUE",
            &creds,
        );
        assert_eq!(text, "key <redacted> secret <redacted> token <redacted>");
    }
}
