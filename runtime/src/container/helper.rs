//! The single-threaded helper: this binary re-executed in a hidden mode (`rcompose
//! __rcompose-container-helper`) from a sealed memfd copy (CVE-2019-5736: a container process
//! that opens /proc/<pid>/exe of a runtime process inside its namespaces can only reach the
//! sealed copy, never the binary on disk). The supervisor may be multi-threaded (tokio), and
//! forking it without exec is unsafe; this process has one thread, so it may fork freely.
//!
//! Create: read the request on fd 3, join the cgroup, join/unshare namespaces, fork the
//! container process (pid 1 of its pid namespace), which builds the rootfs, resolves user and
//! binary, reports "OK" and blocks on `state_dir/start.fifo` until `start`. The helper replies
//! with the container pid and exits; the container is reparented to the caller, a subreaper.
//!
//! Exec: join the cgroup and every namespace of the container's pid 1, fork, exec.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use caps::CapSet;
use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Gid, Pid, Uid};
use seccompiler::BpfProgram;
use serde::{Deserialize, Serialize};

use super::cgroups::{self, DeviceRules};
use super::rootfs;
use super::seccomp;
use super::security::{self, ResolvedUser};
use super::spec::{ContainerSpec, ExecSpec, NetMode, ProcessSpec, ShareMode};

/// The hidden first argument that selects helper mode (see `src/main.rs`).
pub const HELPER_ARG: &str = "__rcompose-container-helper";

/// Docker's default PATH when the image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    Create {
        spec: ContainerSpec,
        cgroup_root: PathBuf,
        cgroup_path: PathBuf,
        /// Allocate a pty in the container (see [`super::tty`]) and pass its master back.
        #[serde(default)]
        terminal: bool,
    },
    Exec {
        target_pid: i32,
        spec: ContainerSpec,
        exec: ExecSpec,
        cgroup_root: PathBuf,
        cgroup_path: PathBuf,
        #[serde(default)]
        terminal: bool,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    Ok { pid: i32 },
    Err { message: String },
}

/// Entry point of helper mode; never returns.
pub fn helper_main() -> ! {
    // Re-exec from a sealed memfd unless the caller already started us from one.
    if !pentacle::is_sealed() {
        if let Err(e) = pentacle::ensure_sealed() {
            eprintln!("rcompose helper: cannot seal the helper binary: {e}");
            std::process::exit(1);
        }
    }
    // SAFETY: fd 3 is the socket the caller installed with dup2 before exec; nothing else owns it.
    let mut sock = unsafe { UnixStream::from_raw_fd(3) };
    let mut buf = Vec::new();
    let reply = match sock
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_slice::<Request>(&buf).map_err(|e| e.to_string()))
    {
        Err(e) => Reply::Err {
            message: format!("bad helper request: {e}"),
        },
        Ok(Request::Create {
            spec,
            cgroup_root,
            cgroup_path,
            terminal,
        }) => match create(&spec, &cgroup_root, &cgroup_path, terminal) {
            Ok(pid) => Reply::Ok { pid },
            Err(message) => Reply::Err { message },
        },
        Ok(Request::Exec {
            target_pid,
            spec,
            exec,
            cgroup_root,
            cgroup_path,
            terminal,
        }) => match exec_in(
            target_pid,
            &spec,
            &exec,
            &cgroup_root,
            &cgroup_path,
            terminal,
        ) {
            Ok(pid) => Reply::Ok { pid },
            Err(message) => Reply::Err { message },
        },
    };
    let _ = sock.write_all(&serde_json::to_vec(&reply).unwrap_or_default());
    std::process::exit(0)
}

/// The caller reads the reply until EOF: the forked process must not keep the socket open.
fn close_request_socket() {
    // SAFETY: fd 3 is the request socket, owned by the parent's `UnixStream`; this forked copy
    // never uses it.
    unsafe {
        libc::close(3);
    }
}

/// Everything the container process needs to drop privileges and exec, computed before fork
/// so that configuration errors surface at create time.
struct Privileges {
    caps: caps::CapsHashSet,
    seccomp: Vec<BpfProgram>,
    no_new_privs: bool,
    rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
}

fn privileges(spec: &ContainerSpec, privileged: bool) -> Result<Privileges, String> {
    let mut sec = spec.security.clone();
    sec.privileged |= privileged;
    let mut caps = security::capabilities(&sec).map_err(|e| e.to_string())?;
    // `privileged` and `ALL` mean every capability this host can grant (this machine's bounding
    // set lacks CAP_SYS_RESOURCE, for one).
    let bounding =
        caps::read(None, CapSet::Bounding).map_err(|e| format!("read the bounding set: {e}"))?;
    caps.retain(|c| bounding.contains(c));
    let seccomp = if sec.privileged || sec.seccomp_unconfined {
        Vec::new()
    } else {
        let target = seccomp::Target::host(&caps);
        match &sec.seccomp_profile {
            Some(f) => seccomp::Profile::from_json(&f.path, &f.json)
                .and_then(|p| p.compile(&f.path, &target)),
            None => seccomp::default_profile().compile("default", &target),
        }
        .map_err(|e| e.to_string())?
    };
    let rlimits = security::check_ulimits(&sec).map_err(|e| e.to_string())?;
    Ok(Privileges {
        caps,
        seccomp,
        no_new_privs: sec.no_new_privileges,
        rlimits,
    })
}

fn open_ns(path: &Path) -> Result<std::fs::File, String> {
    std::fs::File::open(path).map_err(|e| format!("open namespace {}: {e}", path.display()))
}

fn setns(file: &std::fs::File, kind: CloneFlags, path: &Path) -> Result<(), String> {
    tracing::debug!(path = %path.display(), "setns");
    nix::sched::setns(file, kind).map_err(|e| format!("join namespace {}: {e}", path.display()))
}

pub(crate) fn device_rules(spec: &ContainerSpec) -> Result<DeviceRules, String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut extra = Vec::new();
    for d in &spec.security.devices {
        let meta = std::fs::metadata(&d.host_path)
            .map_err(|e| format!("device {}: {e}", d.host_path.display()))?;
        let kind = if meta.file_type().is_block_device() {
            'b'
        } else if meta.file_type().is_char_device() {
            'c'
        } else {
            return Err(format!(
                "device {}: not a device node",
                d.host_path.display()
            ));
        };
        let perms = if d.permissions.is_empty() {
            "rwm"
        } else {
            &d.permissions
        };
        extra.push(format!(
            "{kind} {}:{} {perms}",
            nix::sys::stat::major(meta.rdev()),
            nix::sys::stat::minor(meta.rdev())
        ));
    }
    Ok(DeviceRules {
        allow_all: spec.security.privileged,
        extra,
    })
}

fn create(
    spec: &ContainerSpec,
    cgroup_root: &Path,
    cgroup_path: &Path,
    terminal: bool,
) -> Result<i32, String> {
    let privs = privileges(spec, false)?;
    // The caller created the cgroup and wrote its limits while this process started.
    let cg = cgroups::open(cgroup_root, cgroup_path);
    // The helper joins first so the cgroup namespace created below is rooted at the container's
    // cgroup; the caller removes the cgroup if anything fails.
    cg.add_self_single_threaded().map_err(|e| e.to_string())?;

    if let Some(adj) = spec.oom_score_adj {
        // Inherited by the container's processes through fork and exec.
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|e| {
            format!("oom_score_adj {adj}: {e} (lowering it needs CAP_SYS_RESOURCE)")
        })?;
    }
    let mut flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWCGROUP;
    match &spec.namespaces.net {
        NetMode::New => flags |= CloneFlags::CLONE_NEWNET,
        NetMode::Join(path) => setns(&open_ns(path)?, CloneFlags::CLONE_NEWNET, path)?,
        NetMode::Host => {}
    }
    for (mode, kind, name) in [
        (&spec.namespaces.uts, CloneFlags::CLONE_NEWUTS, "uts"),
        (&spec.namespaces.ipc, CloneFlags::CLONE_NEWIPC, "ipc"),
        (&spec.namespaces.pid, CloneFlags::CLONE_NEWPID, "pid"),
    ] {
        match mode {
            ShareMode::New => flags |= kind,
            ShareMode::Host => {}
            ShareMode::JoinPid(pid) => {
                let path = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
                setns(&open_ns(&path)?, kind, &path)?;
            }
        }
    }
    tracing::debug!(?flags, "unshare");
    nix::sched::unshare(flags).map_err(|e| format!("unshare namespaces: {e}"))?;
    if flags.contains(CloneFlags::CLONE_NEWNET) {
        // A new network namespace starts with loopback down; Docker's `none` has it up.
        loopback_up()?;
    }

    let (status_r, status_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the helper is single-threaded, so the child may run arbitrary code after fork.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop(status_r);
            if !terminal {
                close_request_socket();
            }
            let message = container_process(spec, &privs, &status_w, cgroup_path, terminal);
            // After start the helper is gone: the error goes to the container's stderr.
            if nix::unistd::write(&status_w, format!("ERR {message}\n").as_bytes()).is_err() {
                eprintln!("rcompose: service {}: {message}", spec.service);
            }
            // SAFETY: _exit skips atexit handlers and destructors of the forked copy.
            unsafe { libc::_exit(1) }
        }
        ForkResult::Parent { child } => {
            drop(status_w);
            // One line: the container process keeps the pipe open while it waits on the fifo.
            let mut text = String::new();
            let _ = std::io::BufRead::read_line(
                &mut std::io::BufReader::new(std::fs::File::from(status_r)),
                &mut text,
            );
            let line = text.trim_end();
            if line == "OK" {
                Ok(child.as_raw())
            } else {
                let _ = nix::sys::wait::waitpid(child, None);
                Err(line
                    .strip_prefix("ERR ")
                    .unwrap_or("the container process died during setup")
                    .to_string())
            }
        }
    }
}

/// Bring `lo` of the caller's network namespace up (SIOCSIFFLAGS on a throwaway socket).
fn loopback_up() -> Result<(), String> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("loopback: socket: {e}"))?;
    // SAFETY: an all-zero ifreq is valid; the name is copied in below, NUL-terminated.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own; the union member
    // used is ifru_flags, as the ioctls define.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
            return Err(format!(
                "loopback: get flags: {}",
                std::io::Error::last_os_error()
            ));
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) != 0 {
            return Err(format!(
                "loopback: set up: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Runs as pid 1 of the new namespaces. Returns only on error (the message).
fn container_process(
    spec: &ContainerSpec,
    privs: &Privileges,
    status: &OwnedFd,
    cgroup_path: &Path,
    terminal: bool,
) -> String {
    if let Err(e) = nix::unistd::setsid() {
        return format!("setsid: {e}");
    }
    // A terminal the caller gave (a pty of the host) as stdio becomes the controlling terminal
    // here; a terminal of our own comes after the root filesystem (its devpts) exists.
    if spec.process.tty && !terminal {
        // SAFETY: TIOCSCTTY on fd 0 (the pty slave) with arg 0 has no memory effects.
        if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
            return format!(
                "set controlling terminal: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    let fifo_path = spec.state_dir.join("start.fifo");
    // O_PATH now, reopened for writing after pivot_root through /proc/self/fd.
    let fifo = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(&fifo_path)
    {
        Ok(f) => f,
        Err(e) => return format!("open {}: {e}", fifo_path.display()),
    };
    let sysctls: Vec<(String, String)> = spec
        .security
        .sysctls
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match rootfs::setup(spec, &sysctls, cgroup_path, terminal) {
        Err(e) => return e.to_string(),
        Ok(Some(pair)) => {
            if let Err(e) = super::tty::become_terminal(&pair.slave)
                .and_then(|_| super::tty::send_fd(3, &pair.master))
            {
                return e;
            }
            // The caller reads its reply until EOF: our copy of the socket goes now.
            close_request_socket();
        }
        Ok(None) => {}
    }
    // With `uts: host` the names are the host's: never change them.
    let own_uts = !matches!(spec.namespaces.uts, ShareMode::Host);
    if let Some(h) = spec.hostname.as_ref().filter(|_| own_uts) {
        if let Err(e) = nix::unistd::sethostname(h) {
            return format!("set hostname {h:?}: {e}");
        }
    }
    if let Some(d) = spec.domainname.as_ref().filter(|_| own_uts) {
        // SAFETY: the pointer and length describe the string's bytes.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return format!("set domainname {d:?}: {}", std::io::Error::last_os_error());
        }
    }
    let prepared = match prepare_process(&spec.process, spec.hostname.as_deref()) {
        Ok(p) => p,
        Err(e) => return e,
    };
    if nix::unistd::write(status, b"OK\n").is_err() {
        return "report readiness: the helper is gone".into();
    }
    // Block until `start` opens the fifo for reading.
    let reopen = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&reopen)
    {
        Ok(mut w) => {
            if let Err(e) = w.write_all(b"1") {
                return format!("start fifo: {e}");
            }
        }
        Err(e) => return format!("start fifo: {e}"),
    }
    drop(fifo);
    finalize(prepared, privs, spec.init)
}

/// The process after lookups: absolute binary path, argv, env, user.
struct Prepared {
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
    user: ResolvedUser,
}

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"))
}

/// Resolve user, env, working folder and binary inside the container's root (called after
/// pivot_root or setns into the mount namespace).
fn prepare_process(p: &ProcessSpec, hostname: Option<&str>) -> Result<Prepared, String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let user = security::resolve_user(p.user.as_deref(), &p.group_add, &passwd, &group)
        .map_err(|e| e.to_string())?;
    let mut env = p.env.clone();
    let has = |env: &[String], k: &str| {
        env.iter()
            .any(|e| e.split_once('=').map(|(n, _)| n) == Some(k))
    };
    if !has(&env, "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has(&env, "HOSTNAME") {
        if let Some(h) = hostname {
            env.push(format!("HOSTNAME={h}"));
        }
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={}", user.home));
    }
    let cwd = p.cwd.clone().unwrap_or_else(|| "/".into());
    // Docker creates a missing working_dir.
    std::fs::create_dir_all(&cwd).map_err(|e| format!("working_dir {cwd}: {e}"))?;
    nix::unistd::chdir(cwd.as_str()).map_err(|e| format!("working_dir {cwd}: {e}"))?;
    let argv0 = p
        .args
        .first()
        .ok_or("no command: the service and its image give no entrypoint or command")?;
    let path = if argv0.contains('/') {
        PathBuf::from(argv0)
    } else {
        let search = env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .to_string();
        search
            .split(':')
            .map(|d| Path::new(d).join(argv0))
            .find(|c| nix::unistd::access(c, nix::unistd::AccessFlags::X_OK).is_ok() && c.is_file())
            .ok_or_else(|| format!("executable {argv0:?} not found in PATH {search:?}"))?
    };
    if nix::unistd::access(&path, nix::unistd::AccessFlags::X_OK).is_err() || !path.is_file() {
        return Err(format!(
            "executable {} not found or not executable",
            path.display()
        ));
    }
    Ok(Prepared {
        path: cstring(&path.to_string_lossy())?,
        args: p
            .args
            .iter()
            .map(|a| cstring(a))
            .collect::<Result<_, _>>()?,
        env: env.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?,
        user,
    })
}

/// rlimits, user, capabilities, no_new_privs, seccomp, fd hygiene, exec. Returns on error.
fn finalize(p: Prepared, privs: &Privileges, init: bool) -> String {
    for &(res, soft, hard) in &privs.rlimits {
        let lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(res, &lim) } != 0 {
            return format!("setrlimit: {}", std::io::Error::last_os_error());
        }
    }
    // Without no_new_privs the filter goes on while we still hold CAP_SYS_ADMIN (the filter
    // allows the setuid/capset calls that follow), as runc does.
    if !privs.no_new_privs {
        if let Err(e) = apply_seccomp(&privs.seccomp) {
            return e;
        }
    }
    for cap in caps::all() {
        if !privs.caps.contains(&cap) {
            if let Err(e) = caps::drop(None, CapSet::Bounding, cap) {
                return format!("drop {cap} from the bounding set: {e}");
            }
        }
    }
    let groups: Vec<Gid> = p.user.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    if let Err(e) = nix::unistd::setgroups(&groups) {
        return format!("setgroups: {e}");
    }
    if let Err(e) = nix::unistd::setresgid(
        Gid::from_raw(p.user.gid),
        Gid::from_raw(p.user.gid),
        Gid::from_raw(p.user.gid),
    ) {
        return format!("setgid {}: {e}", p.user.gid);
    }
    let uid = Uid::from_raw(p.user.uid);
    // A non-root uid loses permitted and effective capabilities here (no keepcaps), as in Docker.
    if let Err(e) = nix::unistd::setresuid(uid, uid, uid) {
        return format!("setuid {}: {e}", p.user.uid);
    }
    let set: caps::CapsHashSet = privs.caps.iter().copied().collect();
    let empty = caps::CapsHashSet::new();
    let _ = caps::clear(None, CapSet::Ambient);
    // Inheritable stays empty (CVE-2022-24769).
    if let Err(e) = caps::set(None, CapSet::Inheritable, &empty) {
        return format!("clear inheritable capabilities: {e}");
    }
    if p.user.uid == 0 {
        if let Err(e) = caps::set(None, CapSet::Effective, &set)
            .and_then(|_| caps::set(None, CapSet::Permitted, &set))
        {
            return format!("set capabilities: {e}");
        }
    }
    if privs.no_new_privs {
        if let Err(e) = nix::sys::prctl::set_no_new_privs() {
            return format!("no_new_privs: {e}");
        }
        if let Err(e) = apply_seccomp(&privs.seccomp) {
            return e;
        }
    }
    // No helper descriptor may reach the user process: everything above stdio closes on exec.
    // SAFETY: close_range with CLOEXEC only flags descriptors.
    if unsafe { libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) } != 0 {
        return format!("close_range: {}", std::io::Error::last_os_error());
    }
    if init {
        super::init::run(&p.path, &p.args, &p.env);
    }
    match nix::unistd::execve(&p.path, &p.args, &p.env) {
        Err(e) => format!("exec {}: {e}", p.path.to_string_lossy()),
    }
}

/// Install the filters with seccomp(2) directly: seccompiler's `apply_filter` also sets
/// no_new_privs, which Docker only sets for `no-new-privileges`. Without it the kernel requires
/// CAP_SYS_ADMIN, which we hold until the capability drop that follows.
fn apply_seccomp(filters: &[BpfProgram]) -> Result<(), String> {
    for f in filters {
        let prog = libc::sock_fprog {
            len: f.len() as u16,
            filter: f.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at `f`, a live Vec of BPF instructions whose layout matches
        // `struct sock_filter` (seccompiler's `sock_filter` is repr(C) with the same fields).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(format!(
                "install seccomp filter: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

fn exec_in(
    target: i32,
    spec: &ContainerSpec,
    exec: &ExecSpec,
    cgroup_root: &Path,
    cgroup_path: &Path,
    terminal: bool,
) -> Result<i32, String> {
    let privs = privileges(spec, exec.privileged)?;
    let cg = cgroups::open(cgroup_root, cgroup_path);
    cg.add_self_single_threaded().map_err(|e| e.to_string())?;
    // mnt goes last: after it, /proc/<target> paths would resolve inside the container.
    let kinds = [
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ];
    let mut files = Vec::new();
    for (name, kind) in kinds {
        let path = PathBuf::from(format!("/proc/{target}/ns/{name}"));
        let same = std::fs::read_link(&path).ok()
            == std::fs::read_link(format!("/proc/self/ns/{name}")).ok();
        if !same {
            files.push((open_ns(&path)?, kind, path));
        }
    }
    for (f, kind, path) in &files {
        setns(f, *kind, path)?;
    }
    drop(files);
    // After the mount namespace: /dev/ptmx is the container's devpts (its root is ours now).
    let pair = if terminal {
        let pair = super::tty::open_pair(Path::new("/dev/ptmx"))?;
        super::tty::send_fd(3, &pair.master)?;
        Some(pair)
    } else {
        None
    };
    let (status_r, status_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the helper is single-threaded.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop(status_r);
            close_request_socket();
            let message = exec_child(spec, exec, &privs, pair.as_ref().map(|p| &p.slave));
            let _ = nix::unistd::write(&status_w, message.as_bytes());
            // SAFETY: _exit in the forked child.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => {
            drop(status_w);
            // The process and the caller hold the pty now; our copies must not keep it open.
            drop(pair);
            let mut text = String::new();
            let _ = std::fs::File::from(status_r).read_to_string(&mut text);
            if text.is_empty() {
                Ok(child.as_raw())
            } else {
                let _ = nix::sys::wait::waitpid(child, None);
                Err(text)
            }
        }
    }
}

fn exec_child(
    spec: &ContainerSpec,
    exec: &ExecSpec,
    privs: &Privileges,
    terminal: Option<&OwnedFd>,
) -> String {
    if let Err(e) = nix::unistd::setsid() {
        return format!("setsid: {e}");
    }
    if let Some(slave) = terminal {
        if let Err(e) = super::tty::become_terminal(slave) {
            return e;
        }
    } else if exec.process.tty {
        // SAFETY: TIOCSCTTY on fd 0 with arg 0.
        if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
            return format!(
                "set controlling terminal: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    let mut process = exec.process.clone();
    if process.user.is_none() {
        process.user = spec.process.user.clone();
    }
    match prepare_process(&process, spec.hostname.as_deref()) {
        Ok(p) => finalize(p, privs, false),
        Err(e) => e,
    }
}

/// Wait for a pid (used by tests and the init).
pub fn waitpid_raw(pid: i32) -> nix::Result<nix::sys::wait::WaitStatus> {
    nix::sys::wait::waitpid(Pid::from_raw(pid), None)
}
