//! A minimal root filesystem around a static busybox, as a tar stream for
//! `Store::import_rootfs`: how tests, examples and the offline demo get a runnable image with
//! no registry (`rcompose image import` of the same tar from the command line).

use std::io;
use std::path::Path;
use std::process::Command;

/// The host's static busybox (Debian `busybox-static`).
pub const HOST_BUSYBOX: &str = "/usr/bin/busybox";

/// A tar of `/bin/busybox` (from `busybox`, which must be static) with a symlink per applet
/// (`busybox --list`) in `/bin`, `/etc/passwd` and `/etc/group` for root and nobody, and empty
/// `/proc`, `/sys`, `/dev`, `/tmp` (1777), `/root`, `/etc`.
pub fn busybox_rootfs_tar(busybox: &Path) -> io::Result<Vec<u8>> {
    let bin = std::fs::read(busybox)?;
    let out = Command::new(busybox).arg("--list").output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{} --list failed",
            busybox.display()
        )));
    }
    let applets = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut t = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    };
    for (dir, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("sys", 0o555),
        ("tmp", 0o1777),
    ] {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        t.append_data(&mut h, dir, io::empty())?;
    }
    let mut h = header(tar::EntryType::Regular, 0o755, bin.len() as u64);
    t.append_data(&mut h, "bin/busybox", &bin[..])?;
    for applet in applets.lines().map(str::trim) {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        t.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
    }
    for (name, content) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    ] {
        let mut h = header(tar::EntryType::Regular, 0o644, content.len() as u64);
        t.append_data(&mut h, name, content.as_bytes())?;
    }
    t.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_busybox_rootfs() {
        let tar = busybox_rootfs_tar(Path::new(HOST_BUSYBOX))
            .expect("/usr/bin/busybox (Debian busybox-static) is needed");
        let mut a = tar::Archive::new(&tar[..]);
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        for want in ["bin/busybox", "bin/sh", "bin/sleep", "etc/passwd", "tmp"] {
            assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
        }
    }
}
