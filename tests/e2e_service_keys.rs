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
