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

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use crate::supervisor::state::{now_secs, pid_alive, ContainerRecord, ContainerStatus, Health};

use super::global::GlobalArgs;
use super::project::Ctx;
use super::render::{human_duration, table, template};

/// The status as `ps` shows it: `Up 5 seconds (healthy)`, `Exited (1) 2 minutes ago`.
pub fn status_text(c: &ContainerRecord, now: u64) -> String {
    let ago =
        |t: Option<u64>| human_duration(Duration::from_secs(now.saturating_sub(t.unwrap_or(now))));
    match c.status {
        ContainerStatus::Creating | ContainerStatus::Created => "Created".into(),
        ContainerStatus::Running | ContainerStatus::Paused => {
            let mut s = format!("Up {}", ago(c.started));
            match c.health {
                Some(Health::Healthy) => s.push_str(" (healthy)"),
                Some(Health::Unhealthy) => s.push_str(" (unhealthy)"),
                Some(Health::Starting) => s.push_str(" (health: starting)"),
                None => {}
            }
            if c.status == ContainerStatus::Paused {
                s.push_str(" (Paused)");
            }
            s
        }
        ContainerStatus::Restarting => {
            format!(
                "Restarting ({}) {} ago",
                c.exit_code.unwrap_or(0),
                ago(c.finished)
            )
        }
        ContainerStatus::Exited => {
            format!(
                "Exited ({}) {} ago",
                c.exit_code.unwrap_or(0),
                ago(c.finished)
            )
        }
    }
}

/// Docker's state word.
pub fn state_word(c: &ContainerRecord) -> &'static str {
    c.status.as_str()
}

fn ports_text(c: &ContainerRecord) -> String {
    c.ports
        .iter()
        .map(|p| {
            format!(
                "{}:{}->{}/{}",
                p.host_ip, p.host_port, p.container_port, p.protocol
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn command_text(c: &ContainerRecord, trunc: bool) -> String {
    let full = c.command.join(" ");
    if trunc && full.chars().count() > 20 {
        format!("\"{}…\"", full.chars().take(19).collect::<String>())
    } else {
        format!("\"{full}\"")
    }
}

/// The JSON object of one container, with `docker compose ps --format json`'s keys.
pub fn json_of(c: &ContainerRecord, project: &str, now: u64) -> Map<String, Value> {
    let created = c.created;
    let v = json!({
        "Command": command_text(c, false),
        "CreatedAt": humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(created)).to_string(),
        "ExitCode": c.exit_code.unwrap_or(0),
        "Health": c.health.map(|h| h.as_str()).unwrap_or(""),
        "ID": c.runtime.get("id").and_then(Value::as_str).unwrap_or(&c.name).chars().take(64).collect::<String>(),
        "Image": c.image,
        "Labels": if c.labels.is_empty() {
            format!("com.docker.compose.project={project},com.docker.compose.service={},com.docker.compose.container-number={}", c.service, c.number)
        } else {
            c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
        },
        "LocalVolumes": "0",
        "Mounts": "",
        "Name": c.name,
        "Names": c.name,
        "Networks": c.networks.join(","),
        "Ports": ports_text(c),
        "Project": project,
        "Publishers": c.ports.iter().map(|p| json!({
            "URL": p.host_ip, "TargetPort": p.container_port,
            "PublishedPort": p.host_port, "Protocol": p.protocol})).collect::<Vec<_>>(),
        "RunningFor": format!("{} ago", human_duration(Duration::from_secs(now.saturating_sub(created)))),
        "Service": c.service,
        "Size": "0B",
        "State": state_word(c),
        "Status": status_text(c, now),
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// `rcompose ps`.
pub fn run(g: &GlobalArgs, args: PsArgs) -> Result<ExitCode> {
    let ctx = Ctx::without_project(g)?;
    let mut st = ctx.state()?;
    // Liveness from the kernel: a container whose pid 1 is gone is not running, whatever the
    // file says, when no supervisor is there to record it. A live supervisor records the exit
    // with its code (after the container's last log lines) within a moment: until then the
    // file is right, and showing "exited" early would show a wrong exit code (0).
    let supervised = st
        .supervisor
        .as_ref()
        .is_some_and(|s| pid_alive(s.pid, s.pid_start));
    for c in st.containers.values_mut() {
        if !supervised
            && matches!(c.status, ContainerStatus::Running | ContainerStatus::Paused)
            && !c.pid.is_some_and(|p| pid_alive(p, c.pid_start))
        {
            c.status = ContainerStatus::Exited;
        }
    }
    let mut statuses = args.status.clone();
    if let Some(f) = &args.filter {
        match f.split_once('=') {
            Some(("status", v)) => statuses.push(v.to_string()),
            _ => bail!("invalid filter {f:?}: only status=<state> is supported"),
        }
    }
    let known: Option<Vec<String>> = ctx
        .project
        .as_ref()
        .map(|p| p.services.keys().cloned().collect());
    for s in &args.service_names {
        let in_state = st.containers.values().any(|c| &c.service == s);
        if !in_state && !known.as_ref().is_some_and(|k| k.contains(s)) {
            bail!("no such service: {s}");
        }
    }
    let mut rows: Vec<&ContainerRecord> = st
        .containers
        .values()
        .filter(|c| {
            args.all
                || !statuses.is_empty()
                || matches!(
                    c.status,
                    ContainerStatus::Running
                        | ContainerStatus::Paused
                        | ContainerStatus::Restarting
                )
        })
        .filter(|c| args.all || !c.oneoff)
        .filter(|c| args.service_names.is_empty() || args.service_names.contains(&c.service))
        .filter(|c| statuses.is_empty() || statuses.iter().any(|s| s == state_word(c)))
        .filter(|c| args.orphans || known.as_ref().is_none_or(|k| k.contains(&c.service)))
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    if args.services {
        let mut seen: Vec<&str> = rows.iter().map(|c| c.service.as_str()).collect();
        seen.dedup();
        for s in seen {
            println!("{s}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let now = now_secs();
    if args.quiet {
        for c in rows {
            println!(
                "{}",
                json_of(c, &ctx.name, now)["ID"]
                    .as_str()
                    .unwrap_or_default()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.format.as_str() {
        "table" => {
            let data: Vec<Vec<String>> = rows
                .iter()
                .map(|c| {
                    vec![
                        c.name.clone(),
                        c.image.clone(),
                        command_text(c, !args.no_trunc),
                        c.service.clone(),
                        format!(
                            "{} ago",
                            human_duration(Duration::from_secs(now.saturating_sub(c.created)))
                        ),
                        status_text(c, now),
                        ports_text(c),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"],
                    &data
                )
            );
        }
        "json" => {
            for c in rows {
                println!("{}", Value::Object(json_of(c, &ctx.name, now)));
            }
        }
        tpl => {
            let (header, tpl) = match tpl.strip_prefix("table ") {
                Some(t) => (true, t),
                None => (false, tpl),
            };
            if header {
                let names: Map<String, Value> = json_of(
                    rows.first().copied().unwrap_or(&placeholder()),
                    &ctx.name,
                    now,
                )
                .keys()
                .map(|k| (k.clone(), Value::String(k.to_uppercase())))
                .collect();
                println!("{}", template(tpl, &names));
            }
            for c in rows {
                println!("{}", template(tpl, &json_of(c, &ctx.name, now)));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn placeholder() -> ContainerRecord {
    serde_json::from_value(json!({
        "name": "", "service": "", "number": 0, "config_hash": "", "image": "",
        "status": "created", "created": 0
    }))
    .expect("a minimal record deserializes")
}
