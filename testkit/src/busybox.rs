//! A root filesystem of the host's static busybox (Debian's busybox-static): `bin/busybox`
//! with a link per applet, `/etc/passwd` and `/etc/group`, extra folders and files; as a
//! folder (a lower layer for the runtime) or a tarball (for `rcompose image import`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the tests expect the static busybox.
pub const BUSYBOX: &str = "/usr/bin/busybox";

/// `root` and `nobody`.
pub const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
/// `root` and `nogroup`.
pub const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// Fail loudly when busybox-static is not installed.
pub fn require() {
    assert!(
        Path::new(BUSYBOX).exists(),
        "prerequisite missing: {BUSYBOX} (install Debian's busybox-static)"
    );
}

/// What goes into the root filesystem besides busybox and its applet links.
#[derive(Debug, Clone)]
pub struct Rootfs {
    dirs: Vec<String>,
    files: Vec<(String, String)>,
}

impl Default for Rootfs {
    fn default() -> Self {
        Self::new()
    }
}

impl Rootfs {
    /// `bin`, `etc` and `tmp`, with [`PASSWD`] and [`GROUP`].
    pub fn new() -> Rootfs {
        Rootfs {
            dirs: vec!["bin".into(), "etc".into(), "tmp".into()],
            files: vec![
                ("etc/passwd".into(), PASSWD.into()),
                ("etc/group".into(), GROUP.into()),
            ],
        }
    }

    /// Also these (empty) folders.
    pub fn dirs(mut self, dirs: &[&str]) -> Rootfs {
        self.dirs.extend(dirs.iter().map(|d| d.to_string()));
        self
    }

    /// A file with this content (replacing one of the same path, such as `etc/passwd`).
    pub fn file(mut self, path: &str, content: &str) -> Rootfs {
        self.files.retain(|(p, _)| p != path);
        self.files.push((path.into(), content.into()));
        self
    }

    /// Write the tree at `dir` (created); returns `dir`.
    pub fn build(&self, dir: &Path) -> PathBuf {
        require();
        for d in &self.dirs {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::copy(BUSYBOX, dir.join("bin/busybox")).unwrap();
        let list = Command::new(BUSYBOX).arg("--list").output().unwrap();
        assert!(list.status.success(), "busybox --list failed");
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
            }
        }
        for (p, content) in &self.files {
            let path = dir.join(p);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            std::fs::write(path, content).unwrap();
        }
        dir.to_path_buf()
    }

    /// Write the tree at `<work>/rootfs` and pack it as the tarball `<work>/busybox.tar`;
    /// returns the tarball.
    pub fn tar(&self, work: &Path) -> PathBuf {
        let rootfs = self.build(&work.join("rootfs"));
        let tar = work.join("busybox.tar");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_has_busybox_applets_users_and_extra_content() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Rootfs::new()
            .dirs(&["data"])
            .file("etc/passwd", "root:x:0:0::/:/bin/sh\n")
            .file("data/x", "y")
            .build(&tmp.path().join("r"));
        assert!(dir.join("bin/busybox").is_file());
        assert_eq!(
            std::fs::read_link(dir.join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("etc/passwd")).unwrap(),
            "root:x:0:0::/:/bin/sh\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("etc/group")).unwrap(),
            GROUP
        );
        assert_eq!(std::fs::read_to_string(dir.join("data/x")).unwrap(), "y");
        let tar = Rootfs::new().tar(tmp.path());
        let list = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
        let names = String::from_utf8_lossy(&list.stdout);
        assert!(names.lines().any(|l| l == "./bin/busybox"), "{names}");
    }
}
