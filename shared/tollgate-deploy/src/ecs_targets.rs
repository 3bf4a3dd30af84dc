//! Green's and blue's target groups for the metric gate of an ECS native
//! blue/green hook, found from ECS and the load balancer (the way the
//! CodeDeploy gate finds them from the task sets), verified, fail closed.
//!
//! What is documented (AWS, read 2026-11):
//! - `DescribeServiceRevisions` returns, per revision, `loadBalancers[]`
//!   (the service's configured `targetGroupArn` and
//!   `advancedConfiguration.{alternateTargetGroupArn, productionListenerRule,
//!   testListenerRule}`) and `resolvedConfiguration.loadBalancers[]`
//!   (`targetGroupArn`, `productionListenerRule`): "the actual resources your
//!   service revision uses, such as which target groups serve traffic"
//!   (<https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ResolvedConfiguration.html>,
//!   <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ServiceRevisionLoadBalancer.html>).
//! - For a service's set-up, the primary target group is blue's (current
//!   production) and the alternate green's
//!   (<https://docs.aws.amazon.com/AmazonECS/latest/developerguide/alb-resources-for-blue-green.html>).
//! - ECS shifts production traffic by changing the weights of the
//!   production listener rule's forward action over the two target groups.
//!
//! What is not documented, so not relied on: whether ECS swaps primary and
//! alternate after a completed deployment. Users report that ECS alternates
//! the two target groups between successive deployments
//! (hashicorp/terraform-provider-aws#45678; the rule ends at green 100 /
//! blue 0 and the next deployment's green is in the former blue group), so
//! "alternate = green" can be wrong from the second deployment on.
//!
//! Hence the order of sources:
//! 1. **Recorded**: green's revision's `resolvedConfiguration` names its
//!    target group; blue's is blue's revision's (the other revision in the
//!    event's weights), else the other group of the pair.
//! 2. **Pair only** (no resolved configuration): the pair
//!    `{targetGroupArn, alternateTargetGroupArn}`; which one is green is
//!    decided by the production listener rule's weights alone, and only
//!    where they are unambiguous.
//!
//! Verification against the rule (elbv2 `DescribeRules`, forward action
//! target group weights), given green's production weight `g` from the
//! event. The hook may run before or after ECS moves the rule's weights at
//! a step, and in a forward deployment green's share only grows, so at
//! `PRE_PRODUCTION_TRAFFIC_SHIFT` and `PRODUCTION_TRAFFIC_SHIFT` green's
//! share on the rule lies in `[0, g]` (the previous step's share, or this
//! one's); at `POST_PRODUCTION_TRAFFIC_SHIFT` every shift is done and it is
//! exactly `g`. A mapping whose green share falls outside that window is
//! contradicted. The check is unambiguous where exactly one of the two
//! mappings (green, blue) and (blue, green) fits the window: e.g. a linear
//! step with `g` < 50 (the swapped mapping would give green at least 50),
//! or any `POST_PRODUCTION_TRAFFIC_SHIFT`. It cannot tell them apart for an
//! all-at-once shift during `PRODUCTION_TRAFFIC_SHIFT` (`[0, 100]` fits
//! both), or when the event has no weights, or for a Network Load Balancer
//! (its "rule" is a listener; not read).
//!
//! Outcomes: a contradicted recorded mapping fails the hook; a pair that no
//! rule state fits fails it; a pair both mappings fit fails it too (which
//! one is green is unknown), naming `hookDetails.gateVariables` /
//! `gateBaselineVariables`; a recorded mapping the rule cannot confirm is
//! used (it is ECS's own record, not an assumption about swapping) and
//! checked again at the next invocation. For an all-at-once shift every
//! invocation of PRODUCTION_TRAFFIC_SHIFT sees the same 0–100 % window, so
//! there the mapping is never confirmed during that hook; the first check
//! that can contradict it is POST_PRODUCTION_TRAFFIC_SHIFT's (exactly
//! green's weight), whose gate then fails the deployment before it
//! completes. Behind a Network Load Balancer it is never confirmed.

use crate::discovery::{ListenerReader, load_balancer_dimension};
use crate::gate_hook::BoxFuture;
use serde::{Deserialize, Serialize};
use std::fmt;
use tollgate_report::events::ecs_hook::{EcsHookEvent, LifecycleStage};

/// One service revision's load balancer records
/// (`DescribeServiceRevisions`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RevisionTargets {
    /// The revision's ARN.
    pub arn: String,
    /// `resolvedConfiguration.loadBalancers[]`: the target groups that
    /// serve this revision.
    pub resolved: Vec<ResolvedTarget>,
    /// `loadBalancers[]` with an `advancedConfiguration` (blue/green pairs).
    pub pairs: Vec<TargetPair>,
}

/// `ServiceRevisionLoadBalancer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTarget {
    /// The target group serving the revision.
    pub target_group_arn: String,
    /// The production listener rule (ALB) or listener (NLB) routing to it.
    pub production_listener_rule: Option<String>,
}

/// `LoadBalancer` with `advancedConfiguration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPair {
    /// `targetGroupArn` (the primary).
    pub primary: String,
    /// `advancedConfiguration.alternateTargetGroupArn`.
    pub alternate: String,
    /// `advancedConfiguration.productionListenerRule`.
    pub production_listener_rule: Option<String>,
}

/// Port: the ECS and ELB reads that find the target groups. Object safe,
/// so [`crate::gate_hook::Gates`] holds one without a type parameter.
pub trait TargetReader: Send + Sync + fmt::Debug {
    /// `ecs:DescribeServiceRevisions` (at most 20 ARNs). `Err` says what
    /// failed and what to do.
    fn service_revisions<'a>(
        &'a self,
        arns: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<RevisionTargets>, String>>;
    /// `elasticloadbalancing:DescribeRules` for one rule ARN: its forward
    /// action's target groups and weights.
    fn forward_weights<'a>(
        &'a self,
        rule_arn: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, f64)>, String>>;
}

/// No reader: every call is refused (the gate then needs the hook's
/// `gateVariables`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTargets;

impl TargetReader for NoTargets {
    fn service_revisions<'a>(
        &'a self,
        _arns: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<RevisionTargets>, String>> {
        Box::pin(async {
            Err("this deploy-hook has no ECS client to read service revisions".to_owned())
        })
    }
    fn forward_weights<'a>(
        &'a self,
        _rule_arn: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, f64)>, String>> {
        Box::pin(async { Err("this deploy-hook has no ELB client to read rules".to_owned()) })
    }
}

/// Where green's share of the production rule may be at this hook.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Lowest share (percent).
    pub lo: f64,
    /// Highest share (percent).
    pub hi: f64,
}

/// Tolerance of the share comparison (weights are integers 0–999 that
/// ELB may scale).
const SLACK: f64 = 0.5;

impl Window {
    /// The window for `stage` and green's production weight from the event
    /// (see the module docs).
    pub fn at(stage: &LifecycleStage, green_weight: Option<f64>) -> Self {
        match (stage, green_weight) {
            (LifecycleStage::PostProductionTrafficShift, Some(g)) => Self { lo: g, hi: g },
            (
                LifecycleStage::PreProductionTrafficShift | LifecycleStage::ProductionTrafficShift,
                Some(g),
            ) => Self { lo: 0.0, hi: g },
            _ => Self { lo: 0.0, hi: 100.0 },
        }
    }

    fn holds(self, share: f64) -> bool {
        share >= self.lo - SLACK && share <= self.hi + SLACK
    }

    fn text(self) -> String {
        use tollgate_checks::gate::format_value as v;
        if (self.hi - self.lo).abs() < f64::EPSILON {
            format!("{} %", v(self.lo))
        } else {
            format!("{}–{} %", v(self.lo), v(self.hi))
        }
    }
}

/// The candidates for (green, blue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidates {
    /// From the revisions' resolved configurations.
    Recorded {
        /// Green's target group ARN.
        green: String,
        /// Blue's.
        blue: String,
    },
    /// Only the configured pair is known.
    Pair {
        /// `targetGroupArn`.
        primary: String,
        /// `alternateTargetGroupArn`.
        alternate: String,
    },
}

/// The outcome of checking the candidates against the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The rule confirms (green, blue).
    Verified {
        /// Green's target group ARN.
        green: String,
        /// Blue's.
        blue: String,
    },
    /// Recorded by ECS; the rule cannot tell at this step (why).
    Unconfirmed {
        /// Green's target group ARN.
        green: String,
        /// Blue's.
        blue: String,
        /// Why the rule cannot tell.
        why: String,
    },
    /// The rule contradicts the mapping, or fits neither (why).
    Contradicted(String),
    /// Only a pair is known and the rule fits both ways (why).
    Ambiguous(String),
}

/// Green's share (percent) of the rule's weights over the two groups, when
/// the rule forwards to both.
fn share(weights: &[(String, f64)], green: &str, blue: &str) -> Option<f64> {
    let w = |tg: &str| weights.iter().find(|(a, _)| a == tg).map(|(_, w)| *w);
    let (g, b) = (w(green)?, w(blue)?);
    (g + b > 0.0).then(|| 100.0 * g / (g + b))
}

/// Short name of a target group ARN (`targetgroup/<name>/<id>` → name).
fn tg_name(arn: &str) -> &str {
    target_group_dimension(arn)
        .and_then(|d| d.split('/').nth(1))
        .unwrap_or(arn)
}

/// Checks the candidates against the production rule's weights (`None`:
/// not read, e.g. a Network Load Balancer's listener) in `window`.
pub fn decide(
    candidates: &Candidates,
    weights: Option<&[(String, f64)]>,
    window: Window,
) -> Decision {
    let unknown = window.lo <= SLACK && window.hi >= 100.0 - SLACK;
    let fits = |green: &str, blue: &str| -> Option<(bool, f64)> {
        let w = weights?;
        let s = share(w, green, blue)?;
        Some((window.holds(s), s))
    };
    let rule_missing_both = |a: &str, b: &str| {
        format!(
            "the production listener rule does not forward to both target groups {} and {} (it \
             forwards to {}); ECS shifts traffic between the two on that rule",
            tg_name(a),
            tg_name(b),
            weights
                .map(|w| w
                    .iter()
                    .map(|(a, x)| format!(
                        "{} {}",
                        tg_name(a),
                        tollgate_checks::gate::format_value(*x)
                    ))
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        )
    };
    match candidates {
        Candidates::Recorded { green, blue } => {
            if weights.is_none() {
                return Decision::Unconfirmed {
                    green: green.clone(),
                    blue: blue.clone(),
                    why: "the production listener rule was not read (a listener, or none recorded)"
                        .to_owned(),
                };
            }
            match (fits(green, blue), fits(blue, green)) {
                (None, _) => Decision::Contradicted(rule_missing_both(green, blue)),
                (Some((false, s)), _) => Decision::Contradicted(format!(
                    "the production listener rule sends {} % to {}, which ECS records as the new \
                     revision's target group, but the new revision may have {} of production \
                     traffic at this hook",
                    tollgate_checks::gate::format_value(s),
                    tg_name(green),
                    window.text()
                )),
                (Some((true, _)), Some((false, _))) => Decision::Verified {
                    green: green.clone(),
                    blue: blue.clone(),
                },
                (Some((true, _)), _) => Decision::Unconfirmed {
                    green: green.clone(),
                    blue: blue.clone(),
                    why: if unknown {
                        "green may have any share of the rule at this hook".to_owned()
                    } else {
                        format!(
                            "the rule's weights fit green at {} either way round",
                            window.text()
                        )
                    },
                },
            }
        }
        Candidates::Pair { primary, alternate } => {
            let Some(_) = weights else {
                return Decision::Ambiguous(
                    "the service revision records no resolved target group, and the production \
                     listener rule was not read, so which target group is green's is unknown"
                        .to_owned(),
                );
            };
            // The documented set-up first: alternate = green.
            match (fits(alternate, primary), fits(primary, alternate)) {
                (None, _) | (_, None) => {
                    Decision::Contradicted(rule_missing_both(primary, alternate))
                }
                (Some((true, _)), Some((false, _))) => Decision::Verified {
                    green: alternate.clone(),
                    blue: primary.clone(),
                },
                (Some((false, _)), Some((true, _))) => Decision::Verified {
                    green: primary.clone(),
                    blue: alternate.clone(),
                },
                (Some((false, s)), Some((false, _))) => Decision::Contradicted(format!(
                    "the production listener rule's weights ({} % to {}) fit neither target \
                     group as the new revision's with {} of production traffic at this hook",
                    tollgate_checks::gate::format_value(s),
                    tg_name(alternate),
                    window.text()
                )),
                (Some((true, _)), Some((true, _))) => Decision::Ambiguous(format!(
                    "the service revision records no resolved target group, and the production \
                     listener rule's weights fit green at {} with either target group ({} or {})",
                    window.text(),
                    tg_name(alternate),
                    tg_name(primary)
                )),
            }
        }
    }
}

/// CloudWatch's `TargetGroup` dimension of a target group ARN:
/// `targetgroup/<name>/<id>`.
pub fn target_group_dimension(arn: &str) -> Option<&str> {
    arn.find(":targetgroup/").map(|i| &arn[i + 1..])
}

/// CloudWatch's `LoadBalancer` dimension from a listener rule or listener
/// ARN (`…:listener-rule/app/<name>/<id>/<listener>/<rule>` or
/// `…:listener/net/<name>/<id>/<listener>`): `app/<name>/<id>`.
pub fn load_balancer_of_rule(arn: &str) -> Option<String> {
    let rest = arn
        .split_once(":listener-rule/")
        .or_else(|| arn.split_once(":listener/"))?
        .1;
    let parts: Vec<&str> = rest.split('/').collect();
    (parts.len() >= 3 && parts[..3].iter().all(|p| !p.is_empty())).then(|| parts[..3].join("/"))
}

/// Green's (and blue's) names as the gate's templates use them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Names {
    /// `TARGET_GROUP`: `targetgroup/<name>/<id>`.
    #[serde(rename = "TARGET_GROUP")]
    pub target_group: String,
    /// `LOAD_BALANCER`: `app/<name>/<id>`, when known.
    #[serde(
        rename = "LOAD_BALANCER",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub load_balancer: Option<String>,
}

impl Names {
    /// As template variables.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut v = vec![("TARGET_GROUP".to_owned(), self.target_group.clone())];
        if let Some(lb) = &self.load_balancer {
            v.push(("LOAD_BALANCER".to_owned(), lb.clone()));
        }
        v
    }

    /// Whether both names have CloudWatch's shapes (names only: a carried
    /// value is never used for anything else).
    fn well_formed(&self) -> bool {
        fn dim(kind: &[&str], v: &str) -> bool {
            let p: Vec<&str> = v.split('/').collect();
            p.len() == 3
                && kind.contains(&p[0])
                && (1..=32).contains(&p[1].len())
                && p[1].chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && (1..=32).contains(&p[2].len())
                && p[2].chars().all(|c| c.is_ascii_hexdigit())
        }
        dim(&["targetgroup"], &self.target_group)
            && self
                .load_balancer
                .as_deref()
                .is_none_or(|lb| dim(&["app", "net", "gwy"], lb))
    }
}

/// What the gate uses, and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Green's names.
    pub green: Names,
    /// Blue's names.
    pub blue: Names,
    /// Whether the rule confirmed the mapping (then it is carried to the
    /// next invocation and not read again).
    pub verified: bool,
    /// How it was found (for the log).
    pub note: String,
}

/// `hookDetails` key carrying verified names between `IN_PROGRESS`
/// invocations of one hook execution.
pub const CARRY_KEY: &str = "tollgateTargets";

/// The carried form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carried {
    /// The hook execution the names were found for.
    #[serde(rename = "k")]
    pub execution_id: String,
    /// Green's.
    pub green: Names,
    /// Blue's.
    pub blue: Names,
}

impl Carried {
    /// Reads the carried names back: only for this execution and only when
    /// every value has CloudWatch's shape; anything else is ignored (the
    /// names are found again).
    pub fn read(event: &EcsHookEvent) -> Option<Resolved> {
        let v = event.hook_details.get(CARRY_KEY)?;
        let c: Carried = match serde_json::from_value(v.clone()) {
            Ok(c) => c,
            Err(_) => {
                tracing::warn!(
                    "ignoring unreadable hookDetails.{CARRY_KEY}; finding the target groups again"
                );
                return None;
            }
        };
        if c.execution_id != event.execution_id || !c.green.well_formed() || !c.blue.well_formed() {
            tracing::warn!(
                "ignoring hookDetails.{CARRY_KEY} of another execution or with malformed names; finding the target groups again"
            );
            return None;
        }
        Some(Resolved {
            green: c.green,
            blue: c.blue,
            verified: true,
            note: "carried from the previous invocation".to_owned(),
        })
    }

    /// The value to carry, when `resolved` was verified.
    pub fn value(event: &EcsHookEvent, resolved: &Resolved) -> Option<serde_json::Value> {
        resolved.verified.then(|| {
            serde_json::to_value(Carried {
                execution_id: event.execution_id.clone(),
                green: resolved.green.clone(),
                blue: resolved.blue.clone(),
            })
            .unwrap_or(serde_json::Value::Null)
        })
    }
}

/// The fix every failure names.
pub const FIX: &str = "set hookDetails.gateVariables (green's TARGET_GROUP and LOAD_BALANCER, \
     e.g. {\"TARGET_GROUP\": \"targetgroup/web-green/0123456789abcdef\", \"LOAD_BALANCER\": \
     \"app/web/0123456789abcdef\"}) and hookDetails.gateBaselineVariables (blue's) in the \
     service's hook configuration";

/// The blue revision: the other revision with the most production traffic
/// in the event (else test traffic).
fn blue_revision(event: &EcsHookEvent) -> Option<String> {
    let d = &event.execution_details;
    let other = |w: &std::collections::BTreeMap<String, f64>| {
        w.iter()
            .filter(|(a, _)| **a != d.target_service_revision_arn)
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(a, _)| a.clone())
    };
    other(&d.production_traffic_weights).or_else(|| other(&d.test_traffic_weights))
}

/// Finds green's and blue's target groups for this hook (see the module
/// docs). `Err` is why the gate cannot use them, ending in [`FIX`].
pub async fn resolve<L: ListenerReader>(
    reader: &dyn TargetReader,
    elb: &L,
    event: &EcsHookEvent,
) -> Result<Resolved, String> {
    let stage = &event.lifecycle_stage;
    let fail = |why: String| {
        Err(format!(
            "the metric gate at {stage} could not find the new and old revisions' target groups: \
             {why}; {FIX}"
        ))
    };
    let green_arn = event.execution_details.target_service_revision_arn.clone();
    let blue_arn = blue_revision(event);
    let mut arns = vec![green_arn.clone()];
    arns.extend(blue_arn.iter().cloned());
    let records = match reader.service_revisions(&arns).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let Some(green_rec) = records.iter().find(|r| r.arn == green_arn) else {
        return fail(format!("ECS did not describe service revision {green_arn}"));
    };
    let blue_rec = blue_arn
        .as_ref()
        .and_then(|b| records.iter().find(|r| &r.arn == b));
    if green_rec.pairs.len() > 1 || green_rec.resolved.len() > 1 {
        return fail(
            "the service has several load balancer target groups, so which one to measure is a \
             choice"
                .to_owned(),
        );
    }
    let pair = green_rec.pairs.first();
    let resolved_green = green_rec.resolved.first();
    let (candidates, source) = match resolved_green {
        Some(rg) => {
            let recorded_blue = blue_rec
                .and_then(|b| b.resolved.first())
                .map(|b| b.target_group_arn.clone())
                .filter(|b| *b != rg.target_group_arn);
            let other = pair.and_then(|p| {
                if p.primary == rg.target_group_arn {
                    Some(p.alternate.clone())
                } else if p.alternate == rg.target_group_arn {
                    Some(p.primary.clone())
                } else {
                    None
                }
            });
            let Some(blue) = recorded_blue.or(other) else {
                return fail(format!(
                    "the old revision's target group is not recorded and {} is not one of a \
                     blue/green pair",
                    tg_name(&rg.target_group_arn)
                ));
            };
            (
                Candidates::Recorded {
                    green: rg.target_group_arn.clone(),
                    blue,
                },
                "the service revisions' resolved configuration",
            )
        }
        None => match pair {
            Some(p) => (
                Candidates::Pair {
                    primary: p.primary.clone(),
                    alternate: p.alternate.clone(),
                },
                "the blue/green pair and the production listener rule",
            ),
            None => {
                return fail(format!(
                    "service revision {green_arn} has no load balancer with an advanced \
                     (blue/green) configuration"
                ));
            }
        },
    };
    let rule = resolved_green
        .and_then(|r| r.production_listener_rule.clone())
        .or_else(|| pair.and_then(|p| p.production_listener_rule.clone()));
    let weights = match rule.as_deref().filter(|r| r.contains(":listener-rule/")) {
        Some(r) => match reader.forward_weights(r).await {
            Ok(w) => Some(w),
            Err(e) => return fail(e),
        },
        None => None,
    };
    let d = &event.execution_details;
    let window = Window::at(
        stage,
        d.production_traffic_weights
            .get(&d.target_service_revision_arn)
            .copied(),
    );
    let (green, blue, verified, why) = match decide(&candidates, weights.as_deref(), window) {
        Decision::Verified { green, blue } => (green, blue, true, None),
        Decision::Unconfirmed { green, blue, why } => (green, blue, false, Some(why)),
        Decision::Contradicted(why) | Decision::Ambiguous(why) => return fail(why),
    };
    let names = |arn: &str| target_group_dimension(arn).map(str::to_owned);
    let (Some(green_tg), Some(blue_tg)) = (names(&green), names(&blue)) else {
        return fail("a target group ARN has no targetgroup/<name>/<id> part".to_owned());
    };
    let load_balancer = match rule.as_deref().and_then(load_balancer_of_rule) {
        Some(lb) => Some(lb),
        None => elb
            .describe_target_groups(&[tg_name(&green).to_owned()])
            .await
            .ok()
            .and_then(|g| {
                g.into_iter()
                    .find(|t| t.arn == green)
                    .and_then(|t| t.load_balancer_arns.first().cloned())
            })
            .and_then(|a| load_balancer_dimension(&a).map(str::to_owned)),
    };
    let note = match why {
        None => format!("from {source}, confirmed by the production listener rule's weights"),
        Some(why) => format!(
            "from {source}; not confirmed at this invocation ({why}), checked again at the next"
        ),
    };
    Ok(Resolved {
        green: Names {
            target_group: green_tg,
            load_balancer: load_balancer.clone(),
        },
        blue: Names {
            target_group: blue_tg,
            load_balancer,
        },
        verified,
        note,
    })
}

#[cfg(test)]
pub(crate) mod tests;
