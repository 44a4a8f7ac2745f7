//! The command line: clap structs (one file per verb; doc comments become `--help`) and the
//! renderers. Each verb builds an options struct and calls the supervisor. Nothing else.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod config;
pub mod global;
pub mod image;
pub mod version;

/// Run Compose stacks with no Docker daemon: rcompose reads compose.yaml, pulls OCI images,
/// creates bridge networks with service-name DNS and starts every service in its own
/// namespaces and cgroup.
#[derive(Debug, Parser)]
#[command(
    name = "rcompose",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: global::GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse, resolve and render the compose file in canonical format
    Config(config::ConfigArgs),
    /// Show the rcompose version information
    Version(version::VersionArgs),
    /// Manage images: ls, inspect, pull, rm, prune, import, load, save
    Image(image::ImageArgs),
}

/// Parse the command line, run the verb, map the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.global);
    let result = match cli.command {
        Command::Config(args) => config::run(&cli.global, args),
        Command::Version(args) => version::run(&cli.global, args),
        Command::Image(args) => image::run(&cli.global, args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("rcompose: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing(global: &global::GlobalArgs) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RCOMPOSE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if global.verbose { "debug" } else { "warn" })
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
