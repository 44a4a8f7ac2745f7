//! Support for the builder's privileged tests: a private state root with a busybox image
//! (`busybox:test`, from the host's static busybox) in its store, a build context folder, a
//! way to run a built image, and a leak check on drop (no mount, cgroup, process or build
//! container of the test's root may remain).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use runtime::build::{BuildError, BuildEvent, BuildOptions, Built};
use runtime::container::{become_subreaper, cgroups, ContainerSpec, ExitStatus, Runtime, Stdio};
use runtime::image::{Image, Store};

pub const BASE: &str = "busybox:test";

pub struct Harness {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub context: PathBuf,
    pub store: Store,
    pub runtime: Runtime,
    pub events: Mutex<Vec<BuildEvent>>,
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Harness {
    pub fn new() -> Harness {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "privileged test: run as root"
        );
        let busybox = Path::new(runtime::image::rootfs::HOST_BUSYBOX);
        assert!(
            busybox.exists(),
            "prerequisite missing: {} (Debian busybox-static)",
            busybox.display()
        );
        become_subreaper().unwrap();
        let tmp = tempfile::Builder::new()
            .prefix("rc-build-")
            .tempdir()
            .unwrap();
        let root = tmp.path().join("root");
        let context = tmp.path().join("ctx");
        std::fs::create_dir_all(&context).unwrap();
        let store = Store::open(&root).unwrap();
        let tar = runtime::image::rootfs::busybox_rootfs_tar(busybox).unwrap();
        store.import_rootfs(&tar[..], BASE).unwrap();
        let runtime = Runtime {
            helper: PathBuf::from(env!("CARGO_BIN_EXE_rcompose-container-helper")),
            cgroup_root: "/sys/fs/cgroup".into(),
            state_root: root.clone(),
        };
        Harness {
            tmp,
            root,
            context,
            store,
            runtime,
            events: Mutex::new(Vec::new()),
        }
    }

    /// Write a file of the build context (folders created).
    pub fn file(&self, rel: &str, content: &str) -> &Self {
        let p = self.context.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    pub fn options(&self, dockerfile: &str, tag: &str) -> BuildOptions {
        self.file("Dockerfile", dockerfile);
        BuildOptions {
            context: self.context.clone(),
            tags: vec![tag.to_string()],
            ..Default::default()
        }
    }

    pub fn build_with(&self, opts: &BuildOptions) -> Result<Built, BuildError> {
        self.events.lock().unwrap().clear();
        runtime::build::build(&self.store, &self.runtime, opts, &|e| {
            self.events.lock().unwrap().push(e)
        })
    }

    pub fn build(&self, dockerfile: &str, tag: &str) -> Result<Built, BuildError> {
        self.build_with(&self.options(dockerfile, tag))
    }

    /// Lines the RUN steps printed in the last build.
    pub fn output(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                BuildEvent::Output { line } => Some(line.clone()),
                _ => None,
            })
            .collect()
    }

    /// Instructions of the last build that ran (not cached).
    pub fn ran(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                BuildEvent::Step {
                    instruction,
                    cached: false,
                    ..
                } if !instruction.starts_with("FROM") => Some(instruction.clone()),
                _ => None,
            })
            .collect()
    }

    /// Run a command in a container of the image (its env, workdir and user).
    pub fn run(&self, image: &Image, args: &[&str]) -> Output {
        let id = format!("t{}", std::process::id());
        let spec = ContainerSpec {
            id: id.clone(),
            name: format!("test-{id}"),
            service: "test".into(),
            state_dir: self.root.join("containers").join(&id),
            lower_dirs: image.layers.clone(),
            process: runtime::container::ProcessSpec {
                args: args.iter().map(|s| s.to_string()).collect(),
                env: image.config.env.clone(),
                cwd: image.config.working_dir.clone(),
                user: image.config.user.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let reader = |fd: std::os::fd::OwnedFd| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = std::fs::File::from(fd).read_to_string(&mut s);
                s
            })
        };
        let (o, e) = (reader(out_r), reader(err_r));
        let c = self
            .runtime
            .create(
                &spec,
                Stdio {
                    stdin: None,
                    stdout: out_w,
                    stderr: err_w,
                },
            )
            .unwrap_or_else(|e| panic!("create: {e}"));
        c.start().unwrap();
        let status = runtime::container::wait(c.pid).unwrap();
        c.remove().unwrap();
        Output {
            status,
            stdout: o.join().unwrap(),
            stderr: e.join().unwrap(),
        }
    }

    /// The image config blob as JSON.
    pub fn config_json(&self, image: &Image) -> serde_json::Value {
        serde_json::from_slice(&self.store.config_blob(&image.id).unwrap()).unwrap()
    }

    pub fn leaks(&self) -> Vec<String> {
        let mut leaks = Vec::new();
        let tmp = self.tmp.path().display().to_string();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        for line in mountinfo.lines().filter(|l| l.contains(&tmp)) {
            leaks.push(format!("mount: {line}"));
        }
        let rel = format!("rcompose-{}", cgroups::root_hash(&self.root));
        for e in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let p = e.path().join(&rel);
            if p.exists()
                && std::fs::read_dir(&p)
                    .map(|mut d| d.any(|e| e.map(|e| e.path().is_dir()).unwrap_or(false)))
                    .unwrap_or(false)
            {
                leaks.push(format!("cgroup: {}", p.display()));
            }
        }
        if let Ok(rd) = std::fs::read_dir(self.root.join("build")) {
            for e in rd.flatten() {
                leaks.push(format!("build container: {}", e.path().display()));
            }
        }
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
        for sub in ["build", "containers"] {
            if let Ok(rd) = std::fs::read_dir(self.root.join(sub)) {
                for e in rd.flatten() {
                    let _ = runtime::container::cleanup(&e.path());
                }
            }
        }
        while nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
            .map(|s| s != nix::sys::wait::WaitStatus::StillAlive)
            .unwrap_or(false)
        {}
        // The per-root cgroup parents (empty) go with the test.
        let rel = format!("rcompose-{}", cgroups::root_hash(&self.root));
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in rd.flatten() {
                let _ = std::fs::remove_dir(e.path().join(&rel));
            }
        }
        if std::thread::panicking() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut leaks = self.leaks();
        while !leaks.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            leaks = self.leaks();
        }
        assert!(leaks.is_empty(), "leaked after the test: {leaks:#?}");
    }
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
