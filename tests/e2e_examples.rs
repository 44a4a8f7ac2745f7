//! The examples run: the README's demo (web front on a published port, API, worker replicas,
//! one-shot migration, healthchecks, named volume) and the two smaller stacks, each brought up
//! with `--wait`, checked through real traffic, and brought down without leaks.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::{eventually, Stack};

fn example(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .join("compose.yaml")
        .display()
        .to_string()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    c.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut body = String::new();
    c.read_to_string(&mut body).ok()?;
    Some(body)
}

fn with_demo_image(s: &Stack) {
    let tar = s.tar.to_str().unwrap();
    s.ok(&["image", "import", tar, "rcompose-demo/busybox:latest"]);
}

#[test]
fn the_readme_demo_serves_the_api_through_the_web_front() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = Stack::new("demo-e2e", 40, "services: {}\n");
    with_demo_image(&s);
    let file = example("demo");
    let mut cmd = s.cmd(&["-f", &file, "up", "-d", "--wait", "--wait-timeout", "60"]);
    let out = cmd.env("DEMO_PORT", port.to_string()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ps = s
        .cmd(&[
            "-f",
            &file,
            "ps",
            "--format",
            "{{.Service}} {{.State}} {{.Health}}",
        ])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert_eq!(
        ps, "api running healthy\nweb running healthy\nworker running \nworker running \n",
        "{ps}"
    );
    let mut body = String::new();
    eventually(
        Duration::from_secs(10),
        "the API through the web front",
        || {
            body = http_get(port, "/cgi-bin/api").unwrap_or_default();
            body.contains(r#"{"status":"ok","schema":"v1"}"#)
        },
    );
    eventually(Duration::from_secs(10), "workers reaching the API", || {
        let logs = s.cmd(&["-f", &file, "logs", "worker"]).output().unwrap();
        String::from_utf8_lossy(&logs.stdout).contains(r#"got {"status":"ok""#)
    });
    let down = s
        .cmd(&["-f", &file, "down", "-v", "-t", "2"])
        .output()
        .unwrap();
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(
        !s.root.join("volumes/demo_data").exists(),
        "-v removes the named volume"
    );
    s.assert_no_leaks();
}

#[test]
fn the_pipeline_example_runs_its_one_shots_in_order() {
    let s = Stack::new("pipeline-e2e", 41, "services: {}\n");
    with_demo_image(&s);
    let file = example("pipeline");
    s.ok(&["-f", &file, "up", "-d", "--wait", "--wait-timeout", "60"]);
    let logs = s.ok(&["-f", &file, "logs", "--no-log-prefix", "transform"]);
    assert_eq!(logs, "sum is 5050\n");
    s.ok(&["-f", &file, "down", "-v", "-t", "1"]);
    s.assert_no_leaks();
}

#[test]
fn the_chat_example_finds_the_hub_by_name() {
    let s = Stack::new("chat-e2e", 42, "services: {}\n");
    with_demo_image(&s);
    let file = example("chat");
    let out = s
        .cmd(&["-f", &file, "up", "-d", "--wait", "--wait-timeout", "60"])
        .env("RCOMPOSE_NETWORK_POOL", "10.213.142.0/24,10.213.143.0/24")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(Duration::from_secs(15), "bots talking to the hub", || {
        let logs = s.cmd(&["-f", &file, "logs", "hub"]).output().unwrap();
        String::from_utf8_lossy(&logs.stdout).contains("hello from")
    });
    s.ok(&["-f", &file, "down", "-v", "-t", "1"]);
    s.assert_no_leaks();
}

#[test]
fn the_build_example_builds_its_image_and_serves_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = Stack::new("build-e2e", 44, "services: {}\n");
    with_demo_image(&s);
    let file = example("build");
    let up = |extra: &[&str]| {
        let mut args = vec![
            "-f",
            file.as_str(),
            "up",
            "-d",
            "--wait",
            "--wait-timeout",
            "60",
        ];
        args.extend_from_slice(extra);
        let out = s
            .cmd(&args)
            .env("BUILD_PORT", port.to_string())
            .env("GREETING", "howdy")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    up(&[]);
    let page = http_get(port, "/").unwrap_or_default();
    assert!(page.contains("howdy from an image"), "{page:?}");
    // The one-shot reached the built service by name once it was healthy.
    eventually(Duration::from_secs(15), "check's output", || {
        s.ok(&["-f", &file, "logs", "--no-log-prefix", "check"]) == "howdy from an image\n"
    });
    // The multi-stage build left only the final stage's files, .dockerignore kept the
    // Dockerfile out, and the image carries the Dockerfile's metadata.
    let inspect = s.ok(&["image", "inspect", "build-example/site:latest"]);
    assert!(inspect.contains("rcompose build example"), "{inspect}");
    let ls = s.ok(&["-f", &file, "exec", "-T", "site", "ls", "/srv/www"]);
    assert_eq!(ls, "index.html\nsize.txt\n");
    // A second `up --build` with nothing changed is all cache hits and keeps the container.
    let before = s.container("build-e2e-site-1").unwrap()["ID"].clone();
    up(&["--build"]);
    assert_eq!(s.container("build-e2e-site-1").unwrap()["ID"], before);
    s.ok(&["-f", &file, "down", "-v", "-t", "1"]);
    s.assert_no_leaks();
}
