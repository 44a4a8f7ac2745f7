//! `rcompose logs`: view output from containers.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// Follow log output (across restarts)
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Index of the container if the service has multiple replicas
    #[arg(long)]
    pub index: Option<u32>,
    /// Produce monochrome output
    #[arg(long)]
    pub no_color: bool,
    /// Don't print prefix in logs
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42
    /// minutes)
    #[arg(long)]
    pub since: Option<String>,
    /// Number of lines to show from the end of the logs for each container
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)
    #[arg(long)]
    pub until: Option<String>,
    /// Services (default: all)
    pub services: Vec<String>,
}
