//! The verbs as operations on an engine: `up`, `down`, `stop`, `start`, `restart`, `kill`,
//! `pause`, `unpause`, `rm`. Each observes, reconciles into a plan and executes it; a request
//! arrives either over the supervisor socket or, when no supervisor runs, from the CLI itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::engine::{Engine, Tee};
use super::events::{Event, EventSink, Resource};
use super::execute::{execute, ExecuteError};
use super::plan::{Action, Plan};
use super::reconcile::{self, DownOptions, UpOptions};
use super::state::{ContainerStatus, Health};

/// How to load the compose project: the client's command line, environment and folder, so a
/// supervisor loads exactly what the user's command would.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadRequest {
    pub files: Vec<PathBuf>,
    pub project_directory: Option<PathBuf>,
    pub project_name: Option<String>,
    pub env_files: Vec<PathBuf>,
    pub profiles: Vec<String>,
    pub services: Vec<String>,
    pub environment: Vec<(String, String)>,
    pub cwd: PathBuf,
}

impl LoadRequest {
    pub fn load(&self) -> Result<compose::Project, compose::Error> {
        let opts = compose::LoadOptions {
            files: self.files.clone(),
            cwd: self.cwd.clone(),
            project_directory: self.project_directory.clone(),
            project_name: self.project_name.clone(),
            env_files: self.env_files.clone(),
            profiles: self.profiles.clone(),
            services: self.services.clone(),
            environment: self.environment.iter().cloned().collect(),
            ..Default::default()
        };
        compose::load(&opts)
    }
}

/// A request to a supervisor (or to an in-process engine).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Ping,
    Up {
        load: LoadRequest,
        options: UpOptions,
        parallel: usize,
        /// `--wait`: block until every started service is running (healthy when it has a
        /// healthcheck), up to this many seconds (0: no bound).
        wait: Option<u64>,
    },
    Down {
        options: DownOptions,
        parallel: usize,
    },
    Stop {
        services: Vec<String>,
        timeout: Option<Duration>,
    },
    Start {
        services: Vec<String>,
        wait: Option<u64>,
        /// The project, for a supervisor that has not loaded it yet (healthchecks, restart
        /// policies).
        load: Option<LoadRequest>,
    },
    Restart {
        services: Vec<String>,
        timeout: Option<Duration>,
        load: Option<LoadRequest>,
    },
    Kill {
        services: Vec<String>,
        signal: i32,
    },
    Pause {
        services: Vec<String>,
        pause: bool,
    },
    Rm {
        services: Vec<String>,
        stop: bool,
        volumes: bool,
    },
    /// Stream events until the client goes away.
    Events,
}

impl Request {
    /// Does this request leave containers running, so it needs a supervisor to own them?
    pub fn needs_supervisor(&self) -> bool {
        matches!(
            self,
            Request::Up { .. } | Request::Start { .. } | Request::Restart { .. }
        )
    }
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Load(#[from] compose::Error),
    #[error(transparent)]
    Execute(#[from] ExecuteError),
    #[error("{0}")]
    Wait(String),
    #[error("no compose project is loaded in this supervisor; run up first")]
    NotLoaded,
    #[error("no such service: {0}")]
    NoSuchService(String),
    /// A service `up` refuses before creating anything (e.g. a sysctl that is not namespaced).
    #[error("{0}")]
    Invalid(String),
}

/// Where an operation reports: progress events and free-text messages.
pub trait Reporter: EventSink {
    fn message(&self, text: &str);
}

fn run_plan(
    engine: &Arc<Engine>,
    plan: &Plan,
    parallel: usize,
    out: &dyn Reporter,
) -> Result<(), OpError> {
    for w in &plan.warnings {
        out.message(&format!("WARN[0000] {w}"));
    }
    let tee = Tee { engine, sink: out };
    execute(plan, &engine.backends(), &tee, parallel)?;
    Ok(())
}

fn check_services(engine: &Engine, services: &[String]) -> Result<(), OpError> {
    let st = engine.snapshot();
    let loaded = engine.loaded();
    for s in services {
        let known = st.containers.values().any(|c| &c.service == s)
            || loaded
                .as_ref()
                .is_some_and(|l| l.project.services.contains_key(s));
        if !known {
            return Err(OpError::NoSuchService(s.clone()));
        }
    }
    Ok(())
}

fn ensure_loaded(engine: &Engine, load: Option<&LoadRequest>) {
    if engine.loaded().is_none() {
        if let Some(Ok(p)) = load.map(LoadRequest::load) {
            engine.set_project(p);
        }
    }
}

/// Handle one request on `engine`.
pub fn handle(engine: &Arc<Engine>, req: &Request, out: &dyn Reporter) -> Result<i32, OpError> {
    match req {
        Request::Ping | Request::Events => Ok(0),
        Request::Up {
            load,
            options,
            parallel,
            wait,
        } => {
            let project = load.load()?;
            for w in &project.warnings {
                out.message(&format!("WARN[0000] {w}"));
            }
            engine.set_project(project);
            up(engine, options, *parallel, out)?;
            if let Some(secs) = wait {
                wait_ready(engine, &options.services, *secs, out)?;
            }
            Ok(0)
        }
        Request::Down { options, parallel } => {
            engine.shutting_down.store(true, Ordering::SeqCst);
            if options.services.is_empty() {
                down_oneoffs(engine, options, out);
                // Again: a network one one-off made is in use by the others in the first pass.
                down_oneoffs(engine, options, out);
            }
            let desired = engine.loaded().map(|l| l.desired.clone());
            let plan =
                reconcile::reconcile_down(&engine.observe(true).state, desired.as_ref(), options);
            let r = run_plan(engine, &plan, *parallel, out);
            engine.stop_dns();
            let _ = engine.forget_if_empty();
            r.map(|_| 0)
        }
        Request::Stop { services, timeout } => {
            check_services(engine, services)?;
            let plan = reconcile::reconcile_stop(&engine.observe(true).state, services, *timeout);
            // Mark them stopped by the user: `unless-stopped` keeps them down.
            for s in &plan.steps {
                if let Action::StopContainer { container, .. } = &s.action {
                    engine.update(|st| {
                        if let Some(c) = st.containers.get_mut(container) {
                            c.stopped_by_user = true;
                        }
                    });
                }
            }
            run_plan(engine, &plan, 0, out).map(|_| 0)
        }
        Request::Start {
            services,
            wait,
            load,
        } => {
            ensure_loaded(engine, load.as_ref());
            check_services(engine, services)?;
            engine.shutting_down.store(false, Ordering::SeqCst);
            let plan = reconcile::reconcile_start(&engine.observe(true).state, services);
            run_plan(engine, &plan, 0, out)?;
            if let Some(secs) = wait {
                wait_ready(engine, services, *secs, out)?;
            }
            Ok(0)
        }
        Request::Restart {
            services,
            timeout,
            load,
        } => {
            ensure_loaded(engine, load.as_ref());
            check_services(engine, services)?;
            let plan = reconcile::reconcile_stop(&engine.observe(true).state, services, *timeout);
            run_plan(engine, &plan, 0, out)?;
            engine.shutting_down.store(false, Ordering::SeqCst);
            let plan = reconcile::reconcile_start(&engine.observe(true).state, services);
            run_plan(engine, &plan, 0, out).map(|_| 0)
        }
        Request::Kill { services, signal } => {
            check_services(engine, services)?;
            let st = engine.observe(true).state;
            let mut errors = Vec::new();
            for c in st.containers.values().filter(|c| {
                (services.is_empty() || services.contains(&c.service))
                    && matches!(c.status, ContainerStatus::Running | ContainerStatus::Paused)
            }) {
                out.emit(Event::working(Resource::Container, &c.name, "Killing"));
                match engine.kill_container(&c.name, *signal) {
                    Ok(()) => out.emit(Event::done(Resource::Container, &c.name, "Killed")),
                    Err(e) => {
                        out.emit(Event::failed(Resource::Container, &c.name, e.to_string()));
                        errors.push(e.to_string());
                    }
                }
            }
            if errors.is_empty() {
                Ok(0)
            } else {
                Err(OpError::Wait(errors.join("; ")))
            }
        }
        Request::Pause { services, pause } => {
            check_services(engine, services)?;
            let st = engine.observe(true).state;
            let want = if *pause {
                ContainerStatus::Running
            } else {
                ContainerStatus::Paused
            };
            for c in st.containers.values().filter(|c| {
                (services.is_empty() || services.contains(&c.service)) && c.status == want
            }) {
                let (w, d) = if *pause {
                    ("Pausing", "Paused")
                } else {
                    ("Unpausing", "Unpaused")
                };
                out.emit(Event::working(Resource::Container, &c.name, w));
                engine
                    .pause_container(&c.name, *pause)
                    .map_err(|e| OpError::Wait(e.to_string()))?;
                out.emit(Event::done(Resource::Container, &c.name, d));
            }
            Ok(0)
        }
        Request::Rm {
            services,
            stop,
            volumes: _,
        } => {
            check_services(engine, services)?;
            if *stop {
                let plan = reconcile::reconcile_stop(&engine.observe(true).state, services, None);
                run_plan(engine, &plan, 0, out)?;
            }
            let st = engine.observe(true).state;
            let mut plan = Plan::default();
            for c in st.containers.values().filter(|c| {
                (services.is_empty() || services.contains(&c.service))
                    && matches!(
                        c.status,
                        ContainerStatus::Exited
                            | ContainerStatus::Created
                            | ContainerStatus::Creating
                    )
            }) {
                plan.add(
                    Action::RemoveContainer {
                        service: c.service.clone(),
                        container: c.name.clone(),
                    },
                    "rm",
                    &[],
                );
            }
            if plan.is_empty() {
                out.message("No stopped containers");
            }
            run_plan(engine, &plan, 0, out).map(|_| 0)
        }
    }
}

/// Remove the one-off containers of `rcompose run` (each has its own state file).
fn down_oneoffs(engine: &Arc<Engine>, options: &DownOptions, out: &dyn Reporter) {
    let dir = engine.paths.oneoff_root();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Ok(one) = Engine::open(engine.paths.oneoff(&name), false) else {
            continue;
        };
        let plan = reconcile::reconcile_down(&one.observe(true).state, None, options);
        let _ = run_plan(&one, &plan, 0, out);
        let _ = one.forget_if_empty();
    }
    let _ = std::fs::remove_dir(&dir);
    let _ = std::fs::remove_dir_all(engine.paths.run_dir.join("oneoff"));
}

/// `up`: observe, reconcile, execute.
pub fn up(
    engine: &Arc<Engine>,
    options: &UpOptions,
    parallel: usize,
    out: &dyn Reporter,
) -> Result<(), OpError> {
    let loaded = engine.loaded().ok_or(OpError::NotLoaded)?;
    for s in &options.services {
        if !loaded.desired.services.contains_key(s) {
            return Err(OpError::NoSuchService(s.clone()));
        }
    }
    for name in loaded.desired.select(&options.services, options.no_deps) {
        if let Some(svc) = loaded.project.services.get(&name) {
            super::spec::check_service(svc).map_err(OpError::Invalid)?;
        }
    }
    engine.shutting_down.store(false, Ordering::SeqCst);
    let observed = engine.observe(true);
    let plan = reconcile::reconcile_up(&loaded.desired, &observed, options);
    run_plan(engine, &plan, parallel, out)
}

/// `--wait`: every container of the selected services running, and healthy when it has a
/// healthcheck (a one-shot that exited 0 counts as ready).
pub fn wait_ready(
    engine: &Arc<Engine>,
    services: &[String],
    timeout_secs: u64,
    out: &dyn Reporter,
) -> Result<(), OpError> {
    let deadline = (timeout_secs > 0).then(|| Instant::now() + Duration::from_secs(timeout_secs));
    let mut reported: BTreeMap<String, bool> = BTreeMap::new();
    loop {
        let st = engine.snapshot();
        let mut pending = Vec::new();
        for c in st
            .containers
            .values()
            .filter(|c| !c.oneoff && (services.is_empty() || services.contains(&c.service)))
        {
            let ready = match (c.status, c.health) {
                (ContainerStatus::Running, None | Some(Health::Healthy)) => true,
                (ContainerStatus::Exited, _) if c.exit_code == Some(0) => true,
                (_, Some(Health::Unhealthy)) => {
                    return Err(OpError::Wait(format!("container {} is unhealthy", c.name)))
                }
                (ContainerStatus::Exited, _) => {
                    return Err(OpError::Wait(format!(
                        "container {} exited ({})",
                        c.name,
                        c.exit_code.unwrap_or(-1)
                    )))
                }
                _ => false,
            };
            if ready && !reported.contains_key(&c.name) {
                reported.insert(c.name.clone(), true);
                let label = match (c.status, c.health) {
                    (ContainerStatus::Exited, _) => "Exited",
                    (_, Some(Health::Healthy)) => "Healthy",
                    _ => "Running",
                };
                out.emit(Event::done(Resource::Container, &c.name, label));
            }
            if !ready {
                pending.push(c.name.clone());
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(OpError::Wait(format!(
                "timeout waiting for {} to be running or healthy (--wait-timeout {timeout_secs}s)",
                pending.join(", ")
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
