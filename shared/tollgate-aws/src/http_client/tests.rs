//! The SDK's requests through [`ReqwestHttpClient`], against local servers:
//! plain HTTP (as every integration test runs), HTTPS with a private CA,
//! and the behaviours the SDK's own client had (no redirects, its read
//! timeout, retryable transport errors).

use super::*;
use aws_sdk_ssm::config::{Credentials, Region};
use aws_smithy_types::error::display::DisplayErrorContext;
use http_body_util::Full;
use hyper::body::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};

const PARAMETER: &str =
    r#"{"Parameter":{"Name":"x","Type":"String","Value":"from the stand-in","Version":1}}"#;

/// What the stand-in answers: status, extra header, delay before the head.
#[derive(Clone, Copy)]
struct Answer {
    status: u16,
    location: Option<&'static str>,
    delay: Duration,
}

const OK: Answer = Answer {
    status: 200,
    location: None,
    delay: Duration::ZERO,
};

/// Serves `answer` on 127.0.0.1, over TLS when `tls` is given; counts
/// requests.
async fn serve(answer: Answer, tls: Option<Arc<rustls::ServerConfig>>) -> (u16, Arc<AtomicUsize>) {
    let (port, hits, _) = serve_each(vec![answer], tls).await;
    (port, hits)
}

/// Serves the n-th request the n-th answer (the last one from then on);
/// counts requests and accepted connections.
async fn serve_each(
    answers: Vec<Answer>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = Arc::new(AtomicUsize::new(0));
    let accepts = Arc::new(AtomicUsize::new(0));
    let (counted, accepted) = (hits.clone(), accepts.clone());
    let answers = Arc::new(answers);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            accepted.fetch_add(1, Ordering::SeqCst);
            let hits = counted.clone();
            let tls = tls.clone();
            let answers = answers.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let n = hits.fetch_add(1, Ordering::SeqCst);
                    let answer = answers[n.min(answers.len() - 1)];
                    async move {
                        tokio::time::sleep(answer.delay).await;
                        let mut response = hyper::Response::builder()
                            .status(answer.status)
                            .header("content-type", "application/x-amz-json-1.1");
                        if let Some(location) = answer.location {
                            response = response.header("location", location);
                        }
                        response.body(Full::new(Bytes::from_static(PARAMETER.as_bytes())))
                    }
                });
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    None => {
                        let _ = http
                            .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                            .await;
                    }
                    Some(config) => {
                        let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
                        else {
                            return;
                        };
                        let _ = http
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    (port, hits, accepts)
}

async fn ssm(
    endpoint: String,
    http: ReqwestHttpClient,
    read_timeout: Option<Duration>,
) -> aws_sdk_ssm::Client {
    ssm_retrying(
        endpoint,
        http,
        read_timeout,
        aws_config::retry::RetryConfig::disabled(),
    )
    .await
}

async fn ssm_retrying(
    endpoint: String,
    http: ReqwestHttpClient,
    read_timeout: Option<Duration>,
    retry: aws_config::retry::RetryConfig,
) -> aws_sdk_ssm::Client {
    let mut timeouts = aws_config::timeout::TimeoutConfig::builder();
    if let Some(limit) = read_timeout {
        timeouts = timeouts.read_timeout(limit);
    }
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(SharedHttpClient::new(http))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "test", None, None, "test"))
        .endpoint_url(endpoint)
        .retry_config(retry)
        .timeout_config(timeouts.build())
        .load()
        .await;
    aws_sdk_ssm::Client::new(&sdk)
}

/// The one request every test sends.
async fn get(
    client: &aws_sdk_ssm::Client,
) -> Result<
    aws_sdk_ssm::operation::get_parameter::GetParameterOutput,
    aws_smithy_runtime_api::client::result::SdkError<
        aws_sdk_ssm::operation::get_parameter::GetParameterError,
        HttpResponse,
    >,
> {
    client.get_parameter().name("x").send().await
}

fn dispatch_failure<E>(
    err: &aws_smithy_runtime_api::client::result::SdkError<E, HttpResponse>,
) -> Option<&ConnectorError> {
    match err {
        aws_smithy_runtime_api::client::result::SdkError::DispatchFailure(f) => {
            f.as_connector_error()
        }
        _ => None,
    }
}

#[tokio::test]
async fn sdk_requests_go_through_reqwest_and_build_it_on_first_use() {
    let (port, hits) = serve(OK, None).await;
    let http = ReqwestHttpClient::new();
    let client = ssm(format!("http://127.0.0.1:{port}"), http.clone(), None).await;
    assert_eq!(
        http.built(),
        0,
        "constructing clients builds no HTTP client"
    );
    let got = get(&client).await.expect("answered");
    assert_eq!(
        got.parameter().and_then(|p| p.value()),
        Some("from the stand-in")
    );
    let _ = get(&client).await.expect("again");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert_eq!(http.built(), 1, "one client, reused");
}

#[tokio::test]
async fn redirects_are_the_sdks_to_read_not_followed() {
    let (port, hits) = serve(
        Answer {
            status: 301,
            location: Some("http://127.0.0.1:9/elsewhere"),
            ..OK
        },
        None,
    )
    .await;
    let client = ssm(
        format!("http://127.0.0.1:{port}"),
        ReqwestHttpClient::new(),
        None,
    )
    .await;
    let err = get(&client).await.expect_err("a 301");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(301));
}

#[tokio::test]
async fn the_read_timeout_is_a_timeout_and_a_refused_connection_is_io() {
    let (port, _) = serve(
        Answer {
            delay: Duration::from_secs(5),
            ..OK
        },
        None,
    )
    .await;
    let client = ssm(
        format!("http://127.0.0.1:{port}"),
        ReqwestHttpClient::new(),
        Some(Duration::from_millis(200)),
    )
    .await;
    let err = get(&client).await.expect_err("too slow");
    let failure = dispatch_failure(&err).expect("a dispatch failure");
    assert!(failure.is_timeout(), "{}", DisplayErrorContext(&err));

    // Port 9 (discard): nothing listens, the connection is refused. The
    // retry strategy treats I/O errors as transient.
    let client = ssm("http://127.0.0.1:9".into(), ReqwestHttpClient::new(), None).await;
    let err = get(&client).await.expect_err("refused");
    let failure = dispatch_failure(&err).expect("a dispatch failure");
    assert!(failure.is_io(), "{}", DisplayErrorContext(&err));
    assert!(
        !DisplayErrorContext(&err).to_string().contains("http://"),
        "no URL in the error: {}",
        DisplayErrorContext(&err)
    );
}

/// A private CA (its certificate as PEM) and a server with a `localhost`
/// certificate it signed.
fn private_ca() -> (String, Arc<rustls::ServerConfig>) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Tollgate test CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf");
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).expect("key der");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .expect("server config");
    (ca_cert.pem(), Arc::new(server))
}

#[tokio::test]
async fn https_verifies_against_the_configured_roots() {
    let (ca, server) = private_ca();
    let (port, hits) = serve(OK, Some(server)).await;
    let endpoint = format!("https://localhost:{port}");

    // Trusting the private CA from a PEM file, as SSL_CERT_FILE adds it:
    // answered.
    let file = std::env::temp_dir().join(format!("tollgate-private-ca-{}.pem", std::process::id()));
    std::fs::write(&file, ca).expect("ca file");
    let (store, problem) = tollgate_core::tls::roots(Some(&file));
    let _ = std::fs::remove_file(&file);
    assert_eq!(problem, None);
    let config = tollgate_core::tls::client_config(store).expect("config");
    let trusting = ReqwestHttpClient::with_tls(move || Ok(config.clone()));
    let got = get(&ssm(endpoint.clone(), trusting, None).await)
        .await
        .expect("verified");
    assert!(got.parameter().is_some());
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // The built-in roots alone: the handshake fails, nothing is sent.
    let built_in = || {
        tollgate_core::tls::client_config(tollgate_core::tls::roots(None).0)
            .map_err(|e| e.to_string())
    };
    let err = get(&ssm(endpoint, ReqwestHttpClient::with_tls(built_in), None).await)
        .await
        .expect_err("unknown issuer");
    let text = DisplayErrorContext(&err).to_string();
    assert!(dispatch_failure(&err).is_some_and(|f| f.is_io()), "{text}");
    assert!(text.contains("certificate"), "{text}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_client_that_cannot_be_built_fails_each_request_with_why() {
    let broken = ReqwestHttpClient::with_tls(|| Err("no provider".to_owned()));
    let err = get(&ssm("http://127.0.0.1:9".into(), broken, None).await)
        .await
        .expect_err("no client");
    assert!(
        DisplayErrorContext(&err)
            .to_string()
            .contains("no provider"),
        "{}",
        DisplayErrorContext(&err)
    );
}

#[tokio::test]
async fn a_transient_error_poisons_the_connection_and_the_retry_connects_afresh() {
    let (port, hits, accepts) = serve_each(vec![Answer { status: 503, ..OK }, OK], None).await;
    let retry = aws_config::retry::RetryConfig::standard()
        .with_max_attempts(2)
        .with_initial_backoff(Duration::from_millis(10));
    let http = ReqwestHttpClient::new();
    let client = ssm_retrying(
        format!("http://127.0.0.1:{port}"),
        http.clone(),
        None,
        retry,
    )
    .await;
    get(&client).await.expect("the retry is answered");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert_eq!(
        accepts.load(Ordering::SeqCst),
        2,
        "the 503's connection was not reused"
    );

    // Without a transient error the connection is kept.
    let (port, _, accepts) = serve_each(vec![OK], None).await;
    let client = ssm(
        format!("http://127.0.0.1:{port}"),
        ReqwestHttpClient::new(),
        None,
    )
    .await;
    for _ in 0..2 {
        get(&client).await.expect("answered");
    }
    assert_eq!(
        accepts.load(Ordering::SeqCst),
        1,
        "one keep-alive connection"
    );
}

#[test]
fn a_path_the_url_parser_would_rewrite_is_refused_not_sent() {
    let request = |uri: &str| {
        http::Request::builder()
            .uri(uri)
            .body(SdkBody::empty())
            .expect("request")
    };
    assert!(
        sendable(request(
            "http://127.0.0.1:1/bucket/key%2Fwith/escapes?list-type=2&prefix=a%2Fb"
        ))
        .is_ok()
    );
    for uri in [
        "http://127.0.0.1:1/bucket/a/../b",
        "http://127.0.0.1:1/bucket/./b",
        // The URL parser percent-encodes `'` in the query of http(s) URLs.
        "http://127.0.0.1:1/bucket?prefix=it's",
    ] {
        let err = sendable(request(uri)).expect_err(uri);
        assert!(err.is_user(), "{uri}: {err:?}");
        assert!(
            format!("{err:?}").contains("cannot be sent as signed"),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn a_certificate_of_no_built_in_root_switches_to_the_fallback_and_the_retry_succeeds() {
    let (ca, server) = private_ca();
    let (port, hits) = serve(OK, Some(server)).await;
    let file =
        std::env::temp_dir().join(format!("tollgate-fallback-ca-{}.pem", std::process::id()));
    std::fs::write(&file, ca).expect("ca file");
    let (wide, _) = tollgate_core::tls::roots(Some(&file));
    let _ = std::fs::remove_file(&file);
    let wide = tollgate_core::tls::client_config(wide).expect("config");
    let built_in = || {
        tollgate_core::tls::client_config(tollgate_core::tls::roots(None).0)
            .map_err(|e| e.to_string())
    };
    let http = ReqwestHttpClient::with_tls(built_in).with_fallback(move || Ok(wide.clone()));
    let retry = aws_config::retry::RetryConfig::standard()
        .with_max_attempts(2)
        .with_initial_backoff(Duration::from_millis(10));
    let client = ssm_retrying(
        format!("https://localhost:{port}"),
        http.clone(),
        None,
        retry,
    )
    .await;
    assert!(!http.widened());
    let got = get(&client).await.expect("the retry verifies");
    assert!(got.parameter().is_some());
    assert!(http.widened(), "switched once, for the process");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the first attempt sent nothing"
    );
    get(&client).await.expect("stays switched");
}

#[test]
fn poisoning_drops_only_the_client_the_request_used() {
    let http = ReqwestHttpClient::new();
    let timeout = Some(Duration::from_secs(3));
    let (_, first) = http.client(timeout).expect("built");
    let (_, again) = http.client(timeout).expect("cached");
    assert_eq!(first, again, "one client per connect timeout");
    let poison_first = http.poison_fn(Some(first));
    poison_first();
    assert_eq!(http.built(), 0);
    let (_, second) = http.client(timeout).expect("built again");
    assert_ne!(first, second);
    // A late poisoning by a request that used the first client.
    poison_first();
    assert_eq!(http.built(), 1, "the second client stays");
    http.poison_fn(Some(second))();
    assert_eq!(http.built(), 0);
}
