//! A local HTTP app for the smoke-check tests and benchmark, on the shared
//! loopback stub: endpoints that are ok, slow, failing, flapping, JSON,
//! redirecting, huge, echoing and counting concurrency. Listens on
//! 127.0.0.1 with an ephemeral port.

#![allow(dead_code)]

use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tollgate_test_support::http::{Reply, Request, Stub};

/// Size of the `/huge` body.
pub const HUGE_BODY: usize = 8 * 1024 * 1024;

#[derive(Default)]
struct State {
    counters: Mutex<HashMap<String, u64>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A running test app; stops when dropped.
pub struct TestApp {
    stub: Stub,
    state: Arc<State>,
}

impl TestApp {
    /// Starts the app on 127.0.0.1:0.
    pub async fn start() -> TestApp {
        let state = Arc::new(State::default());
        let shared = state.clone();
        let stub = Stub::start(move |req| handle(req, shared.clone())).await;
        TestApp { stub, state }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.stub.url("")
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.stub.addr()
    }

    /// Highest number of `/track` requests in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Requests served so far.
    pub fn requests(&self) -> usize {
        self.stub.hits()
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

fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
    Reply::status(status)
        .header("content-type", content_type)
        .body(body)
}

fn json(status: u16, value: serde_json::Value) -> Reply {
    Reply::json(status, &value)
}

fn redirect(status: u16, to: &str) -> Reply {
    reply(status, "text/plain", format!("moved to {to}")).header("location", to)
}

fn count(state: &State, key: &str) -> u64 {
    let mut map = state.counters.lock().expect("counter lock");
    let n = map.entry(key.to_owned()).or_insert(0);
    *n += 1;
    *n
}

async fn handle(req: Request, state: Arc<State>) -> Reply {
    let path = req.path.clone();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["ok"] => json(200, serde_json::json!({"status": "ok", "version": "1.2.3"}))
            .header("x-version", "1.2.3")
            .header("cache-control", "no-store, max-age=0")
            .header("set-cookie", "session=abc123xyz; HttpOnly"),
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
        ["redirect-abs"] => redirect(301, &format!("{}/ok", req.base)),
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
            let headers: serde_json::Map<String, serde_json::Value> = req
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            json(
                200,
                serde_json::json!({
                    "method": req.method,
                    "headers": headers,
                    "query": req.query,
                    "body": req.text(),
                }),
            )
        }
        _ => reply(404, "text/plain", format!("no route {path}")),
    }
}
