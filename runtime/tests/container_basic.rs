//! Privileged tests of the container lifecycle: create, start, exit status, output.

mod container_support;

use container_support::Harness;
use runtime::container::ExitStatus;

#[test]
fn busybox_echo_runs_in_a_container() {
    let h = Harness::new();
    let spec = h.spec("echo", &["echo", "hello from rcompose"]);
    let out = h.run(&spec);
    assert_eq!(out.status, ExitStatus::Code(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "hello from rcompose\n");
}

#[test]
fn output_is_logged_as_json_lines() {
    use runtime::container::logs::{read_logs, LogOptions, LogWriter, Stream};
    use std::io::Read;
    let h = Harness::new();
    let spec = h.spec(
        "logs",
        &["sh", "-c", "echo out-1; echo err-1 >&2; echo out-2"],
    );
    let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let c = h
        .runtime
        .create(
            &spec,
            runtime::container::Stdio {
                stdin: None,
                stdout: out_w,
                stderr: err_w,
            },
        )
        .unwrap();
    c.start().unwrap();
    assert_eq!(
        runtime::container::wait(c.pid).unwrap(),
        ExitStatus::Code(0)
    );
    let path = spec.state_dir.with_extension("log");
    let mut w = LogWriter::open(
        &path,
        LogOptions {
            max_size: Some(1 << 20),
            max_file: 2,
        },
    )
    .unwrap();
    for (fd, stream) in [(out_r, Stream::Stdout), (err_r, Stream::Stderr)] {
        let mut buf = Vec::new();
        std::fs::File::from(fd).read_to_end(&mut buf).unwrap();
        w.write(stream, &buf).unwrap();
    }
    w.flush_partial().unwrap();
    c.remove().unwrap();
    let entries = read_logs(&path).unwrap();
    let got: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.log.as_str(), e.stream.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("out-1\n", "stdout"),
            ("out-2\n", "stdout"),
            ("err-1\n", "stderr")
        ]
    );
    assert!(
        entries
            .iter()
            .all(|e| e.time.ends_with('Z') && e.time.len() == 30),
        "{entries:?}"
    );
}

#[test]
fn cleanup_from_the_state_folder_alone_removes_a_running_container() {
    let h = Harness::new();
    let spec = h.spec("crash", &["sh", "-c", "sleep 100 & sleep 100; true"]);
    let (c, _out, _err) = h.create(&spec);
    c.start().unwrap();
    assert!(container_support::eventually(
        std::time::Duration::from_secs(5),
        || c.processes().unwrap().len() == 3
    ));
    let pid = c.pid;
    // The supervisor "crashed": only the state folder is left.
    drop(c);
    runtime::container::cleanup(&spec.state_dir).unwrap();
    assert!(matches!(
        runtime::container::wait(pid).unwrap(),
        ExitStatus::Signal(9)
    ));
    assert!(!spec.state_dir.exists());
    assert!(h.cgroup_dirs().is_empty(), "{:?}", h.cgroup_dirs());
}
