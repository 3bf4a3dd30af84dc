//! A decision whose `PutApprovalResult` gave no answer either way (it timed
//! out, the connection dropped after the request was sent, CodePipeline
//! answered with a server error): it may have been recorded. The endpoint
//! never says "not recorded" then (review finding). It reads the approval
//! again, within the time it kept back for that ([`REREAD_RESERVE`]), and:
//!
//! - the approval shows this very decision (our summary, which names the
//!   clicker, and the same outcome): it was recorded, and is shown so;
//! - it shows another decision, or it expired: that is shown, as for a
//!   double click;
//! - it still waits, or cannot be read: the clicker is told that the
//!   decision *may* have been recorded and where to check it (the
//!   execution in the CodePipeline console), and the buttons stay.

use crate::app::{Outcome, settled};
use crate::ports::ApprovalState;
use crate::render::escape;
use std::time::Duration;
use tollgate_core::approval_request::ApprovalRef;
use tollgate_core::text::ellipsize;

/// Time kept back from `PutApprovalResult` for the re-read after an
/// unsure answer (and the message update after it).
pub const REREAD_RESERVE: Duration = Duration::from_millis(900);

/// What became of a decision after an unsure `PutApprovalResult`, from
/// the state read again (`None`: it could not be read).
pub fn after_unsure(
    state: Option<&ApprovalState>,
    approval: &ApprovalRef,
    approved: bool,
    summary: &str,
    detail: &str,
    console: Option<String>,
) -> Outcome {
    let unconfirmed = |still_waiting: Option<bool>| Outcome::Unconfirmed {
        detail: detail.to_owned(),
        still_waiting,
        console: console.clone(),
    };
    let Some(state) = state else {
        return unconfirmed(None);
    };
    match settled(state, approval) {
        Some(Outcome::AlreadyDecided { approved: was })
            if was == approved && state.summary.as_deref() == Some(summary) =>
        {
            Outcome::Recorded { approved }
        }
        Some(o @ (Outcome::AlreadyDecided { .. } | Outcome::Expired)) => o,
        None => unconfirmed(Some(true)),
        Some(_) => unconfirmed(Some(false)),
    }
}

/// The reject dialog's error after an unsure `PutApprovalResult`: Slack
/// shows at most 150 characters there, as plain text, so it is short,
/// complete and links nothing.
pub const DIALOG_UNCONFIRMED: &str = "Not confirmed: it may have been recorded. Check the execution in the console before submitting again.";

/// What the clicker is told (`mrkdwn`: Slack markup with a link; else
/// plain text, for a dialog's error).
pub fn unconfirmed_text(
    detail: &str,
    still_waiting: Option<bool>,
    console: Option<&str>,
    mrkdwn: bool,
) -> String {
    let detail = ellipsize(detail, 200);
    let state = match still_waiting {
        Some(true) => {
            "CodePipeline still shows the approval waiting, but the decision may still land"
        }
        Some(false) => "read again, the approval no longer waits for this execution's decision",
        None => "the approval's state could not be read again",
    };
    let check = match (console, mrkdwn) {
        (Some(url), true) => format!("<{url}|the execution in the CodePipeline console>"),
        (Some(url), false) => format!("the execution in the CodePipeline console ({url})"),
        (None, _) => "the pipeline in the CodePipeline console".to_owned(),
    };
    if mrkdwn {
        format!(
            ":warning: CodePipeline did not confirm the decision ({}): it *may have been recorded*; {state}. Check {check} before deciding again.",
            escape(&detail)
        )
    } else {
        format!(
            "Not confirmed ({detail}): it may have been recorded; {state}. Check {check} before deciding again."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: &str, summary: Option<&str>, error: Option<&str>) -> ApprovalState {
        ApprovalState {
            execution: Some("e-1".into()),
            status: Some(status.into()),
            summary: summary.map(str::to_owned),
            error: error.map(str::to_owned),
            ..ApprovalState::default()
        }
    }

    #[test]
    fn the_state_read_again_decides_what_is_shown() {
        let a = ApprovalRef::new("pay", "Prod", "Approve", "e-1");
        let ours = "Approved in Slack by ana (U0APPROVER)";
        let console = Some("https://console.example/x".to_owned());
        let after = |s: Option<&ApprovalState>, approved| {
            after_unsure(s, &a, approved, ours, "timed out", console.clone())
        };
        // Ours landed.
        assert_eq!(
            after(Some(&state("Succeeded", Some(ours), None)), true),
            Outcome::Recorded { approved: true }
        );
        // Someone else's landed (another summary), or the opposite one.
        assert_eq!(
            after(Some(&state("Succeeded", Some("by bo"), None)), true),
            Outcome::AlreadyDecided { approved: true }
        );
        assert_eq!(
            after(Some(&state("Failed", Some("by bo"), None)), true),
            Outcome::AlreadyDecided { approved: false }
        );
        assert_eq!(
            after(
                Some(&state(
                    "Failed",
                    None,
                    Some("The approval action timed out")
                )),
                true
            ),
            Outcome::Expired
        );
        // Still waiting, unreadable, or another execution now: unsure.
        for (s, waiting) in [
            (Some(state("InProgress", None, None)), Some(true)),
            (None, None),
            (
                Some(ApprovalState {
                    execution: Some("e-2".into()),
                    ..state("InProgress", None, None)
                }),
                Some(false),
            ),
        ] {
            assert_eq!(
                after(s.as_ref(), true),
                Outcome::Unconfirmed {
                    detail: "timed out".into(),
                    still_waiting: waiting,
                    console: console.clone()
                }
            );
        }
    }

    use crate::interaction::tests::{click, form};
    use crate::tests::{
        FakeChat, FakePipeline, POLICY, SECRET, app, now, request, send, state as ready, value,
    };
    use tollgate_core::approval_request::APPROVE;

    // Paused time: the hanging PutApprovalResult is abandoned at its
    // deadline without waiting for it.
    #[tokio::test(start_paused = true)]
    async fn a_timed_out_put_that_landed_is_shown_as_recorded() {
        let p = FakePipeline::waiting("e-1");
        *p.hang.lock().expect("lock") = Some(true);
        let a = app(p, FakeChat::default(), POLICY);
        send(&a, request(&form(&click(APPROVE, &value())), now(), SECRET)).await;
        let r = ready(&a);
        assert_eq!(r.pipelines.puts.lock().expect("lock").len(), 1);
        let updates = r.chat.calls("chat.update");
        assert_eq!(updates.len(), 1, "{updates:?}");
        assert!(
            updates[0]
                .to_string()
                .contains("*Approved* by <@U0APPROVER>"),
            "{updates:?}"
        );
        assert!(r.chat.calls("respond").is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_out_put_not_seen_is_may_have_been_recorded_never_not_recorded() {
        let p = FakePipeline::waiting("e-1");
        *p.hang.lock().expect("lock") = Some(false);
        let a = app(p, FakeChat::default(), POLICY);
        send(&a, request(&form(&click(APPROVE, &value())), now(), SECRET)).await;
        let r = ready(&a);
        assert!(r.chat.calls("chat.update").is_empty(), "the buttons stay");
        let said = r.chat.calls("respond");
        assert_eq!(said.len(), 1, "{said:?}");
        let text = said[0]["text"].as_str().expect("text");
        assert!(text.contains("*may have been recorded*"), "{text}");
        assert!(text.contains("still shows the approval waiting"), "{text}");
        assert!(!text.contains("Not recorded"), "{text}");
    }

    #[test]
    fn the_text_never_says_nothing_happened() {
        let t = unconfirmed_text(
            "PutApprovalResult <timed> out",
            Some(true),
            Some("https://c/x"),
            true,
        );
        assert!(t.contains("*may have been recorded*"), "{t}");
        assert!(t.contains("<https://c/x|"), "{t}");
        assert!(t.contains("&lt;timed&gt;"), "escaped: {t}");
        assert!(!t.to_lowercase().contains("not recorded"), "{t}");
        let read = unconfirmed_text("x", Some(false), None, true);
        assert!(read.contains("no longer waits"), "{read}");
        assert!(!read.contains("could not be read"), "{read}");
        let plain = unconfirmed_text("x", None, None, false);
        assert!(plain.contains("may have been recorded"), "{plain}");
        assert!(plain.contains("could not be read again"), "{plain}");
        assert!(DIALOG_UNCONFIRMED.chars().count() <= 150);
        assert!(DIALOG_UNCONFIRMED.contains("may have been recorded"));
    }
}
