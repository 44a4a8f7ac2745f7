//! End-to-end: service keys whose effect `up` must apply (or refuse) exactly as Docker
//! Compose does: `sysctls` (namespaced only), `secrets` and `configs` (mounted read-only),
//! `stop_grace_period` (how long a stop waits before SIGKILL).

mod support;

use support::{Stack, IMAGE};

/// `up -d` fails before anything exists: no container, no state, nothing of the root left.
fn refused(s: &Stack, needles: &[&str]) {
    let out = s.rc(&["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "up accepted it:\n{err}");
    for n in needles {
        assert!(err.contains(n), "error lacks {n:?}:\n{err}");
    }
    assert!(!s.state_file().exists(), "up recorded state:\n{err}");
    s.assert_no_leaks();
}

#[test]
fn sysctls_that_are_not_namespaced_are_refused_before_anything_is_created() {
    // The host's own values: even a broken check would not change the host.
    let host = |k: &str| {
        std::fs::read_to_string(format!("/proc/sys/{}", k.replace('.', "/")))
            .unwrap()
            .trim()
            .to_string()
    };
    let s = Stack::new(
        "sysctlglobal",
        60,
        &format!(
            r#"
services:
  fine:
    image: {IMAGE}
    command: ["sleep", "1000"]
    sysctls:
      net.ipv4.ip_forward: "1"
  app:
    image: {IMAGE}
    command: ["sleep", "1000"]
    sysctls:
      vm.swappiness: "{}"
"#,
            host("vm.swappiness")
        ),
    );
    refused(&s, &["service app", "vm.swappiness"]);

    // net.* is namespaced only when the container has its own network namespace.
    std::fs::write(
        s.dir.join("compose.yaml"),
        format!(
            r#"
services:
  hostnet:
    image: {IMAGE}
    command: ["sleep", "1000"]
    network_mode: host
    sysctls:
      net.ipv4.ip_forward: "{}"
"#,
            host("net.ipv4.ip_forward")
        ),
    )
    .unwrap();
    refused(&s, &["service hostnet", "net.ipv4.ip_forward", "host"]);
}

#[test]
fn secrets_and_configs_are_mounted_read_only_where_compose_puts_them() {
    let mut s = Stack::new(
        "secretcfg",
        61,
        &format!(
            r#"
services:
  app:
    image: {IMAGE}
    command:
      - sh
      - -c
      - |
        echo "db=$$(cat /run/secrets/db_password)"
        echo "token=$$(cat /run/secrets/api/token)"
        echo "conf=$$(cat /app.conf)"
        echo "inline=$$(cat /etc/inline.txt)"
        echo "mode=$$(stat -c %a /etc/inline.txt)"
        (echo x > /run/secrets/db_password) 2>/dev/null || echo "secret read-only"
        (echo x > /app.conf) 2>/dev/null || echo "config read-only"
        echo done
    secrets:
      - db_password
      - source: token
        target: api/token
    configs:
      - app.conf
      - source: inline
        target: /etc/inline.txt
        mode: 0440
secrets:
  db_password:
    file: ./db_password.txt
  token:
    environment: SECRET_TOKEN
configs:
  app.conf:
    file: ./app.conf
  inline:
    content: hello inline
"#
        ),
    );
    std::fs::write(s.dir.join("db_password.txt"), "s3cret\n").unwrap();
    std::fs::write(s.dir.join("app.conf"), "listen 80\n").unwrap();
    let out = s
        .cmd(&["up", "-d"])
        .env("SECRET_TOKEN", "tok-123")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut logs = String::new();
    support::eventually(
        std::time::Duration::from_secs(10),
        "the app's output",
        || {
            logs = s.ok(&["logs", "--no-log-prefix", "app"]);
            logs.contains("done")
        },
    );
    for line in [
        "db=s3cret",
        "token=tok-123",
        "conf=listen 80",
        "inline=hello inline",
        "mode=440",
        "secret read-only",
        "config read-only",
    ] {
        assert!(logs.lines().any(|l| l == line), "no {line:?} in:\n{logs}");
    }
    s.no_down_on_drop();
    s.down_and_check();
}

#[test]
fn stop_grace_period_bounds_stop_and_down_without_t() {
    let mut s = Stack::new(
        "graceperiod",
        62,
        &format!(
            r#"
services:
  stubborn:
    image: {IMAGE}
    command: ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"]
    stop_grace_period: 1s
"#
        ),
    );
    let ready = |s: &Stack| {
        support::eventually(
            std::time::Duration::from_secs(10),
            "stubborn ignoring SIGTERM",
            || s.ok(&["logs", "stubborn"]).matches("ready").count() >= 1,
        )
    };
    let timed = |args: &[&str]| {
        let t = std::time::Instant::now();
        s.ok(args);
        t.elapsed()
    };
    s.ok(&["up", "-d"]);
    ready(&s);
    // Without `-t` a stop waits the service's 1 s, not Docker's default 10 s.
    let took = timed(&["stop"]);
    assert!(
        took < std::time::Duration::from_secs(5),
        "stop took {took:?}"
    );
    s.ok(&["start"]);
    support::eventually(std::time::Duration::from_secs(10), "a second ready", || {
        s.ok(&["logs", "stubborn"]).matches("ready").count() >= 2
    });
    let took = timed(&["down", "-v"]);
    assert!(
        took < std::time::Duration::from_secs(5),
        "down took {took:?}"
    );
    s.no_down_on_drop();
    s.assert_no_leaks();
}

#[test]
fn security_opt_seccomp_file_applies_and_apparmor_warns() {
    let mut s = Stack::new(
        "seccompfile",
        77,
        &format!(
            r#"
services:
  app:
    image: {IMAGE}
    command: ["sh", "-c", "mkdir /tmp/x 2>&1; echo rc=$$?; echo done"]
    security_opt:
      - seccomp=./profile.json
      - apparmor=docker-default
"#
        ),
    );
    std::fs::write(
        s.dir.join("profile.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let out = s.rc(&["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "up: {err}");
    assert!(
        err.contains("apparmor=docker-default") && err.contains("ignored"),
        "{err}"
    );
    let mut logs = String::new();
    support::eventually(
        std::time::Duration::from_secs(10),
        "the app's output",
        || {
            logs = s.ok(&["logs", "--no-log-prefix", "app"]);
            logs.contains("done")
        },
    );
    assert!(
        logs.contains("Permission denied") && logs.contains("rc=1"),
        "{logs}"
    );
    s.no_down_on_drop();
    s.down_and_check();
}

#[test]
fn ipc_and_pid_service_join_uts_host_and_oom_settings_apply() {
    let mut s = Stack::new(
        "nsjoin",
        78,
        &format!(
            r#"
services:
  main:
    image: {IMAGE}
    command: ["sleep", "1000"]
  side:
    image: {IMAGE}
    ipc: "service:main"
    pid: "service:main"
    uts: host
    oom_score_adj: 234
    oom_kill_disable: true
    mem_limit: 64m
    command:
      - sh
      - -c
      - |
        ps -o comm | grep -qx sleep && echo "sees main's sleep"
        echo "hostname=$$(hostname)"
        echo "oom=$$(cat /proc/self/oom_score_adj)"
        echo done
        sleep 1000
"#
        ),
    );
    let out = s.rc(&["up", "-d"]);
    assert!(
        out.status.success(),
        "up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut logs = String::new();
    support::eventually(
        std::time::Duration::from_secs(10),
        "the side's output",
        || {
            logs = s.ok(&["logs", "--no-log-prefix", "side"]);
            logs.contains("done")
        },
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for line in [
        "sees main's sleep".to_string(),
        format!("hostname={}", host.trim()),
        "oom=234".to_string(),
    ] {
        assert!(logs.lines().any(|l| l == line), "no {line:?} in:\n{logs}");
    }
    // Same ipc and pid namespaces as main's pid 1, checked from outside.
    let state = s.state();
    let pid = |c: &str| state["containers"][c]["pid"].as_i64().unwrap();
    let ns = |p: i64, k: &str| std::fs::read_link(format!("/proc/{p}/ns/{k}")).unwrap();
    let (main, side) = (pid("nsjoin-main-1"), pid("nsjoin-side-1"));
    assert_eq!(ns(main, "ipc"), ns(side, "ipc"));
    assert_eq!(ns(main, "pid"), ns(side, "pid"));
    assert_eq!(ns(side, "uts"), ns(std::process::id() as i64, "uts"));
    s.no_down_on_drop();
    s.down_and_check();
}

#[test]
fn volumes_from_shares_the_other_containers_volumes_read_only_or_not() {
    let mut s = Stack::new(
        "volfrom",
        79,
        &format!(
            r#"
services:
  data:
    image: {IMAGE}
    command: ["sh", "-c", "echo from-data > /vol/note; echo bound > /bind/note; sleep 1000"]
    volumes:
      - shared:/vol
      - ./hostdir:/bind
  reader:
    image: {IMAGE}
    volumes_from:
      - data:ro
    command:
      - sh
      - -c
      - |
        until [ -s /vol/note ]; do sleep 0.05; done
        echo "vol=$$(cat /vol/note) bind=$$(cat /bind/note)"
        (echo x > /vol/other) 2>/dev/null || echo "vol read-only"
        echo done
        sleep 1000
  writer:
    image: {IMAGE}
    volumes_from:
      - data
    command: ["sh", "-c", "echo from-writer > /vol/w && echo done; sleep 1000"]
volumes:
  shared:
"#
        ),
    );
    std::fs::create_dir_all(s.dir.join("hostdir")).unwrap();
    let out = s.rc(&["up", "-d"]);
    assert!(
        out.status.success(),
        "up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut logs = String::new();
    support::eventually(
        std::time::Duration::from_secs(10),
        "the reader's and writer's output",
        || {
            logs = s.ok(&["logs", "--no-log-prefix", "reader", "writer"]);
            logs.matches("done").count() == 2
        },
    );
    for line in ["vol=from-data bind=bound", "vol read-only"] {
        assert!(logs.lines().any(|l| l == line), "no {line:?} in:\n{logs}");
    }
    let seen = s.ok(&["exec", "-T", "data", "cat", "/vol/w"]);
    assert_eq!(seen, "from-writer\n");
    s.no_down_on_drop();
    s.down_and_check();
}

#[test]
fn tty_services_get_their_own_terminal_and_stdin_open_keeps_stdin_open() {
    let mut s = Stack::new(
        "ttystdin",
        80,
        &format!(
            r#"
services:
  term:
    image: {IMAGE}
    tty: true
    command: ["sh", "-c", "tty; [ -t 0 ] && [ -t 1 ] && echo on-a-terminal; stty size; echo done; sleep 1000"]
  open:
    image: {IMAGE}
    stdin_open: true
    command: ["sh", "-c", "timeout 1 cat; echo cat=$$?; echo done; sleep 1000"]
  closed:
    image: {IMAGE}
    command: ["sh", "-c", "timeout 1 cat; echo cat=$$?; echo done; sleep 1000"]
  reader:
    image: {IMAGE}
    stdin_open: true
    command: ["sh", "-c", "read line; echo got=$$line; sleep 1000"]
"#
        ),
    );
    let out = s.rc(&["up", "-d"]);
    assert!(
        out.status.success(),
        "up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logs_of = |svc: &str| s.ok(&["logs", "--no-log-prefix", svc]);
    let mut logs = String::new();
    for svc in ["term", "open", "closed"] {
        support::eventually(std::time::Duration::from_secs(10), "done", || {
            logs = logs_of(svc);
            logs.contains("done")
        });
    }
    let term = logs_of("term").replace('\r', "");
    assert!(term.lines().any(|l| l == "/dev/pts/0"), "{term}");
    assert!(term.lines().any(|l| l == "on-a-terminal"), "{term}");
    // stdin held open by the supervisor: cat is still reading when timeout kills it.
    assert!(
        logs_of("open").lines().any(|l| l == "cat=143"),
        "{}",
        logs_of("open")
    );
    // Without stdin_open, stdin is /dev/null: cat ends at once.
    assert!(
        logs_of("closed").lines().any(|l| l == "cat=0"),
        "{}",
        logs_of("closed")
    );
    // What reaches the supervisor's stdin relay (what `attach` uses) is the container's input.
    let sock = s.run.join("ttystdin/stdin/ttystdin-reader-1.sock");
    let mut conn = std::os::unix::net::UnixStream::connect(&sock)
        .unwrap_or_else(|e| panic!("{}: {e}", sock.display()));
    std::io::Write::write_all(&mut conn, b"typed\n").unwrap();
    drop(conn);
    support::eventually(
        std::time::Duration::from_secs(10),
        "the reader's line",
        || logs_of("reader").lines().any(|l| l == "got=typed"),
    );
    s.no_down_on_drop();
    s.down_and_check();
}
