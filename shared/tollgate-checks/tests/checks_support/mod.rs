//! A local HTTP app for the smoke-check tests and benchmark: endpoints that
//! are ok, slow, failing, flapping, JSON, redirecting, huge, echoing and
//! counting concurrency. Listens on 127.0.0.1 with an ephemeral port.

#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;

/// Size of the `/huge` body.
pub const HUGE_BODY: usize = 8 * 1024 * 1024;

#[derive(Default)]
struct State {
    counters: Mutex<HashMap<String, u64>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    requests: AtomicUsize,
}

/// A running test app; stops when the test's runtime ends.
pub struct TestApp {
    addr: SocketAddr,
    state: Arc<State>,
}

impl TestApp {
    /// Starts the app on 127.0.0.1:0.
    pub async fn start() -> TestApp {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State::default());
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(req, state.clone(), addr));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TestApp { addr, state }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Highest number of `/track` requests in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Requests served so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Calls seen by a counting endpoint key.
    pub fn calls(&self, key: &str) -> u64 {
        self.state
            .counters
            .lock()
            .expect("counter lock")
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

/// A port on 127.0.0.1 where nothing listens.
pub async fn refused_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}

fn huge() -> Bytes {
    static BODY: OnceLock<Bytes> = OnceLock::new();
    BODY.get_or_init(|| Bytes::from(vec![b'x'; HUGE_BODY]))
        .clone()
}

fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).expect("valid status");
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("content type"),
    );
    r
}

fn json(status: u16, value: serde_json::Value) -> Response<Full<Bytes>> {
    reply(status, "application/json", value.to_string())
}

fn redirect(status: u16, to: &str) -> Response<Full<Bytes>> {
    let mut r = reply(status, "text/plain", format!("moved to {to}"));
    r.headers_mut()
        .insert(LOCATION, HeaderValue::from_str(to).expect("location"));
    r
}

fn count(state: &State, key: &str) -> u64 {
    let mut map = state.counters.lock().expect("counter lock");
    let n = map.entry(key.to_owned()).or_insert(0);
    *n += 1;
    *n
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
    addr: SocketAddr,
) -> Result<Response<Full<Bytes>>, Infallible> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_owned();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let resp = match parts.as_slice() {
        ["ok"] => {
            let mut r = json(200, serde_json::json!({"status": "ok", "version": "1.2.3"}));
            r.headers_mut()
                .insert("x-version", HeaderValue::from_static("1.2.3"));
            r.headers_mut().insert(
                "cache-control",
                HeaderValue::from_static("no-store, max-age=0"),
            );
            r.headers_mut().insert(
                "set-cookie",
                HeaderValue::from_static("session=abc123xyz; HttpOnly"),
            );
            r
        }
        ["text"] => reply(
            200,
            "text/plain; charset=utf-8",
            "hello world, all systems go",
        ),
        ["slow", ms] => {
            let ms: u64 = ms.parse().unwrap_or(100);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            reply(200, "text/plain", "slow ok")
        }
        ["status", code] => {
            let code: u16 = code.parse().unwrap_or(500);
            reply(code, "text/plain", format!("status {code}"))
        }
        ["flap", key, n] => {
            let fails: u64 = n.parse().unwrap_or(1);
            let call = count(&state, &format!("flap/{key}"));
            if call <= fails {
                json(503, serde_json::json!({"status": "starting", "call": call}))
            } else {
                json(200, serde_json::json!({"status": "ok", "call": call}))
            }
        }
        ["every", key, m] => {
            // Fails every m-th call of the key.
            let m: u64 = m.parse().unwrap_or(10);
            let call = count(&state, &format!("every/{key}"));
            if call.is_multiple_of(m) {
                reply(500, "text/plain", "periodic failure")
            } else {
                reply(200, "text/plain", "fine")
            }
        }
        ["json"] => json(
            200,
            serde_json::json!({
                "service": {
                    "name": "checkout",
                    "healthy": true,
                    "deps": [
                        {"name": "db", "latency_ms": 12.5, "status": "up"},
                        {"name": "cache", "latency_ms": 3, "status": "up"}
                    ]
                },
                "version": "2.4.1",
                "build": "2024-06-01T10:00:00Z",
                "items": [1, 2, 3],
                "empty": null
            }),
        ),
        ["redirect"] => redirect(302, "/ok"),
        ["redirect-abs"] => redirect(301, &format!("http://{addr}/ok")),
        ["redirect-loop"] => redirect(302, "/redirect-loop"),
        ["redirect-metadata"] => redirect(
            302,
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        ),
        ["huge"] => reply(200, "text/plain", huge()),
        ["track", ms] => {
            let ms: u64 = ms.parse().unwrap_or(100);
            let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            state.max_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            state.in_flight.fetch_sub(1, Ordering::SeqCst);
            reply(200, "text/plain", "tracked")
        }
        ["echo"] => {
            let method = req.method().to_string();
            let headers: serde_json::Map<String, serde_json::Value> = req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        serde_json::Value::String(String::from_utf8_lossy(v.as_bytes()).into()),
                    )
                })
                .collect();
            let query = req.uri().query().unwrap_or_default().to_owned();
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            json(
                200,
                serde_json::json!({
                    "method": method,
                    "headers": headers,
                    "query": query,
                    "body": String::from_utf8_lossy(&body),
                }),
            )
        }
        _ => reply(404, "text/plain", format!("no route {path}")),
    };
    Ok(resp)
}
