//! End-to-end: service keys whose effect `up` must apply (or refuse) exactly as Docker
//! Compose does: `sysctls` (namespaced only), `secrets` and `configs` (mounted read-only),
//! `stop_grace_period` (how long a stop waits before SIGKILL), `security_opt`, `ipc`/`pid`/`uts`,
//! `oom_*`, `volumes_from`, `labels`, `container_name`,
//! `links`, `post_start`/`pre_stop` hooks, `tty`/`stdin_open`, port protocols, and the
//! warnings `up` prints for what it ignores.

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

/// `nslookup NAME` from inside `from` answers with an address.
fn resolves(s: &Stack, from: &str, name: &str) -> bool {
    let out = s.rc(&["exec", "-T", from, "nslookup", name]);
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success() && text.contains("Address") && text.matches("10.213.").count() >= 2
}

#[test]
fn labels_container_name_and_links_show_in_ps_and_dns() {
    let s = Stack::new(
        "labelsnames",
        70,
        &format!(
            r#"
services:
  db:
    image: {IMAGE}
    container_name: my-db
    command: ["sleep", "1000"]
    labels:
      tier: data
      com.example.owner: "team a"
  web:
    image: {IMAGE}
    command: ["sleep", "1000"]
    depends_on: [db]
    links: ["db:database"]
networks:
  default:
    labels:
      com.example.net: front
"#
        ),
    );
    s.ok(&["up", "-d"]);
    let db = s.container("my-db").expect("a container named my-db");
    assert_eq!(db["Service"], "db");
    let labels = db["Labels"].as_str().unwrap().to_string();
    for want in [
        "tier=data",
        "com.example.owner=team a",
        "com.docker.compose.project=labelsnames",
        "com.docker.compose.service=db",
        "com.docker.compose.container-number=1",
        "com.docker.compose.oneoff=False",
        "com.docker.compose.project.working_dir=",
        "com.docker.compose.project.config_files=",
        "com.docker.compose.config-hash=",
        "com.docker.compose.image=sha256:",
        "com.docker.compose.version=",
    ] {
        assert!(labels.contains(want), "labels lack {want:?}: {labels}");
    }
    let web = s
        .container("labelsnames-web-1")
        .expect("web keeps the default name");
    assert!(
        web["Labels"]
            .as_str()
            .unwrap()
            .contains("com.docker.compose.depends_on=db:service_started:false"),
        "{}",
        web["Labels"]
    );
    // The custom name and the link alias resolve for web; the alias only for web.
    support::eventually(
        std::time::Duration::from_secs(10),
        "my-db and database resolving from web",
        || resolves(&s, "web", "my-db") && resolves(&s, "web", "database"),
    );
    assert!(resolves(&s, "db", "web"));
    assert!(
        !resolves(&s, "db", "database"),
        "a link alias is for its container only"
    );
    // Network labels reach the network's record.
    let net = s.ok(&["network", "inspect", "labelsnames_default"]);
    assert!(net.contains("com.example.net"), "{net}");
    // A second up changes nothing; down removes the custom-named container.
    s.ok(&["up", "-d"]);
    assert_eq!(s.ps().len(), 2);
    s.down_and_check();
}

#[test]
fn container_name_with_more_than_one_replica_is_refused() {
    let s = Stack::new(
        "namescale",
        71,
        &format!(
            r#"
services:
  app:
    image: {IMAGE}
    container_name: only-one
    command: ["sleep", "1000"]
"#
        ),
    );
    let out = s.rc(&["up", "-d", "--scale", "app=2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "up accepted it: {err}");
    assert!(
        err.contains("service app") && err.contains("only-one") && err.contains("2 replicas"),
        "{err}"
    );
    assert!(s.ps().is_empty(), "a container was made");
    s.down_and_check();
}

#[test]
fn post_start_and_pre_stop_hooks_run_in_the_container() {
    let s = Stack::new(
        "hooks",
        72,
        &format!(
            r#"
services:
  app:
    image: {IMAGE}
    init: true
    command: ["sleep", "1000"]
    volumes:
      - ./out:/out
    post_start:
      - command: ["sh", "-c", "echo started-$$HOOK_VAR > /out/post"]
        environment:
          HOOK_VAR: yes
    pre_stop:
      - command: sh -c 'echo stopping > /out/pre'
"#
        ),
    );
    s.ok(&["up", "-d"]);
    let out = s.dir.join("out");
    // post_start has run when up returns.
    assert_eq!(
        std::fs::read_to_string(out.join("post")).unwrap().trim(),
        "started-yes"
    );
    assert!(!out.join("pre").exists());
    s.ok(&["stop", "-t", "5"]);
    assert_eq!(
        std::fs::read_to_string(out.join("pre")).unwrap().trim(),
        "stopping"
    );
    s.down_and_check();
}

#[test]
fn tty_and_stdin_open_services_run_under_up_and_log() {
    let s = Stack::new(
        "ttyup",
        73,
        &format!(
            r#"
services:
  term:
    image: {IMAGE}
    tty: true
    command: ["sh", "-c", "if [ -t 0 ] && [ -t 1 ]; then echo IS-A-TTY; else echo NOT-A-TTY; fi; sleep 1000"]
  reader:
    image: {IMAGE}
    stdin_open: true
    command: ["sh", "-c", "echo reading; read line || echo GOT-EOF; echo GOT-$$line"]
"#
        ),
    );
    s.ok(&["up", "-d"]);
    support::eventually(
        std::time::Duration::from_secs(10),
        "tty output in logs",
        || s.ok(&["logs", "term"]).contains("IS-A-TTY"),
    );
    support::eventually(std::time::Duration::from_secs(10), "reader started", || {
        s.ok(&["logs", "reader"]).contains("reading")
    });
    // stdin stays open: `read` waits instead of seeing end of file.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!s.ok(&["logs", "reader"]).contains("GOT-EOF"));
    for c in s.ps() {
        assert_eq!(c["State"], "running", "{c}");
    }
    // `attach` types into it through the supervisor's stdin relay.
    assert!(s.run.join("ttyup/stdin/ttyup-reader-1.sock").exists());
    let mut attach = s
        .cmd(&["attach", "reader"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut input = attach.stdin.take().unwrap();
        input.write_all(b"hello\n").unwrap();
    }
    support::eventually(std::time::Duration::from_secs(10), "the typed line", || {
        s.ok(&["logs", "reader"]).contains("GOT-hello")
    });
    let _ = attach.wait();
    assert!(!s.ok(&["logs", "reader"]).contains("GOT-EOF"));
    s.down_and_check();
}

#[test]
fn sctp_ports_are_refused_before_anything_is_created() {
    let s = Stack::new(
        "sctpport",
        74,
        &format!(
            r#"
services:
  app:
    image: {IMAGE}
    command: ["sleep", "1000"]
    ports:
      - "127.0.0.1:19132:9132/sctp"
"#
        ),
    );
    refused(&s, &["service app", "ports[0]", "sctp", "not supported"]);
}

#[test]
fn up_warns_once_about_each_ignored_attribute_with_file_and_line() {
    let s = Stack::new(
        "ignoredkeys",
        75,
        &format!(
            r#"services:
  app:
    image: {IMAGE}
    command: ["sleep", "1000"]
    mem_swappiness: 10
    cgroup_parent: custom
networks:
  default:
    driver_opts:
      com.docker.network.bridge.enable_ip_masquerade: "false"
      com.docker.network.driver.mtu: "1400"
"#
        ),
    );
    let out = s.rc(&["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    let file = s.dir.join("compose.yaml").display().to_string();
    for want in [
        format!("{file}:5: services.app.mem_swappiness is ignored"),
        format!("{file}:6: services.app.cgroup_parent is ignored"),
        format!(
            "{file}:9: networks.default.driver_opts.com.docker.network.bridge.enable_ip_masquerade is ignored"
        ),
    ] {
        assert_eq!(err.matches(&want).count(), 1, "want {want:?} once in:\n{err}");
    }
    assert!(!err.contains("driver.mtu is ignored"), "{err}");
    // The MTU was applied to the bridge.
    let net = s.ok(&["network", "inspect", "ignoredkeys_default"]);
    let net: serde_json::Value = serde_json::from_str(&net).unwrap();
    let bridge = net[0]["Options"]["com.docker.network.bridge.name"]
        .as_str()
        .unwrap()
        .to_string();
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{bridge}/mtu")).unwrap_or_default();
    assert_eq!(mtu.trim(), "1400", "bridge {bridge:?} in {net}");
    s.down_and_check();
}

#[test]
fn pull_policy_daily_pulls_again_only_an_image_older_than_a_day() {
    let s = Stack::new(
        "pulldaily",
        76,
        &format!(
            r#"
services:
  app:
    image: {IMAGE}
    pull_policy: daily
    command: ["sleep", "1000"]
  weekly:
    image: {IMAGE}
    pull_policy: every_2h
    command: ["sleep", "1000"]
"#
        ),
    );
    // Just imported: fresh, no pull planned.
    let plan = s.ok(&["--dry-run", "up", "-d"]);
    assert!(!plan.contains("pull image"), "{plan}");
    // Pulled two days ago (the store's record of the last pull): a new pull is planned.
    let names = s.root.join("images/names.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&names).unwrap()).unwrap();
    let two_days_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 2 * 24 * 3600;
    for e in v.as_object_mut().unwrap().values_mut() {
        e["pulled_at"] = two_days_ago.into();
    }
    std::fs::write(&names, serde_json::to_vec(&v).unwrap()).unwrap();
    let plan = s.ok(&["--dry-run", "up", "-d"]);
    assert_eq!(plan.matches("pull image").count(), 1, "{plan}");
    assert!(
        plan.contains("last pulled longer ago than pull_policy"),
        "{plan}"
    );
    s.assert_no_leaks();
}

#[test]
fn volume_driver_opts_bind_a_host_folder_or_mount_a_tmpfs() {
    let s = Stack::new(
        "voldriver",
        81,
        &format!(
            r#"
services:
  app:
    image: {IMAGE}
    init: true
    command: ["sleep", "1000"]
    volumes:
      - hostdata:/data
      - scratch:/scratch
volumes:
  hostdata:
    driver_opts:
      type: none
      o: bind
      device: ./host-folder
  scratch:
    driver_opts:
      type: tmpfs
      device: tmpfs
      o: size=8m
"#
        ),
    );
    let host = s.dir.join("host-folder");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("from-host"), "hello\n").unwrap();
    let out = s.rc(&["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("driver_opts is ignored"), "{err}");
    assert_eq!(
        s.ok(&["exec", "-T", "app", "cat", "/data/from-host"]),
        "hello\n"
    );
    s.ok(&[
        "exec",
        "-T",
        "app",
        "sh",
        "-c",
        "echo back > /data/from-container",
    ]);
    assert_eq!(
        std::fs::read_to_string(host.join("from-container")).unwrap(),
        "back\n"
    );
    let mounts = s.ok(&["exec", "-T", "app", "cat", "/proc/mounts"]);
    let scratch = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some("/scratch"))
        .unwrap_or_else(|| panic!("no /scratch mount in:\n{mounts}"));
    assert!(
        scratch.starts_with("tmpfs ") && scratch.contains("size=8192k"),
        "{scratch}"
    );
    s.down_and_check();
    // The bound folder is the user's: down -v leaves it (and its files) alone.
    assert!(host.join("from-host").exists());
}

#[test]
fn a_platform_the_image_does_not_have_is_refused() {
    let s = Stack::new(
        "platformno",
        82,
        &format!(
            r#"
services:
  app:
    image: {IMAGE}
    platform: linux/s390x
    command: ["sleep", "1000"]
"#
        ),
    );
    refused(
        &s,
        &["service app", "platform linux/s390x", "does not match"],
    );
}

#[test]
fn a_container_name_another_project_uses_is_refused() {
    let s = Stack::new(
        "nametaken",
        83,
        &format!(
            r#"
services:
  app:
    image: {IMAGE}
    container_name: shared-name
    network_mode: none
    command: ["sleep", "1000"]
"#
        ),
    );
    s.ok(&["up", "-d"]);
    let other_dir = s.tmp.path().join("second");
    std::fs::create_dir_all(&other_dir).unwrap();
    std::fs::write(
        other_dir.join("compose.yaml"),
        format!(
            "services:\n  web:\n    image: {IMAGE}\n    container_name: shared-name\n    \
             network_mode: none\n    command: [\"sleep\", \"1000\"]\n"
        ),
    )
    .unwrap();
    let second = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_rcompose"))
            .args(["-p", "secondproj"])
            .args(args)
            .current_dir(&other_dir)
            .env("RCOMPOSE_ROOT", &s.root)
            .env("RCOMPOSE_RUN", &s.run)
            .env("COMPOSE_PROGRESS", "plain")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    // Brought down even if an assertion fails.
    struct Down<'a>(&'a dyn Fn(&[&str]) -> std::process::Output);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["down", "-t", "0"]);
        }
    }
    let _guard = Down(&second);
    let out = second(&["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "second up accepted it: {err}");
    assert!(
        err.contains("shared-name") && err.contains("already in use") && err.contains("nametaken"),
        "{err}"
    );
    s.down_and_check();
}
