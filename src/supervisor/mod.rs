//! The orchestrator: state store and locks, observe → reconcile → plan → execute,
//! per-container supervision (exit watch, restart policy, healthchecks), log collection,
//! the per-project API socket and events.
//!
//! Data flow of `up`: the CLI loads the compose file into a `model::DesiredProject`;
//! `reconcile::reconcile_up` compares it with the observed `state::ProjectState` and returns a
//! `plan::Plan`; `execute::execute` walks the plan calling the `backend` traits.

pub mod api;
pub mod backend;
pub mod build;
pub mod daemon;
pub mod engine;
pub mod events;
pub mod execute;
pub mod fds;
pub mod journal;
pub mod logs;
pub mod model;
pub mod naming;
pub mod ops;
pub mod plan;
pub mod reconcile;
pub mod spec;
pub mod state;
pub mod stdin;
