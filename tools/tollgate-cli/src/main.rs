//! # tollgate-cli
//!
//! `tollgate`: run a smoke-check spec or a metric gate from a laptop or
//! CodeBuild, the same spec the deploy hooks and pipeline actions use.
//!
//! ```text
//! tollgate check --spec FILE --var TARGET=URL [--var K=V]... [--secret K[=V]]...
//!                [--json] [--deadline 60s]
//! tollgate validate --spec FILE [--var K=V]...
//! tollgate gate --spec FILE [--var K=V]... [--baseline-var K=V]... [--once]
//! ```
//!
//! Exit codes: 0 passed, 1 a check or the gate failed (or did not finish),
//! 2 spec or usage error.
//!
//! Invariant: a tool, never shipped in a function; the only crate that
//! puts the check engine, the metric gate and the CloudWatch adapter
//! together outside Lambda. Reads AWS only for `gate` (credentials from
//! the SDK's default chain, `AWS_ENDPOINT_URL` honoured).

mod gate;

use std::io::Read as _;
use std::process::ExitCode;
use std::time::Duration;
use tollgate_checks::{Engine, EngineConfig, Spec, Vars, parse_duration};

const USAGE: &str = "\
usage:
  tollgate check --spec FILE --var TARGET=URL [--var NAME=VALUE]... [--secret NAME[=VALUE]]...
                 [--json] [--deadline DURATION]
  tollgate validate --spec FILE [--var NAME=VALUE]... [--secret NAME[=VALUE]]...
  tollgate gate --spec FILE [--var NAME=VALUE]... [--baseline-var NAME=VALUE]... [--once]

commands:
  check       run the checks of a spec and print a table (or JSON with --json)
  validate    parse the spec and apply the variables without sending anything
  gate        run the spec's metric gate against CloudWatch: a measurement every
              interval, count times, each printed, then the verdict

options:
  --spec FILE            the check spec, YAML or JSON (- reads standard input)
  --var NAME=VALUE       a value for ${NAME} in the spec; --var NAME takes $NAME from the environment
  --secret NAME=VALUE    like --var, but the value is redacted from all output;
                         --secret NAME takes $NAME from the environment (keeps it out of shell history)
  --json                 print the structured result as JSON instead of the table
  --deadline DURATION    stop and report by then, e.g. 60s or 5m (default: the spec's deadline, else 5m)
  --baseline-var NAME=VALUE
                         gate: a value for ${NAME} when measuring the baseline (the blue target
                         group), for max_vs_baseline conditions
  --once                 gate: take one measurement now and judge it alone (for a CodeBuild loop)
  -h, --help             show this help
  -V, --version          show the version

gate reads CloudWatch with the AWS SDK's default credential chain and region
(AWS_PROFILE, AWS_REGION, ...); AWS_ENDPOINT_URL points it elsewhere.

exit codes: 0 passed, 1 failed or not finished, 2 spec or usage error
spec reference: docs/checks.md (metric gates: docs/checks.md#metric-gates)";

/// Default run deadline when neither the spec nor --deadline sets one.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(300);

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Check,
    Validate,
    Gate,
}

#[derive(Debug)]
struct Args {
    command: Command,
    spec: String,
    vars: Vars,
    json: bool,
    deadline: Option<Duration>,
    baseline: Option<Vars>,
    once: bool,
}

/// What the command line asked for, or why it cannot be run.
#[derive(Debug)]
enum Parsed {
    Run(Box<Args>),
    Help,
    Version,
}

fn var_value(
    flag: &str,
    spec: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, String), String> {
    let (name, value) = match spec.split_once('=') {
        Some((n, v)) => (n.trim().to_owned(), v.to_owned()),
        None => {
            let n = spec.trim().to_owned();
            let v = env(&n).ok_or_else(|| {
                format!("{flag} {n}: the environment variable {n} is not set; give the value as {flag} {n}=VALUE or export {n}")
            })?;
            (n, v)
        }
    };
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "{flag} {spec:?}: {name:?} is not a variable name; use letters, digits and _ (e.g. {flag} TARGET=https://staging.example.com)"
        ));
    }
    Ok((name, value))
}

fn parse_args(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Parsed, String> {
    let mut iter = args.iter().map(String::as_str).peekable();
    let command = match iter.next() {
        None => return Err("no command given".to_owned()),
        Some("-h" | "--help" | "help") => return Ok(Parsed::Help),
        Some("-V" | "--version" | "version") => return Ok(Parsed::Version),
        Some("check") => Command::Check,
        Some("validate") => Command::Validate,
        Some("gate") => Command::Gate,
        Some(other) => {
            return Err(format!(
                "unknown command {other:?}; use check, validate or gate"
            ));
        }
    };
    let mut spec = None;
    let mut vars = Vars::new();
    let mut json = false;
    let mut deadline = None;
    let mut baseline: Option<Vars> = None;
    let mut once = false;
    let mut secrets = false;
    while let Some(arg) = iter.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg, None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => iter
                    .next()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match flag {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--spec" => spec = Some(value("--spec")?),
            "--var" => {
                let (n, v) = var_value("--var", &value("--var")?, env)?;
                vars.insert(n, v);
            }
            "--secret" => {
                let (n, v) = var_value("--secret", &value("--secret")?, env)?;
                vars.insert_secret(n, v);
                secrets = true;
            }
            "--baseline-var" => {
                let (n, v) = var_value("--baseline-var", &value("--baseline-var")?, env)?;
                baseline.get_or_insert_with(Vars::new).insert(n, v);
            }
            "--once" if inline.is_none() => once = true,
            "--json" if inline.is_none() => json = true,
            "--deadline" => {
                let text = value("--deadline")?;
                let d = parse_duration(&text)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        format!("--deadline {text:?}: expected a duration like 60s, 5m or 1m30s")
                    })?;
                deadline = Some(d);
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    let spec = spec.ok_or_else(|| "--spec FILE is required".to_owned())?;
    if command == Command::Validate && (json || deadline.is_some()) {
        return Err("validate takes only --spec, --var and --secret".to_owned());
    }
    if command != Command::Gate && (baseline.is_some() || once) {
        return Err("--baseline-var and --once are options of gate".to_owned());
    }
    if command == Command::Gate && (json || deadline.is_some() || secrets) {
        return Err(
            "gate takes --spec, --var, --baseline-var and --once (its values are not secret: dimensions and alarm names)"
                .to_owned(),
        );
    }
    Ok(Parsed::Run(Box::new(Args {
        command,
        spec,
        vars,
        json,
        deadline,
        baseline,
        once,
    })))
}

fn read_spec(path: &str) -> Result<String, String> {
    if path == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read the spec from standard input: {e}"))?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read spec file {path}: {e}"))
}

/// Placeholder `validate` gives an unresolved secret variable (it sends
/// nothing; the value only has to render).
const PLACEHOLDER: &str = "tollgate-validate-placeholder";

/// The spec's `variables:` are Secrets Manager / SSM references, which the
/// functions resolve; the CLI reads no AWS, so `check` needs each value on
/// the command line (`--secret NAME` from the environment), and every such
/// value is treated as secret even when given with `--var`. `validate`
/// fills the missing ones with a placeholder.
fn secret_variables(spec: &Spec, args: &mut Args) -> Result<(), String> {
    for (name, reference) in spec.secret_variables().iter() {
        match args.vars.get(name).map(str::to_owned) {
            Some(value) => {
                args.vars.insert_secret(name, value);
            }
            None if args.command == Command::Validate => {
                args.vars.insert_secret(name, PLACEHOLDER);
            }
            None => {
                return Err(format!(
                    "variables.{name}: the spec reads ${{{name}}} from {}, which tollgate check does \
                     not read (the functions do); pass the value with --secret {name} (taken from \
                     ${name}) or --secret {name}=VALUE",
                    reference.describe()
                ));
            }
        }
    }
    Ok(())
}

fn run(args: Args) -> ExitCode {
    let text = match read_spec(&args.spec) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tollgate: {e}");
            return ExitCode::from(2);
        }
    };
    if args.command == Command::Gate {
        return gate::run(&gate::Options {
            spec_path: &args.spec,
            text: &text,
            vars: &args.vars,
            baseline: args.baseline.as_ref(),
            once: args.once,
        });
    }
    let spec = match Spec::from_yaml_or_json(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tollgate: spec error in {}: {e}", args.spec);
            return ExitCode::from(2);
        }
    };
    let mut args = args;
    if let Err(e) = secret_variables(&spec, &mut args) {
        eprintln!("tollgate: spec error in {}: {e}", args.spec);
        return ExitCode::from(2);
    }
    if let Err(e) = spec.check_vars(&args.vars) {
        eprintln!("tollgate: spec error in {}: {e}", args.spec);
        return ExitCode::from(2);
    }
    let engine = match Engine::new(EngineConfig::default()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("tollgate: {e}");
            return ExitCode::from(2);
        }
    };
    // The memory budget of the function the spec will run in
    // (AWS_LAMBDA_FUNCTION_MEMORY_SIZE; 128 MB when unset).
    if let Err(e) = engine.memory_share(&spec) {
        eprintln!("tollgate: spec error in {}: {e}", args.spec);
        return ExitCode::from(2);
    }
    if args.command == Command::Validate {
        let used: Vec<String> = spec.variables().into_iter().collect();
        let secret: Vec<&str> = spec.secret_variables().names().collect();
        println!(
            "{}: valid, {} check{}; variables used: {}{}",
            args.spec,
            spec.len(),
            if spec.len() == 1 { "" } else { "s" },
            if used.is_empty() {
                "none".to_owned()
            } else {
                used.join(", ")
            },
            if secret.is_empty() {
                String::new()
            } else {
                format!(
                    "; read from Secrets Manager / SSM by the function: {}",
                    secret.join(", ")
                )
            }
        );
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tollgate: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let budget = args
        .deadline
        .or(spec.deadline())
        .unwrap_or(DEFAULT_DEADLINE);
    let result = runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + budget;
        engine.run(&spec, &args.vars, deadline).await
    });
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tollgate: spec error in {}: {e}", args.spec);
            return ExitCode::from(2);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("tollgate: cannot print the result as JSON: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", report.table());
    }
    if report.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = |name: &str| std::env::var(name).ok();
    match parse_args(&args, &env) {
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Parsed::Version) => {
            println!("tollgate {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Parsed::Run(a)) => run(*a),
        Err(e) => {
            eprintln!("tollgate: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Parsed, String> {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let env = |name: &str| (name == "API_TOKEN").then(|| "from-env".to_owned());
        parse_args(&args, &env)
    }

    fn run_args(args: &[&str]) -> Args {
        match parse(args) {
            Ok(Parsed::Run(a)) => *a,
            other => panic!("expected a run: {other:?}"),
        }
    }

    #[test]
    fn parses_a_full_check_command() {
        let a = run_args(&[
            "check",
            "--spec",
            "smoke.yaml",
            "--var",
            "TARGET=http://x:8080/a=b",
            "--secret",
            "API_TOKEN",
            "--json",
            "--deadline=90s",
        ]);
        assert_eq!(a.command, Command::Check);
        assert_eq!(a.spec, "smoke.yaml");
        assert_eq!(a.vars.get("TARGET"), Some("http://x:8080/a=b"));
        assert_eq!(a.vars.get("API_TOKEN"), Some("from-env"));
        assert!(!format!("{:?}", a.vars).contains("from-env"));
        assert!(a.json);
        assert_eq!(a.deadline, Some(Duration::from_secs(90)));
    }

    #[test]
    fn parses_a_gate_command() {
        let a = run_args(&[
            "gate",
            "--spec=gate.yaml",
            "--var",
            "TARGET_GROUP=targetgroup/green/1",
            "--baseline-var",
            "TARGET_GROUP=targetgroup/blue/2",
            "--once",
        ]);
        assert_eq!(a.command, Command::Gate);
        assert_eq!(a.vars.get("TARGET_GROUP"), Some("targetgroup/green/1"));
        let baseline = a.baseline.expect("baseline vars");
        assert_eq!(baseline.get("TARGET_GROUP"), Some("targetgroup/blue/2"));
        assert!(a.once);
    }

    #[test]
    fn usage_errors_say_what_to_fix() {
        let err = |args: &[&str]| parse(args).expect_err("usage error");
        assert_eq!(err(&[]), "no command given");
        assert_eq!(
            err(&["run"]),
            "unknown command \"run\"; use check, validate or gate"
        );
        assert_eq!(err(&["check"]), "--spec FILE is required");
        assert_eq!(err(&["check", "--spec"]), "--spec needs a value");
        assert_eq!(
            err(&["check", "--spec", "f", "--verbose"]),
            "unknown option \"--verbose\""
        );
        assert!(err(&["check", "--spec", "f", "--deadline", "10"]).contains("expected a duration"));
        assert!(
            err(&["check", "--spec", "f", "--var", "MISSING"])
                .contains("environment variable MISSING is not set")
        );
        assert!(err(&["check", "--spec", "f", "--var", "1X=y"]).contains("is not a variable name"));
        assert_eq!(
            err(&["check", "--spec", "f", "--once"]),
            "--baseline-var and --once are options of gate"
        );
        assert!(err(&["gate", "--spec", "f", "--json"]).starts_with("gate takes --spec"));
        assert!(
            err(&["gate", "--spec", "f", "--secret", "API_TOKEN"]).starts_with("gate takes --spec")
        );
        assert!(matches!(parse(&["--help"]), Ok(Parsed::Help)));
        assert!(matches!(parse(&["check", "-h"]), Ok(Parsed::Help)));
        assert!(matches!(parse(&["-V"]), Ok(Parsed::Version)));
    }
}
