//! The reconciler: desired state (from the compose file) against observed state (the state
//! file with liveness checked) gives a `Plan`. Pure: no I/O, no clock; every step carries its
//! cause so `--dry-run` can explain itself.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::model::{Condition, DesiredProject, RestartPolicy};
use super::naming;
use super::plan::{Action, Plan};
use super::state::{ContainerRecord, ContainerStatus, ProjectState};

/// What `up` was asked to do (the flags that shape the plan).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpOptions {
    /// Services named on the command line (empty: all).
    pub services: Vec<String>,
    pub no_deps: bool,
    pub force_recreate: bool,
    pub no_recreate: bool,
    pub no_start: bool,
    pub remove_orphans: bool,
    /// `--scale svc=n`.
    pub scale: BTreeMap<String, u32>,
    /// `--pull` overriding every service's `pull_policy`.
    pub pull: Option<String>,
    /// Stop grace period for containers replaced by this plan.
    pub timeout: Option<Duration>,
}

/// What `down` was asked to do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownOptions {
    pub remove_orphans: bool,
    /// `-v`: remove named and anonymous volumes.
    pub volumes: bool,
    pub timeout: Option<Duration>,
    /// Services named on the command line (empty: everything).
    pub services: Vec<String>,
    /// `--rmi local|all`: remove the images the services used (`local`: only those without
    /// a custom tag, i.e. named `<project>-<service>`).
    #[serde(default)]
    pub rmi: Option<String>,
}

/// What observation found.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub state: ProjectState,
    /// Image references present in the local store.
    pub images_present: BTreeSet<String>,
    /// Present images whose `pull_policy` (`daily`, `weekly`, `every_<d>`) asks for a new
    /// pull: last pulled longer ago than that.
    pub images_stale: BTreeSet<String>,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The grace period before SIGKILL, as Docker Compose decides it: `-t`/`--timeout`, else the
/// service's `stop_grace_period` (recorded on the container), else 10 s.
pub fn stop_timeout(flag: Option<Duration>, c: &ContainerRecord) -> Duration {
    flag.or(c.stop_grace_period).unwrap_or(DEFAULT_TIMEOUT)
}

fn is_up(c: &ContainerRecord) -> bool {
    matches!(
        c.status,
        ContainerStatus::Running | ContainerStatus::Paused | ContainerStatus::Restarting
    )
}

/// Plan `up`.
pub fn reconcile_up(desired: &DesiredProject, observed: &Observed, opts: &UpOptions) -> Plan {
    let mut plan = Plan::default();
    let state = &observed.state;
    let selected: BTreeSet<String> = desired
        .select(&opts.services, opts.no_deps)
        .into_iter()
        .collect();

    // Networks and volumes the selected services use.
    let mut net_steps: BTreeMap<&str, usize> = BTreeMap::new();
    let used_nets: BTreeSet<&str> = selected
        .iter()
        .filter_map(|s| desired.services.get(s))
        .flat_map(|s| s.networks.iter().map(String::as_str))
        .collect();
    for net in desired.networks.values() {
        if net.external || !used_nets.contains(net.name.as_str()) {
            continue;
        }
        if !state.networks.get(&net.name).is_some_and(|n| n.created) {
            let id = plan.add(
                Action::CreateNetwork {
                    network: net.name.clone(),
                },
                "declared in the compose file, not present",
                &[],
            );
            net_steps.insert(net.name.as_str(), id);
        }
    }
    let mut vol_steps: BTreeMap<&str, usize> = BTreeMap::new();
    let used_vols: BTreeSet<&str> = selected
        .iter()
        .filter_map(|s| desired.services.get(s))
        .flat_map(|s| s.volumes.iter().map(String::as_str))
        .collect();
    for vol in desired.volumes.values() {
        if vol.external || !used_vols.contains(vol.name.as_str()) {
            continue;
        }
        if !state.volumes.contains_key(&vol.name) {
            let id = plan.add(
                Action::CreateVolume {
                    volume: vol.name.clone(),
                },
                "declared in the compose file, not present",
                &[],
            );
            vol_steps.insert(vol.name.as_str(), id);
        }
    }

    // Images, once per reference.
    let mut image_steps: BTreeMap<&str, usize> = BTreeMap::new();
    for name in &selected {
        let Some(svc) = desired.services.get(name) else {
            continue;
        };
        if image_steps.contains_key(svc.image.as_str()) {
            continue;
        }
        // A locally built image (`build`, see `supervisor::build`) is never pulled, not even
        // with `--pull always`.
        let policy = if svc.pull_policy == "build" {
            "build"
        } else {
            opts.pull.as_deref().unwrap_or(&svc.pull_policy)
        };
        let present = observed.images_present.contains(&svc.image);
        let cause = match (policy, present) {
            ("always", _) => Some("pull_policy always".to_string()),
            ("never", true) | ("build", true) => None,
            (p, true) if observed.images_stale.contains(&svc.image) => Some(format!(
                "last pulled longer ago than pull_policy {p} allows"
            )),
            (_, true) => None,
            (p, false) => Some(format!("not present locally (pull_policy {p})")),
        };
        if let Some(cause) = cause {
            let id = plan.add(
                Action::PullImage {
                    service: svc.name.clone(),
                    image: svc.image.clone(),
                    policy: policy.to_string(),
                },
                cause,
                &[],
            );
            image_steps.insert(svc.image.as_str(), id);
        }
    }

    // Services, wave by wave.
    let mut start_steps: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut recreated: BTreeSet<String> = BTreeSet::new();
    let mut await_steps: BTreeMap<(String, Condition), usize> = BTreeMap::new();
    for wave in desired.waves() {
        for name in wave.iter().filter(|n| selected.contains(*n)) {
            let svc = &desired.services[name];
            let replicas = opts.scale.get(name).copied().unwrap_or(svc.replicas);
            let mut prereq: Vec<usize> = Vec::new();
            prereq.extend(
                svc.networks
                    .iter()
                    .filter_map(|n| net_steps.get(n.as_str())),
            );
            prereq.extend(svc.volumes.iter().filter_map(|v| vol_steps.get(v.as_str())));
            prereq.extend(image_steps.get(svc.image.as_str()));

            // Gates on dependencies, added lazily: only if something of this service starts.
            let mut gates: Option<Vec<usize>> = None;
            let mut gate = |plan: &mut Plan| -> Vec<usize> {
                if let Some(g) = &gates {
                    return g.clone();
                }
                let mut g = Vec::new();
                for dep in &svc.depends_on {
                    if !selected.contains(&dep.service)
                        || !desired.services.contains_key(&dep.service)
                    {
                        continue;
                    }
                    let key = (dep.service.clone(), dep.condition);
                    let id = match await_steps.get(&key) {
                        Some(id) => *id,
                        None => {
                            let after = start_steps.get(&dep.service).cloned().unwrap_or_default();
                            let id = plan.add(
                                Action::AwaitCondition {
                                    service: dep.service.clone(),
                                    condition: dep.condition,
                                    required: dep.required,
                                },
                                format!(
                                    "{name} depends on {} ({})",
                                    dep.service,
                                    dep.condition.as_str()
                                ),
                                &after,
                            );
                            await_steps.insert(key, id);
                            id
                        }
                    };
                    g.push(id);
                }
                gates = Some(g.clone());
                g
            };

            let mut existing: Vec<&ContainerRecord> = state.service_containers(name).collect();
            existing.sort_by_key(|c| c.number);
            let mut starts = Vec::new();
            for number in 1..=replicas {
                let current = existing.iter().find(|c| c.number == number);
                // The name it has, or the name it gets (`container_name` for the only one).
                let new_name = svc
                    .container_name
                    .clone()
                    .filter(|_| number == 1)
                    .unwrap_or_else(|| naming::container_name(&desired.name, name, number));
                let cname = current.map(|c| c.name.clone()).unwrap_or(new_name.clone());
                let recreate_cause = match current {
                    None => None,
                    Some(c) if c.status == ContainerStatus::Creating => {
                        Some("left half-created by an interrupted run".to_string())
                    }
                    Some(_) if opts.force_recreate => Some("--force-recreate".to_string()),
                    Some(c) if c.config_hash != svc.config_hash && !opts.no_recreate => {
                        Some(format!(
                            "configuration changed (hash {} -> {})",
                            short(&c.config_hash),
                            short(&svc.config_hash)
                        ))
                    }
                    Some(_) => None,
                };
                let create_after = match (current, &recreate_cause) {
                    (Some(c), Some(cause)) => {
                        let mut after = Vec::new();
                        if is_up(c) || c.status == ContainerStatus::Creating {
                            after.push(plan.add(
                                Action::StopContainer {
                                    service: name.clone(),
                                    container: cname.clone(),
                                    timeout: stop_timeout(opts.timeout, c),
                                },
                                cause.clone(),
                                &[],
                            ));
                        }
                        let rm = plan.add(
                            Action::RemoveContainer {
                                service: name.clone(),
                                container: cname.clone(),
                            },
                            format!("replaced: {cause}"),
                            &after,
                        );
                        recreated.insert(name.clone());
                        let mut a = prereq.clone();
                        a.push(rm);
                        Some((a, format!("recreate: {cause}")))
                    }
                    (None, _) => Some((
                        prereq.clone(),
                        format!("service {name} replica {number} not present"),
                    )),
                    (Some(_), None) => None,
                };
                match (create_after, current) {
                    (Some((after, cause)), _) => {
                        let created = plan.add(
                            Action::CreateContainer {
                                service: name.clone(),
                                container: new_name.clone(),
                                number,
                            },
                            cause,
                            &after,
                        );
                        if !opts.no_start {
                            let mut a = gate(&mut plan);
                            a.push(created);
                            starts.push(plan.add(
                                Action::StartContainer {
                                    service: name.clone(),
                                    container: new_name.clone(),
                                },
                                "created by this plan",
                                &a,
                            ));
                        }
                    }
                    // A one-shot that completed on its own stays completed: a second `up`
                    // touches nothing.
                    (None, Some(c))
                        if c.status == ContainerStatus::Exited
                            && c.exit_code == Some(0)
                            && !c.stopped_by_user
                            && svc.restart == RestartPolicy::No => {}
                    (None, Some(c)) if !is_up(c) && !opts.no_start => {
                        let a = gate(&mut plan);
                        starts.push(plan.add(
                            Action::StartContainer {
                                service: name.clone(),
                                container: cname.clone(),
                            },
                            format!("container is {}", c.status.as_str()),
                            &a,
                        ));
                    }
                    (None, Some(c)) => {
                        // Up to date and running: restart it only if a dependency that asks
                        // for it was recreated.
                        for dep in svc.depends_on.iter().filter(|d| d.restart) {
                            if recreated.contains(&dep.service) {
                                let a = gate(&mut plan);
                                starts.push(plan.add(
                                    Action::RestartContainer {
                                        service: name.clone(),
                                        container: cname.clone(),
                                        timeout: stop_timeout(opts.timeout, c),
                                    },
                                    format!(
                                        "dependency {} was recreated (restart: true)",
                                        dep.service
                                    ),
                                    &a,
                                ));
                                break;
                            }
                        }
                    }
                    (None, None) => unreachable!("a missing container is always created"),
                }
            }
            // Scale down: remove the highest numbers.
            for c in existing.iter().rev().filter(|c| c.number > replicas) {
                let mut after = Vec::new();
                if is_up(c) {
                    after.push(plan.add(
                        Action::StopContainer {
                            service: name.clone(),
                            container: c.name.clone(),
                            timeout: stop_timeout(opts.timeout, c),
                        },
                        format!("scaled down to {replicas}"),
                        &[],
                    ));
                }
                plan.add(
                    Action::RemoveContainer {
                        service: name.clone(),
                        container: c.name.clone(),
                    },
                    format!("scaled down to {replicas}"),
                    &after,
                );
            }
            start_steps.insert(name.clone(), starts);
        }
    }

    // Orphans: containers of services the compose file no longer has.
    let orphans: Vec<&ContainerRecord> = state
        .containers
        .values()
        .filter(|c| !c.oneoff && !desired.services.contains_key(&c.service))
        .collect();
    if !orphans.is_empty() {
        if opts.remove_orphans {
            for c in orphans {
                let mut after = Vec::new();
                if is_up(c) {
                    after.push(plan.add(
                        Action::StopContainer {
                            service: c.service.clone(),
                            container: c.name.clone(),
                            timeout: stop_timeout(opts.timeout, c),
                        },
                        format!("orphan: service {} is not in the compose file", c.service),
                        &[],
                    ));
                }
                plan.add(
                    Action::RemoveContainer {
                        service: c.service.clone(),
                        container: c.name.clone(),
                    },
                    format!("orphan: service {} is not in the compose file", c.service),
                    &after,
                );
            }
        } else {
            let names: Vec<&str> = orphans.iter().map(|c| c.name.as_str()).collect();
            plan.warnings.push(format!(
                "found orphan containers ({}) for this project; if you removed or renamed this \
                 service in your compose file, you can run this command with the \
                 --remove-orphans flag to clean it up",
                names.join(", ")
            ));
        }
    }
    plan
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// Plan `down` from the state alone (the compose file is optional: with it, containers of
/// services it does not name are orphans, kept unless `--remove-orphans`).
pub fn reconcile_down(
    state: &ProjectState,
    desired: Option<&DesiredProject>,
    opts: &DownOptions,
) -> Plan {
    teardown(state, desired, opts, true)
}

/// Plan `stop`: the selected services' running containers, in reverse dependency order.
pub fn reconcile_stop(
    state: &ProjectState,
    services: &[String],
    timeout: Option<Duration>,
) -> Plan {
    let opts = DownOptions {
        remove_orphans: true,
        services: services.to_vec(),
        timeout,
        ..Default::default()
    };
    teardown(state, None, &opts, false)
}

/// Plan `start`: the selected services' stopped containers, dependencies first.
pub fn reconcile_start(state: &ProjectState, services: &[String]) -> Plan {
    let mut plan = Plan::default();
    let selected: Vec<&ContainerRecord> = state
        .containers
        .values()
        .filter(|c| !c.oneoff)
        .filter(|c| services.is_empty() || services.contains(&c.service))
        .collect();
    let mut by_service: BTreeMap<&str, Vec<&ContainerRecord>> = BTreeMap::new();
    for c in &selected {
        by_service.entry(c.service.as_str()).or_default().push(c);
    }
    let mut steps: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    while done.len() < by_service.len() {
        let ready: Vec<&str> = by_service
            .iter()
            .filter(|(s, _)| !done.contains(*s))
            .filter(|(_, cs)| {
                cs.iter().all(|c| {
                    c.depends_on
                        .iter()
                        .all(|d| done.contains(d.as_str()) || !by_service.contains_key(d.as_str()))
                })
            })
            .map(|(s, _)| *s)
            .collect();
        let ready = if ready.is_empty() {
            by_service
                .keys()
                .copied()
                .filter(|s| !done.contains(s))
                .collect()
        } else {
            ready
        };
        for svc in ready {
            let cs = &by_service[svc];
            let after: Vec<usize> = cs
                .iter()
                .flat_map(|c| c.depends_on.iter())
                .filter_map(|d| steps.get(d.as_str()))
                .flatten()
                .copied()
                .collect();
            let mut mine = Vec::new();
            for c in cs.iter().filter(|c| !is_up(c)) {
                mine.push(plan.add(
                    Action::StartContainer {
                        service: c.service.clone(),
                        container: c.name.clone(),
                    },
                    format!("container is {}", c.status.as_str()),
                    &after,
                ));
            }
            steps.insert(svc, mine);
            done.insert(svc);
        }
    }
    plan
}

fn teardown(
    state: &ProjectState,
    desired: Option<&DesiredProject>,
    opts: &DownOptions,
    remove: bool,
) -> Plan {
    let mut plan = Plan::default();
    let is_orphan = |c: &ContainerRecord| {
        desired.is_some_and(|d| !c.oneoff && !d.services.contains_key(&c.service))
    };
    let targets: Vec<&ContainerRecord> = state
        .containers
        .values()
        .filter(|c| opts.remove_orphans || !is_orphan(c))
        .filter(|c| opts.services.is_empty() || opts.services.contains(&c.service))
        .collect();
    let kept: Vec<&ContainerRecord> = state
        .containers
        .values()
        .filter(|c| !targets.iter().any(|t| t.name == c.name))
        .collect();
    let orphans_kept: Vec<&str> = kept
        .iter()
        .filter(|c| is_orphan(c))
        .map(|c| c.name.as_str())
        .collect();
    if !orphans_kept.is_empty() {
        plan.warnings.push(format!(
            "found orphan containers ({}) for this project; run down with --remove-orphans to \
             remove them",
            orphans_kept.join(", ")
        ));
    }

    // Reverse dependency order: a service stops after every service that depends on it.
    let services: BTreeSet<&str> = targets.iter().map(|c| c.service.as_str()).collect();
    let mut dependents: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for c in &targets {
        for d in &c.depends_on {
            if services.contains(d.as_str()) {
                dependents
                    .entry(d.as_str())
                    .or_default()
                    .insert(c.service.as_str());
            }
        }
    }
    let mut stop_steps: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut remove_steps = Vec::new();
    // Remove steps of the containers on each network: a network goes as soon as its own
    // containers are gone, not after the whole project's.
    let mut net_users: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    while done.len() < services.len() {
        let ready: Vec<&str> = services
            .iter()
            .copied()
            .filter(|s| !done.contains(s))
            .filter(|s| {
                dependents
                    .get(s)
                    .is_none_or(|ds| ds.iter().all(|d| done.contains(d) || d == s))
            })
            .collect();
        // A dependency cycle: take the rest in name order.
        let ready = if ready.is_empty() {
            services
                .iter()
                .copied()
                .filter(|s| !done.contains(s))
                .collect()
        } else {
            ready
        };
        for svc in ready {
            let after: Vec<usize> = dependents
                .get(svc)
                .into_iter()
                .flatten()
                .filter_map(|d| stop_steps.get(d))
                .flatten()
                .copied()
                .collect();
            let mut mine = Vec::new();
            for c in targets.iter().filter(|c| c.service == svc) {
                let stop = if is_up(c) || c.status == ContainerStatus::Creating {
                    let id = plan.add(
                        Action::StopContainer {
                            service: c.service.clone(),
                            container: c.name.clone(),
                            timeout: stop_timeout(opts.timeout, c),
                        },
                        format!("container is {}", c.status.as_str()),
                        &after,
                    );
                    mine.push(id);
                    vec![id]
                } else {
                    after.clone()
                };
                if !remove {
                    continue;
                }
                let id = plan.add(
                    Action::RemoveContainer {
                        service: c.service.clone(),
                        container: c.name.clone(),
                    },
                    "project down",
                    &stop,
                );
                remove_steps.push(id);
                for n in &c.networks {
                    net_users.entry(n.as_str()).or_default().push(id);
                }
            }
            stop_steps.insert(svc, mine);
            done.insert(svc);
        }
    }

    if opts.services.is_empty() && remove {
        let kept_nets: BTreeSet<&str> = kept
            .iter()
            .flat_map(|c| c.networks.iter().map(String::as_str))
            .collect();
        for net in state.networks.values() {
            if net.external || !net.created {
                continue;
            }
            if kept_nets.contains(net.name.as_str()) {
                plan.warnings.push(format!(
                    "network {} is still used by orphan containers; kept",
                    net.name
                ));
                continue;
            }
            plan.add(
                Action::RemoveNetwork {
                    network: net.name.clone(),
                },
                "project down",
                net_users
                    .get(net.name.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            );
        }
        if opts.volumes {
            for vol in state.volumes.values().filter(|v| !v.external) {
                plan.add(
                    Action::RemoveVolume {
                        volume: vol.name.clone(),
                    },
                    "project down with --volumes",
                    &remove_steps,
                );
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::model::{
        Dependency, DesiredNetwork, DesiredService, DesiredVolume, RestartPolicy,
    };
    use crate::supervisor::state::NetworkRecord;

    fn svc(name: &str, deps: &[(&str, Condition)]) -> DesiredService {
        DesiredService {
            name: name.into(),
            image: "busybox:latest".into(),
            config_hash: format!("hash-of-{name}-0000000000"),
            replicas: 1,
            depends_on: deps
                .iter()
                .map(|(s, c)| Dependency {
                    service: (*s).into(),
                    condition: *c,
                    required: true,
                    restart: false,
                })
                .collect(),
            networks: vec!["demo_default".into()],
            volumes: vec![],
            pull_policy: "missing".into(),
            restart: RestartPolicy::No,
            healthcheck: None,
            container_name: None,
        }
    }

    fn demo() -> DesiredProject {
        let mut p = DesiredProject {
            name: "demo".into(),
            ..Default::default()
        };
        let mut db = svc("db", &[]);
        db.volumes = vec!["demo_data".into()];
        let mut worker = svc("worker", &[("db", Condition::ServiceHealthy)]);
        worker.replicas = 2;
        for s in [
            db,
            svc("migrate", &[("db", Condition::ServiceHealthy)]),
            svc(
                "web",
                &[
                    ("db", Condition::ServiceHealthy),
                    ("migrate", Condition::ServiceCompletedSuccessfully),
                ],
            ),
            worker,
        ] {
            p.services.insert(s.name.clone(), s);
        }
        p.networks.insert(
            "demo_default".into(),
            DesiredNetwork {
                name: "demo_default".into(),
                external: false,
            },
        );
        p.volumes.insert(
            "demo_data".into(),
            DesiredVolume {
                name: "demo_data".into(),
                external: false,
            },
        );
        p
    }

    fn observed_all_present() -> Observed {
        Observed {
            images_present: ["busybox:latest".to_string()].into(),
            ..Default::default()
        }
    }

    /// State as a successful first `up` of `demo()` leaves it.
    fn state_after_up(p: &DesiredProject) -> ProjectState {
        let mut st = ProjectState::new("demo");
        st.networks.insert(
            "demo_default".into(),
            NetworkRecord {
                name: "demo_default".into(),
                external: false,
                created: true,
            },
        );
        st.volumes.insert(
            "demo_data".into(),
            crate::supervisor::state::VolumeRecord {
                name: "demo_data".into(),
                path: "/x".into(),
                external: false,
                anonymous: false,
            },
        );
        for s in p.services.values() {
            for n in 1..=s.replicas {
                let name = naming::container_name("demo", &s.name, n);
                st.containers.insert(
                    name.clone(),
                    ContainerRecord {
                        name,
                        service: s.name.clone(),
                        number: n,
                        oneoff: false,
                        config_hash: s.config_hash.clone(),
                        image: s.image.clone(),
                        command: vec![],
                        status: ContainerStatus::Running,
                        pid: Some(1),
                        pid_start: None,
                        exit_code: None,
                        health: None,
                        restart_count: 0,
                        created: 0,
                        started: None,
                        finished: None,
                        ports: vec![],
                        networks: s.networks.clone(),
                        depends_on: s.depends_on.iter().map(|d| d.service.clone()).collect(),
                        netns: None,
                        stopped_by_user: false,
                        stop_grace_period: None,
                        labels: Default::default(),
                        runtime: serde_json::Value::Null,
                    },
                );
            }
        }
        st
    }

    #[test]
    fn first_up_creates_everything_in_dependency_order() {
        let p = demo();
        let plan = reconcile_up(&p, &observed_all_present(), &UpOptions::default());
        assert_eq!(
            plan.text(),
            "\
1. create network demo_default: declared in the compose file, not present
2. create volume demo_data: declared in the compose file, not present
3. create container demo-db-1 (after 1, 2): service db replica 1 not present
4. start container demo-db-1 (after 3): created by this plan
5. create container demo-migrate-1 (after 1): service migrate replica 1 not present
6. wait for service db healthy (after 4): migrate depends on db (service_healthy)
7. start container demo-migrate-1 (after 5, 6): created by this plan
8. create container demo-worker-1 (after 1): service worker replica 1 not present
9. start container demo-worker-1 (after 6, 8): created by this plan
10. create container demo-worker-2 (after 1): service worker replica 2 not present
11. start container demo-worker-2 (after 6, 10): created by this plan
12. create container demo-web-1 (after 1): service web replica 1 not present
13. wait for service migrate completed successfully (after 7): web depends on migrate (service_completed_successfully)
14. start container demo-web-1 (after 6, 12, 13): created by this plan
"
        );
    }

    #[test]
    fn missing_image_is_pulled_once_before_creates() {
        let p = demo();
        let plan = reconcile_up(&p, &Observed::default(), &UpOptions::default());
        let text = plan.text();
        assert!(text
            .contains("1. create network demo_default: declared in the compose file, not present"));
        assert!(text
            .contains("3. pull image busybox:latest: not present locally (pull_policy missing)\n"));
        assert_eq!(text.matches("pull image").count(), 1);
        assert!(text.contains("4. create container demo-db-1 (after 1, 2, 3)"));
    }

    #[test]
    fn a_stale_image_is_pulled_again_by_its_pull_policy() {
        let mut p = demo();
        for s in p.services.values_mut() {
            s.pull_policy = "daily".into();
        }
        let fresh = Observed {
            state: state_after_up(&p),
            ..observed_all_present()
        };
        assert_eq!(
            reconcile_up(&p, &fresh, &UpOptions::default()).text(),
            "nothing to do\n"
        );
        let stale = Observed {
            images_stale: ["busybox:latest".to_string()].into(),
            ..fresh
        };
        let text = reconcile_up(&p, &stale, &UpOptions::default()).text();
        assert!(
            text.contains("pull image busybox:latest")
                && text.contains("last pulled longer ago than pull_policy daily allows"),
            "{text}"
        );
    }

    #[test]
    fn a_second_up_with_nothing_changed_does_nothing() {
        let p = demo();
        let obs = Observed {
            state: state_after_up(&p),
            ..observed_all_present()
        };
        let plan = reconcile_up(&p, &obs, &UpOptions::default());
        assert_eq!(plan.text(), "nothing to do\n");
    }

    #[test]
    fn a_changed_service_is_recreated_alone_and_restart_true_dependents_restart() {
        let mut p = demo();
        let obs = Observed {
            state: state_after_up(&p),
            ..observed_all_present()
        };
        p.services.get_mut("db").unwrap().config_hash = "new-hash-of-db-000".into();
        p.services.get_mut("worker").unwrap().depends_on[0].restart = true;
        let plan = reconcile_up(&p, &obs, &UpOptions::default());
        assert_eq!(
            plan.text(),
            "\
1. stop container demo-db-1: configuration changed (hash hash-of-db-0 -> new-hash-of-)
2. remove container demo-db-1 (after 1): replaced: configuration changed (hash hash-of-db-0 -> new-hash-of-)
3. create container demo-db-1 (after 2): recreate: configuration changed (hash hash-of-db-0 -> new-hash-of-)
4. start container demo-db-1 (after 3): created by this plan
5. wait for service db healthy (after 4): worker depends on db (service_healthy)
6. restart container demo-worker-1 (after 5): dependency db was recreated (restart: true)
7. restart container demo-worker-2 (after 5): dependency db was recreated (restart: true)
"
        );
    }

    #[test]
    fn a_completed_one_shot_stays_completed_but_a_stopped_one_starts_again() {
        let p = demo();
        let mut st = state_after_up(&p);
        let m = st.containers.get_mut("demo-migrate-1").unwrap();
        m.status = ContainerStatus::Exited;
        m.exit_code = Some(0);
        let obs = Observed {
            state: st.clone(),
            ..observed_all_present()
        };
        assert_eq!(
            reconcile_up(&p, &obs, &UpOptions::default()).text(),
            "nothing to do\n"
        );
        st.containers
            .get_mut("demo-migrate-1")
            .unwrap()
            .stopped_by_user = true;
        let obs = Observed {
            state: st,
            ..observed_all_present()
        };
        assert_eq!(
            reconcile_up(&p, &obs, &UpOptions::default()).text(),
            "1. wait for service db healthy: migrate depends on db (service_healthy)\n\
             2. start container demo-migrate-1 (after 1): container is exited\n"
        );
    }

    #[test]
    fn scaling_down_removes_the_highest_numbers() {
        let p = demo();
        let obs = Observed {
            state: state_after_up(&p),
            ..observed_all_present()
        };
        let opts = UpOptions {
            scale: [("worker".to_string(), 1)].into(),
            ..Default::default()
        };
        let plan = reconcile_up(&p, &obs, &opts);
        assert_eq!(
            plan.text(),
            "\
1. stop container demo-worker-2: scaled down to 1
2. remove container demo-worker-2 (after 1): scaled down to 1
"
        );
    }

    #[test]
    fn orphans_are_reported_and_removed_on_request() {
        let mut p = demo();
        let obs = Observed {
            state: state_after_up(&p),
            ..observed_all_present()
        };
        p.services.remove("web");
        let plan = reconcile_up(&p, &obs, &UpOptions::default());
        assert!(plan.is_empty());
        assert!(plan
            .text()
            .starts_with("warning: found orphan containers (demo-web-1) for this project"));
        let opts = UpOptions {
            remove_orphans: true,
            ..Default::default()
        };
        let plan = reconcile_up(&p, &obs, &opts);
        assert_eq!(
            plan.text(),
            "\
1. stop container demo-web-1: orphan: service web is not in the compose file
2. remove container demo-web-1 (after 1): orphan: service web is not in the compose file
"
        );
    }

    #[test]
    fn no_deps_starts_only_the_named_service_without_gates() {
        let p = demo();
        let opts = UpOptions {
            services: vec!["web".into()],
            no_deps: true,
            ..Default::default()
        };
        let plan = reconcile_up(&p, &observed_all_present(), &opts);
        assert_eq!(
            plan.text(),
            "\
1. create network demo_default: declared in the compose file, not present
2. create container demo-web-1 (after 1): service web replica 1 not present
3. start container demo-web-1 (after 2): created by this plan
"
        );
    }

    #[test]
    fn stops_wait_t_else_stop_grace_period_else_10_s() {
        let p = demo();
        let mut st = state_after_up(&p);
        st.containers
            .get_mut("demo-db-1")
            .unwrap()
            .stop_grace_period = Some(Duration::from_secs(1));
        let timeouts = |plan: &Plan| -> BTreeMap<String, Duration> {
            plan.steps
                .iter()
                .filter_map(|s| match &s.action {
                    Action::StopContainer {
                        container, timeout, ..
                    } => Some((container.clone(), *timeout)),
                    _ => None,
                })
                .collect()
        };
        let t = timeouts(&reconcile_down(&st, None, &DownOptions::default()));
        assert_eq!(t["demo-db-1"], Duration::from_secs(1));
        assert_eq!(t["demo-web-1"], Duration::from_secs(10));
        let t = timeouts(&reconcile_stop(&st, &[], Some(Duration::from_secs(3))));
        assert_eq!(t["demo-db-1"], Duration::from_secs(3));
        assert_eq!(t["demo-web-1"], Duration::from_secs(3));
    }

    #[test]
    fn down_stops_in_reverse_dependency_order_then_removes_networks() {
        let p = demo();
        let st = state_after_up(&p);
        let plan = reconcile_down(&st, None, &DownOptions::default());
        assert_eq!(
            plan.text(),
            "\
1. stop container demo-web-1: container is running
2. remove container demo-web-1 (after 1): project down
3. stop container demo-worker-1: container is running
4. remove container demo-worker-1 (after 3): project down
5. stop container demo-worker-2: container is running
6. remove container demo-worker-2 (after 5): project down
7. stop container demo-migrate-1 (after 1): container is running
8. remove container demo-migrate-1 (after 7): project down
9. stop container demo-db-1 (after 1, 3, 5, 7): container is running
10. remove container demo-db-1 (after 9): project down
11. remove network demo_default (after 2, 4, 6, 8, 10): project down
"
        );
        let with_volumes = reconcile_down(
            &st,
            None,
            &DownOptions {
                volumes: true,
                ..Default::default()
            },
        );
        assert!(with_volumes.text().ends_with(
            "12. remove volume demo_data (after 2, 4, 6, 8, 10): project down with --volumes\n"
        ));
    }
}
