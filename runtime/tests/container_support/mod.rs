//! Support for the container runtime's privileged tests: a busybox root filesystem built from
//! the host's static busybox, a per-test state root, output capture, and a leak check run on
//! drop (no process, mount or cgroup of the test's state root may remain).

#![allow(dead_code)]

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runtime::container::{
    become_subreaper, cgroups, ContainerSpec, Created, ExitStatus, Runtime, Stdio,
};

pub const BUSYBOX: &str = testkit::busybox::BUSYBOX;

/// Poll `f` until it returns true or `within` passes.
pub fn eventually(within: Duration, f: impl FnMut() -> bool) -> bool {
    testkit::poll(within, Duration::from_millis(10), f)
}

/// A folder with `bin/busybox`, its applet links, `/etc/passwd` (root, app, nobody),
/// `/etc/group` and `/data/from-image`.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    testkit::busybox::Rootfs::new()
        .dirs(&["root", "home/app", "data", "proc", "sys", "dev"])
        .file(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n\
             nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .file(
            "etc/group",
            "root:x:0:\napp:x:1000:\naudio:x:29:app\nnogroup:x:65534:\n",
        )
        .file("data/from-image", "image content\n")
        .build(&dir.join("busybox-layer"))
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
        testkit::leaks::cgroup_dirs(&format!(
            "rcompose-{}",
            cgroups::root_hash(&self.runtime.state_root)
        ))
    }

    pub fn leaks(&self) -> Vec<String> {
        let tmp = self.tmp.path().display().to_string();
        let mut leaks = testkit::leaks::mounts(&[&tmp]);
        for d in self.cgroup_dirs() {
            leaks.push(format!("cgroup: {}", d.display()));
        }
        // Any child process left (the containers are reparented to us, the subreaper).
        leaks.extend(testkit::leaks::children());
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
