//! A pseudo-terminal for `exec` and `run` on a terminal: the process gets the pty slave as its
//! stdio and controlling terminal; we put our terminal in raw mode, copy bytes both ways, and
//! pass window size changes on (SIGWINCH → TIOCSWINSZ on the master).

#![allow(unsafe_code)]

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::Result;
use nix::pty::{openpty, Winsize};
use nix::sys::termios::{self, SetArg, Termios};

/// The size of the terminal on `fd`, if it is one.
pub fn window_size(fd: &impl AsRawFd) -> Option<Winsize> {
    let mut ws = Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a `struct winsize` into the pointer we pass, which points to a
    // live, correctly sized value.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some(ws)
}

fn set_window_size(fd: &impl AsRawFd, ws: &Winsize) {
    // SAFETY: TIOCSWINSZ reads a `struct winsize` from the pointer, which points to a live value.
    unsafe {
        libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws);
    }
}

/// Our terminal in raw mode until dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enter() -> Result<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// A pty pair sized like our terminal.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

impl Pty {
    pub fn open() -> Result<Pty> {
        let ws = window_size(&std::io::stdout());
        let p = openpty(ws.as_ref(), None)?;
        Ok(Pty {
            master: p.master,
            slave: p.slave,
        })
    }
}

/// Copy stdin → master and master → stdout on threads, forward window size changes. Returns
/// when the master reports the end (the process closed the terminal).
pub fn pump(master: OwnedFd) -> Result<()> {
    let m_read = std::fs::File::from(master.try_clone()?);
    let mut m_write = std::fs::File::from(master.try_clone()?);
    let resize_fd = master;
    if let Ok(mut signals) = signal_hook::iterator::Signals::new([signal_hook::consts::SIGWINCH]) {
        std::thread::spawn(move || {
            for _ in signals.forever() {
                if let Some(ws) = window_size(&std::io::stdout()) {
                    set_window_size(&resize_fd, &ws);
                }
            }
        });
    }
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdin = std::io::stdin();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || m_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let mut out = std::io::stdout();
    let mut r = m_read;
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break, // EIO once the slave side is closed
            Ok(n) => {
                let _ = out.write_all(&buf[..n]);
                let _ = out.flush();
            }
        }
    }
    Ok(())
}
