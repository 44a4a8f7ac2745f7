//! `rcompose events`: the project's container events, shaped like `docker compose events`
//! (`2024-05-01 12:00:00.000000 container start <id> (name=…, service=…)`, or `--json`
//! objects with `time type action id service attributes`). Live events come from the
//! project's supervisor; past ones from its journal (`supervisor::journal`), which is also
//! what `--since` reads when no supervisor runs. With neither, it says so and exits 1.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use serde_json::json;

use crate::supervisor::api::Line;
use crate::supervisor::daemon;
use crate::supervisor::events::{Event, Resource};
use crate::supervisor::journal;
use crate::supervisor::ops::Request;
use crate::supervisor::state::ProjectState;

use super::global::GlobalArgs;
use super::project::Ctx;

/// `rcompose events`
#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// Output events as a stream of json objects
    #[arg(long)]
    pub json: bool,
    /// Show all events created since timestamp (RFC 3339, unix seconds, or a duration like 10m)
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// Docker's action word for one of the engine's statuses.
pub fn action(status: &str) -> String {
    match status {
        "Created" => "create",
        "Started" => "start",
        "Stopped" => "stop",
        "Removed" => "destroy",
        "Killed" => "kill",
        "Restarted" => "restart",
        "Paused" => "pause",
        "Unpaused" => "unpause",
        "Exited" => "die",
        "Healthy" => "health_status: healthy",
        "Unhealthy" => "health_status: unhealthy",
        other => return other.to_lowercase(),
    }
    .to_string()
}

/// The service of container `name` (`<project>-<service>-<n>`, one-offs
/// `<project>-<service>-run-<id>`), from the state when it still records it.
fn service_of(name: &str, project: &str, st: Option<&ProjectState>) -> String {
    if let Some(c) = st.and_then(|s| s.containers.get(name)) {
        return c.service.clone();
    }
    let rest = name
        .strip_prefix(project)
        .and_then(|r| r.strip_prefix('-'))
        .unwrap_or(name);
    let rest = match rest.rsplit_once("-run-") {
        Some((svc, _)) => svc,
        None => rest.rsplit_once('-').map_or(rest, |(svc, _)| svc),
    };
    rest.to_string()
}

/// One event as Docker Compose prints it (text line or JSON object).
pub fn render(
    time_ns: u128,
    e: &Event,
    project: &str,
    st: Option<&ProjectState>,
    as_json: bool,
) -> String {
    let t = UNIX_EPOCH + Duration::from_nanos(time_ns.min(u64::MAX as u128) as u64);
    let service = service_of(&e.name, project, st);
    let id = st
        .and_then(|s| s.containers.get(&e.name))
        .and_then(|c| c.runtime.get("id").and_then(|v| v.as_str()))
        .unwrap_or(&e.name)
        .to_string();
    let action = action(&e.status);
    if as_json {
        json!({
            "time": humantime::format_rfc3339_micros(t).to_string(),
            "type": "container",
            "action": action,
            "id": id,
            "service": service,
            "attributes": {"name": e.name, "project": project},
        })
        .to_string()
    } else {
        let stamp = humantime::format_rfc3339_micros(t)
            .to_string()
            .replace('T', " ")
            .trim_end_matches('Z')
            .to_string();
        format!(
            "{stamp} container {action} {id} (name={}, project={project}, service={service})",
            e.name
        )
    }
}

fn bound_ns(flag: &str, s: &str) -> Result<u128> {
    let text = crate::supervisor::logs::parse_time_bound(s).with_context(|| {
        format!(
            "invalid {flag} {s:?}: expected an RFC 3339 time, unix seconds or a duration like 10m"
        )
    })?;
    let t = humantime::parse_rfc3339(&text).with_context(|| format!("invalid {flag} {s:?}"))?;
    Ok(t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0))
}

/// `rcompose events`.
pub fn run(g: &GlobalArgs, a: EventsArgs) -> Result<ExitCode> {
    let ctx = Ctx::without_project(g)?;
    let since = a
        .since
        .as_deref()
        .map(|s| bound_ns("--since", s))
        .transpose()?;
    let until = a
        .until
        .as_deref()
        .map(|s| bound_ns("--until", s))
        .transpose()?;
    let st = ctx.state().ok();
    let wanted = |e: &Event| {
        e.resource == Resource::Container
            && (a.services.is_empty()
                || a.services
                    .contains(&service_of(&e.name, &ctx.name, st.as_ref())))
    };
    let live = daemon::running(&ctx.paths);
    if since.is_none() && !live {
        bail!(
            "no supervisor runs for project {}: no live events to stream (past events: `rcompose events --since 1h`)",
            ctx.name
        );
    }
    let mut out = std::io::stdout().lock();
    if let Some(since) = since {
        let past = journal::read(&ctx.paths);
        if past.is_empty() && !live {
            bail!(
                "no supervisor runs for project {} and it has no event journal (down removes it)",
                ctx.name
            );
        }
        for en in past {
            if en.time >= since && until.is_none_or(|u| en.time < u) && wanted(&en.event) {
                writeln!(
                    out,
                    "{}",
                    render(en.time, &en.event, &ctx.name, st.as_ref(), a.json)
                )?;
            }
        }
        out.flush()?;
    }
    let now = journal::now_ns();
    if !live || until.is_some_and(|u| u <= now) {
        return Ok(ExitCode::SUCCESS);
    }
    drop(out);
    if let Some(u) = until {
        // Stop at --until even when no event comes.
        let wait = Duration::from_nanos((u - now).min(u64::MAX as u128) as u64);
        std::thread::spawn(move || {
            std::thread::sleep(wait);
            let _ = std::io::stdout().flush();
            std::process::exit(0);
        });
    }
    daemon::call(&ctx.paths, &Request::Events, &mut |l| {
        if let Line::Event(e) = l {
            let t = journal::now_ns();
            if e.done && wanted(&e) && until.is_none_or(|u| t < u) {
                let mut o = std::io::stdout().lock();
                let _ = writeln!(o, "{}", render(t, &e, &ctx.name, st.as_ref(), a.json));
                let _ = o.flush();
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_print_as_docker_compose_does() {
        let e = Event::done(Resource::Container, "demo-web-1", "Started");
        let t = 1_700_000_000_123_456_000u128;
        assert_eq!(
            render(t, &e, "demo", None, false),
            "2023-11-14 22:13:20.123456 container start demo-web-1 (name=demo-web-1, project=demo, service=web)"
        );
        let j: serde_json::Value =
            serde_json::from_str(&render(t, &e, "demo", None, true)).unwrap();
        assert_eq!(j["action"], "start");
        assert_eq!(j["service"], "web");
        assert_eq!(j["type"], "container");
        assert_eq!(j["time"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(service_of("demo-db-run-0a1b2c", "demo", None), "db");
        assert_eq!(action("Removed"), "destroy");
    }
}
