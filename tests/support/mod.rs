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

#[allow(unused_imports)]
pub use testkit::eventually;

/// A rootfs tarball of the host's static busybox (applet links, passwd, group, `/data`) in
/// `dir`.
fn busybox_tar(dir: &Path) -> PathBuf {
    testkit::busybox::Rootfs::new().dirs(&["data"]).tar(dir)
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
        use testkit::leaks;
        let root = self.root.to_string_lossy().to_string();
        let run = self.run.to_string_lossy().to_string();
        // Processes whose command line mentions the root or run dir, or rooted in the root.
        let mut leaks = leaks::processes(&[&root, &run], &[&root]);
        leaks.extend(leaks::mounts(&[&root, &run]));
        // Interfaces and nft table of this root (names carry the root hash).
        let nets = network::Networks::new(&self.root);
        leaks.extend(
            leaks::links_with_prefix(&nets.iface_prefix())
                .into_iter()
                .map(|l| format!("interface: {l}")),
        );
        leaks.extend(leaks::nft_tables(&nets.nft_table()));
        // cgroups: `rcompose-<roothash>` under any controller, with children.
        leaks.extend(leaks::cgroup_children(&format!(
            "rcompose-{}",
            runtime::container::cgroups::root_hash(&self.root)
        )));
        // Project state and run files.
        let pdir = self.root.join("projects").join(&self.project);
        leaks.extend(leaks::path("state folder", &pdir));
        leaks.extend(leaks::path("run folder", &self.run.join(&self.project)));
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
