//! Layers a build produces, as uncompressed tars the image store ingests: the diff of a RUN
//! (its overlay upper dir, with overlayfs whiteouts turned back into OCI `.wh.` files and
//! opaque folders into `.wh..wh..opq`), and the files a COPY/ADD writes. Also the read-only
//! view of a stage's filesystem that COPY needs (path lookup through the layer folders, and an
//! overlay mount for `COPY --from`).

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tracing::debug;

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Paths the container runtime creates as mountpoints in the upper dir: never part of a layer
/// (Docker leaves them out too). Folders: everything below them is skipped.
const SKIP_DIRS: &[&str] = &["dev", "proc", "sys"];
/// Empty files made as bind-mount targets.
const SKIP_EMPTY_FILES: &[&str] = &["etc/hosts", "etc/hostname", "etc/resolv.conf"];

/// A tar being written for a layer, remembering which folders it already holds.
pub struct LayerTar<W: Write> {
    builder: tar::Builder<W>,
    dirs: BTreeSet<String>,
    /// (dev, ino) → first path, for hard links.
    inodes: HashMap<(u64, u64), String>,
}

impl<W: Write> LayerTar<W> {
    pub fn new(out: W) -> Self {
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        Self {
            builder,
            dirs: BTreeSet::new(),
            inodes: HashMap::new(),
        }
    }

    pub fn finish(self) -> io::Result<W> {
        self.builder.into_inner()
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64, mtime: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode & 0o7777);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        h.set_size(0);
        h
    }

    /// A folder entry (once per path).
    pub fn dir(&mut self, path: &str, mode: u32, uid: u64, gid: u64, mtime: u64) -> io::Result<()> {
        let path = path.trim_matches('/');
        if path.is_empty() || !self.dirs.insert(path.to_string()) {
            return Ok(());
        }
        let mut h = Self::header(tar::EntryType::Directory, mode, uid, gid, mtime);
        self.builder
            .append_data(&mut h, format!("{path}/"), io::empty())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn file<R: Read>(
        &mut self,
        path: &str,
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
        size: u64,
        data: R,
    ) -> io::Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, mode, uid, gid, mtime);
        h.set_size(size);
        self.builder
            .append_data(&mut h, path.trim_start_matches('/'), data)
    }

    pub fn symlink(
        &mut self,
        path: &str,
        target: &Path,
        uid: u64,
        gid: u64,
        mtime: u64,
    ) -> io::Result<()> {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, uid, gid, mtime);
        self.builder
            .append_link(&mut h, path.trim_start_matches('/'), target)
    }

    fn hardlink(&mut self, path: &str, target: &str, meta: &fs::Metadata) -> io::Result<()> {
        let mut h = Self::header(
            tar::EntryType::Link,
            meta.mode(),
            meta.uid().into(),
            meta.gid().into(),
            mtime(meta),
        );
        self.builder.append_link(&mut h, path, target)
    }

    /// Any file-system object as it is on disk (owner, mode, mtime kept), under `path`.
    pub fn copy_as_is(&mut self, path: &str, src: &Path, meta: &fs::Metadata) -> io::Result<()> {
        let ft = meta.file_type();
        let (uid, gid, m) = (meta.uid().into(), meta.gid().into(), mtime(meta));
        if ft.is_dir() {
            self.dir(path, meta.mode(), uid, gid, m)
        } else if ft.is_symlink() {
            self.symlink(path, &fs::read_link(src)?, uid, gid, m)
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.inodes.get(&key).cloned() {
                    return self.hardlink(path, &first, meta);
                }
                self.inodes.insert(key, path.to_string());
            }
            self.file(path, meta.mode(), uid, gid, m, meta.len(), File::open(src)?)
        } else {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else if ft.is_fifo() {
                tar::EntryType::Fifo
            } else {
                // Sockets have no place in a layer.
                return Ok(());
            };
            let mut h = Self::header(kind, meta.mode(), uid, gid, m);
            let rdev = meta.rdev();
            h.set_device_major(libc::major(rdev))?;
            h.set_device_minor(libc::minor(rdev))?;
            self.builder.append_data(&mut h, path, io::empty())
        }
    }

    /// A hard link entry with a prepared header.
    pub fn raw_link(&mut self, h: &mut tar::Header, path: &str, target: &str) -> io::Result<()> {
        self.builder.append_link(h, path, target)
    }

    /// An OCI whiteout for `path` (a file or folder deleted by this layer).
    fn whiteout(&mut self, path: &str, m: u64) -> io::Result<()> {
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (format!("{d}/"), n),
            None => (String::new(), path),
        };
        let mut h = Self::header(tar::EntryType::Regular, 0o600, 0, 0, m);
        self.builder
            .append_data(&mut h, format!("{dir}.wh.{name}"), io::empty())
    }
}

pub fn mtime(meta: &fs::Metadata) -> u64 {
    meta.mtime().max(0) as u64
}

/// Write the changes recorded in an overlay upper dir as an OCI layer. Returns how many
/// entries it wrote.
/// `skip`: paths (relative, clean) of `RUN --mount` targets: their mountpoints are not part
/// of the layer.
pub fn diff_upper<W: Write>(
    upper: &Path,
    skip: &[String],
    tar: &mut LayerTar<W>,
) -> io::Result<usize> {
    let mut count = 0;
    walk_upper(upper, upper, skip, tar, &mut count)?;
    Ok(count)
}

fn walk_upper<W: Write>(
    root: &Path,
    dir: &Path,
    skip: &[String],
    tar: &mut LayerTar<W>,
    count: &mut usize,
) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(&path)?;
        if SKIP_DIRS.contains(&rel.as_str()) && meta.is_dir() || skip.contains(&rel) {
            continue;
        }
        if SKIP_EMPTY_FILES.contains(&rel.as_str()) && meta.is_file() && meta.len() == 0 {
            continue;
        }
        let ft = meta.file_type();
        if ft.is_char_device() && meta.rdev() == 0 {
            debug!(path = %rel, "whiteout");
            tar.whiteout(&rel, mtime(&meta))?;
            *count += 1;
            continue;
        }
        tar.copy_as_is(&rel, &path, &meta)?;
        *count += 1;
        if ft.is_dir() {
            if is_opaque(&path) {
                debug!(path = %rel, "opaque folder");
                let mut h =
                    LayerTar::<W>::header(tar::EntryType::Regular, 0o600, 0, 0, mtime(&meta));
                tar.builder
                    .append_data(&mut h, format!("{rel}/.wh..wh..opq"), io::empty())?;
                *count += 1;
            }
            walk_upper(root, &path, skip, tar, count)?;
        }
    }
    Ok(())
}

fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(path, OPAQUE_XATTR, &mut buf), Ok(n) if &buf[..n] == b"y")
}

/// Find a path in a stage's filesystem (layer folders lowest first), honouring whiteouts and
/// opaque folders. Returns the real file in the topmost layer that has it.
pub fn lookup(layers: &[PathBuf], rel: &str) -> Option<PathBuf> {
    let rel = rel.trim_matches('/');
    if rel.is_empty() {
        return layers.last().cloned();
    }
    for layer in layers.iter().rev() {
        let p = layer.join(rel);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_char_device() && m.rdev() == 0 => return None,
            Ok(_) => return Some(p),
            Err(_) => {
                // A parent deleted or made opaque in this layer hides the lower ones.
                let mut parent = Path::new(rel).parent();
                while let Some(d) = parent.filter(|d| !d.as_os_str().is_empty()) {
                    let dp = layer.join(d);
                    if let Ok(m) = fs::symlink_metadata(&dp) {
                        if (m.file_type().is_char_device() && m.rdev() == 0) || is_opaque(&dp) {
                            return None;
                        }
                    }
                    parent = d.parent();
                }
            }
        }
    }
    None
}

/// The symlink-free form of `rel` in a stage's filesystem (links resolved through the layers,
/// inside the stage's root): where COPY really writes when the image has `/bin -> usr/bin`.
pub fn resolve(layers: &[PathBuf], rel: &str) -> String {
    super::context::resolve_links(rel, |p| {
        let found = lookup(layers, p)?;
        let m = fs::symlink_metadata(&found).ok()?;
        if m.file_type().is_symlink() {
            fs::read_link(&found).ok()
        } else {
            None
        }
    })
}

/// A read-only merged view of some layers (for `COPY --from`): one layer is its own folder;
/// more are an overlay mount, unmounted on drop.
pub struct MergedView {
    pub root: PathBuf,
    mounted: bool,
}

impl MergedView {
    pub fn new(layers: &[PathBuf], mountpoint: &Path) -> io::Result<MergedView> {
        match layers {
            [] => {
                fs::create_dir_all(mountpoint)?;
                Ok(MergedView {
                    root: mountpoint.to_path_buf(),
                    mounted: false,
                })
            }
            [one] => Ok(MergedView {
                root: one.clone(),
                mounted: false,
            }),
            many => {
                fs::create_dir_all(mountpoint)?;
                let lower: Vec<String> =
                    many.iter().rev().map(|p| p.display().to_string()).collect();
                let data = format!("lowerdir={}", lower.join(":"));
                debug!(target = %mountpoint.display(), "mount overlay for COPY --from");
                nix::mount::mount(
                    Some("overlay"),
                    mountpoint,
                    Some("overlay"),
                    nix::mount::MsFlags::MS_RDONLY,
                    Some(data.as_str()),
                )
                .map_err(io::Error::from)?;
                Ok(MergedView {
                    root: mountpoint.to_path_buf(),
                    mounted: true,
                })
            }
        }
    }
}

impl Drop for MergedView {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = nix::mount::umount2(&self.root, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!(path = %self.root.display(), %e, "unmount COPY --from view");
            }
            let _ = fs::remove_dir(&self.root);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_honours_whiteouts() {
        let t = tempfile::tempdir().unwrap();
        let l1 = t.path().join("l1");
        let l2 = t.path().join("l2");
        fs::create_dir_all(l1.join("etc")).unwrap();
        fs::create_dir_all(l2.join("etc")).unwrap();
        fs::write(l1.join("etc/passwd"), "root").unwrap();
        fs::write(l1.join("etc/gone"), "x").unwrap();
        nix::sys::stat::mknod(
            &l2.join("etc/gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        let layers = vec![l1.clone(), l2];
        assert_eq!(lookup(&layers, "/etc/passwd"), Some(l1.join("etc/passwd")));
        assert_eq!(lookup(&layers, "etc/gone"), None);
        assert_eq!(lookup(&layers, "nope"), None);
    }

    #[test]
    fn upper_diff_turns_whiteouts_into_wh_files() {
        let t = tempfile::tempdir().unwrap();
        let up = t.path();
        fs::create_dir_all(up.join("etc")).unwrap();
        fs::create_dir_all(up.join("dev")).unwrap();
        fs::write(up.join("etc/new"), "hello").unwrap();
        fs::write(up.join("etc/hosts"), "").unwrap();
        nix::sys::stat::mknod(
            &up.join("etc/old"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        let mut tar = LayerTar::new(Vec::new());
        diff_upper(up, &[], &mut tar).unwrap();
        let bytes = tar.finish().unwrap();
        let mut a = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec!["etc/", "etc/new", "etc/.wh.old"]);
    }
}
