//! rcompose: the command-line front (`cli`) and the per-project orchestrator (`supervisor`).
//! The binary in `main.rs` only parses arguments and dispatches here.

pub mod cli;
pub mod supervisor;
