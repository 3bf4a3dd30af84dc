//! # tollgate-test-support
//!
//! Test scaffolding, a dev-dependency only: one fake per shared port and
//! one loopback HTTP stub, so no test rewrites them, and the user documents
//! every parser is tested against ([`documents`]).
//!
//! Invariant: never a normal dependency of anything; depends on
//! `tollgate-core` and `tollgate-report` for the ports it fakes.

pub mod documents;
pub mod http;
pub mod parameters;
pub mod reporters;
pub mod slack;

/// A fake environment for code that reads variables through a function
/// (`var(name)`), from `(name, value)` pairs.
pub fn fake_env(
    pairs: &'static [(&'static str, &'static str)],
) -> impl Fn(&str) -> Option<std::ffi::OsString> {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| std::ffi::OsString::from(v))
    }
}
