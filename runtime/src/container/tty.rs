//! The container's terminal, allocated the way Docker and runc do: a pty pair from the
//! container's own devpts instance (`newinstance`, so the host's ptys stay invisible), whose
//! slave becomes the process's stdio, its controlling terminal (setsid + TIOCSCTTY) and, for pid
//! 1, `/dev/console`; the master travels back to the caller over the helper's request socket
//! (SCM_RIGHTS), which relays it to the user's terminal and forwards window size changes
//! (TIOCSWINSZ). Used by [`super::Runtime::create_with_terminal`] and
//! [`super::Created::exec_with_terminal`].

#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// A pty pair and the slave's number in its devpts (`/dev/pts/<number>`).
#[derive(Debug)]
pub struct Pair {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    pub number: u32,
}

fn last(what: &str, path: &Path) -> String {
    format!(
        "terminal: {what} {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    )
}

/// Open a new pty pair through `ptmx` (the `ptmx` node of the devpts instance to use).
pub(crate) fn open_pair(ptmx: &Path) -> Result<Pair, String> {
    let master = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(ptmx)
        .map_err(|e| format!("terminal: open {}: {e}", ptmx.display()))?;
    let master = OwnedFd::from(master);
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int from the pointer, a live local.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(last("unlock", ptmx));
    }
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int into the pointer, a live local.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut number) } != 0 {
        return Err(last("number of", ptmx));
    }
    // TIOCGPTPEER opens the slave through the master's own devpts instance, never by a path
    // another mount could shadow.
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new descriptor or -1.
    let fd = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(last("open the slave of", ptmx));
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(Pair {
        master,
        slave,
        number,
    })
}

/// Make `slave` the calling process's stdin, stdout, stderr and controlling terminal. The
/// caller must be a session leader without a terminal (right after setsid).
pub(crate) fn become_terminal(slave: &OwnedFd) -> Result<(), String> {
    for target in 0..3 {
        // SAFETY: dup2 onto the standard descriptors, which this process owns.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } != target {
            return Err(format!(
                "terminal: dup2 onto {target}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    // SAFETY: TIOCSCTTY on fd 0 (the slave) with arg 0 has no memory effects.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
        return Err(format!(
            "terminal: set controlling terminal: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Set the window size of the terminal whose master (or slave) is `fd` (TIOCSWINSZ): the
/// kernel sends SIGWINCH to the terminal's foreground process group.
pub fn set_window_size(fd: &impl AsRawFd, rows: u16, cols: u16) -> std::io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a `struct winsize` from the pointer, a live local.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Send `fd` over the stream socket `sock` with one space byte (JSON readers skip it).
pub(crate) fn send_fd(sock: RawFd, fd: &OwnedFd) -> Result<(), String> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(b" ")];
    sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::empty(), None)
        .map(drop)
        .map_err(|e| format!("terminal: pass the pty master to the caller: {e}"))
}

/// Read a stream socket to its end, collecting the descriptors passed along (SCM_RIGHTS).
pub(crate) fn recv_all(sock: &impl AsRawFd) -> std::io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut data = Vec::new();
    let mut fds = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let mut cmsg = nix::cmsg_space!([RawFd; 4]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => m,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let n = msg.bytes;
        for c in msg.cmsgs().map_err(std::io::Error::from)? {
            if let ControlMessageOwned::ScmRights(received) = c {
                // SAFETY: the kernel installed these descriptors for us; we own them now.
                fds.extend(
                    received
                        .into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        if n == 0 {
            return Ok((data, fds));
        }
        data.extend_from_slice(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_travels_with_the_reply_bytes() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let file = OwnedFd::from(tempfile::tempfile().unwrap());
        send_fd(a.as_raw_fd(), &file).unwrap();
        std::io::Write::write_all(&mut &a, b"{\"Ok\":{\"pid\":7}}").unwrap();
        drop(a);
        let (data, fds) = recv_all(&b).unwrap();
        assert_eq!(data, b" {\"Ok\":{\"pid\":7}}");
        assert_eq!(fds.len(), 1);
        use std::os::unix::fs::MetadataExt;
        let ino = |fd: &OwnedFd| {
            std::fs::File::from(fd.try_clone().unwrap())
                .metadata()
                .unwrap()
                .ino()
        };
        assert_eq!(ino(&fds[0]), ino(&file));
    }
}
