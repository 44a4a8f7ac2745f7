//! The container's root filesystem, built by the container process inside its new mount
//! namespace before pivot_root: overlayfs over the image layers with a per-container upper
//! folder, /proc, /sys, /dev (device nodes, pts, shm, mqueue), the caller's mounts, Docker's
//! masked and read-only /proc paths, then pivot_root. Every mount lives only in the
//! container's mount namespace, so it disappears with the container's last process.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::spec::{ContainerSpec, MountSpec, Propagation, ShareMode};

/// A rootfs step failed; the message names the path.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{what} {path}: {source}")]
    Sys {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the image has no layers")]
    NoLayers,
    #[error("mount target {0:?} must be an absolute path")]
    RelativeTarget(String),
    #[error("{0}")]
    Console(String),
}

type Result<T> = std::result::Result<T, RootfsError>;

fn sys<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(nix::Error) -> RootfsError + 'a {
    move |source| RootfsError::Sys {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RootfsError + 'a {
    move |source| RootfsError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn do_mount(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    tracing::debug!(target = %target.display(), ?fstype, ?flags, "mount");
    mount(src, target, fstype, flags, data).map_err(sys("mount", target))
}

fn bind(src: &Path, target: &Path, flags: MsFlags) -> Result<()> {
    tracing::debug!(src = %src.display(), target = %target.display(), "bind mount");
    mount(
        Some(src),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC | flags,
        None::<&str>,
    )
    .map_err(sys("bind mount", target))
}

/// Read-only needs a remount of the bind (MS_RDONLY is ignored on the first bind call).
fn remount_ro(target: &Path, extra: MsFlags) -> Result<()> {
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | extra,
        None::<&str>,
    )
    .map_err(sys("remount read-only", target))
}

/// Resolve `path` inside `root` following symlinks as if `root` were `/`, so a symlink in the
/// image (`/data -> /etc`) can never send a mount outside the container's root.
pub fn secure_join(root: &Path, path: &str) -> PathBuf {
    let mut parts: Vec<std::ffi::OsString> = Vec::new();
    let mut pending: Vec<std::ffi::OsString> = Path::new(path)
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            parts.pop();
            continue;
        }
        let candidate = parts
            .iter()
            .fold(root.to_path_buf(), |p, c| p.join(c))
            .join(&part);
        match fs::read_link(&candidate) {
            Ok(target) if links < 40 => {
                links += 1;
                if target.is_absolute() {
                    parts.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => parts.push(part),
        }
    }
    parts.iter().fold(root.to_path_buf(), |p, c| p.join(c))
}

fn mkdir_p(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(io("create folder", path))
}

fn touch(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        mkdir_p(parent)?;
    }
    if !path.exists() {
        fs::File::create(path).map_err(io("create file", path))?;
    }
    Ok(())
}

/// Mount the overlay root at `state_dir/rootfs` and return it.
pub fn mount_overlay(spec: &ContainerSpec) -> Result<PathBuf> {
    if spec.lower_dirs.is_empty() {
        return Err(RootfsError::NoLayers);
    }
    let rootfs = spec.state_dir.join("rootfs");
    let upper = spec.state_dir.join("upper");
    let work = spec.state_dir.join("work");
    for d in [&rootfs, &upper, &work] {
        mkdir_p(d)?;
    }
    // overlayfs lists lower dirs top first; the spec lists them lowest first.
    let lower: Vec<String> = spec
        .lower_dirs
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    do_mount(
        Some("overlay"),
        &rootfs,
        Some("overlay"),
        MsFlags::empty(),
        Some(&data),
    )?;
    Ok(rootfs)
}

/// Docker's masked paths: hidden under /dev/null (files) or an empty read-only tmpfs (dirs).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only /proc paths.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Build the whole filesystem view and pivot into it. `sysctls` are written once /proc is
/// mounted and before /proc/sys turns read-only.
/// With `console`, a pty pair is allocated from the container's devpts and its slave bound on
/// `/dev/console`; the pair is returned for the caller to install as stdio.
pub fn setup(
    spec: &ContainerSpec,
    sysctls: &[(String, String)],
    cgroup_path: &Path,
    console: bool,
) -> Result<Option<super::tty::Pair>> {
    // Nothing we mount may propagate back to the host.
    do_mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None,
    )?;
    let root = mount_overlay(spec)?;
    let nosuid_noexec_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;

    let proc_ = root.join("proc");
    mkdir_p(&proc_)?;
    do_mount(
        Some("proc"),
        &proc_,
        Some("proc"),
        nosuid_noexec_nodev,
        None,
    )?;

    let sys_ = root.join("sys");
    mkdir_p(&sys_)?;
    let sys_flags = nosuid_noexec_nodev
        | if spec.security.privileged {
            MsFlags::empty()
        } else {
            MsFlags::MS_RDONLY
        };
    if mount(Some("sysfs"), &sys_, Some("sysfs"), sys_flags, None::<&str>).is_err() {
        // A shared (host) network namespace cannot get its own sysfs: bind the host's.
        bind(Path::new("/sys"), &sys_, MsFlags::empty())?;
        if !spec.security.privileged {
            remount_ro(&sys_, MsFlags::MS_REC)?;
        }
    }

    mount_cgroups(&sys_, spec.security.privileged, cgroup_path)?;
    let pair = setup_dev(spec, &root, console)?;

    for m in &spec.mounts {
        apply_mount(&root, m)?;
    }
    for d in &spec.security.devices {
        let target = secure_join(&root, &d.container_path);
        make_device_node(&d.host_path, &target)?;
    }

    for (key, value) in sysctls {
        let path = proc_.join("sys").join(key.replace('.', "/"));
        fs::write(&path, value).map_err(io("write sysctl", &path))?;
    }

    if !spec.security.privileged {
        for p in MASKED_PATHS {
            let target = secure_join(&root, p);
            match fs::metadata(&target) {
                Ok(m) if m.is_dir() => do_mount(
                    Some("tmpfs"),
                    &target,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY,
                    None,
                )?,
                Ok(_) => bind(Path::new("/dev/null"), &target, MsFlags::empty())?,
                Err(_) => {}
            }
        }
        for p in READONLY_PATHS {
            let target = secure_join(&root, p);
            if target.exists() {
                bind(&target, &target, MsFlags::empty())?;
                remount_ro(&target, MsFlags::MS_REC | nosuid_noexec_nodev)?;
            }
        }
    }

    if spec.read_only {
        bind(&root, &root, MsFlags::empty())?;
        remount_ro(&root, MsFlags::empty())?;
    }
    pivot(&root)?;
    Ok(pair)
}

/// The host's cgroup hierarchies under /sys/fs/cgroup, from our (still host-like) mountinfo:
/// `(folder name, fstype, options)`.
fn host_cgroup_mounts() -> Vec<(String, String, String)> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mountpoint = left.split_whitespace().nth(4).unwrap_or("");
        let mut r = right.split_whitespace();
        let (fstype, _src, opts) = (r.next().unwrap_or(""), r.next(), r.next().unwrap_or(""));
        let Some(name) = mountpoint.strip_prefix("/sys/fs/cgroup/") else {
            continue;
        };
        if (fstype == "cgroup" || fstype == "cgroup2") && !name.contains('/') {
            let opts: Vec<&str> = opts
                .split(',')
                .filter(|o| *o != "rw" && *o != "ro")
                .collect();
            out.push((name.to_string(), fstype.to_string(), opts.join(",")));
        }
    }
    out
}

/// /sys/fs/cgroup as Docker shows it: a tmpfs with, for each v1 hierarchy, the container's own
/// cgroup folder bound in (bind mounts, as runc does: mounting the hierarchies afresh costs
/// ~20 ms of kernel time per container); read-only unless privileged.
fn mount_cgroups(sys_: &Path, privileged: bool, cgroup_path: &Path) -> Result<()> {
    let base = sys_.join("fs/cgroup");
    if !base.is_dir() {
        return Ok(());
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    if fs::metadata("/sys/fs/cgroup/cgroup.controllers").is_ok() {
        // Unified hierarchy only: the container's folder as the whole tree.
        let own = Path::new("/sys/fs/cgroup").join(cgroup_path);
        bind(&own, &base, MsFlags::empty())?;
        if !privileged {
            remount_ro(&base, flags)?;
        }
        return Ok(());
    }
    do_mount(Some("tmpfs"), &base, Some("tmpfs"), flags, Some("mode=755"))?;
    for (name, fstype, _opts) in host_cgroup_mounts() {
        let own = Path::new("/sys/fs/cgroup").join(&name).join(cgroup_path);
        if fstype != "cgroup" || !own.is_dir() {
            continue;
        }
        let dir = base.join(&name);
        mkdir_p(&dir)?;
        bind(&own, &dir, MsFlags::empty())?;
        if !privileged {
            remount_ro(&dir, flags)?;
        }
    }
    if !privileged {
        remount_ro_fs(&base, flags)?;
    }
    Ok(())
}

fn remount_ro_fs(target: &Path, flags: MsFlags) -> Result<()> {
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags,
        None::<&str>,
    )
    .map_err(sys("remount read-only", target))
}

fn setup_dev(spec: &ContainerSpec, root: &Path, console: bool) -> Result<Option<super::tty::Pair>> {
    let dev = root.join("dev");
    mkdir_p(&dev)?;
    do_mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let path = dev.join(name);
        nix::sys::stat::mknod(
            &path,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(major, minor),
        )
        .map_err(sys("mknod", &path))?;
        // mknod honours the umask; the nodes must be 0666 as in Docker.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666))
            .map_err(io("chmod", &path))?;
    }
    let pts = dev.join("pts");
    mkdir_p(&pts)?;
    do_mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    std::os::unix::fs::symlink("pts/ptmx", dev.join("ptmx"))
        .map_err(io("symlink", &dev.join("ptmx")))?;
    let shm = dev.join("shm");
    mkdir_p(&shm)?;
    let size = spec.shm_size.unwrap_or(64 << 20);
    do_mount(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
        Some(&format!("mode=1777,size={size}")),
    )?;
    let mq = dev.join("mqueue");
    mkdir_p(&mq)?;
    if !matches!(spec.namespaces.ipc, ShareMode::Host) {
        do_mount(
            Some("mqueue"),
            &mq,
            Some("mqueue"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
            None,
        )?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(link))
            .map_err(io("symlink", &dev.join(link)))?;
    }
    if !console {
        if spec.process.tty {
            // A pty the caller gave as stdio becomes /dev/console when the kernel lets us bind
            // it (a pty of the test's own devpts does; the CLI's gets EINVAL, so `run -t` and
            // `exec -t` use a terminal of the container's own instead).
            let console = dev.join("console");
            touch(&console)?;
            // Bind by path: the magic link /proc/self/fd/0 points into the host's mount
            // namespace, which bind refuses (EINVAL); its path resolves in our copy of the host
            // mounts.
            let pty = fs::read_link("/proc/self/fd/0")
                .map_err(io("read link", Path::new("/proc/self/fd/0")))?;
            bind(&pty, &console, MsFlags::empty())?;
        }
        return Ok(None);
    }
    // A pty of the container's own devpts: its slave is /dev/console, as in Docker. (A pty
    // of the host's devpts cannot be bound here: the bind fails with EINVAL.)
    let pair = super::tty::open_pair(&dev.join("pts/ptmx")).map_err(RootfsError::Console)?;
    let console = dev.join("console");
    touch(&console)?;
    bind(
        &dev.join("pts").join(pair.number.to_string()),
        &console,
        MsFlags::empty(),
    )?;
    Ok(Some(pair))
}

fn make_device_node(host: &Path, target: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = fs::metadata(host).map_err(io("stat device", host))?;
    let kind = if meta.file_type().is_block_device() {
        nix::sys::stat::SFlag::S_IFBLK
    } else {
        nix::sys::stat::SFlag::S_IFCHR
    };
    if let Some(parent) = target.parent() {
        mkdir_p(parent)?;
    }
    let _ = fs::remove_file(target);
    nix::sys::stat::mknod(
        target,
        kind,
        nix::sys::stat::Mode::from_bits_truncate(meta.mode() & 0o777),
        meta.rdev(),
    )
    .map_err(sys("mknod", target))
}

fn propagation_flags(p: Propagation) -> MsFlags {
    match p {
        Propagation::Private => MsFlags::MS_PRIVATE,
        Propagation::Rprivate => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        Propagation::Shared => MsFlags::MS_SHARED,
        Propagation::Rshared => MsFlags::MS_SHARED | MsFlags::MS_REC,
        Propagation::Slave => MsFlags::MS_SLAVE,
        Propagation::Rslave => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    }
}

fn check_abs(target: &str) -> Result<()> {
    if target.starts_with('/') {
        Ok(())
    } else {
        Err(RootfsError::RelativeTarget(target.into()))
    }
}

fn apply_mount(root: &Path, m: &MountSpec) -> Result<()> {
    match m {
        MountSpec::Bind {
            source,
            target,
            read_only,
            propagation,
            create_host_path,
        } => {
            check_abs(target)?;
            if !source.exists() && *create_host_path {
                mkdir_p(source)?;
            }
            let meta = fs::metadata(source).map_err(io("bind source", source))?;
            let dst = secure_join(root, target);
            if meta.is_dir() {
                mkdir_p(&dst)?
            } else {
                touch(&dst)?
            }
            bind(source, &dst, MsFlags::empty())?;
            if *read_only {
                remount_ro(&dst, MsFlags::MS_REC)?;
            }
            if let Some(p) = propagation {
                do_mount(None, &dst, None, propagation_flags(*p), None)?;
            }
        }
        MountSpec::Volume {
            source,
            target,
            read_only,
            nocopy,
        } => {
            check_abs(target)?;
            let dst = secure_join(root, target);
            mkdir_p(source)?;
            let empty = fs::read_dir(source)
                .map_err(io("read volume", source))?
                .next()
                .is_none();
            if empty && !nocopy && dst.is_dir() {
                // First use of an empty volume: fill it with the image's content, as Docker does.
                copy_tree(&dst, source)?;
            }
            mkdir_p(&dst)?;
            bind(source, &dst, MsFlags::empty())?;
            if *read_only {
                remount_ro(&dst, MsFlags::MS_REC)?;
            }
        }
        MountSpec::Tmpfs { target, size, mode } => {
            check_abs(target)?;
            let dst = secure_join(root, target);
            mkdir_p(&dst)?;
            let mut data = format!("mode={:o}", mode.unwrap_or(0o1777));
            if let Some(s) = size {
                data.push_str(&format!(",size={s}"));
            }
            do_mount(
                Some("tmpfs"),
                &dst,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(&data),
            )?;
        }
        MountSpec::File {
            source,
            target,
            read_only,
        } => {
            check_abs(target)?;
            let dst = secure_join(root, target);
            touch(&dst)?;
            bind(source, &dst, MsFlags::empty())?;
            if *read_only {
                remount_ro(&dst, MsFlags::empty())?;
            }
        }
    }
    Ok(())
}

/// Copy a folder tree keeping modes, owners and symlinks (volume first-use fill).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in fs::read_dir(from).map_err(io("read folder", from))? {
        let entry = entry.map_err(io("read folder", from))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&src).map_err(io("stat", &src))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            mkdir_p(&dst)?;
            copy_tree(&src, &dst)?;
        } else if ft.is_symlink() {
            let t = fs::read_link(&src).map_err(io("read link", &src))?;
            std::os::unix::fs::symlink(t, &dst).map_err(io("symlink", &dst))?;
        } else if ft.is_file() {
            fs::copy(&src, &dst).map_err(io("copy", &dst))?;
        } else {
            continue;
        }
        std::os::unix::fs::lchown(&dst, Some(meta.uid()), Some(meta.gid()))
            .map_err(io("chown", &dst))?;
        if !ft.is_symlink() {
            fs::set_permissions(&dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(io("chmod", &dst))?;
        }
    }
    Ok(())
}

/// pivot_root(".", ".") then detach the old root stacked on top (the runc trick: no
/// temporary folder needed in the image).
fn pivot(root: &Path) -> Result<()> {
    nix::unistd::chdir(root).map_err(sys("chdir", root))?;
    nix::unistd::pivot_root(".", ".").map_err(sys("pivot_root", root))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(sys("detach old root", Path::new("/")))?;
    nix::unistd::chdir("/").map_err(sys("chdir", Path::new("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_join_keeps_symlinks_inside_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("data")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("up")).unwrap();
        assert_eq!(secure_join(root, "/data/x"), root.join("etc/x"));
        assert_eq!(secure_join(root, "/up/x"), root.join("etc/x"));
        assert_eq!(secure_join(root, "/../../x"), root.join("x"));
        assert_eq!(secure_join(root, "/a/b"), root.join("a/b"));
    }
}
