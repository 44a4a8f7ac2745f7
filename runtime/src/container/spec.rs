//! The container description handed from the supervisor to the runtime, and from the runtime to
//! its single-threaded helper (serialized as JSON over a socket). Plain data: every compose
//! decision (image defaults, entrypoint/command merge, volume names) is made before this point.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything needed to create one container.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ContainerSpec {
    /// Unique id (used for the cgroup name and in kernel-visible names).
    pub id: String,
    /// Human name (`<project>-<service>-<n>`), used in error messages.
    pub name: String,
    /// The compose service, named in every error.
    pub service: String,
    /// Per-container state folder under the state root: upper/work dirs, rootfs mountpoint,
    /// the start fifo and `container.json`.
    pub state_dir: PathBuf,
    /// Image layers (unpacked folders), lowest first.
    pub lower_dirs: Vec<PathBuf>,
    pub process: ProcessSpec,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// Mounts, applied in order after the standard ones.
    pub mounts: Vec<MountSpec>,
    pub read_only: bool,
    /// Size of /dev/shm in bytes (Docker's default: 64 MiB).
    pub shm_size: Option<u64>,
    pub resources: Resources,
    pub security: SecuritySpec,
    pub namespaces: NamespaceSpec,
    /// `init: true`: a tiny init is pid 1, forwards signals and reaps zombies.
    pub init: bool,
    /// `oom_score_adj` (-1000..=1000) of the container's processes. Lowering it below the
    /// caller's own needs CAP_SYS_RESOURCE.
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    /// Signal number for `stop` (default SIGTERM).
    pub stop_signal: Option<i32>,
}

/// The user process.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProcessSpec {
    /// argv: entrypoint + command already merged (shell form already turned into
    /// `["/bin/sh", "-c", ..]`, see [`shell_form`]).
    pub args: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    /// Working directory inside the container (default `/`).
    pub cwd: Option<String>,
    /// `user:` as name or uid, optionally `:group` (name or gid); resolved through the
    /// container's `/etc/passwd` and `/etc/group`.
    pub user: Option<String>,
    /// `group_add`: names or gids.
    pub group_add: Vec<String>,
    /// The caller passes a pty slave as stdio; the process gets it as controlling terminal.
    pub tty: bool,
    /// Keep stdin open (otherwise stdin is /dev/null).
    pub stdin: bool,
}

/// The compose shell form: a string command runs through `/bin/sh -c`.
pub fn shell_form(command: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), command.into()]
}

/// One mount inside the container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MountSpec {
    /// A host path bound into the container. A missing host folder is created (as Docker does
    /// for `-v /host:/ctr`) when `create_host_path` is set.
    Bind {
        source: PathBuf,
        target: String,
        read_only: bool,
        propagation: Option<Propagation>,
        create_host_path: bool,
    },
    /// A named or anonymous volume: a folder under the state root. On first use (empty folder,
    /// no `.rcompose-init` marker) it is filled from the image content at `target`, as Docker
    /// does, unless `nocopy`.
    Volume {
        source: PathBuf,
        target: String,
        read_only: bool,
        nocopy: bool,
    },
    Tmpfs {
        target: String,
        size: Option<u64>,
        mode: Option<u32>,
    },
    /// A single host file bound on a file (`/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`,
    /// secrets and configs at `/run/secrets/<name>`).
    File {
        source: PathBuf,
        target: String,
        read_only: bool,
    },
}

/// `volumes_from`: the volumes and bind mounts of `other` (not its tmpfs, nor the files rcompose
/// binds itself), for a container whose own mounts are `own` (those win at the same target);
/// `mode` `ro`/`rw` overrides each mount's read-only flag, none keeps it (Docker's rules).
pub fn mounts_from(other: &ContainerSpec, mode: Option<&str>, own: &[MountSpec]) -> Vec<MountSpec> {
    let target_of = |m: &MountSpec| match m {
        MountSpec::Bind { target, .. }
        | MountSpec::Volume { target, .. }
        | MountSpec::Tmpfs { target, .. }
        | MountSpec::File { target, .. } => target.clone(),
    };
    let force = match mode {
        Some("ro") => Some(true),
        Some("rw") => Some(false),
        _ => None,
    };
    other
        .mounts
        .iter()
        .filter(|m| matches!(m, MountSpec::Bind { .. } | MountSpec::Volume { .. }))
        .filter(|m| !own.iter().any(|o| target_of(o) == target_of(m)))
        .map(|m| {
            let mut m = m.clone();
            if let (
                Some(ro),
                MountSpec::Bind { read_only, .. } | MountSpec::Volume { read_only, .. },
            ) = (force, &mut m)
            {
                *read_only = ro;
            }
            // The volume is filled already (or on purpose not): never copy image content into it
            // from this container's image.
            if let MountSpec::Volume { nocopy, .. } = &mut m {
                *nocopy = true;
            }
            m
        })
        .collect()
}

#[cfg(test)]
mod mounts_from_tests {
    use super::*;

    #[test]
    fn volumes_and_binds_are_shared_with_the_mode_and_own_mounts_win() {
        let bind = |t: &str, ro| MountSpec::Bind {
            source: "/h".into(),
            target: t.into(),
            read_only: ro,
            propagation: None,
            create_host_path: false,
        };
        let other = ContainerSpec {
            mounts: vec![
                bind("/a", false),
                MountSpec::Volume {
                    source: "/v".into(),
                    target: "/data".into(),
                    read_only: true,
                    nocopy: false,
                },
                MountSpec::Tmpfs {
                    target: "/t".into(),
                    size: None,
                    mode: None,
                },
                MountSpec::File {
                    source: "/f".into(),
                    target: "/etc/hosts".into(),
                    read_only: true,
                },
                bind("/mine", false),
            ],
            ..Default::default()
        };
        let own = vec![bind("/mine", true)];
        let ro = mounts_from(&other, Some("ro"), &own);
        assert_eq!(ro.len(), 2);
        assert_eq!(ro[0], bind("/a", true));
        assert!(matches!(
            &ro[1],
            MountSpec::Volume {
                read_only: true,
                nocopy: true,
                ..
            }
        ));
        let rw = mounts_from(&other, Some("rw"), &own);
        assert!(matches!(
            &rw[1],
            MountSpec::Volume {
                read_only: false,
                ..
            }
        ));
        let kept = mounts_from(&other, None, &own);
        assert_eq!(kept[0], bind("/a", false));
        assert!(matches!(
            &kept[1],
            MountSpec::Volume {
                read_only: true,
                ..
            }
        ));
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Propagation {
    Private,
    Rprivate,
    Shared,
    Rshared,
    Slave,
    Rslave,
}

/// cgroup limits (compose service keys and `deploy.resources` merged by the caller).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Resources {
    /// `mem_limit` in bytes.
    pub memory: Option<i64>,
    /// `memswap_limit` in bytes (memory + swap; -1 unlimited).
    pub memory_swap: Option<i64>,
    /// `mem_reservation` in bytes.
    pub memory_reservation: Option<i64>,
    /// `cpus` as a fraction of CPUs (sets quota over a 100ms period).
    pub cpus: Option<f64>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    /// `cpuset`, e.g. `0-1` or `0,1`.
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    /// blkio weight 10..=1000.
    pub blkio_weight: Option<u16>,
    /// `oom_kill_disable`: the kernel's OOM killer spares the cgroup (v1
    /// `memory.oom_control`; v2 has no such switch and warns).
    #[serde(default)]
    pub oom_kill_disable: bool,
}

/// Security settings; defaults are Docker's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SecuritySpec {
    /// `cap_add`, names with or without `CAP_`, or `ALL`.
    pub cap_add: Vec<String>,
    /// `cap_drop`, names with or without `CAP_`, or `ALL`.
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    /// `security_opt: seccomp=unconfined` turns the default profile off.
    pub seccomp_unconfined: bool,
    /// `security_opt: seccomp=<file>`: a profile in Docker's JSON format, instead of the
    /// default one (the caller reads the file; the runtime parses and compiles it at create).
    #[serde(default)]
    pub seccomp_profile: Option<SeccompProfileFile>,
    /// `security_opt: no-new-privileges`.
    pub no_new_privileges: bool,
    /// `ulimits`: name (`nofile`, `nproc`, ...) → (soft, hard).
    pub ulimits: BTreeMap<String, (u64, u64)>,
    /// Namespaced sysctls (`net.*`, `kernel.shm*`, `kernel.msg*`, `kernel.sem`, `fs.mqueue.*`).
    pub sysctls: BTreeMap<String, String>,
    /// `devices`: host path → container path with permissions (`rwm`).
    pub devices: Vec<DeviceSpec>,
}

/// A custom seccomp profile: where it came from (for messages) and its JSON text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SeccompProfileFile {
    pub path: String,
    pub json: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceSpec {
    pub host_path: PathBuf,
    pub container_path: String,
    pub permissions: String,
}

/// Which namespaces are new, shared with the host, or joined.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NamespaceSpec {
    pub net: NetMode,
    pub pid: ShareMode,
    pub ipc: ShareMode,
    /// `uts: host`: the host's hostname namespace (then `hostname`/`domainname` are not set).
    #[serde(default)]
    pub uts: ShareMode,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum NetMode {
    /// A new network namespace with only loopback (`network_mode: none`).
    #[default]
    New,
    /// Join a pinned namespace file (the network crate pins them under the run dir).
    Join(PathBuf),
    Host,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ShareMode {
    /// A private namespace (`ipc: private` / `shareable` — both are new namespaces here).
    #[default]
    New,
    Host,
    /// Join the namespace of a running process (`ipc: service:x`, `pid: service:x`).
    JoinPid(i32),
}

/// A process to run inside a running container (`exec`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ExecSpec {
    pub process: ProcessSpec,
    /// Extra privileges for `exec --privileged`.
    pub privileged: bool,
}

/// The `kernel.*` sysctls that belong to the IPC namespace (Docker's list).
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Whether `key` may be set in a container, as Docker decides: only namespaced sysctls (the IPC
/// `kernel.*` ones, `fs.mqueue.*`, and `net.*` when the container has its own network
/// namespace). Anything else would change the host's kernel. The key is written under
/// `/proc/sys` with dots as slashes, so slashes, empty parts and `..` are refused too.
pub fn check_sysctl(key: &str, host_network: bool) -> Result<(), String> {
    if key.is_empty() || key.contains('/') || key.split('.').any(|p| p.is_empty() || p == "..") {
        return Err(format!("sysctl {key:?} is not a valid sysctl name"));
    }
    if IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.") {
        return Ok(());
    }
    if key.starts_with("net.") {
        if host_network {
            return Err(format!(
                "sysctl {key:?} is not allowed in the host's network namespace \
                 (network_mode: host)"
            ));
        }
        return Ok(());
    }
    Err(format!(
        "sysctl {key:?} is not allowed: it is not namespaced and would change the host's kernel \
         (allowed: kernel.msgmax, kernel.msgmnb, kernel.msgmni, kernel.sem, kernel.shmall, \
         kernel.shmmax, kernel.shmmni, kernel.shm_rmid_forced, fs.mqueue.*, net.*)"
    ))
}

impl ContainerSpec {
    /// Every sysctl of the spec passes [`check_sysctl`].
    pub fn check_sysctls(&self) -> Result<(), String> {
        let host_network = self.namespaces.net == NetMode::Host;
        for key in self.security.sysctls.keys() {
            check_sysctl(key, host_network)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod sysctl_tests {
    use super::check_sysctl;

    #[test]
    fn only_namespaced_sysctls_pass() {
        for ok in [
            "kernel.shmmax",
            "kernel.sem",
            "kernel.shm_rmid_forced",
            "fs.mqueue.msg_max",
            "net.ipv4.ip_forward",
            "net.core.somaxconn",
        ] {
            assert_eq!(check_sysctl(ok, false), Ok(()), "{ok}");
        }
        for bad in [
            "vm.swappiness",
            "kernel.pid_max",
            "kernel.shm",
            "fs.file-max",
            "net",
            "net..ipv4",
            "net.ipv4/../../vm/swappiness",
            "net.ipv4.conf...",
            "",
        ] {
            assert!(check_sysctl(bad, false).is_err(), "{bad}");
        }
        assert!(check_sysctl("net.ipv4.ip_forward", true).is_err());
        assert_eq!(check_sysctl("kernel.msgmax", true), Ok(()));
    }
}
