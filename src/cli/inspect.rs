//! The read-only verbs: `top`, `port`, `images`, `ls`, `stats`, `events`, `attach`, `cp`,
//! `pull`. Their flags are Docker Compose's.

use clap::Args;

/// `rcompose top`
#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `rcompose port`
#[derive(Debug, Clone, Args)]
pub struct PortArgs {
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// tcp or udp
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    /// The service
    pub service: String,
    /// The container port
    pub private_port: u16,
}

/// `rcompose images`
#[derive(Debug, Clone, Args)]
pub struct ImagesArgs {
    /// Format the output: table or json
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Only display IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `rcompose ls`
#[derive(Debug, Clone, Args)]
pub struct LsArgs {
    /// Show all stopped Compose projects
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Filter output based on conditions provided (name=...)
    #[arg(long)]
    pub filter: Option<String>,
    /// Format the output: table or json
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Only display project names
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `rcompose stats`
#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Format output: table or json
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `rcompose events`
#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// Output events as a stream of json objects
    #[arg(long)]
    pub json: bool,
    /// Show all events created since timestamp
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `rcompose attach`
#[derive(Debug, Clone, Args)]
pub struct AttachArgs {
    /// Override the key sequence for detaching from a container
    #[arg(long)]
    pub detach_keys: Option<String>,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// Do not attach STDIN
    #[arg(long)]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// The service
    pub service: String,
}

/// `rcompose cp`
#[derive(Debug, Clone, Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// SERVICE:SRC_PATH or a host path
    pub source: String,
    /// SERVICE:DEST_PATH or a host path
    pub destination: String,
}

/// `rcompose pull`
#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// Ignore images that can be built
    #[arg(long)]
    pub ignore_buildable: bool,
    /// Pull what it can and ignores images with pull failures
    #[arg(long)]
    pub ignore_pull_failures: bool,
    /// Also pull services declared as dependencies
    #[arg(long)]
    pub include_deps: bool,
    /// Apply pull policy ("missing"|"always")
    #[arg(long)]
    pub policy: Option<String>,
    /// Pull without printing progress information
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `rcompose completion`
#[derive(Debug, Clone, Args)]
pub struct CompletionArgs {
    /// The shell: bash, zsh or fish
    pub shell: clap_complete::Shell,
}
