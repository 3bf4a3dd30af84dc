//! Notifier rules documents (YAML/JSON from env or SSM): parsing, the
//! destination check, and deciding for each sample event kind must never
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use tollgate_notify::{events, model::Notification, rules};

const EVENTS: [&str; 3] = [
    r#"{"version":"0","id":"1","detail-type":"CodePipeline Pipeline Execution State Change","source":"aws.codepipeline","account":"111122223333","time":"2024-05-14T15:26:31Z","region":"eu-west-1","resources":["arn:aws:codepipeline:eu-west-1:111122223333:payments-api"],"detail":{"pipeline":"payments-api","execution-id":"e1","state":"FAILED","version":3}}"#,
    r#"{"version":"0","id":"2","detail-type":"ECS Deployment State Change","source":"aws.ecs","account":"111122223333","time":"2024-05-14T15:26:31Z","region":"eu-west-1","resources":["arn:aws:ecs:eu-west-1:111122223333:service/prod/web"],"detail":{"eventType":"ERROR","eventName":"SERVICE_DEPLOYMENT_FAILED","deploymentId":"ecs-svc/1","reason":"circuit breaker"}}"#,
    r#"{"version":"0","id":"3","detail-type":"Something Else","source":"aws.other","account":"111122223333","time":"2024-05-14T15:26:31Z","region":"eu-west-1","resources":[],"detail":{}}"#,
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (rules, destinations) = match rules::parse_document(text) {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let known: BTreeSet<String> = destinations
        .keys()
        .cloned()
        .chain(["slack", "teams", "webhook", "sns"].map(str::to_owned))
        .collect();
    let _ = rules.check_destinations(&known);
    let all: Vec<String> = known.into_iter().collect();
    for raw in EVENTS {
        let n = Notification::from_event(&events::parse_str(raw));
        let _ = rules.decide(&n, &all);
        let _ = rules.could_notify(&n);
    }
    let _ = rules::glob_match(text, "payments-api");
});
