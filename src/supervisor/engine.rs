//! The engine: the real backends behind the executor (images from the runtime's store,
//! networks and DNS from the network crate, containers from the runtime) and the supervision
//! of running containers (exit watch, restart policy with Docker's backoff, healthchecks, log
//! collection into json-file logs). All state changes go through `update`, which saves the
//! state file atomically and wakes whoever waits on a condition.
//!
//! An engine runs either inside a supervisor (`supervising: true`: it is the subreaper and
//! parent of the containers, it waits for their exit) or inside a one-shot CLI command when no
//! supervisor is running (`stop`, `kill`, `rm`, `down` from the state file alone).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant};

use runtime::container as rt;
use runtime::image as img;

use super::backend::{
    BackendError, Backends, ContainerBackend, ImageBackend, NetworkBackend, VolumeBackend,
};
use super::events::{Event, EventSink, Resource};
use super::model::{Condition, DesiredProject, Healthcheck};
use super::naming;
use super::reconcile::Observed;
use super::spec;
use super::state::{
    now_secs, pid_alive, pid_start_time, ContainerRecord, ContainerStatus, Health, NetworkRecord,
    PortRecord, ProjectPaths, ProjectState, StateError, StateStore, VolumeRecord,
};

/// The compose project this engine works for, with its desired state.
pub struct Loaded {
    pub project: compose::Project,
    pub desired: DesiredProject,
}

/// What `rcompose run` changes in the service's container.
#[derive(Default)]
pub struct OneOff {
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub tty: bool,
    pub stdin: bool,
    /// `--service-ports`: publish the service's ports.
    pub publish: bool,
    /// The caller's stdio (its own descriptors) instead of log pipes; with `tty`, only for
    /// setup errors: the container gets a terminal of its own, whose master the caller takes
    /// with [`Engine::take_oneoff_master`].
    pub stdio: Option<rt::Stdio>,
    pub master: Option<OwnedFd>,
}

/// In-memory facts about a container of this process.
#[derive(Default)]
struct Live {
    created: Option<rt::Created>,
    /// A watcher thread waits for pid 1 of this process.
    watched: bool,
    /// Log pumps of the current run still copying output into the log file.
    pumps: Option<Arc<Pumps>>,
    /// `stdin_open`: the write end of the container's stdin pipe, held so that its stdin stays
    /// open (never EOF) for the life of the container.
    stdin: Option<OwnedFd>,
    /// `attach`'s way in: relays into the stdin pipe or the pty master of this run.
    relay: Option<super::stdin::Relay>,
}

/// Counts the log pumps of one run that have not reached the end of their pipe, so that an
/// exit is recorded only after everything the container wrote is in its log.
#[derive(Default)]
struct Pumps {
    running: Mutex<usize>,
    done: Condvar,
}

impl Pumps {
    fn finished(&self) {
        let mut n = self.running.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        self.done.notify_all();
    }

    /// Wait (bounded: a process outside the container's pid namespace may keep a pipe open)
    /// until every pump has drained its pipe.
    fn wait(&self, timeout: Duration) {
        let n = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.done.wait_timeout_while(n, timeout, |n| *n > 0);
    }
}

pub struct Engine {
    pub paths: ProjectPaths,
    store: StateStore,
    state: Mutex<ProjectState>,
    changed: Condvar,
    loaded: RwLock<Option<Arc<Loaded>>>,
    runtime: rt::Runtime,
    images: OnceLock<Result<img::Store, String>>,
    networks: network::Networks,
    live: Mutex<HashMap<String, Live>>,
    /// Containers being stopped on purpose: their exit does not trigger a restart.
    stopping: Mutex<HashSet<String>>,
    /// The whole project is going down: no restarts, waits give up.
    pub shutting_down: AtomicBool,
    /// This engine is the containers' parent (a supervisor).
    supervising: bool,
    bus: Mutex<Vec<std::sync::mpsc::Sender<Event>>>,
    dns: Mutex<BTreeMap<String, network::DnsServer>>,
    /// The project was torn down and its state removed: never write it again.
    forgotten: AtomicBool,
    /// Set for the engine of a one-off container (`rcompose run`).
    oneoff: Mutex<Option<OneOff>>,
}

fn cerr(container: &str, reason: impl std::fmt::Display) -> BackendError {
    BackendError::Container {
        container: container.to_string(),
        reason: reason.to_string(),
    }
}

fn nerr(net: &str, reason: impl std::fmt::Display) -> BackendError {
    BackendError::Network {
        network: net.to_string(),
        reason: reason.to_string(),
    }
}

impl Engine {
    /// Open the engine of one project: loads its state file (or starts an empty one).
    pub fn open(paths: ProjectPaths, supervising: bool) -> Result<Arc<Engine>, StateError> {
        let store = StateStore::new(paths.clone());
        let state = store.load_or_new()?;
        let runtime = rt::Runtime::new(&paths.root).map_err(|source| StateError::Io {
            path: PathBuf::from("/proc/self/exe"),
            source,
        })?;
        let mut networks = network::Networks::new(&paths.root);
        // `RCOMPOSE_NETWORK_POOL=10.213.5.0/24[,…]`: where subnets of networks without an
        // explicit `ipam` come from (tests give each stack its own pool).
        if let Ok(pool) = std::env::var("RCOMPOSE_NETWORK_POOL") {
            let bases: Vec<_> = pool
                .split(',')
                .filter_map(|b| network::ipam::parse_subnet("pool", b.trim()).ok())
                .collect();
            if !bases.is_empty() {
                let size = bases
                    .iter()
                    .map(|b| b.prefix_len())
                    .max()
                    .unwrap_or(24)
                    .max(24);
                networks = networks.with_pool(network::Pool { bases, size });
            }
        }
        if supervising {
            // The sealed helper copy made now is the one `rcompose exec` reuses (through
            // /proc/<supervisor>/fd) instead of copying the binary on every call.
            let rt = runtime.clone();
            std::thread::spawn(move || {
                if let Err(e) = rt.seal_helper() {
                    tracing::warn!("seal the helper binary: {e}");
                }
            });
        }
        Ok(Arc::new(Engine {
            paths,
            store,
            state: Mutex::new(state),
            changed: Condvar::new(),
            loaded: RwLock::new(None),
            runtime,
            images: OnceLock::new(),
            networks,
            live: Mutex::new(HashMap::new()),
            stopping: Mutex::new(HashSet::new()),
            shutting_down: AtomicBool::new(false),
            supervising,
            bus: Mutex::new(Vec::new()),
            dns: Mutex::new(BTreeMap::new()),
            forgotten: AtomicBool::new(false),
            oneoff: Mutex::new(None),
        }))
    }

    /// Set the compose project (from `up`, or a later `up` with a changed file).
    pub fn set_project(&self, project: compose::Project) {
        let mut desired = spec::desired(&project);
        if let Ok(store) = self.images() {
            super::build::fold_image_ids(&project, &mut desired, store);
        }
        {
            let mut st = self.lock_state();
            st.working_dir = project.working_dir.clone();
            st.config_files = project.compose_files.clone();
        }
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) =
            Some(Arc::new(Loaded { project, desired }));
    }

    /// Make this engine create one-off containers (`rcompose run`).
    pub fn set_oneoff(&self, o: OneOff) {
        *self.oneoff.lock().unwrap_or_else(|e| e.into_inner()) = Some(o);
    }

    /// The pty master of a one-off created with `tty` (once).
    pub fn take_oneoff_master(&self) -> Option<OwnedFd> {
        self.oneoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .and_then(|o| o.master.take())
    }

    pub fn loaded(&self) -> Option<Arc<Loaded>> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn lock_state(&self) -> MutexGuard<'_, ProjectState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> ProjectState {
        self.lock_state().clone()
    }

    /// Change the state, save it (atomically) and wake waiters.
    pub fn update<R>(&self, f: impl FnOnce(&mut ProjectState) -> R) -> R {
        let mut st = self.lock_state();
        let r = f(&mut st);
        if self.forgotten.load(Ordering::SeqCst) {
            self.changed.notify_all();
            return r;
        }
        if let Err(e) = self.store.save(&st) {
            tracing::error!("saving project state: {e}");
        }
        self.changed.notify_all();
        r
    }

    /// Send an event to `events` subscribers.
    pub fn publish(&self, e: Event) {
        let mut bus = self.bus.lock().unwrap_or_else(|e| e.into_inner());
        bus.retain(|tx| tx.send(e.clone()).is_ok());
    }

    pub fn subscribe(&self) -> std::sync::mpsc::Receiver<Event> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.bus.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        rx
    }

    pub fn backends(self: &Arc<Self>) -> Backends<'_> {
        Backends {
            images: &**self,
            networks: &**self,
            volumes: &**self,
            containers: self,
        }
    }

    fn images(&self) -> Result<&img::Store, String> {
        self.images
            .get_or_init(|| img::Store::open(&self.paths.root).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| e.clone())
    }

    /// Observe: the state file with liveness checked against the kernel (a container whose pid
    /// 1 is gone and that no thread of ours watches has exited), and the images present.
    pub fn observe(&self, persist: bool) -> Observed {
        let state = self.observe_state(persist);
        let mut images_present = std::collections::BTreeSet::new();
        let mut images_stale = std::collections::BTreeSet::new();
        if let (Some(l), Ok(store)) = (self.loaded(), self.images()) {
            let wanted: BTreeMap<&String, &String> = l
                .desired
                .services
                .values()
                .map(|s| (&s.image, &s.pull_policy))
                .collect();
            for (image, policy) in wanted {
                if !matches!(store.get(image), Ok(Some(_))) {
                    continue;
                }
                images_present.insert(image.clone());
                if let Ok(img::PullPolicy::Every(max_age)) = img::PullPolicy::parse(policy) {
                    let pulled = store.pulled_at(image).ok().flatten().unwrap_or(0);
                    if now_secs().saturating_sub(pulled) >= max_age.as_secs() {
                        images_stale.insert(image.clone());
                    }
                }
            }
        }
        Observed {
            state,
            images_present,
            images_stale,
        }
    }

    /// The containers whose pid 1 this supervisor waits on (its exit is recorded by `on_exit`).
    fn watched_names(&self) -> HashSet<String> {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, l)| l.watched)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The containers part of `observe`, for verbs that never create (`down`, `stop`, `kill`):
    /// no image record is read.
    pub fn observe_state(&self, persist: bool) -> ProjectState {
        let watched = self.watched_names();
        let refresh = |st: &mut ProjectState| {
            for c in st.containers.values_mut() {
                let up = matches!(c.status, ContainerStatus::Running | ContainerStatus::Paused);
                if up && !watched.contains(&c.name) {
                    let alive = c.pid.is_some_and(|p| pid_alive(p, c.pid_start));
                    if !alive {
                        c.status = ContainerStatus::Exited;
                        c.finished.get_or_insert(now_secs());
                        c.pid = None;
                    }
                }
            }
            st.clone()
        };
        if persist {
            self.update(refresh)
        } else {
            refresh(&mut self.settled_snapshot())
        }
    }

    /// The state as seen from outside a running supervisor (`up --dry-run`). A container whose
    /// pid 1 just ended is the supervisor's child: it reaps it and records the exit code a few
    /// moments later. Judging it here would see "exited, code unknown" mid-transition, so
    /// reread the supervisor's state until it has recorded those exits (bounded wait).
    fn settled_snapshot(&self) -> ProjectState {
        let dead_up = |st: &ProjectState| {
            st.containers.values().any(|c| {
                matches!(c.status, ContainerStatus::Running | ContainerStatus::Paused)
                    && !c.pid.is_some_and(|p| pid_alive(p, c.pid_start))
            })
        };
        let supervised = |st: &ProjectState| {
            st.supervisor
                .as_ref()
                .is_some_and(|s| pid_alive(s.pid, s.pid_start))
        };
        let mut st = self.snapshot();
        if self.supervising {
            return st;
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while dead_up(&st) && supervised(&st) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            if let Ok(Some(fresh)) = self.store.load() {
                st = fresh;
            }
        }
        st
    }

    /// The runtime handle of a container: in memory, or loaded from its state folder.
    fn handle(&self, name: &str) -> Option<rt::Created> {
        if let Some(c) = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .and_then(|l| l.created.clone())
        {
            return Some(c);
        }
        rt::Created::load(&self.runtime_dir(name)).ok()
    }

    /// The runtime handle of container `target` once it is created: creates run in parallel,
    /// so a container that shares another's namespaces or volumes waits for it (30 s at most).
    fn wait_created(&self, target: &str) -> Option<rt::Created> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let live = self
                .live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(target)
                .and_then(|l| l.created.clone());
            if let Some(c) = live.or_else(|| rt::Created::load(&self.runtime_dir(target)).ok()) {
                if c.pid > 0 {
                    return Some(c);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn runtime_dir(&self, name: &str) -> PathBuf {
        self.paths.container_dir(name).join("rt")
    }

    fn files_dir(&self, name: &str) -> PathBuf {
        self.paths.container_dir(name).join("files")
    }

    fn netns_pin(&self, name: &str) -> PathBuf {
        self.paths.netns_dir().join(name)
    }

    /// Create the container in the runtime and keep its handle as the live one; returns the
    /// handle and its record for the state file.
    fn create_live(
        &self,
        spec: &rt::ContainerSpec,
        name: &str,
    ) -> Result<(rt::Created, serde_json::Value), BackendError> {
        let created = self.runtime_create(spec, name)?;
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .created = Some(created.clone());
        let runtime = serde_json::to_value(&created).unwrap_or_default();
        Ok((created, runtime))
    }

    /// Create the runtime container (namespaces, rootfs, cgroup; pid 1 waits before exec) with
    /// its stdout/stderr piped into the json-file log.
    fn runtime_create(
        &self,
        spec: &rt::ContainerSpec,
        name: &str,
    ) -> Result<rt::Created, BackendError> {
        let given = self
            .oneoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .and_then(|o| o.stdio.take());
        if let Some(stdio) = given {
            if spec.process.tty {
                let (created, master) = self
                    .runtime
                    .create_with_terminal(spec, stdio)
                    .map_err(|e| cerr(name, e))?;
                if let Some(o) = self
                    .oneoff
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_mut()
                {
                    o.master = Some(master);
                }
                return Ok(created);
            }
            return self.runtime.create(spec, stdio).map_err(|e| cerr(name, e));
        }
        let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| cerr(name, format!("pipe: {e}")))?;
        let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| cerr(name, format!("pipe: {e}")))?;
        // `stdin_open` without a terminal: a pipe whose write end we keep.
        let (stdin_r, stdin_w) = if spec.process.stdin && !spec.process.tty {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| cerr(name, format!("pipe: {e}")))?;
            (Some(r), Some(w))
        } else {
            (None, None)
        };
        let stdio = rt::Stdio {
            stdin: stdin_r,
            stdout: out_w,
            stderr: err_w,
        };
        // `tty: true`: a terminal of the container's own; its master is the log's source (one
        // stream, as Docker logs a tty container) and keeps the terminal open. The pipes serve
        // setup errors only and end when the terminal replaces them.
        let (created, master) = if spec.process.tty {
            let (c, m) = self
                .runtime
                .create_with_terminal(spec, stdio)
                .map_err(|e| cerr(name, e))?;
            (c, Some(m))
        } else {
            let c = self
                .runtime
                .create(spec, stdio)
                .map_err(|e| cerr(name, e))?;
            (c, None)
        };
        // `attach` types into the stdin pipe or the terminal through the relay socket.
        let input = stdin_w
            .as_ref()
            .map(|w| w.as_fd())
            .or(master.as_ref().map(|m| m.as_fd()));
        let relay = input.and_then(
            |fd| match super::stdin::Relay::start(&self.paths, name, fd) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!("{e}");
                    None
                }
            },
        );
        {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            let l = live.entry(name.to_string()).or_default();
            l.stdin = stdin_w;
            l.relay = relay;
        }
        let log = self.paths.log_file(name);
        let opts = self.log_options(&spec.service);
        match rt::logs::LogWriter::open(&log, opts) {
            Ok(w) => {
                let w = Arc::new(Mutex::new(w));
                let pumps = Arc::new(Pumps {
                    running: Mutex::new(2 + usize::from(master.is_some())),
                    done: Condvar::new(),
                });
                self.live
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(name.to_string())
                    .or_default()
                    .pumps = Some(pumps.clone());
                pump(out_r, rt::logs::Stream::Stdout, w.clone(), pumps.clone());
                if let Some(m) = master {
                    pump(m, rt::logs::Stream::Stdout, w.clone(), pumps.clone());
                }
                pump(err_r, rt::logs::Stream::Stderr, w, pumps);
            }
            Err(e) => tracing::warn!("container {name}: log file {}: {e}", log.display()),
        }
        Ok(created)
    }

    fn log_options(&self, service: &str) -> rt::logs::LogOptions {
        let mut o = rt::logs::LogOptions {
            max_size: None,
            max_file: 1,
        };
        let Some(l) = self.loaded() else { return o };
        let Some(opts) = l
            .project
            .services
            .get(service)
            .and_then(|s| s.logging.as_ref())
            .and_then(|l| l.options.as_ref())
        else {
            return o;
        };
        if let Some(Some(s)) = opts.get("max-size") {
            o.max_size = compose::units::parse_bytes(s).map(|b| b.max(0) as u64);
        }
        if let Some(Some(n)) = opts.get("max-file") {
            o.max_file = n.parse().unwrap_or(1);
        }
        o
    }

    /// Wire the container's network namespace: pin it, connect every network, publish ports,
    /// write hosts and resolv.conf. Returns the runtime's choice.
    fn setup_network(
        &self,
        loaded: &Loaded,
        svc: &compose::Service,
        name: &str,
        hostname: &str,
    ) -> Result<(spec::NetChoice, Vec<PortRecord>), BackendError> {
        let project = &loaded.project;
        match svc.network_mode.as_deref() {
            Some("host") => {
                return Ok((
                    spec::NetChoice {
                        mode: rt::NetMode::Host,
                        hosts: None,
                        resolv_conf: None,
                    },
                    vec![],
                ))
            }
            Some("none") => {
                return Ok((
                    spec::NetChoice {
                        mode: rt::NetMode::New,
                        hosts: None,
                        resolv_conf: None,
                    },
                    vec![],
                ))
            }
            Some(mode) => {
                let other = mode
                    .strip_prefix("service:")
                    .or_else(|| mode.strip_prefix("container:"))
                    .ok_or_else(|| cerr(name, format!("network_mode {mode} is not supported")))?;
                let target = if mode.starts_with("service:") {
                    self.lock_state()
                        .service_containers(other)
                        .filter(|c| !c.oneoff)
                        .min_by_key(|c| c.number)
                        .map(|c| c.name.clone())
                        .unwrap_or_else(|| naming::container_name(&project.name, other, 1))
                } else {
                    other.to_string()
                };
                return Ok((
                    spec::NetChoice {
                        mode: rt::NetMode::Join(self.netns_pin(&target)),
                        hosts: None,
                        resolv_conf: None,
                    },
                    vec![],
                ));
            }
            None => {}
        }
        let pin = self.netns_pin(name);
        std::fs::create_dir_all(self.paths.netns_dir()).map_err(|e| cerr(name, e))?;
        network::Netns::create(&pin).map_err(|e| cerr(name, e))?;
        let keys = spec::service_networks(svc);
        let mut first: Option<network::Endpoint> = None;
        for (i, key) in keys.iter().enumerate() {
            let full = spec::network_name(project, key);
            let sn = svc
                .networks
                .as_ref()
                .and_then(|n| n.get(key))
                .and_then(|n| n.as_ref());
            let mut names = vec![svc.name.clone(), name.to_string(), hostname.to_string()];
            names.extend(sn.and_then(|n| n.aliases.clone()).unwrap_or_default());
            let ep = self
                .networks
                .connect(
                    &full,
                    &pin,
                    &network::EndpointSpec {
                        container: name.to_string(),
                        ifname: format!("eth{i}"),
                        ipv4: sn
                            .and_then(|n| n.ipv4_address.as_deref())
                            .and_then(|a| a.parse().ok()),
                        mac: sn.and_then(|n| n.mac_address.clone()),
                        names,
                        links: links_of(svc),
                        dns: svc
                            .dns
                            .iter()
                            .flatten()
                            .filter_map(|d| d.parse().ok())
                            .collect(),
                        default_route: i == 0,
                    },
                )
                .map_err(|e| nerr(&full, e))?;
            first.get_or_insert(ep);
        }
        let mut ports = Vec::new();
        let files = self.files_dir(name);
        std::fs::create_dir_all(&files).map_err(|e| cerr(name, e))?;
        let (hosts, resolv) = (files.join("hosts"), files.join("resolv.conf"));
        let own = first.as_ref().map(|e| e.ip);
        let gateway = first.as_ref().map(|e| e.gateway);
        let extra: Vec<(String, String)> = svc
            .extra_hosts
            .iter()
            .flatten()
            .filter_map(|e| {
                // `host=ip` (canonical) or `host:ip`.
                let (h, ip) = e.split_once('=').or_else(|| e.split_once(':'))?;
                Some((h.to_string(), ip.to_string()))
            })
            .collect();
        let host_names = vec![hostname.to_string(), name.to_string()];
        std::fs::write(
            &hosts,
            network::files::hosts(own, &host_names, &extra, gateway),
        )
        .map_err(|e| cerr(name, e))?;
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let dns: Vec<std::net::IpAddr> = svc
            .dns
            .iter()
            .flatten()
            .filter_map(|d| d.parse().ok())
            .collect();
        std::fs::write(
            &resolv,
            network::files::resolv_conf(
                gateway,
                &dns,
                svc.dns_search.as_deref().unwrap_or(&[]),
                svc.dns_opt.as_deref().unwrap_or(&[]),
                &host_resolv,
            ),
        )
        .map_err(|e| cerr(name, e))?;
        let publish = self
            .oneoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_none_or(|o| o.publish);
        if let (Some(ep), Some(svc_ports), true) = (&first, &svc.ports, publish) {
            let specs: Vec<network::PortSpec> = svc_ports.iter().filter_map(port_spec).collect();
            if !specs.is_empty() {
                let published = self
                    .networks
                    .publish(name, ep.ip, &specs)
                    .map_err(|e| cerr(name, e))?;
                ports = published
                    .iter()
                    .map(|p| PortRecord {
                        host_ip: p
                            .host_ip
                            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED)
                            .to_string(),
                        host_port: p.host_port,
                        container_port: p.container_port,
                        protocol: p.proto.to_string(),
                    })
                    .collect();
            }
        }
        Ok((
            spec::NetChoice {
                mode: rt::NetMode::Join(pin),
                hosts: Some(hosts),
                resolv_conf: Some(resolv),
            },
            ports,
        ))
    }

    /// Undo `setup_network` (each part independently; errors are collected).
    fn teardown_network(&self, rec: &ContainerRecord) -> Vec<String> {
        let mut errors = Vec::new();
        if !rec.ports.is_empty() {
            if let Err(e) = self.networks.unpublish(&rec.name) {
                errors.push(e.to_string());
            }
        }
        // Our own namespace: unpin it first and let the kernel take the veths with it (one
        // batch for every namespace that dies at the same time, instead of one RTM_DELLINK per
        // veth, each waiting for an RCU grace period under the rtnl lock). Then wait for the
        // host ends to vanish, deleting any that stays (a process outside still holding the
        // namespace).
        let pinned_gone = rec
            .netns
            .as_ref()
            .map(|pin| match network::Netns::remove(pin) {
                Ok(()) => true,
                Err(e) => {
                    errors.push(e.to_string());
                    false
                }
            })
            .unwrap_or(false);
        let mut released = Vec::new();
        for net in &rec.networks {
            if pinned_gone {
                match self.networks.release(net, &rec.name) {
                    Ok(v) => released.push(v),
                    Err(e) => tracing::debug!("release {} from {net}: {e}", rec.name),
                }
            } else if let Err(e) = self.networks.disconnect(net, &rec.name) {
                tracing::debug!("disconnect {} from {net}: {e}", rec.name);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        for v in released {
            let sys = Path::new("/sys/class/net").join(&v);
            while sys.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            if let Err(e) = self.networks.delete_veth(&v) {
                errors.push(e.to_string());
            }
        }
        errors
    }

    /// Start watching a started container: exit → restart policy; healthchecks.
    fn watch(self: &Arc<Self>, name: &str, pid: i32) {
        if !self.supervising {
            return;
        }
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .watched = true;
        let me = self.clone();
        let n = name.to_string();
        let _ = std::thread::Builder::new()
            .name(format!("wait-{pid}"))
            .stack_size(128 << 10)
            .spawn(move || {
                let status = rt::wait(pid);
                me.on_exit(&n, pid, status.map(|s| s.code()).unwrap_or(255));
            });
        let hc = self.healthcheck_of(name);
        if let Some(hc) = hc {
            let me = self.clone();
            let n = name.to_string();
            let _ = std::thread::Builder::new()
                .name("health".into())
                .stack_size(128 << 10)
                .spawn(move || me.health_loop(&n, pid, hc));
        }
    }

    fn healthcheck_of(&self, name: &str) -> Option<Healthcheck> {
        let loaded = self.loaded()?;
        let service = self.lock_state().containers.get(name)?.service.clone();
        let svc = loaded.project.services.get(&service)?;
        let image = self
            .images()
            .ok()
            .and_then(|s| s.get(&spec::image_ref(&loaded.project, svc)).ok().flatten());
        spec::healthcheck(svc, image.as_ref().map(|i| &i.config))
    }

    fn on_exit(self: &Arc<Self>, name: &str, pid: i32, code: i32) {
        // Everything the container wrote reaches its log before it is reported exited.
        let pumps = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .and_then(|l| l.pumps.clone());
        if let Some(p) = pumps {
            p.wait(Duration::from_secs(1));
        }
        // The run is over: no more input.
        if let Some(l) = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(name)
        {
            l.relay = None;
            l.stdin = None;
        }
        let stopping = self
            .stopping
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name)
            || self.shutting_down.load(Ordering::SeqCst);
        let policy = self.loaded().and_then(|l| {
            let st = self.lock_state();
            let svc = st.containers.get(name)?.service.clone();
            l.desired.services.get(&svc).map(|s| s.restart)
        });
        let restart = self.update(|st| {
            let c = st.containers.get_mut(name)?;
            if c.pid != Some(pid) {
                return None;
            }
            c.status = ContainerStatus::Exited;
            c.exit_code = Some(code);
            c.finished = Some(now_secs());
            c.pid = None;
            c.health = c.health.map(|_| Health::Unhealthy);
            let again = !stopping
                && policy
                    .is_some_and(|p| p.should_restart(code, c.restart_count, c.stopped_by_user));
            if again {
                c.status = ContainerStatus::Restarting;
            }
            Some((again, c.restart_count))
        });
        if let Some(l) = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(name)
        {
            l.watched = false;
        }
        self.publish(Event::done(
            Resource::Container,
            name,
            &format!("Exited ({code})"),
        ));
        let Some((true, restarts)) = restart else {
            return;
        };
        self.schedule_restart(name, restarts);
    }

    /// The supervisor's periodic look at containers it did not start (adopted from a
    /// supervisor that was killed: not our children, so no waitpid tells us of their exit).
    /// Those whose pid 1 is gone are recorded exited and get their restart policy applied,
    /// as our own children do in `on_exit`. Their exit code is unknown (it went to the dead
    /// supervisor's reaper): `on-failure` counts it as a failure.
    pub fn supervise_adopted(self: &Arc<Self>) {
        let watched = self.watched_names();
        let adopted: Vec<String> = self
            .lock_state()
            .containers
            .values()
            .filter(|c| c.status == ContainerStatus::Running && !watched.contains(&c.name))
            .map(|c| c.name.clone())
            .collect();
        let st = self.observe_state(true);
        if !self.supervising || self.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        for name in adopted {
            if st
                .containers
                .get(&name)
                .is_none_or(|c| c.status != ContainerStatus::Exited)
            {
                continue;
            }
            let stopping = self
                .stopping
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&name);
            let policy = self.loaded().and_then(|l| {
                let svc = st.containers.get(&name)?.service.clone();
                l.desired.services.get(&svc).map(|s| s.restart)
            });
            let restart = self.update(|st| {
                let c = st.containers.get_mut(&name)?;
                let code = c.exit_code.unwrap_or(255);
                let again = c.status == ContainerStatus::Exited
                    && !stopping
                    && policy.is_some_and(|p| {
                        p.should_restart(code, c.restart_count, c.stopped_by_user)
                    });
                if again {
                    c.status = ContainerStatus::Restarting;
                }
                Some((again, c.restart_count))
            });
            if let Some((true, restarts)) = restart {
                tracing::info!("container {name}: adopted, exited: restart policy applies");
                self.schedule_restart(&name, restarts);
            }
        }
    }

    /// Restart `name` after Docker's backoff for its `restarts`-th restart, unless it was
    /// stopped or the project goes down in between.
    fn schedule_restart(self: &Arc<Self>, name: &str, restarts: u32) {
        let delay = super::model::RestartPolicy::backoff(restarts);
        let me = self.clone();
        let n = name.to_string();
        let _ = std::thread::Builder::new()
            .name("restart".into())
            .stack_size(256 << 10)
            .spawn(move || {
                std::thread::sleep(delay);
                let still = me
                    .lock_state()
                    .containers
                    .get(&n)
                    .is_some_and(|c| c.status == ContainerStatus::Restarting);
                if !still || me.shutting_down.load(Ordering::SeqCst) {
                    return;
                }
                if let Err(e) = me.restart_in_place(&n) {
                    tracing::warn!("{e}");
                    me.update(|st| {
                        if let Some(c) = st.containers.get_mut(&n) {
                            c.status = ContainerStatus::Exited;
                        }
                    });
                    me.publish(Event::failed(Resource::Container, &n, e.to_string()));
                }
            });
    }

    /// Run the container again with the same spec and network namespace (restart policy,
    /// `restart`, `start` of an exited container).
    pub fn restart_in_place(self: &Arc<Self>, name: &str) -> Result<(), BackendError> {
        let old = self
            .handle(name)
            .ok_or_else(|| cerr(name, "no runtime record (was it created?)"))?;
        let spec = old.spec.clone();
        // Only the runtime part goes: logs, files and the network stay, and so does the
        // writable layer (Docker keeps a container's filesystem changes until it is
        // removed): the upper dir is moved aside while the runtime's state folder is cleaned,
        // then put back for the new overlay. The overlay's work dir is not kept (its
        // `volatile` marker would make the new mount fail).
        let upper = spec.state_dir.join("upper");
        let kept = self.paths.container_dir(name).join("upper.kept");
        let keep = upper.is_dir() && std::fs::rename(&upper, &kept).is_ok();
        let _ = rt::cleanup(&spec.state_dir);
        if keep {
            let restored = std::fs::create_dir_all(&spec.state_dir)
                .and_then(|_| std::fs::rename(&kept, &upper));
            if let Err(e) = restored {
                tracing::warn!("container {name}: keeping the writable layer: {e}");
                let _ = std::fs::remove_dir_all(&kept);
            }
        }
        let (created, runtime) = self.create_live(&spec, name)?;
        self.update(|st| {
            if let Some(c) = st.containers.get_mut(name) {
                c.runtime = runtime;
                c.restart_count += 1;
            }
        });
        self.start_created(name, &created)
    }

    fn start_created(
        self: &Arc<Self>,
        name: &str,
        created: &rt::Created,
    ) -> Result<(), BackendError> {
        self.stopping
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        let pid = created.pid;
        let start_time = pid_start_time(pid);
        let has_health = self.healthcheck_of(name).is_some();
        self.update(|st| {
            if let Some(c) = st.containers.get_mut(name) {
                c.status = ContainerStatus::Running;
                c.pid = Some(pid);
                c.pid_start = start_time;
                c.started = Some(now_secs());
                c.exit_code = None;
                c.stopped_by_user = false;
                c.health = has_health.then_some(Health::Starting);
            }
        });
        self.watch(name, pid);
        created.start().map_err(|e| cerr(name, e))?;
        self.publish(Event::done(Resource::Container, name, "Started"));
        Ok(())
    }

    fn health_loop(&self, name: &str, pid: i32, hc: Healthcheck) {
        let began = Instant::now();
        let mut failures = 0u32;
        let mut ever_healthy = false;
        loop {
            let in_start = began.elapsed() < hc.start_period;
            let pause = if in_start && !ever_healthy {
                hc.start_interval
            } else {
                hc.interval
            };
            // Sleep in short steps so a stopped container ends the loop quickly.
            let until = Instant::now() + pause;
            while Instant::now() < until {
                if !self.is_current(name, pid) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50).min(pause));
            }
            if !self.is_current(name, pid) {
                return;
            }
            let ok = self.probe(name, &hc);
            let health = if ok {
                failures = 0;
                ever_healthy = true;
                Some(Health::Healthy)
            } else if in_start && !ever_healthy {
                None
            } else {
                failures += 1;
                (failures >= hc.retries).then_some(Health::Unhealthy)
            };
            if let Some(h) = health {
                let changed = self.update(|st| {
                    let c = st.containers.get_mut(name)?;
                    if c.pid != Some(pid) || c.health == Some(h) {
                        return None;
                    }
                    c.health = Some(h);
                    Some(h)
                });
                if let Some(h) = changed {
                    let label = match h {
                        Health::Healthy => "Healthy",
                        Health::Unhealthy => "Unhealthy",
                        Health::Starting => "Starting",
                    };
                    self.publish(Event::done(Resource::Container, name, label));
                }
            }
        }
    }

    fn is_current(&self, name: &str, pid: i32) -> bool {
        !self.shutting_down.load(Ordering::SeqCst)
            && self
                .lock_state()
                .containers
                .get(name)
                .is_some_and(|c| c.pid == Some(pid) && c.status == ContainerStatus::Running)
    }

    /// Run the healthcheck command once in the container, bounded by its timeout.
    fn probe(&self, name: &str, hc: &Healthcheck) -> bool {
        let Some(created) = self.handle(name) else {
            return false;
        };
        let devnull = |w: bool| -> Option<OwnedFd> {
            std::fs::OpenOptions::new()
                .read(!w)
                .write(w)
                .open("/dev/null")
                .ok()
                .map(OwnedFd::from)
        };
        let (Some(o), Some(e)) = (devnull(true), devnull(true)) else {
            return false;
        };
        let exec = rt::ExecSpec {
            process: rt::ProcessSpec {
                args: hc.test.clone(),
                env: created.spec.process.env.clone(),
                cwd: created.spec.process.cwd.clone(),
                user: created.spec.process.user.clone(),
                ..Default::default()
            },
            privileged: false,
        };
        self.exec_wait(&created, &exec, o, e, hc.timeout) == Ok(0)
    }

    /// Run `exec` in the container and wait for it, up to `timeout` (then SIGKILL). Returns
    /// its exit code.
    fn exec_wait(
        &self,
        created: &rt::Created,
        exec: &rt::ExecSpec,
        stdout: OwnedFd,
        stderr: OwnedFd,
        timeout: Duration,
    ) -> Result<i32, String> {
        let p = created
            .exec(
                &self.runtime,
                exec,
                rt::Stdio {
                    stdin: None,
                    stdout,
                    stderr,
                },
            )
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + timeout;
        loop {
            match rt::try_wait(p.pid) {
                Ok(Some(s)) => return Ok(s.code()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) => {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p.pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    let _ = rt::wait(p.pid);
                    return Err(format!("timed out after {timeout:?}"));
                }
                Err(e) => return Err(format!("wait for pid {}: {e}", p.pid)),
            }
        }
    }

    /// Run the service's `post_start` or `pre_stop` hooks (`which`) in the container, one
    /// after the other; the first that fails ends the list with its error. Their output is
    /// discarded.
    fn run_hooks(&self, name: &str, which: &str) -> Result<(), BackendError> {
        let Some(loaded) = self.loaded() else {
            return Ok(());
        };
        let Some(service) = self
            .lock_state()
            .containers
            .get(name)
            .map(|c| c.service.clone())
        else {
            return Ok(());
        };
        let Some(svc) = loaded.project.services.get(&service) else {
            return Ok(());
        };
        let hooks = match which {
            "post_start" => svc.post_start.as_deref(),
            _ => svc.pre_stop.as_deref(),
        };
        let Some(hooks) = hooks.filter(|h| !h.is_empty()) else {
            return Ok(());
        };
        let Some(created) = self.handle(name) else {
            return Ok(());
        };
        for (i, h) in hooks.iter().enumerate() {
            let exec = spec::hook_exec(h, &created.spec.process)
                .map_err(|e| cerr(name, format!("{which}[{i}]: {e}")))?;
            let log = || -> Option<OwnedFd> {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/null")
                    .ok()
                    .map(OwnedFd::from)
            };
            let (Some(o), Some(e)) = (log(), log()) else {
                return Err(cerr(name, "open /dev/null"));
            };
            match self.exec_wait(&created, &exec, o, e, Duration::from_secs(60)) {
                Ok(0) => {}
                Ok(code) => {
                    return Err(cerr(
                        name,
                        format!(
                            "{which}[{i}] hook {:?} exited with code {code}",
                            exec.process.args
                        ),
                    ))
                }
                Err(e) => return Err(cerr(name, format!("{which}[{i}] hook: {e}"))),
            }
        }
        Ok(())
    }

    /// Stop a container (stop signal, grace period, SIGKILL of the whole cgroup).
    pub fn stop_container(
        &self,
        name: &str,
        timeout: Duration,
        by_user: bool,
    ) -> Result<(), BackendError> {
        self.stopping
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string());
        let running = self
            .lock_state()
            .containers
            .get(name)
            .map(|c| c.status == ContainerStatus::Running);
        let Some(running) = running else {
            return Ok(());
        };
        if running {
            // Docker Compose runs `pre_stop` before the stop signal; a failing hook does not
            // keep the container from stopping.
            if let Err(e) = self.run_hooks(name, "pre_stop") {
                tracing::warn!("{e}");
            }
        }
        let watched = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .is_some_and(|l| l.watched);
        if let Some(h) = self.handle(name) {
            if h.pid > 0 && watched {
                // Our watcher thread is blocked in waitpid on pid 1 and records the exit:
                // wait for that (woken by the state change) instead of polling the cgroup.
                // When pid 1 of a pid namespace exits the kernel kills every other process
                // of the namespace before waitpid returns, so the container is empty then.
                self.stop_watched(name, &h, timeout)?;
            } else if h.pid > 0 {
                h.stop(timeout).map_err(|e| cerr(name, e))?;
            }
        }
        self.update(|st| {
            if let Some(c) = st.containers.get_mut(name) {
                if matches!(
                    c.status,
                    ContainerStatus::Running
                        | ContainerStatus::Paused
                        | ContainerStatus::Restarting
                ) {
                    c.status = ContainerStatus::Exited;
                    c.exit_code.get_or_insert(137);
                    c.finished = Some(now_secs());
                    c.pid = None;
                }
                c.stopped_by_user |= by_user;
            }
        });
        Ok(())
    }

    /// Stop a container whose pid 1 is our child and watched: the stop signal, a wait on the
    /// watcher's record of the exit for `grace`, then SIGKILL to the whole cgroup.
    fn stop_watched(
        &self,
        name: &str,
        h: &rt::Created,
        grace: Duration,
    ) -> Result<(), BackendError> {
        let running = |st: &mut ProjectState| {
            st.containers.get(name).is_some_and(|c| {
                c.pid == Some(h.pid)
                    && matches!(c.status, ContainerStatus::Running | ContainerStatus::Paused)
            })
        };
        let wait = |within: Duration| -> bool {
            let st = self.lock_state();
            let (mut st, _) = self
                .changed
                .wait_timeout_while(st, within, |st| running(st))
                .unwrap_or_else(|e| e.into_inner());
            !running(&mut st)
        };
        if wait(Duration::ZERO) {
            return Ok(());
        }
        if let Err(e) = h.kill(h.stop_signal) {
            tracing::debug!("container {name}: stop signal: {e}");
        }
        if wait(grace) {
            return Ok(());
        }
        // A paused container cannot act on SIGKILL until thawed; kill_all freezes and thaws.
        h.kill_all().map_err(|e| cerr(name, e))?;
        if wait(Duration::from_secs(10)) {
            Ok(())
        } else {
            Err(cerr(name, "still running 10s after SIGKILL"))
        }
    }

    /// `platform:` of a service against its image, when the image is present (before `up`
    /// creates anything).
    pub fn check_platform(&self, svc: &compose::Service, image: &str) -> Result<(), String> {
        match self.images().map(|s| s.get(image)) {
            Ok(Ok(Some(img))) => spec::check_platform(svc, &img),
            _ => Ok(()),
        }
    }

    /// Remove an image from the store (`down --rmi`); `false` when it was not there.
    pub fn remove_image(&self, image: &str) -> Result<bool, String> {
        let store = self.images()?;
        if !matches!(store.get(image), Ok(Some(_))) {
            return Ok(false);
        }
        store.remove(image).map(|_| true).map_err(|e| e.to_string())
    }

    /// A container's labels as Docker Compose sets them: the service's `labels`, then its own
    /// `com.docker.compose.*` (which win, as in Docker Compose).
    fn container_labels(
        &self,
        svc: &compose::Service,
        desired: &super::model::DesiredService,
        image: &img::Image,
        number: u32,
        oneoff: bool,
    ) -> BTreeMap<String, String> {
        let mut l: BTreeMap<String, String> = svc
            .labels
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let (project, working_dir, files) = {
            let st = self.lock_state();
            (
                st.name.clone(),
                st.working_dir.clone(),
                st.config_files.clone(),
            )
        };
        let depends_on = desired
            .depends_on
            .iter()
            .map(|d| format!("{}:{}:{}", d.service, d.condition.as_str(), d.restart))
            .collect::<Vec<_>>()
            .join(",");
        let files = files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(",");
        let p = "com.docker.compose";
        for (k, v) in [
            ("project", project),
            ("service", desired.name.clone()),
            ("container-number", number.to_string()),
            ("oneoff", if oneoff { "True" } else { "False" }.to_string()),
            ("config-hash", desired.config_hash.clone()),
            ("project.working_dir", working_dir.display().to_string()),
            ("project.config_files", files),
            ("depends_on", depends_on),
            ("image", image.id.to_string()),
            ("version", env!("CARGO_PKG_VERSION").to_string()),
        ] {
            l.insert(format!("{p}.{k}"), v);
        }
        l
    }

    /// Send a signal to every container of the selection (`kill -s`).
    pub fn kill_container(&self, name: &str, signal: i32) -> Result<(), BackendError> {
        let h = self.handle(name).ok_or_else(|| cerr(name, "not created"))?;
        h.kill(signal).map_err(|e| cerr(name, e))
    }

    pub fn pause_container(&self, name: &str, pause: bool) -> Result<(), BackendError> {
        let h = self.handle(name).ok_or_else(|| cerr(name, "not created"))?;
        if pause {
            h.pause().map_err(|e| cerr(name, e))?;
        } else {
            h.resume().map_err(|e| cerr(name, e))?;
        }
        self.update(|st| {
            if let Some(c) = st.containers.get_mut(name) {
                c.status = if pause {
                    ContainerStatus::Paused
                } else {
                    ContainerStatus::Running
                };
            }
        });
        Ok(())
    }

    /// Stop DNS servers of networks that are gone; start those of networks we use.
    fn sync_dns(&self) {
        if !self.supervising {
            return;
        }
        let nets: Vec<String> = self
            .lock_state()
            .networks
            .values()
            .filter(|n| n.created || n.external)
            .map(|n| n.name.clone())
            .collect();
        let mut dns = self.dns.lock().unwrap_or_else(|e| e.into_inner());
        dns.retain(|n, _| nets.contains(n));
        for n in nets {
            if dns.contains_key(&n) {
                continue;
            }
            let started = self
                .networks
                .dns_config(&n, network::dns::host_resolvers())
                .map_err(|e| e.to_string())
                .and_then(|cfg| {
                    let table = self
                        .networks
                        .inspect(&n)
                        .map(|r| network::NameTable::from_record(&r))
                        .unwrap_or_default();
                    network::DnsServer::start(cfg, table).map_err(|e| e.to_string())
                });
            match started {
                Ok(s) => {
                    dns.insert(n, s);
                }
                Err(e) => tracing::warn!("network {n}: dns server: {e}"),
            }
        }
    }

    /// Stop every DNS server (supervisor exit).
    pub fn stop_dns(&self) {
        let servers: Vec<network::DnsServer> =
            std::mem::take(&mut *self.dns.lock().unwrap_or_else(|e| e.into_inner()))
                .into_values()
                .collect();
        for s in servers {
            s.stop();
        }
    }

    /// Is any container running or about to be restarted?
    pub fn anything_running(&self) -> bool {
        self.lock_state().containers.values().any(|c| {
            matches!(
                c.status,
                ContainerStatus::Running | ContainerStatus::Paused | ContainerStatus::Restarting
            )
        })
    }

    /// Remove the state file and folders when nothing is left.
    pub fn forget_if_empty(&self) -> Result<bool, StateError> {
        let st = self.lock_state();
        if st.is_empty() {
            self.forgotten.store(true, Ordering::SeqCst);
            self.store.remove()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }
}

/// `links` and `external_links` (`target[:alias]`) as alias → target name for the network's
/// DNS (answered to this container only, as Docker's legacy links).
fn links_of(svc: &compose::Service) -> BTreeMap<String, String> {
    svc.links
        .iter()
        .flatten()
        .chain(svc.external_links.iter().flatten())
        .map(|l| {
            let (target, alias) = l.split_once(':').unwrap_or((l, l));
            (alias.to_string(), target.to_string())
        })
        .collect()
}

/// A compose port as the network crate's request.
fn port_spec(p: &compose::model::Port) -> Option<network::PortSpec> {
    let host_ports = match p.published.as_deref() {
        None | Some("") => None,
        Some(s) => {
            let (a, b) = s.split_once('-').unwrap_or((s, s));
            Some((a.parse().ok()?, b.parse().ok()?))
        }
    };
    Some(network::PortSpec {
        host_ip: p.host_ip.as_deref().and_then(|i| i.parse().ok()),
        host_ports,
        container_ports: (p.target, p.target),
        proto: if p.protocol.as_deref() == Some("udp") {
            network::Proto::Udp
        } else {
            network::Proto::Tcp
        },
    })
}

/// Copy a container's output pipe into its json-file log until the pipe closes.
fn pump(
    fd: OwnedFd,
    stream: rt::logs::Stream,
    writer: Arc<Mutex<rt::logs::LogWriter>>,
    pumps: Arc<Pumps>,
) {
    let on_failure = pumps.clone();
    let spawned = std::thread::Builder::new()
        .name("log".into())
        .stack_size(128 << 10)
        .spawn(move || {
            let mut f = std::fs::File::from(fd);
            let mut buf = vec![0u8; 32 << 10];
            loop {
                match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
                        let _ = w.write(stream, &buf[..n]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = writer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .flush_partial();
            pumps.finished();
        });
    if spawned.is_err() {
        // Nothing will copy this pipe: do not wait for it.
        on_failure.finished();
    }
}

impl ImageBackend for Engine {
    fn present(&self, image: &str) -> bool {
        self.images()
            .ok()
            .is_some_and(|s| matches!(s.get(image), Ok(Some(_))))
    }

    fn pull(&self, image: &str, policy: &str) -> Result<(), BackendError> {
        let err = |reason: String| BackendError::Image {
            image: image.to_string(),
            reason,
        };
        let store = self.images().map_err(err)?;
        let policy = img::PullPolicy::parse(policy).map_err(|e| err(e.to_string()))?;
        store
            .ensure(image, policy, None, &|_| {})
            .map(|_| ())
            .map_err(|e| err(e.to_string()))
    }
}

impl NetworkBackend for Engine {
    fn create_network(&self, name: &str) -> Result<(), BackendError> {
        let loaded = self.loaded();
        let found = loaded.as_ref().and_then(|l| {
            l.project
                .networks
                .iter()
                .find(|(k, _)| spec::network_name(&l.project, k) == name)
                .map(|(k, n)| (k.clone(), n.clone()))
        });
        let key = found.as_ref().map(|(k, _)| k.clone());
        let def = found.map(|(_, n)| n);
        // Recorded before the bridge exists, so `down` removes it after any crash.
        self.update(|st| {
            st.networks.insert(
                name.to_string(),
                NetworkRecord {
                    name: name.to_string(),
                    external: false,
                    created: true,
                },
            );
        });
        let opt = |k: &str| -> Option<String> {
            def.as_ref()
                .and_then(|d| d.driver_opts.as_ref())
                .and_then(|o| o.get(k).cloned())
        };
        let mut labels: BTreeMap<String, String> = def
            .as_ref()
            .and_then(|d| d.labels.as_ref())
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(l) = &loaded {
            labels.insert("com.docker.compose.project".into(), l.project.name.clone());
            labels.insert(
                "com.docker.compose.network".into(),
                key.clone().unwrap_or_else(|| name.to_string()),
            );
            labels.insert(
                "com.docker.compose.version".into(),
                env!("CARGO_PKG_VERSION").into(),
            );
        }
        let pool = def
            .as_ref()
            .and_then(|d| d.ipam.as_ref())
            .and_then(|i| i.config.as_ref())
            .and_then(|c| c.first());
        let spec = network::NetworkSpec {
            name: name.to_string(),
            subnet: pool.and_then(|p| p.subnet.clone()),
            gateway: pool
                .and_then(|p| p.gateway.as_deref())
                .and_then(|g| g.parse().ok()),
            ip_range: pool.and_then(|p| p.ip_range.clone()),
            internal: def.as_ref().and_then(|d| d.internal).unwrap_or(false),
            external: false,
            mtu: opt("com.docker.network.driver.mtu").and_then(|m| m.parse().ok()),
            bridge: opt("com.docker.network.bridge.name"),
            labels,
        };
        self.networks
            .ensure_network(&spec)
            .map_err(|e| nerr(name, e))?;
        self.sync_dns();
        Ok(())
    }

    fn remove_network(&self, name: &str) -> Result<(), BackendError> {
        if let Some(s) = self
            .dns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
        {
            s.stop();
        }
        match self.networks.remove_network(name) {
            Ok(()) => {}
            Err(network::NetworkError::Unknown(_)) => {}
            Err(e) => return Err(nerr(name, e)),
        }
        self.update(|st| st.networks.remove(name));
        Ok(())
    }
}

impl VolumeBackend for Engine {
    fn create_volume(&self, volume: &str) -> Result<(), BackendError> {
        let path = self.paths.volume_dir(volume);
        self.update(|st| {
            st.volumes.insert(
                volume.to_string(),
                VolumeRecord {
                    name: volume.to_string(),
                    path: path.clone(),
                    external: false,
                    anonymous: false,
                },
            )
        });
        std::fs::create_dir_all(&path).map_err(|e| BackendError::Volume {
            volume: volume.to_string(),
            reason: format!("create {}: {e}", path.display()),
        })
    }

    fn remove_volume(&self, volume: &str) -> Result<(), BackendError> {
        let rec = self.lock_state().volumes.get(volume).cloned();
        let dir = rec
            .map(|r| r.path)
            .unwrap_or_else(|| self.paths.volume_dir(volume));
        // `<root>/volumes/<name>/_data`: remove the volume's folder.
        let top = dir.parent().map(Path::to_path_buf).unwrap_or(dir);
        match std::fs::remove_dir_all(&top) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(BackendError::Volume {
                    volume: volume.to_string(),
                    reason: format!("remove {}: {e}", top.display()),
                })
            }
        }
        self.update(|st| st.volumes.remove(volume));
        Ok(())
    }
}

impl ContainerBackend for Arc<Engine> {
    fn create(&self, service: &str, name: &str, number: u32) -> Result<(), BackendError> {
        let loaded = self
            .loaded()
            .ok_or_else(|| cerr(name, "no compose project loaded"))?;
        let svc = loaded
            .project
            .services
            .get(service)
            .ok_or_else(|| cerr(name, format!("service {service} is not in the project")))?;
        let desired = &loaded.desired.services[service];
        let image = self
            .images()
            .map_err(|e| cerr(name, e))?
            .get(&desired.image)
            .map_err(|e| cerr(name, e))?
            .ok_or_else(|| BackendError::Image {
                image: desired.image.clone(),
                reason: "not present in the image store".into(),
            })?;
        spec::check_platform(svc, &image).map_err(|e| cerr(name, e))?;
        let id = {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            h.update(name.as_bytes());
            h.update(naming::short_id().as_bytes());
            hex::encode(h.finalize())
        };
        let hostname = svc.hostname.clone().unwrap_or_else(|| id[..12].to_string());
        let own_netns = svc.network_mode.is_none();
        // Recorded before any host resource exists.
        let record = ContainerRecord {
            name: name.to_string(),
            service: service.to_string(),
            number,
            oneoff: false,
            config_hash: desired.config_hash.clone(),
            image: desired.image.clone(),
            command: Vec::new(),
            status: ContainerStatus::Creating,
            pid: None,
            pid_start: None,
            exit_code: None,
            health: None,
            restart_count: 0,
            created: now_secs(),
            started: None,
            finished: None,
            ports: Vec::new(),
            networks: desired.networks.clone(),
            depends_on: desired
                .depends_on
                .iter()
                .map(|d| d.service.clone())
                .collect(),
            netns: own_netns.then(|| self.netns_pin(name)),
            stopped_by_user: false,
            stop_grace_period: svc.stop_grace_period.map(|d| d.0),
            labels: self.container_labels(svc, desired, &image, number, false),
            runtime: serde_json::Value::Null,
        };
        self.update(|st| st.containers.insert(name.to_string(), record));
        let (net, ports) = self.setup_network(&loaded, svc, name, &hostname)?;
        let runtime_dir = self.runtime_dir(name);
        let files_dir = self.files_dir(name);
        let volumes_root = self.paths.root.join("volumes");
        let mut anon = Vec::new();
        let container_dir = self.paths.container_dir(name);
        let spec = spec::container_spec(
            &loaded.project,
            svc,
            &image,
            &id,
            name,
            &spec::SpecPaths {
                runtime_dir: &runtime_dir,
                files_dir: &files_dir,
                volumes_root: &volumes_root,
            },
            net,
            &mut |target: &str| {
                let p = container_dir
                    .join("anon")
                    .join(target.trim_start_matches('/').replace('/', "_"));
                anon.push(p.clone());
                p
            },
        )
        .map_err(|e| cerr(name, e))?;
        for a in &anon {
            let _ = std::fs::create_dir_all(a);
        }
        let mut spec = spec;
        // `ipc`/`pid: service:x` (x's container number 1, started first through the implicit
        // depends_on) or `container:x`: join the namespace of that container's pid 1.
        for (kind, mode) in [("ipc", svc.ipc.as_deref()), ("pid", svc.pid.as_deref())] {
            let Some(mode) = mode else { continue };
            let target = match (
                mode.strip_prefix("service:"),
                mode.strip_prefix("container:"),
            ) {
                (Some(other), _) => naming::container_name(&loaded.project.name, other, 1),
                (None, Some(other)) => other.to_string(),
                _ => continue,
            };
            let pid = self
                .wait_created(&target)
                .map(|c| c.pid)
                .filter(|p| *p > 0 && pid_alive(*p, None))
                .ok_or_else(|| cerr(name, format!("{kind}: {mode}: {target} is not running")))?;
            let join = rt::ShareMode::JoinPid(pid);
            if kind == "ipc" {
                spec.namespaces.ipc = join;
            } else {
                spec.namespaces.pid = join;
            }
        }
        // `volumes_from: [service[:ro|rw], container:name[:ro|rw]]`: the volumes and binds of
        // that container (the service's number 1, created first through the implicit
        // depends_on).
        for entry in svc.volumes_from.iter().flatten() {
            let (target, mode) = match entry.strip_prefix("container:") {
                Some(rest) => {
                    let (n, m) = rest
                        .split_once(':')
                        .map_or((rest, None), |(n, m)| (n, Some(m)));
                    (n.to_string(), m)
                }
                None => {
                    let (n, m) = entry
                        .split_once(':')
                        .map_or((entry.as_str(), None), |(n, m)| (n, Some(m)));
                    (naming::container_name(&loaded.project.name, n, 1), m)
                }
            };
            let other = self.wait_created(&target).ok_or_else(|| {
                cerr(
                    name,
                    format!("volumes_from {entry}: {target} was not created"),
                )
            })?;
            let shared = rt::mounts_from(&other.spec, mode, &spec.mounts);
            spec.mounts.extend(shared);
        }
        let oneoff = {
            let guard = self.oneoff.lock().unwrap_or_else(|e| e.into_inner());
            guard.as_ref().map(|o| {
                (
                    o.command.clone(),
                    o.entrypoint.clone(),
                    o.env.clone(),
                    o.user.clone(),
                    o.workdir.clone(),
                    o.tty,
                    o.stdin,
                )
            })
        };
        if let Some((command, entrypoint, env, user, workdir, tty, stdin)) = oneoff {
            let cfg = &image.config;
            let ep = entrypoint
                .or_else(|| svc.entrypoint.clone())
                .or_else(|| cfg.entrypoint.clone())
                .unwrap_or_default();
            if let Some(cmd) = command {
                spec.process.args = ep.into_iter().chain(cmd).collect();
            } else if let Some(e) = self
                .oneoff
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .and_then(|o| o.entrypoint.clone())
            {
                spec.process.args = e;
            }
            for e in env {
                let key = e.split('=').next().unwrap_or_default().to_string();
                spec.process
                    .env
                    .retain(|x| x.split('=').next() != Some(key.as_str()));
                spec.process.env.push(e);
            }
            spec.process.user = user.or(spec.process.user);
            spec.process.cwd = workdir.or(spec.process.cwd);
            spec.process.tty = tty;
            spec.process.stdin = stdin;
            self.update(|st| {
                if let Some(c) = st.containers.get_mut(name) {
                    c.oneoff = true;
                    c.labels
                        .insert("com.docker.compose.oneoff".into(), "True".into());
                }
            });
        }
        if spec.process.args.is_empty() {
            return Err(cerr(
                name,
                "no command specified: the image has no entrypoint or cmd; set `command:` or \
                 `entrypoint:` for the service",
            ));
        }
        let command = spec.process.args.clone();
        let (_, runtime) = self.create_live(&spec, name)?;
        self.update(|st| {
            if let Some(c) = st.containers.get_mut(name) {
                c.status = ContainerStatus::Created;
                c.command = command;
                c.ports = ports;
                c.runtime = runtime;
            }
        });
        Ok(())
    }

    fn start(&self, name: &str) -> Result<(), BackendError> {
        let status = self.lock_state().containers.get(name).map(|c| c.status);
        match status {
            Some(ContainerStatus::Created) => {
                let h = self
                    .handle(name)
                    .ok_or_else(|| cerr(name, "no runtime record"))?;
                self.start_created(name, &h)?;
            }
            Some(ContainerStatus::Running) => return Ok(()),
            Some(_) => self.restart_in_place(name)?,
            None => return Err(cerr(name, "no such container")),
        }
        self.run_hooks(name, "post_start")
    }

    fn stop(&self, name: &str, timeout: Duration) -> Result<(), BackendError> {
        self.stop_container(name, timeout, false)
    }

    fn remove(&self, name: &str) -> Result<(), BackendError> {
        self.stopping
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string());
        let Some(rec) = self.lock_state().containers.get(name).cloned() else {
            return Ok(());
        };
        let mut errors = Vec::new();
        if let Err(e) = rt::cleanup(&self.runtime_dir(name)) {
            errors.push(e.to_string());
        }
        errors.extend(self.teardown_network(&rec));
        let dir = self.paths.container_dir(name);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errors.push(format!("remove {}: {e}", dir.display())),
        }
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if errors.is_empty() {
            self.update(|st| st.containers.remove(name));
            Ok(())
        } else {
            Err(cerr(name, errors.join("; ")))
        }
    }

    fn await_condition(&self, service: &str, condition: Condition) -> Result<(), BackendError> {
        let fail = |reason: String| BackendError::Condition {
            service: service.to_string(),
            condition: condition.waiting_for(),
            reason,
        };
        let mut st = self.lock_state();
        loop {
            if self.shutting_down.load(Ordering::SeqCst) {
                return Err(fail("the project is stopping".into()));
            }
            let cs: Vec<&ContainerRecord> = st.service_containers(service).collect();
            if cs.is_empty() {
                return Err(fail("it has no container".into()));
            }
            let verdict: Result<bool, String> = (|| {
                let mut all = true;
                for c in &cs {
                    match condition {
                        Condition::ServiceStarted => all &= c.started.is_some(),
                        Condition::ServiceHealthy => match (c.status, c.health) {
                            (_, Some(Health::Unhealthy)) => {
                                return Err(format!("container {} is unhealthy", c.name))
                            }
                            (ContainerStatus::Running, Some(Health::Healthy)) => {}
                            (ContainerStatus::Running, None) => {
                                return Err(format!(
                                    "container {} has no healthcheck configured",
                                    c.name
                                ))
                            }
                            (ContainerStatus::Exited, _) => {
                                return Err(format!(
                                    "container {} exited ({})",
                                    c.name,
                                    c.exit_code.unwrap_or(-1)
                                ))
                            }
                            _ => all = false,
                        },
                        Condition::ServiceCompletedSuccessfully => match (c.status, c.exit_code) {
                            (ContainerStatus::Exited, Some(0)) => {}
                            (ContainerStatus::Exited, Some(code)) => {
                                return Err(format!("container {} exited with code {code}", c.name))
                            }
                            _ => all = false,
                        },
                    }
                }
                Ok(all)
            })();
            match verdict {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => return Err(fail(e)),
            }
            st = self
                .changed
                .wait_timeout(st, Duration::from_millis(200))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The event sink that reports to a caller and to `events` subscribers.
pub struct Tee<'a> {
    pub engine: &'a Engine,
    pub sink: &'a dyn EventSink,
}

impl EventSink for Tee<'_> {
    fn emit(&self, e: Event) {
        self.engine.publish(e.clone());
        self.sink.emit(e);
    }
}
