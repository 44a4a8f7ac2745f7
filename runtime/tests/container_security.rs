//! Privileged tests of the security defaults (Docker's): capabilities, privileged,
//! no-new-privileges, seccomp, sysctls, devices, and the escape set that must fail from an
//! unprivileged container.

mod container_support;

use std::os::unix::fs::MetadataExt;

use container_support::Harness;
use runtime::container::{DeviceSpec, ExitStatus};

fn status_field(text: &str, field: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:\t")))
        .unwrap_or_else(|| panic!("{field} missing"))
        .trim()
        .to_string()
}

fn run_status(h: &Harness, spec: runtime::container::ContainerSpec) -> String {
    let (c, out, _err) = h.create(&spec);
    c.start().unwrap();
    runtime::container::wait(c.pid).unwrap();
    c.remove().unwrap();
    out.join().unwrap()
}

#[test]
fn default_capabilities_seccomp_and_no_new_privs() {
    let h = Harness::new();
    let out = run_status(&h, h.spec("caps", &["cat", "/proc/self/status"]));
    assert_eq!(
        status_field(&out, "CapEff"),
        "00000000a80425fb",
        "Docker's default set"
    );
    assert_eq!(status_field(&out, "CapBnd"), "00000000a80425fb");
    assert_eq!(status_field(&out, "CapInh"), "0000000000000000");
    assert_eq!(status_field(&out, "Seccomp"), "2");
    assert_eq!(status_field(&out, "NoNewPrivs"), "0");

    let mut spec = h.spec("nnp", &["cat", "/proc/self/status"]);
    spec.security.no_new_privileges = true;
    spec.security.seccomp_unconfined = true;
    let out = run_status(&h, spec);
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
    assert_eq!(status_field(&out, "Seccomp"), "0");

    let mut spec = h.spec("user", &["cat", "/proc/self/status"]);
    spec.process.user = Some("app".into());
    let out = run_status(&h, spec);
    assert_eq!(
        status_field(&out, "CapEff"),
        "0000000000000000",
        "a non-root user has no capabilities"
    );
}

#[test]
fn cap_drop_all_cap_add_and_privileged() {
    let h = Harness::new();
    let mut spec = h.spec("capadd", &["cat", "/proc/self/status"]);
    spec.security.cap_drop = vec!["ALL".into()];
    spec.security.cap_add = vec!["NET_ADMIN".into(), "chown".into()];
    let out = run_status(&h, spec);
    assert_eq!(
        status_field(&out, "CapEff"),
        format!("{:016x}", (1u64 << 12) | 1)
    );

    let mut spec = h.spec("priv", &["sh", "-c", "grep -E '^(CapEff|Seccomp):' /proc/self/status; mount -t tmpfs none /tmp && echo mounted"]);
    spec.security.privileged = true;
    let out = run_status(&h, spec);
    let all: u64 = caps::read(None, caps::CapSet::Bounding)
        .unwrap()
        .iter()
        .map(|c| 1u64 << c.index())
        .sum();
    assert!(out.contains(&format!("CapEff:\t{all:016x}")), "{out}");
    assert!(
        out.contains("Seccomp:\t0") && out.contains("mounted"),
        "{out}"
    );
}

#[test]
fn escapes_fail_from_an_unprivileged_container() {
    let h = Harness::new();
    let vda = std::fs::metadata("/dev/vda")
        .or_else(|_| std::fs::metadata("/dev/sda"))
        .expect("a host block device");
    let (major, minor) = (
        nix::sys::stat::major(vda.rdev()),
        nix::sys::stat::minor(vda.rdev()),
    );
    let host_pid = std::process::id();
    let script = format!(concat!(
        "mount -t tmpfs none /mnt 2>/dev/null && echo MOUNTED || echo mount-denied; ",
        "echo 3 > /proc/sys/vm/drop_caches 2>/dev/null && echo PROCSYS || echo procsys-denied; ",
        "echo 1 > /sys/kernel/profiling 2>/dev/null && echo SYS || echo sys-denied; ",
        "kill -0 {host_pid} 2>/dev/null && echo HOSTPID || echo hostpid-invisible; ",
        "n=$(ls /proc | grep -c '^[0-9]'); [ $n -le 4 ] && echo only-own-processes || echo \"$n processes\"; ",
        "printf 'x' > /tmp/m.ko; insmod /tmp/m.ko 2>/dev/null && echo MODULE || echo module-denied; ",
        "mknod /tmp/disk b {major} {minor} && (head -c 1 /tmp/disk >/dev/null 2>&1 && echo DISK || echo disk-denied); ",
        "unshare -m true 2>/dev/null && echo UNSHARE || echo unshare-denied; ",
        "nsenter -t 1 -m true 2>/dev/null && echo NSENTER || echo nsenter-denied; ",
        "cat /proc/1/environ > /dev/null && echo own-pid1-ok"
    ), host_pid = host_pid, major = major, minor = minor);
    let out = h.run(&h.spec("escape", &["sh", "-c", &script]));
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        vec![
            "mount-denied",
            "procsys-denied",
            "sys-denied",
            "hostpid-invisible",
            "only-own-processes",
            "module-denied",
            "disk-denied",
            "unshare-denied",
            "nsenter-denied",
            "own-pid1-ok"
        ],
        "stderr: {}",
        out.stderr
    );
}

#[test]
fn namespaced_sysctls_and_devices() {
    let h = Harness::new();
    let host_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let mut spec = h.spec(
        "sysctl",
        &[
            "sh",
            "-c",
            "cat /proc/sys/net/ipv4/ip_forward; head -c 4 /dev/myzero | od -An -tx1",
        ],
    );
    spec.security
        .sysctls
        .insert("net.ipv4.ip_forward".into(), "1".into());
    spec.security.devices = vec![DeviceSpec {
        host_path: "/dev/zero".into(),
        container_path: "/dev/myzero".into(),
        permissions: "rwm".into(),
    }];
    let out = h.run(&spec);
    assert_eq!(out.status, ExitStatus::Code(0), "{}", out.stderr);
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        vec!["1", "00", "00", "00", "00"]
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_fwd,
        "the host's sysctl changed"
    );
}
