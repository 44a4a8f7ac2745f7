//! Layer unpacking: a tar stream (already decompressed) becomes a directory ready to be an
//! overlayfs lowerdir. Whiteouts become 0/0 character devices, opaque markers the
//! `trusted.overlay.opaque` xattr. Ownership, modes (setuid included), xattrs, hardlinks,
//! symlinks and device nodes are kept.
//!
//! Layers are untrusted input. `tar::Archive::unpack` is never used: every entry path is
//! cleaned lexically (absolute paths are taken relative to the layer root, `..` is refused),
//! every parent directory is checked to be a real directory of this layer before anything is
//! created under it (so a symlink planted by an earlier entry is never followed: the
//! CVE-2018-15664 / "tar-slip" family), files are created with `O_NOFOLLOW | O_EXCL`, and
//! hardlink targets must be files of this layer reached the same way.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{FileType, Mode, XattrFlags, CWD};
use tar::EntryType;
use tracing::debug;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry \"{0}\" escapes the layer (\"..\" above the root)")]
    Escapes(String),
    #[error(
        "layer entry \"{entry}\" goes through \"{through}\", which is not a directory of the layer"
    )]
    ThroughNonDirectory { entry: String, through: String },
    #[error(
        "layer entry \"{entry}\" is a hardlink to \"{target}\", which is not a file of the layer"
    )]
    BadHardlink { entry: String, target: String },
    #[error("layer entry \"{entry}\" has no link target")]
    NoLinkTarget { entry: String },
    #[error("reading the layer archive: {0}")]
    Read(#[source] io::Error),
    #[error("unpacking layer entry \"{entry}\": {source}")]
    Write {
        entry: String,
        #[source]
        source: io::Error,
    },
}

/// What an unpack produced.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnpackStats {
    pub entries: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
}

/// Unpack the tar stream `reader` into the directory `dest` (normally empty and fresh).
pub fn unpack_layer<R: Read>(reader: R, dest: &Path) -> Result<UnpackStats, UnpackError> {
    let mut u = Unpacker {
        dest,
        dirs: HashSet::new(),
        dir_times: Vec::new(),
        stats: UnpackStats::default(),
        buf: vec![0u8; 256 * 1024],
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let mut entry = entry.map_err(UnpackError::Read)?;
        u.entry(&mut entry)?;
    }
    // Directory times last: creating children changed them. Only for directories still
    // known to be real (a later entry may have replaced one, or an ancestor, by a symlink:
    // `dirs` forgets a path and everything under it when that happens).
    for (rel, mtime) in u.dir_times.iter().rev() {
        if u.dirs.contains(rel) {
            let _ = set_mtime(&dest.join(rel), *mtime);
        }
    }
    Ok(u.stats)
}

struct Unpacker<'a> {
    dest: &'a Path,
    /// Relative paths known to be real directories of this layer.
    dirs: HashSet<PathBuf>,
    dir_times: Vec<(PathBuf, u64)>,
    stats: UnpackStats,
    buf: Vec<u8>,
}

/// Lexically clean an entry path: leading `/` and `.` dropped, `..` popped, going above the
/// root refused. Returns an empty path for the root itself.
pub fn clean_entry_path(p: &Path) -> Result<PathBuf, UnpackError> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(UnpackError::Escapes(p.display().to_string()));
                }
            }
        }
    }
    Ok(out)
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path().map_err(UnpackError::Read)?.into_owned();
        let rel = clean_entry_path(&raw)?;
        let name = raw.display().to_string();
        self.stats.entries += 1;
        let kind = entry.header().entry_type();
        if rel.as_os_str().is_empty() {
            // The layer root itself ("./"): nothing to create.
            return Ok(());
        }
        let wr = |source| UnpackError::Write {
            entry: name.clone(),
            source,
        };
        self.ensure_parents(&rel, &name)?;
        let file_name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX) {
            let parent = rel.parent().unwrap_or(Path::new(""));
            if file_name == OPAQUE_MARKER {
                let dir = self.dest.join(parent);
                debug!(dir = %dir.display(), "opaque directory");
                rustix::fs::lsetxattr(&dir, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                    .map_err(|e| wr(e.into()))?;
            } else if !hidden.starts_with(WHITEOUT_PREFIX) {
                let target_rel = parent.join(hidden);
                let target = self.dest.join(&target_rel);
                self.remove_existing(&target, &target_rel).map_err(wr)?;
                rustix::fs::mknodat(
                    CWD,
                    &target,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    rustix::fs::makedev(0, 0),
                )
                .map_err(|e| wr(e.into()))?;
            }
            // Other `.wh..wh.` names (aufs hardlink bookkeeping) carry nothing for overlayfs.
            return Ok(());
        }
        let full = self.dest.join(&rel);
        let xattrs = xattrs_of(entry);
        let header = entry.header().clone();
        let header = &header;
        let mode = header.mode().map_err(UnpackError::Read)? & 0o7777;
        // Empty numeric fields (some writers leave them blank) read as 0, as GNU tar does.
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        let mtime = header.mtime().unwrap_or(0);
        match kind {
            EntryType::Directory => {
                match fs::DirBuilder::new().mode(0o700).create(&full) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        if !fs::symlink_metadata(&full).map_err(wr)?.is_dir() {
                            self.remove_existing(&full, &rel).map_err(wr)?;
                            fs::DirBuilder::new()
                                .mode(0o700)
                                .create(&full)
                                .map_err(wr)?;
                        }
                    }
                    Err(e) => return Err(wr(e)),
                }
                self.dirs.insert(rel.clone());
                std::os::unix::fs::lchown(&full, Some(uid), Some(gid)).map_err(wr)?;
                fs::set_permissions(&full, fs::Permissions::from_mode(mode)).map_err(wr)?;
                set_xattrs_path(&full, &xattrs).map_err(wr)?;
                self.dir_times.push((rel.clone(), mtime));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let file = match create_file(&full) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        self.remove_existing(&full, &rel).map_err(wr)?;
                        create_file(&full).map_err(wr)?
                    }
                    Err(e) => return Err(wr(e)),
                };
                let mut file = file;
                loop {
                    let n = match entry.read(&mut self.buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(UnpackError::Read(e)),
                    };
                    file.write_all(&self.buf[..n]).map_err(wr)?;
                    self.stats.bytes += n as u64;
                }
                // chown before chmod: chown clears setuid/setgid bits.
                std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(wr)?;
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(wr)?;
                for (k, v) in &xattrs {
                    rustix::fs::fsetxattr(&file, k.as_str(), v, XattrFlags::empty())
                        .map_err(|e| wr(e.into()))?;
                }
                file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime))
                    .map_err(wr)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(UnpackError::Read)?
                    .ok_or_else(|| UnpackError::NoLinkTarget {
                        entry: name.clone(),
                    })?;
                // The target is stored as is: it is only ever resolved inside the container's
                // root, and nothing here writes through it (parents are checked above).
                self.create_with_retry(&full, &rel, |p| std::os::unix::fs::symlink(&target, p))
                    .map_err(wr)?;
                std::os::unix::fs::lchown(&full, Some(uid), Some(gid)).map_err(wr)?;
                set_xattrs_path(&full, &xattrs).map_err(wr)?;
                let _ = set_mtime(&full, mtime);
            }
            EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(UnpackError::Read)?
                    .ok_or_else(|| UnpackError::NoLinkTarget {
                        entry: name.clone(),
                    })?
                    .into_owned();
                let target_rel = clean_entry_path(&target)?;
                let bad = || UnpackError::BadHardlink {
                    entry: name.clone(),
                    target: target.display().to_string(),
                };
                if target_rel.as_os_str().is_empty() || target_rel == rel {
                    return Err(bad());
                }
                self.check_parents(&target_rel).map_err(|_| bad())?;
                let target_full = self.dest.join(&target_rel);
                match fs::symlink_metadata(&target_full) {
                    Ok(m) if !m.is_dir() => {}
                    _ => return Err(bad()),
                }
                // link(2) does not follow a symlink target: the link is to the symlink itself.
                self.create_with_retry(&full, &rel, |p| fs::hard_link(&target_full, p))
                    .map_err(wr)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (ft, dev) = match kind {
                    EntryType::Char => (FileType::CharacterDevice, device(header)),
                    EntryType::Block => (FileType::BlockDevice, device(header)),
                    _ => (FileType::Fifo, 0),
                };
                self.create_with_retry(&full, &rel, |p| {
                    rustix::fs::mknodat(CWD, p, ft, Mode::from_raw_mode(mode), dev)
                        .map_err(io::Error::from)
                })
                .map_err(wr)?;
                std::os::unix::fs::lchown(&full, Some(uid), Some(gid)).map_err(wr)?;
                fs::set_permissions(&full, fs::Permissions::from_mode(mode)).map_err(wr)?;
                set_xattrs_path(&full, &xattrs).map_err(wr)?;
                let _ = set_mtime(&full, mtime);
            }
            other => {
                debug!(entry = %name, kind = ?other, "skipping tar entry of unsupported type");
            }
        }
        Ok(())
    }

    /// Make sure every ancestor of `rel` is a real directory of this layer, creating missing
    /// ones; refuse to go through anything else (a symlink above all).
    fn ensure_parents(&mut self, rel: &Path, name: &str) -> Result<(), UnpackError> {
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        if parent.as_os_str().is_empty() || self.dirs.contains(parent) {
            return Ok(());
        }
        let mut acc = PathBuf::new();
        for c in parent.components() {
            acc.push(c);
            if self.dirs.contains(&acc) {
                continue;
            }
            let full = self.dest.join(&acc);
            match fs::symlink_metadata(&full) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(UnpackError::ThroughNonDirectory {
                        entry: name.to_string(),
                        through: acc.display().to_string(),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&full)
                        .map_err(|source| UnpackError::Write {
                            entry: name.to_string(),
                            source,
                        })?;
                }
                Err(source) => {
                    return Err(UnpackError::Write {
                        entry: name.to_string(),
                        source,
                    })
                }
            }
            self.dirs.insert(acc.clone());
        }
        Ok(())
    }

    /// Like `ensure_parents` but creates nothing.
    fn check_parents(&self, rel: &Path) -> Result<(), ()> {
        let mut acc = PathBuf::new();
        if let Some(parent) = rel.parent() {
            for c in parent.components() {
                acc.push(c);
                if self.dirs.contains(&acc) {
                    continue;
                }
                match fs::symlink_metadata(self.dest.join(&acc)) {
                    Ok(m) if m.is_dir() => {}
                    _ => return Err(()),
                }
            }
        }
        Ok(())
    }

    fn create_with_retry(
        &mut self,
        full: &Path,
        rel: &Path,
        create: impl Fn(&Path) -> io::Result<()>,
    ) -> io::Result<()> {
        match create(full) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.remove_existing(full, rel)?;
                create(full)
            }
            other => other,
        }
    }

    /// Remove whatever an earlier entry of this layer put at `full` (a later entry wins).
    fn remove_existing(&mut self, full: &Path, rel: &Path) -> io::Result<()> {
        match fs::symlink_metadata(full) {
            Ok(m) if m.is_dir() => {
                fs::remove_dir_all(full)?;
                self.dirs.retain(|d| !d.starts_with(rel));
                Ok(())
            }
            Ok(_) => fs::remove_file(full),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn create_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc_o_nofollow())
        .open(path)
}

fn libc_o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

fn device(header: &tar::Header) -> rustix::fs::Dev {
    let major = header.device_major().ok().flatten().unwrap_or(0);
    let minor = header.device_minor().ok().flatten().unwrap_or(0);
    rustix::fs::makedev(major, minor)
}

fn xattrs_of<R: Read>(entry: &mut tar::Entry<'_, R>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts.flatten() {
            if let Ok(key) = ext.key() {
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    out.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
    }
    out
}

fn set_xattrs_path(path: &Path, xattrs: &[(String, Vec<u8>)]) -> io::Result<()> {
    for (k, v) in xattrs {
        rustix::fs::lsetxattr(path, k.as_str(), v, XattrFlags::empty())?;
    }
    Ok(())
}

fn set_mtime(path: &Path, mtime: u64) -> io::Result<()> {
    let ts = rustix::fs::Timespec {
        tv_sec: mtime as i64,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_paths() {
        assert_eq!(
            clean_entry_path(Path::new("/etc/passwd")).unwrap(),
            Path::new("etc/passwd")
        );
        assert_eq!(
            clean_entry_path(Path::new("./a/./b")).unwrap(),
            Path::new("a/b")
        );
        assert_eq!(
            clean_entry_path(Path::new("a/../b")).unwrap(),
            Path::new("b")
        );
        assert!(clean_entry_path(Path::new("../x")).is_err());
        assert!(clean_entry_path(Path::new("a/../../x")).is_err());
        assert_eq!(clean_entry_path(Path::new("./")).unwrap(), Path::new(""));
    }
}
