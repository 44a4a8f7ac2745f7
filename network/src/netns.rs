//! Network namespaces pinned on files: created here, wired by [`crate::Networks`], entered by
//! the runtime (`setns` on the pinned path) and removed here.
//!
//! A netns is made by `unshare(CLONE_NEWNET)` on a dedicated short-lived thread whose namespace
//! is then bind-mounted onto the pin: the calling process (often a multi-threaded tokio
//! supervisor) is never forked and its own threads never change namespace.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use tracing::debug;

use crate::netlink::{Netlink, NetlinkError};

/// Errors of netns handling; each names the pin path.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("netns {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("netns {path}: {op}: {source}")]
    Sys {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("netns {path}: bringing loopback up: {source}")]
    Loopback {
        path: PathBuf,
        #[source]
        source: NetlinkError,
    },
    #[error("netns {path}: helper thread panicked")]
    Thread { path: PathBuf },
}

/// A network namespace pinned on a file (bind mount of its nsfs inode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    pin: PathBuf,
}

impl Netns {
    /// Creates a new network namespace with loopback up and pins it at `pin` (parent
    /// directories are created). Fails if `pin` already exists.
    pub fn create(pin: &Path) -> Result<Netns, NetnsError> {
        let io = |op, source| NetnsError::Io {
            path: pin.to_owned(),
            op,
            source,
        };
        if let Some(dir) = pin.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io("creating parent directory", e))?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(pin)
            .map_err(|e| io("creating pin file", e))?;
        let owned = pin.to_owned();
        let res = std::thread::spawn(move || -> Result<(), NetnsError> {
            let sys = |op, source| NetnsError::Sys {
                path: owned.clone(),
                op,
                source,
            };
            // Only this thread moves to the new namespace; it exits right after.
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| sys("unshare(CLONE_NEWNET)", e))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &owned,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| sys("bind-mounting namespace", e))?;
            debug!(pin = %owned.display(), "netns created");
            let mut nl = Netlink::open().map_err(|source| NetnsError::Loopback {
                path: owned.clone(),
                source,
            })?;
            nl.set_up_by_name("lo")
                .map_err(|source| NetnsError::Loopback {
                    path: owned.clone(),
                    source,
                })?;
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetnsError::Thread {
                path: pin.to_owned(),
            })
        });
        if let Err(e) = res {
            let _ = umount2(pin, MntFlags::MNT_DETACH);
            let _ = std::fs::remove_file(pin);
            return Err(e);
        }
        Ok(Netns {
            pin: pin.to_owned(),
        })
    }

    /// Where the namespace of `container` is pinned: `<run>/netns/<container>`. With
    /// `network_mode: service:x` / `container:x` the runtime joins x's pin; with `none` the
    /// namespace is created and never connected; with `host` none is created.
    pub fn pin_for(run_dir: &Path, container: &str) -> PathBuf {
        run_dir.join("netns").join(container)
    }

    /// Removes every pin under `<run>/netns` (teardown after a crash); returns the errors.
    pub fn remove_all_under(run_dir: &Path) -> Vec<NetnsError> {
        let dir = run_dir.join("netns");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| Netns::remove(&e.path()).err())
            .collect()
    }

    /// Refers to an already pinned namespace (no check).
    pub fn from_pin(pin: &Path) -> Netns {
        Netns {
            pin: pin.to_owned(),
        }
    }

    /// The pinned path, for `setns` by the runtime.
    pub fn path(&self) -> &Path {
        &self.pin
    }

    /// Unmounts and deletes the pin; the namespace dies with its last user. A missing pin is
    /// not an error (removal is idempotent).
    pub fn remove(pin: &Path) -> Result<(), NetnsError> {
        match umount2(pin, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
            Err(source) => {
                return Err(NetnsError::Sys {
                    path: pin.to_owned(),
                    op: "unmounting pin",
                    source,
                })
            }
        }
        match std::fs::remove_file(pin) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(NetnsError::Io {
                    path: pin.to_owned(),
                    op: "removing pin",
                    source,
                })
            }
        }
        debug!(pin = %pin.display(), "netns removed");
        Ok(())
    }

    /// Runs `f` on a short-lived thread that has joined the namespace pinned at `pin`.
    /// Sockets opened by `f` stay bound to that namespace after the thread ends.
    pub fn run_in<T: Send + 'static>(
        pin: &Path,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, NetnsError> {
        let file = File::open(pin).map_err(|source| NetnsError::Io {
            path: pin.to_owned(),
            op: "opening pin",
            source,
        })?;
        let owned = pin.to_owned();
        std::thread::spawn(move || -> Result<T, NetnsError> {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Sys {
                path: owned,
                op: "setns",
                source,
            })?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetnsError::Thread {
                path: pin.to_owned(),
            })
        })
    }
}
