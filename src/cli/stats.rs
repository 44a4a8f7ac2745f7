//! `rcompose stats`: a live view of the project's containers' resource use, shaped like
//! `docker stats` (`CONTAINER ID  NAME  CPU %  MEM USAGE / LIMIT  MEM %  NET I/O  BLOCK I/O
//! PIDS`). CPU % is the delta of the cgroup's CPU time over the delta of the host's CPU time
//! (`/proc/stat`) times the online CPUs, between two samples, as the Docker CLI computes it;
//! memory and pids come from the cgroup, network counters from `/proc/<pid>/net/dev` (the
//! container's own namespace), block I/O from blkio (v1) or `io.stat` (v2).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use runtime::container as rt;
use serde_json::{json, Map, Value};

use crate::supervisor::state::{pid_alive, ContainerStatus};

use super::global::GlobalArgs;
use super::project::Ctx;
use super::render::{table, template};

/// `rcompose stats`
#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Format output using a custom template: 'table' (default), 'json', or a Go-style
    /// template such as 'table {{.Name}}\t{{.CPUPerc}}'
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

/// One reading of a container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub cpu_ns: u64,
    pub mem_usage: u64,
    pub mem_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub blk_read: u64,
    pub blk_write: u64,
    pub pids: u64,
}

/// The host's total CPU time in nanoseconds (all CPUs, all states of the `cpu` line of
/// `/proc/stat`, in USER_HZ ticks) and the number of online CPUs, as the Docker daemon reads them.
fn system_cpu() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    parse_proc_stat(&text)
}

/// `(total ns, online cpus)` from the text of `/proc/stat`.
pub fn parse_proc_stat(text: &str) -> (u64, u64) {
    // USER_HZ is 100 on every Linux architecture rcompose runs on (sysconf(_SC_CLK_TCK)).
    const NS_PER_TICK: u64 = 1_000_000_000 / 100;
    let mut total = 0;
    let mut cpus = 0;
    for l in text.lines() {
        let mut f = l.split_whitespace();
        match f.next() {
            Some("cpu") => total = f.filter_map(|x| x.parse::<u64>().ok()).sum::<u64>(),
            Some(c) if c.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    (total * NS_PER_TICK, cpus.max(1))
}

/// Docker's CPU %: the container's share of the host's CPU time between two samples, scaled
/// to the online CPUs (100 % = one CPU busy).
pub fn cpu_percent(cpu_delta: u64, system_delta: u64, online: u64) -> f64 {
    if system_delta == 0 {
        return 0.0;
    }
    cpu_delta as f64 / system_delta as f64 * online as f64 * 100.0
}

/// Received and transmitted bytes over every interface but `lo`, from the text of
/// `/proc/<pid>/net/dev`.
pub fn parse_net_dev(text: &str) -> (u64, u64) {
    let mut rx = 0;
    let mut tx = 0;
    for l in text.lines().skip(2) {
        let Some((iface, rest)) = l.split_once(':') else {
            continue;
        };
        if iface.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() >= 9 {
            rx += f[0];
            tx += f[8];
        }
    }
    (rx, tx)
}

/// Read and written bytes from cgroup v1 `blkio.throttle.io_service_bytes` (`8:0 Read 4096`
/// lines) or v2 `io.stat` (`8:0 rbytes=4096 wbytes=0 …`).
pub fn parse_blkio(text: &str) -> (u64, u64) {
    let mut r = 0;
    let mut w = 0;
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            [_, "Read", n] => r += n.parse::<u64>().unwrap_or(0),
            [_, "Write", n] => w += n.parse::<u64>().unwrap_or(0),
            [_, kvs @ ..] => {
                for kv in kvs {
                    match kv.split_once('=') {
                        Some(("rbytes", n)) => r += n.parse::<u64>().unwrap_or(0),
                        Some(("wbytes", n)) => w += n.parse::<u64>().unwrap_or(0),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    (r, w)
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

/// One sample of the container behind `h` (None when it is gone).
fn sample(h: &rt::Created, host_mem: u64) -> Option<Sample> {
    let s = h.stats().ok()?;
    let mut out = Sample {
        cpu_ns: s.cpu_usage_ns,
        mem_usage: s.memory_usage,
        // No limit (or v1's "unlimited" page-rounded i64::MAX): the host's memory, as Docker.
        mem_limit: s
            .memory_limit
            .filter(|l| *l > 0 && *l < host_mem)
            .unwrap_or(host_mem),
        pids: s.pids,
        ..Default::default()
    };
    if h.pid > 0 {
        if let Ok(t) = std::fs::read_to_string(format!("/proc/{}/net/dev", h.pid)) {
            (out.net_rx, out.net_tx) = parse_net_dev(&t);
        }
    }
    let blk = [
        h.cgroup_root
            .join("blkio")
            .join(&h.cgroup_path)
            .join("blkio.throttle.io_service_bytes"),
        h.cgroup_root.join(&h.cgroup_path).join("io.stat"),
    ];
    if let Some(t) = blk.iter().find_map(|p| read_nonempty(p)) {
        (out.blk_read, out.blk_write) = parse_blkio(&t);
    }
    Some(out)
}

fn read_nonempty(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().filter(|t| !t.is_empty())
}

/// Docker's `BytesSize` (binary units, `1.5MiB`) for memory.
pub fn binary_size(n: u64) -> String {
    const U: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{}{}", precision3(v), U[i])
}

/// Docker's `HumanSizeWithPrecision(n, 3)` (decimal units, `1.2kB`) for network and block I/O.
pub fn decimal_size(n: u64) -> String {
    const U: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < U.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", precision3(v), U[i])
}

/// Go's `%.3g`: three significant digits, no trailing zeros.
fn precision3(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = v.abs().log10().floor() as i32 + 1;
    let decimals = (3 - digits).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// One row as Docker's `stats --format json` keys.
pub fn row_json(id: &str, name: &str, cpu: f64, s: &Sample) -> Map<String, Value> {
    let mem_perc = if s.mem_limit == 0 {
        0.0
    } else {
        s.mem_usage as f64 / s.mem_limit as f64 * 100.0
    };
    let v = json!({
        "BlockIO": format!("{} / {}", decimal_size(s.blk_read), decimal_size(s.blk_write)),
        "CPUPerc": format!("{cpu:.2}%"),
        "Container": id,
        "ID": id,
        "MemPerc": format!("{mem_perc:.2}%"),
        "MemUsage": format!("{} / {}", binary_size(s.mem_usage), binary_size(s.mem_limit)),
        "Name": name,
        "NetIO": format!("{} / {}", decimal_size(s.net_rx), decimal_size(s.net_tx)),
        "PIDs": s.pids.to_string(),
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!("a json object"),
    }
}

const HEADER: [&str; 8] = [
    "CONTAINER ID",
    "NAME",
    "CPU %",
    "MEM USAGE / LIMIT",
    "MEM %",
    "NET I/O",
    "BLOCK I/O",
    "PIDS",
];

/// The header names of the template keys (for `table <template>`).
fn header_of(key: &str) -> &'static str {
    match key {
        "Container" => "CONTAINER",
        "ID" => "CONTAINER ID",
        "Name" => "NAME",
        "CPUPerc" => "CPU %",
        "MemUsage" => "MEM USAGE / LIMIT",
        "MemPerc" => "MEM %",
        "NetIO" => "NET I/O",
        "BlockIO" => "BLOCK I/O",
        "PIDs" => "PIDS",
        _ => "",
    }
}

/// Render the rows in `format`.
pub fn render(format: &str, rows: &[Map<String, Value>]) -> String {
    let mut out = String::new();
    match format {
        "table" => {
            let data: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    [
                        "ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs",
                    ]
                    .iter()
                    .map(|k| r[*k].as_str().unwrap_or_default().to_string())
                    .collect()
                })
                .collect();
            out.push_str(&table(&HEADER, &data));
        }
        "json" => {
            for r in rows {
                out.push_str(&Value::Object(r.clone()).to_string());
                out.push('\n');
            }
        }
        tpl => {
            let (header, tpl) = match tpl.strip_prefix("table ") {
                Some(t) => (true, t),
                None => (false, tpl),
            };
            if header {
                let names: Map<String, Value> = row_json("", "", 0.0, &Sample::default())
                    .keys()
                    .map(|k| (k.clone(), Value::String(header_of(k).into())))
                    .collect();
                out.push_str(&template(tpl, &names));
                out.push('\n');
            }
            for r in rows {
                out.push_str(&template(tpl, r));
                out.push('\n');
            }
        }
    }
    out
}

/// `rcompose stats`: every second on a terminal (the screen redrawn), else a table per
/// second; `--no-stream` prints one (after two samples a second apart, for the CPU %).
pub fn run(g: &GlobalArgs, a: StatsArgs) -> Result<ExitCode> {
    let ctx = Ctx::without_project(g)?;
    let host_mem = host_memory();
    let tty = std::io::stdout().is_terminal();
    let mut previous: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut first = true;
    loop {
        let st = ctx.state()?;
        let (sys, online) = system_cpu();
        let mut rows = Vec::new();
        for c in st.containers.values() {
            let running = matches!(c.status, ContainerStatus::Running | ContainerStatus::Paused)
                && c.pid.is_some_and(|p| pid_alive(p, c.pid_start));
            if !(a.all || running) || !(a.services.is_empty() || a.services.contains(&c.service)) {
                continue;
            }
            let h = rt::Created::load(&ctx.paths.container_dir(&c.name).join("rt")).ok();
            let s = match (&h, running) {
                (Some(h), true) => sample(h, host_mem).unwrap_or_default(),
                _ => Sample::default(),
            };
            let cpu = match previous.insert(c.name.clone(), (s.cpu_ns, sys)) {
                Some((pc, ps)) if running => {
                    cpu_percent(s.cpu_ns.saturating_sub(pc), sys.saturating_sub(ps), online)
                }
                _ => 0.0,
            };
            let full = h.as_ref().map(|h| h.id.clone()).unwrap_or(c.name.clone());
            let id: String = if a.no_trunc {
                full
            } else {
                full.chars().take(12).collect()
            };
            rows.push(row_json(&id, &c.name, cpu, &s));
        }
        // The first pass only primes the CPU deltas (unless nothing runs).
        if first && !previous.is_empty() {
            first = false;
            std::thread::sleep(Duration::from_millis(if a.no_stream { 500 } else { 1000 }));
            continue;
        }
        first = false;
        let text = render(&a.format, &rows);
        let mut out = std::io::stdout().lock();
        if tty && !a.no_stream {
            // Clear the screen and go home, as `docker stats` redraws.
            write!(out, "\x1b[2J\x1b[H")?;
        }
        out.write_all(text.as_bytes())?;
        out.flush()?;
        drop(out);
        if a.no_stream {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_dockers_formula() {
        // 0.5 s of CPU over 2 s of host time on 2 CPUs: half a CPU, 50 %.
        assert_eq!(cpu_percent(500_000_000, 2_000_000_000, 2), 50.0);
        assert_eq!(cpu_percent(5, 0, 2), 0.0);
        let (total, cpus) = parse_proc_stat(
            "cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0 0 0\ncpu1 5 0 5 40 0 0 0 0 0 0\nintr 1\n",
        );
        assert_eq!((total, cpus), (100 * 10_000_000, 2));
    }

    #[test]
    fn counters_parse_from_proc_and_cgroup_files() {
        let dev = "Inter-|   Receive |  Transmit\n face |bytes packets\n    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n  eth0: 1500 10 0 0 0 0 0 0 648 6 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(dev), (1500, 648));
        let v1 = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Total 12288\nTotal 12288\n";
        assert_eq!(parse_blkio(v1), (4096, 8192));
        let v2 = "8:0 rbytes=100 wbytes=200 rios=1 wios=2\n253:0 rbytes=1 wbytes=2\n";
        assert_eq!(parse_blkio(v2), (101, 202));
    }

    #[test]
    fn sizes_print_as_docker_does() {
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(1536 * 1024), "1.5MiB");
        assert_eq!(binary_size(24 * 1024 * 1024 * 1024), "24GiB");
        assert_eq!(decimal_size(648), "648B");
        assert_eq!(decimal_size(1234), "1.23kB");
        assert_eq!(decimal_size(12_345_678), "12.3MB");
    }

    #[test]
    fn table_json_and_template_shapes() {
        let s = Sample {
            mem_usage: 1024 * 1024,
            mem_limit: 100 * 1024 * 1024,
            pids: 3,
            ..Default::default()
        };
        let rows = vec![row_json("0123456789ab", "p-web-1", 12.345, &s)];
        let t = render("table", &rows);
        let mut lines = t.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("CONTAINER ID   NAME"), "{header}");
        assert!(header.ends_with("NET I/O   BLOCK I/O   PIDS"), "{header}");
        let row = lines.next().unwrap();
        assert!(row.contains("12.35%"), "{row}");
        assert!(row.contains("1MiB / 100MiB"), "{row}");
        assert!(row.contains("1.00%"), "{row}");
        let j: Value = serde_json::from_str(render("json", &rows).trim()).unwrap();
        let keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "BlockIO",
                "CPUPerc",
                "Container",
                "ID",
                "MemPerc",
                "MemUsage",
                "Name",
                "NetIO",
                "PIDs"
            ]
        );
        assert_eq!(
            render("table {{.Name}}\\t{{.PIDs}}", &rows),
            "NAME\tPIDS\np-web-1\t3\n"
        );
    }
}
