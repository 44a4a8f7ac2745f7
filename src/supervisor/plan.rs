//! The plan: a DAG of steps the executor walks in parallel. Each step is one action on one
//! resource, the cause that made the reconciler choose it, and the steps it must wait for.
//! `up --dry-run` prints `Plan::text()`; tests assert on that text.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::model::Condition;

/// One action on one resource. The executor maps each to a backend call, with no decisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    CreateNetwork {
        network: String,
    },
    CreateVolume {
        volume: String,
    },
    PullImage {
        service: String,
        image: String,
        policy: String,
    },
    CreateContainer {
        service: String,
        container: String,
        number: u32,
    },
    StartContainer {
        service: String,
        container: String,
    },
    RestartContainer {
        service: String,
        container: String,
        timeout: Duration,
    },
    /// Gate: the dependents of `service` start only once it meets `condition`.
    AwaitCondition {
        service: String,
        condition: Condition,
        required: bool,
    },
    StopContainer {
        service: String,
        container: String,
        timeout: Duration,
    },
    RemoveContainer {
        service: String,
        container: String,
    },
    RemoveNetwork {
        network: String,
    },
    RemoveVolume {
        volume: String,
    },
}

impl Action {
    /// `create container demo-web-1`, as the plan text says it.
    pub fn describe(&self) -> String {
        match self {
            Action::CreateNetwork { network } => format!("create network {network}"),
            Action::CreateVolume { volume } => format!("create volume {volume}"),
            Action::PullImage { image, .. } => format!("pull image {image}"),
            Action::CreateContainer { container, .. } => format!("create container {container}"),
            Action::StartContainer { container, .. } => format!("start container {container}"),
            Action::RestartContainer { container, .. } => {
                format!("restart container {container}")
            }
            Action::AwaitCondition {
                service, condition, ..
            } => format!("wait for service {service} {}", condition.waiting_for()),
            Action::StopContainer { container, .. } => format!("stop container {container}"),
            Action::RemoveContainer { container, .. } => format!("remove container {container}"),
            Action::RemoveNetwork { network } => format!("remove network {network}"),
            Action::RemoveVolume { volume } => format!("remove volume {volume}"),
        }
    }
}

/// A step of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// 1-based, in the order steps were added (deterministic).
    pub id: usize,
    pub action: Action,
    /// Why the reconciler chose this step.
    pub cause: String,
    /// Steps that must succeed first.
    pub after: Vec<usize>,
}

/// The plan: steps in a deterministic order, ids 1..=n, every dependency pointing backwards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Things the user should know that are not steps (orphans kept, say).
    pub warnings: Vec<String>,
}

impl Plan {
    /// Add a step; returns its id.
    pub fn add(&mut self, action: Action, cause: impl Into<String>, after: &[usize]) -> usize {
        let id = self.steps.len() + 1;
        let mut after: Vec<usize> = after.to_vec();
        after.sort_unstable();
        after.dedup();
        debug_assert!(after.iter().all(|a| *a < id));
        self.steps.push(Step {
            id,
            action,
            cause: cause.into(),
            after,
        });
        id
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The plan as text, one step per line:
    /// `3. start container demo-db-1 (after 2): created by this plan`.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        if self.steps.is_empty() {
            out.push_str("nothing to do\n");
        }
        for s in &self.steps {
            let _ = write!(out, "{}. {}", s.id, s.action.describe());
            if !s.after.is_empty() {
                let after: Vec<String> = s.after.iter().map(|a| a.to_string()).collect();
                let _ = write!(out, " (after {})", after.join(", "));
            }
            let _ = writeln!(out, ": {}", s.cause);
        }
        out
    }
}
