//! Support for the container runtime's privileged tests: a busybox root filesystem built from
//! the host's static busybox, a per-test state root, output capture, and a leak check run on
//! drop (no process, mount or cgroup of the test's state root may remain).

#![allow(dead_code)]

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runtime::container::{
    become_subreaper, cgroups, ContainerSpec, Created, ExitStatus, Runtime, Stdio,
};

pub const BUSYBOX: &str = "/usr/bin/busybox";

/// Poll `f` until it returns true or `within` passes.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A folder with `bin/busybox`, its applet links, `/etc/passwd` and `/etc/group`.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    assert!(
        Path::new(BUSYBOX).exists(),
        "prerequisite missing: {BUSYBOX} (Debian busybox-static)"
    );
    let root = dir.join("busybox-layer");
    for d in [
        "bin", "etc", "tmp", "root", "home/app", "data", "proc", "sys", "dev",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    let list = std::process::Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n").unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\napp:x:1000:\naudio:x:29:app\nnogroup:x:65534:\n",
    )
    .unwrap();
    std::fs::write(root.join("data/from-image"), "image content\n").unwrap();
    root
}

/// A test's private world: temp dir, state root, runtime, busybox layer.
pub struct Harness {
    pub tmp: tempfile::TempDir,
    pub runtime: Runtime,
    pub layer: PathBuf,
}

/// What a finished container produced.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

pub struct Capture {
    pub stdio: Stdio,
    out: std::thread::JoinHandle<String>,
    err: std::thread::JoinHandle<String>,
}

impl Capture {
    pub fn new() -> Self {
        let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let reader = |fd: OwnedFd| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = std::fs::File::from(fd).read_to_string(&mut s);
                s
            })
        };
        Self {
            stdio: Stdio {
                stdin: None,
                stdout: out_w,
                stderr: err_w,
            },
            out: reader(out_r),
            err: reader(err_r),
        }
    }

    pub fn finish(
        out: std::thread::JoinHandle<String>,
        err: std::thread::JoinHandle<String>,
    ) -> (String, String) {
        (out.join().unwrap(), err.join().unwrap())
    }

    pub fn split(
        self,
    ) -> (
        Stdio,
        std::thread::JoinHandle<String>,
        std::thread::JoinHandle<String>,
    ) {
        (self.stdio, self.out, self.err)
    }
}

impl Harness {
    pub fn new() -> Self {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "privileged test: run as root"
        );
        become_subreaper().unwrap();
        let tmp = tempfile::Builder::new()
            .prefix("rc-ctr-")
            .tempdir()
            .unwrap();
        let layer = busybox_rootfs(tmp.path());
        let runtime = Runtime {
            helper: PathBuf::from(env!("CARGO_BIN_EXE_rcompose-container-helper")),
            cgroup_root: "/sys/fs/cgroup".into(),
            state_root: tmp.path().join("state"),
        };
        Self {
            tmp,
            runtime,
            layer,
        }
    }

    pub fn spec(&self, name: &str, args: &[&str]) -> ContainerSpec {
        ContainerSpec {
            id: name.into(),
            name: format!("test-{name}-1"),
            service: name.into(),
            state_dir: self.runtime.state_root.join("containers").join(name),
            lower_dirs: vec![self.layer.clone()],
            process: runtime::container::ProcessSpec {
                args: args.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            hostname: Some(name.into()),
            ..Default::default()
        }
    }

    /// create + start + wait, capturing output; removes the container.
    pub fn run(&self, spec: &ContainerSpec) -> Output {
        let (stdio, out, err) = Capture::new().split();
        let c = self
            .runtime
            .create(spec, stdio)
            .unwrap_or_else(|e| panic!("create: {e}"));
        c.start().unwrap();
        let status = runtime::container::wait(c.pid).unwrap();
        c.remove().unwrap();
        let (stdout, stderr) = Capture::finish(out, err);
        Output {
            status,
            stdout,
            stderr,
        }
    }

    pub fn create(
        &self,
        spec: &ContainerSpec,
    ) -> (
        Created,
        std::thread::JoinHandle<String>,
        std::thread::JoinHandle<String>,
    ) {
        let (stdio, out, err) = Capture::new().split();
        let c = self
            .runtime
            .create(spec, stdio)
            .unwrap_or_else(|e| panic!("create: {e}"));
        (c, out, err)
    }

    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let rel = format!("rcompose-{}", cgroups::root_hash(&self.runtime.state_root));
        std::fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path().join(&rel))
            .filter(|p| p.exists())
            .collect()
    }

    pub fn leaks(&self) -> Vec<String> {
        let mut leaks = Vec::new();
        let tmp = self.tmp.path().display().to_string();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        for line in mountinfo.lines().filter(|l| l.contains(&tmp)) {
            leaks.push(format!("mount: {line}"));
        }
        for d in self.cgroup_dirs() {
            leaks.push(format!("cgroup: {}", d.display()));
        }
        // Any child process left (the containers are reparented to us, the subreaper).
        if let Ok(children) =
            std::fs::read_to_string(format!("/proc/self/task/{}/children", std::process::id()))
        {
            for pid in children.split_whitespace() {
                let cmd =
                    std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                leaks.push(format!("process {pid}: {}", cmd.replace('\0', " ")));
            }
        }
        leaks
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let containers = self.runtime.state_root.join("containers");
        if let Ok(entries) = std::fs::read_dir(&containers) {
            for e in entries.flatten() {
                let _ = runtime::container::cleanup(&e.path());
            }
        }
        // Reap whatever the cleanup killed.
        while nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
            .map(|s| s != nix::sys::wait::WaitStatus::StillAlive)
            .unwrap_or(false)
        {}
        if std::thread::panicking() {
            return;
        }
        let mut leaks = Vec::new();
        let clean = eventually(Duration::from_secs(5), || {
            leaks = self.leaks();
            leaks.is_empty()
        });
        assert!(clean, "leaked after the test: {leaks:#?}");
    }
}
