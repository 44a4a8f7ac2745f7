//! The supervisor's stdin relay for `attach`: for a container whose standard input stays
//! open (`stdin_open: true`: the write end of its stdin pipe; `tty: true`: its pty master),
//! a unix socket `<run>/<p>/stdin/<container>.sock` whose connections' bytes are written into
//! that descriptor, so `rcompose attach` can type into a container the supervisor owns. Output
//! needs no relay: attach follows the json-file log. The relay ends (socket removed) when
//! its [`Relay`] is dropped, which the engine does when the container's run ends.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::state::ProjectPaths;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("container {container}: stdin relay {path}: {source}")]
    Io {
        container: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the relay of `container` listens.
pub fn socket_path(paths: &ProjectPaths, container: &str) -> PathBuf {
    paths
        .run_dir
        .join("stdin")
        .join(format!("{container}.sock"))
}

/// A running relay; dropping it stops accepting and removes the socket.
pub struct Relay {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl Relay {
    /// Relay connections on `container`'s socket into `stdin` (duplicated: the caller keeps
    /// its own descriptor).
    pub fn start(
        paths: &ProjectPaths,
        container: &str,
        stdin: impl AsFd,
    ) -> Result<Relay, RelayError> {
        let path = socket_path(paths, container);
        let err = |source| RelayError::Io {
            container: container.to_string(),
            path: path.clone(),
            source,
        };
        let target: OwnedFd = stdin.as_fd().try_clone_to_owned().map_err(err)?;
        let target = Arc::new(std::fs::File::from(target));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = container.to_string();
        std::thread::Builder::new()
            .name("stdin-relay".into())
            .stack_size(128 << 10)
            .spawn(move || {
                for conn in listener.incoming() {
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut conn) = conn else { continue };
                    let target = target.clone();
                    let name = name.clone();
                    let _ = std::thread::Builder::new()
                        .name("stdin-copy".into())
                        .stack_size(128 << 10)
                        .spawn(move || {
                            let mut buf = [0u8; 8192];
                            loop {
                                match conn.read(&mut buf) {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => {
                                        if let Err(e) = (&*target).write_all(&buf[..n]) {
                                            tracing::debug!("container {name}: stdin write: {e}");
                                            break;
                                        }
                                    }
                                }
                            }
                        });
                }
            })
            .map_err(err)?;
        Ok(Relay { path, stop })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and ends (dropping its copy of the fd).
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_written_to_the_socket_reach_the_containers_stdin_until_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = ProjectPaths::new(tmp.path(), &tmp.path().join("run"), "p");
        let (r, w) = nix::unistd::pipe().unwrap();
        let relay = Relay::start(&paths, "p-app-1", &w).unwrap();
        drop(w);
        let sock = socket_path(&paths, "p-app-1");
        let mut c = UnixStream::connect(&sock).unwrap();
        c.write_all(b"hello\n").unwrap();
        drop(c);
        let mut got = [0u8; 6];
        let mut rf = std::fs::File::from(r);
        rf.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello\n");
        drop(relay);
        assert!(!sock.exists());
        // Every copy of the write end is gone once the relay stopped: end of file.
        let mut rest = Vec::new();
        let reader = std::thread::spawn(move || {
            rf.read_to_end(&mut rest).unwrap();
            rest
        });
        let mut waited = 0;
        while !reader.is_finished() && waited < 200 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            waited += 1;
        }
        assert!(reader.is_finished(), "the relay still holds the pipe open");
    }
}
