//! Notifier parse + render benchmark over the fixture set (`events/notifier/`).
//!
//! One iteration takes every fixture from raw JSON text through parsing, the
//! normalised notification, the default rules' decision, and all four
//! payloads serialised to the bytes that would be sent (Slack, Teams,
//! webhook JSON; SNS subject + body). No enrichment (that is network time).
//! Criterion reports the throughput in events per second; the target
//! is at least 10,000 events/s on one core (the bench is single-threaded).
//!
//! Run: `cargo bench -p tollgate-notify --bench notify`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tollgate_notify::destinations;
use tollgate_notify::events;
use tollgate_notify::model::Notification;
use tollgate_notify::rules::{Decision, Rules};

fn fixtures() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/notifier");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("events/notifier exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("readable fixture"))
        .collect()
}

fn one(text: &str, rules: &Rules, all: &[String]) -> usize {
    let event = events::parse_str(text);
    let n = Notification::from_event(&event);
    let decision = rules.decide(&n, all);
    let slack = destinations::slack::render(&n).to_string();
    let teams = destinations::teams::render(&n).to_string();
    let hook = destinations::webhook::render(&n).to_string();
    let sns = destinations::sns::render(&n);
    let sent = usize::from(matches!(decision, Decision::Send(_)));
    slack.len() + teams.len() + hook.len() + sns.subject.len() + sns.message.len() + sent
}

fn bench(c: &mut Criterion) {
    let texts = fixtures();
    let rules = Rules::default();
    let all = vec!["slack".to_owned(), "teams".to_owned()];
    let mut group = c.benchmark_group("notify");
    group.throughput(Throughput::Elements(texts.len() as u64));
    group.bench_function(format!("parse+render {} fixtures", texts.len()), |b| {
        b.iter(|| {
            let mut total = 0usize;
            for t in &texts {
                total += one(black_box(t), &rules, &all);
            }
            black_box(total)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
