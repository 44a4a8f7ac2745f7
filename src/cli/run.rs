//! `rcompose run`: run a one-off command on a service, in a container named
//! `<project>-<service>-run-<id>`.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Build image before starting container
    #[arg(long)]
    pub build: bool,
    /// Add Linux capabilities
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the entrypoint of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Set environment variables (repeatable)
    #[arg(short = 'e', long = "env", value_name = "KEY=VAL")]
    pub env: Vec<String>,
    /// Set environment variables from file
    #[arg(long, value_name = "FILE")]
    pub env_from_file: Vec<std::path::PathBuf>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub interactive: bool,
    /// Add or override a label
    #[arg(short = 'l', long, value_name = "KEY=VAL")]
    pub label: Vec<String>,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Disable pseudo-TTY allocation (default: auto-detected)
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Don't start linked services
    #[arg(long)]
    pub no_deps: bool,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long, value_name = "PORT")]
    pub publish: Vec<String>,
    /// Pull image before running
    #[arg(long, value_name = "POLICY", value_parser = ["always", "missing", "never"])]
    pub pull: Option<String>,
    /// Don't print anything to STDOUT
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Pull without printing progress information
    #[arg(long)]
    pub quiet_pull: bool,
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Run command with all service's ports enabled and mapped to the host
    #[arg(short = 'P', long)]
    pub service_ports: bool,
    /// Use the service's network aliases in the network(s) the container connects to
    #[arg(long)]
    pub use_aliases: bool,
    /// Run as specified username or uid
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long, value_name = "SRC:DST[:MODE]")]
    pub volume: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// The service
    pub service: String,
    /// Command and arguments (default: the service's command)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

use std::io::IsTerminal;
use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use runtime::container as rt;

use crate::supervisor::backend::{ContainerBackend, NetworkBackend};
use crate::supervisor::engine::{Engine, OneOff};
use crate::supervisor::naming;
use crate::supervisor::ops::Request;
use crate::supervisor::reconcile::UpOptions;
use crate::supervisor::spec;
use crate::supervisor::state::{now_secs, ContainerStatus};

use super::global::GlobalArgs;
use super::project::{exit, Ctx};
use super::render::ProgressSink;

fn dup(fd: impl AsFd) -> Result<OwnedFd> {
    Ok(fd.as_fd().try_clone_to_owned()?)
}

/// `rcompose run`: a one-off container `<project>-<service>-run-<id>` of a service, its
/// dependencies started first (through the project's supervisor), attached to this terminal;
/// the exit code is passed through.
pub fn run(g: &GlobalArgs, a: RunArgs) -> Result<ExitCode> {
    let ctx = Ctx::with_project(g, std::slice::from_ref(&a.service))?;
    super::build::before_start(g, &ctx, std::slice::from_ref(&a.service), a.build, false)?;
    let mut project = ctx.project.clone().expect("loaded");
    let Some(svc) = project.services.get_mut(&a.service) else {
        bail!("no such service: {}", a.service);
    };
    let cwd = std::env::current_dir().context("current directory")?;
    apply_overrides(svc, &a, &cwd)?;
    let svc = &project.services[&a.service];
    let sink = ProgressSink::new(g, a.quiet);
    let deps: Vec<String> = svc
        .depends_on
        .iter()
        .flatten()
        .map(|(d, _)| d.clone())
        .collect();
    if !a.no_deps && !deps.is_empty() {
        let req = Request::Up {
            load: Ctx::load_request(g, &[]),
            options: UpOptions {
                services: deps,
                remove_orphans: a.remove_orphans,
                pull: a.pull.clone(),
                ..Default::default()
            },
            parallel: g.parallel_limit(),
            wait: None,
        };
        ctx.send(&req, &sink)?;
    }
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| naming::oneoff_name(&ctx.name, &a.service, &naming::short_id()));
    let engine = Engine::open(ctx.paths.oneoff(&name), false)?;
    engine.set_project(project.clone());
    // The one-off's own image, by `--pull` (default: pull when missing); a service with
    // `build:` whose image is here was built locally: nothing to pull.
    {
        use crate::supervisor::backend::ImageBackend;
        let image = spec::image_ref(&project, svc);
        let built = svc.build.is_some() && engine.present(&image);
        let policy = a.pull.as_deref().unwrap_or("missing");
        if let Err(e) = (!built).then(|| engine.pull(&image, policy)).transpose() {
            let _ = engine.forget_if_empty();
            return Err(anyhow::Error::new(e).context(format!("service {}", a.service)));
        }
    }
    // The service's networks, when no running stack made them yet: this one-off owns them.
    let nets = network::Networks::new(&g.root);
    for key in spec::service_networks(svc) {
        let full = spec::network_name(&project, &key);
        if nets.inspect(&full).is_err() {
            engine.create_network(&full)?;
        }
    }
    rt::become_subreaper()?;
    let tty =
        !a.no_tty && !a.detach && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let mut env = Vec::new();
    for e in &a.env {
        if e.contains('=') {
            env.push(e.clone());
        } else if let Ok(v) = std::env::var(e) {
            env.push(format!("{e}={v}"));
        }
    }
    // With a terminal, the runtime allocates a pty in the container (its controlling terminal
    // and /dev/console) and hands us the master; our stderr serves setup errors only.
    let stdio = match tty {
        true => rt::Stdio {
            stdin: None,
            stdout: dup(std::io::stderr())?,
            stderr: dup(std::io::stderr())?,
        },
        false if a.detach => {
            let null = || -> Result<OwnedFd> {
                Ok(OwnedFd::from(
                    std::fs::OpenOptions::new().write(true).open("/dev/null")?,
                ))
            };
            rt::Stdio {
                stdin: None,
                stdout: null()?,
                stderr: null()?,
            }
        }
        false => rt::Stdio {
            stdin: if a.interactive {
                Some(dup(std::io::stdin())?)
            } else {
                None
            },
            stdout: dup(std::io::stdout())?,
            stderr: dup(std::io::stderr())?,
        },
    };
    engine.set_oneoff(OneOff {
        command: (!a.command.is_empty()).then(|| a.command.clone()),
        entrypoint: a
            .entrypoint
            .as_deref()
            .map(|e| shlex::split(e).unwrap_or_else(|| vec![e.to_string()])),
        env,
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        tty,
        stdin: a.interactive && !a.detach,
        publish: a.service_ports || !a.publish.is_empty(),
        stdio: Some(stdio),
        master: None,
    });
    let teardown = |engine: &std::sync::Arc<Engine>| {
        let _ = engine.remove(&name);
        for n in engine.snapshot().networks.keys() {
            let _ = engine.remove_network(n);
        }
        let _ = engine.forget_if_empty();
    };
    if let Err(e) = engine.create(&a.service, &name, 0) {
        teardown(&engine);
        return Err(e.into());
    }
    if let Err(e) = engine.start(&name) {
        teardown(&engine);
        return Err(e.into());
    }
    let pid = engine
        .snapshot()
        .containers
        .get(&name)
        .and_then(|c| c.pid)
        .context("the one-off has no pid")?;
    if a.detach {
        println!("{name}");
        return Ok(ExitCode::SUCCESS);
    }
    let raw = if tty {
        Some(super::tty::RawMode::enter()?)
    } else {
        None
    };
    let pump = engine.take_oneoff_master().map(|master| {
        if let Some(ws) = super::tty::window_size(&std::io::stdout()) {
            let _ = rt::tty::set_window_size(&master, ws.ws_row, ws.ws_col);
        }
        std::thread::spawn(move || super::tty::pump(master))
    });
    let status = rt::wait(pid)?;
    if let Some(t) = pump {
        let _ = t.join();
    }
    drop(raw);
    let code = status.code();
    engine.update(|st| {
        if let Some(c) = st.containers.get_mut(&name) {
            c.status = ContainerStatus::Exited;
            c.exit_code = Some(code);
            c.finished = Some(now_secs());
            c.pid = None;
        }
    });
    if a.rm {
        teardown(&engine);
    } else {
        // Keep the container (as Docker does without --rm); `down` removes it.
        let _ = engine.stop_container(&name, Duration::ZERO, false);
    }
    Ok(exit(code))
}

/// Apply `run`'s flags that change the service itself: `-p` (instead of the service's ports,
/// or added to them with `--service-ports`), `-v` (added to its volumes; a relative bind
/// source resolves against `cwd`), `--cap-add`, `--cap-drop`, `-l`, and the network aliases
/// the one-off keeps only with `--use-aliases`.
pub fn apply_overrides(
    svc: &mut compose::Service,
    a: &RunArgs,
    cwd: &std::path::Path,
) -> Result<()> {
    let mut ports = if a.service_ports {
        svc.ports.clone().unwrap_or_default()
    } else {
        Vec::new()
    };
    for p in &a.publish {
        let parsed =
            compose::normalize::parse_port(p).map_err(|e| anyhow::anyhow!("-p {p}: {e}"))?;
        ports.extend(parsed.into_iter().map(|sp| compose::model::Port {
            host_ip: sp.host_ip,
            target: sp.target,
            published: sp.published,
            protocol: Some(sp.protocol),
            mode: Some("ingress".into()),
            ..Default::default()
        }));
    }
    svc.ports = (!ports.is_empty()).then_some(ports);
    for v in &a.volume {
        let vol = parse_volume(v, cwd)?;
        let vols = svc.volumes.get_or_insert_with(Vec::new);
        // A `-v` on a target the service already mounts replaces that mount.
        vols.retain(|x| x.target != vol.target);
        vols.push(vol);
    }
    if !a.cap_add.is_empty() {
        svc.cap_add
            .get_or_insert_with(Vec::new)
            .extend(a.cap_add.iter().cloned());
    }
    if !a.cap_drop.is_empty() {
        svc.cap_drop
            .get_or_insert_with(Vec::new)
            .extend(a.cap_drop.iter().cloned());
    }
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        svc.labels
            .get_or_insert_with(Default::default)
            .insert(k.to_string(), v.to_string());
    }
    if !a.use_aliases {
        for n in svc
            .networks
            .iter_mut()
            .flat_map(|m| m.values_mut())
            .flatten()
        {
            n.aliases = None;
        }
    }
    Ok(())
}

/// `-v [SOURCE:]TARGET[:MODE]` as a service volume (the compose short syntax: a source
/// starting with `.`, `/` or `~` is a bind mount, else a named volume).
fn parse_volume(text: &str, cwd: &std::path::Path) -> Result<compose::model::ServiceVolume> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.iter().any(|p| p.is_empty()) || parts.len() > 3 {
        bail!("-v {text}: invalid volume: expected [SOURCE:]TARGET[:MODE]");
    }
    let (source, target, mode) = match parts.as_slice() {
        [t] => (None, *t, None),
        [s, t] => (Some(*s), *t, None),
        [s, t, m] => (Some(*s), *t, Some(*m)),
        _ => unreachable!("checked above"),
    };
    if !target.starts_with('/') {
        bail!("-v {text}: invalid volume: the target {target:?} is not an absolute path");
    }
    let mut v = compose::model::ServiceVolume {
        target: Some(target.to_string()),
        ..Default::default()
    };
    for m in mode.into_iter().flat_map(|m| m.split(',')) {
        match m {
            "ro" => v.read_only = Some(true),
            "rw" | "z" | "Z" | "consistent" | "cached" | "delegated" => {}
            "nocopy" => {
                v.volume.get_or_insert_with(Default::default).nocopy = Some(true);
            }
            other => bail!("-v {text}: unknown volume option {other:?}: expected ro, rw or nocopy"),
        }
    }
    match source {
        Some(s) if s.starts_with(['.', '/', '~']) => {
            let path = if let Some(rest) = s.strip_prefix("~/") {
                std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(rest)
            } else {
                cwd.join(s)
            };
            v.kind = "bind".into();
            v.source = Some(path.to_string_lossy().into_owned());
        }
        other => {
            v.kind = "volume".into();
            v.source = other.map(str::to_string);
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        run: RunArgs,
    }

    fn args(extra: &[&str]) -> RunArgs {
        let mut v = vec!["t"];
        v.extend_from_slice(extra);
        T::parse_from(v).run
    }

    #[test]
    fn publish_replaces_the_service_ports_unless_service_ports() {
        let mut svc = compose::Service {
            ports: Some(vec![compose::model::Port {
                target: 80,
                published: Some("8080".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let a = args(&["-p", "127.0.0.1:9000-9001:90-91/udp", "web"]);
        apply_overrides(&mut svc, &a, std::path::Path::new("/w")).unwrap();
        let ports = svc.ports.clone().unwrap();
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[1].target, 91);
        assert_eq!(ports[1].published.as_deref(), Some("9001"));
        assert_eq!(ports[1].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(ports[1].protocol.as_deref(), Some("udp"));
        let mut svc2 = compose::Service {
            ports: Some(vec![compose::model::Port {
                target: 80,
                ..Default::default()
            }]),
            ..Default::default()
        };
        let a = args(&["-P", "-p", "5000", "web"]);
        apply_overrides(&mut svc2, &a, std::path::Path::new("/w")).unwrap();
        assert_eq!(svc2.ports.unwrap().len(), 2);
    }

    #[test]
    fn volumes_follow_the_short_syntax() {
        let cwd = std::path::Path::new("/w");
        let v = parse_volume("./data:/data:ro", cwd).unwrap();
        assert_eq!(v.kind, "bind");
        assert_eq!(v.source.as_deref(), Some("/w/./data"));
        assert_eq!(v.read_only, Some(true));
        let v = parse_volume("cache:/cache", cwd).unwrap();
        assert_eq!(v.kind, "volume");
        assert_eq!(v.source.as_deref(), Some("cache"));
        let v = parse_volume("/anon", cwd).unwrap();
        assert_eq!((v.kind.as_str(), v.source), ("volume", None));
        assert!(parse_volume("a:b", cwd).is_err());
        assert!(parse_volume("a::/b", cwd).is_err());
        assert!(parse_volume("/a:/b:bogus", cwd).is_err());
    }
}
