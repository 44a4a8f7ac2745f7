//! `rcompose exec`: execute a command in a running container.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// Detached mode: run the command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Set environment variables (repeatable)
    #[arg(short = 'e', long = "env", value_name = "KEY=VAL")]
    pub env: Vec<String>,
    /// Index of the container if the service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub interactive: bool,
    /// Disable pseudo-TTY allocation. By default a TTY is allocated when standard input is one
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Give extended privileges to the process
    #[arg(long)]
    pub privileged: bool,
    /// Run the command as this user
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Path to workdir directory for this command
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// The service
    pub service: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

use std::io::IsTerminal;
use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use runtime::container as rt;

use crate::supervisor::state::{pid_alive, ContainerStatus};

use super::global::GlobalArgs;
use super::project::{exit, Ctx};

fn dup(fd: impl AsFd) -> Result<OwnedFd> {
    Ok(fd.as_fd().try_clone_to_owned()?)
}

/// `rcompose exec`: run a process in the running container (its namespaces and cgroup) and
/// pass its exit code through.
pub fn run(g: &GlobalArgs, args: ExecArgs) -> Result<ExitCode> {
    let ctx = Ctx::without_project(g)?;
    let st = ctx.state()?;
    let Some(c) = st
        .containers
        .values()
        .find(|c| c.service == args.service && c.number == args.index && !c.oneoff)
    else {
        bail!("service {:?} is not running", args.service);
    };
    if c.status != ContainerStatus::Running || !c.pid.is_some_and(|p| pid_alive(p, c.pid_start)) {
        bail!("container {} is not running", c.name);
    }
    let created = rt::Created::load(&ctx.paths.container_dir(&c.name).join("rt"))
        .with_context(|| format!("container {}", c.name))?;
    let runtime = rt::Runtime::new(&g.root)?;
    // Start the helper from the supervisor's sealed copy of this binary, not a fresh copy.
    if let Some(s) = st
        .supervisor
        .as_ref()
        .filter(|s| pid_alive(s.pid, s.pid_start))
    {
        rt::reuse_sealed_helper_of(s.pid);
    }
    rt::become_subreaper()?;
    let tty = !args.no_tty && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let mut env = created.spec.process.env.clone();
    for e in &args.env {
        let key = e.split('=').next().unwrap_or(e);
        env.retain(|x| x.split('=').next() != Some(key));
        if e.contains('=') {
            env.push(e.clone());
        } else if let Ok(v) = std::env::var(e) {
            env.push(format!("{e}={v}"));
        }
    }
    let spec = rt::ExecSpec {
        process: rt::ProcessSpec {
            args: args.command.clone(),
            env,
            cwd: args
                .workdir
                .clone()
                .or_else(|| created.spec.process.cwd.clone()),
            user: args
                .user
                .clone()
                .or_else(|| created.spec.process.user.clone()),
            group_add: vec![],
            tty,
            stdin: args.interactive && !args.detach,
        },
        privileged: args.privileged,
    };
    if tty {
        // The runtime allocates the pty in the container's devpts and makes it the process's
        // controlling terminal; we relay its master and pass our window size on.
        let (p, master) = created
            .exec_with_terminal(
                &runtime,
                &spec,
                rt::Stdio {
                    stdin: None,
                    stdout: dup(std::io::stderr())?,
                    stderr: dup(std::io::stderr())?,
                },
            )
            .with_context(|| format!("container {}", c.name))?;
        if let Some(ws) = super::tty::window_size(&std::io::stdout()) {
            let _ = rt::tty::set_window_size(&master, ws.ws_row, ws.ws_col);
        }
        if args.detach {
            return Ok(ExitCode::SUCCESS);
        }
        let raw = super::tty::RawMode::enter()?;
        let pump = std::thread::spawn(move || super::tty::pump(master));
        let status = rt::wait(p.pid)?;
        // The pump ends when the last holder of the slave side is gone: drain the output.
        let _ = pump.join();
        drop(raw);
        return Ok(exit(status.code()));
    }
    let stdin = if args.interactive && !args.detach {
        Some(dup(std::io::stdin())?)
    } else {
        None
    };
    let (stdout, stderr) = if args.detach {
        let null = || -> Result<OwnedFd> {
            Ok(OwnedFd::from(
                std::fs::OpenOptions::new().write(true).open("/dev/null")?,
            ))
        };
        (null()?, null()?)
    } else {
        (dup(std::io::stdout())?, dup(std::io::stderr())?)
    };
    let p = created
        .exec(
            &runtime,
            &spec,
            rt::Stdio {
                stdin,
                stdout,
                stderr,
            },
        )
        .with_context(|| format!("container {}", c.name))?;
    if args.detach {
        return Ok(ExitCode::SUCCESS);
    }
    let status = rt::wait(p.pid)?;
    Ok(exit(status.code()))
}
