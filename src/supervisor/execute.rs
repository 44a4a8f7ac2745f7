//! The executor: walks a `Plan` as a DAG, running every step whose predecessors succeeded, in
//! parallel (up to `--parallel`), on plain threads (backends are sync: the runtime and network
//! crates block on the kernel). No decisions here: a failed step skips its dependents, and
//! the error says which step failed and why. A failed `required: false` gate only warns.

use std::sync::mpsc;

use super::backend::{BackendError, Backends};
use super::events::{Event, EventSink, Resource};
use super::plan::{Action, Plan};

/// One step that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    pub step: usize,
    pub what: String,
    pub reason: String,
}

/// The plan did not run to the end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.failures))]
pub struct ExecuteError {
    pub failures: Vec<StepFailure>,
}

fn render(failures: &[StepFailure]) -> String {
    failures
        .iter()
        .map(|f| format!("{}: {}", f.what, f.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Running,
    Done,
    Failed,
    Skipped,
}

/// Progress names of an action: (resource, name, working status, done status).
fn progress(action: &Action) -> (Resource, &str, &'static str, &'static str) {
    match action {
        Action::CreateNetwork { network } => (Resource::Network, network, "Creating", "Created"),
        Action::RemoveNetwork { network } => (Resource::Network, network, "Removing", "Removed"),
        Action::CreateVolume { volume } => (Resource::Volume, volume, "Creating", "Created"),
        Action::RemoveVolume { volume } => (Resource::Volume, volume, "Removing", "Removed"),
        Action::PullImage { image, .. } => (Resource::Image, image, "Pulling", "Pulled"),
        Action::CreateContainer { container, .. } => {
            (Resource::Container, container, "Creating", "Created")
        }
        Action::StartContainer { container, .. } => {
            (Resource::Container, container, "Starting", "Started")
        }
        Action::RestartContainer { container, .. } => {
            (Resource::Container, container, "Restarting", "Started")
        }
        Action::StopContainer { container, .. } => {
            (Resource::Container, container, "Stopping", "Stopped")
        }
        Action::RemoveContainer { container, .. } => {
            (Resource::Container, container, "Removing", "Removed")
        }
        Action::AwaitCondition {
            service, condition, ..
        } => (
            Resource::Service,
            service,
            "Waiting",
            match condition {
                super::model::Condition::ServiceStarted => "Started",
                super::model::Condition::ServiceHealthy => "Healthy",
                super::model::Condition::ServiceCompletedSuccessfully => "Exited",
            },
        ),
    }
}

fn run_step(action: &Action, b: &Backends<'_>) -> Result<(), BackendError> {
    match action {
        Action::CreateNetwork { network } => b.networks.create_network(network),
        Action::RemoveNetwork { network } => b.networks.remove_network(network),
        Action::CreateVolume { volume } => b.volumes.create_volume(volume),
        Action::RemoveVolume { volume } => b.volumes.remove_volume(volume),
        Action::PullImage { image, policy, .. } => b.images.pull(image, policy),
        Action::CreateContainer {
            service,
            container,
            number,
        } => b.containers.create(service, container, *number),
        Action::StartContainer { container, .. } => b.containers.start(container),
        Action::RestartContainer {
            container, timeout, ..
        } => {
            b.containers.stop(container, *timeout)?;
            b.containers.start(container)
        }
        Action::StopContainer {
            container, timeout, ..
        } => b.containers.stop(container, *timeout),
        Action::RemoveContainer { container, .. } => b.containers.remove(container),
        Action::AwaitCondition {
            service, condition, ..
        } => b.containers.await_condition(service, *condition),
    }
}

/// Run `plan`; `parallel` bounds concurrent steps (0: no bound).
pub fn execute(
    plan: &Plan,
    backends: &Backends<'_>,
    events: &dyn EventSink,
    parallel: usize,
) -> Result<(), ExecuteError> {
    let n = plan.steps.len();
    let limit = if parallel == 0 { usize::MAX } else { parallel };
    let mut status = vec![Status::Pending; n];
    let mut failures: Vec<StepFailure> = Vec::new();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, Result<(), BackendError>)>();
        let mut running = 0usize;
        loop {
            for i in 0..n {
                if status[i] != Status::Pending {
                    continue;
                }
                let step = &plan.steps[i];
                let deps: Vec<Status> = step.after.iter().map(|a| status[a - 1]).collect();
                if let Some(pos) = deps
                    .iter()
                    .position(|s| matches!(s, Status::Failed | Status::Skipped))
                {
                    status[i] = Status::Skipped;
                    let cause = &plan.steps[step.after[pos] - 1];
                    let (res, name, _, _) = progress(&step.action);
                    let reason = format!(
                        "not done because {} {}",
                        cause.action.describe(),
                        if deps[pos] == Status::Failed {
                            "failed"
                        } else {
                            "was not done"
                        }
                    );
                    // Only report skips that are new information (a container's start is
                    // skipped because its create failed: the create already said why).
                    if !matches!(step.action, Action::RemoveContainer { .. }) {
                        events.emit(Event::failed(res, name, reason.clone()));
                    }
                    failures.push(StepFailure {
                        step: step.id,
                        what: step.action.describe(),
                        reason,
                    });
                    continue;
                }
                if running < limit && deps.iter().all(|s| *s == Status::Done) {
                    status[i] = Status::Running;
                    running += 1;
                    let (res, name, working, _) = progress(&step.action);
                    events.emit(Event::working(res, name, working));
                    let tx = tx.clone();
                    let action = &step.action;
                    scope.spawn(move || {
                        let r = run_step(action, backends);
                        let _ = tx.send((i, r));
                    });
                }
            }
            if running == 0 {
                break;
            }
            let (i, result) = rx.recv().expect("a step thread reports back");
            running -= 1;
            let step = &plan.steps[i];
            let (res, name, _, done) = progress(&step.action);
            match result {
                Ok(()) => {
                    status[i] = Status::Done;
                    events.emit(Event::done(res, name, done));
                }
                Err(e) => {
                    let soft = matches!(
                        step.action,
                        Action::AwaitCondition {
                            required: false,
                            ..
                        }
                    );
                    if soft {
                        status[i] = Status::Done;
                        let mut ev = Event::done(res, name, "Warning");
                        ev.detail = Some(format!("optional dependency: {e}"));
                        events.emit(ev);
                    } else {
                        status[i] = Status::Failed;
                        events.emit(Event::failed(res, name, e.to_string()));
                        failures.push(StepFailure {
                            step: step.id,
                            what: step.action.describe(),
                            reason: e.to_string(),
                        });
                    }
                }
            }
        }
    });
    if failures.is_empty() {
        Ok(())
    } else {
        // The root causes first, then the skips, each in step order.
        failures.sort_by_key(|f| (f.reason.starts_with("not done because"), f.step));
        Err(ExecuteError { failures })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::supervisor::backend::fake::Recorder;
    use crate::supervisor::model::Condition;

    fn chain() -> Plan {
        let mut p = Plan::default();
        let net = p.add(
            Action::CreateNetwork {
                network: "p_default".into(),
            },
            "c",
            &[],
        );
        let c1 = p.add(
            Action::CreateContainer {
                service: "db".into(),
                container: "p-db-1".into(),
                number: 1,
            },
            "c",
            &[net],
        );
        let s1 = p.add(
            Action::StartContainer {
                service: "db".into(),
                container: "p-db-1".into(),
            },
            "c",
            &[c1],
        );
        let w = p.add(
            Action::AwaitCondition {
                service: "db".into(),
                condition: Condition::ServiceHealthy,
                required: true,
            },
            "c",
            &[s1],
        );
        let c2 = p.add(
            Action::CreateContainer {
                service: "web".into(),
                container: "p-web-1".into(),
                number: 1,
            },
            "c",
            &[net],
        );
        p.add(
            Action::StartContainer {
                service: "web".into(),
                container: "p-web-1".into(),
            },
            "c",
            &[w, c2],
        );
        p
    }

    #[test]
    fn steps_run_after_their_predecessors() {
        let rec = Recorder::default();
        let events = Mutex::new(Vec::new());
        let sink = |e: Event| events.lock().unwrap().push(e);
        execute(&chain(), &rec.backends(), &sink, 0).unwrap();
        let calls = rec.calls();
        let pos = |s: &str| calls.iter().position(|c| c == s).unwrap();
        assert_eq!(calls.len(), 6);
        assert!(pos("create network p_default") < pos("create p-db-1"));
        assert!(pos("start p-db-1") < pos("await db service_healthy"));
        assert!(pos("await db service_healthy") < pos("start p-web-1"));
        assert!(pos("create p-web-1") < pos("start p-web-1"));
        let ev = events.lock().unwrap();
        assert!(ev
            .iter()
            .any(|e| e.name == "p-web-1" && e.status == "Started" && e.done));
    }

    #[test]
    fn a_failed_dependency_stops_its_dependents_and_says_why() {
        let rec = Recorder {
            failing: ["await db service_healthy".to_string()].into(),
            ..Default::default()
        };
        let err = execute(&chain(), &rec.backends(), &NoSink, 1).unwrap_err();
        assert!(!rec.calls().contains(&"start p-web-1".to_string()));
        assert_eq!(
            err.to_string(),
            "wait for service db healthy: service db did not become healthy: boom; \
             start container p-web-1: not done because wait for service db healthy failed"
        );
    }

    struct NoSink;
    impl EventSink for NoSink {
        fn emit(&self, _e: Event) {}
    }
}
