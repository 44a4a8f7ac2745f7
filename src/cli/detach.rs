//! `attach`'s input side: the detach key sequence (`--detach-keys`, default `ctrl-p,ctrl-q`,
//! as Docker parses it), standard input forwarded to the supervisor's stdin relay
//! (`supervisor::stdin`) with that sequence filtered out, and `--sig-proxy` (signals this
//! process receives go to the container's main process).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Result};

/// Docker's default `ctrl-p,ctrl-q`.
pub const DEFAULT_KEYS: &str = "ctrl-p,ctrl-q";

/// Parse a detach sequence: comma-separated keys, each a single character or `ctrl-<c>` with
/// `<c>` one of `a-z @ [ \ ] ^ _` (as Docker's `term.ToBytes`).
pub fn parse_keys(s: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for key in s.split(',') {
        let k = key.trim();
        if let Some(c) = k.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b @ b'a'..=b'z'] => b - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => bail!("invalid detach keys {s:?}: unknown key {k:?}"),
            };
            out.push(b);
        } else if k.len() == 1 {
            out.push(k.as_bytes()[0]);
        } else {
            bail!("invalid detach keys {s:?}: unknown key {k:?}");
        }
    }
    if out.is_empty() {
        bail!("invalid detach keys {s:?}: empty");
    }
    Ok(out)
}

/// Passes input through, holding back a prefix of the detach sequence until it is complete
/// (then: detach) or broken (then the held bytes go through).
pub struct EscapeFilter {
    keys: Vec<u8>,
    held: usize,
}

impl EscapeFilter {
    pub fn new(keys: Vec<u8>) -> Self {
        EscapeFilter { keys, held: 0 }
    }

    /// Filter `input` into `out`; true when the whole sequence was typed (what follows it is
    /// dropped).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &b in input {
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    return true;
                }
            } else {
                out.extend_from_slice(&self.keys[..self.held]);
                self.held = 0;
                if b == self.keys[0] {
                    self.held = 1;
                    if self.keys.len() == 1 {
                        return true;
                    }
                } else {
                    out.push(b);
                }
            }
        }
        false
    }
}

/// Where `attach` writes input: the supervisor's relay socket for the container, else the
/// container's stdin pipe itself (`/proc/<pid>/fd/0` opened for writing: a container with
/// `stdin_open: true` and no tty reads a pipe the supervisor keeps open), else nothing.
pub fn input_target(socket: &Path, pid: Option<i32>) -> Option<Box<dyn Write + Send>> {
    if let Ok(conn) = UnixStream::connect(socket) {
        return Some(Box::new(conn));
    }
    let fd0 = format!("/proc/{}/fd/0", pid?);
    let target = std::fs::read_link(&fd0).ok()?;
    if !target.to_string_lossy().starts_with("pipe:") {
        return None;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fd0)
        .ok()
        .map(|f| Box::new(f) as Box<dyn Write + Send>)
}

/// Forward standard input into `conn` from a thread until end of input or the detach
/// sequence (then `detached` is set).
pub fn forward_stdin(
    mut conn: Box<dyn Write + Send>,
    keys: Vec<u8>,
    detached: Arc<AtomicBool>,
) -> Result<()> {
    std::thread::Builder::new()
        .name("attach-stdin".into())
        .spawn(move || {
            let mut filter = EscapeFilter::new(keys);
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 4096];
            let mut out = Vec::with_capacity(4096);
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                out.clear();
                let done = filter.feed(&buf[..n], &mut out);
                if !out.is_empty() && (conn.write_all(&out).is_err() || conn.flush().is_err()) {
                    break;
                }
                if done {
                    detached.store(true, Ordering::SeqCst);
                    break;
                }
            }
        })?;
    Ok(())
}

/// `--sig-proxy`: send the signals this process gets (INT, TERM, HUP, QUIT, USR1, USR2) to
/// `pid`, from a thread, instead of dying of them.
pub fn proxy_signals(pid: i32) -> Result<()> {
    use signal_hook::consts::*;
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2])?;
    std::thread::Builder::new()
        .name("sig-proxy".into())
        .spawn(move || {
            for sig in signals.forever() {
                if let Ok(s) = nix::sys::signal::Signal::try_from(sig) {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), s);
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_stdin_pipe_is_written_through_proc() {
        use std::io::BufRead;
        let mut child = std::process::Command::new("/usr/bin/busybox")
            .args(["head", "-n", "1"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let sock = std::path::Path::new("/nonexistent/relay.sock");
        let mut w = input_target(sock, Some(child.id() as i32)).expect("a pipe stdin");
        w.write_all(b"through proc\n").unwrap();
        drop(w);
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "through proc\n");
        drop(child.stdin.take());
        child.wait().unwrap();
        // /dev/null (or a terminal) as stdin: nothing to write into.
        let mut idle = std::process::Command::new("/usr/bin/busybox")
            .args(["sleep", "5"])
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        assert!(input_target(sock, Some(idle.id() as i32)).is_none());
        let _ = idle.kill();
        let _ = idle.wait();
    }

    #[test]
    fn detach_keys_parse_as_docker() {
        assert_eq!(parse_keys(DEFAULT_KEYS).unwrap(), [16, 17]);
        assert_eq!(parse_keys("ctrl-a,x").unwrap(), [1, b'x']);
        assert_eq!(parse_keys("ctrl-@,ctrl-[").unwrap(), [0, 27]);
        assert!(parse_keys("ctrl-1").is_err());
        assert!(parse_keys("alt-x").is_err());
    }

    #[test]
    fn the_sequence_is_held_back_then_detaches_or_passes_through() {
        let mut f = EscapeFilter::new(vec![16, 17]);
        let mut out = Vec::new();
        assert!(!f.feed(b"ab\x10", &mut out));
        assert_eq!(out, b"ab");
        assert!(!f.feed(b"c", &mut out));
        assert_eq!(out, b"ab\x10c");
        out.clear();
        assert!(!f.feed(b"\x10\x10", &mut out));
        assert_eq!(out, b"\x10");
        assert!(f.feed(b"\x11rest", &mut out));
        assert_eq!(out, b"\x10");
    }
}
