//! Global flags shared by every verb, named and behaving as Docker Compose's.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Compose configuration files (repeatable; `-` reads standard input)
    #[arg(short = 'f', long = "file", global = true, value_name = "FILE")]
    pub file: Vec<PathBuf>,

    /// Project name
    #[arg(short = 'p', long = "project-name", global = true, value_name = "NAME")]
    pub project_name: Option<String>,

    /// Specify an alternate working directory (default: the folder of the first compose file)
    #[arg(long, global = true, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,

    /// Specify alternate environment files (repeatable)
    #[arg(long, global = true, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,

    /// Specify a profile to enable (repeatable)
    #[arg(long, global = true, value_name = "PROFILE")]
    pub profile: Vec<String>,

    /// State root (images, volumes, container state)
    #[arg(
        long,
        global = true,
        env = "RCOMPOSE_ROOT",
        default_value = "/var/lib/rcompose"
    )]
    pub root: PathBuf,

    /// Run directory (sockets, locks, pid files)
    #[arg(
        long = "run-dir",
        global = true,
        env = "RCOMPOSE_RUN",
        default_value = "/run/rcompose"
    )]
    pub run_dir: PathBuf,

    /// Debug logging to standard error (or set RCOMPOSE_LOG)
    #[arg(long, global = true)]
    pub verbose: bool,
}
