//! The sample app being released, and the load balancer listeners in front
//! of it, all on loopback.
//!
//! The app is a tiny HTTP service with two versions: blue (what production
//! runs now) and green (the release). Routes:
//! - `GET /health` → `200 {"status":"ok","version":…,"color":…}`;
//! - `GET /api/orders` → `200 {"orders":[…]}`;
//! - anything else → `404`.
//!
//! A broken instance (`--break green`) answers like a release whose
//! production configuration is wrong: `/health` is `503
//! {"status":"degraded",…}` and `/api/orders` is `500`.
//!
//! [`Listener`] plays one load balancer listener: it forwards every request
//! to the instance it currently routes to, and can be re-pointed (what
//! CodeDeploy does to the test and production listeners during a blue/green
//! deployment).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// A problem starting a local server.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the {what} on loopback: {detail}")]
pub struct ServeError {
    /// Which server.
    pub what: String,
    /// The error.
    pub detail: String,
}

/// One running instance of the sample app.
#[derive(Debug)]
pub struct AppInstance {
    /// `blue`, `green` or `staging`.
    pub color: &'static str,
    /// The version it runs.
    pub version: &'static str,
    /// Whether it answers like a broken release.
    pub broken: bool,
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for AppInstance {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl AppInstance {
    /// Starts an instance on a free loopback port.
    pub async fn start(
        color: &'static str,
        version: &'static str,
        broken: bool,
    ) -> Result<AppInstance, ServeError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| ServeError {
                what: format!("{color} app"),
                detail: e.to_string(),
            })?;
        let addr = listener.local_addr().map_err(|e| ServeError {
            what: format!("{color} app"),
            detail: e.to_string(),
        })?;
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let answer = answer(color, version, broken, req.uri().path());
                        async move { Ok::<_, std::convert::Infallible>(answer) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(AppInstance {
            color,
            version,
            broken,
            addr,
            hits,
            server,
        })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// `blue 1.4.2 (:port)`, for the timeline.
    pub fn label(&self) -> String {
        let state = if self.broken { ", broken" } else { "" };
        format!(
            "{} {} on :{}{state}",
            self.color,
            self.version,
            self.addr.port()
        )
    }
}

fn answer(color: &str, version: &str, broken: bool, path: &str) -> Response<Full<Bytes>> {
    let (status, body) = match (path, broken) {
        ("/health", false) => (
            StatusCode::OK,
            json!({"status": "ok", "version": version, "color": color}),
        ),
        ("/health", true) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "degraded", "version": version, "color": color,
                   "reason": "orders database: connection refused (DATABASE_URL points at staging)"}),
        ),
        ("/api/orders", false) => (
            StatusCode::OK,
            json!({"orders": [{"id": "o-1001", "total": "42.50"}, {"id": "o-1002", "total": "7.90"}]}),
        ),
        ("/api/orders", true) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "orders database unavailable"}),
        ),
        _ => (StatusCode::NOT_FOUND, json!({"error": "not found"})),
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// One load balancer listener on loopback, forwarding to an instance.
#[derive(Debug)]
pub struct Listener {
    addr: SocketAddr,
    target: Arc<Mutex<(SocketAddr, &'static str)>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Listener {
    /// Starts a listener routing to `to`.
    pub async fn start(to: &AppInstance) -> Result<Listener, ServeError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| ServeError {
                what: "load balancer listener".into(),
                detail: e.to_string(),
            })?;
        let addr = listener.local_addr().map_err(|e| ServeError {
            what: "load balancer listener".into(),
            detail: e.to_string(),
        })?;
        let target = Arc::new(Mutex::new((to.addr(), to.color)));
        let route = target.clone();
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let route = route.clone();
                let client = client.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let to = route
                            .lock()
                            .map(|t| t.0)
                            .unwrap_or_else(|p| p.into_inner().0);
                        let client = client.clone();
                        async move { Ok::<_, std::convert::Infallible>(forward(&client, to, req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Listener {
            addr,
            target,
            server,
        })
    }

    /// The listener's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Routes every new request to `to`.
    pub fn route_to(&self, to: &AppInstance) {
        let mut t = self.target.lock().unwrap_or_else(|p| p.into_inner());
        *t = (to.addr(), to.color);
    }

    /// The color of the instance it routes to.
    pub fn routes_to(&self) -> &'static str {
        self.target
            .lock()
            .map(|t| t.1)
            .unwrap_or_else(|p| p.into_inner().1)
    }
}

async fn forward(
    client: &Client<HttpConnector, Full<Bytes>>,
    to: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let bad_gateway = |why: String| {
        let mut r = Response::new(Full::new(Bytes::from(
            json!({"error": format!("502 Bad Gateway: {why}")}).to_string(),
        )));
        *r.status_mut() = StatusCode::BAD_GATEWAY;
        r
    };
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return bad_gateway("could not read the request".into());
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut builder = Request::builder()
        .method(parts.method.clone())
        .uri(format!("http://{to}{path}"));
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST {
            builder = builder.header(name, value);
        }
    }
    let Ok(request) = builder.body(Full::new(body)) else {
        return bad_gateway("could not build the forwarded request".into());
    };
    match client.request(request).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            match body.collect().await {
                Ok(b) => Response::from_parts(parts, Full::new(b.to_bytes())),
                Err(e) => bad_gateway(e.to_string()),
            }
        }
        Err(e) => bad_gateway(e.to_string()),
    }
}

/// `GET url` on loopback: status and body text (for the timeline's final check).
pub async fn get(url: &str) -> Result<(u16, String), String> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let request = Request::get(url)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = client.request(request).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listener_forwards_to_the_instance_it_routes_to() {
        let blue = AppInstance::start("blue", "1.4.2", false)
            .await
            .expect("blue");
        let green = AppInstance::start("green", "1.5.0", true)
            .await
            .expect("green");
        let listener = Listener::start(&blue).await.expect("listener");
        let (status, body) = get(&format!("{}/health", listener.url()))
            .await
            .expect("get");
        assert_eq!(status, 200);
        assert!(body.contains("1.4.2"), "{body}");
        listener.route_to(&green);
        assert_eq!(listener.routes_to(), "green");
        let (status, body) = get(&format!("{}/health", listener.url()))
            .await
            .expect("get");
        assert_eq!(status, 503);
        assert!(body.contains("degraded"), "{body}");
        let (status, _) = get(&format!("{}/api/orders", green.url()))
            .await
            .expect("get");
        assert_eq!(status, 500);
        assert_eq!(blue.hits(), 1);
        assert_eq!(green.hits(), 2);
    }
}
