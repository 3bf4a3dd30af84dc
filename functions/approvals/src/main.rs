//! approvals: the Slack interactivity endpoint behind a Lambda function URL
//! (AuthType NONE: Slack cannot sign with SigV4, so every request is
//! authenticated here by Slack's own signature). A click on an approval
//! request's Approve or Reject button approves or rejects the CodePipeline
//! manual approval through `PutApprovalResult`, and the message shows who
//! decided. The logic is `tollgate-approvals`; the adapters are
//! [`aws::codepipeline`] and [`slack`].
//!
//! A configuration problem (a secret that cannot be read, a bad approvers
//! document) does not stop the function: every request is answered 503 and
//! logged with the configuration-error alert, so it is seen and counted.

mod aws;
mod config;
mod slack;

use tollgate_approvals::Approvals;
use tollgate_runtime::{Function, Init};

async fn init(init: Init) -> impl Function {
    let state = config::ready(&init.sdk).await;
    Approvals::new(state)
}

fn main() -> Result<(), lambda_runtime::Error> {
    tollgate_runtime::run(init)
}
