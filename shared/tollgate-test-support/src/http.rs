//! The one loopback HTTP stub the tests share: a hyper server on
//! `127.0.0.1:0` that records every request (method, path, query, headers,
//! body) and answers from per-path scripts, then from a handler closure.
//! It stops when dropped (its connections with it).
//!
//! ```no_run
//! # async fn demo() {
//! use tollgate_test_support::http::{Reply, Stub};
//! let stub = Stub::ok().await;
//! stub.script("/hook", [Reply::status(429).header("retry-after", "1")]);
//! // … point the code under test at stub.url("/hook") …
//! assert_eq!(stub.requests_to("/hook").len(), 0);
//! # }
//! ```

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, empty if none.
    pub query: String,
    /// Headers in the order received; names are lowercase.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Bytes,
    /// The stub's base URL (`http://127.0.0.1:PORT`), for absolute links.
    pub base: String,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Headers as a map (the last value of a repeated header wins).
    pub fn header_map(&self) -> HashMap<String, String> {
        self.headers.iter().cloned().collect()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; `null` if it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// One answer: status, headers, body, and an optional delay before it.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    delay: Option<Duration>,
}

impl Reply {
    /// `status` with an empty body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            delay: None,
        }
    }

    /// 200 `ok`, as a chat webhook answers.
    pub fn ok() -> Self {
        Self::text(200, "ok")
    }

    /// `status` with a `text/plain` body.
    pub fn text(status: u16, body: impl Into<Bytes>) -> Self {
        Self::status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body)
    }

    /// `status` with a JSON body.
    pub fn json(status: u16, value: &Value) -> Self {
        Self::status(status)
            .header("content-type", "application/json")
            .body(value.to_string())
    }

    /// A throttled or failing webhook: `status` with body `busy` and, if
    /// given, a `retry-after` header.
    pub fn busy(status: u16, retry_after: Option<&str>) -> Self {
        let r = Self::text(status, "busy");
        match retry_after {
            Some(ra) => r.header("retry-after", ra),
            None => r,
        }
    }

    /// A deleted webhook: 404 `no_service`, as Slack answers.
    pub fn gone() -> Self {
        Self::text(404, "no_service")
    }

    /// Never answers in a test's lifetime (an hour's delay).
    pub fn hang() -> Self {
        Self::ok().after(Duration::from_secs(3600))
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Answers only after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    async fn into_response(self) -> Response<Full<Bytes>> {
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        let mut r = Response::new(Full::new(self.body));
        *r.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::IM_A_TEAPOT);
        for (k, v) in &self.headers {
            if let (Ok(k), Ok(v)) = (
                hyper::header::HeaderName::from_bytes(k.as_bytes()),
                hyper::header::HeaderValue::from_str(v),
            ) {
                r.headers_mut().append(k, v);
            }
        }
        r
    }
}

type Answer = Pin<Box<dyn Future<Output = Reply> + Send>>;
type Handler = Arc<dyn Fn(Request) -> Answer + Send + Sync>;

struct State {
    requests: Mutex<Vec<Request>>,
    scripts: Mutex<HashMap<String, VecDeque<Reply>>>,
    handler: Handler,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running stub. Stops when dropped.
pub struct Stub {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl fmt::Debug for Stub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stub").field("addr", &self.addr).finish()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stub {
    /// Starts a stub answering 200 `ok` to everything not scripted.
    pub async fn ok() -> Stub {
        Self::replying(Reply::ok()).await
    }

    /// Starts a stub answering `reply` to everything not scripted.
    pub async fn replying(reply: Reply) -> Stub {
        Self::start(move |_| {
            let reply = reply.clone();
            async move { reply }
        })
        .await
    }

    /// Starts a stub answering with `handler` what no script answers.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound (a test setup failure).
    pub async fn start<F, Fut>(handler: F) -> Stub
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
        let state = Arc::new(State {
            requests: Mutex::default(),
            scripts: Mutex::default(),
            handler,
        });
        let shared = state.clone();
        let base = format!("http://{addr}");
        let task = tokio::spawn(async move {
            // Dropping the set (when the stub is dropped and this task
            // aborted) aborts every open connection.
            let mut connections = JoinSet::new();
            loop {
                while connections.try_join_next().is_some() {}
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                let base = base.clone();
                connections.spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<Incoming>| {
                        let state = state.clone();
                        let base = base.clone();
                        async move { Ok::<_, Infallible>(answer(&state, req, base).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Stub { addr, state, task }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers for `path`, in order, before the handler answers it again.
    pub fn script(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.state.scripts)
            .entry(path.to_owned())
            .or_default()
            .extend(replies);
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state.requests).clone()
    }

    /// The requests to `path` so far.
    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        lock(&self.state.requests)
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// How many requests arrived.
    pub fn hits(&self) -> usize {
        lock(&self.state.requests).len()
    }
}

async fn answer(
    state: &State,
    req: hyper::Request<Incoming>,
    base: String,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let request = Request {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        base,
    };
    lock(&state.requests).push(request.clone());
    let scripted = lock(&state.scripts)
        .get_mut(&request.path)
        .and_then(VecDeque::pop_front);
    let reply = match scripted {
        Some(r) => r,
        None => (state.handler)(request).await,
    };
    reply.into_response().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn send(addr: SocketAddr, request: &str) -> std::io::Result<String> {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok(answer)
    }

    #[tokio::test]
    async fn records_requests_answers_scripts_first_and_stops_when_dropped() {
        let stub = Stub::ok().await;
        stub.script("/hook", [Reply::busy(429, Some("1"))]);
        let post = "POST /hook?x=1 HTTP/1.1\r\nHost: h\r\nX-Token: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
        let first = send(stub.addr(), post).await.expect("first");
        assert!(first.starts_with("HTTP/1.1 429"), "{first}");
        assert!(first.contains("retry-after: 1"), "{first}");
        let second = send(stub.addr(), post).await.expect("second");
        assert!(second.starts_with("HTTP/1.1 200"), "{second}");
        assert!(second.ends_with("ok"), "{second}");
        let seen = stub.requests_to("/hook");
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].method, "POST");
        assert_eq!(seen[0].query, "x=1");
        assert_eq!(seen[0].header("x-token"), Some("t"));
        assert_eq!(seen[0].json(), serde_json::json!({}));
        assert!(seen[0].base.ends_with(&stub.addr().port().to_string()));
        let addr = stub.addr();
        drop(stub);
        tokio::task::yield_now().await;
        assert!(send(addr, post).await.is_err(), "stopped");
    }
}
