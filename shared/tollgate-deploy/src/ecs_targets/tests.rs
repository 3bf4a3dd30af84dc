//! Mapping and verification as tables, and `resolve` against fakes.

use super::*;
use crate::discovery::fakes::FakeElb;
use std::sync::Mutex;

pub(crate) const BLUE: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/web-blue/1111111111111111";
pub(crate) const GREEN: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/web-green/2222222222222222";
pub(crate) const RULE: &str = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener-rule/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee";

/// Rule weights: green's group, blue's.
pub(crate) fn weights(green: f64, blue: f64) -> Vec<(String, f64)> {
    w(green, blue)
}

fn w(green: f64, blue: f64) -> Vec<(String, f64)> {
    vec![(GREEN.to_owned(), green), (BLUE.to_owned(), blue)]
}

fn recorded() -> Candidates {
    Candidates::Recorded {
        green: GREEN.to_owned(),
        blue: BLUE.to_owned(),
    }
}

/// The documented set-up (alternate = green), and the swapped one a second
/// deployment has.
fn pair(swapped: bool) -> Candidates {
    if swapped {
        Candidates::Pair {
            primary: GREEN.to_owned(),
            alternate: BLUE.to_owned(),
        }
    } else {
        Candidates::Pair {
            primary: BLUE.to_owned(),
            alternate: GREEN.to_owned(),
        }
    }
}

#[derive(Debug, PartialEq)]
enum Want {
    Verified,
    Unconfirmed,
    Contradicted,
    Ambiguous,
}

fn kind(d: &Decision) -> Want {
    match d {
        Decision::Verified { green, blue } => {
            assert_eq!(
                (green.as_str(), blue.as_str()),
                (GREEN, BLUE),
                "green is green"
            );
            Want::Verified
        }
        Decision::Unconfirmed { green, .. } => {
            assert_eq!(green, GREEN);
            Want::Unconfirmed
        }
        Decision::Contradicted(_) => Want::Contradicted,
        Decision::Ambiguous(_) => Want::Ambiguous,
    }
}

use LifecycleStage::{
    PostProductionTrafficShift as Post, PreProductionTrafficShift as Pre,
    ProductionTrafficShift as Prod,
};

/// (case, candidates, stage, green's event weight, rule weights (green's
/// group, blue's), want).
type Row = (
    &'static str,
    Candidates,
    LifecycleStage,
    Option<f64>,
    Option<(f64, f64)>,
    Want,
);

#[test]
fn decisions_by_stage_weights_and_rule() {
    // (case, candidates, stage, green's event weight, rule weights (green TG, blue TG), want)
    let table: Vec<Row> = vec![
        // All at once.
        (
            "all-at-once, before the move",
            recorded(),
            Prod,
            Some(100.0),
            Some((0.0, 100.0)),
            Want::Unconfirmed,
        ),
        (
            "all-at-once, after the move",
            recorded(),
            Prod,
            Some(100.0),
            Some((100.0, 0.0)),
            Want::Unconfirmed,
        ),
        (
            "all-at-once, after the shift",
            recorded(),
            Post,
            Some(100.0),
            Some((100.0, 0.0)),
            Want::Verified,
        ),
        (
            "all-at-once, post shift, blue measured as green",
            recorded(),
            Post,
            Some(100.0),
            Some((0.0, 100.0)),
            Want::Contradicted,
        ),
        (
            "pair: all-at-once during the shift is ambiguous",
            pair(false),
            Prod,
            Some(100.0),
            Some((100.0, 0.0)),
            Want::Ambiguous,
        ),
        (
            "pair: after the shift, the documented set-up",
            pair(false),
            Post,
            Some(100.0),
            Some((100.0, 0.0)),
            Want::Verified,
        ),
        (
            "pair: after the shift, a swapped second deployment",
            pair(true),
            Post,
            Some(100.0),
            Some((100.0, 0.0)),
            Want::Verified,
        ),
        // Linear / canary steps.
        (
            "linear 10 %, before the move",
            recorded(),
            Prod,
            Some(10.0),
            Some((0.0, 100.0)),
            Want::Verified,
        ),
        (
            "linear 10 %, after the move",
            recorded(),
            Prod,
            Some(10.0),
            Some((10.0, 90.0)),
            Want::Verified,
        ),
        (
            "linear 20 %, rule still at 10 %",
            recorded(),
            Prod,
            Some(20.0),
            Some((10.0, 90.0)),
            Want::Verified,
        ),
        (
            "linear 20 %, rule at 80 %: blue and green swapped",
            recorded(),
            Prod,
            Some(20.0),
            Some((80.0, 20.0)),
            Want::Contradicted,
        ),
        (
            "pair swapped, linear 10 %",
            pair(true),
            Prod,
            Some(10.0),
            Some((10.0, 90.0)),
            Want::Verified,
        ),
        (
            "pair, linear 10 % before the move",
            pair(false),
            Pre,
            Some(10.0),
            Some((0.0, 100.0)),
            Want::Verified,
        ),
        (
            "canary 50 %: either way round",
            recorded(),
            Prod,
            Some(50.0),
            Some((50.0, 50.0)),
            Want::Unconfirmed,
        ),
        (
            "pair, canary 50 %: ambiguous",
            pair(false),
            Prod,
            Some(50.0),
            Some((50.0, 50.0)),
            Want::Ambiguous,
        ),
        (
            "linear 60 %, rule at 30 %: swapped would be 70 %",
            recorded(),
            Prod,
            Some(60.0),
            Some((30.0, 70.0)),
            Want::Verified,
        ),
        (
            "linear 60 %, rule at 45 %: either way round",
            recorded(),
            Prod,
            Some(60.0),
            Some((45.0, 55.0)),
            Want::Unconfirmed,
        ),
        (
            "weights in ELB's 0-999 scale",
            recorded(),
            Post,
            Some(100.0),
            Some((999.0, 0.0)),
            Want::Verified,
        ),
        // Rollback weights (green 0): the rule must not send green anything.
        (
            "rollback weights, rule back on blue",
            recorded(),
            Prod,
            Some(0.0),
            Some((0.0, 100.0)),
            Want::Verified,
        ),
        (
            "rollback weights, rule on green",
            recorded(),
            Prod,
            Some(0.0),
            Some((100.0, 0.0)),
            Want::Contradicted,
        ),
        // Missing information.
        (
            "no weights in the event",
            recorded(),
            Prod,
            None,
            Some((10.0, 90.0)),
            Want::Unconfirmed,
        ),
        (
            "no rule read (NLB listener)",
            recorded(),
            Post,
            Some(100.0),
            None,
            Want::Unconfirmed,
        ),
        (
            "pair without a rule",
            pair(false),
            Post,
            Some(100.0),
            None,
            Want::Ambiguous,
        ),
        (
            "pair, neither way fits",
            pair(false),
            Post,
            Some(60.0),
            Some((10.0, 90.0)),
            Want::Contradicted,
        ),
    ];
    for (case, cands, stage, g, rule, want) in table {
        let weights = rule.map(|(g, b)| w(g, b));
        let d = decide(&cands, weights.as_deref(), Window::at(&stage, g));
        assert_eq!(kind(&d), want, "{case}: {d:?}");
    }
}

#[test]
fn a_rule_without_both_groups_contradicts() {
    let only_blue = vec![(BLUE.to_owned(), 1.0)];
    let d = decide(
        &recorded(),
        Some(&only_blue),
        Window::at(&Post, Some(100.0)),
    );
    let Decision::Contradicted(why) = d else {
        panic!("{d:?}")
    };
    assert!(
        why.contains("does not forward to both target groups web-green and web-blue"),
        "{why}"
    );
}

#[test]
fn a_contradiction_says_what_the_rule_shows() {
    let d = decide(
        &recorded(),
        Some(&w(80.0, 20.0)),
        Window::at(&Prod, Some(20.0)),
    );
    assert_eq!(
        d,
        Decision::Contradicted(
            "the production listener rule sends 80 % to web-green, which ECS records as the new \
             revision's target group, but the new revision may have 0–20 % of production traffic \
             at this hook"
                .to_owned()
        )
    );
}

#[test]
fn dimensions_come_from_the_arns() {
    assert_eq!(
        target_group_dimension(GREEN),
        Some("targetgroup/web-green/2222222222222222")
    );
    assert_eq!(
        load_balancer_of_rule(RULE).as_deref(),
        Some("app/web/50dc6c495c0c9188")
    );
    assert_eq!(
        load_balancer_of_rule(
            "arn:aws:elasticloadbalancing:eu-west-1:1:listener/net/edge/0123456789abcdef/aaaabbbbccccdddd"
        )
        .as_deref(),
        Some("net/edge/0123456789abcdef")
    );
    assert_eq!(
        load_balancer_of_rule("arn:aws:elasticloadbalancing:eu-west-1:1:listener-rule/app"),
        None
    );
    assert_eq!(load_balancer_of_rule(GREEN), None);
}

// ---------------------------------------------------------------- resolve

/// Answers the registered revisions and one rule's weights (`None`:
/// denied); records the calls.
#[derive(Debug, Default)]
pub(crate) struct FakeTargets {
    pub revisions: Vec<RevisionTargets>,
    pub weights: Option<Vec<(String, f64)>>,
    pub calls: Mutex<Vec<String>>,
}

impl TargetReader for FakeTargets {
    fn service_revisions<'a>(
        &'a self,
        arns: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<RevisionTargets>, String>> {
        Box::pin(async move {
            self.calls
                .lock()
                .expect("lock")
                .push(format!("DescribeServiceRevisions {}", arns.len()));
            Ok(self
                .revisions
                .iter()
                .filter(|r| arns.contains(&r.arn))
                .cloned()
                .collect())
        })
    }
    fn forward_weights<'a>(
        &'a self,
        rule_arn: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, f64)>, String>> {
        Box::pin(async move {
            self.calls
                .lock()
                .expect("lock")
                .push(format!("DescribeRules {rule_arn}"));
            self.weights.clone().ok_or_else(|| {
                "elasticloadbalancing:DescribeRules was denied; grant it to the function's role"
                    .to_owned()
            })
        })
    }
}

const SAMPLE: &str =
    include_str!("../../../../events/deploy-hook/ecs-post-production-traffic-shift.json");

pub(crate) const OLD: &str =
    "arn:aws:ecs:eu-west-1:111122223333:service-revision/web-cluster/web/8823015467219033412";

/// After every shift: green 100, blue 0.
fn event() -> EcsHookEvent {
    let mut e: EcsHookEvent = serde_json::from_str(SAMPLE).expect("sample");
    let green = e.execution_details.target_service_revision_arn.clone();
    e.execution_details.production_traffic_weights = [(green, 100.0), (OLD.to_owned(), 0.0)].into();
    e
}

pub(crate) fn revision(arn: &str, resolved: Option<&str>, pair: (&str, &str)) -> RevisionTargets {
    RevisionTargets {
        arn: arn.to_owned(),
        resolved: resolved
            .map(|tg| ResolvedTarget {
                target_group_arn: tg.to_owned(),
                production_listener_rule: Some(RULE.to_owned()),
            })
            .into_iter()
            .collect(),
        pairs: vec![TargetPair {
            primary: pair.0.to_owned(),
            alternate: pair.1.to_owned(),
            production_listener_rule: Some(RULE.to_owned()),
        }],
    }
}

fn revisions_of(e: &EcsHookEvent) -> (String, String) {
    let green = e.execution_details.target_service_revision_arn.clone();
    let blue = e
        .execution_details
        .production_traffic_weights
        .keys()
        .find(|k| **k != green)
        .expect("blue in the sample")
        .clone();
    (green, blue)
}

#[tokio::test]
async fn resolve_names_green_and_blue_from_the_recorded_revisions() {
    let e = event();
    let (g, b) = revisions_of(&e);
    // A second deployment: green is in the primary (swapped) group.
    let reader = FakeTargets {
        revisions: vec![
            revision(&g, Some(BLUE), (BLUE, GREEN)),
            revision(&b, Some(GREEN), (BLUE, GREEN)),
        ],
        weights: Some(vec![(BLUE.to_owned(), 100.0), (GREEN.to_owned(), 0.0)]),
        ..FakeTargets::default()
    };
    let r = resolve(&reader, &FakeElb::default(), &e)
        .await
        .expect("resolved");
    assert_eq!(
        r.green.target_group,
        "targetgroup/web-blue/1111111111111111"
    );
    assert_eq!(
        r.blue.target_group,
        "targetgroup/web-green/2222222222222222"
    );
    assert_eq!(
        r.green.load_balancer.as_deref(),
        Some("app/web/50dc6c495c0c9188")
    );
    assert!(r.verified, "{r:?}");
    assert_eq!(
        reader.calls.lock().expect("lock").clone(),
        [
            "DescribeServiceRevisions 2".to_owned(),
            format!("DescribeRules {RULE}")
        ]
    );
}

#[tokio::test]
async fn resolve_fails_a_contradiction_naming_the_fix() {
    let e = event();
    let (g, b) = revisions_of(&e);
    let reader = FakeTargets {
        revisions: vec![
            revision(&g, Some(GREEN), (BLUE, GREEN)),
            revision(&b, Some(BLUE), (BLUE, GREEN)),
        ],
        // After every shift, the rule still sends everything to "blue".
        weights: Some(w(0.0, 100.0)),
        ..FakeTargets::default()
    };
    let err = resolve(&reader, &FakeElb::default(), &e)
        .await
        .expect_err("contradicted");
    assert!(
        err.starts_with("the metric gate at POST_PRODUCTION_TRAFFIC_SHIFT could not find"),
        "{err}"
    );
    assert!(err.contains("sends 0 % to web-green"), "{err}");
    assert!(err.ends_with(FIX), "{err}");
}

#[tokio::test]
async fn resolve_without_advanced_configuration_fails_naming_the_fix() {
    let e = event();
    let (g, _) = revisions_of(&e);
    let reader = FakeTargets {
        revisions: vec![RevisionTargets {
            arn: g.clone(),
            ..RevisionTargets::default()
        }],
        weights: Some(w(100.0, 0.0)),
        ..FakeTargets::default()
    };
    let err = resolve(&reader, &FakeElb::default(), &e)
        .await
        .expect_err("no pair");
    assert!(
        err.contains("has no load balancer with an advanced (blue/green) configuration"),
        "{err}"
    );
    assert!(err.contains("hookDetails.gateVariables"), "{err}");
}

#[tokio::test]
async fn resolve_with_a_denied_rule_read_fails_closed() {
    let e = event();
    let (g, b) = revisions_of(&e);
    let reader = FakeTargets {
        revisions: vec![
            revision(&g, Some(GREEN), (BLUE, GREEN)),
            revision(&b, Some(BLUE), (BLUE, GREEN)),
        ],
        weights: None,
        ..FakeTargets::default()
    };
    let err = resolve(&reader, &FakeElb::default(), &e)
        .await
        .expect_err("denied");
    assert!(err.contains("DescribeRules was denied"), "{err}");
}

#[tokio::test]
async fn resolve_from_the_pair_only_where_the_rule_tells() {
    let e = event();
    let (g, _) = revisions_of(&e);
    // No resolved configuration; after the shift the rule tells.
    let reader = FakeTargets {
        revisions: vec![revision(&g, None, (GREEN, BLUE))],
        weights: Some(w(100.0, 0.0)),
        ..FakeTargets::default()
    };
    let r = resolve(&reader, &FakeElb::default(), &e)
        .await
        .expect("resolved");
    assert_eq!(
        r.green.target_group,
        "targetgroup/web-green/2222222222222222"
    );
    assert_eq!(r.blue.target_group, "targetgroup/web-blue/1111111111111111");
    // During an all-at-once shift it cannot.
    let mut during = e.clone();
    during.lifecycle_stage = LifecycleStage::ProductionTrafficShift;
    let err = resolve(&reader, &FakeElb::default(), &during)
        .await
        .expect_err("ambiguous");
    assert!(
        err.contains("fit green at 0–100 % with either target group"),
        "{err}"
    );
}

#[test]
fn carried_names_are_read_back_only_for_this_execution_and_well_formed() {
    let e = event();
    let resolved = Resolved {
        green: Names {
            target_group: "targetgroup/web-green/2222222222222222".into(),
            load_balancer: Some("app/web/50dc6c495c0c9188".into()),
        },
        blue: Names {
            target_group: "targetgroup/web-blue/1111111111111111".into(),
            load_balancer: Some("app/web/50dc6c495c0c9188".into()),
        },
        verified: true,
        note: String::new(),
    };
    let value = Carried::value(&e, &resolved).expect("verified is carried");
    let mut with = e.clone();
    with.hook_details.insert(CARRY_KEY.into(), value.clone());
    let back = Carried::read(&with).expect("read back");
    assert_eq!(
        (back.green, back.blue),
        (resolved.green.clone(), resolved.blue.clone())
    );
    // Another execution's, or a tampered value, is ignored.
    let mut other = with.clone();
    other.execution_id = "another".into();
    assert_eq!(Carried::read(&other), None);
    for bad in [
        "targetgroup/web-green/2222222222222222\" , \"x",
        "targetgroup/web green/2222222222222222",
        "loadbalancer/web/2222222222222222",
        "targetgroup/web-green/zz",
    ] {
        let mut v = value.clone();
        v["green"]["TARGET_GROUP"] = serde_json::json!(bad);
        let mut t = e.clone();
        t.hook_details.insert(CARRY_KEY.into(), v);
        assert_eq!(Carried::read(&t), None, "{bad}");
    }
    let unverified = Resolved {
        verified: false,
        ..resolved
    };
    assert_eq!(
        Carried::value(&e, &unverified),
        None,
        "unconfirmed names are found again"
    );
}
