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

use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};

use crate::supervisor::logs::{parse_time_bound, read_all, Window};
use crate::supervisor::state::{pid_alive, ContainerRecord, ContainerStatus};

use super::attach::{follow, Printer};
use super::global::GlobalArgs;
use super::project::Ctx;

/// `rcompose logs`.
pub fn run(g: &GlobalArgs, args: LogsArgs) -> Result<ExitCode> {
    let ctx = Ctx::without_project(g)?;
    let st = ctx.state()?;
    for s in &args.services {
        let known = st.containers.values().any(|c| &c.service == s)
            || ctx
                .project
                .as_ref()
                .is_some_and(|p| p.services.contains_key(s));
        if !known {
            bail!("no such service: {s}");
        }
    }
    let window = Window {
        since: match &args.since {
            Some(s) => Some(parse_time_bound(s).with_context(|| format!("invalid --since {s:?}"))?),
            None => None,
        },
        until: match &args.until {
            Some(s) => Some(parse_time_bound(s).with_context(|| format!("invalid --until {s:?}"))?),
            None => None,
        },
    };
    let tail = match args.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse::<usize>()
                .with_context(|| format!("invalid --tail {n:?}"))?,
        ),
    };
    let services = args.services.clone();
    let index = args.index;
    let select = move |c: &ContainerRecord| {
        (services.is_empty() || services.contains(&c.service))
            && index.is_none_or(|i| c.number == i)
    };
    let color = {
        use std::io::IsTerminal;
        !args.no_color && g.use_ansi_on(std::io::stdout().is_terminal())
    };
    let mut printer = Printer::new(color, !args.no_log_prefix, args.timestamps);
    let mut selected: Vec<&ContainerRecord> =
        st.containers.values().filter(|c| select(c)).collect();
    selected.sort_by(|a, b| (&a.service, a.number).cmp(&(&b.service, b.number)));
    for c in &selected {
        printer.register(c);
    }
    for c in &selected {
        read_all(&ctx.paths.log_file(&c.name), &window, tail, &mut |e| {
            printer.line(c, e)
        })?;
    }
    printer.flush();
    if args.follow && window.until.is_none() {
        follow(
            &ctx.paths,
            &mut printer,
            &select,
            false,
            None,
            &mut |st| {
                // Stop once nothing selected runs or can come back.
                !st.containers.values().filter(|c| select(c)).any(|c| {
                    matches!(c.status, ContainerStatus::Restarting)
                        || (matches!(c.status, ContainerStatus::Running | ContainerStatus::Paused)
                            && c.pid.is_some_and(|p| pid_alive(p, c.pid_start)))
                })
            },
            &mut |_, _| {},
        );
    }
    Ok(ExitCode::SUCCESS)
}
