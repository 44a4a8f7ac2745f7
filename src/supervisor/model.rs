//! The desired state of a project as the supervisor needs it: services with their image,
//! config hash, replica count, dependencies and policies; networks and volumes by full name.
//! Built from the compose crate's typed `Project` (see `desired.rs`) and kept independent of
//! it, so the reconciler is pure and testable with hand-written values.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A `depends_on` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::ServiceStarted => "service_started",
            Condition::ServiceHealthy => "service_healthy",
            Condition::ServiceCompletedSuccessfully => "service_completed_successfully",
        }
    }
    /// What the progress line says while waiting.
    pub fn waiting_for(self) -> &'static str {
        match self {
            Condition::ServiceStarted => "started",
            Condition::ServiceHealthy => "healthy",
            Condition::ServiceCompletedSuccessfully => "completed successfully",
        }
    }
}

/// One entry of `depends_on`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub service: String,
    pub condition: Condition,
    /// `required: false`: a missing or failing dependency only warns.
    pub required: bool,
    /// `restart: true`: recreate/restart this service when the dependency is updated.
    pub restart: bool,
}

/// Restart policy (`restart:` or `deploy.restart_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    OnFailure {
        max: Option<u32>,
    },
    UnlessStopped,
}

impl RestartPolicy {
    /// Parse `no`, `always`, `on-failure[:max]`, `unless-stopped` (and the
    /// `deploy.restart_policy.condition` spellings `none`, `any`).
    pub fn parse(s: &str) -> Option<RestartPolicy> {
        match s {
            "no" | "none" | "" => Some(RestartPolicy::No),
            "always" | "any" => Some(RestartPolicy::Always),
            "unless-stopped" => Some(RestartPolicy::UnlessStopped),
            "on-failure" => Some(RestartPolicy::OnFailure { max: None }),
            _ => {
                let max = s.strip_prefix("on-failure:")?.parse().ok()?;
                Some(RestartPolicy::OnFailure { max: Some(max) })
            }
        }
    }

    /// Whether a container that exited with `code` after `restarts` restarts comes back.
    pub fn should_restart(self, code: i32, restarts: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure { max } => code != 0 && max.is_none_or(|m| restarts < m),
        }
    }

    /// Docker's backoff: 100 ms doubling per consecutive restart, capped at one minute.
    pub fn backoff(restarts: u32) -> Duration {
        let ms = 100u64.saturating_mul(1u64 << restarts.min(10));
        Duration::from_millis(ms.min(60_000))
    }
}

/// A healthcheck, normalized: `test` is the argv to exec (`CMD-SHELL` already wrapped in
/// `/bin/sh -c`); `None` overall means no healthcheck (absent or `NONE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
    pub start_interval: Duration,
}

impl Healthcheck {
    /// Docker's defaults: 30 s interval, 30 s timeout, 3 retries, 0 start period, 5 s start
    /// interval.
    pub fn with_defaults(test: Vec<String>) -> Self {
        Healthcheck {
            test,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            retries: 3,
            start_period: Duration::ZERO,
            start_interval: Duration::from_secs(5),
        }
    }
}

/// One service as the supervisor needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredService {
    pub name: String,
    pub image: String,
    pub config_hash: String,
    pub replicas: u32,
    pub depends_on: Vec<Dependency>,
    /// Full network names (`<project>_<name>`) the service joins.
    pub networks: Vec<String>,
    /// Full names of the named volumes the service mounts.
    pub volumes: Vec<String>,
    /// `pull_policy`: always, missing, never, build, daily, ...
    pub pull_policy: String,
    pub restart: RestartPolicy,
    pub healthcheck: Option<Healthcheck>,
    /// `container_name`: the name of the service's only container instead of
    /// `<project>-<service>-1`.
    #[serde(default)]
    pub container_name: Option<String>,
}

/// A network to create (unless external).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredNetwork {
    pub name: String,
    pub external: bool,
}

/// A named volume to create (unless external).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredVolume {
    pub name: String,
    pub external: bool,
}

/// The desired state of a project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredProject {
    pub name: String,
    pub services: BTreeMap<String, DesiredService>,
    pub networks: BTreeMap<String, DesiredNetwork>,
    pub volumes: BTreeMap<String, DesiredVolume>,
}

impl DesiredProject {
    /// Start order: waves of services whose dependencies are all in earlier waves; sorted by
    /// name within a wave. Dependencies on services that do not exist are ignored here (the
    /// loader rejects them, or they are `required: false`). Cycles end up in a last wave.
    pub fn waves(&self) -> Vec<Vec<String>> {
        let mut placed: BTreeMap<&str, usize> = BTreeMap::new();
        let mut waves: Vec<Vec<String>> = Vec::new();
        let mut remaining: Vec<&DesiredService> = self.services.values().collect();
        while !remaining.is_empty() {
            let (ready, rest): (Vec<&DesiredService>, Vec<&DesiredService>) =
                remaining.iter().partition(|s| {
                    s.depends_on.iter().all(|d| {
                        placed.contains_key(d.service.as_str())
                            || !self.services.contains_key(&d.service)
                    })
                });
            let ready = if ready.is_empty() {
                rest.clone()
            } else {
                ready
            };
            let wave_no = waves.len();
            let mut wave: Vec<String> = ready.iter().map(|s| s.name.clone()).collect();
            wave.sort();
            for s in &ready {
                placed.insert(s.name.as_str(), wave_no);
            }
            remaining.retain(|s| !placed.contains_key(s.name.as_str()));
            waves.push(wave);
        }
        waves
    }

    /// `names` plus everything they depend on, transitively (unless `no_deps`).
    pub fn select(&self, names: &[String], no_deps: bool) -> Vec<String> {
        if names.is_empty() {
            return self.services.keys().cloned().collect();
        }
        let mut out: Vec<String> = Vec::new();
        let mut stack: Vec<String> = names.to_vec();
        while let Some(n) = stack.pop() {
            if out.contains(&n) {
                continue;
            }
            if let Some(s) = self.services.get(&n) {
                if !no_deps {
                    stack.extend(s.depends_on.iter().map(|d| d.service.clone()));
                }
            }
            out.push(n);
        }
        out.sort();
        out
    }
}
