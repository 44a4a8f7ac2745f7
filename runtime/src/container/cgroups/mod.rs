//! cgroups v1 and v2 behind one driver trait. The helper creates the container's cgroup and
//! applies limits before the container starts; the supervisor reads stats, freezes, kills and
//! removes through the same driver. Every driver takes the cgroup root as an argument
//! (`/sys/fs/cgroup` in production, a temp folder in unit tests).
//!
//! Names: `rcompose-<hash of the state root>/<container id>`, so two state roots never share
//! a cgroup.

use std::path::{Path, PathBuf};

use super::spec::Resources;

pub mod devices_bpf;
pub mod v1;
pub mod v2;

/// Errors of cgroup file operations; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cgroup {path}: unexpected content {content:?}")]
    Parse { path: PathBuf, content: String },
    #[error("cgroup {path}: still has processes after kill")]
    Busy { path: PathBuf },
}

pub type Result<T> = std::result::Result<T, CgroupError>;

/// Usage figures read from the cgroup files.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Total CPU time in nanoseconds.
    pub cpu_usage_ns: u64,
    pub memory_usage: u64,
    pub memory_limit: Option<u64>,
    pub pids: u64,
    /// Number of OOM kills inside this cgroup.
    pub oom_kills: u64,
}

/// One container's cgroup, whatever the hierarchy.
pub trait Cgroup: std::fmt::Debug + Send + Sync {
    /// Create the cgroup folders and write the limits.
    fn create(&self, resources: &Resources, devices: &DeviceRules) -> Result<()>;
    /// Move a process (0 = the caller) into the cgroup.
    fn add_pid(&self, pid: i32) -> Result<()>;
    /// Move the calling process, which must have a single thread (the helper), into the cgroup
    /// by the cheapest way the hierarchy offers.
    fn add_self_single_threaded(&self) -> Result<()> {
        self.add_pid(std::process::id() as i32)
    }
    /// Every process in the cgroup.
    fn pids(&self) -> Result<Vec<i32>>;
    fn freeze(&self) -> Result<()>;
    fn thaw(&self) -> Result<()>;
    fn stats(&self) -> Result<Stats>;
    /// Remove the cgroup folders (they must be empty of processes). Missing folders are fine.
    fn destroy(&self) -> Result<()>;
    /// The folder to check from outside (the memory controller's folder on v1).
    fn paths(&self) -> Vec<PathBuf>;
}

/// Device access rules: v1's devices controller files, or v2's eBPF device program
/// ([`devices_bpf`]).
#[derive(Debug, Clone, Default)]
pub struct DeviceRules {
    /// `true`: `a *:* rwm` (privileged).
    pub allow_all: bool,
    /// Extra rules such as `c 10:200 rwm`.
    pub extra: Vec<String>,
}

/// Docker's default device allow list (moby `oci/devices_linux.go` defaults).
pub const DEFAULT_DEVICE_RULES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:200 rwm",
];

/// Short hash of the state root, part of every kernel-visible name.
pub fn root_hash(state_root: &Path) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(state_root.as_os_str().as_encoded_bytes());
    hex::encode(&digest[..4])
}

/// The relative cgroup path of a container: `rcompose-<roothash>/<id>`.
pub fn relative_path(state_root: &Path, id: &str) -> PathBuf {
    PathBuf::from(format!("rcompose-{}", root_hash(state_root))).join(id)
}

/// Pick the driver for the hierarchy mounted at `root`: v2 when `root/cgroup.controllers`
/// exists (unified), else v1 (one folder per controller; a hybrid machine is v1).
pub fn open(root: &Path, relative: &Path) -> Box<dyn Cgroup> {
    if root.join("cgroup.controllers").exists() {
        Box::new(v2::V2::new(root, relative))
    } else {
        Box::new(v1::V1::new(root, relative))
    }
}

pub(crate) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Io {
        path: path.into(),
        source,
    })
}

pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    tracing::debug!(path = %path.display(), value, "cgroup write");
    std::fs::write(path, value).map_err(|source| CgroupError::Io {
        path: path.into(),
        source,
    })
}

pub(crate) fn mkdir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|source| CgroupError::Io {
        path: path.into(),
        source,
    })
}

pub(crate) fn parse_u64(path: &Path, text: &str) -> Result<u64> {
    text.trim().parse().map_err(|_| CgroupError::Parse {
        path: path.into(),
        content: text.into(),
    })
}

pub(crate) fn read_pids(file: &Path) -> Result<Vec<i32>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CgroupError::Io {
                path: file.into(),
                source,
            })
        }
    };
    let mut pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

/// rmdir that tolerates a missing folder; a cgroup folder is removed with rmdir, never
/// with a recursive delete (its files cannot be unlinked).
pub(crate) fn rmdir(path: &Path) -> Result<()> {
    match std::fs::remove_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CgroupError::Io {
            path: path.into(),
            source,
        }),
    }
}

/// CPU quota in microseconds per period from `cpus` / `cpu_quota` / `cpu_period`.
pub(crate) fn cpu_quota(r: &Resources) -> (Option<i64>, u64) {
    let period = r.cpu_period.unwrap_or(100_000);
    if let Some(q) = r.cpu_quota {
        return (Some(q), period);
    }
    (r.cpus.map(|c| (c * period as f64).round() as i64), period)
}
