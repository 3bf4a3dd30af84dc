//! The engine: runs a spec's checks concurrently (the spec's limit counts
//! requests in flight), retries, samples, and stops at the deadline with
//! the results so far.
//!
//! All checks of a run are driven from the caller's task (no spawning), so
//! nothing outlives the call: when the deadline comes, in-flight requests
//! are dropped and their checks are reported as not finished.

use super::error::SpecError;
use super::expect::{Observed, evaluate};
use super::http::{Via, exchange};
use super::redact::Redactor;
use super::result::{
    CheckResult, CheckStatus, ExpectationResult, Outcome, RunReport, SampleStats, percentile,
    round_ms,
};
use super::spec::{Check, Prepared, Spec};
use super::template::Vars;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use reqwest::Client;
use reqwest::redirect::Policy;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;
use tollgate_core::memory::size_text;

/// Default cap on the body bytes read per response.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// Engine settings, fixed at init.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Body bytes read per response when a check sets no `max_body`
    /// (default 1 MiB). The rest is not read.
    pub max_body_bytes: usize,
    /// `User-Agent` sent with every request (a check's headers may override it).
    pub user_agent: String,
    /// TCP connect timeout (default 5 s); the check's `timeout` bounds the
    /// whole exchange too.
    pub connect_timeout: Duration,
    /// Addresses checks may not reach (the Runtime API, link-local), read
    /// from the process environment by `default()`.
    pub targets: super::targets::TargetPolicy,
    /// The function's memory (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, read by
    /// `default()`): running checks share its work budget equally.
    pub memory: tollgate_core::memory::MemoryBudget,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY,
            user_agent: format!("tollgate-check/{}", env!("CARGO_PKG_VERSION")),
            connect_timeout: Duration::from_secs(5),
            targets: super::targets::TargetPolicy::from_env(&tollgate_core::config::ProcessEnv),
            memory: tollgate_core::memory::MemoryBudget::from_env(
                &tollgate_core::config::ProcessEnv,
            ),
        }
    }
}

/// Failure to set the engine up (at init).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The HTTP client could not be built.
    #[error(
        "could not build the HTTP client for smoke checks: {0}; this is a bug or a broken TLS setup, please report it"
    )]
    Client(String),
}

/// Per-call adjustments, e.g. for a soak run in rounds (one round per
/// invocation of an ECS hook).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Attempts per check instead of each check's `retry.attempts`
    /// (`Some(1)`: no retries in this run).
    pub attempts: Option<u32>,
    /// Samples per attempt instead of each check's `samples`.
    pub samples: Option<u32>,
    /// Skip `initial_delay` (e.g. in the second and later rounds).
    pub skip_initial_delay: bool,
}

/// Runs specs. Build it once at init and share it (`Clone` is cheap): it
/// holds one HTTP client (rustls, redirects off, connection pool), plus a
/// second one without certificate verification. Both are built the first
/// time a check needs them, so an invocation that runs no check builds
/// neither ([`tollgate_core::tls`] holds the TLS configuration they share).
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: EngineConfig,
    client: OnceCell<Client>,
    insecure: OnceCell<Client>,
}

fn client(config: &EngineConfig, verify: bool) -> Result<Client, EngineError> {
    let builder = || {
        Client::builder()
            .redirect(Policy::none())
            .user_agent(config.user_agent.clone())
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .dns_resolver(Arc::new(config.targets.resolver()))
            .tls_danger_accept_invalid_certs(!verify)
            .tls_danger_accept_invalid_hostnames(!verify)
    };
    if verify {
        tollgate_core::tls::build_verifying(builder())
            .map_err(|e| EngineError::Client(e.to_string()))
    } else {
        builder()
            .build()
            .map_err(|e| EngineError::Client(e.without_url().to_string()))
    }
}

/// Where one check's run stands; read after the run, finished or not.
#[derive(Debug, Default)]
struct Slot {
    status: Option<CheckStatus>,
    reason: Option<String>,
    attempts: u32,
    requests: u32,
    latencies: Vec<Duration>,
    http_status: Option<u16>,
    samples: Option<SampleStats>,
    expectations: Vec<ExpectationResult>,
    started: Option<Instant>,
    ended: Option<Instant>,
    /// Stopped because the next step would end after the deadline.
    deadline_stop: bool,
}

struct Ctx<'a> {
    /// Bytes a check's parsed JSON body may take ([`Engine::memory_share`]).
    json_limit: u64,
    engine: &'a Inner,
    semaphore: &'a Semaphore,
    deadline: Instant,
    options: &'a RunOptions,
    redactor: &'a Redactor,
}

impl Engine {
    /// Builds the engine (its HTTP clients come on first use). Call once at init.
    pub fn new(config: EngineConfig) -> Result<Engine, EngineError> {
        Ok(Engine {
            inner: Arc::new(Inner {
                config,
                client: OnceCell::new(),
                insecure: OnceCell::new(),
            }),
        })
    }

    /// The settings the engine was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Runs every check of `spec` with `vars`, and returns by `deadline`
    /// (or the spec's own `deadline`, whichever comes first) with what is
    /// known by then. `Err` only for a spec error found when applying the
    /// variables (unknown variable, URL not absolute), before any request.
    pub async fn run(
        &self,
        spec: &Spec,
        vars: &Vars,
        deadline: Instant,
    ) -> Result<RunReport, SpecError> {
        self.run_with(spec, vars, deadline, &RunOptions::default())
            .await
    }

    /// Each running check's share of the function's memory: its body
    /// (`max_body`, held as bytes and as text) and at least as much again
    /// for the body parsed as JSON must fit, checked before any request.
    /// Returns what a parsed JSON body may take: half the rest of the share.
    /// Every run checks it; callers with a spec fixed at init (deploy-hook,
    /// `tollgate validate`) check it there too, so a spec that can never
    /// fit is refused before the first event.
    pub fn memory_share(&self, spec: &Spec) -> Result<u64, SpecError> {
        let config = &self.inner.config;
        let running = spec.concurrency.min(spec.checks.len()).max(1) as u64;
        let share = config.memory.work_bytes() / running;
        let mut json_limit = share;
        for (i, check) in spec.checks.iter().enumerate() {
            let max_body = check.max_body.unwrap_or(config.max_body_bytes) as u64;
            if share < 3 * max_body {
                return Err(SpecError::invalid(
                    &format!("checks[{i}].max_body"),
                    format!(
                        "{} checks at once with up to {} of body each do not fit in memory: \
                         each running check gets {} and needs three times its max_body (the \
                         body, its text, and room to read it as JSON); lower concurrency or \
                         max_body, or {}",
                        running,
                        size_text(max_body),
                        size_text(share),
                        config.memory.how_to_raise()
                    ),
                ));
            }
            // Half the rest: the count is an estimate, and the allocator
            // keeps some of what a parse frees.
            json_limit = json_limit.min((share - 2 * max_body) / 2);
        }
        Ok(json_limit)
    }

    /// [`Engine::run`] with per-call [`RunOptions`].
    pub async fn run_with(
        &self,
        spec: &Spec,
        vars: &Vars,
        deadline: Instant,
        options: &RunOptions,
    ) -> Result<RunReport, SpecError> {
        let started = Instant::now();
        let deadline = match spec.deadline {
            Some(d) => deadline.min(started + d),
            None => deadline,
        };
        let mut redactor = Redactor::default();
        for secret in vars.secret_values() {
            redactor.add(secret);
        }
        let prepared: Vec<Prepared> = spec
            .checks
            .iter()
            .map(|c| c.prepare(vars, &mut redactor))
            .collect::<Result<_, _>>()?;

        let json_limit = self.memory_share(spec)?;
        let semaphore = Semaphore::new(spec.concurrency);
        let ctx = Ctx {
            json_limit,
            engine: &self.inner,
            semaphore: &semaphore,
            deadline,
            options,
            redactor: &redactor,
        };
        let mut slots: Vec<Slot> = spec.checks.iter().map(|_| Slot::default()).collect();
        let mut stopped_by: Option<usize> = None;
        let deadline_reached = {
            let mut running: FuturesUnordered<_> = spec
                .checks
                .iter()
                .zip(&prepared)
                .zip(slots.iter_mut())
                .enumerate()
                .map(|(i, ((check, prep), slot))| run_check(&ctx, i, check, prep, slot))
                .collect();
            let drive = async {
                while let Some((i, status)) = running.next().await {
                    if status == CheckStatus::Failed && spec.fail_fast {
                        stopped_by = Some(i);
                        break;
                    }
                }
            };
            tokio::time::timeout_at(deadline, drive).await.is_err()
        };
        let end = RunEnd {
            started,
            ended: Instant::now(),
            deadline_reached,
            stopped_by,
        };
        Ok(build_report(spec, &prepared, slots, &redactor, &end))
    }
}

async fn run_check(
    ctx: &Ctx<'_>,
    index: usize,
    check: &Check,
    prep: &Prepared,
    slot: &mut Slot,
) -> (usize, CheckStatus) {
    slot.started = Some(Instant::now());
    let status = run_attempts(ctx, check, prep, slot).await;
    slot.status = Some(status);
    slot.ended = Some(Instant::now());
    (index, status)
}

async fn run_attempts(
    ctx: &Ctx<'_>,
    check: &Check,
    prep: &Prepared,
    slot: &mut Slot,
) -> CheckStatus {
    if !ctx.options.skip_initial_delay && !check.initial_delay.is_zero() {
        if Instant::now() + check.initial_delay >= ctx.deadline {
            slot.reason = Some(format!(
                "not started: initial_delay {} would end after the deadline",
                super::expect::ms_text(check.initial_delay)
            ));
            slot.deadline_stop = true;
            return CheckStatus::NotFinished;
        }
        tokio::time::sleep(check.initial_delay).await;
    }
    let cell = if check.tls_verify {
        &ctx.engine.client
    } else {
        &ctx.engine.insecure
    };
    let built = cell
        .get_or_try_init(|| async { client(&ctx.engine.config, check.tls_verify) })
        .await;
    let client = match built {
        Ok(c) => c,
        Err(e) => {
            slot.expectations = vec![ExpectationResult::new(
                "request",
                "a response",
                e.to_string(),
                false,
            )];
            return CheckStatus::Failed;
        }
    };
    let attempts = ctx.options.attempts.unwrap_or(check.retry.attempts).max(1);
    let samples = ctx.options.samples.unwrap_or(check.samples).max(1);
    let max_body = check.max_body.unwrap_or(ctx.engine.config.max_body_bytes);
    for attempt in 1..=attempts {
        slot.attempts = attempt;
        if run_attempt(ctx, client, check, prep, slot, samples, max_body).await {
            return CheckStatus::Passed;
        }
        if attempt < attempts {
            let wait = check.retry.wait_after(attempt);
            if Instant::now() + wait >= ctx.deadline {
                slot.reason = Some(format!(
                    "deadline: attempt {} of {attempts} would start after the deadline",
                    attempt + 1
                ));
                slot.deadline_stop = true;
                return CheckStatus::NotFinished;
            }
            tokio::time::sleep(wait).await;
        }
    }
    CheckStatus::Failed
}

/// One attempt: `samples` requests; passes when enough of them pass.
/// Stops early once the pass rate can no longer be reached.
async fn run_attempt(
    ctx: &Ctx<'_>,
    client: &Client,
    check: &Check,
    prep: &Prepared,
    slot: &mut Slot,
    samples: u32,
    max_body: usize,
) -> bool {
    let required = ((check.min_pass_rate * f64::from(samples)) - 1e-9)
        .ceil()
        .max(1.0) as u32;
    let required = required.min(samples);
    let allowed_failures = samples - required;
    let (mut passed, mut failed) = (0u32, 0u32);
    let mut first_failure: Option<Vec<ExpectationResult>> = None;
    for n in 0..samples {
        if n > 0 && !check.sample_interval.is_zero() {
            tokio::time::sleep(check.sample_interval).await;
        }
        let result = {
            // The semaphore is never closed; a failure here would be a bug.
            let _permit = ctx.semaphore.acquire().await;
            exchange(
                Via {
                    client,
                    targets: &ctx.engine.config.targets,
                },
                check,
                prep,
                max_body,
                ctx.redactor,
            )
            .await
        };
        slot.requests += 1;
        let expectations = match result {
            Ok(ex) => {
                slot.latencies.push(ex.latency);
                slot.http_status = Some(ex.status);
                let seen = Observed {
                    status: ex.status,
                    headers: &ex.headers,
                    body: &ex.body,
                    truncated: ex.truncated,
                    latency: ex.latency,
                    unfollowed_redirect: ex.unfollowed_redirect,
                };
                evaluate(
                    &check.expect,
                    &prep.expected,
                    &seen,
                    max_body,
                    ctx.json_limit,
                )
            }
            Err(text) => vec![ExpectationResult::new("request", "a response", text, false)],
        };
        let ok = expectations.iter().all(|e| e.passed);
        if ok {
            passed += 1;
        } else {
            failed += 1;
        }
        if samples == 1 {
            slot.expectations = expectations;
            return ok;
        }
        if !ok && first_failure.is_none() {
            first_failure = Some(expectations.clone());
        }
        let stats = SampleStats {
            sent: n + 1,
            passed,
            planned: samples,
            required,
            min_pass_rate: check.min_pass_rate,
        };
        let hopeless = failed > allowed_failures;
        let done = hopeless || n + 1 == samples;
        let sample_line = ExpectationResult::new(
            "samples",
            format!(
                ">= {} of {samples} passing (min_pass_rate {}%)",
                required,
                round_ms(check.min_pass_rate * 100.0)
            ),
            if hopeless && n + 1 < samples {
                format!(
                    "{failed} of {} failed; stopped early, the rate can no longer be met",
                    n + 1
                )
            } else {
                format!("{passed}/{} passed", n + 1)
            },
            passed >= required || !done,
        );
        let mut shown = vec![sample_line];
        match &first_failure {
            Some(f) => shown.extend(f.iter().cloned().map(|mut e| {
                if e.what != "request" {
                    e.what = format!("{} (first failing sample)", e.what);
                }
                e
            })),
            None => shown.extend(expectations),
        }
        slot.expectations = shown;
        slot.samples = Some(stats);
        if hopeless {
            return false;
        }
    }
    passed >= required
}

/// How the run ended.
#[derive(Clone, Copy)]
struct RunEnd {
    started: Instant,
    ended: Instant,
    /// The deadline cut the run.
    deadline_reached: bool,
    /// Index of the check whose failure stopped the run (fail_fast).
    stopped_by: Option<usize>,
}

fn build_report(
    spec: &Spec,
    prepared: &[Prepared],
    slots: Vec<Slot>,
    redactor: &Redactor,
    end: &RunEnd,
) -> RunReport {
    let RunEnd {
        started,
        ended,
        deadline_reached,
        stopped_by,
    } = *end;
    let stopped_name = stopped_by.map(|i| spec.checks[i].name.clone());
    let deadline_reached = deadline_reached || slots.iter().any(|s| s.deadline_stop);
    let mut all_latencies: Vec<f64> = Vec::new();
    let mut requests = 0;
    let checks: Vec<CheckResult> = spec
        .checks
        .iter()
        .zip(prepared)
        .zip(slots)
        .map(|((check, prep), slot)| {
            let status = slot.status.unwrap_or(CheckStatus::NotFinished);
            let reason = match (slot.status, slot.reason) {
                (Some(_), reason) => reason,
                (None, _) => Some(match (&stopped_name, slot.attempts) {
                    (Some(by), 0) => {
                        format!("not started: stopped by fail_fast after {by:?} failed")
                    }
                    (Some(by), n) => {
                        format!("stopped by fail_fast after {by:?} failed (during attempt {n})")
                    }
                    (None, 0) => "not started: deadline reached".to_owned(),
                    (None, n) => format!("deadline reached during attempt {n}"),
                }),
            };
            let latencies_ms: Vec<f64> = slot
                .latencies
                .iter()
                .map(|d| round_ms(d.as_secs_f64() * 1000.0))
                .collect();
            all_latencies.extend(&latencies_ms);
            requests += slot.requests;
            let mut expectations = slot.expectations;
            for e in &mut expectations {
                redactor.clean_in_place(&mut e.expected);
                redactor.clean_in_place(&mut e.actual);
            }
            let elapsed = match (slot.started, slot.ended) {
                (Some(s), Some(e)) => e - s,
                (Some(s), None) => ended - s,
                _ => Duration::ZERO,
            };
            CheckResult {
                name: check.name.clone(),
                status,
                reason: reason.map(|r| redactor.clean(&r)),
                method: check.method.to_string(),
                url: redactor.clean(&prep.shown_url),
                attempts: slot.attempts,
                requests: slot.requests,
                latencies_ms,
                http_status: slot.http_status,
                samples: slot.samples,
                expectations,
                elapsed_ms: round_ms(elapsed.as_secs_f64() * 1000.0),
            }
        })
        .collect();
    let count = |s: CheckStatus| checks.iter().filter(|c| c.status == s).count();
    let (passed, failed, unfinished) = (
        count(CheckStatus::Passed),
        count(CheckStatus::Failed),
        count(CheckStatus::NotFinished),
    );
    let outcome = if failed > 0 {
        Outcome::Failed
    } else if unfinished > 0 {
        Outcome::NotFinished
    } else {
        Outcome::Passed
    };
    RunReport {
        outcome,
        total: checks.len(),
        passed,
        failed,
        unfinished,
        deadline_reached,
        stopped_by: stopped_name,
        elapsed_ms: round_ms((ended - started).as_secs_f64() * 1000.0),
        requests,
        p50_ms: percentile(&mut all_latencies, 50.0),
        p95_ms: percentile(&mut all_latencies, 95.0),
        checks,
    }
}
