//! The test fakes the ECS pause and stage-condition click tests share: a
//! pipelines port no such click may touch, and a chat port that records
//! every call.

use crate::ports::{ApprovalState, Chat, Pipelines, PortError, PutOutcome};
use serde_json::{Value, json};
use std::sync::Mutex;
use tollgate_core::approval_request::ApprovalRef;
use tollgate_core::secret::Secret;

#[derive(Debug)]
pub(crate) struct NoPipelines;

impl Pipelines for NoPipelines {
    async fn approval_state(&self, _a: &ApprovalRef) -> Result<ApprovalState, PortError> {
        panic!("a pause or override click asked CodePipeline")
    }
    async fn put_result(
        &self,
        _a: &ApprovalRef,
        _t: &Secret,
        _approved: bool,
        _s: &str,
    ) -> Result<PutOutcome, PortError> {
        panic!("a pause or override click decided an approval")
    }
    async fn action_outputs(
        &self,
        _a: &ApprovalRef,
        _action: &str,
    ) -> Result<Vec<crate::author::ActionOutput>, PortError> {
        panic!("the author rule applies to Approve only")
    }
}

#[derive(Debug, Default)]
pub(crate) struct FakeChat {
    pub(crate) calls: Mutex<Vec<(String, Value)>>,
}

impl FakeChat {
    pub(crate) fn calls(&self, method: &str) -> Vec<Value> {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn record(&self, m: &str, v: Value) {
        self.calls.lock().expect("lock").push((m.into(), v));
    }
}

impl Chat for FakeChat {
    async fn update(&self, channel: &str, ts: &str, mut message: Value) -> Result<(), PortError> {
        message["channel"] = json!(channel);
        message["ts"] = json!(ts);
        self.record("chat.update", message);
        Ok(())
    }
    async fn respond(&self, url: &str, mut message: Value) -> Result<(), PortError> {
        message["url"] = json!(url);
        self.record("respond", message);
        Ok(())
    }
    async fn open_view(&self, _trigger_id: &str, _view: Value) -> Result<(), PortError> {
        panic!("a pause or override click opened a view")
    }
    async fn group_members(&self, group: &str) -> Result<Vec<String>, PortError> {
        self.record("usergroups.users.list", json!({"usergroup": group}));
        Ok(if group == "S0APPROVERS" {
            vec!["U0GROUPMEMBER".into()]
        } else {
            vec![]
        })
    }
    async fn user_email(&self, _user: &str) -> Result<Option<String>, PortError> {
        panic!("the author rule applies to Approve only")
    }
}
