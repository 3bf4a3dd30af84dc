//! A local Lambda Runtime API: spawns a function binary and drives it the way
//! Lambda does (`/next`, `/response`, `/error`, `/init/error`), with request-id,
//! deadline, function-ARN and trace headers and a deadline chosen per invoke.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};

/// What one invocation ended in.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// `POST /invocation/{id}/response`.
    Response(Value),
    /// `POST /invocation/{id}/error`.
    Error {
        /// `errorType`.
        error_type: String,
        /// `errorMessage`.
        error_message: String,
    },
    /// No answer by the deadline (plus grace): Lambda would have killed it.
    Timeout,
    /// The process exited before answering.
    Exited(String),
}

impl Invocation {
    /// The response body; panics with the outcome otherwise.
    pub fn response(&self) -> &Value {
        match self {
            Invocation::Response(v) => v,
            other => panic!("expected a response, got {other:?}"),
        }
    }
}

/// An init error the function posted.
#[derive(Debug, Clone, PartialEq)]
pub struct InitError {
    /// `errorType`.
    pub error_type: String,
    /// `errorMessage`.
    pub error_message: String,
}

struct Pending {
    id: String,
    body: Bytes,
    deadline_ms: u64,
}

#[derive(Default)]
struct Shared {
    waiting: Mutex<HashMap<String, oneshot::Sender<Invocation>>>,
    first_next: Mutex<Option<Instant>>,
    init_error: Mutex<Option<InitError>>,
    nexts: Mutex<u32>,
    /// Deadline (epoch ms) of each invocation handed out by `/next`.
    deadlines: Mutex<HashMap<String, u64>>,
    /// Answers that arrived after their deadline: (request id, ms late).
    late: Mutex<Vec<(String, u64)>>,
}

/// A function process under the local Runtime API. Killed on drop.
pub struct LocalLambda {
    name: String,
    runtime_api: String,
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Pending>,
    child: Child,
    exited: watch::Receiver<Option<String>>,
    spawned_at: Instant,
    logs: Arc<Mutex<String>>,
    server: tokio::task::JoinHandle<()>,
    counter: u64,
}

impl std::fmt::Debug for LocalLambda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLambda")
            .field("name", &self.name)
            .finish()
    }
}

impl Drop for LocalLambda {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        self.server.abort();
    }
}

const GRACE: Duration = Duration::from_secs(2);

impl LocalLambda {
    /// Starts the Runtime API on a free port and spawns `binary` with a clean
    /// environment: the Lambda variables plus `env`.
    pub async fn spawn(binary: &Path, env: &[(String, String)]) -> LocalLambda {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::unbounded_channel::<Pending>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let name = binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "function".to_owned());
        let arn = format!("arn:aws:lambda:us-east-1:111111111111:function:{name}");
        let server = {
            let shared = shared.clone();
            let arn = arn.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let shared = shared.clone();
                    let rx = rx.clone();
                    let arn = arn.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| {
                            route(shared.clone(), rx.clone(), arn.clone(), req)
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            })
        };

        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/21/[$LATEST]local")
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawned_at = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let logs = Arc::new(Mutex::new(String::new()));
        let echo = std::env::var_os("TOLLGATE_ECHO_LOGS").is_some();
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(collect(
                BufReader::new(out),
                logs.clone(),
                echo,
            )));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(collect(
                BufReader::new(err),
                logs.clone(),
                echo,
            )));
        }
        let (exit_tx, exited) = watch::channel(None);
        let pid = child.id();
        tokio::spawn(async move {
            // Poll for exit without taking the child (it stays killable on drop).
            let Some(pid) = pid else { return };
            let proc_path = format!("/proc/{pid}/stat");
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let gone = match std::fs::read_to_string(&proc_path) {
                    Err(_) => true,
                    // A zombie ("Z") has exited but not been reaped yet.
                    Ok(stat) => stat
                        .rsplit(')')
                        .next()
                        .is_some_and(|rest| rest.trim_start().starts_with('Z')),
                };
                if gone {
                    for r in readers {
                        let _ = tokio::time::timeout(Duration::from_secs(1), r).await;
                    }
                    let _ = exit_tx.send(Some("the process exited".to_owned()));
                    return;
                }
            }
        });
        LocalLambda {
            name,
            runtime_api: addr.to_string(),
            shared,
            queue: tx,
            child,
            exited,
            spawned_at,
            logs,
            server,
            counter: 0,
        }
    }

    /// Sends one event with `deadline` from now and waits for the outcome (up
    /// to the deadline plus a short grace, as Lambda would).
    pub async fn invoke(&mut self, event: Value, deadline: Duration) -> Invocation {
        self.invoke_raw(Bytes::from(event.to_string()), deadline)
            .await
    }

    /// Like [`LocalLambda::invoke`] with the event body as raw bytes (which
    /// need not be JSON, nor UTF-8), as the Runtime API delivers it.
    pub async fn invoke_raw(&mut self, body: Bytes, deadline: Duration) -> Invocation {
        self.counter += 1;
        let id = format!(
            "{:08x}-0000-4000-8000-{:012x}",
            std::process::id(),
            self.counter
        );
        let deadline_ms = epoch_ms() + deadline.as_millis() as u64;
        let (tx, rx) = oneshot::channel();
        self.shared
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), tx);
        if self
            .queue
            .send(Pending {
                id,
                body,
                deadline_ms,
            })
            .is_err()
        {
            return Invocation::Exited("the runtime API is gone".into());
        }
        let mut exited = self.exited.clone();
        tokio::select! {
            r = rx => r.unwrap_or(Invocation::Exited("no outcome".into())),
            _ = tokio::time::sleep(deadline + GRACE) => Invocation::Timeout,
            _ = exited.wait_for(Option::is_some) => {
                // Give a response that raced with the exit a moment to land.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let reason = self.exited.borrow().clone().unwrap_or_default();
                Invocation::Exited(format!("{reason}; init error: {:?}", self.init_error()))
            }
        }
    }

    /// Waits until the function asked for its first event (init done) or
    /// exited; returns the init duration (spawn → first `next`).
    pub async fn wait_init(&self, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(t) = *self
                .shared
                .first_next
                .lock()
                .unwrap_or_else(|p| p.into_inner())
            {
                return Some(t.duration_since(self.spawned_at));
            }
            if self.exited.borrow().is_some() {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        None
    }

    /// Spawn → first `GET /next`, if it happened.
    pub fn init_duration(&self) -> Option<Duration> {
        self.shared
            .first_next
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|t| t.duration_since(self.spawned_at))
    }

    /// The init error the function posted, if any.
    pub fn init_error(&self) -> Option<InitError> {
        self.shared
            .init_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Answers (`/response` or `/error`) that reached the Runtime API after
    /// their invocation's deadline: (request id, ms late). Lambda would
    /// have stopped those invocations.
    pub fn late_answers(&self) -> Vec<(String, u64)> {
        self.shared
            .late
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until the process has exited (e.g. after an init error).
    pub async fn wait_exit(&self, limit: Duration) -> bool {
        let mut exited = self.exited.clone();
        tokio::time::timeout(limit, exited.wait_for(Option::is_some))
            .await
            .is_ok()
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// CPU time the process has used so far (every thread, user and
    /// system), from `/proc/<pid>/task/*/schedstat` (nanoseconds on CPU).
    pub fn cpu_time(&self) -> Option<Duration> {
        let pid = self.child.id()?;
        let mut total: u64 = 0;
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
            let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
        }
        Some(Duration::from_nanos(total))
    }

    /// `host:port` of this function's Runtime API (its
    /// `AWS_LAMBDA_RUNTIME_API`).
    pub fn runtime_api(&self) -> &str {
        &self.runtime_api
    }

    /// The process id, while it runs (to signal it, or to put it in a
    /// memory-limited cgroup).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends `signal` (e.g. `KILL`, `STOP`) to the process with `kill(1)`.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("the process is running");
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -{signal} {pid} failed: {status}");
    }

    /// Peak resident memory (`VmHWM`) in KiB, read from /proc while running.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

async fn collect<R: tokio::io::AsyncRead + Unpin>(
    reader: BufReader<R>,
    logs: Arc<Mutex<String>>,
    echo: bool,
) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if echo {
            eprintln!("[fn] {line}");
        }
        let mut l = logs.lock().unwrap_or_else(|p| p.into_inner());
        l.push_str(&line);
        l.push('\n');
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn reply(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap_or_default()
}

async fn route(
    shared: Arc<Shared>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>>,
    arn: String,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    const PREFIX: &str = "/2018-06-01/runtime";
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            r#"{"errorMessage":"unknown path"}"#,
        ));
    };
    if method == hyper::Method::GET && rest == "/invocation/next" {
        {
            let mut first = shared.first_next.lock().unwrap_or_else(|p| p.into_inner());
            if first.is_none() {
                *first = Some(Instant::now());
            }
            *shared.nexts.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        }
        let next = rx.lock().await.recv().await;
        let Some(p) = next else {
            return Ok(reply(
                StatusCode::GONE,
                r#"{"errorMessage":"runtime shutting down"}"#,
            ));
        };
        shared
            .deadlines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(p.id.clone(), p.deadline_ms);
        let resp = Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("lambda-runtime-aws-request-id", &p.id)
            .header("lambda-runtime-deadline-ms", p.deadline_ms.to_string())
            .header("lambda-runtime-invoked-function-arn", &arn)
            .header(
                "lambda-runtime-trace-id",
                format!(
                    "Root=1-00000000-{};Parent=0000000000000000;Sampled=0",
                    &p.id[..8]
                ),
            )
            .body(Full::new(p.body))
            .unwrap_or_default();
        return Ok(resp);
    }
    if method == hyper::Method::POST && rest == "/init/error" {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        *shared.init_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(InitError {
            error_type: v["errorType"].as_str().unwrap_or_default().to_owned(),
            error_message: v["errorMessage"].as_str().unwrap_or_default().to_owned(),
        });
        return Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#));
    }
    if method == hyper::Method::POST
        && let Some(tail) = rest.strip_prefix("/invocation/")
    {
        let (id, kind) = tail.rsplit_once('/').unwrap_or((tail, ""));
        // Judged here, where the answer lands, against the deadline the
        // function was given (Lambda's clock), not by the test's timers.
        let now = epoch_ms();
        let deadline = shared
            .deadlines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .copied();
        if let Some(deadline) = deadline
            && now > deadline
        {
            shared
                .late
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((id.to_owned(), now - deadline));
        }
        let outcome = match kind {
            "response" => Invocation::Response(
                serde_json::from_slice(&body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
            ),
            "error" => {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                Invocation::Error {
                    error_type: v["errorType"].as_str().unwrap_or_default().to_owned(),
                    error_message: v["errorMessage"].as_str().unwrap_or_default().to_owned(),
                }
            }
            _ => {
                return Ok(reply(
                    StatusCode::NOT_FOUND,
                    r#"{"errorMessage":"unknown path"}"#,
                ));
            }
        };
        let waiter = shared
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        return Ok(match waiter {
            Some(tx) => {
                let _ = tx.send(outcome);
                reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
            }
            None => reply(
                StatusCode::BAD_REQUEST,
                r#"{"errorMessage":"unknown or already answered request id","errorType":"InvalidRequestID"}"#,
            ),
        });
    }
    Ok(reply(
        StatusCode::NOT_FOUND,
        r#"{"errorMessage":"unknown path"}"#,
    ))
}
