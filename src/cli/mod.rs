//! The command line: clap structs (one file per verb, the small lifecycle and inspection verbs
//! grouped in `lifecycle.rs` and `inspect.rs`; doc comments become `--help`) and the
//! renderers. Each verb builds an options struct and calls the supervisor. Nothing else.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

pub mod attach;
pub mod build;
pub mod commit;
pub mod config;
pub mod detach;
pub mod down;
pub mod events;
pub mod exec;
pub mod global;
pub mod image;
pub mod inspect;
pub mod lifecycle;
pub mod logs;
pub mod network;
pub mod project;
pub mod ps;
pub mod push;
pub mod render;
pub mod run;
pub mod scale;
pub mod stats;
pub mod tty;
pub mod up;
pub mod up_run;
pub mod version;
pub mod volume;

/// Run Compose stacks with no Docker daemon: rcompose reads compose.yaml, pulls OCI images,
/// creates bridge networks with service-name DNS and starts every service in its own
/// namespaces and cgroup.
#[derive(Debug, Parser)]
#[command(name = "rcompose", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: global::GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build or rebuild services
    Build(build::BuildArgs),
    /// Parse, resolve and render the compose file in canonical format
    Config(config::ConfigArgs),
    /// Create and start containers
    Up(up::UpArgs),
    /// Stop and remove containers, networks
    Down(down::DownArgs),
    /// List containers
    Ps(ps::PsArgs),
    /// View output from containers
    Logs(logs::LogsArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Run a one-off command on a service
    Run(run::RunArgs),
    /// Start services
    Start(lifecycle::StartArgs),
    /// Stop services
    Stop(lifecycle::StopArgs),
    /// Restart service containers
    Restart(lifecycle::RestartArgs),
    /// Force stop service containers
    Kill(lifecycle::KillArgs),
    /// Pause services
    Pause(lifecycle::PauseArgs),
    /// Unpause services
    Unpause(lifecycle::PauseArgs),
    /// Removes stopped service containers
    Rm(lifecycle::RmArgs),
    /// Creates containers for a service
    Create(lifecycle::CreateArgs),
    /// Block until containers of all (or specified) services stop, then print their exit codes
    Wait(lifecycle::WaitArgs),
    /// Display the running processes
    Top(inspect::TopArgs),
    /// Print the public port for a port binding
    Port(inspect::PortArgs),
    /// List images used by the created containers
    Images(inspect::ImagesArgs),
    /// List running compose projects
    Ls(inspect::LsArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::StatsArgs),
    /// Receive real time events from containers
    Events(events::EventsArgs),
    /// Attach local standard input, output, and error streams to a service's running container
    Attach(inspect::AttachArgs),
    /// Copy files/folders between a service container and the local filesystem
    Cp(inspect::CpArgs),
    /// Pull service images
    Pull(inspect::PullArgs),
    /// Generate shell completions (bash, zsh, fish)
    Completion(inspect::CompletionArgs),
    /// Manage images: ls, inspect, pull, rm, prune, import, load, save
    Image(image::ImageArgs),
    /// Manage networks: ls, inspect, rm, prune
    Network(network::NetworkArgs),
    /// Manage volumes: ls, inspect, rm, prune
    Volume(volume::VolumeArgs),
    /// List volumes
    Volumes(volume::VolumesArgs),
    /// Push service images
    Push(push::PushArgs),
    /// Scale services
    Scale(scale::ScaleArgs),
    /// Export a service container's filesystem as a tar archive
    Export(commit::ExportArgs),
    /// Create a new image from a service container's changes
    Commit(commit::CommitArgs),
    /// Show the rcompose version information
    Version(version::VersionArgs),
}

/// The hidden supervisor mode: `rcompose __supervise <root> <run-dir> <project>`, started by
/// `up -d` (not a clap verb, so it shows in no help and no completion).
pub const SUPERVISE_ARG: &str = "__supervise";

/// Parse the command line, run the verb, map the outcome to an exit code.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == SUPERVISE_ARG) && args.len() == 5 {
        return match supervise(&args[2], &args[3], &args[4]) {
            Ok(code) => code,
            Err(err) => {
                eprintln!("rcompose: {err:#}");
                ExitCode::from(1)
            }
        };
    }
    let cli = Cli::parse();
    init_tracing(&cli.global);
    let g = &cli.global;
    let result = match cli.command {
        Command::Version(args) => version::run(g, args),
        Command::Build(a) => build::run(g, a),
        Command::Config(args) => config::run(g, args),
        Command::Image(args) => image::run(g, args),
        Command::Network(args) => network::run(g, args),
        Command::Volume(args) => volume::run(g, args),
        Command::Volumes(a) => volume::project_volumes(g, a),
        Command::Scale(a) => scale::run(g, a),
        Command::Push(a) => push::run(g, a),
        Command::Export(a) => commit::export(g, a),
        Command::Commit(a) => commit::commit(g, a),
        Command::Up(a) => up_run::up(g, a),
        Command::Down(a) => up_run::down(g, a),
        Command::Create(a) => up_run::create(g, a),
        Command::Ps(a) => ps::run(g, a),
        Command::Logs(a) => logs::run(g, a),
        Command::Exec(a) => exec::run(g, a),
        Command::Start(a) => lifecycle::start(g, a),
        Command::Stop(a) => lifecycle::stop(g, a),
        Command::Restart(a) => lifecycle::restart(g, a),
        Command::Kill(a) => lifecycle::kill(g, a),
        Command::Pause(a) => lifecycle::pause(g, a, true),
        Command::Unpause(a) => lifecycle::pause(g, a, false),
        Command::Rm(a) => lifecycle::rm(g, a),
        Command::Wait(a) => lifecycle::wait(g, a),
        Command::Top(a) => inspect::top(g, a),
        Command::Port(a) => inspect::port(g, a),
        Command::Images(a) => inspect::images(g, a),
        Command::Ls(a) => inspect::ls(g, a),
        Command::Stats(a) => stats::run(g, a),
        Command::Events(a) => events::run(g, a),
        Command::Pull(a) => inspect::pull(g, a),
        Command::Completion(args) => {
            let mut cmd = Cli::command();
            clap_complete::generate(args.shell, &mut cmd, "rcompose", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(a) => run::run(g, a),
        Command::Attach(a) => inspect::attach(g, a),
        Command::Cp(a) => inspect::cp(g, a),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("rcompose: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// The detached supervisor's main: serve until nothing of the project runs any more.
fn supervise(
    root: &std::ffi::OsStr,
    run: &std::ffi::OsStr,
    project: &std::ffi::OsStr,
) -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RCOMPOSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let paths = crate::supervisor::state::ProjectPaths::new(
        std::path::Path::new(root),
        std::path::Path::new(run),
        &project.to_string_lossy(),
    );
    let sup = crate::supervisor::daemon::Supervisor::start(&paths)?;
    let _ = std::fs::write(paths.pid_file(), std::process::id().to_string());
    sup.run_until_idle();
    Ok(ExitCode::SUCCESS)
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
