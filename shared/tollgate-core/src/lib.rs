//! # tollgate-core
//!
//! What every Tollgate crate may use and nothing else: the [`Secret`] type
//! that never prints, typed configuration from the environment
//! ([`config`]), memory budgets derived from the function's memory
//! ([`memory`]), document error text that never quotes the document
//! ([`doc_error`]), text helpers ([`text`]), the TLS configuration and its roots ([`tls`]),
//! logging ([`telemetry`]), the ports more than one function uses
//! ([`ports`]), secret references and their resolution ([`secret_ref`]),
//! the hook-failure record deploy-hook writes and the
//! notifier reads ([`hook_failures`]), the text of a metric gate's
//! failure, which the gate writes and the notifier reads ([`gate_report`]),
//! and the approval request's button contract between the notifier and the
//! approvals function ([`approval_request`]), and the same for an ECS
//! deployment paused at a lifecycle hook ([`ecs_pause_request`]), and for
//! a stage condition Slack may override ([`stage_condition_request`]).
//!
//! Invariant: depends on no other Tollgate crate and on no AWS SDK crate.

pub mod approval_request;
pub mod config;
pub mod doc_error;
pub mod ecs_pause_request;
pub mod gate_report;
pub mod hook_failures;
pub mod memory;
pub mod ports;
pub mod secret;
pub mod secret_ref;
pub mod stage_condition_request;
pub mod telemetry;
pub mod text;
pub mod tls;

pub use secret::Secret;
