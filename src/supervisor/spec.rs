//! From the compose model to what the supervisor and the runtime need: the desired state of the
//! project (`DesiredProject`, for the reconciler) and, per container, the runtime's
//! `ContainerSpec` (image defaults merged with the service: entrypoint/command, environment,
//! user, mounts, resources, security). Every compose decision is made here; the runtime gets
//! plain data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use runtime::container as rt;
use runtime::image::{Image, ImageConfig};

use super::model::{
    Condition, Dependency, DesiredNetwork, DesiredProject, DesiredService, DesiredVolume,
    Healthcheck, RestartPolicy,
};
use super::naming;

/// The name of the network a service joins when it names none.
pub const DEFAULT_NETWORK: &str = "default";

/// Full name of a project network (`name:` or `<project>_<key>`).
pub fn network_name(project: &compose::Project, key: &str) -> String {
    project
        .networks
        .get(key)
        .and_then(|n| n.name.clone())
        .unwrap_or_else(|| naming::scoped_name(&project.name, key))
}

/// Full name of a project volume (`name:` or `<project>_<key>`).
pub fn volume_name(project: &compose::Project, key: &str) -> String {
    project
        .volumes
        .get(key)
        .and_then(|v| v.name.clone())
        .unwrap_or_else(|| naming::scoped_name(&project.name, key))
}

/// The network keys a service joins (none with `network_mode`).
pub fn service_networks(svc: &compose::Service) -> Vec<String> {
    if svc.network_mode.is_some() {
        return Vec::new();
    }
    let names = svc.network_names();
    if names.is_empty() && svc.networks.is_none() {
        vec![DEFAULT_NETWORK.to_string()]
    } else {
        names.into_iter().map(String::from).collect()
    }
}

/// Named volumes (keys of the top-level `volumes:`) a service mounts.
pub fn service_named_volumes(project: &compose::Project, svc: &compose::Service) -> Vec<String> {
    svc.volumes
        .iter()
        .flatten()
        .filter(|v| v.kind == "volume")
        .filter_map(|v| v.source.as_deref())
        .filter(|s| project.volumes.contains_key(*s))
        .map(String::from)
        .collect()
}

/// `restart:` or, when set, `deploy.restart_policy` (condition + max_attempts).
pub fn restart_policy(svc: &compose::Service) -> RestartPolicy {
    if let Some(rp) = svc.deploy.as_ref().and_then(|d| d.restart_policy.as_ref()) {
        let max = rp.max_attempts.map(|m| m.max(0) as u32);
        return match rp.condition.as_deref() {
            Some("none") => RestartPolicy::No,
            Some("on-failure") => RestartPolicy::OnFailure { max },
            _ => RestartPolicy::Always,
        };
    }
    svc.restart
        .as_deref()
        .and_then(RestartPolicy::parse)
        .unwrap_or_default()
}

fn to_condition(c: compose::model::DependencyCondition) -> Condition {
    use compose::model::DependencyCondition as D;
    match c {
        D::ServiceStarted => Condition::ServiceStarted,
        D::ServiceHealthy => Condition::ServiceHealthy,
        D::ServiceCompletedSuccessfully => Condition::ServiceCompletedSuccessfully,
    }
}

/// The healthcheck that applies: the service's (`disable: true` or `NONE` turn it off), over
/// the image's; fields the service leaves unset come from the image, then Docker's defaults.
pub fn healthcheck(svc: &compose::Service, image: Option<&ImageConfig>) -> Option<Healthcheck> {
    let img = image.and_then(|i| i.healthcheck.as_ref());
    let s = svc.healthcheck.as_ref();
    if s.and_then(|h| h.disable).unwrap_or(false) {
        return None;
    }
    let test = s
        .and_then(|h| h.test.clone())
        .or_else(|| img.map(|h| h.test.clone()))?;
    let argv = match test.first().map(String::as_str) {
        None | Some("NONE") => return None,
        Some("CMD") => test[1..].to_vec(),
        Some("CMD-SHELL") => rt::shell_form(&test[1..].join(" ")),
        // A bare string in the file means CMD-SHELL.
        Some(_) => rt::shell_form(&test.join(" ")),
    };
    if argv.is_empty() {
        return None;
    }
    let mut h = Healthcheck::with_defaults(argv);
    let pick = |sv: Option<Duration>, iv: Option<Duration>, default: Duration| {
        sv.or(iv).filter(|d| !d.is_zero()).unwrap_or(default)
    };
    h.interval = pick(
        s.and_then(|h| h.interval).map(|d| d.0),
        img.and_then(|h| h.interval),
        h.interval,
    );
    h.timeout = pick(
        s.and_then(|h| h.timeout).map(|d| d.0),
        img.and_then(|h| h.timeout),
        h.timeout,
    );
    h.start_interval = pick(
        s.and_then(|h| h.start_interval).map(|d| d.0),
        img.and_then(|h| h.start_interval),
        h.start_interval,
    );
    h.start_period = s
        .and_then(|h| h.start_period)
        .map(|d| d.0)
        .or_else(|| img.and_then(|h| h.start_period))
        .unwrap_or_default();
    h.retries = s
        .and_then(|h| h.retries)
        .map(|r| r as u32)
        .or_else(|| img.and_then(|h| h.retries))
        .filter(|r| *r > 0)
        .unwrap_or(h.retries);
    Some(h)
}

/// The service's config hash, as stored on its containers.
pub fn config_hash(svc: &compose::Service) -> String {
    svc.config_hash()
}

/// The image reference of a service (`image:`, or `<project>-<service>` for build-only ones).
pub fn image_ref(project: &compose::Project, svc: &compose::Service) -> String {
    svc.image
        .clone()
        .unwrap_or_else(|| naming::scoped_image(&project.name, &svc.name))
}

/// The desired state of `project` (healthchecks from the service only: image healthchecks are
/// added when the image is known, see `healthcheck`).
pub fn desired(project: &compose::Project) -> DesiredProject {
    let mut d = DesiredProject {
        name: project.name.clone(),
        ..Default::default()
    };
    let mut nets_used: BTreeMap<String, bool> = BTreeMap::new();
    for (name, svc) in &project.services {
        let networks: Vec<String> = service_networks(svc)
            .iter()
            .map(|k| {
                let full = network_name(project, k);
                let external = project
                    .networks
                    .get(k)
                    .and_then(|n| n.external)
                    .unwrap_or(false);
                nets_used.insert(full.clone(), external);
                full
            })
            .collect();
        let volumes = service_named_volumes(project, svc)
            .iter()
            .map(|k| volume_name(project, k))
            .collect();
        let depends_on = svc
            .depends_on
            .iter()
            .flatten()
            .map(|(dep, spec)| Dependency {
                service: dep.clone(),
                condition: to_condition(spec.condition),
                required: spec.required,
                restart: spec.restart.unwrap_or(false),
            })
            .collect();
        let pull_policy = match svc.pull_policy.as_deref() {
            None | Some("if_not_present") => "missing".to_string(),
            Some(p) => p.to_string(),
        };
        d.services.insert(
            name.clone(),
            DesiredService {
                name: name.clone(),
                image: image_ref(project, svc),
                config_hash: config_hash(svc),
                replicas: svc.replicas() as u32,
                depends_on,
                networks,
                volumes,
                pull_policy,
                restart: restart_policy(svc),
                healthcheck: healthcheck(svc, None),
                container_name: svc.container_name.clone(),
            },
        );
    }
    for (full, external) in nets_used {
        d.networks.insert(
            full.clone(),
            DesiredNetwork {
                name: full,
                external,
            },
        );
    }
    for key in project.volumes.keys() {
        let full = volume_name(project, key);
        let external = project.volumes[key].external.unwrap_or(false);
        d.volumes.insert(
            full.clone(),
            DesiredVolume {
                name: full,
                external,
            },
        );
    }
    d
}

/// Parse a signal name (`SIGTERM`, `TERM`) or number.
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Some(n);
    }
    let upper = s.to_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&name)
        .ok()
        .map(|s| s as i32)
}

/// Checks of a service that `up` makes before it creates anything: only namespaced `sysctls`
/// (see [`rt::check_sysctl`]; `net.*` only with a network namespace of its own).
pub fn check_service(svc: &compose::Service) -> Result<(), String> {
    let host_network = svc.network_mode.as_deref() == Some("host");
    for key in svc.sysctls.iter().flatten().map(|(k, _)| k) {
        rt::check_sysctl(key, host_network).map_err(|e| format!("service {}: {e}", svc.name))?;
    }
    for (i, p) in svc.ports.iter().flatten().enumerate() {
        match p.protocol.as_deref() {
            None | Some("tcp") | Some("udp") => {}
            Some(other) => {
                return Err(format!(
                    "service {}: ports[{i}]: protocol {other:?} is not supported (only tcp \
                     and udp are published)",
                    svc.name
                ))
            }
        }
    }
    Ok(())
}

/// What the runtime will not apply, said when the project is loaded: `security_opt`
/// `apparmor=`/`label=` (no AppArmor or SELinux on the hosts rcompose supports).
pub fn runtime_warnings(project: &compose::Project) -> Vec<String> {
    let mut out = Vec::new();
    for svc in project.services.values() {
        for o in svc.security_opt.iter().flatten() {
            if o.starts_with("apparmor") || o.starts_with("label") {
                out.push(format!(
                    "service {}: security_opt {o:?} ignored: rcompose applies no AppArmor or \
                     SELinux profile",
                    svc.name
                ));
            }
        }
    }
    out
}

/// Where a service secret or config appears in the container, as Docker Compose places it:
/// secrets at `/run/secrets/<source>` (a relative `target` under `/run/secrets`), configs at
/// `/<source>` (a relative `target` under `/`).
pub fn file_object_target(kind: &str, r: &compose::model::FileReference) -> String {
    let dir = if kind == "secret" { "/run/secrets" } else { "" };
    match r.target.as_deref() {
        Some(t) if t.starts_with('/') => t.to_string(),
        Some(t) if !t.is_empty() => format!("{dir}/{t}"),
        _ => format!("{dir}/{}", r.source),
    }
}

/// The read-only mount of one service secret or config (`kind`): the top-level `file:` bound
/// as it is, or `environment:` / `content:` written to a file under `files_dir` (with the
/// reference's `mode`, default 0444, and `uid`/`gid`).
fn file_object_mount(
    project: &compose::Project,
    kind: &str,
    r: &compose::model::FileReference,
    files_dir: &Path,
) -> Result<rt::MountSpec, String> {
    use std::os::unix::fs::PermissionsExt;
    let objects = if kind == "secret" {
        &project.secrets
    } else {
        &project.configs
    };
    let name = &r.source;
    let obj = objects
        .get(name)
        .ok_or_else(|| format!("{kind} {name:?} is not declared in the top-level {kind}s"))?;
    let target = file_object_target(kind, r);
    if obj.external.unwrap_or(false) {
        return Err(format!(
            "{kind} {name:?} is external: external {kind}s need Swarm, rcompose has none"
        ));
    }
    if let Some(file) = &obj.file {
        let source = PathBuf::from(file);
        let meta = std::fs::metadata(&source)
            .map_err(|e| format!("{kind} {name:?}: file {}: {e}", source.display()))?;
        return Ok(if meta.is_dir() {
            rt::MountSpec::Bind {
                source,
                target,
                read_only: true,
                propagation: None,
                create_host_path: false,
            }
        } else {
            rt::MountSpec::File {
                source,
                target,
                read_only: true,
            }
        });
    }
    let content = if let Some(var) = &obj.environment {
        project
            .environment
            .get(var)
            .cloned()
            .ok_or_else(|| format!("{kind} {name:?}: environment variable {var} is not set"))?
    } else if let Some(c) = &obj.content {
        c.clone()
    } else {
        return Err(format!(
            "{kind} {name:?} has no file, environment or content"
        ));
    };
    let dir = files_dir.join(format!("{kind}s"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let source = dir.join(name.replace('/', "_"));
    std::fs::write(&source, content).map_err(|e| format!("write {}: {e}", source.display()))?;
    let mode = r.mode.map(|m| m.0).unwrap_or(0o444);
    std::fs::set_permissions(&source, std::fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| format!("chmod {}: {e}", source.display()))?;
    let id = |v: &Option<String>| v.as_deref().and_then(|s| s.parse::<u32>().ok());
    if r.uid.is_some() || r.gid.is_some() {
        std::os::unix::fs::chown(&source, id(&r.uid), id(&r.gid))
            .map_err(|e| format!("chown {}: {e}", source.display()))?;
    }
    Ok(rt::MountSpec::File {
        source,
        target,
        read_only: true,
    })
}

/// Host files and folders a container's spec points at.
pub struct SpecPaths<'a> {
    /// The runtime's per-container state folder.
    pub runtime_dir: &'a Path,
    /// Folder for files bound into the container (hostname, hosts, resolv.conf).
    pub files_dir: &'a Path,
    /// `<root>/volumes`.
    pub volumes_root: &'a Path,
}

/// How the container's network namespace is chosen, decided by the engine.
pub struct NetChoice {
    pub mode: rt::NetMode,
    /// Host files for /etc/hosts and /etc/resolv.conf (None: leave the image's).
    pub hosts: Option<PathBuf>,
    pub resolv_conf: Option<PathBuf>,
}

/// The runtime spec for one container of `svc`.
#[allow(clippy::too_many_arguments)]
pub fn container_spec(
    project: &compose::Project,
    svc: &compose::Service,
    image: &Image,
    id: &str,
    name: &str,
    paths: &SpecPaths<'_>,
    net: NetChoice,
    anon_volume: &mut dyn FnMut(&str) -> PathBuf,
) -> Result<rt::ContainerSpec, String> {
    check_service(svc)?;
    let cfg = &image.config;
    // Entrypoint and command, Docker's rules: a service entrypoint drops the image's cmd.
    let (entrypoint, cmd) = match &svc.entrypoint {
        Some(ep) => (ep.clone(), svc.command.clone().unwrap_or_default()),
        None => (
            cfg.entrypoint.clone().unwrap_or_default(),
            svc.command
                .clone()
                .or_else(|| cfg.cmd.clone())
                .unwrap_or_default(),
        ),
    };
    // May be empty: a one-off's command is applied later; the engine refuses an empty one.
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    let mut env: Vec<String> = cfg.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    for (k, v) in svc.environment.iter().flatten() {
        if let Some(v) = v {
            env.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k.as_str()));
            env.push(format!("{k}={v}"));
        }
    }
    let hostname = svc.hostname.clone().unwrap_or_else(|| id[..12].to_string());
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        env.push(format!("HOSTNAME={hostname}"));
    }

    let mut mounts = Vec::new();
    std::fs::create_dir_all(paths.files_dir)
        .map_err(|e| format!("create {}: {e}", paths.files_dir.display()))?;
    let hostname_file = paths.files_dir.join("hostname");
    std::fs::write(&hostname_file, format!("{hostname}\n"))
        .map_err(|e| format!("write {}: {e}", hostname_file.display()))?;
    mounts.push(rt::MountSpec::File {
        source: hostname_file,
        target: "/etc/hostname".into(),
        read_only: false,
    });
    if let Some(h) = net.hosts {
        mounts.push(rt::MountSpec::File {
            source: h,
            target: "/etc/hosts".into(),
            read_only: false,
        });
    }
    if let Some(r) = net.resolv_conf {
        mounts.push(rt::MountSpec::File {
            source: r,
            target: "/etc/resolv.conf".into(),
            read_only: false,
        });
    }
    for (kind, refs) in [("secret", &svc.secrets), ("config", &svc.configs)] {
        for r in refs.iter().flatten() {
            mounts.push(file_object_mount(project, kind, r, paths.files_dir)?);
        }
    }
    for v in svc.volumes.iter().flatten() {
        let target = v.target.clone().unwrap_or_default();
        let read_only = v.read_only.unwrap_or(false);
        match v.kind.as_str() {
            "bind" => {
                let source = PathBuf::from(v.source.clone().unwrap_or_default());
                mounts.push(rt::MountSpec::Bind {
                    source,
                    target,
                    read_only,
                    propagation: None,
                    create_host_path: v
                        .bind
                        .as_ref()
                        .and_then(|b| b.create_host_path)
                        .unwrap_or(true),
                });
            }
            "volume" => {
                let driver = v
                    .source
                    .as_deref()
                    .and_then(|k| project.volumes.get(k))
                    .and_then(|vol| {
                        local_driver_mount(vol, &project.working_dir, &target, read_only)
                    });
                if let Some(m) = driver {
                    mounts.push(m?);
                    continue;
                }
                let source = match v.source.as_deref() {
                    Some(key) if project.volumes.contains_key(key) => paths
                        .volumes_root
                        .join(volume_name(project, key))
                        .join("_data"),
                    Some(other) => paths.volumes_root.join(other).join("_data"),
                    None => anon_volume(&target),
                };
                mounts.push(rt::MountSpec::Volume {
                    source,
                    target,
                    read_only,
                    nocopy: v.volume.as_ref().and_then(|o| o.nocopy).unwrap_or(false),
                });
            }
            "tmpfs" => mounts.push(rt::MountSpec::Tmpfs {
                target,
                size: v
                    .tmpfs
                    .as_ref()
                    .and_then(|t| t.size)
                    .map(|b| b.0.max(0) as u64),
                mode: None,
            }),
            other => return Err(format!("volume type {other} is not supported")),
        }
    }
    for t in svc.tmpfs.iter().flatten() {
        let target = t.split(':').next().unwrap_or(t).to_string();
        mounts.push(rt::MountSpec::Tmpfs {
            target,
            size: None,
            mode: None,
        });
    }
    // Image volumes the service does not mount itself become anonymous volumes.
    for target in &cfg.volumes {
        let covered = mounts.iter().any(|m| match m {
            rt::MountSpec::Bind { target: t, .. }
            | rt::MountSpec::Volume { target: t, .. }
            | rt::MountSpec::Tmpfs { target: t, .. }
            | rt::MountSpec::File { target: t, .. } => t == target,
        });
        if !covered {
            mounts.push(rt::MountSpec::Volume {
                source: anon_volume(target),
                target: target.clone(),
                read_only: false,
                nocopy: false,
            });
        }
    }

    let limits = svc
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.limits.as_ref());
    let resources = rt::Resources {
        memory: svc
            .mem_limit
            .map(|b| b.0)
            .or_else(|| limits.and_then(|l| l.memory).map(|b| b.0)),
        memory_swap: svc.memswap_limit.map(|b| b.0),
        memory_reservation: svc.mem_reservation.map(|b| b.0),
        cpus: svc.cpus.or_else(|| limits.and_then(|l| l.cpus)),
        cpu_shares: svc.cpu_shares.map(|s| s.max(0) as u64),
        cpu_quota: svc.cpu_quota,
        cpu_period: svc.cpu_period.map(|p| p.max(0) as u64),
        cpuset_cpus: svc.cpuset.clone(),
        cpuset_mems: None,
        pids_limit: svc.pids_limit.or_else(|| limits.and_then(|l| l.pids)),
        blkio_weight: None,
        oom_kill_disable: svc.oom_kill_disable.unwrap_or(false),
    };
    let security_opt = svc.security_opt.clone().unwrap_or_default();
    // `seccomp=<file>`: a Docker JSON profile, read here (relative to the project folder) and
    // compiled by the runtime at create; `apparmor=`/`label=` need an LSM this host lacks.
    let mut seccomp_profile = None;
    for o in &security_opt {
        let (key, value) = o
            .split_once('=')
            .or_else(|| o.split_once(':'))
            .unwrap_or((o.as_str(), ""));
        match key {
            "seccomp" if value != "unconfined" => {
                let path = project.working_dir.join(value);
                let json = std::fs::read_to_string(&path)
                    .map_err(|e| format!("security_opt {o:?}: read {}: {e}", path.display()))?;
                seccomp_profile = Some(rt::SeccompProfileFile {
                    path: path.display().to_string(),
                    json,
                });
            }
            // Said once at load by `runtime_warnings`.
            _ => {}
        }
    }
    let security = rt::SecuritySpec {
        cap_add: svc.cap_add.clone().unwrap_or_default(),
        cap_drop: svc.cap_drop.clone().unwrap_or_default(),
        privileged: svc.privileged.unwrap_or(false),
        seccomp_unconfined: security_opt
            .iter()
            .any(|o| o == "seccomp=unconfined" || o == "seccomp:unconfined"),
        seccomp_profile,
        no_new_privileges: security_opt.iter().any(|o| {
            o == "no-new-privileges"
                || o == "no-new-privileges:true"
                || o == "no-new-privileges=true"
        }),
        ulimits: svc
            .ulimits
            .iter()
            .flatten()
            .map(|(k, u)| {
                let soft = u.single.or(u.soft).unwrap_or(0).max(0) as u64;
                let hard = u.single.or(u.hard).unwrap_or(soft as i64).max(0) as u64;
                (k.clone(), (soft, hard))
            })
            .collect(),
        sysctls: svc
            .sysctls
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        devices: svc
            .devices
            .iter()
            .flatten()
            .map(|d| rt::DeviceSpec {
                host_path: PathBuf::from(&d.source),
                container_path: d.target.clone().unwrap_or_else(|| d.source.clone()),
                permissions: d.permissions.clone().unwrap_or_else(|| "rwm".into()),
            })
            .collect(),
    };
    let stop_signal = svc
        .stop_signal
        .as_deref()
        .or(cfg.stop_signal.as_deref())
        .and_then(parse_signal);
    let ipc = match svc.ipc.as_deref() {
        Some("host") => rt::ShareMode::Host,
        _ => rt::ShareMode::New,
    };
    let pid = match svc.pid.as_deref() {
        Some("host") => rt::ShareMode::Host,
        _ => rt::ShareMode::New,
    };
    Ok(rt::ContainerSpec {
        id: id.to_string(),
        name: name.to_string(),
        service: svc.name.clone(),
        state_dir: paths.runtime_dir.to_path_buf(),
        lower_dirs: image.layers.clone(),
        process: rt::ProcessSpec {
            args,
            env,
            cwd: svc.working_dir.clone().or_else(|| cfg.working_dir.clone()),
            user: svc.user.clone().or_else(|| cfg.user.clone()),
            group_add: svc.group_add.clone().unwrap_or_default(),
            tty: svc.tty.unwrap_or(false),
            stdin: svc.stdin_open.unwrap_or(false),
        },
        hostname: Some(hostname),
        domainname: svc.domainname.clone(),
        mounts,
        read_only: svc.read_only.unwrap_or(false),
        shm_size: svc.shm_size.map(|b| b.0.max(0) as u64),
        resources,
        security,
        namespaces: rt::NamespaceSpec {
            net: net.mode,
            pid,
            ipc,
            uts: match svc.uts.as_deref() {
                Some("host") => rt::ShareMode::Host,
                _ => rt::ShareMode::New,
            },
        },
        init: svc.init.unwrap_or(false),
        oom_score_adj: svc.oom_score_adj.map(|v| v.clamp(-1000, 1000) as i32),
        stop_signal,
    })
}

/// One `post_start` / `pre_stop` hook as an exec in the container: `command` (list, or a
/// string split as a shell would), `user`, `working_dir`, `environment` (list or mapping) and
/// `privileged`; what is unset comes from the container's own process.
pub fn hook_exec(
    hook: &serde_json::Value,
    process: &rt::ProcessSpec,
) -> Result<rt::ExecSpec, String> {
    let args = match hook.get("command") {
        Some(serde_json::Value::String(s)) => {
            shlex::split(s).ok_or_else(|| format!("command {s:?}: unbalanced quotes"))?
        }
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => return Err("a hook needs a command".into()),
    };
    if args.is_empty() {
        return Err("a hook needs a command".into());
    }
    let mut env = process.env.clone();
    let mut set = |k: &str, v: &str| {
        env.retain(|e| e.split('=').next() != Some(k));
        env.push(format!("{k}={v}"));
    };
    match hook.get("environment") {
        Some(serde_json::Value::Object(m)) => {
            for (k, v) in m {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                set(k, &v);
            }
        }
        Some(serde_json::Value::Array(a)) => {
            for e in a.iter().filter_map(|v| v.as_str()) {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                set(k, v);
            }
        }
        _ => {}
    }
    let text = |k: &str| hook.get(k).and_then(|v| v.as_str()).map(String::from);
    Ok(rt::ExecSpec {
        process: rt::ProcessSpec {
            args,
            env,
            cwd: text("working_dir").or_else(|| process.cwd.clone()),
            user: text("user").or_else(|| process.user.clone()),
            ..Default::default()
        },
        privileged: hook
            .get("privileged")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
    })
}

/// The mount of a named volume whose `driver_opts` ask the local driver for something other
/// than a folder, as Docker's local driver does: `type: none` + `o: bind` + `device: PATH`
/// binds that host path (which must exist), `type: tmpfs` (`o: size=…`) is a tmpfs — one per
/// container here, where Docker shares one mount between the containers of the volume.
/// `None`: a plain volume folder.
pub fn local_driver_mount(
    vol: &compose::model::Volume,
    working_dir: &Path,
    target: &str,
    read_only: bool,
) -> Option<Result<rt::MountSpec, String>> {
    let opts = vol.driver_opts.as_ref()?;
    let ty = opts.get("type").map(String::as_str);
    let o: Vec<&str> = opts
        .get("o")
        .map(|o| o.split(',').map(str::trim).collect())
        .unwrap_or_default();
    match ty {
        Some("none") | None if o.contains(&"bind") || o.contains(&"rbind") => {
            let Some(device) = opts.get("device") else {
                return Some(Err(format!(
                    "volume driver_opts o: bind needs a device (the host path) for {target}"
                )));
            };
            // A relative device is taken from the project folder (Docker needs an absolute one).
            let source = working_dir.join(device);
            if !source.is_dir() {
                return Some(Err(format!(
                    "volume driver_opts device {}: no such folder on the host",
                    source.display()
                )));
            }
            Some(Ok(rt::MountSpec::Bind {
                source,
                target: target.to_string(),
                read_only: read_only || o.contains(&"ro"),
                propagation: None,
                create_host_path: false,
            }))
        }
        Some("tmpfs") => {
            let size = o
                .iter()
                .find_map(|x| x.strip_prefix("size="))
                .and_then(compose::units::parse_bytes)
                .map(|b| b.max(0) as u64);
            let mode = o
                .iter()
                .find_map(|x| x.strip_prefix("mode="))
                .and_then(|m| u32::from_str_radix(m, 8).ok());
            Some(Ok(rt::MountSpec::Tmpfs {
                target: target.to_string(),
                size,
                mode,
            }))
        }
        _ => None,
    }
}

/// Service keys `up` loads but does not apply, each with why. This list sits next to
/// `container_spec` (which applies the others): whoever makes one of these work removes it
/// here in the same change, so the warnings and the code cannot drift apart.
pub const IGNORED_SERVICE_KEYS: &[(&str, &str)] = &[
    (
        "annotations",
        "OCI annotations have no effect on rcompose's runtime",
    ),
    (
        "blkio_config",
        "block IO weights and limits are not passed to the runtime",
    ),
    ("cgroup", "every container gets a private cgroup namespace"),
    ("cgroup_parent", "cgroups live under rcompose's own parent"),
    ("cpu_count", "Windows only"),
    ("cpu_percent", "Windows only"),
    ("cpu_rt_period", "real-time CPU scheduling is not set up"),
    ("cpu_rt_runtime", "real-time CPU scheduling is not set up"),
    ("credential_spec", "Windows only"),
    ("develop", "there is no watch mode"),
    (
        "device_cgroup_rules",
        "only the rules of `devices` are written",
    ),
    ("gpus", "no GPU support"),
    ("isolation", "Windows only"),
    (
        "mac_address",
        "set mac_address per network under `networks:` instead",
    ),
    ("mem_swappiness", "not passed to the runtime"),
    ("models", "no model runner"),
    ("provider", "no provider services"),
    ("pull_refresh_after", "not applied"),
    ("runtime", "rcompose runs containers with its own runtime"),
    (
        "storage_opt",
        "the writable layer is a plain overlayfs upper dir",
    ),
    ("use_api_socket", "there is no Docker API socket"),
    ("userns_mode", "no user namespaces"),
];

/// Network `driver_opts` keys `up` applies (the others are warned about).
pub const APPLIED_NETWORK_DRIVER_OPTS: &[&str] = &[
    "com.docker.network.bridge.name",
    "com.docker.network.driver.mtu",
];

/// One warning per ignored attribute and service (or network/volume), naming the file and
/// line where it is set when the compose files show it, the key and why.
pub fn ignored_attributes(project: &compose::Project) -> Vec<String> {
    let files: Vec<(String, String)> = project
        .compose_files
        .iter()
        .filter_map(|f| Some((f.display().to_string(), std::fs::read_to_string(f).ok()?)))
        .collect();
    let mut out = Vec::new();
    for (name, svc) in &project.services {
        let Ok(serde_json::Value::Object(keys)) = serde_json::to_value(svc) else {
            continue;
        };
        for (key, why) in IGNORED_SERVICE_KEYS {
            if keys.get(*key).is_some_and(|v| !v.is_null()) {
                let at = locate(&files, "services", name, key);
                out.push(format!("{at}services.{name}.{key} is ignored: {why}"));
            }
        }
    }
    for (name, net) in &project.networks {
        if net.external == Some(true) {
            continue;
        }
        for k in net.driver_opts.iter().flatten().map(|(k, _)| k) {
            if !APPLIED_NETWORK_DRIVER_OPTS.contains(&k.as_str()) {
                let at = locate(&files, "networks", name, "driver_opts");
                out.push(format!(
                    "{at}networks.{name}.driver_opts.{k} is ignored: only {} are applied",
                    APPLIED_NETWORK_DRIVER_OPTS.join(" and ")
                ));
            }
        }
        if let Some(d) = net.driver.as_deref().filter(|d| *d != "bridge") {
            let at = locate(&files, "networks", name, "driver");
            out.push(format!(
                "{at}networks.{name}.driver {d:?} is ignored: every network is a bridge"
            ));
        }
    }
    for (name, vol) in &project.volumes {
        if vol.external == Some(true) {
            continue;
        }
        if vol.driver_opts.as_ref().is_some_and(|o| !o.is_empty())
            && local_driver_mount(vol, &project.working_dir, "/", false).is_none()
        {
            let at = locate(&files, "volumes", name, "driver_opts");
            out.push(format!(
                "{at}volumes.{name}.driver_opts is ignored: only type none with o bind and a \
                 device, or type tmpfs, are applied"
            ));
        }
        if let Some(d) = vol.driver.as_deref().filter(|d| *d != "local") {
            let at = locate(&files, "volumes", name, "driver");
            out.push(format!(
                "{at}volumes.{name}.driver {d:?} is ignored: every volume is local"
            ));
        }
    }
    out
}

/// `file:line: ` of `section.name.key` in the first compose file that sets it (a plain
/// reading of the YAML's block layout), or nothing when it cannot be told (set through an
/// `extends`, an anchor or flow style).
fn locate(files: &[(String, String)], section: &str, name: &str, key: &str) -> String {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let is_key = |l: &str, k: &str| {
        let t = l.trim_start();
        t.strip_prefix(k)
            .or_else(|| t.strip_prefix(&format!("\"{k}\"")))
            .is_some_and(|r| r.trim_start().starts_with(':'))
    };
    for (file, text) in files {
        let lines: Vec<&str> = text.lines().collect();
        let Some(s) = lines
            .iter()
            .position(|l| indent(l) == 0 && is_key(l, section))
        else {
            continue;
        };
        let mut i = s + 1;
        let mut found = None;
        while i < lines.len() {
            let l = lines[i];
            if !l.trim().is_empty() && !l.trim_start().starts_with('#') && indent(l) == 0 {
                break;
            }
            if is_key(l, name) && found.is_none() {
                found = Some((i, indent(l)));
            } else if let Some((_, ni)) = found {
                if !l.trim().is_empty() && indent(l) <= ni {
                    break;
                }
                if is_key(l, key) {
                    return format!("{file}:{}: ", i + 1);
                }
            }
            i += 1;
        }
    }
    String::new()
}

/// `platform:` (`os/arch[/variant]`) against the image's own: a clear error when they differ
/// (rcompose runs images natively, with no emulation).
pub fn check_platform(svc: &compose::Service, image: &Image) -> Result<(), String> {
    let Some(want) = svc.platform.as_deref() else {
        return Ok(());
    };
    let arch = |a: &str| match a {
        "x86_64" | "x86-64" => "amd64".to_string(),
        "aarch64" => "arm64".to_string(),
        other => other.to_string(),
    };
    let mut parts = want.split('/');
    let (os, a, variant) = (parts.next(), parts.next(), parts.next());
    let has = format!(
        "{}/{}{}",
        image.os,
        image.architecture,
        image
            .variant
            .as_deref()
            .map(|v| format!("/{v}"))
            .unwrap_or_default()
    );
    let matches = os == Some(image.os.as_str())
        && a.is_none_or(|a| arch(a) == arch(&image.architecture))
        && variant.is_none_or(|v| image.variant.as_deref().is_none_or(|iv| iv == v));
    if matches {
        Ok(())
    } else {
        Err(format!(
            "service {}: platform {want} does not match image {} ({has}); rcompose runs \
             images natively, without emulation",
            svc.name,
            image.reference.familiar()
        ))
    }
}

/// `check_platform` for every service of `project` whose image is in the store under `root`
/// (before `up` starts a supervisor or creates anything).
pub fn check_platforms(project: &compose::Project, root: &Path) -> Result<(), String> {
    if project.services.values().all(|s| s.platform.is_none()) {
        return Ok(());
    }
    let Ok(store) = runtime::image::Store::open(root) else {
        return Ok(());
    };
    for svc in project.services.values().filter(|s| s.platform.is_some()) {
        if let Ok(Some(img)) = store.get(&image_ref(project, svc)) {
            check_platform(svc, &img)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_the_line_of_a_key_in_its_block() {
        let text = "name: x\nservices:\n  web:\n    image: a\n  app:\n    image: b\n    # note\n    cgroup_parent: c\nnetworks:\n  default:\n    driver_opts:\n      a: b\n";
        let files = vec![("c.yaml".to_string(), text.to_string())];
        assert_eq!(
            locate(&files, "services", "app", "cgroup_parent"),
            "c.yaml:8: "
        );
        assert_eq!(locate(&files, "services", "web", "cgroup_parent"), "");
        assert_eq!(
            locate(&files, "networks", "default", "driver_opts"),
            "c.yaml:11: "
        );
        assert_eq!(locate(&files, "volumes", "default", "driver_opts"), "");
    }

    #[test]
    fn a_hook_takes_its_command_environment_and_user_over_the_process() {
        let process = rt::ProcessSpec {
            args: vec!["sleep".into()],
            env: vec!["A=1".into(), "B=2".into()],
            user: Some("app".into()),
            cwd: Some("/srv".into()),
            ..Default::default()
        };
        let hook = serde_json::json!({
            "command": "sh -c 'echo hi there'",
            "environment": {"B": "3", "C": null},
            "user": "root",
            "privileged": true,
        });
        let e = hook_exec(&hook, &process).unwrap();
        assert_eq!(e.process.args, ["sh", "-c", "echo hi there"]);
        assert_eq!(e.process.env, ["A=1", "B=3", "C="]);
        assert_eq!(e.process.user.as_deref(), Some("root"));
        assert_eq!(e.process.cwd.as_deref(), Some("/srv"));
        assert!(e.privileged);
        let list = serde_json::json!({"command": ["touch", "/x"], "environment": ["D=4"]});
        let e = hook_exec(&list, &process).unwrap();
        assert_eq!(e.process.args, ["touch", "/x"]);
        assert!(e.process.env.contains(&"D=4".to_string()));
        assert!(hook_exec(&serde_json::json!({}), &process).is_err());
    }
}
