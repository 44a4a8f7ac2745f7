//! The network manager's persisted state: every bridge, veth, port mapping and nft table is
//! recorded here *before* it is created, so teardown finds it after any crash. One JSON file
//! per state root, written atomically (write + rename) under an exclusive file lock.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::ports::PublishedPort;

/// Errors reading or writing the state file; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("network state {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("network state {path}: corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Everything the network crate created under one state root.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    /// Networks by full name (`<project>_<name>`).
    #[serde(default)]
    pub networks: BTreeMap<String, NetworkRecord>,
    /// Published ports by container name.
    #[serde(default)]
    pub ports: BTreeMap<String, Vec<PublishedPort>>,
    /// The nftables table (family `ip`), recorded before it is first created.
    #[serde(default)]
    pub nft_table: Option<String>,
    /// The value of `net.ipv4.ip_forward` before rcompose turned it on.
    #[serde(default)]
    pub ip_forward_before: Option<String>,
}

/// One compose network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkRecord {
    pub name: String,
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    #[serde(default)]
    pub ip_range: Option<Ipv4Net>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Endpoints by container name.
    #[serde(default)]
    pub endpoints: BTreeMap<String, EndpointRecord>,
}

/// One container's attachment to a network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EndpointRecord {
    pub container: String,
    pub ifname: String,
    pub host_veth: String,
    pub netns: PathBuf,
    pub ip: Ipv4Addr,
    pub mac: String,
    /// Names this endpoint answers to on this network (service, container, hostname, aliases).
    #[serde(default)]
    pub names: Vec<String>,
    /// `links`: alias -> target name, answered only to this container.
    #[serde(default)]
    pub links: BTreeMap<String, String>,
    /// `dns`: this container's own upstream resolvers (used instead of the host's).
    #[serde(default)]
    pub dns: Vec<std::net::IpAddr>,
}

/// An open, locked state file; dropping it releases the lock.
pub struct Locked {
    path: PathBuf,
    _lock: Flock<File>,
    pub state: State,
}

/// The state file of a root's network directory.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// Takes the exclusive lock on `dir` and reads the state (empty if none yet).
pub fn lock(dir: &Path) -> Result<Locked, StateError> {
    let io = |op, source| StateError::Io {
        path: dir.to_owned(),
        op,
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io("creating directory", e))?;
    let lock_path = dir.join("lock");
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io("opening lock", e))?;
    let lock = Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| io("locking", std::io::Error::from(e)))?;
    let path = state_path(dir);
    let state = read(&path)?;
    Ok(Locked {
        path,
        _lock: lock,
        state,
    })
}

/// A machine-wide lock held while a subnet is picked from host routes and its bridge is
/// made, so two state roots (two tests, two installs) never pick the same subnet.
pub fn machine_lock() -> Result<Flock<File>, StateError> {
    let dir = if Path::new("/run/lock").is_dir() {
        PathBuf::from("/run/lock")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join("rcompose-network-ipam.lock");
    let io = |op, source| StateError::Io {
        path: path.clone(),
        op,
        source,
    };
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io("opening lock", e))?;
    Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| io("locking", std::io::Error::from(e)))
}

/// Reads the state without locking (for inspection and the DNS server).
pub fn read(path: &Path) -> Result<State, StateError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|source| StateError::Corrupt {
            path: path.to_owned(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(source) => Err(StateError::Io {
            path: path.to_owned(),
            op: "reading",
            source,
        }),
    }
}

impl Locked {
    /// Writes the state atomically (temp file, rename).
    pub fn save(&self) -> Result<(), StateError> {
        write_atomic(
            &self.path,
            &serde_json::to_vec_pretty(&self.state).expect("state serializes"),
        )
    }
}

/// Writes `data` to `path` atomically (temp file in the same directory, rename).
///
/// No fsync: the rename alone makes the write atomic for a crash of the process, and
/// everything this state describes (bridges, veths, nft rules, listeners) lives in the
/// kernel and is gone after a power loss anyway. fsync cost milliseconds per attach on a
/// disk busy with builds.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StateError> {
    let io = |op, source| StateError::Io {
        path: path.to_owned(),
        op,
        source,
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = File::create(&tmp).map_err(|e| io("creating temp file", e))?;
    f.write_all(data).map_err(|e| io("writing", e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("renaming", e))
}
