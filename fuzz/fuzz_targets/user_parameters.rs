//! CodePipeline `UserParameters` (a free string the pipeline author types):
//! parsing must end in parameters or an actionable error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match tollgate_pipeline::params::parse(Some(text)) {
        Ok(p) => {
            let _ = format!("{p:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
