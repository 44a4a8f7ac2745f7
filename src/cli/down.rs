//! `rcompose down`: stop and remove containers, networks (and volumes with `-v`).

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct DownArgs {
    /// Remove containers for services not defined in the Compose file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Remove images used by services: "local" removes only images without a custom tag
    #[arg(long, value_name = "TYPE", value_parser = ["local", "all"])]
    pub rmi: Option<String>,
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Remove named volumes declared in the "volumes" section of the Compose file and
    /// anonymous volumes attached to containers
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Services to stop and remove (default: the whole project)
    pub services: Vec<String>,
}
