//! The orchestrator: state store and locks, observe → reconcile → plan → execute,
//! per-container supervision (exit watch, restart policy, healthchecks), log collection,
//! the per-project API socket and events.
