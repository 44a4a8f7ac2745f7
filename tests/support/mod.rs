//! Support for end-to-end tests of the `rcompose` binary: a private state root, run dir,
//! project and subnet pool per test; a busybox image built from the host's static busybox; a
//! guard that brings the stack down and checks that nothing of the root is left (process,
//! mount, interface, cgroup, nft table, listener, state file) even when the test fails.

#![allow(dead_code)]

pub mod registry;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const IMAGE: &str = "e2e/busybox:latest";

/// One test's world.
pub struct Stack {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub run: PathBuf,
    pub dir: PathBuf,
    pub project: String,
    pub pool: String,
    /// The busybox rootfs tarball (for tests that import it under other names).
    pub tar: PathBuf,
    down_on_drop: bool,
}

/// Poll `f` every 20 ms until it is true or `timeout` passes.
pub fn eventually(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A rootfs tarball of the host's static busybox (applet links, passwd, group) in `dir`.
fn busybox_tar(dir: &Path) -> PathBuf {
    {
        assert!(
            Path::new("/usr/bin/busybox").exists(),
            "the end-to-end tests need Debian's busybox-static (/usr/bin/busybox)"
        );
        let rootfs = dir.join("rootfs");
        for d in ["bin", "etc", "tmp", "data"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/usr/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        let list = Command::new("/usr/bin/busybox")
            .arg("--list")
            .output()
            .unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
            }
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
        let tar = dir.join("busybox.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success(), "tar of the busybox rootfs failed");
        tar
    }
}

impl Stack {
    /// A stack named after the test, with `compose` as its compose.yaml and `pool` (1-99, no
    /// two tests alike: the /24 10.213.(100 + pool).0) as its subnet pool.
    pub fn new(test: &str, pool: u8, compose: &str) -> Stack {
        assert!((1..100).contains(&pool), "pool numbers are 1-99");
        let tmp = tempfile::Builder::new()
            .prefix("rc-e2e-")
            .tempdir_in("/tmp")
            .unwrap();
        let root = tmp.path().join("root");
        let run = tmp.path().join("run");
        let dir = tmp.path().join(test);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("compose.yaml"), compose).unwrap();
        let tar = busybox_tar(tmp.path());
        let s = Stack {
            tar,
            project: test.replace('_', "-"),
            root,
            run,
            dir,
            // 10.213.101-199: the network crate's own tests use 10.213.0-99 and 200+.
            pool: format!("10.213.{}.0/24", 100 + u16::from(pool)),
            tmp,
            down_on_drop: true,
        };
        let out = s.rc(&["image", "import", s.tar.to_str().unwrap(), IMAGE]);
        assert!(
            out.status.success(),
            "image import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        s
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rcompose"));
        c.args(["-p", &self.project])
            .args(args)
            .current_dir(&self.dir)
            .env("RCOMPOSE_ROOT", &self.root)
            .env("RCOMPOSE_RUN", &self.run)
            .env("RCOMPOSE_NETWORK_POOL", &self.pool)
            .env("COMPOSE_PROGRESS", "plain")
            .env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("COMPOSE_FILE")
            .stdin(Stdio::null());
        c
    }

    /// Run rcompose with `args`; returns its output (no assertion).
    pub fn rc(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Run rcompose with `args` and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.rc(args);
        assert!(
            out.status.success(),
            "rcompose {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `ps --format json` as objects.
    pub fn ps(&self) -> Vec<serde_json::Value> {
        self.ok(&["ps", "-a", "--format", "json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The ps object of one container.
    pub fn container(&self, name: &str) -> Option<serde_json::Value> {
        self.ps().into_iter().find(|c| c["Name"] == name)
    }

    pub fn state_file(&self) -> PathBuf {
        self.root
            .join("projects")
            .join(&self.project)
            .join("state.json")
    }

    /// The recorded state as JSON.
    pub fn state(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.state_file()).unwrap()).unwrap()
    }

    /// Do not run `down` at drop (the test checks a down of its own).
    pub fn no_down_on_drop(&mut self) {
        self.down_on_drop = false;
    }

    /// Everything of this root still present on the machine, as readable lines.
    pub fn leaks(&self) -> Vec<String> {
        let mut leaks = Vec::new();
        let root = self.root.to_string_lossy().to_string();
        let run = self.run.to_string_lossy().to_string();
        // Processes whose command line or open files mention the root or run dir.
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == std::process::id() as i32 {
                continue;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmd.contains(&root) || cmd.contains(&run) {
                leaks.push(format!("process {pid}: {cmd}"));
                continue;
            }
            if let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/root")) {
                if cwd.to_string_lossy().contains(&root) {
                    leaks.push(format!("process {pid} rooted in {}", cwd.display()));
                }
            }
        }
        // Mounts.
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        for l in mi.lines() {
            if l.contains(&root) || l.contains(&run) {
                leaks.push(format!("mount: {l}"));
            }
        }
        // Interfaces and nft table of this root (names carry the root hash).
        let nets = network::Networks::new(&self.root);
        let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
        for l in String::from_utf8_lossy(&links.stdout).lines() {
            if l.contains(&nets.iface_prefix()) {
                leaks.push(format!("interface: {l}"));
            }
        }
        let tables = Command::new("nft")
            .args(["list", "tables"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&tables.stdout).contains(&nets.nft_table()) {
            leaks.push(format!("nft table {}", nets.nft_table()));
        }
        // cgroups: `rcompose-<roothash>` under any controller, with children.
        let cg = format!(
            "rcompose-{}",
            runtime::container::cgroups::root_hash(&self.root)
        );
        for ctl in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let dir = ctl.path().join(&cg);
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for child in rd.flatten() {
                    if child.path().is_dir() {
                        leaks.push(format!("cgroup {}", child.path().display()));
                    }
                }
            }
        }
        // Project state and run files.
        let pdir = self.root.join("projects").join(&self.project);
        if pdir.exists() {
            leaks.push(format!("state folder {}", pdir.display()));
        }
        let rdir = self.run.join(&self.project);
        if rdir.exists() {
            leaks.push(format!("run folder {}", rdir.display()));
        }
        leaks
    }

    /// `down -v`, then no leak.
    pub fn down_and_check(&self) {
        let out = self.rc(&["down", "-v", "-t", "1"]);
        assert!(
            out.status.success(),
            "down failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.assert_no_leaks();
    }

    pub fn assert_no_leaks(&self) {
        let mut leaks = self.leaks();
        // Give exiting processes (the supervisor after `down`) a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !leaks.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            leaks = self.leaks();
        }
        assert!(leaks.is_empty(), "left behind:\n{}", leaks.join("\n"));
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // One-offs keep their own state (a project run only with `run` has no state.json).
        let oneoffs = self
            .root
            .join("projects")
            .join(&self.project)
            .join("oneoff");
        if self.down_on_drop && (self.state_file().exists() || oneoffs.exists()) {
            let _ = self.rc(&["down", "-v", "-t", "0"]);
        }
    }
}
