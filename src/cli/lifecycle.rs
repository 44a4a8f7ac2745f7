//! The small lifecycle verbs: `start`, `stop`, `restart`, `kill`, `pause`, `unpause`, `rm`,
//! `create`, `wait`. Their flags are Docker Compose's.

use clap::Args;

/// `rcompose start`
#[derive(Debug, Clone, Args)]
pub struct StartArgs {
    /// Wait for services to be running|healthy
    #[arg(long)]
    pub wait: bool,
    /// Maximum duration in seconds to wait for the project to be running|healthy
    #[arg(long, value_name = "SECONDS")]
    pub wait_timeout: Option<u64>,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `rcompose stop`
#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `rcompose restart`
#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    /// Don't restart dependent services
    #[arg(long)]
    pub no_deps: bool,
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `rcompose kill`
#[derive(Debug, Clone, Args)]
pub struct KillArgs {
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    /// SIGNAL to send to the container
    #[arg(short = 's', long, default_value = "SIGKILL")]
    pub signal: String,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `rcompose pause` / `rcompose unpause`
#[derive(Debug, Clone, Args)]
pub struct PauseArgs {
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `rcompose rm`
#[derive(Debug, Clone, Args)]
pub struct RmArgs {
    /// Don't ask to confirm removal
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Stop the containers, if required, before removing
    #[arg(short = 's', long)]
    pub stop: bool,
    /// Remove any anonymous volumes attached to containers
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `rcompose create`
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Build images before starting containers
    #[arg(long)]
    pub build: bool,
    /// Recreate containers even if their configuration and image haven't changed
    #[arg(long, conflicts_with = "no_recreate")]
    pub force_recreate: bool,
    /// Don't build an image, even if it's policy
    #[arg(long)]
    pub no_build: bool,
    /// If containers already exist, don't recreate them
    #[arg(long)]
    pub no_recreate: bool,
    /// Pull image before running
    #[arg(long, value_name = "POLICY", value_parser = ["always", "missing", "never"])]
    pub pull: Option<String>,
    /// Pull without printing progress information
    #[arg(long)]
    pub quiet_pull: bool,
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Scale SERVICE to NUM instances
    #[arg(long, value_name = "SERVICE=NUM")]
    pub scale: Vec<String>,
    /// Assume "yes" as answer to all prompts
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `rcompose wait`
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Drops project when the first container stops
    #[arg(long)]
    pub down_project: bool,
    /// Services to wait for
    #[arg(required = true)]
    pub services: Vec<String>,
}

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::supervisor::ops::Request;
use crate::supervisor::spec::parse_signal;
use crate::supervisor::state::{pid_alive, ContainerStatus};

use super::global::GlobalArgs;
use super::project::{exit, Ctx};
use super::render::ProgressSink;

fn send(g: &GlobalArgs, req: Request) -> Result<ExitCode> {
    let ctx = Ctx::without_project(g)?;
    let sink = ProgressSink::new(g, false);
    if g.dry_run {
        eprintln!("DRY-RUN MODE - {:?}", req);
        return Ok(ExitCode::SUCCESS);
    }
    Ok(exit(ctx.send(&req, &sink)?))
}

pub fn start(g: &GlobalArgs, a: StartArgs) -> Result<ExitCode> {
    let load = Some(Ctx::load_request(g, &a.services));
    send(
        g,
        Request::Start {
            services: a.services,
            wait: a.wait.then(|| a.wait_timeout.unwrap_or(0)),
            load,
        },
    )
}

pub fn stop(g: &GlobalArgs, a: StopArgs) -> Result<ExitCode> {
    send(
        g,
        Request::Stop {
            services: a.services,
            timeout: a.timeout.map(Duration::from_secs),
        },
    )
}

pub fn restart(g: &GlobalArgs, a: RestartArgs) -> Result<ExitCode> {
    let load = Some(Ctx::load_request(g, &a.services));
    send(
        g,
        Request::Restart {
            services: a.services,
            timeout: a.timeout.map(Duration::from_secs),
            load,
        },
    )
}

pub fn kill(g: &GlobalArgs, a: KillArgs) -> Result<ExitCode> {
    let Some(signal) = parse_signal(&a.signal) else {
        bail!("invalid signal {:?}", a.signal);
    };
    send(
        g,
        Request::Kill {
            services: a.services,
            signal,
        },
    )
}

pub fn pause(g: &GlobalArgs, a: PauseArgs, pause: bool) -> Result<ExitCode> {
    send(
        g,
        Request::Pause {
            services: a.services,
            pause,
        },
    )
}

pub fn rm(g: &GlobalArgs, a: RmArgs) -> Result<ExitCode> {
    // Docker Compose asks for confirmation without -f; rcompose never prompts.
    let _ = a.force;
    send(
        g,
        Request::Rm {
            services: a.services,
            stop: a.stop,
            volumes: a.volumes,
        },
    )
}

/// `rcompose wait`: block until the services' containers exit, print their exit codes.
pub fn wait(g: &GlobalArgs, a: WaitArgs) -> Result<ExitCode> {
    let ctx = Ctx::without_project(g)?;
    let st = ctx.state()?;
    let names: Vec<String> = st
        .containers
        .values()
        .filter(|c| a.services.contains(&c.service) && !c.oneoff)
        .map(|c| c.name.clone())
        .collect();
    if names.is_empty() {
        bail!("no containers for services {}", a.services.join(", "));
    }
    let mut last = 0;
    let mut pending = names.clone();
    while !pending.is_empty() {
        let st = ctx.state()?;
        pending.retain(|n| {
            let Some(c) = st.containers.get(n) else {
                return false;
            };
            let running = matches!(
                c.status,
                ContainerStatus::Running | ContainerStatus::Paused | ContainerStatus::Restarting
            ) && (c.status == ContainerStatus::Restarting
                || c.pid.is_some_and(|p| pid_alive(p, c.pid_start)));
            if !running {
                let code = c.exit_code.unwrap_or(0);
                println!("{code}");
                last = code;
            }
            running
        });
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
        if a.down_project && pending.len() < names.len() {
            let sink = ProgressSink::new(g, true);
            ctx.send(
                &Request::Down {
                    options: Default::default(),
                    parallel: 0,
                },
                &sink,
            )?;
            break;
        }
    }
    Ok(exit(last))
}
