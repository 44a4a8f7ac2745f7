//! The typed model of a Compose project: every top-level element and every service attribute
//! of the Compose Specification, in one canonical form (long syntax, lists turned into maps
//! where the spec allows both, durations and sizes parsed, paths absolute).
//!
//! Built by the loader's last phase from the canonical tree; serializes to the same JSON that
//! `docker compose config --format json` prints (field names and order as compose-go's).
//! Attributes rcompose does not model in detail yet are kept as `serde_json::Value` so that
//! they still load and print unchanged.

use std::path::PathBuf;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use serde_with::skip_serializing_none;

use crate::units::{Bytes, Duration, FileMode};

/// Extensions (`x-*` keys) kept as loaded.
pub type Extensions = IndexMap<String, Json>;

/// A validated project.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Project {
    pub name: String,
    /// Folder relative paths were resolved against (`--project-directory` or the first file's).
    #[serde(skip)]
    pub working_dir: PathBuf,
    /// The compose files loaded, in order (`-` for standard input).
    #[serde(skip)]
    pub compose_files: Vec<PathBuf>,
    /// Variables used for interpolation (process environment over `.env`).
    #[serde(skip)]
    pub environment: IndexMap<String, String>,
    /// Services left out by the active profiles.
    #[serde(skip)]
    pub disabled_services: IndexMap<String, Service>,
    /// Profiles that were active.
    #[serde(skip)]
    pub active_profiles: Vec<String>,
    /// Warnings to show the user (obsolete `version`, unset variables).
    #[serde(skip)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub services: IndexMap<String, Service>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub networks: IndexMap<String, Network>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub volumes: IndexMap<String, Volume>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub secrets: IndexMap<String, FileObject>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub configs: IndexMap<String, FileObject>,
    /// Top-level models (Docker Compose does not print them in `config`).
    #[serde(default, skip_serializing)]
    pub models: IndexMap<String, Model>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// `command`, `entrypoint`: exec form. A string in the file is split like a shell would.
pub type Command = Vec<String>;

/// One service.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Service {
    #[serde(skip)]
    pub name: String,
    pub profiles: Option<Vec<String>>,
    pub annotations: Option<IndexMap<String, String>>,
    pub attach: Option<bool>,
    pub build: Option<Build>,
    pub blkio_config: Option<Json>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub cgroup_parent: Option<String>,
    pub cgroup: Option<String>,
    /// Always printed (as `null` when unset), as Docker Compose does.
    #[serde(default, skip_serializing_if = "no_skip")]
    pub command: Option<Command>,
    pub configs: Option<Vec<FileReference>>,
    pub container_name: Option<String>,
    pub cpu_count: Option<i64>,
    pub cpu_percent: Option<f64>,
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_rt_period: Option<i64>,
    pub cpu_rt_runtime: Option<i64>,
    pub cpus: Option<f64>,
    pub cpuset: Option<String>,
    pub cpu_shares: Option<i64>,
    pub credential_spec: Option<Json>,
    pub depends_on: Option<IndexMap<String, Dependency>>,
    pub deploy: Option<Deploy>,
    pub develop: Option<Json>,
    pub device_cgroup_rules: Option<Vec<String>>,
    pub devices: Option<Vec<Device>>,
    pub dns: Option<Vec<String>>,
    pub dns_opt: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    pub domainname: Option<String>,
    #[serde(default, skip_serializing_if = "no_skip")]
    pub entrypoint: Option<Command>,
    pub provider: Option<Json>,
    /// Final environment: `env_file` values, then `environment` over them. `None` values are
    /// names with no value anywhere.
    pub environment: Option<IndexMap<String, Option<String>>>,
    pub expose: Option<Vec<String>>,
    pub external_links: Option<Vec<String>>,
    /// `host=address` entries, sorted by host.
    pub extra_hosts: Option<Vec<String>>,
    pub gpus: Option<Json>,
    pub group_add: Option<Vec<String>>,
    pub hostname: Option<String>,
    pub healthcheck: Option<Healthcheck>,
    pub image: Option<String>,
    pub init: Option<bool>,
    pub ipc: Option<String>,
    pub isolation: Option<String>,
    pub labels: Option<IndexMap<String, String>>,
    pub links: Option<Vec<String>>,
    pub logging: Option<Logging>,
    pub mac_address: Option<String>,
    pub mem_limit: Option<Bytes>,
    pub mem_reservation: Option<Bytes>,
    pub mem_swappiness: Option<i64>,
    pub memswap_limit: Option<Bytes>,
    pub models: Option<IndexMap<String, Option<Json>>>,
    pub network_mode: Option<String>,
    pub networks: Option<IndexMap<String, Option<ServiceNetwork>>>,
    pub oom_kill_disable: Option<bool>,
    pub oom_score_adj: Option<i64>,
    pub pid: Option<String>,
    pub pids_limit: Option<i64>,
    pub platform: Option<String>,
    pub ports: Option<Vec<Port>>,
    pub post_start: Option<Vec<Json>>,
    pub pre_stop: Option<Vec<Json>>,
    pub privileged: Option<bool>,
    pub pull_policy: Option<String>,
    pub pull_refresh_after: Option<String>,
    pub read_only: Option<bool>,
    pub restart: Option<String>,
    pub runtime: Option<String>,
    pub scale: Option<i64>,
    pub secrets: Option<Vec<FileReference>>,
    pub security_opt: Option<Vec<String>>,
    pub shm_size: Option<Bytes>,
    pub stdin_open: Option<bool>,
    pub stop_grace_period: Option<Duration>,
    pub stop_signal: Option<String>,
    pub storage_opt: Option<IndexMap<String, String>>,
    pub sysctls: Option<IndexMap<String, String>>,
    pub tmpfs: Option<Vec<String>>,
    pub tty: Option<bool>,
    pub ulimits: Option<IndexMap<String, Ulimit>>,
    pub use_api_socket: Option<bool>,
    pub user: Option<String>,
    pub userns_mode: Option<String>,
    pub uts: Option<String>,
    pub volume_driver: Option<String>,
    pub volumes: Option<Vec<ServiceVolume>>,
    pub volumes_from: Option<Vec<String>>,
    pub working_dir: Option<String>,
    /// Loaded; Docker Compose's JSON does not print a service's extensions.
    #[serde(flatten, skip_serializing)]
    pub extensions: Extensions,
}

fn no_skip<T>(_: &T) -> bool {
    false
}

/// `build`, long form.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Build {
    pub context: Option<String>,
    pub dockerfile: Option<String>,
    pub dockerfile_inline: Option<String>,
    pub entitlements: Option<Vec<String>>,
    pub args: Option<IndexMap<String, Option<String>>>,
    pub ssh: Option<Vec<String>>,
    pub labels: Option<IndexMap<String, String>>,
    pub cache_from: Option<Vec<String>>,
    pub cache_to: Option<Vec<String>>,
    pub no_cache: Option<bool>,
    pub no_cache_filter: Option<Json>,
    pub additional_contexts: Option<IndexMap<String, String>>,
    pub network: Option<String>,
    pub provenance: Option<Json>,
    pub sbom: Option<Json>,
    pub pull: Option<bool>,
    pub target: Option<String>,
    pub shm_size: Option<Bytes>,
    /// `host=address` entries, sorted by host.
    pub extra_hosts: Option<Vec<String>>,
    pub isolation: Option<String>,
    pub privileged: Option<bool>,
    pub secrets: Option<Vec<FileReference>>,
    pub tags: Option<Vec<String>>,
    pub ulimits: Option<IndexMap<String, Ulimit>>,
    pub platforms: Option<Vec<String>>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// One `depends_on` entry.
#[skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Dependency {
    pub condition: DependencyCondition,
    pub restart: Option<bool>,
    pub required: bool,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// When a dependency counts as ready.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DependencyCondition {
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

/// `deploy`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Deploy {
    pub mode: Option<String>,
    pub replicas: Option<i64>,
    pub labels: Option<IndexMap<String, String>>,
    pub update_config: Option<UpdateConfig>,
    pub rollback_config: Option<UpdateConfig>,
    pub resources: Option<Resources>,
    pub restart_policy: Option<RestartPolicy>,
    pub placement: Option<Json>,
    pub endpoint_mode: Option<String>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// `deploy.update_config` / `rollback_config`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UpdateConfig {
    pub parallelism: Option<i64>,
    pub delay: Option<Duration>,
    pub failure_action: Option<String>,
    pub monitor: Option<Duration>,
    pub max_failure_ratio: Option<f64>,
    pub order: Option<String>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// `deploy.resources`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Resources {
    pub limits: Option<Resource>,
    pub reservations: Option<Resource>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// Limits or reservations.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Resource {
    pub cpus: Option<f64>,
    pub memory: Option<Bytes>,
    pub pids: Option<i64>,
    pub devices: Option<Vec<Json>>,
    pub generic_resources: Option<Vec<Json>>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// `deploy.restart_policy`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RestartPolicy {
    pub condition: Option<String>,
    pub delay: Option<Duration>,
    pub max_attempts: Option<i64>,
    pub window: Option<Duration>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// `devices`, long form.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Device {
    pub source: String,
    pub target: Option<String>,
    pub permissions: Option<String>,
}

/// `healthcheck`. `test` is exec form: `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Healthcheck {
    pub test: Option<Vec<String>>,
    pub timeout: Option<Duration>,
    pub interval: Option<Duration>,
    pub retries: Option<u64>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub disable: Option<bool>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// `logging`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Logging {
    pub driver: Option<String>,
    pub options: Option<IndexMap<String, Option<String>>>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A service's attachment to one network.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServiceNetwork {
    pub aliases: Option<Vec<String>>,
    pub interface_name: Option<String>,
    pub ipv4_address: Option<String>,
    pub ipv6_address: Option<String>,
    pub link_local_ips: Option<Vec<String>>,
    pub mac_address: Option<String>,
    pub driver_opts: Option<IndexMap<String, String>>,
    pub gw_priority: Option<i64>,
    pub priority: Option<i64>,
    /// Extensions here load but Docker Compose does not print them.
    #[serde(flatten, skip_serializing)]
    pub extensions: Extensions,
}

/// One published or exposed port, long form. Ranges in the short form become one entry each.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Port {
    pub name: Option<String>,
    pub mode: Option<String>,
    pub host_ip: Option<String>,
    pub target: u16,
    /// Host port or host port range (`8000-8010`), as text.
    pub published: Option<String>,
    pub protocol: Option<String>,
    pub app_protocol: Option<String>,
    /// Extensions here load but Docker Compose does not print them.
    #[serde(flatten, skip_serializing)]
    pub extensions: Extensions,
}

/// One entry of a service's `volumes`, long form.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServiceVolume {
    #[serde(rename = "type")]
    pub kind: String,
    pub source: Option<String>,
    pub target: Option<String>,
    pub read_only: Option<bool>,
    pub consistency: Option<String>,
    pub bind: Option<BindOptions>,
    pub volume: Option<VolumeOptions>,
    pub tmpfs: Option<TmpfsOptions>,
    pub image: Option<Json>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BindOptions {
    pub selinux: Option<String>,
    pub propagation: Option<String>,
    pub create_host_path: Option<bool>,
    pub recursive: Option<String>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VolumeOptions {
    pub labels: Option<IndexMap<String, String>>,
    pub nocopy: Option<bool>,
    pub subpath: Option<String>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TmpfsOptions {
    pub size: Option<Bytes>,
    pub mode: Option<Json>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A service's use of a secret or config (also build secrets).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FileReference {
    pub source: String,
    pub target: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub mode: Option<FileMode>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// `ulimits` entry: a single value prints as one number, as Docker Compose does.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Ulimit {
    pub single: Option<i64>,
    pub soft: Option<i64>,
    pub hard: Option<i64>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A top-level network.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Network {
    pub name: Option<String>,
    pub driver: Option<String>,
    pub driver_opts: Option<IndexMap<String, String>>,
    pub ipam: Option<Ipam>,
    pub external: Option<bool>,
    pub internal: Option<bool>,
    pub attachable: Option<bool>,
    pub enable_ipv4: Option<bool>,
    pub enable_ipv6: Option<bool>,
    pub labels: Option<IndexMap<String, String>>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A network's address management.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Ipam {
    pub driver: Option<String>,
    pub config: Option<Vec<IpamPool>>,
    pub options: Option<IndexMap<String, String>>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IpamPool {
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    pub aux_addresses: Option<IndexMap<String, String>>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A top-level volume.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Volume {
    pub name: Option<String>,
    pub driver: Option<String>,
    pub driver_opts: Option<IndexMap<String, String>>,
    pub external: Option<bool>,
    pub labels: Option<IndexMap<String, String>>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A top-level secret or config.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FileObject {
    pub name: Option<String>,
    pub file: Option<String>,
    pub environment: Option<String>,
    pub content: Option<String>,
    pub external: Option<bool>,
    pub labels: Option<IndexMap<String, String>>,
    pub driver: Option<String>,
    pub driver_opts: Option<IndexMap<String, String>>,
    pub template_driver: Option<String>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A top-level model (AI model runner).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Model {
    pub name: Option<String>,
    pub model: Option<String>,
    pub context_size: Option<i64>,
    pub runtime_flags: Option<Vec<String>>,
    #[serde(flatten)]
    pub extensions: Extensions,
}

impl Service {
    /// The networks this service joins, in priority order then name (empty with
    /// `network_mode`).
    pub fn network_names(&self) -> Vec<&str> {
        let Some(nets) = &self.networks else {
            return Vec::new();
        };
        let mut v: Vec<(&str, i64)> = nets
            .iter()
            .map(|(k, n)| {
                let p = n.as_ref().and_then(|n| n.priority).unwrap_or(0);
                (k.as_str(), p)
            })
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.into_iter().map(|(k, _)| k).collect()
    }

    /// Number of containers to run (`deploy.replicas`, `scale`, default 1).
    pub fn replicas(&self) -> u64 {
        self.deploy
            .as_ref()
            .and_then(|d| d.replicas)
            .or(self.scale)
            .unwrap_or(1)
            .max(0) as u64
    }
}

impl Serialize for Ulimit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if let Some(v) = self.single {
            return s.serialize_i64(v);
        }
        let mut m = s.serialize_map(None)?;
        if let Some(v) = self.soft {
            m.serialize_entry("soft", &v)?;
        }
        if let Some(v) = self.hard {
            m.serialize_entry("hard", &v)?;
        }
        for (k, v) in &self.extensions {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Ulimit {
    /// (soft, hard): a single value is both.
    pub fn limits(&self) -> (Option<i64>, Option<i64>) {
        match self.single {
            Some(v) => (Some(v), Some(v)),
            None => (self.soft, self.hard),
        }
    }
}
