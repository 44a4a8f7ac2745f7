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
    /// Build images before starting containers (rcompose has no builder: rejected)
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
