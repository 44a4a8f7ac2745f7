//! End-to-end: `up` and `down` on real stacks (real namespaces, cgroups, bridges, nftables).
//! Every scenario ends with the leak check: nothing of its state root remains.

mod support;

use std::time::Duration;

use support::{eventually, Stack, IMAGE};

fn compose(body: &str) -> String {
    body.replace("IMAGE", IMAGE)
}

#[test]
fn attached_up_prints_prefixed_logs_and_returns_when_the_stack_exits() {
    let s = Stack::new(
        "attached",
        1,
        &compose(
            r#"
services:
  hello:
    image: IMAGE
    command: ["sh", "-c", "echo hello from hello; echo second line"]
"#,
        ),
    );
    let out = s.rc(&["up", "--no-color"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("hello-1 | hello from hello\n"), "{text}");
    assert!(text.contains("hello-1 | second line\n"), "{text}");
    assert!(text.contains("hello-1 exited with code 0"), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Container attached-hello-1  Started"), "{err}");
    s.down_and_check();
}

#[test]
fn detached_up_runs_under_a_supervisor_and_down_removes_everything() {
    let s = Stack::new(
        "detached",
        2,
        &compose(
            r#"
services:
  sleeper:
    image: IMAGE
    init: true
    command: ["sleep", "1000"]
"#,
        ),
    );
    s.ok(&["up", "-d"]);
    let st = s.state();
    let pid = st["containers"]["detached-sleeper-1"]["pid"]
        .as_i64()
        .unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let sup = st["supervisor"]["pid"]
        .as_i64()
        .expect("a supervisor is recorded");
    assert!(std::path::Path::new(&format!("/proc/{sup}")).exists());
    assert!(s.run.join("detached/supervisor.sock").exists());
    let c = s.container("detached-sleeper-1").unwrap();
    assert_eq!(c["State"], "running");
    assert_eq!(c["Service"], "sleeper");
    s.down_and_check();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let s = Stack::new(
        "dryrun",
        3,
        &compose(
            r#"
services:
  db:
    image: IMAGE
    command: ["sleep", "1"]
  web:
    image: IMAGE
    command: ["sleep", "1"]
    depends_on: [db]
"#,
        ),
    );
    let plan = s.ok(&["up", "--dry-run"]);
    assert_eq!(
        plan,
        "\
1. create network dryrun_default: declared in the compose file, not present
2. create container dryrun-db-1 (after 1): service db replica 1 not present
3. start container dryrun-db-1 (after 2): created by this plan
4. create container dryrun-web-1 (after 1): service web replica 1 not present
5. wait for service db started (after 3): web depends on db (service_started)
6. start container dryrun-web-1 (after 4, 5): created by this plan
"
    );
    assert!(!s.state_file().exists());
    s.assert_no_leaks();
}

#[test]
fn a_second_up_with_nothing_changed_touches_nothing() {
    let s = Stack::new(
        "idempotent",
        4,
        &compose(
            r#"
services:
  a:
    image: IMAGE
    init: true
    command: ["sleep", "1000"]
  once:
    image: IMAGE
    command: ["true"]
"#,
        ),
    );
    s.ok(&["up", "-d", "--wait"]);
    let before = s.state()["containers"]["idempotent-a-1"]["pid"].clone();
    let out = s.rc(&["up", "-d"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("Created") && !err.contains("Started"),
        "{err}"
    );
    assert_eq!(s.state()["containers"]["idempotent-a-1"]["pid"], before);
    assert_eq!(s.ok(&["up", "--dry-run"]), "nothing to do\n");
    s.down_and_check();
}

#[test]
fn a_changed_service_is_recreated_alone() {
    let mut s = Stack::new(
        "recreate",
        5,
        &compose(
            r#"
services:
  a:
    image: IMAGE
    init: true
    command: ["sleep", "1000"]
  b:
    image: IMAGE
    init: true
    command: ["sleep", "1000"]
"#,
        ),
    );
    s.ok(&["up", "-d"]);
    let st = s.state();
    let (a, b) = (
        st["containers"]["recreate-a-1"]["pid"].clone(),
        st["containers"]["recreate-b-1"]["pid"].clone(),
    );
    std::fs::write(
        s.dir.join("compose.yaml"),
        compose(
            r#"
services:
  a:
    image: IMAGE
    init: true
    command: ["sleep", "1000"]
  b:
    image: IMAGE
    init: true
    command: ["sleep", "2000"]
"#,
        ),
    )
    .unwrap();
    let plan = s.ok(&["up", "--dry-run"]);
    assert!(
        plan.contains("1. stop container recreate-b-1: configuration changed"),
        "{plan}"
    );
    s.ok(&["up", "-d"]);
    let st = s.state();
    assert_eq!(st["containers"]["recreate-a-1"]["pid"], a);
    assert_ne!(st["containers"]["recreate-b-1"]["pid"], b);
    let cmd = s.container("recreate-b-1").unwrap()["Command"].clone();
    assert!(cmd.as_str().unwrap().contains("sleep 2000"), "{cmd}");
    s.no_down_on_drop();
    s.down_and_check();
}

#[test]
fn web_must_not_start_before_db_is_healthy_and_finds_it_by_name() {
    let s = Stack::new(
        "healthy",
        6,
        &compose(
            r#"
services:
  db:
    image: IMAGE
    init: true
    command: ["sh", "-c", "sleep 1; mkdir -p /w; echo up > /w/index.html; httpd -f -p 8080 -h /w"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 200ms
      retries: 30
  web:
    image: IMAGE
    command: ["sh", "-c", "wget -q -O - http://db:8080/ && echo REACHED || echo FAILED"]
    depends_on:
      db:
        condition: service_healthy
"#,
        ),
    );
    let out = s.rc(&["up", "-d"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let healthy = err.find("Service db  Healthy").expect("db became healthy");
    let started = err
        .find("Container healthy-web-1  Started")
        .expect("web started");
    assert!(healthy < started, "{err}");
    eventually(Duration::from_secs(10), "web to finish", || {
        s.container("healthy-web-1")
            .is_some_and(|c| c["State"] == "exited")
    });
    let logs = s.ok(&["logs", "--no-log-prefix", "web"]);
    assert!(logs.contains("up\nREACHED"), "{logs}");
    assert_eq!(s.container("healthy-db-1").unwrap()["Health"], "healthy");
    s.down_and_check();
}

#[test]
fn a_failed_dependency_stops_its_dependents_with_an_error_that_says_why() {
    let s = Stack::new(
        "depfail",
        7,
        &compose(
            r#"
services:
  migrate:
    image: IMAGE
    command: ["sh", "-c", "exit 3"]
  app:
    image: IMAGE
    command: ["sleep", "1"]
    depends_on:
      migrate:
        condition: service_completed_successfully
"#,
        ),
    );
    let out = s.rc(&["up", "-d"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("service migrate did not become completed successfully: container depfail-migrate-1 exited with code 3"),
        "{err}"
    );
    assert!(err.contains("start container depfail-app-1: not done because wait for service migrate completed successfully failed"), "{err}");
    let app = s.container("depfail-app-1").unwrap();
    assert_eq!(app["State"], "created");
    s.down_and_check();
}

#[test]
fn replicas_are_numbered_and_scaling_down_removes_the_highest() {
    let s = Stack::new(
        "replicas",
        8,
        &compose(
            r#"
services:
  worker:
    image: IMAGE
    init: true
    command: ["sleep", "1000"]
    deploy:
      replicas: 3
"#,
        ),
    );
    s.ok(&["up", "-d"]);
    let names: Vec<String> = s
        .ps()
        .iter()
        .map(|c| c["Name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "replicas-worker-1",
            "replicas-worker-2",
            "replicas-worker-3"
        ]
    );
    s.ok(&["up", "-d", "--scale", "worker=1"]);
    let names: Vec<String> = s
        .ps()
        .iter()
        .map(|c| c["Name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["replicas-worker-1"]);
    s.down_and_check();
}

#[test]
fn on_failure_restarts_up_to_its_maximum() {
    let s = Stack::new(
        "onfailure",
        9,
        &compose(
            r#"
services:
  flaky:
    image: IMAGE
    command: ["sh", "-c", "echo attempt; exit 2"]
    restart: on-failure:2
"#,
        ),
    );
    s.ok(&["up", "-d"]);
    eventually(Duration::from_secs(10), "two restarts then exited", || {
        let st = s.state();
        let c = &st["containers"]["onfailure-flaky-1"];
        c["restart_count"] == 2 && c["status"] == "exited"
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        s.state()["containers"]["onfailure-flaky-1"]["restart_count"],
        2
    );
    let logs = s.ok(&["logs", "--no-log-prefix", "flaky"]);
    assert_eq!(logs.matches("attempt").count(), 3, "{logs}");
    assert!(s.ps()[0]["Status"]
        .as_str()
        .unwrap()
        .starts_with("Exited (2)"));
    s.down_and_check();
}

#[test]
fn wait_fails_when_a_healthcheck_never_passes() {
    let s = Stack::new(
        "neverhealthy",
        10,
        &compose(
            r#"
services:
  sick:
    image: IMAGE
    init: true
    command: ["sleep", "1000"]
    healthcheck:
      test: ["CMD-SHELL", "exit 1"]
      interval: 200ms
      retries: 2
"#,
        ),
    );
    let out = s.rc(&["up", "-d", "--wait", "--wait-timeout", "20"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("container neverhealthy-sick-1 is unhealthy"),
        "{err}"
    );
    assert_eq!(
        s.container("neverhealthy-sick-1").unwrap()["Health"],
        "unhealthy"
    );
    let ps = s.ok(&["ps"]);
    assert!(ps.contains("(unhealthy)"), "{ps}");
    s.down_and_check();
}

#[test]
fn a_published_port_serves_http_on_loopback() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = Stack::new(
        "ports",
        11,
        &compose(&format!(
            r#"
services:
  web:
    image: IMAGE
    init: true
    command: ["sh", "-c", "mkdir -p /w; echo published > /w/index.html; httpd -f -p 80 -h /w"]
    ports:
      - "127.0.0.1:{port}:80"
"#
        )),
    );
    s.ok(&["up", "-d"]);
    assert_eq!(
        s.ok(&["port", "web", "80"]).trim(),
        format!("127.0.0.1:{port}")
    );
    let mut body = String::new();
    eventually(
        Duration::from_secs(10),
        "http through the published port",
        || {
            use std::io::{Read, Write};
            let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                return false;
            };
            let _ = c.write_all(b"GET / HTTP/1.0\r\n\r\n");
            body.clear();
            let _ = c.read_to_string(&mut body);
            body.contains("published")
        },
    );
    let ps = s.ok(&["ps"]);
    assert!(ps.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");
    s.down_and_check();
}

#[test]
fn orphans_are_reported_and_removed_with_remove_orphans() {
    let s = Stack::new(
        "orphans",
        12,
        &compose(
            r#"
services:
  a:
    image: IMAGE
    init: true
    command: ["sleep", "1000"]
  b:
    image: IMAGE
    init: true
    command: ["sleep", "1000"]
"#,
        ),
    );
    s.ok(&["up", "-d"]);
    std::fs::write(
        s.dir.join("compose.yaml"),
        compose("services:\n  a:\n    image: IMAGE\n    init: true\n    command: [\"sleep\", \"1000\"]\n"),
    )
    .unwrap();
    let out = s.rc(&["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("found orphan containers (orphans-b-1)"),
        "{err}"
    );
    assert!(s.container("orphans-b-1").is_some());
    s.ok(&["up", "-d", "--remove-orphans"]);
    assert!(s.container("orphans-b-1").is_none());
    s.down_and_check();
}

#[test]
fn ctrl_c_stops_an_attached_stack_gracefully() {
    let s = Stack::new(
        "ctrlc",
        13,
        &compose(
            r#"
services:
  svc:
    image: IMAGE
    init: true
    command: ["sh", "-c", "echo started; exec sleep 1000"]
"#,
        ),
    );
    let child = s
        .cmd(&["up", "--no-color"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(10), "the container to run", || {
        std::fs::read(s.state_file())
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|st| st["containers"]["ctrlc-svc-1"]["status"] == "running")
    });
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Gracefully stopping... (press Ctrl+C again to force)"),
        "{err}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("svc-1 | started"), "{text}");
    assert!(text.contains("svc-1 exited with code"), "{text}");
    let st = s.state();
    assert_eq!(st["containers"]["ctrlc-svc-1"]["status"], "exited");
    assert!(
        st["supervisor"].is_null(),
        "the attached supervisor is gone: {st}"
    );
    s.down_and_check();
}

#[test]
fn exit_code_from_stops_the_stack_and_returns_that_code() {
    let s = Stack::new(
        "exitcode",
        14,
        &compose(
            r#"
services:
  server:
    image: IMAGE
    init: true
    command: ["sleep", "1000"]
  test:
    image: IMAGE
    command: ["sh", "-c", "echo testing; exit 5"]
    depends_on: [server]
"#,
        ),
    );
    let out = s.rc(&["up", "--no-color", "--exit-code-from", "test"]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("test-1 exited with code 5"), "{text}");
    assert!(text.contains("Aborting on container exit..."), "{text}");
    assert_eq!(s.container("exitcode-server-1").unwrap()["State"], "exited");
    s.down_and_check();
}

#[test]
fn a_restart_keeps_the_container_filesystem_changes() {
    let s = Stack::new(
        "keepupper",
        26,
        &format!(
            r#"
services:
  app:
    image: {IMAGE}
    init: true
    command: ["sleep", "1000"]
  retry:
    image: {IMAGE}
    restart: on-failure
    command: ["sh", "-c", "if [ -f /marker ]; then echo SECOND-RUN; sleep 1000; else touch /marker; exit 1; fi"]
"#
        ),
    );
    s.ok(&["up", "-d"]);
    s.ok(&["exec", "-T", "app", "sh", "-c", "echo kept > /etc/marker"]);
    s.ok(&["restart", "-t", "1", "app"]);
    assert_eq!(
        s.ok(&["exec", "-T", "app", "cat", "/etc/marker"]).trim(),
        "kept"
    );
    s.ok(&["stop", "-t", "1", "app"]);
    s.ok(&["start", "app"]);
    assert_eq!(
        s.ok(&["exec", "-T", "app", "cat", "/etc/marker"]).trim(),
        "kept"
    );
    // The restart policy brings `retry` back with the file its first run made.
    eventually(Duration::from_secs(10), "retry's second run", || {
        s.ok(&["logs", "retry"]).contains("SECOND-RUN")
    });
    s.down_and_check();
}

#[test]
fn down_rmi_removes_local_or_all_images_but_not_one_another_project_runs() {
    let s = Stack::new(
        "rmidown",
        27,
        &format!(
            r#"
services:
  built:
    build: .
    command: ["sleep", "1000"]
  tagged:
    image: {IMAGE}
    command: ["sleep", "1000"]
"#
        ),
    );
    let images = || s.ok(&["image", "ls"]);
    s.ok(&["image", "import", s.tar.to_str().unwrap(), "rmidown-built"]);
    s.ok(&["up", "-d"]);
    // local: only the image without a custom tag.
    s.ok(&["down", "-t", "1", "--rmi", "local"]);
    let ls = images();
    assert!(!ls.contains("rmidown-built"), "{ls}");
    assert!(ls.contains("e2e/busybox"), "{ls}");
    s.assert_no_leaks();

    // all: every image, except one a container of another project still runs.
    s.ok(&["image", "import", s.tar.to_str().unwrap(), "rmidown-built"]);
    let other_dir = s.tmp.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    std::fs::write(
        other_dir.join("compose.yaml"),
        // Its own subnet (10.213.128.0/24: pool number 28, kept free for this): the test's
        // pool holds one network.
        format!(
            "services:\n  keep:\n    image: {IMAGE}\n    command: [\"sleep\", \"1000\"]\n\
             networks:\n  default:\n    ipam:\n      config:\n        - subnet: 10.213.128.0/24\n"
        ),
    )
    .unwrap();
    let other = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rcompose"))
            .args(["-p", "rmiother"])
            .args(args)
            .current_dir(&other_dir)
            .env("RCOMPOSE_ROOT", &s.root)
            .env("RCOMPOSE_RUN", &s.run)
            .env("RCOMPOSE_NETWORK_POOL", &s.pool)
            .env("COMPOSE_PROGRESS", "plain")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // The other project goes down even when an assertion fails (its supervisor must not
    // outlive the test).
    struct OtherDown<'a>(&'a dyn Fn(&[&str]));
    impl Drop for OtherDown<'_> {
        fn drop(&mut self) {
            (self.0)(&["down", "-t", "0"]);
        }
    }
    let other_down = |args: &[&str]| {
        let _ = std::process::Command::new(env!("CARGO_BIN_EXE_rcompose"))
            .args(["-p", "rmiother"])
            .args(args)
            .current_dir(&other_dir)
            .env("RCOMPOSE_ROOT", &s.root)
            .env("RCOMPOSE_RUN", &s.run)
            .stdin(std::process::Stdio::null())
            .output();
    };
    let _guard = OtherDown(&other_down);
    other(&["up", "-d"]);
    s.ok(&["up", "-d"]);
    let out = s.rc(&["down", "-t", "1", "--rmi", "all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ls = images();
    assert!(!ls.contains("rmidown-built"), "{ls}");
    assert!(ls.contains("e2e/busybox"), "kept for rmiother: {ls}");
    other(&["down", "-t", "1"]);
    s.assert_no_leaks();
}
