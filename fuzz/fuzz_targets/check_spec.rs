//! Check specs (YAML or JSON, from env, SSM, UserParameters or an artifact):
//! parsing and the spec's derived views must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_checks::Spec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Spec::from_yaml_or_json(text) {
        Ok(spec) => {
            let _ = spec.check_names().count();
            let _ = spec.variables();
            let _ = spec.concurrency();
            let _ = spec.deadline();
            let _ = format!("{spec:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
