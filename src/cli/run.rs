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
    if !a.publish.is_empty() || !a.volume.is_empty() {
        bail!("run: -p and -v are not supported yet (use --service-ports, or volumes in the compose file)");
    }
    let ctx = Ctx::with_project(g, std::slice::from_ref(&a.service))?;
    super::build::before_start(g, &ctx, std::slice::from_ref(&a.service), a.build, false)?;
    let project = ctx.project.clone().expect("loaded");
    let Some(svc) = project.services.get(&a.service) else {
        bail!("no such service: {}", a.service);
    };
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
    let pty = if tty {
        Some(super::tty::Pty::open()?)
    } else {
        None
    };
    let stdio = match &pty {
        Some(p) => rt::Stdio::tty(p.slave.try_clone()?)?,
        None if a.detach => {
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
        None => rt::Stdio {
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
        // The pty slave is the process's stdio; the runtime's own console setup (binding it on
        // /dev/console) fails for a pty of the host's devpts (EINVAL), so it is not asked for.
        tty: false,
        stdin: a.interactive && !a.detach,
        publish: a.service_ports,
        stdio: Some(stdio),
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
    let pump = pty.map(|p| {
        drop(p.slave);
        let master = p.master;
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
