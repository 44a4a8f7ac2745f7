//! `init: true`: a tiny init as the container's pid 1 (what Docker does with tini). It forks
//! the user process, forwards every signal it receives to it, reaps every zombie, and exits
//! with the user process's status (128+signal when killed by a signal).

#![allow(unsafe_code)]

use std::ffi::CString;

use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

/// Run the init loop; returns only if fork fails.
pub fn run(path: &CString, args: &[CString], env: &[CString]) {
    let all = SigSet::all();
    // Blocked signals are queued even for pid 1 (the kernel drops only unhandled, unblocked
    // ones), and sigwait picks them up.
    if sigprocmask(SigmaskHow::SIG_SETMASK, Some(&all), None).is_err() {
        return;
    }
    // SAFETY: the container process is single-threaded.
    let child = match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
            let _ = nix::unistd::execve(path, args, env);
            eprintln!(
                "init: exec {}: {}",
                path.to_string_lossy(),
                std::io::Error::last_os_error()
            );
            // SAFETY: _exit in the forked child.
            unsafe { libc::_exit(127) }
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(_) => return,
    };
    loop {
        let Ok(sig) = all.wait() else { continue };
        if sig == Signal::SIGCHLD {
            loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, code)) if pid == child => std::process::exit(code),
                    Ok(WaitStatus::Signaled(pid, s, _)) if pid == child => {
                        std::process::exit(128 + s as i32)
                    }
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        } else {
            let _ = kill(child, sig);
        }
    }
}
