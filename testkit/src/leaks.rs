//! Independent checks for what a test's state root may leave on the machine: processes,
//! mounts, network interfaces, nft tables and cgroups. Each returns readable lines (empty:
//! nothing left), from the kernel's own view (`/proc`, `/sys/fs/cgroup`, `ip`, `nft`), never
//! from the code under test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Processes (other than this one) whose command line mentions one of `needles`, or whose
/// root directory lies under one of `rooted_in` (a container of the state root).
pub fn processes(needles: &[&str], rooted_in: &[&str]) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let pid = e.file_name().to_string_lossy().to_string();
        if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if needles.iter().any(|n| cmd.contains(n)) {
            out.push(format!("process {pid}: {cmd}"));
            continue;
        }
        if let Ok(root) = std::fs::read_link(format!("/proc/{pid}/root")) {
            let root = root.to_string_lossy();
            if rooted_in.iter().any(|r| root.contains(r)) {
                out.push(format!("process {pid} rooted in {root}"));
            }
        }
    }
    out
}

/// Processes that are children of this one, of any of its threads (what a subreaper test has
/// left), with their command lines.
pub fn children() -> Vec<String> {
    let mut pids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let kids = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        pids.extend(kids.split_whitespace().map(str::to_string));
    }
    pids.into_iter()
        .map(|pid| {
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            format!("process {pid}: {}", cmd.replace('\0', " "))
        })
        .collect()
}

/// Lines of this process's mount table that mention one of `needles`.
pub fn mounts(needles: &[&str]) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("read /proc/self/mountinfo")
        .lines()
        .filter(|l| needles.iter().any(|n| l.contains(n)))
        .map(|l| format!("mount: {l}"))
        .collect()
}

/// Names of the host's network interfaces that start with `prefix` (`ip -o link`).
pub fn links_with_prefix(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .stdin(Stdio::null())
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip -o link show: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // "7: name@peer: <FLAGS> ..."
            let name = l.split(": ").nth(1)?;
            let name = name.split('@').next()?;
            name.starts_with(prefix).then(|| name.to_string())
        })
        .collect()
}

/// The nft tables (of any family) named exactly `name`, as `nft list tables` prints them.
pub fn nft_tables(name: &str) -> Vec<String> {
    let out = Command::new("nft")
        .args(["list", "tables"])
        .stdin(Stdio::null())
        .output()
        .expect("run nft (nftables)");
    assert!(
        out.status.success(),
        "nft list tables: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split_whitespace().last() == Some(name))
        .map(|l| format!("nft {l}"))
        .collect()
}

/// `<controller>/<rel>` under every cgroup hierarchy mounted below `/sys/fs/cgroup` (v1
/// controllers, the unified one) where it exists.
pub fn cgroup_dirs(rel: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join(rel))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

/// The child cgroups of `<controller>/<rel>` in every hierarchy (the parent itself may stay).
pub fn cgroup_children(rel: &str) -> Vec<String> {
    cgroup_dirs(rel)
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .filter(|c| c.path().is_dir())
        .map(|c| format!("cgroup {}", c.path().display()))
        .collect()
}

/// `path` still exists, as a leak line.
pub fn path(what: &str, path: &Path) -> Vec<String> {
    if path.exists() {
        vec![format!("{what} {}", path.display())]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_tempdir_nobody_uses_has_no_leaks() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path().to_string_lossy().to_string();
        assert!(processes(&[&t], &[&t]).is_empty());
        assert!(mounts(&[&t]).is_empty());
        assert!(cgroup_dirs("rcompose-testkit-none").is_empty());
        assert!(cgroup_children("rcompose-testkit-none").is_empty());
        assert!(links_with_prefix("rctknone").is_empty());
        assert!(nft_tables("rcompose-testkit-none").is_empty());
        assert!(path("dir", &tmp.path().join("x")).is_empty());
        assert_eq!(path("dir", tmp.path()).len(), 1);
    }

    #[test]
    fn a_sleeping_child_that_mentions_the_root_is_found() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path().to_string_lossy().to_string();
        let file = tmp.path().join("f");
        std::fs::write(&file, "").unwrap();
        let mut child = Command::new("/usr/bin/busybox")
            .arg("tail")
            .arg("-f")
            .arg(&file)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let (mut found, mut kids) = (Vec::new(), Vec::new());
        crate::poll(Duration::from_secs(5), Duration::from_millis(10), || {
            found = processes(&[&t], &[]);
            kids = children();
            !found.is_empty()
        });
        let pid = format!("process {}: ", child.id());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with(&pid), "{found:?}");
        assert!(kids.iter().any(|k| k.starts_with(&pid)), "{kids:?}");
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn loopback_is_listed_by_prefix() {
        assert_eq!(links_with_prefix("lo"), vec!["lo".to_string()]);
    }
}
