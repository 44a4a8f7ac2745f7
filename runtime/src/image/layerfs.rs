//! Container filesystems back to tarballs: an overlayfs upper dir as an OCI layer (`commit`),
//! and the merged view of a container's layers as one plain tree (`export`). Both read the
//! overlay format the store's unpacked layers and a container's upper dir share: a whiteout
//! is a 0/0 character device, an opaque directory carries `trusted.overlay.opaque=y`
//! (Documentation/filesystems/overlayfs.rst). Symlinks are stored, never followed.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Debug, thiserror::Error)]
pub enum LayerFsError {
    #[error("read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("write the tarball (at {path}): {source}")]
    Write { path: PathBuf, source: io::Error },
}

type Result<T> = std::result::Result<T, LayerFsError>;

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> LayerFsError + '_ {
    move |source| LayerFsError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// What an entry of an overlay layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Whiteout,
    OpaqueDir,
    Dir,
    Other,
}

fn kind_of(path: &Path, meta: &fs::Metadata) -> Kind {
    let ft = meta.file_type();
    if ft.is_char_device() && meta.rdev() == 0 {
        Kind::Whiteout
    } else if ft.is_dir() {
        let mut v = [0u8; 8];
        let opaque = rustix::fs::lgetxattr(path, OVERLAY_OPAQUE_XATTR, &mut v)
            .is_ok_and(|n| &v[..n] == b"y");
        if opaque {
            Kind::OpaqueDir
        } else {
            Kind::Dir
        }
    } else {
        Kind::Other
    }
}

/// Every entry under `dir` (relative paths, parents before children, names sorted).
fn walk(dir: &Path, rel: &Path, out: &mut Vec<(PathBuf, fs::Metadata)>) -> Result<()> {
    let full = dir.join(rel);
    let mut names: Vec<_> = fs::read_dir(&full)
        .map_err(read_err(&full))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .map_err(read_err(&full))?;
    names.sort();
    for n in names {
        let r = rel.join(&n);
        let p = dir.join(&r);
        let meta = fs::symlink_metadata(&p).map_err(read_err(&p))?;
        let is_dir = meta.is_dir();
        out.push((r.clone(), meta));
        if is_dir {
            walk(dir, &r, out)?;
        }
    }
    Ok(())
}

fn builder<W: Write>(out: W) -> tar::Builder<W> {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    b.follow_symlinks(false);
    b
}

fn append<W: Write>(b: &mut tar::Builder<W>, dir: &Path, rel: &Path) -> Result<()> {
    let full = dir.join(rel);
    b.append_path_with_name(&full, rel)
        .map_err(|source| LayerFsError::Write { path: full, source })
}

fn append_empty<W: Write>(b: &mut tar::Builder<W>, rel: &Path) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(0);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, rel, io::empty())
        .map_err(|source| LayerFsError::Write {
            path: rel.to_path_buf(),
            source,
        })
}

/// Write the overlay upper dir `upper` as an OCI layer tarball: its files as they are, a
/// whiteout as an empty `.wh.<name>`, an opaque directory followed by `.wh..wh..opq`.
pub fn diff_tar<W: Write>(upper: &Path, out: W) -> Result<W> {
    let mut entries = Vec::new();
    walk(upper, Path::new(""), &mut entries)?;
    let mut b = builder(out);
    for (rel, meta) in &entries {
        match kind_of(&upper.join(rel), meta) {
            Kind::Whiteout => {
                let name = format!(
                    ".wh.{}",
                    rel.file_name().unwrap_or_default().to_string_lossy()
                );
                append_empty(&mut b, &rel.with_file_name(name))?;
            }
            Kind::OpaqueDir => {
                append(&mut b, upper, rel)?;
                append_empty(&mut b, &rel.join(".wh..wh..opq"))?;
            }
            Kind::Dir | Kind::Other => append(&mut b, upper, rel)?,
        }
    }
    b.into_inner().map_err(|source| LayerFsError::Write {
        path: upper.to_path_buf(),
        source,
    })
}

/// Is some strict ancestor of `rel` in `set`?
fn under_any(rel: &Path, set: &BTreeSet<PathBuf>) -> bool {
    rel.ancestors().skip(1).any(|a| set.contains(a))
}

/// Write the merged view of overlay layers `top_first` (a container's upper dir, then its
/// image layers from the highest down) as one tarball, as the container sees its root
/// (`docker export`): an upper entry hides the same path below, whiteouts and non-directories
/// hide what is under them, opaque directories hide the lower layers' content.
pub fn merged_tar<W: Write>(top_first: &[&Path], out: W) -> Result<W> {
    let mut b = builder(out);
    // Paths decided by a higher layer (written, or whited out).
    let mut decided: BTreeSet<PathBuf> = BTreeSet::new();
    // Paths whose subtrees the lower layers no longer contribute to.
    let mut hiding: BTreeSet<PathBuf> = BTreeSet::new();
    for dir in top_first {
        let mut entries = Vec::new();
        walk(dir, Path::new(""), &mut entries)?;
        let mut new_hiding = Vec::new();
        for (rel, meta) in &entries {
            if under_any(rel, &hiding) {
                continue;
            }
            let kind = kind_of(&dir.join(rel), meta);
            if decided.contains(rel) {
                continue;
            }
            decided.insert(rel.clone());
            match kind {
                Kind::Whiteout => new_hiding.push(rel.clone()),
                Kind::OpaqueDir => {
                    append(&mut b, dir, rel)?;
                    new_hiding.push(rel.clone());
                }
                Kind::Dir => append(&mut b, dir, rel)?,
                Kind::Other => {
                    append(&mut b, dir, rel)?;
                    new_hiding.push(rel.clone());
                }
            }
        }
        hiding.extend(new_hiding);
    }
    b.into_inner().map_err(|source| LayerFsError::Write {
        path: PathBuf::from("/"),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{mknodat, FileType, Mode, XattrFlags, CWD};

    fn whiteout(p: &Path) {
        mknodat(
            CWD,
            p,
            FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .expect("mknod a whiteout (needs root)");
    }

    fn names(tar_bytes: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let mut s = String::new();
                use std::io::Read;
                let mut e = e;
                let p = e.path().unwrap().display().to_string();
                e.read_to_string(&mut s).unwrap();
                if s.is_empty() {
                    p
                } else {
                    format!("{p}={s}")
                }
            })
            .collect()
    }

    /// lower: /etc/a, /etc/b, /old/x, /data/keep; upper: /etc/a changed, /etc/b whited out,
    /// /old opaque with /old/y, /new, /data a file now.
    fn layers(tmp: &Path) -> (PathBuf, PathBuf) {
        let lower = tmp.join("lower");
        let upper = tmp.join("upper");
        for d in ["etc", "old", "data"] {
            fs::create_dir_all(lower.join(d)).unwrap();
        }
        fs::write(lower.join("etc/a"), "1").unwrap();
        fs::write(lower.join("etc/b"), "2").unwrap();
        fs::write(lower.join("old/x"), "3").unwrap();
        fs::write(lower.join("data/keep"), "4").unwrap();
        std::os::unix::fs::symlink("/nowhere", lower.join("link")).unwrap();
        for d in ["etc", "old"] {
            fs::create_dir_all(upper.join(d)).unwrap();
        }
        fs::write(upper.join("etc/a"), "changed").unwrap();
        whiteout(&upper.join("etc/b"));
        rustix::fs::lsetxattr(
            upper.join("old"),
            OVERLAY_OPAQUE_XATTR,
            b"y",
            XattrFlags::empty(),
        )
        .unwrap();
        fs::write(upper.join("old/y"), "5").unwrap();
        fs::write(upper.join("new"), "6").unwrap();
        fs::write(upper.join("data"), "7").unwrap();
        (lower, upper)
    }

    #[test]
    fn the_diff_of_an_upper_dir_uses_oci_whiteouts() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, upper) = layers(tmp.path());
        let t = diff_tar(&upper, Vec::new()).unwrap();
        assert_eq!(
            names(&t),
            [
                "data=7",
                "etc",
                "etc/a=changed",
                "etc/.wh.b",
                "new=6",
                "old",
                "old/.wh..wh..opq",
                "old/y=5"
            ]
        );
    }

    #[test]
    fn the_merged_view_applies_whiteouts_opaque_dirs_and_replacements() {
        let tmp = tempfile::tempdir().unwrap();
        let (lower, upper) = layers(tmp.path());
        let t = merged_tar(&[&upper, &lower], Vec::new()).unwrap();
        assert_eq!(
            names(&t),
            [
                "data=7",
                "etc",
                "etc/a=changed",
                "new=6",
                "old",
                "old/y=5",
                "link"
            ]
        );
        let mut a = tar::Archive::new(&t[..]);
        let link = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().as_os_str() == "link")
            .unwrap();
        assert_eq!(
            link.link_name().unwrap().unwrap().display().to_string(),
            "/nowhere"
        );
    }
}
