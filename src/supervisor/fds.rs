//! Descriptor and session hygiene for processes this binary leaves running: a detached
//! supervisor must not keep whatever its caller happened to have open (a test runner's
//! `flock` descriptor, a terminal, a pipe of a shell's command substitution). The child starts
//! in its own session, in `/`, with only stdio (0-2) open across exec.

#![allow(unsafe_code)]

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Make `cmd` start detached: a new session (so also its own process group, and no
/// controlling terminal), working directory `/`, and every descriptor above 2 closed at exec
/// (close_range with CLOSE_RANGE_CLOEXEC, so the error pipe std uses to report a failed exec
/// still works). The caller sets stdio itself.
pub fn detach(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe system
    // calls (setsid, chdir on a static string, close_range); it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::chdir(c"/".as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            close_above_stdio_on_exec()
        });
    }
}

/// Flag every descriptor above 2 close-on-exec (a single close_range(2) call; async-signal
/// safe, so usable in `pre_exec`).
pub fn close_above_stdio_on_exec() -> std::io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on descriptors; it touches
    // no memory.
    if unsafe { libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor the parent leaves inheritable does not reach the detached child, which runs
    /// in `/` as a session leader.
    #[test]
    fn detached_child_has_only_stdio_in_root_dir_and_own_session() {
        let f = std::fs::File::open("/proc/self/status").unwrap();
        // A duplicate at 100 or above without FD_CLOEXEC (F_DUPFD, not F_DUPFD_CLOEXEC): the
        // kind of descriptor a careless caller passes on.
        let raw = nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_DUPFD(100)).unwrap();
        // SAFETY: `raw` is a fresh descriptor this test owns alone.
        let _dup = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        let fd = raw;
        let mut cmd = Command::new("/bin/sh");
        cmd.args([
            "-c",
            "ls /proc/self/fd | tr '\\n' ' '; echo; pwd; \
             cut -d' ' -f6 /proc/$$/stat; echo $$",
        ]);
        detach(&mut cmd);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let fds: Vec<i32> = lines[0]
            .split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect();
        // `ls` sees 0-2 and the directory it reads; never the parent's descriptor.
        assert!(
            !fds.contains(&fd),
            "inherited fd {fd} is open in the child: {fds:?}"
        );
        assert!(fds.iter().filter(|&&n| n > 2).count() <= 1, "{fds:?}");
        assert_eq!(lines[1], "/");
        assert_eq!(
            lines[2].trim(),
            lines[3].trim(),
            "the child leads its own session"
        );
    }
}
