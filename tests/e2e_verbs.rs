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
