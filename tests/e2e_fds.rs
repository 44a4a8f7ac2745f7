//! Descriptor hygiene of detached processes: a descriptor the caller of `rcompose up -d`
//! leaves inheritable (as `flock LOCK cargo nextest ...` does with the lock) must reach
//! neither the detached supervisor nor a container; the supervisor runs in its own session
//! in `/`.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{eventually, Stack};

/// The descriptors of `pid` as (number, target).
fn fds(pid: i64) -> Vec<(i32, PathBuf)> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().parse().ok()?;
            Some((n, std::fs::read_link(e.path()).ok()?))
        })
        .collect()
}

#[test]
fn inherited_descriptor_reaches_neither_supervisor_nor_container() {
    let s = Stack::new(
        "fd_hygiene",
        56,
        "services:\n  sleeper:\n    image: e2e/busybox:latest\n    command: [\"sleep\", \"300\"]\n",
    );
    // A marker file the caller holds open on fd 7 without close-on-exec, through a shell
    // redirection (no unsafe code in the test).
    let marker = s.tmp.path().join("inherited-marker");
    std::fs::write(&marker, "x").unwrap();
    let inner = s.cmd(&["up", "-d"]);
    let mut c = std::process::Command::new("/usr/bin/busybox");
    c.args(["sh", "-c", "exec \"$@\" 7<\"$RC_MARKER\"", "sh"])
        .arg(inner.get_program())
        .args(inner.get_args())
        .env("RC_MARKER", &marker)
        .current_dir(inner.get_current_dir().unwrap())
        .stdin(std::process::Stdio::null());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "up -d: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = s.state();
    let sup = st["supervisor"]["pid"].as_i64().expect("a supervisor pid");
    let held = |pid: i64| -> Vec<String> {
        fds(pid)
            .into_iter()
            .filter(|(_, t)| t == &marker)
            .map(|(n, t)| format!("fd {n} -> {}", t.display()))
            .collect()
    };
    let sup_fds = fds(sup);
    assert!(
        held(sup).is_empty(),
        "the supervisor inherited: {:?}",
        held(sup)
    );
    // Its stdio: /dev/null in, the log out; the rest are its own (socket, lock, memfd, ...),
    // none of them the caller's.
    let target = |n: i32| sup_fds.iter().find(|(m, _)| *m == n).map(|(_, t)| t);
    assert_eq!(
        target(0).map(PathBuf::as_path),
        Some(Path::new("/dev/null"))
    );
    assert!(
        target(1).is_some_and(|t| t.ends_with("supervisor.log")),
        "stdout: {:?}",
        target(1)
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{sup}/cwd")).unwrap(),
        Path::new("/")
    );
    let stat = std::fs::read_to_string(format!("/proc/{sup}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let sid: i64 = after_comm.split(' ').nth(3).unwrap().parse().unwrap();
    assert_eq!(sid, sup, "the supervisor leads its own session");
    // The container: only stdio, none of it the marker.
    // Once it runs its command: before the exec the pid is still the runtime's helper, which
    // holds its own descriptors.
    let mut pid = 0;
    eventually(
        Duration::from_secs(10),
        "the container running sleep",
        || {
            pid = s.state()["containers"]["fd-hygiene-sleeper-1"]["pid"]
                .as_i64()
                .unwrap_or(0);
            pid > 0
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.starts_with(b"sleep\x00300"))
        },
    );
    let cfds = fds(pid);
    assert!(
        cfds.iter().all(|(n, t)| *n <= 2 && t != &marker),
        "container descriptors: {cfds:?}"
    );
    s.down_and_check();
}
