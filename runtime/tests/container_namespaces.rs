//! Privileged tests of namespace choices: new namespaces by default, `pid: host`, `ipc: host`,
//! joining another container's ipc namespace, joining a pinned network namespace, `network_mode:
//! host`, a tty as controlling terminal, and the sealed helper (CVE-2019-5736).

mod container_support;

use std::time::Duration;

use container_support::{eventually, Harness};
use runtime::container::{ExitStatus, NetMode, ShareMode, Stdio};

fn ns(pid: u32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn every_namespace_is_new_by_default() {
    let h = Harness::new();
    let (c, _o, _e) = h.create(&h.spec("newns", &["sleep", "30"]));
    let me = std::process::id();
    for kind in ["pid", "mnt", "uts", "ipc", "net", "cgroup"] {
        let kind_for_child = if kind == "pid" {
            "pid_for_children"
        } else {
            kind
        };
        assert_ne!(
            ns(c.pid as u32, kind),
            ns(me, kind_for_child),
            "{kind} namespace shared with the host"
        );
    }
    // Nothing but loopback in a new network namespace.
    c.start().unwrap();
    let (stdio, out, err) = container_support::Capture::new().split();
    let exec = runtime::container::ExecSpec {
        process: runtime::container::ProcessSpec {
            args: vec!["ls".into(), "/sys/class/net".into()],
            ..Default::default()
        },
        privileged: false,
    };
    let p = c.exec(&h.runtime, &exec, stdio).unwrap();
    runtime::container::wait(p.pid).unwrap();
    assert_eq!(container_support::Capture::finish(out, err).0, "lo\n");
    c.kill(libc::SIGKILL).unwrap();
    runtime::container::wait(c.pid).unwrap();
    c.remove().unwrap();
}

#[test]
fn pid_and_ipc_host_share_the_host_namespaces() {
    let h = Harness::new();
    let mut spec = h.spec(
        "hostns",
        &[
            "sh",
            "-c",
            &format!("kill -0 {} && echo sees-host", std::process::id()),
        ],
    );
    spec.namespaces.pid = ShareMode::Host;
    spec.namespaces.ipc = ShareMode::Host;
    let (c, out, _e) = h.create(&spec);
    let me = std::process::id();
    assert_eq!(ns(c.pid as u32, "pid"), ns(me, "pid"));
    assert_eq!(ns(c.pid as u32, "ipc"), ns(me, "ipc"));
    c.start().unwrap();
    assert_eq!(
        runtime::container::wait(c.pid).unwrap(),
        ExitStatus::Code(0)
    );
    c.remove().unwrap();
    assert_eq!(out.join().unwrap(), "sees-host\n");
}

#[test]
fn ipc_service_joins_another_containers_namespace() {
    let h = Harness::new();
    let (a, _o, _e) = h.create(&h.spec("ipc-a", &["sleep", "30"]));
    let mut spec = h.spec("ipc-b", &["sleep", "30"]);
    spec.namespaces.ipc = ShareMode::JoinPid(a.pid);
    spec.namespaces.pid = ShareMode::JoinPid(a.pid);
    let (b, _o2, _e2) = h.create(&spec);
    assert_eq!(ns(a.pid as u32, "ipc"), ns(b.pid as u32, "ipc"));
    assert_eq!(ns(a.pid as u32, "pid"), ns(b.pid as u32, "pid"));
    assert_ne!(ns(a.pid as u32, "uts"), ns(b.pid as u32, "uts"));
    for c in [&b, &a] {
        c.kill(libc::SIGKILL).unwrap();
        runtime::container::wait(c.pid).unwrap();
        c.remove().unwrap();
    }
}

/// A pinned network namespace, as the network crate provides: a bind mount of a netns file.
struct PinnedNetns(std::path::PathBuf);

impl PinnedNetns {
    fn new(dir: &std::path::Path) -> Self {
        let path = dir.join("netns-pin");
        std::fs::File::create(&path).unwrap();
        // Create the namespace in a thread we throw away, pin it, leave our own untouched.
        let p = path.clone();
        std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                &p,
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            )
            .unwrap();
        })
        .join()
        .unwrap();
        Self(path)
    }
}

impl Drop for PinnedNetns {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn net_joins_a_pinned_namespace_or_the_host() {
    let h = Harness::new();
    let pin = PinnedNetns::new(h.tmp.path());
    let mut spec = h.spec("netjoin", &["sleep", "30"]);
    spec.namespaces.net = NetMode::Join(pin.0.clone());
    let (c, _o, _e) = h.create(&spec);
    let pinned = std::fs::metadata(&pin.0).unwrap();
    let joined = std::fs::metadata(format!("/proc/{}/ns/net", c.pid)).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&pinned),
        std::os::unix::fs::MetadataExt::ino(&joined)
    );
    c.kill(libc::SIGKILL).unwrap();
    runtime::container::wait(c.pid).unwrap();
    c.remove().unwrap();
    drop(pin);

    let mut spec = h.spec("nethost", &["sleep", "30"]);
    spec.namespaces.net = NetMode::Host;
    let (c, _o, _e) = h.create(&spec);
    assert_eq!(ns(c.pid as u32, "net"), ns(std::process::id(), "net"));
    c.kill(libc::SIGKILL).unwrap();
    runtime::container::wait(c.pid).unwrap();
    c.remove().unwrap();
}

#[test]
fn tty_is_the_controlling_terminal() {
    let h = Harness::new();
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut spec = h.spec(
        "tty",
        &[
            "sh",
            "-c",
            "tty; [ -t 0 ] && echo is-a-tty; ls -l /dev/console | cut -c1",
        ],
    );
    spec.process.tty = true;
    spec.process.stdin = true;
    let c = h
        .runtime
        .create(&spec, Stdio::tty(pty.slave).unwrap())
        .unwrap();
    c.start().unwrap();
    assert_eq!(
        runtime::container::wait(c.pid).unwrap(),
        ExitStatus::Code(0)
    );
    // One read may return only part of the output: read until the last line (`c` from
    // `cut`) is in, the slave side is gone (EIO), or 5 s pass.
    let master = std::fs::File::from(pty.master);
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&out)
        .replace('\r', "")
        .ends_with("\nc\n")
        && std::time::Instant::now() < deadline
    {
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&master),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)).unwrap_or(0) == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match std::io::Read::read(&mut &master, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&out).replace('\r', "");
    c.remove().unwrap();
    assert!(
        text.starts_with("/dev/pts/") || text.starts_with("/dev/console"),
        "{text}"
    );
    assert!(text.contains("is-a-tty\nc\n"), "{text}");
}

#[test]
fn the_helper_runs_from_a_sealed_memfd() {
    let h = Harness::new();
    let mut spec = h.spec("sealed", &["sleep", "30"]);
    spec.init = true;
    let (c, _o, _e) = h.create(&spec);
    // Before start pid 1 still runs helper code: it must not be the binary on disk.
    let exe = std::fs::read_link(format!("/proc/{}/exe", c.pid)).unwrap();
    assert!(
        exe.display().to_string().starts_with("/memfd:"),
        "{}",
        exe.display()
    );
    let w = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{}/exe", c.pid));
    assert!(w.is_err(), "the helper image is writable");
    c.start().unwrap();
    assert!(eventually(Duration::from_secs(5), || c
        .processes()
        .unwrap()
        .len()
        == 2));
    c.stop(Duration::from_secs(2)).unwrap();
    runtime::container::wait(c.pid).unwrap();
    c.remove().unwrap();
}

#[test]
fn uts_host_keeps_the_hosts_names() {
    let h = Harness::new();
    let mut spec = h.spec("utshost", &["hostname"]);
    spec.namespaces.uts = ShareMode::Host;
    // Not applied with the host's namespace: it would rename the host.
    spec.hostname = Some("not-the-host".into());
    let out = h.run(&spec);
    assert_eq!(out.status, ExitStatus::Code(0), "{}", out.stderr);
    let host = nix::unistd::gethostname().unwrap();
    assert_eq!(out.stdout.trim(), host.to_string_lossy(), "{}", out.stderr);
    assert_eq!(nix::unistd::gethostname().unwrap(), host);
}
