//! The `tollgate check` CLI as a user runs it: exit codes, table, JSON,
//! spec errors, secrets.

// The check tests' local HTTP app, shared with tollgate-checks' own tests.
#[path = "../../../shared/tollgate-checks/tests/checks_support/mod.rs"]
mod checks_support;

use checks_support::TestApp;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

struct TempSpec(PathBuf);

impl TempSpec {
    fn new(name: &str, text: &str) -> TempSpec {
        let path =
            std::env::temp_dir().join(format!("tollgate-cli-{}-{name}.yaml", std::process::id()));
        std::fs::write(&path, text).expect("write temp spec");
        TempSpec(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempSpec {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs the CLI off the async runtime (the test app keeps serving).
async fn tollgate(args: Vec<String>, env: Vec<(String, String)>, stdin: Option<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        cmd.args(&args)
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("tollgate binary starts");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin piped")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("tollgate finishes")
    })
    .await
    .expect("blocking task")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const SPEC: &str = r#"
checks:
  - name: health
    url: "${TARGET}/ok"
    headers: {Authorization: "Bearer ${TOKEN}"}
    expect:
      status: 200
      json: [{path: $.status, equals: ok}]
  - name: checkout
    url: "${TARGET}/status/${CODE}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_run_prints_a_table_and_exits_0() {
    let app = TestApp::start().await;
    let spec = TempSpec::new("pass", SPEC);
    let target = format!("TARGET={}", app.url());
    let out = tollgate(
        args(&[
            "check",
            "--spec",
            spec.path(),
            "--var",
            &target,
            "--var",
            "CODE=204",
            "--secret",
            "TOKEN",
        ]),
        vec![("TOKEN".into(), "cli-secret-token-1".into())],
        None,
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("CHECK"), "{stdout}");
    assert!(
        lines[0].contains("RESULT")
            && lines[0].contains("ATTEMPTS")
            && lines[0].contains("LATENCY")
            && lines[0].ends_with("FAILED EXPECTATIONS")
    );
    assert!(lines[1].starts_with("health    pass"), "{stdout}");
    assert!(lines[2].starts_with("checkout  pass"), "{stdout}");
    assert!(lines[3].starts_with("2/2 passed in "), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_run_exits_1_and_names_the_failure() {
    let app = TestApp::start().await;
    let spec = TempSpec::new("fail", SPEC);
    let target = format!("TARGET={}", app.url());
    let out = tollgate(
        args(&[
            "check",
            "--spec",
            spec.path(),
            "--var",
            &target,
            "--var=CODE=503",
            "--secret",
            "TOKEN=cli-secret-token-2",
        ]),
        vec![],
        None,
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("checkout  FAIL    1         "), "{stdout}");
    assert!(stdout.contains("status 503 (expected 200-299)"), "{stdout}");
    assert!(
        stdout
            .trim_end()
            .ends_with("1/2 passed; FAIL checkout: status 503 (expected 200-299)"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_the_structured_result_without_secrets() {
    let app = TestApp::start().await;
    let spec = TempSpec::new("json", SPEC);
    let target = format!("TARGET={}", app.url());
    let out = tollgate(
        args(&[
            "check",
            "--spec",
            spec.path(),
            "--var",
            &target,
            "--var",
            "CODE=500",
            "--secret",
            "TOKEN",
            "--json",
            "--deadline",
            "20s",
        ]),
        vec![("TOKEN".into(), "cli-secret-token-3".into())],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("cli-secret-token-3"), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    assert_eq!(v["outcome"], "failed");
    assert_eq!(v["passed"], 1);
    assert_eq!(v["checks"][1]["name"], "checkout");
    assert_eq!(v["checks"][1]["expectations"][0]["actual"], "500");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_and_usage_errors_exit_2() {
    let app = TestApp::start().await;
    let target = format!("TARGET={}", app.url());
    let bad = TempSpec::new(
        "bad",
        "checks:\n  - url: \"${TARGET}/ok\"\n    expect: {status: 2xx}\n",
    );
    let out = tollgate(
        args(&["check", "--spec", bad.path(), "--var", &target]),
        vec![],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(r#"checks[0].expect.status: expected a code, a list or a range like "200-299", got "2xx""#),
        "{stderr}"
    );

    // Unknown variable: a spec error too, nothing sent.
    let spec = TempSpec::new("unknown-var", SPEC);
    let out = tollgate(
        args(&["check", "--spec", spec.path(), "--var", &target]),
        vec![],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown variable ${"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(app.requests(), 0);

    let out = tollgate(
        args(&["check", "--spec", "/nonexistent/spec.yaml"]),
        vec![],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read spec file /nonexistent/spec.yaml"));

    let out = tollgate(args(&["check", "--sepc", "x"]), vec![], None).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("tollgate: unknown option \"--sepc\""),
        "{stderr}"
    );
    assert!(stderr.contains("usage:"), "{stderr}");

    let out = tollgate(args(&["--help"]), vec![], None).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout)
            .contains("exit codes: 0 passed, 1 failed or not finished, 2 spec or usage error")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reads_stdin_and_sends_nothing() {
    let app = TestApp::start().await;
    let target = format!("TARGET={}", app.url());
    let out = tollgate(
        args(&[
            "validate",
            "--spec",
            "-",
            "--var",
            &target,
            "--var",
            "CODE=200",
            "--secret",
            "TOKEN=abcdef",
        ]),
        vec![],
        Some(SPEC.to_owned()),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "-: valid, 2 checks; variables used: CODE, TARGET, TOKEN"
    );
    assert_eq!(app.requests(), 0);
}

/// `validate` checks the memory budget of the function the spec will run
/// in, as `check` and the functions do.
#[tokio::test]
async fn validate_refuses_a_spec_that_cannot_fit_the_function_memory() {
    let many: String = (0..64)
        .map(|i| format!("  - {{name: c{i}, url: \"https://example.com/{i}\", max_body: 4MiB}}\n"))
        .collect();
    let spec = TempSpec::new("wide", &format!("concurrency: 64\nchecks:\n{many}"));
    let out = tollgate(args(&["validate", "--spec", spec.path()]), Vec::new(), None).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("64 checks at once with up to 4 MiB of body each do not fit in memory")
            && err.contains("(128 MB now, AWS_LAMBDA_FUNCTION_MEMORY_SIZE;"),
        "{err}"
    );
    let roomy = tollgate(
        args(&["validate", "--spec", spec.path()]),
        vec![("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "2048".into())],
        None,
    )
    .await;
    assert_eq!(roomy.status.code(), Some(0), "{roomy:?}");
}

/// A spec's `variables:` (Secrets Manager / SSM references, resolved by the
/// functions): `check` needs each as `--secret`, even one given with
/// `--var` is redacted, and `validate` fills a placeholder and lists them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_variables_come_from_the_command_line_and_stay_hidden() {
    let app = TestApp::start().await;
    let spec = TempSpec::new(
        "variables",
        "checks:\n  - name: status\n    url: \"${TARGET}/status/503?key=${KEY}\"\n\
         variables:\n  KEY: secretsmanager:tollgate/cli#key\n",
    );
    let target = format!("TARGET={}", app.url());
    let out = tollgate(
        args(&["check", "--spec", spec.path(), "--var", &target]),
        vec![],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .contains("variables.KEY: the spec reads ${KEY} from secretsmanager:tollgate/cli#key")
            && stderr.contains("--secret KEY"),
        "{stderr}"
    );
    assert_eq!(app.requests(), 0);

    // Given with --var, still treated as secret: never in the output.
    let out = tollgate(
        args(&[
            "check",
            "--spec",
            spec.path(),
            "--var",
            &target,
            "--var",
            "KEY=k3y-cli-secret-77",
            "--json",
        ]),
        vec![],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("k3y-cli-secret-77"), "{stdout}");
    assert!(stdout.contains("key=<redacted>"), "{stdout}");

    let out = tollgate(
        args(&["validate", "--spec", spec.path(), "--var", &target]),
        vec![],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("; read from Secrets Manager / SSM by the function: KEY"),
        "{}",
        text(&out.stdout)
    );
}
