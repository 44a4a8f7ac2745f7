//! Containers: the namespace and cgroup runtime. The supervisor builds a [`ContainerSpec`]
//! (plain data) and calls [`Runtime::create`]; a single-threaded helper (this binary
//! re-executed from a sealed copy, see [`helper`]) sets up cgroup, namespaces, the overlay
//! root and mounts, and leaves pid 1 blocked before exec until [`Created::start`]. The caller
//! is a child subreaper ([`become_subreaper`]) and reaps pid 1 ([`wait`]). Teardown works from
//! the recorded state alone ([`cleanup`]).
//!
//! Sync API: call it from a blocking thread, never from a tokio worker.

#![allow(unsafe_code)]

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

pub mod cgroups;
pub mod helper;
mod init;
pub mod logs;
pub mod rootfs;
pub mod seccomp;
pub mod security;
pub mod spec;
pub mod syscalls;
pub mod tty;

pub use cgroups::Stats;
pub use helper::{helper_main, HELPER_ARG};
pub use spec::*;

/// Errors of the container lifecycle; each names the container (and the service when the
/// configuration is at fault).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("service {service}: container {name}: {message}")]
    Create {
        service: String,
        name: String,
        message: String,
    },
    #[error("service {service}: container {name}: exec: {message}")]
    Exec {
        service: String,
        name: String,
        message: String,
    },
    #[error("container {name}: {what}: {source}")]
    Io {
        name: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("container {name}: {what}: {source}")]
    Sys {
        name: String,
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("container {name}: {source}")]
    Cgroup {
        name: String,
        #[source]
        source: cgroups::CgroupError,
    },
    #[error("container {name}: the container process exited before start")]
    ExitedBeforeStart { name: String },
    #[error("container state {path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("container {name}: cleanup: {}", errors.join("; "))]
    Cleanup { name: String, errors: Vec<String> },
}

pub type Result<T> = std::result::Result<T, Error>;

/// The runtime's fixed settings: where the helper binary is, the cgroup root, the state root
/// (its hash goes into cgroup names).
#[derive(Debug, Clone)]
pub struct Runtime {
    /// The binary to run in helper mode (`<helper> __rcompose-container-helper`).
    pub helper: PathBuf,
    /// `/sys/fs/cgroup` in production.
    pub cgroup_root: PathBuf,
    pub state_root: PathBuf,
}

/// The container's stdio: pipes the supervisor reads for logs, or a pty slave (all three) for
/// `tty: true`. `None` stdin means /dev/null.
#[derive(Debug)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

impl Stdio {
    /// The same descriptor (a pty slave) for stdin, stdout and stderr.
    pub fn tty(slave: OwnedFd) -> std::io::Result<Self> {
        Ok(Self {
            stdin: Some(slave.try_clone()?),
            stdout: slave.try_clone()?,
            stderr: slave,
        })
    }
}

/// A created container: the handle the supervisor keeps (also saved as
/// `state_dir/container.json`, so another process can [`Created::load`] it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Created {
    pub id: String,
    pub name: String,
    pub service: String,
    /// Host pid of the container's pid 1 (0 until the helper reported it).
    pub pid: i32,
    pub state_dir: PathBuf,
    pub cgroup_root: PathBuf,
    /// Relative cgroup path (`rcompose-<roothash>/<id>`).
    pub cgroup_path: PathBuf,
    pub stop_signal: i32,
    pub spec: ContainerSpec,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    /// Docker's exit code: the code, or 128 + signal.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

/// The end of a container: status and whether the kernel's OOM killer did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub status: ExitStatus,
    pub oom_killed: bool,
}

/// A process started by [`Created::exec`]; the caller reaps it with [`wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecProcess {
    pub pid: i32,
}

/// Make the calling process a child subreaper (PR_SET_CHILD_SUBREAPER), so container
/// processes are reparented to it when their helper exits.
pub fn become_subreaper() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)
}

fn decode(status: nix::sys::wait::WaitStatus) -> Option<ExitStatus> {
    use nix::sys::wait::WaitStatus as W;
    match status {
        W::Exited(_, c) => Some(ExitStatus::Code(c)),
        W::Signaled(_, s, _) => Some(ExitStatus::Signal(s as i32)),
        _ => None,
    }
}

/// Block until `pid` (a child or reparented descendant of the caller) ends.
pub fn wait(pid: i32) -> std::io::Result<ExitStatus> {
    loop {
        match nix::sys::wait::waitpid(Pid::from_raw(pid), None) {
            Ok(s) => {
                if let Some(st) = decode(s) {
                    return Ok(st);
                }
            }
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Non-blocking [`wait`].
pub fn try_wait(pid: i32) -> std::io::Result<Option<ExitStatus>> {
    match nix::sys::wait::waitpid(
        Pid::from_raw(pid),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    ) {
        Ok(s) => Ok(decode(s)),
        Err(e) => Err(e.into()),
    }
}

/// Sealed memfd copies of helper binaries, one per binary per process (CVE-2019-5736).
fn sealed_copies(
) -> std::sync::MutexGuard<'static, std::collections::HashMap<PathBuf, std::fs::File>> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static SEALED: OnceLock<Mutex<HashMap<PathBuf, std::fs::File>>> = OnceLock::new();
    SEALED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Processes whose sealed helper copies this process may reuse (see [`reuse_sealed_helper_of`]).
fn donors() -> std::sync::MutexGuard<'static, Vec<i32>> {
    use std::sync::{Mutex, OnceLock};
    static DONORS: OnceLock<Mutex<Vec<i32>>> = OnceLock::new();
    DONORS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// How every sealed copy is made and checked: executable, close-on-exec, sealed against
/// write, grow, shrink and further seal changes.
fn seal_options(name: &std::ffi::CStr) -> pentacle::SealOptions<'_> {
    pentacle::SealOptions::new()
        .memfd_name(name)
        .executable(true)
        .close_on_exec(true)
}

/// The memfd name that carries the identity of the binary on disk it copies (device, inode,
/// size, modification time), so another process can tell a copy of the same binary from a
/// copy of an older one that was replaced since.
fn sealed_name(path: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok(format!(
        "rcompose-helper-{:x}-{:x}-{:x}-{:x}.{:x}",
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

/// Let this process reuse the sealed helper copy that process `pid` (the project's supervisor)
/// made, instead of copying the binary again: a short-lived `rcompose exec` then starts its
/// helper from the supervisor's memfd, reached through `/proc/<pid>/fd`. The copy is used only
/// if it is a sealed copy of the very binary this process would seal; else [`Runtime`] copies
/// as before.
pub fn reuse_sealed_helper_of(pid: i32) {
    let mut d = donors();
    if !d.contains(&pid) {
        d.push(pid);
    }
}

/// Find, in a donor's descriptors, a sealed memfd named `name`, and open it for ourselves.
fn adopt_sealed(pid: i32, name: &str) -> Option<std::fs::File> {
    let want = format!("/memfd:{name} (deleted)");
    let dir = format!("/proc/{pid}/fd");
    for entry in std::fs::read_dir(&dir).ok()?.flatten() {
        match std::fs::read_link(entry.path()) {
            Ok(target) if target.as_os_str() == want.as_str() => {}
            _ => continue,
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(entry.path())
            .ok()?;
        let cname = std::ffi::CString::new(name).ok()?;
        if seal_options(&cname).is_sealed(&file) {
            tracing::debug!(pid, fd = %entry.path().display(), "reuse sealed helper");
            return Some(file);
        }
    }
    None
}

/// The sealed memfd copy of the helper binary (CVE-2019-5736: a container process that
/// reaches `/proc/<helper>/exe` finds this copy, which nobody can write, never the binary on
/// disk): adopted from a donor process, or made once per process. Returns the path to exec.
fn sealed_helper(path: &Path) -> std::io::Result<PathBuf> {
    let mut map = sealed_copies();
    if !map.contains_key(path) {
        let name = sealed_name(path)?;
        let donors = donors().clone();
        let sealed = match donors.iter().find_map(|pid| adopt_sealed(*pid, &name)) {
            Some(f) => f,
            None => {
                let cname = std::ffi::CString::new(name.as_str())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let options = seal_options(&cname);
                let mut file = options.create()?;
                copy_loadable_image(path, &mut file)?;
                options.seal(&mut file)?;
                file
            }
        };
        map.insert(path.to_path_buf(), sealed);
    }
    // Exec through the magic link: the fd is close-on-exec but still open while execve runs.
    Ok(PathBuf::from(format!(
        "/proc/self/fd/{}",
        map[path].as_raw_fd()
    )))
}

/// The part of an ELF64 executable the kernel and the dynamic loader use: everything up to the
/// end of the last segment, with the section header table dropped. Debug sections sit after
/// the segments and are most of a release binary (35 MB of 36 here), so sealing only this
/// makes the memfd copy ~30× smaller. `None` when the file is not a little-endian ELF64 (the
/// reference [`copy_loadable_image`] is tested against).
#[cfg(test)]
fn loadable_image(elf: &[u8]) -> Option<Vec<u8>> {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    };
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let (phoff, phentsize, phnum) = (
        u64_at(0x20)? as usize,
        u16_at(0x36)? as usize,
        u16_at(0x38)? as usize,
    );
    let mut end = phoff + phentsize * phnum;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        end = end.max((u64_at(ph + 8)? + u64_at(ph + 32)?) as usize);
    }
    if end > elf.len() {
        return None;
    }
    let mut image = elf[..end].to_vec();
    // No section headers: e_shoff, e_shnum, e_shstrndx.
    image[0x28..0x30].fill(0);
    image[0x3c..0x40].fill(0);
    Some(image)
}

/// The length of the loadable part of an ELF64 file (see [`loadable_image`]) from its first
/// bytes: the end of the last segment; `None` when `head` is not a little-endian ELF64 whose
/// program headers it holds.
fn loadable_len(head: &[u8], len: usize) -> Option<usize> {
    if head.len() < 64 || !head.starts_with(b"\x7fELF\x02\x01") {
        return None;
    }
    let phoff = u64::from_le_bytes(head[0x20..0x28].try_into().ok()?) as usize;
    let phentsize = u16::from_le_bytes([head[0x36], head[0x37]]) as usize;
    let phnum = u16::from_le_bytes([head[0x38], head[0x39]]) as usize;
    if phoff + phentsize * phnum > head.len() {
        return None;
    }
    let end = (0..phnum)
        .map(|i| {
            let ph = phoff + i * phentsize;
            let off = u64::from_le_bytes(head[ph + 8..ph + 16].try_into().unwrap_or_default());
            let size = u64::from_le_bytes(head[ph + 32..ph + 40].try_into().unwrap_or_default());
            (off + size) as usize
        })
        .max()?;
    (end <= len).then_some(end.max(head.len()))
}

/// Copy only the loadable part of the helper binary (see [`loadable_image`]) into `out` with
/// sendfile (page cache to memfd in the kernel, no user-space buffer), then clear the section
/// header fields; the whole file when it is not an ELF64.
fn copy_loadable_image(path: &Path, out: &mut std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len() as usize;
    let mut head = vec![0u8; 4096.min(len)];
    file.read_exact_at(&mut head, 0)?;
    let want = loadable_len(&head, len);
    let mut offset: libc::off_t = 0;
    let total = want.unwrap_or(len);
    while (offset as usize) < total {
        // SAFETY: both descriptors are open for the call; `offset` is a live local the kernel
        // advances.
        let n = unsafe {
            libc::sendfile(
                out.as_raw_fd(),
                file.as_raw_fd(),
                &mut offset,
                total - offset as usize,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} shrank while copied", path.display()),
            ));
        }
    }
    if want.is_some() {
        // No section headers: e_shoff, e_shnum, e_shstrndx.
        out.write_all_at(&[0u8; 8], 0x28)?;
        out.write_all_at(&[0u8; 4], 0x3c)?;
    }
    Ok(())
}

impl Runtime {
    /// Production settings: this binary as helper, `/sys/fs/cgroup`.
    pub fn new(state_root: impl Into<PathBuf>) -> std::io::Result<Self> {
        Ok(Self {
            helper: std::env::current_exe()?,
            cgroup_root: "/sys/fs/cgroup".into(),
            state_root: state_root.into(),
        })
    }

    /// Make the sealed helper copy now (a long-lived process does this once at start, so that
    /// short-lived processes can [`reuse_sealed_helper_of`] it from the first `exec` on).
    pub fn seal_helper(&self) -> std::io::Result<()> {
        sealed_helper(&self.helper).map(drop)
    }

    fn call_helper(
        &self,
        name: &str,
        request: &helper::Request,
        stdio: Stdio,
        prepare: impl FnOnce() -> std::result::Result<(), String>,
    ) -> std::result::Result<(i32, Option<OwnedFd>), String> {
        let (ours, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
        let exe = sealed_helper(&self.helper)
            .map_err(|e| format!("seal helper {}: {e}", self.helper.display()))?;
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg0("rcompose-helper").arg(HELPER_ARG).env_clear();
        cmd.stdin(
            stdio
                .stdin
                .map_or_else(std::process::Stdio::null, std::process::Stdio::from),
        );
        cmd.stdout(std::process::Stdio::from(stdio.stdout));
        cmd.stderr(std::process::Stdio::from(stdio.stderr));
        let fd = theirs.as_raw_fd();
        // SAFETY: only async-signal-safe calls (dup2, fcntl, close_range) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if fd == 3 {
                    if libc::fcntl(3, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(fd, 3) != 3 {
                    return Err(std::io::Error::last_os_error());
                }
                // The helper gets stdio and its socket (3), nothing else its caller left
                // inheritable.
                if libc::close_range(4, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("start helper {}: {e}", self.helper.display()))?;
        drop(theirs);
        drop(cmd);
        tracing::debug!(container = name, helper_pid = child.id(), "helper started");
        let mut sock = ours;
        // Work the caller can do while the helper execs (it blocks reading the request).
        if let Err(message) = prepare() {
            drop(sock);
            let _ = child.wait();
            return Err(message);
        }
        let body = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        let sent = sock
            .write_all(&body)
            .and_then(|_| sock.shutdown(std::net::Shutdown::Write));
        // The reply may carry a pty master (SCM_RIGHTS) before the JSON.
        let read = tty::recv_all(&sock);
        let status = child.wait().map_err(|e| format!("wait for helper: {e}"))?;
        sent.map_err(|e| format!("send request to helper: {e}"))?;
        let (reply, mut fds) = read.map_err(|e| format!("read helper reply: {e}"))?;
        match serde_json::from_slice::<helper::Reply>(&reply) {
            Ok(helper::Reply::Ok { pid }) => Ok((pid, fds.pop())),
            Ok(helper::Reply::Err { message }) => Err(message),
            Err(_) => Err(format!("helper failed ({status})")),
        }
    }

    /// Create the container: cgroup, namespaces, rootfs, mounts; pid 1 waits before exec.
    /// On any error nothing is left behind (no mount, cgroup or process).
    pub fn create(&self, spec: &ContainerSpec, stdio: Stdio) -> Result<Created> {
        self.create_inner(spec, stdio, false).map(|(c, _)| c)
    }

    /// [`Runtime::create`] with a terminal of the container's own (Docker's `tty: true`): a
    /// pty of the container's devpts is pid 1's stdin, stdout, stderr, controlling terminal and
    /// `/dev/console`. Returns the pty master, which the caller relays (and resizes with
    /// TIOCSWINSZ). `stdio` serves only until the terminal is in place (setup errors).
    pub fn create_with_terminal(
        &self,
        spec: &ContainerSpec,
        stdio: Stdio,
    ) -> Result<(Created, OwnedFd)> {
        let (created, master) = self.create_inner(spec, stdio, true)?;
        match master {
            Some(m) => Ok((created, m)),
            None => {
                let _ = cleanup(&created.state_dir);
                Err(Error::Create {
                    service: spec.service.clone(),
                    name: spec.name.clone(),
                    message: "terminal: the helper passed no pty master".into(),
                })
            }
        }
    }

    fn create_inner(
        &self,
        spec: &ContainerSpec,
        stdio: Stdio,
        terminal: bool,
    ) -> Result<(Created, Option<OwnedFd>)> {
        let span = tracing::debug_span!("container", name = %spec.name, service = %spec.service);
        let _g = span.enter();
        // Before anything exists: a global sysctl would change the host's kernel.
        spec.check_sysctls().map_err(|message| Error::Create {
            service: spec.service.clone(),
            name: spec.name.clone(),
            message,
        })?;
        let name = spec.name.clone();
        let io = |what: &str| {
            let name = name.clone();
            let what = what.to_string();
            move |source| Error::Io { name, what, source }
        };
        std::fs::create_dir_all(&spec.state_dir).map_err(io("create state folder"))?;
        let mut created = Created {
            id: spec.id.clone(),
            name: spec.name.clone(),
            service: spec.service.clone(),
            pid: 0,
            state_dir: spec.state_dir.clone(),
            cgroup_root: self.cgroup_root.clone(),
            cgroup_path: cgroups::relative_path(&self.state_root, &spec.id),
            stop_signal: spec.stop_signal.unwrap_or(libc::SIGTERM),
            spec: spec.clone(),
        };
        // Recorded before anything exists, so cleanup can find it after a crash.
        created.save()?;
        let fifo = spec.state_dir.join("start.fifo");
        let _ = std::fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(
            |source| Error::Sys {
                name: name.clone(),
                what: format!("mkfifo {}", fifo.display()),
                source,
            },
        )?;
        let request = helper::Request::Create {
            spec: spec.clone(),
            cgroup_root: created.cgroup_root.clone(),
            cgroup_path: created.cgroup_path.clone(),
            terminal,
        };
        let prepare = || {
            let cg = cgroups::open(&created.cgroup_root, &created.cgroup_path);
            cg.create(&spec.resources, &helper::device_rules(spec)?)
                .map_err(|e| e.to_string())
        };
        match self.call_helper(&spec.name, &request, stdio, prepare) {
            Ok((pid, master)) => {
                created.pid = pid;
                created.save()?;
                tracing::debug!(pid, "container created");
                Ok((created, master))
            }
            Err(message) => {
                let _ = cleanup(&spec.state_dir);
                Err(Error::Create {
                    service: spec.service.clone(),
                    name,
                    message,
                })
            }
        }
    }
}

impl Created {
    fn record_path(state_dir: &Path) -> PathBuf {
        state_dir.join("container.json")
    }

    /// Write `container.json` atomically (write + rename).
    fn save(&self) -> Result<()> {
        let path = Self::record_path(&self.state_dir);
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(self).map_err(|source| Error::State {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&tmp, body)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|source| Error::Io {
                name: self.name.clone(),
                what: format!("write {}", path.display()),
                source,
            })
    }

    /// Load the handle saved by `create`.
    pub fn load(state_dir: &Path) -> Result<Self> {
        let path = Self::record_path(state_dir);
        let body = std::fs::read(&path).map_err(|source| Error::Io {
            name: state_dir.display().to_string(),
            what: format!("read {}", path.display()),
            source,
        })?;
        serde_json::from_slice(&body).map_err(|source| Error::State { path, source })
    }

    pub fn cgroup(&self) -> Box<dyn cgroups::Cgroup> {
        cgroups::open(&self.cgroup_root, &self.cgroup_path)
    }

    fn cg_err(&self) -> impl FnOnce(cgroups::CgroupError) -> Error + '_ {
        move |source| Error::Cgroup {
            name: self.name.clone(),
            source,
        }
    }

    /// Release pid 1 to exec the user process.
    pub fn start(&self) -> Result<()> {
        let fifo = self.state_dir.join("start.fifo");
        let io = |what: &str| {
            let name = self.name.clone();
            let what = format!("{what} {}", fifo.display());
            move |source| Error::Io { name, what, source }
        };
        // O_RDWR on a fifo (Linux): the open never blocks and, as we are a writer too, a read
        // waits for pid 1's byte instead of returning EOF while pid 1 has not opened it yet.
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&fifo)
            .map_err(io("open"))?;
        loop {
            let mut fds = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&f),
                nix::poll::PollFlags::POLLIN,
            )];
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u8)) {
                Ok(n) if n > 0 => break,
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(e) => return Err(io("poll")(e.into())),
            }
            if nix::sys::signal::kill(Pid::from_raw(self.pid), None).is_err() || self.is_zombie() {
                return Err(Error::ExitedBeforeStart {
                    name: self.name.clone(),
                });
            }
        }
        let mut byte = [0u8; 1];
        f.read_exact(&mut byte).map_err(io("read"))?;
        let _ = std::fs::remove_file(&fifo);
        Ok(())
    }

    fn is_zombie(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .map(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('Z'))
                    .unwrap_or(false)
            })
            .unwrap_or(true)
    }

    /// Send a signal to pid 1.
    pub fn kill(&self, signal: i32) -> Result<()> {
        let sig = Signal::try_from(signal).map_err(|source| Error::Sys {
            name: self.name.clone(),
            what: format!("signal {signal}"),
            source,
        })?;
        nix::sys::signal::kill(Pid::from_raw(self.pid), sig).map_err(|source| Error::Sys {
            name: self.name.clone(),
            what: format!("kill {} with {sig}", self.pid),
            source,
        })
    }

    /// SIGKILL every process of the cgroup (frozen first, so nothing forks in between).
    pub fn kill_all(&self) -> Result<()> {
        let cg = self.cgroup();
        let _ = cg.freeze();
        for pid in cg.pids().map_err(self.cg_err())? {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        cg.thaw().map_err(self.cg_err())
    }

    /// The stop signal, then after `grace` SIGKILL to every process of the cgroup. Returns once
    /// the cgroup holds no process (pid 1 may still wait to be reaped by the caller).
    pub fn stop(&self, grace: Duration) -> Result<()> {
        if self.processes()?.is_empty() {
            return Ok(());
        }
        let _ = self.kill(self.stop_signal);
        if self.wait_empty(grace)? {
            return Ok(());
        }
        self.kill_all()?;
        if self.wait_empty(Duration::from_secs(10))? {
            Ok(())
        } else {
            Err(Error::Cgroup {
                name: self.name.clone(),
                source: cgroups::CgroupError::Busy {
                    path: self.cgroup().paths().into_iter().next().unwrap_or_default(),
                },
            })
        }
    }

    fn wait_empty(&self, within: Duration) -> Result<bool> {
        let deadline = Instant::now() + within;
        loop {
            let live: Vec<i32> = self
                .processes()?
                .into_iter()
                .filter(|p| !is_zombie(*p))
                .collect();
            if live.is_empty() {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Freeze every process (`pause`).
    pub fn pause(&self) -> Result<()> {
        self.cgroup().freeze().map_err(self.cg_err())
    }

    /// Thaw (`unpause`).
    pub fn resume(&self) -> Result<()> {
        self.cgroup().thaw().map_err(self.cg_err())
    }

    /// Host pids of every process in the container's cgroup.
    pub fn processes(&self) -> Result<Vec<i32>> {
        self.cgroup().pids().map_err(self.cg_err())
    }

    pub fn stats(&self) -> Result<Stats> {
        self.cgroup().stats().map_err(self.cg_err())
    }

    /// Decorate pid 1's status with the cgroup's OOM kill count (read before [`Created::remove`]).
    pub fn exit_info(&self, status: ExitStatus) -> Exit {
        let oom = self.stats().map(|s| s.oom_kills > 0).unwrap_or(false);
        Exit {
            status,
            oom_killed: oom && status == ExitStatus::Signal(libc::SIGKILL),
        }
    }

    /// Run a process inside the running container: all its namespaces, its cgroup, the
    /// container's security settings; user, env and working folder from `exec`.
    pub fn exec(&self, runtime: &Runtime, exec: &ExecSpec, stdio: Stdio) -> Result<ExecProcess> {
        self.exec_inner(runtime, exec, stdio, false)
            .map(|(pid, _)| ExecProcess { pid })
    }

    /// [`Created::exec`] on a terminal of the container's own: a new pty of the container's
    /// devpts is the process's stdio and controlling terminal (`docker exec -t`). Returns the
    /// pty master for the caller to relay. `stdio` serves only for errors before that.
    pub fn exec_with_terminal(
        &self,
        runtime: &Runtime,
        exec: &ExecSpec,
        stdio: Stdio,
    ) -> Result<(ExecProcess, OwnedFd)> {
        let (pid, master) = self.exec_inner(runtime, exec, stdio, true)?;
        let master = master.ok_or_else(|| Error::Exec {
            service: self.service.clone(),
            name: self.name.clone(),
            message: "terminal: the helper passed no pty master".into(),
        })?;
        Ok((ExecProcess { pid }, master))
    }

    fn exec_inner(
        &self,
        runtime: &Runtime,
        exec: &ExecSpec,
        stdio: Stdio,
        terminal: bool,
    ) -> Result<(i32, Option<OwnedFd>)> {
        let request = helper::Request::Exec {
            target_pid: self.pid,
            spec: self.spec.clone(),
            exec: exec.clone(),
            cgroup_root: self.cgroup_root.clone(),
            cgroup_path: self.cgroup_path.clone(),
            terminal,
        };
        runtime
            .call_helper(&self.name, &request, stdio, || Ok(()))
            .map_err(|message| Error::Exec {
                service: self.service.clone(),
                name: self.name.clone(),
                message,
            })
    }

    /// Kill what is left, remove the cgroup and the state folder.
    pub fn remove(&self) -> Result<()> {
        cleanup(&self.state_dir)
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(true)
}

/// Remove everything a container's state records: processes of its cgroup, the cgroup, the
/// state folder (upper, work, rootfs mountpoint, fifo). Works after a crash of any process;
/// keeps going on errors and reports them all.
pub fn cleanup(state_dir: &Path) -> Result<()> {
    let mut errors = Vec::new();
    let name = state_dir.display().to_string();
    match Created::load(state_dir) {
        Ok(c) => {
            let cg = c.cgroup();
            if !cg.pids().unwrap_or_default().is_empty() {
                if let Err(e) = c.kill_all() {
                    errors.push(e.to_string());
                }
                let deadline = Instant::now() + Duration::from_secs(10);
                while cg
                    .pids()
                    .map(|p| p.iter().any(|p| !is_zombie(*p)))
                    .unwrap_or(false)
                    && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            // A zombie still charged to the cgroup keeps rmdir busy until it is reaped.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match cg.destroy() {
                    Ok(()) => break,
                    Err(e) if Instant::now() >= deadline => {
                        errors.push(e.to_string());
                        break;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => errors.push(e.to_string()),
    }
    match std::fs::remove_dir_all(state_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => errors.push(format!("remove {}: {e}", state_dir.display())),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Cleanup { name, errors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_helper_copy_is_adopted_only_when_sealed_and_of_the_same_binary() {
        use std::os::unix::fs::MetadataExt;
        let exe = std::env::current_exe().unwrap();
        let path = sealed_helper(&exe).unwrap();
        let ours = std::fs::metadata(&path).unwrap();
        let name = sealed_name(&exe).unwrap();
        let me = std::process::id() as i32;
        // Found in the donor's descriptors: the same memfd, read-only and sealed.
        let adopted = adopt_sealed(me, &name).expect("sealed copy found");
        assert_eq!(adopted.metadata().unwrap().ino(), ours.ino());
        let written = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"\x7fELF"));
        assert!(written.is_err(), "the sealed copy took a write");
        // A copy of another binary (or an older one) carries another name.
        assert!(adopt_sealed(me, "rcompose-helper-0-0-0-0.0").is_none());
        // An unsealed memfd with the right name is refused.
        let cname = std::ffi::CString::new(format!("{name}-unsealed")).unwrap();
        let _unsealed = seal_options(&cname).create().unwrap();
        assert!(adopt_sealed(me, &format!("{name}-unsealed")).is_none());
    }

    #[test]
    fn loadable_image_keeps_segments_and_drops_section_headers() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let image = loadable_image(&exe).unwrap();
        assert!(image.len() <= exe.len() && image.len() > 4096);
        assert_eq!(&image[..4], b"\x7fELF");
        assert_eq!(&image[0x28..0x30], &[0u8; 8]);
        assert!(loadable_image(b"#!/bin/sh\n").is_none());
        assert!(loadable_image(&exe[..100]).is_none());
        let mut out = tempfile::tempfile().unwrap();
        copy_loadable_image(&std::env::current_exe().unwrap(), &mut out).unwrap();
        let mut copied = Vec::new();
        std::io::Seek::rewind(&mut out).unwrap();
        out.read_to_end(&mut copied).unwrap();
        assert_eq!(copied, image);
    }
}
