//! The bench's floor (issue 21): the smallest Lambda function the same
//! runtime crate and release profile make. It answers every event with
//! `{"ok": true}` and does nothing else: no tracing set-up, no
//! configuration, no AWS client. `scripts/bench` builds it with the
//! functions' profile (`cargo build --release -p bench-floor`) and the
//! bench driver measures it in the same run as the functions, so
//! BENCHMARKS.md can state each function's cold init and peak RSS as a
//! ratio to it. It never ships.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handle(_event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(json!({"ok": true}))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handle)).await
}
