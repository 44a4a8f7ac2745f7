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
