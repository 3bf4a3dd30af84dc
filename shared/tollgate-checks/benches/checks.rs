//! Smoke-check engine benchmark.
//!
//! - `100 checks, 100 ms server, concurrency 20`: the target, at most
//!   0.7 s wall (ideal 0.5 s: five waves of twenty 100 ms requests).
//! - `100 checks, instant server, concurrency 20`: the same run against an
//!   endpoint that answers at once; wall time / 100 bounds the engine's
//!   per-check overhead (HTTP over loopback and the in-process server
//!   included).
//!
//! Run: `cargo bench -p tollgate-checks --bench checks`.

#[path = "../tests/checks_support/mod.rs"]
mod checks_support;

use checks_support::TestApp;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use tokio::time::Instant;
use tollgate_checks::{Engine, EngineConfig, Spec, Vars};

fn spec(path: &str, needle: &str) -> Spec {
    let checks: String = (0..100)
        .map(|i| {
            format!(
                "  - name: check-{i}\n    url: \"${{TARGET}}{path}?n={i}\"\n    expect:\n      status: 200\n      body: {{contains: {needle}}}\n      headers: {{content-type: {{contains: text}}}}\n"
            )
        })
        .collect();
    Spec::from_yaml_or_json(&format!("concurrency: 20\nchecks:\n{checks}")).expect("bench spec")
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let app = runtime.block_on(TestApp::start());
    let vars = Vars::new().with("TARGET", app.url());
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let slow = spec("/slow/100", "ok");
    let instant = spec("/text", "systems");

    let mut group = c.benchmark_group("checks");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("100 checks, 100 ms server, concurrency 20", |b| {
        b.to_async(&runtime).iter(|| async {
            let report = engine
                .run(&slow, &vars, Instant::now() + Duration::from_secs(30))
                .await
                .expect("runs");
            assert_eq!(report.passed, 100, "{}", report.summary_line(300));
            black_box(report)
        });
    });
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("100 checks, instant server, concurrency 20", |b| {
        b.to_async(&runtime).iter(|| async {
            let report = engine
                .run(&instant, &vars, Instant::now() + Duration::from_secs(30))
                .await
                .expect("runs");
            assert_eq!(report.passed, 100, "{}", report.summary_line(300));
            black_box(report)
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
