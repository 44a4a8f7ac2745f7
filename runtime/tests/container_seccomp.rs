//! Privileged tests of seccomp: Docker's default profile as an allowlist (calls it does not list
//! fail with EPERM, clone3 with ENOSYS, some calls only with some arguments), everyday busybox
//! commands unaffected, a custom profile in Docker's JSON format, and `seccomp=unconfined`.
//!
//! Raw system calls are made with the host's perl (`syscall`), bound read-only into the busybox
//! root with the host's libraries (Debian's merged /usr: /lib and /lib64 are links into /usr).

mod container_support;

use std::collections::BTreeMap;
use std::path::Path;

use container_support::Harness;
use runtime::container::{ContainerSpec, ExitStatus, MountSpec, SeccompProfileFile};

const PERL: &str = "/usr/bin/perl";

/// x86_64 numbers of the calls probed.
const PROBES: &[(&str, &str)] = &[
    // unshare(CLONE_NEWUTS)
    ("unshare", "syscall(272, 0x04000000)"),
    // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_PROCESS_KEYRING, 0)
    ("keyctl", "syscall(250, 0, -2, 0)"),
    // add_key("user", "k", "v", 1, KEY_SPEC_PROCESS_KEYRING)
    ("add_key", "syscall(248, $user, $k, $v, 1, -2)"),
    // mount("none", "/mnt", "tmpfs", 0, 0)
    ("mount", "syscall(165, $none, $mnt, $tmpfs, 0, 0)"),
    // socket(AF_VSOCK, SOCK_STREAM, 0): the one family besides AF_ALG Docker refuses
    ("socket_vsock", "syscall(41, 40, 1, 0)"),
    // socket(AF_INET, SOCK_STREAM, 0)
    ("socket_inet", "syscall(41, 2, 1, 0)"),
    // personality(ADDR_NO_RANDOMIZE) is refused, the query 0xffffffff allowed
    ("personality_set", "syscall(135, 0x0040000)"),
    ("personality_query", "syscall(135, 0xffffffff)"),
    // clone3(NULL, 0): ENOSYS so libc falls back to clone
    ("clone3", "syscall(435, 0, 0)"),
    // ptrace(PTRACE_ATTACH, <host pid>): allowed by the profile, but the pid is not visible
    ("ptrace_host", "syscall(101, 16, HOSTPID, 0, 0)"),
    // getpid: allowed
    ("getpid", "syscall(39)"),
];

/// A spec running perl that prints `name=<errno>` (0 on success) for each probe.
fn probe_spec(h: &Harness, name: &str) -> ContainerSpec {
    assert!(
        Path::new(PERL).exists(),
        "prerequisite missing: {PERL} (Debian perl-base)"
    );
    for d in ["usr", "mnt"] {
        std::fs::create_dir_all(h.layer.join(d)).unwrap();
    }
    for (link, target) in [("lib", "usr/lib"), ("lib64", "usr/lib64")] {
        let _ = std::os::unix::fs::symlink(target, h.layer.join(link));
    }
    // perl hands syscall() pointers to its scalars: string arguments must be variables.
    let vars =
        "$user = 'user'; $k = 'k'; $v = 'v'; $none = 'none'; $mnt = '/mnt'; $tmpfs = 'tmpfs'; ";
    let probes: String = PROBES
        .iter()
        .map(|(n, call)| {
            let call = call.replace("HOSTPID", &std::process::id().to_string());
            format!("$! = 0; $r = {call}; print \"{n}=\", ($r == -1 ? $!+0 : 0), \"\\n\"; ")
        })
        .collect();
    let script = format!("{vars}{probes}");
    let mut spec = h.spec(name, &[PERL, "-e", &script]);
    spec.mounts = vec![MountSpec::Bind {
        source: "/usr".into(),
        target: "/usr".into(),
        read_only: true,
        propagation: None,
        create_host_path: false,
    }];
    spec
}

fn results(h: &Harness, spec: &ContainerSpec) -> BTreeMap<String, i32> {
    let out = h.run(spec);
    assert_eq!(out.status, ExitStatus::Code(0), "{}", out.stderr);
    out.stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

#[test]
fn the_default_profile_refuses_what_docker_refuses() {
    let h = Harness::new();
    let r = results(&h, &probe_spec(&h, "deny"));
    let eperm = libc::EPERM;
    for call in [
        "unshare",
        "keyctl",
        "add_key",
        "mount",
        "socket_vsock",
        "personality_set",
    ] {
        assert_eq!(r[call], eperm, "{call}: {r:?}");
    }
    assert_eq!(r["clone3"], libc::ENOSYS, "{r:?}");
    // Allowed by the profile; a host process is out of reach all the same.
    assert_eq!(r["ptrace_host"], libc::ESRCH, "{r:?}");
    for call in ["socket_inet", "personality_query", "getpid"] {
        assert_eq!(r[call], 0, "{call}: {r:?}");
    }
}

#[test]
fn unconfined_lets_the_calls_through_to_the_kernel() {
    let h = Harness::new();
    let mut spec = probe_spec(&h, "unconfined");
    spec.security.seccomp_unconfined = true;
    let r = results(&h, &spec);
    // keyctl and add_key reach the kernel (success or a key error, never EPERM); unshare and
    // mount still fail: capabilities, not seccomp.
    for call in ["keyctl", "add_key", "personality_set"] {
        assert_ne!(r[call], libc::EPERM, "{call}: {r:?}");
    }
    assert_ne!(r["socket_vsock"], libc::EPERM, "{r:?}");
    assert_ne!(r["clone3"], libc::ENOSYS, "{r:?}");
    assert_eq!(r["unshare"], libc::EPERM, "{r:?}");
}

#[test]
fn everyday_busybox_commands_work_under_the_default_profile() {
    let h = Harness::new();
    std::fs::create_dir_all(h.layer.join("www")).unwrap();
    std::fs::write(h.layer.join("www/index.html"), "hello over loopback\n").unwrap();
    let spec = h.spec(
        "everyday",
        &[
            "sh",
            "-c",
            "set -e; ls / >/dev/null; ps >/dev/null; date >/dev/null; \
             echo a,b | awk -F, '{print $2}'; tar -cf /tmp/t.tar /etc && gzip /tmp/t.tar; \
             find / -xdev -name passwd | head -1; \
             httpd -p 127.0.0.1:8080 -h /www; \
             for i in $(seq 50); do wget -q -O - http://127.0.0.1:8080/index.html 2>/dev/null && break; sleep 0.1; done; \
             sh -c 'exit 3' || echo sub=$?",
        ],
    );
    let out = h.run(&spec);
    assert_eq!(out.status, ExitStatus::Code(0), "{}", out.stderr);
    assert_eq!(
        out.stdout, "b\n/etc/passwd\nhello over loopback\nsub=3\n",
        "{}",
        out.stderr
    );
}

#[test]
fn a_custom_docker_profile_blocks_what_it_lists() {
    let h = Harness::new();
    let json = r#"{
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["keyctl"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}]}
        ]
    }"#;
    let mut spec = probe_spec(&h, "custom");
    spec.security.seccomp_profile = Some(SeccompProfileFile {
        path: "custom.json".into(),
        json: json.into(),
    });
    let r = results(&h, &spec);
    // Listed: refused with the profile's errno (EPERM by default), only for the listed argument.
    assert_eq!(r["keyctl"], libc::EPERM, "{r:?}");
    assert_eq!(r["personality_query"], libc::EPERM, "{r:?}");
    // Not listed: allowed (the profile's default), unlike under Docker's default profile.
    assert_ne!(r["add_key"], libc::EPERM, "{r:?}");
    assert_ne!(r["clone3"], libc::ENOSYS, "{r:?}");

    let mut spec = h.spec(
        "custommkdir",
        &[
            "sh",
            "-c",
            "mkdir /tmp/x 2>&1; echo rc=$?; touch /tmp/y && echo touched",
        ],
    );
    spec.security.seccomp_profile = Some(SeccompProfileFile {
        path: "custom.json".into(),
        json: json.into(),
    });
    let out = h.run(&spec);
    assert!(
        out.stdout.contains("Permission denied") && out.stdout.contains("rc=1"),
        "{out:?}"
    );
    assert!(out.stdout.contains("touched"), "{out:?}");

    // A profile that does not parse fails create with its name.
    let mut spec = h.spec("badprofile", &["true"]);
    spec.security.seccomp_profile = Some(SeccompProfileFile {
        path: "broken.json".into(),
        json: "{\"defaultAction\": 1}".into(),
    });
    let (stdio, _o, _e) = container_support::Capture::new().split();
    let err = h.runtime.create(&spec, stdio).unwrap_err().to_string();
    assert!(err.contains("seccomp profile broken.json"), "{err}");
}
