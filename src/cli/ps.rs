//! `rcompose ps`: list containers.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct PsArgs {
    /// Show all stopped containers (including those created by the run command)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Filter services by a property (supported filters: status)
    #[arg(long, value_name = "FILTER")]
    pub filter: Option<String>,
    /// Format output using a custom template: 'table' (default), 'json', or a Go-style
    /// template such as '{{.Name}} {{.Status}}'
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Include orphaned services (not declared by project)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub orphans: bool,
    /// Only display IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Display services
    #[arg(long)]
    pub services: bool,
    /// Filter services by status (repeatable): paused, restarting, removing, running, dead,
    /// created, exited
    #[arg(long, value_name = "STATUS")]
    pub status: Vec<String>,
    /// Services to list (default: all)
    #[arg(value_name = "SERVICE")]
    pub service_names: Vec<String>,
}
