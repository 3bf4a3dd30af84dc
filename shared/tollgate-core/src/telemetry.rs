//! Logging: `tracing` to stdout, as Lambda expects.
//!
//! Honours `AWS_LAMBDA_LOG_FORMAT` (`JSON` → one JSON object per line, else
//! plain text without timestamps, which Lambda adds) and the level from
//! `RUST_LOG` (full filter syntax) or else `AWS_LAMBDA_LOG_LEVEL`
//! (TRACE…FATAL), default INFO.

use crate::config::{Env, ProcessEnv};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// The format and filter chosen from the environment.
pub fn settings(env: &impl Env) -> (LogFormat, String) {
    let format = match env.get("AWS_LAMBDA_LOG_FORMAT") {
        Some(f) if f.eq_ignore_ascii_case("json") => LogFormat::Json,
        _ => LogFormat::Text,
    };
    let filter = env.get("RUST_LOG").unwrap_or_else(|| {
        match env
            .get("AWS_LAMBDA_LOG_LEVEL")
            .map(|l| l.to_ascii_uppercase())
            .as_deref()
        {
            Some("TRACE") => "trace",
            Some("DEBUG") => "debug",
            Some("WARN") => "warn",
            Some("ERROR") | Some("FATAL") => "error",
            _ => "info",
        }
        .to_owned()
    });
    (format, filter)
}

/// Initialises logging to stdout from the process environment. Call once,
/// first thing in `main`.
pub fn init() {
    init_with_writer(&ProcessEnv, std::io::stdout);
}

/// Initialises logging with a custom writer (tests capture logs with it).
/// A second call is a no-op.
pub fn init_with_writer<W>(env: &impl Env, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let (format, filter) = settings(env);
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.without_time().try_init(),
    };
    // Already initialised (a test harness did it): keep the first subscriber.
    drop(result);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_settings_are_honoured() {
        let (f, l) = settings(&[
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", "WARN"),
        ]);
        assert_eq!((f, l.as_str()), (LogFormat::Json, "warn"));
        let (f, l) = settings(&[("AWS_LAMBDA_LOG_LEVEL", "fatal")]);
        assert_eq!((f, l.as_str()), (LogFormat::Text, "error"));
        let (_, l) = settings(&[
            ("RUST_LOG", "tollgate=debug"),
            ("AWS_LAMBDA_LOG_LEVEL", "WARN"),
        ]);
        assert_eq!(l, "tollgate=debug");
        let (_, l) = settings(&[("X", "1")]);
        assert_eq!(l, "info");
    }
}
