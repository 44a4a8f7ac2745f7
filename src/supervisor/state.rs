//! The project state store: everything `down`, `ps` and `logs` need to work with no
//! supervisor running lives in `<root>/projects/<name>/state.json`. Every host resource is
//! recorded here *before* it is created (status `creating`), so teardown finds it after a
//! crash at any moment. Writes are atomic (write to a temp file, rename). Mutating
//! commands on one project serialize on a file lock in the run dir; the supervisor holds that
//! lock for its whole life, so "lock taken" means "someone is managing this project".

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// Errors of the state store, each naming the file involved.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: corrupt project state: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("project {project} is locked by another rcompose command (lock file {path})")]
    Locked { project: String, path: PathBuf },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where the files of one project live.
#[derive(Debug, Clone)]
pub struct ProjectPaths {
    pub project: String,
    /// `<root>`
    pub root: PathBuf,
    /// `<root>/projects/<name>`
    pub state_dir: PathBuf,
    /// `<run>/<name>`
    pub run_dir: PathBuf,
}

impl ProjectPaths {
    pub fn new(root: &Path, run: &Path, project: &str) -> Self {
        ProjectPaths {
            project: project.to_string(),
            root: root.to_path_buf(),
            state_dir: root.join("projects").join(project),
            run_dir: run.join(project),
        }
    }
    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }
    /// Per-container folder: the runtime's state dir (upper/work dirs, mount records) and logs.
    pub fn container_dir(&self, container: &str) -> PathBuf {
        self.state_dir.join("containers").join(container)
    }
    pub fn log_file(&self, container: &str) -> PathBuf {
        self.container_dir(container).join("json.log")
    }
    /// Named volumes live under the root, shared by projects (`<root>/volumes/<name>/_data`).
    pub fn volume_dir(&self, volume: &str) -> PathBuf {
        self.root.join("volumes").join(volume).join("_data")
    }
    pub fn socket(&self) -> PathBuf {
        self.run_dir.join("supervisor.sock")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.run_dir.join("lock")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.run_dir.join("supervisor.pid")
    }
    pub fn supervisor_log(&self) -> PathBuf {
        self.state_dir.join("supervisor.log")
    }
    pub fn netns_dir(&self) -> PathBuf {
        self.run_dir.join("netns")
    }
    /// Folder of the one-off containers of `rcompose run` (each with its own state file, so a
    /// one-off never races the supervisor's writes).
    pub fn oneoff_root(&self) -> PathBuf {
        self.state_dir.join("oneoff")
    }
    /// The paths of one one-off container's own state.
    pub fn oneoff(&self, container: &str) -> ProjectPaths {
        ProjectPaths {
            project: self.project.clone(),
            root: self.root.clone(),
            state_dir: self.oneoff_root().join(container),
            run_dir: self.run_dir.join("oneoff").join(container),
        }
    }
}

/// Lifecycle of a container as the state file records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    /// Recorded, host resources may be partly made.
    Creating,
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
}

impl ContainerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Creating => "creating",
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Paused => "paused",
            ContainerStatus::Restarting => "restarting",
            ContainerStatus::Exited => "exited",
        }
    }
}

/// Health of a container with a healthcheck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// One published port as `ps` and `port` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRecord {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

/// Everything the state file knows about one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub name: String,
    pub service: String,
    pub number: u32,
    #[serde(default)]
    pub oneoff: bool,
    pub config_hash: String,
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    pub status: ContainerStatus,
    /// The container's pid 1 on the host, and its start time (field 22 of /proc/<pid>/stat) so
    /// a recycled pid is never mistaken for the container.
    #[serde(default)]
    pub pid: Option<i32>,
    #[serde(default)]
    pub pid_start: Option<u64>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub health: Option<Health>,
    #[serde(default)]
    pub restart_count: u32,
    /// Unix seconds.
    pub created: u64,
    #[serde(default)]
    pub started: Option<u64>,
    #[serde(default)]
    pub finished: Option<u64>,
    #[serde(default)]
    pub ports: Vec<PortRecord>,
    #[serde(default)]
    pub networks: Vec<String>,
    /// Services this container's service depends on (for reverse-order teardown from state).
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Pinned network namespace, if the container has its own.
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// `docker stop`ped by the user: `unless-stopped` and `always` do not bring it back.
    #[serde(default)]
    pub stopped_by_user: bool,
    /// The service's `stop_grace_period`: how long a stop waits before SIGKILL when the
    /// command line gives no `-t` (unset: 10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<Duration>,
    /// The container's labels: the service's `labels` plus Docker Compose's own
    /// `com.docker.compose.*` (shown by `ps --format json`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Opaque record the container runtime returned at create time, handed back to it for
    /// kill / cleanup after a crash.
    #[serde(default)]
    pub runtime: serde_json::Value,
}

/// A network the project created (or uses, when external).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub name: String,
    #[serde(default)]
    pub external: bool,
    #[serde(default)]
    pub created: bool,
}

/// A volume the project created (or uses, when external).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub name: String,
    pub path: PathBuf,
    #[serde(default)]
    pub external: bool,
    #[serde(default)]
    pub anonymous: bool,
}

/// The detached supervisor, if one was started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupervisorRecord {
    pub pid: i32,
    pub pid_start: Option<u64>,
    pub socket: PathBuf,
}

/// The whole state of one project.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProjectState {
    pub name: String,
    #[serde(default)]
    pub working_dir: PathBuf,
    #[serde(default)]
    pub config_files: Vec<PathBuf>,
    #[serde(default)]
    pub containers: BTreeMap<String, ContainerRecord>,
    #[serde(default)]
    pub networks: BTreeMap<String, NetworkRecord>,
    #[serde(default)]
    pub volumes: BTreeMap<String, VolumeRecord>,
    #[serde(default)]
    pub supervisor: Option<SupervisorRecord>,
}

impl ProjectState {
    pub fn new(name: &str) -> Self {
        ProjectState {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// Containers of one service, by replica number.
    pub fn service_containers<'a>(
        &'a self,
        service: &'a str,
    ) -> impl Iterator<Item = &'a ContainerRecord> + 'a {
        self.containers
            .values()
            .filter(move |c| c.service == service && !c.oneoff)
    }

    /// True when the state records nothing left to tear down.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
            && self.networks.values().all(|n| n.external || !n.created)
            && self.volumes.is_empty()
    }
}

/// Read and write `state.json` of one project.
#[derive(Debug, Clone)]
pub struct StateStore {
    pub paths: ProjectPaths,
}

impl StateStore {
    pub fn new(paths: ProjectPaths) -> Self {
        StateStore { paths }
    }

    /// The recorded state, or `None` when the project has never been brought up here.
    pub fn load(&self) -> Result<Option<ProjectState>, StateError> {
        let path = self.paths.state_file();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StateError::Corrupt { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    /// Load, or an empty state named after the project.
    pub fn load_or_new(&self) -> Result<ProjectState, StateError> {
        Ok(self
            .load()?
            .unwrap_or_else(|| ProjectState::new(&self.paths.project)))
    }

    /// Atomic write: temp file in the same folder, fsync, rename over.
    pub fn save(&self, state: &ProjectState) -> Result<(), StateError> {
        let path = self.paths.state_file();
        fs::create_dir_all(&self.paths.state_dir).map_err(io_err(&self.paths.state_dir))?;
        let bytes = serde_json::to_vec_pretty(state).expect("project state serializes");
        write_atomic(&path, &bytes)
    }

    /// Remove the state file and the project's folders once everything is torn down.
    pub fn remove(&self) -> Result<(), StateError> {
        for dir in [&self.paths.state_dir, &self.paths.run_dir] {
            match fs::remove_dir_all(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StateError::Io {
                        path: dir.clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }
}

/// Write `bytes` to `path` atomically (temp + rename). No fsync: the rename is atomic for every
/// reader and survives the death of any process (the page cache holds it), which is the
/// crash the state must survive; an fsync per state change cost 5-10 ms each on a busy disk
/// and dominated `up` and `down`. After a power loss the runtime state is gone anyway.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

/// Names of the projects recorded under `<root>/projects`, sorted.
pub fn list_projects(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root.join("projects"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("state.json").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// The per-project lock (an `flock` on `<run>/<project>/lock`), released on drop or when the
/// holding process dies, so a crashed supervisor never leaves the project locked.
#[derive(Debug)]
pub struct ProjectLock {
    _lock: Flock<File>,
}

impl ProjectLock {
    /// Take the lock, waiting up to `wait` for another command to release it.
    pub fn acquire(paths: &ProjectPaths, wait: Duration) -> Result<ProjectLock, StateError> {
        let path = paths.lock_file();
        fs::create_dir_all(&paths.run_dir).map_err(io_err(&paths.run_dir))?;
        let deadline = Instant::now() + wait;
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(ProjectLock { _lock: lock }),
                Err((_, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(StateError::Locked {
                        project: paths.project.clone(),
                        path,
                    })
                }
                Err((_, errno)) => {
                    return Err(StateError::Io {
                        path,
                        source: io::Error::from(errno),
                    })
                }
            }
        }
    }

    /// Take the lock only if it is free right now.
    pub fn try_acquire(paths: &ProjectPaths) -> Result<Option<ProjectLock>, StateError> {
        match Self::acquire(paths, Duration::ZERO) {
            Ok(l) => Ok(Some(l)),
            Err(StateError::Locked { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Unix time in seconds.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Start time of a process (field 22 of `/proc/<pid>/stat`, clock ticks since boot).
pub fn pid_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// True when `pid` is alive and is still the process that was recorded (same start time),
/// and not a zombie.
pub fn pid_alive(pid: i32, start: Option<u64>) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    let mut fields = stat[close + 2..].split_whitespace();
    if fields.next() == Some("Z") {
        return false;
    }
    match start {
        Some(s) => pid_start_time(pid) == Some(s),
        None => true,
    }
}

/// Wait until the process `pid` (started at `start`) is gone, at most `within`. It need not
/// be our child, so this polls `/proc` (two small reads) at a short interval.
pub fn wait_gone(pid: i32, start: Option<u64>, within: Duration) {
    let deadline = Instant::now() + within;
    while pid_alive(pid, start) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, service: &str) -> ContainerRecord {
        ContainerRecord {
            name: name.into(),
            service: service.into(),
            number: 1,
            oneoff: false,
            config_hash: "h".into(),
            image: "busybox".into(),
            command: vec![],
            status: ContainerStatus::Creating,
            pid: None,
            pid_start: None,
            exit_code: None,
            health: None,
            restart_count: 0,
            created: 1,
            started: None,
            finished: None,
            ports: vec![],
            networks: vec![],
            depends_on: vec![],
            netns: None,
            stopped_by_user: false,
            stop_grace_period: None,
            labels: Default::default(),
            runtime: serde_json::Value::Null,
        }
    }

    #[test]
    fn state_round_trips_through_an_atomic_write() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = ProjectPaths::new(&tmp.path().join("root"), &tmp.path().join("run"), "p");
        let store = StateStore::new(paths);
        assert!(store.load().unwrap().is_none());
        let mut st = ProjectState::new("p");
        st.containers
            .insert("p-web-1".into(), record("p-web-1", "web"));
        store.save(&st).unwrap();
        let back = store.load().unwrap().unwrap();
        assert_eq!(back.containers["p-web-1"].service, "web");
        assert_eq!(list_projects(&tmp.path().join("root")), vec!["p"]);
        // No temp file left behind.
        let leftovers: Vec<_> = fs::read_dir(&store.paths.state_dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("state.json")]);
        store.remove().unwrap();
        assert!(!store.paths.state_dir.exists());
    }

    #[test]
    fn a_second_lock_on_a_project_waits_then_fails() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = ProjectPaths::new(tmp.path(), tmp.path(), "p");
        let first = ProjectLock::acquire(&paths, Duration::ZERO).unwrap();
        assert!(ProjectLock::try_acquire(&paths).unwrap().is_none());
        let err = ProjectLock::acquire(&paths, Duration::from_millis(50)).unwrap_err();
        assert!(err.to_string().contains("project p is locked"), "{err}");
        drop(first);
        assert!(ProjectLock::try_acquire(&paths).unwrap().is_some());
    }

    #[test]
    fn our_own_pid_is_alive_with_its_start_time() {
        let pid = std::process::id() as i32;
        let start = pid_start_time(pid);
        assert!(start.is_some());
        assert!(pid_alive(pid, start));
        assert!(!pid_alive(pid, start.map(|s| s + 1)));
    }
}
