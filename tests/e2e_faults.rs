//! End-to-end fault scenarios: the supervisor killed with SIGKILL (after `up`, and while `up`
//! is under way), a service that crashes in a loop, and many up/down cycles. `down` must work
//! from the on-disk state alone and leave nothing behind.

mod support;

use std::time::Duration;

use support::{eventually, Stack, IMAGE};

fn compose(body: &str) -> String {
    body.replace("IMAGE", IMAGE)
}

fn kill9(pid: i64) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
}

#[test]
fn down_works_after_the_supervisor_was_killed() {
    let s = Stack::new(
        "killsup",
        20,
        &compose(
            r#"
services:
  a:
    image: IMAGE
    init: true
    command: ["sleep", "1000"]
  b:
    image: IMAGE
    command: ["sleep", "1000"]
    depends_on: [a]
"#,
        ),
    );
    s.ok(&["up", "-d"]);
    let sup = s.state()["supervisor"]["pid"].as_i64().unwrap();
    kill9(sup);
    eventually(Duration::from_secs(5), "the supervisor to die", || {
        !std::path::Path::new(&format!("/proc/{sup}")).exists()
            || std::fs::read_to_string(format!("/proc/{sup}/stat")).is_ok_and(|s| s.contains(") Z"))
    });
    // The containers outlive their supervisor; ps still reports them from the state file.
    let ps = s.ok(&["ps"]);
    assert!(ps.contains("killsup-a-1"), "{ps}");
    s.down_and_check();
}

#[test]
fn down_works_after_the_supervisor_was_killed_during_up() {
    let s = Stack::new(
        "killdup",
        21,
        &compose(
            r#"
services:
  slow:
    image: IMAGE
    init: true
    command: ["sleep", "1000"]
    healthcheck:
      test: ["CMD-SHELL", "exit 1"]
      interval: 100ms
      retries: 1000
  after:
    image: IMAGE
    command: ["sleep", "1000"]
    depends_on:
      slow:
        condition: service_healthy
"#,
        ),
    );
    let mut up = s.cmd(&["up", "-d"]).spawn().unwrap();
    // Kill the supervisor as soon as it records the first container.
    let mut sup = 0;
    eventually(Duration::from_secs(10), "up to create a container", || {
        let Ok(bytes) = std::fs::read(s.state_file()) else {
            return false;
        };
        let Ok(st) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return false;
        };
        sup = st["supervisor"]["pid"].as_i64().unwrap_or(0);
        sup > 0 && st["containers"]["killdup-slow-1"]["status"] == "running"
    });
    kill9(sup);
    let status = up.wait().unwrap();
    assert!(!status.success(), "up must fail when its supervisor dies");
    s.down_and_check();
}

#[test]
fn a_service_that_crashes_in_a_loop_keeps_being_restarted_and_goes_down_cleanly() {
    let s = Stack::new(
        "crashloop",
        22,
        &compose(
            r#"
services:
  crash:
    image: IMAGE
    command: ["sh", "-c", "echo crashing; exit 1"]
    restart: always
"#,
        ),
    );
    s.ok(&["up", "-d"]);
    eventually(Duration::from_secs(15), "three restarts", || {
        s.state()["containers"]["crashloop-crash-1"]["restart_count"]
            .as_u64()
            .unwrap_or(0)
            >= 3
    });
    s.down_and_check();
}

#[test]
fn fifty_up_down_cycles_leave_nothing_behind() {
    let s = Stack::new(
        "cycles",
        23,
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
    depends_on: [a]
"#,
        ),
    );
    for i in 0..50 {
        s.ok(&["up", "-d"]);
        s.ok(&["down", "-t", "1"]);
        if i % 10 == 9 {
            s.assert_no_leaks();
        }
    }
    s.assert_no_leaks();
}

#[test]
fn down_twice_is_fine() {
    let s = Stack::new(
        "downtwice",
        24,
        &compose(
            "services:\n  a:\n    image: IMAGE\n    init: true\n    command: [\"sleep\", \"1000\"]\n",
        ),
    );
    s.ok(&["up", "-d"]);
    s.down_and_check();
    s.down_and_check();
}

#[test]
fn containers_adopted_from_a_killed_supervisor_keep_their_restart_policy() {
    let s = Stack::new(
        "adoptrestart",
        25,
        &compose(
            r#"
services:
  flaky:
    image: IMAGE
    restart: always
    command: ["sh", "-c", "sleep 3; exit 1"]
"#,
        ),
    );
    s.ok(&["up", "-d"]);
    let sup = s.state()["supervisor"]["pid"].as_i64().unwrap();
    kill9(sup);
    eventually(Duration::from_secs(5), "the supervisor to die", || {
        !std::path::Path::new(&format!("/proc/{sup}")).exists()
            || std::fs::read_to_string(format!("/proc/{sup}/stat")).is_ok_and(|s| s.contains(") Z"))
    });
    // A new supervisor adopts the running container (nothing to change)...
    s.ok(&["up", "-d"]);
    let sup2 = s.state()["supervisor"]["pid"].as_i64().unwrap();
    assert_ne!(sup, sup2);
    assert_eq!(
        s.state()["containers"]["adoptrestart-flaky-1"]["restart_count"],
        0
    );
    // ...and when it exits, restarts it as `restart: always` says.
    eventually(
        Duration::from_secs(15),
        "the adopted container restarted",
        || {
            let st = s.state();
            let c = &st["containers"]["adoptrestart-flaky-1"];
            c["restart_count"].as_u64().unwrap_or(0) >= 1 && c["status"] == "running"
        },
    );
    s.down_and_check();
}
