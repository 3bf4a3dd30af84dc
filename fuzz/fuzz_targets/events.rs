//! Every accepted event payload, parsed from arbitrary bytes the way the
//! functions receive them: the CodePipeline job (and the id salvage used to
//! report on a broken job), the CodeDeploy and ECS lifecycle hooks (and the
//! shape dispatch of deploy-hook), and every EventBridge event the notifier
//! consumes (lenient parse, normalisation into a notification, default
//! routing). None of these may panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_report::events::{codedeploy, codepipeline, ecs_hook};
use tollgate_notify::{events, model::Notification, rules::Rules};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The notifier parses raw text leniently: never fails.
    let event = events::parse_str(text);
    let n = Notification::from_event(&event);
    let _ = n.title();
    let _ = n.severity();
    let _ = n.time_display();
    let _ = Rules::default().decide(&n, &["webhook".to_owned()]);
    let _ = format!("{n:?}");

    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    let _ = codepipeline::salvage_job_id(&value);
    if let Ok(job) = serde_json::from_value::<codepipeline::CodePipelineEvent>(value.clone()) {
        let _ = format!("{job:?}");
    }
    let _ = tollgate_deploy::dispatch::recognise(&value);
    if let Ok(hook) = serde_json::from_value::<codedeploy::CodeDeployHookEvent>(value.clone()) {
        let _ = format!("{hook:?}");
    }
    if let Ok(ecs) = serde_json::from_value::<ecs_hook::EcsHookEvent>(value.clone()) {
        let _ = ecs.execution_details.cluster_and_service();
        let _ = format!("{ecs:?}");
    }
    let _ = events::parse(value);
});
