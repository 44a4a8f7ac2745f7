//! Renderers: progress lines as Docker Compose draws them (` ✔ Container demo-web-1  Started`
//! on a terminal, plain lines otherwise, JSON lines, or nothing), tables aligned like Go's
//! tabwriter, Docker's human durations, and coloured log prefixes.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use crate::supervisor::events::{Event, EventSink};

use super::global::{GlobalArgs, Progress};

/// Progress output on standard error.
pub struct ProgressSink {
    mode: Progress,
    color: bool,
    out: Mutex<std::io::Stderr>,
}

impl ProgressSink {
    pub fn new(global: &GlobalArgs, quiet: bool) -> Self {
        let mode = if quiet {
            Progress::Quiet
        } else {
            match global.progress {
                Progress::Auto if std::io::stderr().is_terminal() => Progress::Tty,
                Progress::Auto => Progress::Plain,
                m => m,
            }
        };
        ProgressSink {
            mode,
            color: mode == Progress::Tty && global.use_ansi_on(std::io::stderr().is_terminal()),
            out: Mutex::new(std::io::stderr()),
        }
    }

    /// Print a line of text (a warning, the plan of a dry run) outside the progress lines.
    pub fn message(&self, text: &str) {
        if self.mode == Progress::Quiet {
            return;
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{}", text.trim_end());
    }
}

impl EventSink for ProgressSink {
    fn emit(&self, e: Event) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let detail = e
            .detail
            .as_deref()
            .map(|d| format!(" {d}"))
            .unwrap_or_default();
        let _ = match self.mode {
            Progress::Quiet => Ok(()),
            Progress::Json => writeln!(
                out,
                "{}",
                serde_json::to_string(&e).expect("events serialize")
            ),
            Progress::Plain | Progress::Auto => writeln!(
                out,
                " {} {}  {}{detail}",
                e.resource.as_str(),
                e.name,
                e.status
            ),
            Progress::Tty => {
                if !e.done {
                    return;
                }
                let (mark, color) = if e.error {
                    ("✘", "31")
                } else {
                    ("✔", "32")
                };
                if self.color {
                    writeln!(
                        out,
                        " \x1b[{color}m{mark}\x1b[0m {} {}  \x1b[{color}m{}\x1b[0m{detail}",
                        e.resource.as_str(),
                        e.name,
                        e.status
                    )
                } else {
                    writeln!(
                        out,
                        " {mark} {} {}  {}{detail}",
                        e.resource.as_str(),
                        e.name,
                        e.status
                    )
                }
            }
        };
    }
}

impl GlobalArgs {
    /// Colours on a stream that is (or is not) a terminal, per `--ansi` and `NO_COLOR`.
    pub fn use_ansi_on(&self, is_tty: bool) -> bool {
        match self.ansi {
            super::global::Ansi::Never => false,
            super::global::Ansi::Always => true,
            super::global::Ansi::Auto => is_tty && std::env::var_os("NO_COLOR").is_none(),
        }
    }
}

/// Docker's `units.HumanDuration`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if s < 1 {
        "Less than a second".into()
    } else if s < 60 {
        plural(s, "second")
    } else if s < 120 {
        "About a minute".into()
    } else if s < 3600 {
        plural(s / 60, "minute")
    } else if s < 7200 {
        "About an hour".into()
    } else if s < 48 * 3600 {
        plural(s / 3600, "hour")
    } else if s < 14 * 86400 {
        plural(s / 86400, "day")
    } else if s < 90 * 86400 {
        plural(s / (7 * 86400), "week")
    } else if s < 730 * 86400 {
        plural(s / (30 * 86400), "month")
    } else {
        plural(s / (365 * 86400), "year")
    }
}

/// Rows as columns separated by three spaces, padded like Go's tabwriter (as `docker compose
/// ps` prints them); the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == n {
                l.push_str(c);
            } else {
                l.push_str(c);
                l.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// A Go-template-like format: `{{.Name}}` and `{{json .Name}}` are replaced from `fields`,
/// `\t` and `\n` escapes are honoured; `table <template>` prints a header first (the caller
/// handles `table`).
pub fn template(fmt: &str, fields: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut out = String::new();
    let mut rest = fmt;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let expr = rest[start + 2..start + end].trim();
        let (json, key) = match expr.strip_prefix("json ") {
            Some(k) => (true, k.trim()),
            None => (false, expr),
        };
        let key = key.trim_start_matches('.');
        let value = if key.is_empty() {
            serde_json::Value::Object(fields.clone())
        } else {
            fields.get(key).cloned().unwrap_or(serde_json::Value::Null)
        };
        match (json, &value) {
            (true, v) => out.push_str(&v.to_string()),
            (false, serde_json::Value::String(s)) => out.push_str(s),
            (false, serde_json::Value::Null) => out.push_str("<no value>"),
            (false, v) => out.push_str(&v.to_string()),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out.replace("\\t", "\t").replace("\\n", "\n")
}

/// The colours Docker Compose cycles through for log prefixes.
const COLORS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

/// `name-1 | ` with the name padded to `width`, coloured by index when `color`.
pub fn log_prefix(name: &str, width: usize, index: usize, color: bool) -> String {
    let pad = " ".repeat(width.saturating_sub(name.chars().count()));
    if color {
        let c = COLORS[index % COLORS.len()];
        format!("\x1b[{c}m{name}{pad} |\x1b[0m ")
    } else {
        format!("{name}{pad} | ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_docker() {
        assert_eq!(
            human_duration(Duration::from_millis(10)),
            "Less than a second"
        );
        assert_eq!(human_duration(Duration::from_secs(1)), "1 second");
        assert_eq!(human_duration(Duration::from_secs(5)), "5 seconds");
        assert_eq!(human_duration(Duration::from_secs(90)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
        assert_eq!(human_duration(Duration::from_secs(5000)), "About an hour");
        assert_eq!(human_duration(Duration::from_secs(3 * 86400)), "3 days");
    }

    #[test]
    fn tables_align_like_tabwriter() {
        let t = table(
            &["NAME", "IMAGE", "STATUS"],
            &[
                vec!["demo-web-1".into(), "busybox".into(), "Up 2 seconds".into()],
                vec!["x".into(), "i".into(), "Exited (0)".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME         IMAGE     STATUS\n\
             demo-web-1   busybox   Up 2 seconds\n\
             x            i         Exited (0)\n"
        );
    }

    #[test]
    fn templates_substitute_fields() {
        let v = serde_json::json!({"Name": "a", "State": "running", "ExitCode": 0});
        let m = v.as_object().unwrap();
        assert_eq!(template("{{.Name}}\\t{{.State}}", m), "a\trunning");
        assert_eq!(template("{{json .ExitCode}} {{.Nope}}", m), "0 <no value>");
    }

    #[test]
    fn log_prefixes_pad_and_colour() {
        assert_eq!(log_prefix("web-1", 8, 0, false), "web-1    | ");
        assert_eq!(log_prefix("web-1", 5, 1, true), "\x1b[33mweb-1 |\x1b[0m ");
    }
}
