//! Privileged tests of the container process: argv, env, working folder, user and groups,
//! hostname, exit codes and signals, `init: true`, descriptor hygiene, and configuration
//! errors that name the service and leave nothing behind.

mod container_support;

use std::path::Path;
use std::time::Duration;

use container_support::{eventually, Harness};
use runtime::container::{shell_form, ExitStatus};

#[test]
fn process_gets_env_cwd_user_groups_and_hostname() {
    let h = Harness::new();
    let mut spec = h.spec("proc", &["sh", "-c", "echo $GREETING; pwd; id -u; id -g; id -G; hostname; cat /proc/sys/kernel/domainname; echo $HOME; echo $PATH"]);
    spec.process.env = vec!["GREETING=hi there".into()];
    spec.process.cwd = Some("/work/dir".into());
    spec.process.user = Some("app".into());
    spec.process.group_add = vec!["root".into()];
    spec.domainname = Some("example.test".into());
    let out = h.run(&spec);
    assert_eq!(out.status, ExitStatus::Code(0), "stderr: {}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        vec![
            "hi there",
            "/work/dir",
            "1000",
            "1000",
            "1000 0 29",
            "proc",
            "example.test",
            "/home/app",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ]
    );
}

#[test]
fn numeric_user_and_group_work_without_passwd_entries() {
    let h = Harness::new();
    let mut spec = h.spec("uid", &["sh", "-c", "id -u; id -g"]);
    spec.process.user = Some("4242:4343".into());
    let out = h.run(&spec);
    assert_eq!(out.stdout, "4242\n4343\n", "stderr: {}", out.stderr);
}

#[test]
fn exit_code_and_signal_are_collected() {
    let h = Harness::new();
    let out = h.run(&h.spec("code", &["sh", "-c", "exit 7"]));
    assert_eq!(out.status, ExitStatus::Code(7));
    // pid 1 cannot SIGKILL itself from inside its namespace; the supervisor can.
    let (c, _out, _err) = h.create(&h.spec("sig", &["sleep", "30"]));
    c.start().unwrap();
    c.kill(libc::SIGKILL).unwrap();
    let status = runtime::container::wait(c.pid).unwrap();
    assert_eq!(status, ExitStatus::Signal(9));
    assert_eq!(status.code(), 137);
    c.remove().unwrap();
}

#[test]
fn no_helper_descriptor_leaks_into_the_container() {
    let h = Harness::new();
    // ls opens the folder itself (fd 3); nothing else may be open.
    let out = h.run(&h.spec("fds", &["ls", "/proc/self/fd"]));
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        vec!["0", "1", "2", "3"],
        "stderr: {}",
        out.stderr
    );
}

#[test]
fn init_true_reaps_and_forwards_signals() {
    let h = Harness::new();
    let mut spec = h.spec(
        "init",
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 3' TERM; echo ready; while true; do sleep 0.05; done",
        ],
    );
    spec.init = true;
    let (c, out, _err) = h.create(&spec);
    c.start().unwrap();
    // pid 1 is the init (our helper binary), the shell is its child; a third process (the
    // loop's sleep) means the shell's trap is in place.
    assert!(eventually(Duration::from_secs(5), || c
        .processes()
        .unwrap()
        .len()
        >= 3));
    let pid1_cmd = std::fs::read_to_string(format!("/proc/{}/cmdline", c.pid)).unwrap();
    assert!(
        pid1_cmd.contains("rcompose-helper"),
        "pid 1 is {pid1_cmd:?}"
    );
    c.kill(libc::SIGTERM).unwrap();
    let status = runtime::container::wait(c.pid).unwrap();
    assert_eq!(status, ExitStatus::Code(3));
    c.remove().unwrap();
    let stdout = out.join().unwrap();
    assert_eq!(stdout, "ready\ngot-term\n");
}

#[test]
fn missing_user_is_a_clear_error_and_leaves_nothing() {
    let h = Harness::new();
    let mut spec = h.spec("nouser", &["true"]);
    spec.process.user = Some("ghost".into());
    let err = h
        .runtime
        .create(&spec, container_support::Capture::new().stdio)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("service nouser") && err.contains("\"ghost\""),
        "{err}"
    );
    assert!(!spec.state_dir.exists());
    assert!(h.leaks().is_empty(), "{:?}", h.leaks());
}

#[test]
fn missing_binary_is_a_clear_error() {
    let h = Harness::new();
    let spec = h.spec("nobin", &["no-such-binary"]);
    let err = h
        .runtime
        .create(&spec, container_support::Capture::new().stdio)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("service nobin") && err.contains("no-such-binary"),
        "{err}"
    );
    assert!(h.leaks().is_empty(), "{:?}", h.leaks());
}

#[test]
fn unknown_capability_and_high_ulimit_are_clear_errors() {
    let h = Harness::new();
    let mut spec = h.spec("badcap", &["true"]);
    spec.security.cap_add = vec!["CAP_TELEPORT".into()];
    let err = h
        .runtime
        .create(&spec, container_support::Capture::new().stdio)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("service badcap") && err.contains("CAP_TELEPORT"),
        "{err}"
    );

    let mut spec = h.spec("ulimit", &["true"]);
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    spec.security
        .ulimits
        .insert("nofile".into(), (1024, hard + 1));
    let err = h
        .runtime
        .create(&spec, container_support::Capture::new().stdio)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("service ulimit") && err.contains("nofile") && err.contains("hard limit"),
        "{err}"
    );
    assert!(h.leaks().is_empty(), "{:?}", h.leaks());
}

#[test]
fn ulimits_within_the_hard_limit_apply() {
    let h = Harness::new();
    let mut spec = h.spec("ulimitok", &["sh", "-c", "ulimit -n; ulimit -Hn"]);
    spec.security.ulimits.insert("nofile".into(), (512, 1024));
    let out = h.run(&spec);
    assert_eq!(out.stdout, "512\n1024\n", "stderr: {}", out.stderr);
}

#[test]
fn exec_joins_namespaces_cgroup_and_user() {
    let h = Harness::new();
    let spec = h.spec(
        "exec",
        &[
            "sh",
            "-c",
            "echo started > /tmp/marker; while true; do sleep 0.05; done",
        ],
    );
    let (c, _out, _err) = h.create(&spec);
    c.start().unwrap();
    let marker = spec.state_dir.join("upper/tmp/marker");
    assert!(eventually(Duration::from_secs(5), || marker.exists()));
    let cap = container_support::Capture::new();
    let (stdio, out, err) = cap.split();
    let exec = runtime::container::ExecSpec {
        process: runtime::container::ProcessSpec {
            args: shell_form("cat /tmp/marker; hostname; id -u; pwd; echo $X; ps -o pid | wc -l; grep -c ':memory:/$' /proc/self/cgroup"),
            env: vec!["X=exec-env".into()],
            cwd: Some("/tmp".into()),
            user: Some("app".into()),
            ..Default::default()
        },
        privileged: false,
    };
    let p = c.exec(&h.runtime, &exec, stdio).unwrap();
    let status = runtime::container::wait(p.pid).unwrap();
    let (stdout, stderr) = container_support::Capture::finish(out, err);
    assert_eq!(status, ExitStatus::Code(0), "stderr: {stderr}");
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    // ps sees pid 1, the sleep loop's child maybe, sh, ps, wc: only container processes.
    assert_eq!(
        &lines[..5],
        &["started", "exec", "1000", "/tmp", "exec-env"]
    );
    // In the container's cgroup (the root of its cgroup namespace).
    assert_eq!(lines[6], "1", "{stdout}");
    let procs: usize = lines[5].parse().unwrap();
    assert!((4..=7).contains(&procs), "{stdout}");
    // A shell as pid 1 has no SIGTERM handler, so the kernel ignores it: stop escalates to
    // SIGKILL after the grace period, as Docker does.
    let t = std::time::Instant::now();
    c.stop(Duration::from_millis(300)).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(c.processes().unwrap().iter().all(|p| *p == c.pid));
    let st = runtime::container::wait(c.pid).unwrap();
    assert_eq!(st, ExitStatus::Signal(libc::SIGKILL));
    c.remove().unwrap();
}

#[test]
fn stop_uses_the_stop_signal() {
    let h = Harness::new();
    let mut spec = h.spec(
        "stopsig",
        &[
            "sh",
            "-c",
            "trap 'echo got-usr1; exit 5' USR1; while true; do sleep 0.05; done",
        ],
    );
    spec.stop_signal = Some(libc::SIGUSR1);
    let (c, out, _err) = h.create(&spec);
    c.start().unwrap();
    assert!(eventually(Duration::from_secs(5), || c
        .processes()
        .unwrap()
        .len()
        >= 2));
    c.stop(Duration::from_secs(5)).unwrap();
    assert_eq!(
        runtime::container::wait(c.pid).unwrap(),
        ExitStatus::Code(5)
    );
    c.remove().unwrap();
    assert_eq!(out.join().unwrap(), "got-usr1\n");
}

#[test]
fn oom_score_adj_and_oom_kill_disable_apply() {
    let h = Harness::new();
    let mut spec = h.spec(
        "oomadj",
        &["sh", "-c", "cat /proc/self/oom_score_adj; sleep 30"],
    );
    spec.oom_score_adj = Some(321);
    spec.resources.memory = Some(64 << 20);
    spec.resources.oom_kill_disable = true;
    let (c, out, _err) = h.create(&spec);
    let rel = runtime::container::cgroups::relative_path(&h.runtime.state_root, "oomadj");
    let control = std::fs::read_to_string(
        Path::new("/sys/fs/cgroup/memory")
            .join(rel)
            .join("memory.oom_control"),
    )
    .unwrap();
    assert!(control.contains("oom_kill_disable 1"), "{control}");
    c.start().unwrap();
    c.stop(std::time::Duration::from_millis(100)).unwrap();
    runtime::container::wait(c.pid).unwrap();
    c.remove().unwrap();
    assert_eq!(out.join().unwrap(), "321\n");
}
