//! End-to-end: the everyday verbs against a running stack, with the output shapes Docker
//! Compose documents (ps columns and JSON keys, log prefixes, exit codes passed through).

mod support;

use std::time::Duration;

use support::{eventually, Stack, IMAGE};

fn stack(test: &str, pool: u8) -> Stack {
    let s = Stack::new(
        test,
        pool,
        &r#"
services:
  app:
    image: IMAGE
    init: true
    command: ["sh", "-c", "echo one; echo two; sleep 0.3; echo three >&2; exec sleep 1000"]
    environment:
      GREETING: hi
  worker:
    image: IMAGE
    init: true
    command: ["sleep", "1000"]
    deploy:
      replicas: 2
"#
        .replace("IMAGE", IMAGE),
    );
    s.ok(&["up", "-d"]);
    s
}

#[test]
fn ps_shows_docker_compose_columns_and_json_keys() {
    let s = stack("psshape", 30);
    let table = s.ok(&["ps"]);
    let header = table.lines().next().unwrap();
    let cols: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        cols,
        ["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"]
    );
    assert_eq!(table.lines().count(), 4, "{table}");
    let row = table.lines().nth(1).unwrap();
    assert!(row.starts_with("psshape-app-1 "), "{row}");
    assert!(row.contains(" Up "), "{row}");
    let c = &s.ps()[0];
    for key in [
        "Command",
        "CreatedAt",
        "ExitCode",
        "Health",
        "ID",
        "Image",
        "Labels",
        "LocalVolumes",
        "Mounts",
        "Name",
        "Names",
        "Networks",
        "Ports",
        "Project",
        "Publishers",
        "RunningFor",
        "Service",
        "Size",
        "State",
        "Status",
    ] {
        assert!(c.get(key).is_some(), "ps json lacks {key}: {c}");
    }
    assert_eq!(s.ok(&["ps", "--services"]), "app\nworker\n");
    assert_eq!(s.ok(&["ps", "-q"]).lines().count(), 3);
    assert_eq!(
        s.ok(&["ps", "--format", "{{.Name}} {{.State}}", "worker"]),
        "psshape-worker-1 running\npsshape-worker-2 running\n"
    );
    s.ok(&["stop", "worker"]);
    assert_eq!(s.ok(&["ps", "--services"]), "app\n");
    assert_eq!(
        s.ok(&["ps", "-a", "--status", "exited", "-q"])
            .lines()
            .count(),
        2
    );
    s.down_and_check();
}

#[test]
fn logs_honour_tail_prefix_and_timestamps() {
    let s = stack("logflags", 31);
    eventually(Duration::from_secs(5), "app output", || {
        s.ok(&["logs", "app"]).contains("three")
    });
    let all = s.ok(&["logs", "--no-color", "app"]);
    assert!(all.contains("app-1 | one\n"), "{all}");
    assert!(all.contains("app-1 | three\n"), "{all}");
    assert_eq!(
        s.ok(&["logs", "--no-log-prefix", "--tail", "1", "app"]),
        "three\n"
    );
    let ts = s.ok(&["logs", "--no-log-prefix", "-t", "--tail", "1", "app"]);
    assert!(ts.starts_with("20") && ts.contains("Z three"), "{ts}");
    let out = s.rc(&["logs", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such service: nope"));
    s.down_and_check();
}

#[test]
fn exec_runs_in_the_container_and_passes_the_exit_code_through() {
    let s = stack("execs", 32);
    assert_eq!(
        s.ok(&["exec", "-T", "app", "sh", "-c", "echo $GREETING"]),
        "hi\n"
    );
    assert_eq!(
        s.ok(&[
            "exec",
            "-T",
            "-e",
            "X=1",
            "-w",
            "/tmp",
            "app",
            "sh",
            "-c",
            "echo $X $(pwd)"
        ]),
        "1 /tmp\n"
    );
    assert_eq!(
        s.ok(&["exec", "-T", "-u", "nobody", "app", "id", "-u"]),
        "65534\n"
    );
    assert_eq!(
        s.ok(&["exec", "-T", "--index", "2", "worker", "hostname"])
            .trim()
            .len(),
        12
    );
    let out = s.rc(&["exec", "-T", "app", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    s.down_and_check();
}

#[test]
fn exec_through_a_real_pseudo_terminal_gets_a_tty() {
    let s = stack("exectty", 33);
    // `script` runs rcompose with a pty as its terminal.
    let cmd = format!(
        "{} -p exectty exec app sh -c 'test -t 0 && test -t 1 && echo INTERACTIVE; tty; echo stat: $(cat /proc/self/stat)'",
        env!("CARGO_BIN_EXE_rcompose")
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(&s.dir)
        .env("RCOMPOSE_ROOT", &s.root)
        .env("RCOMPOSE_RUN", &s.run)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // A terminal's line discipline turns the newline into CR LF.
    assert!(text.contains("INTERACTIVE\r\n"), "{text:?}");
    // A pty of the container's own devpts, and the controlling terminal with the process in its
    // foreground group (what `ps` shows as `+`): tty_nr set, tpgid == pgrp.
    assert!(text.contains("/dev/pts/0\r\n"), "{text:?}");
    let stat = text
        .lines()
        // `script` may echo a control character (^@) into the line first.
        .find_map(|l| l.split_once("stat: ").map(|(_, rest)| rest))
        .and_then(|l| l.rsplit_once(')'))
        .map(|(_, rest)| rest.split_whitespace().collect::<Vec<_>>())
        .unwrap_or_default();
    assert!(
        stat.len() > 5 && stat[4] != "0" && stat[2] == stat[5],
        "{text:?}"
    );
    s.down_and_check();
}

#[test]
fn stop_start_restart_kill_pause_and_rm() {
    let s = stack("lifecycle", 34);
    s.ok(&["stop", "app"]);
    assert_eq!(s.container("lifecycle-app-1").unwrap()["State"], "exited");
    s.ok(&["start", "app"]);
    assert_eq!(s.container("lifecycle-app-1").unwrap()["State"], "running");
    let pid = s.state()["containers"]["lifecycle-app-1"]["pid"].clone();
    s.ok(&["restart", "app"]);
    assert_ne!(s.state()["containers"]["lifecycle-app-1"]["pid"], pid);
    s.ok(&["pause", "app"]);
    assert_eq!(s.container("lifecycle-app-1").unwrap()["State"], "paused");
    s.ok(&["unpause", "app"]);
    assert_eq!(s.container("lifecycle-app-1").unwrap()["State"], "running");
    s.ok(&["kill", "-s", "SIGKILL", "worker"]);
    eventually(Duration::from_secs(5), "workers killed", || {
        s.ps()
            .iter()
            .filter(|c| c["Service"] == "worker")
            .all(|c| c["State"] == "exited")
    });
    assert_eq!(s.container("lifecycle-worker-1").unwrap()["ExitCode"], 137);
    s.ok(&["rm", "-f", "worker"]);
    assert!(s.container("lifecycle-worker-1").is_none());
    s.ok(&["rm", "-f", "-s", "app"]);
    assert!(s.ps().is_empty());
    s.down_and_check();
}

#[test]
fn top_ls_images_and_port_errors() {
    let s = stack("inspectv", 35);
    let mut top = String::new();
    eventually(Duration::from_secs(5), "top to list the sleep", || {
        top = s.ok(&["top", "app"]);
        top.contains("sleep 1000")
    });
    let header: Vec<&str> = top.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(header, ["UID", "PID", "PPID", "CMD"], "{top}");
    assert!(top.starts_with("inspectv-app-1\n"), "{top}");
    let ls: serde_json::Value = serde_json::from_str(&s.ok(&["ls", "--format", "json"])).unwrap();
    assert_eq!(ls[0]["Name"], "inspectv");
    assert_eq!(ls[0]["Status"], "running(3)");
    let images = s.ok(&["images"]);
    assert!(images.starts_with("CONTAINER"), "{images}");
    assert!(images.contains("e2e/busybox"), "{images}");
    let out = s.rc(&["port", "app", "80"]);
    assert!(!out.status.success());
    s.down_and_check();
}

#[test]
fn verbs_without_a_supervisor_work_from_the_state_or_say_why() {
    let s = stack("nosup", 36);
    // The supervisor collects the logs: what the container prints after it is killed is lost,
    // so let it record "one" first.
    eventually(Duration::from_secs(10), "app logged \"one\"", || {
        s.ok(&["logs", "app"]).contains("one")
    });
    let sup = s.state()["supervisor"]["pid"].as_i64().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-9", &sup.to_string()])
        .status();
    eventually(Duration::from_secs(5), "supervisor gone", || {
        !s.run.join("nosup/supervisor.sock").exists() || s.rc(&["events"]).status.code() == Some(1)
    });
    assert!(s.ok(&["ps"]).contains("nosup-app-1"));
    assert!(s.ok(&["logs", "app"]).contains("one"));
    let ev = s.rc(&["events"]);
    assert!(!ev.status.success());
    assert!(String::from_utf8_lossy(&ev.stderr).contains("no supervisor runs for project nosup"));
    s.ok(&["stop", "-t", "1"]);
    assert_eq!(s.ok(&["ps", "-q"]), "");
    assert!(s.ps().iter().all(|c| c["State"] == "exited"));
    s.down_and_check();
}

#[test]
fn run_starts_dependencies_passes_the_exit_code_and_down_removes_kept_one_offs() {
    let s = Stack::new(
        "runs",
        37,
        &r#"
services:
  db:
    image: IMAGE
    init: true
    command: ["sleep", "1000"]
  app:
    image: IMAGE
    command: ["echo", "default command"]
    depends_on: [db]
  bare:
    image: IMAGE
"#
        .replace("IMAGE", IMAGE),
    );
    let out = s.rc(&[
        "run",
        "--rm",
        "-e",
        "X=42",
        "app",
        "sh",
        "-c",
        "echo $X; nslookup db >/dev/null && echo resolved; exit 4",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "42\nresolved\n");
    assert_eq!(s.container("runs-db-1").unwrap()["State"], "running");
    assert!(!s
        .root
        .join("projects/runs/oneoff")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some()));
    // An image with neither entrypoint nor cmd: the one-off's command is enough.
    let out = s.rc(&["run", "--rm", "-T", "bare", "echo", "bare ran"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "bare ran\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());
    // Without --rm the one-off is kept until `down`.
    assert_eq!(s.ok(&["run", "-T", "app"]), "default command\n");
    assert_eq!(
        s.root
            .join("projects/runs/oneoff")
            .read_dir()
            .unwrap()
            .count(),
        1
    );
    let cmd = format!(
        "{} -p runs run app sh -c 'test -t 0 && echo TTY; tty; echo stat: $(cat /proc/self/stat); [ /dev/console -ef /proc/self/fd/0 ] && echo CONSOLE'",
        env!("CARGO_BIN_EXE_rcompose")
    );
    let tty = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(&s.dir)
        .env("RCOMPOSE_ROOT", &s.root)
        .env("RCOMPOSE_RUN", &s.run)
        .env("RCOMPOSE_NETWORK_POOL", &s.pool)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&tty.stdout).to_string();
    assert!(text.contains("TTY\r\n"), "{text:?}");
    // The container's own pty, its controlling terminal (foreground: tpgid == pgrp) and
    // /dev/console.
    assert!(text.contains("/dev/pts/0\r\n"), "{text:?}");
    assert!(text.contains("CONSOLE\r\n"), "{text:?}");
    let stat = text
        .lines()
        // `script` may echo a control character (^@) into the line first.
        .find_map(|l| l.split_once("stat: ").map(|(_, rest)| rest))
        .and_then(|l| l.rsplit_once(')'))
        .map(|(_, rest)| rest.split_whitespace().collect::<Vec<_>>())
        .unwrap_or_default();
    assert!(
        stat.len() > 5 && stat[4] != "0" && stat[2] == stat[5],
        "{text:?}"
    );
    s.down_and_check();
}

#[test]
fn cp_copies_both_ways() {
    let s = stack("copies", 38);
    let host_dir = s.tmp.path().join("out");
    s.ok(&["cp", "app:/etc/passwd", host_dir.to_str().unwrap()]);
    let passwd = std::fs::read_to_string(host_dir.join("passwd")).unwrap();
    assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");
    let src = s.tmp.path().join("note.txt");
    std::fs::write(&src, "from the host\n").unwrap();
    s.ok(&["cp", src.to_str().unwrap(), "app:/tmp"]);
    assert_eq!(
        s.ok(&["exec", "-T", "app", "cat", "/tmp/note.txt"]),
        "from the host\n"
    );
    s.down_and_check();
}

/// An HTTP GET of `path` on 127.0.0.1:`port`: the whole response, or the error.
fn http_get(port: u16, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

#[test]
fn run_publishes_ports_and_mounts_bind_and_named_volumes() {
    let s = Stack::new(
        "runpv",
        85,
        &r#"
services:
  web:
    image: IMAGE
    command: ["true"]
    ports: ["127.0.0.1:18851:80"]
"#
        .replace("IMAGE", IMAGE),
    );
    std::fs::create_dir_all(s.dir.join("www")).unwrap();
    std::fs::write(s.dir.join("www/index.html"), "hello from a bind mount\n").unwrap();
    // -p host:container on 127.0.0.1, -v a relative bind, read-only.
    let name = s.ok(&[
        "run",
        "-d",
        "-p",
        "127.0.0.1:18852:8000",
        "-v",
        "./www:/www:ro",
        "web",
        "httpd",
        "-f",
        "-p",
        "8000",
        "-h",
        "/www",
    ]);
    let name = name.trim();
    assert!(name.starts_with("runpv-web-run-"), "{name}");
    let mut body = String::new();
    eventually(
        Duration::from_secs(10),
        "the published one-off answers",
        || match http_get(18852, "/index.html") {
            Ok(b) => {
                body = b;
                true
            }
            Err(_) => false,
        },
    );
    assert!(body.contains("hello from a bind mount"), "{body}");
    // The service's own port is not published without --service-ports.
    assert!(http_get(18851, "/").is_err());
    // The DNAT rule is in rcompose's nft table.
    let nft = std::process::Command::new("nft")
        .args([
            "list",
            "table",
            "ip",
            &network::Networks::new(&s.root).nft_table(),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&nft.stdout).contains("18852"),
        "{}",
        String::from_utf8_lossy(&nft.stdout)
    );
    // :ro holds.
    let out = s.rc(&[
        "run",
        "--rm",
        "-v",
        "./www:/www:ro",
        "web",
        "sh",
        "-c",
        "echo x > /www/new",
    ]);
    assert!(!out.status.success());
    assert!(!s.dir.join("www/new").exists());
    // A named volume outlives the one-off that wrote it.
    s.ok(&[
        "run",
        "--rm",
        "-v",
        "cache:/cache",
        "web",
        "sh",
        "-c",
        "echo kept > /cache/f",
    ]);
    assert_eq!(
        s.ok(&[
            "run",
            "--rm",
            "-v",
            "cache:/cache",
            "web",
            "cat",
            "/cache/f"
        ]),
        "kept\n"
    );
    // --service-ports publishes the service's ports, -p adds to them (ranges too).
    let name2 = s.ok(&[
        "run",
        "-d",
        "--service-ports",
        "-p",
        "127.0.0.1:18853-18854:8000-8001",
        "web",
        "sh",
        "-c",
        "httpd -p 80 -h /etc; httpd -p 8001 -h /etc; exec httpd -f -p 8000 -h /etc",
    ]);
    for port in [18851, 18853, 18854] {
        eventually(
            Duration::from_secs(10),
            "a --service-ports port answers",
            || http_get(port, "/passwd").is_ok_and(|b| b.contains("root:x:0:0")),
        );
    }
    assert!(name2.starts_with("runpv-web-run-"), "{name2}");
    // --cap-drop removes the capability from the process (CAP_NET_RAW is bit 13).
    let caps = s.ok(&[
        "run",
        "--rm",
        "--cap-drop",
        "NET_RAW",
        "web",
        "grep",
        "CapBnd",
        "/proc/self/status",
    ]);
    let hex = caps.split_whitespace().nth(1).unwrap();
    let mask = u64::from_str_radix(hex, 16).unwrap();
    assert_eq!(mask & (1 << 13), 0, "{caps}");
    // --pull never with an image the store lacks is an error naming it.
    std::fs::write(
        s.dir.join("compose.yaml"),
        "services:\n  web:\n    image: e2e/absent:1\n",
    )
    .unwrap();
    let out = s.rc(&["run", "--rm", "--pull", "never", "web", "true"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("e2e/absent:1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        s.dir.join("compose.yaml"),
        "services:\n  web:\n    image: IMAGE\n".replace("IMAGE", IMAGE),
    )
    .unwrap();
    s.down_and_check();
    assert!(std::net::TcpStream::connect(("127.0.0.1", 18852)).is_err());
}

#[test]
fn stats_shows_cpu_percent_memory_limit_network_and_pids() {
    let s = Stack::new(
        "statsv",
        86,
        &r#"
services:
  busy:
    image: IMAGE
    command: ["sh", "-c", "while :; do :; done"]
    mem_limit: 64m
  web:
    image: IMAGE
    command: ["httpd", "-f", "-p", "80", "-h", "/etc"]
"#
        .replace("IMAGE", IMAGE),
    );
    s.ok(&["up", "-d"]);
    s.ok(&[
        "exec",
        "-T",
        "busy",
        "wget",
        "-q",
        "-O",
        "/dev/null",
        "http://web/passwd",
    ]);
    let table = s.ok(&["stats", "--no-stream"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    let cols: Vec<&str> = header
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cols,
        [
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS"
        ],
        "{table}"
    );
    assert_eq!(lines.count(), 2, "{table}");
    let json = s.ok(&["stats", "--no-stream", "--format", "json"]);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let row = |n: &str| rows.iter().find(|r| r["Name"] == n).unwrap().clone();
    let busy = row("statsv-busy-1");
    let pct = |v: &serde_json::Value| -> f64 {
        v.as_str().unwrap().trim_end_matches('%').parse().unwrap()
    };
    // A busy loop uses most of one CPU (the machine is shared: be lenient), the idle web none.
    assert!(pct(&busy["CPUPerc"]) > 20.0, "{busy}");
    assert!(pct(&row("statsv-web-1")["CPUPerc"]) < 5.0, "{rows:?}");
    assert!(
        busy["MemUsage"].as_str().unwrap().ends_with(" / 64MiB"),
        "{busy}"
    );
    assert!(pct(&busy["MemPerc"]) > 0.0, "{busy}");
    assert_eq!(busy["ID"].as_str().unwrap().len(), 12);
    let web = row("statsv-web-1");
    assert_eq!(web["PIDs"], "1");
    // The page went out of web's veth: both counters moved.
    let net = web["NetIO"].as_str().unwrap();
    let (rx, tx) = net.split_once(" / ").unwrap();
    assert!(rx != "0B" && tx != "0B", "{net}");
    assert!(web["BlockIO"].as_str().unwrap().contains(" / "), "{web}");
    // Templates, --no-trunc, and services named.
    let t = s.ok(&[
        "stats",
        "--no-stream",
        "--no-trunc",
        "--format",
        "{{.Name}} {{.ID}}",
        "web",
    ]);
    let (name, id) = t.trim().split_once(' ').unwrap();
    assert_eq!(name, "statsv-web-1");
    assert_eq!(id.len(), 64, "{t}");
    // Without --no-stream it keeps printing, once a second.
    let mut child = s
        .cmd(&["stats", "--format", "{{.Name}}", "web"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        for _ in 0..2 {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            assert_eq!(line, "statsv-web-1\n");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    // -a lists a stopped container with zero figures.
    s.ok(&["stop", "-t", "1", "web"]);
    let all = s.ok(&[
        "stats",
        "--no-stream",
        "-a",
        "--format",
        "{{.Name}} {{.CPUPerc}}",
    ]);
    assert!(all.contains("statsv-web-1 0.00%"), "{all}");
    let running = s.ok(&["stats", "--no-stream", "--format", "{{.Name}}"]);
    assert_eq!(running, "statsv-busy-1\n");
    s.down_and_check();
}

#[test]
fn events_stream_live_and_replay_the_journal_without_a_supervisor() {
    let s = Stack::new(
        "evj",
        87,
        &r#"
services:
  web:
    image: IMAGE
    init: true
    command: ["sleep", "1000"]
"#
        .replace("IMAGE", IMAGE),
    );
    s.ok(&["up", "-d"]);
    // Live: a follower sees the stop it did not cause.
    let mut child = s
        .cmd(&["events", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(l);
        }
    });
    // The follower is subscribed once a stop shows up; retry the stop/start cycle until then.
    let mut seen = Vec::new();
    eventually(Duration::from_secs(20), "a live stop event", || {
        s.ok(&["restart", "-t", "1", "web"]);
        while let Ok(l) = rx.recv_timeout(Duration::from_millis(300)) {
            seen.push(l);
        }
        seen.iter().any(|l| l.contains("\"action\":\"stop\""))
    });
    let _ = child.kill();
    let _ = child.wait();
    let ev: serde_json::Value = serde_json::from_str(&seen[0]).unwrap();
    let mut keys: Vec<&str> = ev.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["action", "attributes", "id", "service", "time", "type"]
    );
    assert_eq!(ev["service"], "web");
    assert_eq!(ev["type"], "container");
    // The journal: past events in Docker Compose's text shape, bounded by --until.
    let past = s.ok(&["events", "--since", "5m", "--until", "0s"]);
    let start = past
        .lines()
        .find(|l| l.contains(" container start "))
        .unwrap_or_else(|| panic!("{past}"));
    assert!(
        start.ends_with("(name=evj-web-1, project=evj, service=web)"),
        "{start}"
    );
    assert_eq!(start.as_bytes()[10], b' ', "{start}");
    // Without a supervisor: live streaming is refused plainly, the journal still answers.
    s.ok(&["stop", "-t", "1"]);
    let sock = s.run.join("evj/supervisor.sock");
    eventually(Duration::from_secs(15), "the supervisor to exit", || {
        !sock.exists()
    });
    let out = s.rc(&["events"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no supervisor runs for project evj"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let past = s.ok(&["events", "--since", "5m", "--json"]);
    assert!(past.contains("\"action\":\"stop\""), "{past}");
    assert_eq!(s.ok(&["events", "--since", "0s"]), "");
    s.down_and_check();
    assert!(!s.rc(&["events", "--since", "1h"]).status.success());
}

#[test]
fn volumes_export_and_commit_a_service_container() {
    let compose = r#"
services:
  app:
    image: IMAGE
    init: true
    command: ["sleep", "1000"]
    volumes: ["data:/data"]
volumes:
  data: {}
"#
    .replace("IMAGE", IMAGE);
    let s = Stack::new("volx", 88, &compose);
    s.ok(&["up", "-d"]);
    // volumes: the project's, shaped like `volume ls`.
    let table = s.ok(&["volumes"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(header, ["DRIVER", "VOLUME NAME"], "{table}");
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["local", "volx_data"]
    );
    assert_eq!(s.ok(&["volumes", "-q"]), "volx_data\n");
    assert_eq!(s.ok(&["volumes", "-q", "app"]), "volx_data\n");
    let j: serde_json::Value =
        serde_json::from_str(s.ok(&["volumes", "--format", "json"]).trim()).unwrap();
    assert_eq!(j["Name"], "volx_data");
    assert_eq!(j["Driver"], "local");
    assert_eq!(
        s.ok(&["volumes", "--format", "{{.Name}}:{{.Driver}}"]),
        "volx_data:local\n"
    );
    // Changes: a new file, a removed one (a whiteout in the upper dir), a volume file.
    s.ok(&[
        "exec",
        "-T",
        "app",
        "sh",
        "-c",
        "echo hi > /etc/added && rm /etc/group && echo v > /data/in-volume",
    ]);
    // export: the merged filesystem, without the volume's content.
    let tar = s.tmp.path().join("app.tar");
    s.ok(&["export", "-o", tar.to_str().unwrap(), "app"]);
    let list = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&tar)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    let has = |p: &str| {
        list.lines()
            .any(|l| l.trim_start_matches("./").trim_end_matches('/') == p)
    };
    assert!(
        has("etc/added") && has("bin/busybox") && has("etc/passwd"),
        "{list}"
    );
    assert!(!has("etc/group"), "a removed file is not exported:\n{list}");
    assert!(!has("data/in-volume"), "volumes are not exported:\n{list}");
    let added = std::process::Command::new("tar")
        .arg("-xOf")
        .arg(&tar)
        .arg("etc/added")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&added.stdout), "hi\n");
    let piped = s.cmd(&["export", "app"]).output().unwrap();
    assert!(piped.status.success());
    assert_eq!(
        piped.stdout.len() as u64,
        std::fs::metadata(&tar).unwrap().len()
    );
    // commit: the changes as a new image on top of the service's.
    let id = s.ok(&[
        "commit",
        "-a",
        "E2E <e2e@example.org>",
        "-m",
        "add a file",
        "-c",
        "CMD [\"cat\", \"/etc/added\"]",
        "-c",
        "ENV COMMITTED=yes",
        "app",
        "e2e/committed:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let images = s.ok(&["image", "ls"]);
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("e2e/committed ") && l.contains(" 1 ")),
        "{images}"
    );
    let inspect = s.ok(&["image", "inspect", "e2e/committed:1"]);
    assert!(
        inspect.contains(&id.trim()[7..19]) || inspect.contains(id.trim()),
        "{inspect}"
    );
    // A service can run it: the file is there, the removed one is not, CMD and ENV apply.
    let with_again = compose.replace(
        "volumes:\n  data: {}\n",
        "  again:\n    image: e2e/committed:1\nvolumes:\n  data: {}\n",
    );
    assert_ne!(with_again, compose);
    std::fs::write(s.dir.join("compose.yaml"), &with_again).unwrap();
    let again = s.rc(&["run", "--rm", "--no-deps", "again"]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        "hi\n",
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        s.ok(&[
            "run",
            "--rm",
            "--no-deps",
            "again",
            "sh",
            "-c",
            "test ! -e /etc/group && echo $COMMITTED"
        ]),
        "yes\n"
    );
    std::fs::write(s.dir.join("compose.yaml"), &compose).unwrap();
    s.down_and_check();
    // Without a name, commit refuses plainly.
    let out = s.rc(&["commit", "app"]);
    assert!(!out.status.success());
}

#[test]
fn images_in_use_are_not_removed_or_pruned() {
    let s = Stack::new(
        "imgsafe",
        89,
        &r#"
services:
  app:
    image: IMAGE
    init: true
    command: ["sleep", "1000"]
"#
        .replace("IMAGE", IMAGE),
    );
    s.ok(&["up", "-d"]);
    let out = s.rc(&["image", "rm", IMAGE]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("running container imgsafe-app-1") && err.contains("cannot be forced"),
        "{err}"
    );
    assert!(!s.rc(&["image", "rm", "-f", IMAGE]).status.success());
    // By ID too.
    let inspect: serde_json::Value =
        serde_json::from_str(&s.ok(&["image", "inspect", IMAGE])).unwrap();
    let id = inspect[0]["Id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sha256:"), "{inspect}");
    let by_id = s.rc(&["image", "rm", &id]);
    assert!(
        !by_id.status.success(),
        "{}",
        String::from_utf8_lossy(&by_id.stdout)
    );
    // prune -a keeps it and says why; an unused image goes.
    s.ok(&["image", "import", s.tar.to_str().unwrap(), "e2e/unused:1"]);
    s.ok(&["image", "tag", IMAGE, "e2e/alias:1"]);
    let prune = s.rc(&["image", "prune", "-a"]);
    assert!(prune.status.success());
    assert!(
        String::from_utf8_lossy(&prune.stderr)
            .contains("kept e2e/busybox:latest: used by container imgsafe-app-1"),
        "{}",
        String::from_utf8_lossy(&prune.stderr)
    );
    let ls = s.ok(&["image", "ls"]);
    assert!(
        ls.contains("e2e/busybox") && !ls.contains("e2e/unused"),
        "{ls}"
    );
    // The running container is unharmed.
    assert_eq!(s.ok(&["exec", "-T", "app", "echo", "ok"]), "ok\n");
    // Another name of the image can go; the image stays.
    s.ok(&["image", "tag", IMAGE, "e2e/alias:2"]);
    s.ok(&["image", "rm", "e2e/alias:2"]);
    s.ok(&["image", "rm", "e2e/alias:1"]);
    // Stopped: refused without -f, removed with it.
    s.ok(&["stop", "-t", "1"]);
    let out = s.rc(&["image", "rm", IMAGE]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("must be forced): it is used by stopped container imgsafe-app-1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.ok(&["image", "rm", "-f", IMAGE]);
    assert!(!s.ok(&["image", "ls"]).contains("e2e/busybox"));
    s.down_and_check();
}

#[test]
fn scale_adds_and_removes_replicas_without_recreating_others() {
    let compose = r#"
services:
  db:
    image: IMAGE
    init: true
    command: ["sleep", "1000"]
  web:
    image: IMAGE
    init: true
    command: ["sleep", "1000"]
    depends_on: [db]
"#
    .replace("IMAGE", IMAGE);
    let s = Stack::new("scalev", 90, &compose);
    s.ok(&["up", "-d"]);
    let db_id = s.container("scalev-db-1").unwrap()["ID"].clone();
    let web1 = s.container("scalev-web-1").unwrap()["ID"].clone();
    // A changed db would be recreated by `up`; `scale` leaves it alone.
    std::fs::write(
        s.dir.join("compose.yaml"),
        compose.replace("  web:\n", "    environment: {CHANGED: \"1\"}\n  web:\n"),
    )
    .unwrap();
    s.ok(&["scale", "web=3"]);
    let running = |svc: &str| {
        s.ps()
            .into_iter()
            .filter(|c| c["Service"] == svc && c["State"] == "running")
            .count()
    };
    assert_eq!(running("web"), 3);
    assert_eq!(s.container("scalev-db-1").unwrap()["ID"], db_id);
    assert_eq!(s.container("scalev-web-1").unwrap()["ID"], web1);
    s.ok(&["scale", "--no-deps", "web=1"]);
    assert_eq!(running("web"), 1);
    assert!(s.container("scalev-web-3").is_none());
    assert_eq!(s.container("scalev-web-1").unwrap()["ID"], web1);
    assert_eq!(s.container("scalev-db-1").unwrap()["ID"], db_id);
    let bad = s.rc(&["scale", "nope=2"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nope"));
    assert!(!s.rc(&["scale", "web"]).status.success());
    s.down_and_check();
}

#[test]
fn push_sends_service_images_to_a_registry_with_auth_and_pull_brings_them_back() {
    let reg = support::registry::Registry::start(Some(("e2e", "s3cret")));
    let image = format!("{}/e2e/app:1", reg.host());
    let s = Stack::new(
        "pushv",
        91,
        &format!(
            "services:\n  app:\n    image: {image}\n    command: [\"true\"]\n  local:\n    build: .\n"
        ),
    );
    s.ok(&["image", "tag", IMAGE, &image]);
    let with_config = |args: &[&str]| {
        s.cmd(args)
            .env("DOCKER_CONFIG", reg.docker_config())
            .output()
            .unwrap()
    };
    // Without credentials the registry refuses, and push says so.
    let anon = s
        .cmd(&["push", "app"])
        .env("DOCKER_CONFIG", s.tmp.path())
        .output()
        .unwrap();
    assert!(!anon.status.success());
    assert!(
        String::from_utf8_lossy(&anon.stderr).contains(&reg.host()),
        "{}",
        String::from_utf8_lossy(&anon.stderr)
    );
    let out = with_config(&["push"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(err.contains(": pushed"), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let digest = stdout
        .trim()
        .rsplit_once("digest: ")
        .map(|(_, d)| d.to_string())
        .unwrap_or_else(|| panic!("{stdout}"));
    // The registry serves the manifest under the tag, with the digest the store has.
    let (status, served) = reg.manifest_digest("e2e/app", "1", Some(("e2e", "s3cret")));
    assert_eq!((status, served.as_str()), (200, digest.as_str()));
    // A second push finds every blob there.
    let again = with_config(&["push", "app"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("layer already exists"));
    // Pull it back into an empty store: per-layer progress, the same digest.
    s.ok(&["image", "rm", &image]);
    let pulled = with_config(&["pull", "app"]);
    let perr = String::from_utf8_lossy(&pulled.stderr).to_string();
    assert!(pulled.status.success(), "{perr}");
    assert!(
        perr.contains("pull complete") || perr.contains("already exists"),
        "{perr}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&s.ok(&["image", "inspect", &image])).unwrap();
    let repo_digests = inspect[0]["RepoDigests"].to_string();
    assert!(repo_digests.contains(&digest), "{repo_digests} vs {digest}");
    s.down_and_check();
}

#[test]
fn attach_forwards_input_to_the_relay_detaches_on_ctrl_p_ctrl_q_and_proxies_signals() {
    use std::io::{BufRead, Read, Write};
    let s = Stack::new(
        "attachin",
        92,
        &r#"
services:
  app:
    image: IMAGE
    init: true
    command: ["sh", "-c", "while :; do echo tick; sleep 0.2; done"]
"#
        .replace("IMAGE", IMAGE),
    );
    s.ok(&["up", "-d"]);
    // The supervisor's relay socket for the container, played by this test: what attach
    // forwards arrives here.
    let sock_dir = s.run.join("attachin/stdin");
    std::fs::create_dir_all(&sock_dir).unwrap();
    let sock = sock_dir.join("attachin-app-1.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let received = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        got
    });
    let mut child = s
        .cmd(&["attach", "app"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello\n\x10").unwrap();
    stdin.flush().unwrap();
    // Output flows while attached.
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "tick\n");
    stdin.write_all(b"\x11not sent\n").unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("read escape sequence"), "{err}");
    assert_eq!(received.join().unwrap(), b"hello\n");
    // Detaching leaves the container running.
    assert_eq!(s.container("attachin-app-1").unwrap()["State"], "running");
    std::fs::remove_dir_all(&sock_dir).unwrap();
    // Bad detach keys are refused.
    let bad = s.rc(&["attach", "--detach-keys", "alt-x", "app"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid detach keys"));
    // --sig-proxy (default): a SIGTERM to attach reaches the container, whose exit code
    // attach returns.
    let mut child = s
        .cmd(&["attach", "--no-stdin", "app"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "tick\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    eventually(Duration::from_secs(10), "the container to exit", || {
        s.container("attachin-app-1").unwrap()["State"] == "exited"
    });
    s.down_and_check();
}
