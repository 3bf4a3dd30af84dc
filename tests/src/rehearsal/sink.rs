//! The local chat sink: an HTTP endpoint standing in for a Slack incoming
//! webhook. It records every message (answering `ok`, as Slack does), and
//! [`slack_text`] turns a Block Kit message into the plain text a person
//! reads in the channel.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// One message the sink received.
#[derive(Debug, Clone)]
pub struct Message {
    /// Request path (the secret part of a webhook URL).
    pub path: String,
    /// The JSON body.
    pub body: Value,
}

/// The running sink. Stops when dropped.
#[derive(Debug)]
pub struct ChatSink {
    base: String,
    received: Arc<Mutex<Vec<Message>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for ChatSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl ChatSink {
    /// Starts the sink on a free loopback port.
    pub async fn start() -> Result<ChatSink, super::app::ServeError> {
        let err = |e: std::io::Error| super::app::ServeError {
            what: "chat sink".into(),
            detail: e.to_string(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(err)?;
        let addr = listener.local_addr().map_err(err)?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let store = store.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let store = store.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            store
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(Message { path, body });
                            Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                                Bytes::from_static(b"ok"),
                            )))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(ChatSink {
            base: format!("http://{addr}"),
            received,
            server,
        })
    }

    /// A webhook URL on the sink.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Messages received so far.
    pub fn received(&self) -> Vec<Message> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many messages were received.
    pub fn count(&self) -> usize {
        self.received.lock().map(|r| r.len()).unwrap_or(0)
    }
}

/// Slack mrkdwn to plain text: entities decoded, `<url|label>` links as
/// `label`, bold markers and code fences dropped.
fn plain(mrkdwn: &str) -> String {
    let mut out = String::with_capacity(mrkdwn.len());
    let mut rest = mrkdwn.replace("```", "");
    // Links: <url|label> → label; <url> → url.
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        out.push_str(&rest[..start]);
        let inner = &rest[start + 1..start + len];
        match inner.split_once('|') {
            Some((_, label)) => out.push_str(label),
            None => out.push_str(inner),
        }
        rest = rest[start + len + 1..].to_owned();
    }
    out.push_str(&rest);
    strip_bold(&out)
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Drops the `*` pairs that mark bold text (`*Reason*`, `*Commit* …`),
/// keeping other asterisks.
fn strip_bold(text: &str) -> String {
    text.lines()
        .map(|line| {
            let chars: Vec<char> = line.chars().collect();
            let mut drop = vec![false; chars.len()];
            let mut i = 0;
            while i < chars.len() {
                let opens = chars[i] == '*'
                    && (i == 0 || chars[i - 1].is_whitespace())
                    && chars
                        .get(i + 1)
                        .is_some_and(|c| !c.is_whitespace() && *c != '*');
                if opens {
                    let close = (i + 2..chars.len()).find(|&j| {
                        chars[j] == '*'
                            && !chars[j - 1].is_whitespace()
                            && chars
                                .get(j + 1)
                                .is_none_or(|c| c.is_whitespace() || c.is_ascii_punctuation())
                    });
                    if let Some(j) = close {
                        drop[i] = true;
                        drop[j] = true;
                        i = j + 1;
                        continue;
                    }
                }
                i += 1;
            }
            chars
                .iter()
                .zip(drop)
                .filter(|(_, d)| !d)
                .map(|(c, _)| *c)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `*Label*\nvalue` → (`Label`, `value`).
fn labelled(mrkdwn: &str) -> Option<(String, String)> {
    let (head, value) = mrkdwn.split_once('\n')?;
    let head = head.trim();
    if head.len() > 2 && head.starts_with('*') && head.ends_with('*') {
        Some((head[1..head.len() - 1].to_owned(), value.to_owned()))
    } else {
        None
    }
}

/// A Slack incoming-webhook message as a person reads it: the header, the
/// reason and other sections as `Label: value` lines (multi-line values
/// indented), the facts, the buttons by label, and the context line. Falls
/// back to the `text` field when there are no blocks.
pub fn slack_text(message: &Value) -> Vec<String> {
    let Some(blocks) = message["blocks"].as_array() else {
        return message["text"]
            .as_str()
            .map(|t| plain(t).lines().map(str::to_owned).collect())
            .unwrap_or_default();
    };
    let mut out = Vec::new();
    let push_labelled = |out: &mut Vec<String>, text: &str| match labelled(text) {
        Some((label, value)) => {
            let value = plain(&value);
            let lines: Vec<&str> = value.lines().filter(|l| !l.trim().is_empty()).collect();
            if lines.len() <= 1 {
                out.push(format!("{label}: {}", lines.first().copied().unwrap_or("")));
            } else {
                out.push(format!("{label}:"));
                out.extend(lines.iter().map(|l| format!("    {l}")));
            }
        }
        None => out.extend(plain(text).lines().map(str::to_owned)),
    };
    for block in blocks {
        match block["type"].as_str() {
            Some("header") => {
                if let Some(t) = block["text"]["text"].as_str() {
                    out.push(t.to_owned());
                }
            }
            Some("section") => {
                if let Some(t) = block["text"]["text"].as_str() {
                    push_labelled(&mut out, t);
                }
                for field in block["fields"].as_array().into_iter().flatten() {
                    if let Some(t) = field["text"].as_str() {
                        push_labelled(&mut out, t);
                    }
                }
            }
            Some("actions") => {
                let labels: Vec<String> = block["elements"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["text"]["text"].as_str())
                    .map(|l| format!("[{l}]"))
                    .collect();
                if !labels.is_empty() {
                    out.push(labels.join(" "));
                }
            }
            Some("context") => {
                let parts: Vec<String> = block["elements"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["text"].as_str())
                    .map(plain)
                    .collect();
                if !parts.is_empty() {
                    out.push(parts.join("  "));
                }
            }
            Some("divider") => out.push(String::new()),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn block_kit_reads_as_plain_text() {
        let message = json!({
            "text": "fallback",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "❌ web: deployment failed (rolled back)"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "*Reason*\nHOOK_EXECUTION_FAILURE: a &lt; b &amp; c"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "*Reason*\n```line one\nline two```"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "*Commit* <https://github.com/acme/web/commit/3f9c|3f9c2ab Show orders>"}},
                {"type": "section", "fields": [
                    {"type": "mrkdwn", "text": "*Deployment*\nd-123"},
                    {"type": "mrkdwn", "text": "*Started by*\nuser"}
                ]},
                {"type": "actions", "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Open deployment"}, "url": "https://x"},
                    {"type": "button", "text": {"type": "plain_text", "text": "Open pipeline"}, "url": "https://y"}
                ]},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": "123456789012 · us-east-1"}]}
            ]
        });
        let text = slack_text(&message);
        assert_eq!(
            text,
            vec![
                "❌ web: deployment failed (rolled back)",
                "Reason: HOOK_EXECUTION_FAILURE: a < b & c",
                "Reason:",
                "    line one",
                "    line two",
                "Commit 3f9c2ab Show orders",
                "Deployment: d-123",
                "Started by: user",
                "[Open deployment] [Open pipeline]",
                "123456789012 · us-east-1",
            ]
        );
    }

    #[test]
    fn a_message_without_blocks_shows_its_text() {
        assert_eq!(
            slack_text(&json!({"text": "*hello* there, 2 * 3 = 6"})),
            vec!["hello there, 2 * 3 = 6"]
        );
    }
}
