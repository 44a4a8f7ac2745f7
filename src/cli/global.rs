//! Global flags shared by every verb, named and behaving as Docker Compose's, with the same
//! `COMPOSE_*` environment variables. As in Docker Compose, `-f` and `-p` go before the verb
//! (`rcompose -f a.yaml logs -f`): their short names are taken by verbs' own flags.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ansi {
    Never,
    Always,
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    Auto,
    Tty,
    Plain,
    Json,
    Quiet,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Compose configuration files (repeatable; `-` reads standard input; COMPOSE_FILE holds
    /// a list separated by `:`)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Vec<PathBuf>,

    /// Project name
    #[arg(
        short = 'p',
        long = "project-name",
        value_name = "NAME",
        env = "COMPOSE_PROJECT_NAME"
    )]
    pub project_name: Option<String>,

    /// Specify an alternate working directory (default: the folder of the first compose file)
    #[arg(long, global = true, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,

    /// Specify alternate environment files (repeatable)
    #[arg(long, global = true, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,

    /// Specify a profile to enable (repeatable; COMPOSE_PROFILES holds a comma list)
    #[arg(long, global = true, value_name = "PROFILE")]
    pub profile: Vec<String>,

    /// Control max parallelism, -1 for unlimited
    #[arg(
        long,
        global = true,
        default_value_t = -1,
        env = "COMPOSE_PARALLEL_LIMIT",
        allow_hyphen_values = true
    )]
    pub parallel: i64,

    /// Execute command in dry run mode: print what would be done, change nothing
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// Control when to print ANSI control characters
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        env = "COMPOSE_ANSI"
    )]
    pub ansi: Ansi,

    /// Set type of progress output
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        env = "COMPOSE_PROGRESS"
    )]
    pub progress: Progress,

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

impl GlobalArgs {
    /// `--parallel` as a bound for the executor (0: none).
    pub fn parallel_limit(&self) -> usize {
        if self.parallel <= 0 {
            0
        } else {
            self.parallel as usize
        }
    }

    /// Colours and cursor movement on standard output?
    pub fn use_ansi(&self) -> bool {
        use std::io::IsTerminal;
        match self.ansi {
            Ansi::Never => false,
            Ansi::Always => true,
            Ansi::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }
}
