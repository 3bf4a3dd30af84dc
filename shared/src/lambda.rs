//! Glue between the Lambda runtime and the report core.

use crate::report::{Budget, ReportConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The invocation budget from the runtime's context (`Lambda-Runtime-Deadline-Ms`).
pub fn budget(ctx: &lambda_runtime::Context, cfg: &ReportConfig) -> Budget {
    Budget::from_epoch_ms(ctx.deadline, cfg)
}

/// Reports a failed init to the Runtime API (`POST /runtime/init/error`), so
/// Lambda shows the reason instead of a bare exit, then logs it. The caller
/// exits afterwards. Outside Lambda (no `AWS_LAMBDA_RUNTIME_API`) it only logs.
pub async fn report_init_error(error_type: &str, message: &str) {
    tracing::error!(error_type, error = %message, "init failed");
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    let body = serde_json::json!({
        "errorType": error_type,
        "errorMessage": message,
        "stackTrace": [],
    })
    .to_string();
    let request = format!(
        "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {api}\r\n\
         Lambda-Runtime-Function-Error-Type: {error_type}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let sent = async {
        let mut stream = tokio::net::TcpStream::connect(&api).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(std::time::Duration::from_secs(2), sent).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, "could not post the init error to the runtime API")
        }
        Err(_) => tracing::error!("posting the init error to the runtime API timed out"),
    }
}
