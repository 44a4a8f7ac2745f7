//! Sources of COPY/ADD: the build context folder (minus `.dockerignore`) or another stage's
//! filesystem. Resolves source words (globs included) to the files they name, in a stable
//! order, and hashes their content for the cache key.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::ignore::{clean, glob_segment, has_glob, Ignore};

/// A folder files are copied from.
pub struct Source<'a> {
    pub root: &'a Path,
    /// Only the build context has one.
    pub ignore: Option<&'a Ignore>,
}

impl Source<'_> {
    fn excluded(&self, rel: &str) -> bool {
        self.ignore.is_some_and(|i| i.excluded(rel))
    }

    /// The relative paths a source word names (a glob may name several, sorted). Missing
    /// sources are an error message naming the word.
    pub fn resolve(&self, word: &str) -> Result<Vec<String>, String> {
        let rel = clean(word);
        if !has_glob(&rel) {
            let p = self.path(&rel);
            if fs::symlink_metadata(&p).is_err() || (!rel.is_empty() && self.excluded(&rel)) {
                return Err(format!(
                    "{word}: not found in {} (or excluded by .dockerignore)",
                    if self.ignore.is_some() {
                        "the build context"
                    } else {
                        "the source stage"
                    }
                ));
            }
            return Ok(vec![rel]);
        }
        let pattern: Vec<&str> = rel.split('/').collect();
        let mut out = Vec::new();
        self.glob(Path::new(""), &pattern, &mut out);
        out.sort();
        if out.is_empty() {
            return Err(format!(
                "{word}: no source files were specified (the pattern matches nothing)"
            ));
        }
        Ok(out)
    }

    fn glob(&self, dir: &Path, pattern: &[&str], out: &mut Vec<String>) {
        let Some((first, rest)) = pattern.split_first() else {
            return;
        };
        let Ok(rd) = fs::read_dir(self.path(&dir.to_string_lossy())) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !glob_segment(first, &name) {
                continue;
            }
            let rel = dir.join(&name);
            let rel_s = rel.to_string_lossy().into_owned();
            if rest.is_empty() {
                if !self.excluded(&rel_s) {
                    out.push(rel_s);
                }
            } else {
                self.glob(&rel, rest, out);
            }
        }
    }

    /// Everything below a folder (relative to it), folders before their content, sorted,
    /// ignored paths left out.
    pub fn walk(&self, rel_dir: &str) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        self.walk_into(rel_dir, "", &mut out)?;
        Ok(out)
    }

    fn walk_into(&self, base: &str, sub: &str, out: &mut Vec<String>) -> io::Result<()> {
        // `sub` only goes through real folders (symlinks are not descended into).
        let dir = self.path(base).join(sub);
        let mut names: Vec<String> = fs::read_dir(&dir)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for n in names {
            let inner = if sub.is_empty() {
                n.clone()
            } else {
                format!("{sub}/{n}")
            };
            let ctx_rel = if base.is_empty() {
                inner.clone()
            } else {
                format!("{base}/{inner}")
            };
            let is_dir = fs::symlink_metadata(dir.join(&n))?.is_dir();
            let excluded = self.excluded(&ctx_rel);
            if !excluded {
                out.push(inner.clone());
            }
            if is_dir && (!excluded || self.ignore.is_some_and(|i| i.may_reinclude_under(&ctx_rel)))
            {
                self.walk_into(base, &inner, out)?;
            }
        }
        Ok(())
    }

    /// The real path of `rel`, with symlinks resolved inside the root: an absolute link
    /// target means the root's path, `..` stops at the root. Without this a context (or an
    /// image, for `COPY --from`) with `link -> /etc/shadow` would copy the host's file.
    pub fn path(&self, rel: &str) -> PathBuf {
        scoped(self.root, rel)
    }
}

/// Resolve `rel` under `root` component by component, following symlinks as if `root` were
/// `/` (at most 40 links, as the kernel). A broken or looping link resolves to the path it
/// names, which then does not exist.
pub fn scoped(root: &Path, rel: &str) -> PathBuf {
    let r = resolve_links(rel, |p| {
        let path = root.join(p);
        let m = fs::symlink_metadata(&path).ok()?;
        if m.file_type().is_symlink() {
            fs::read_link(&path).ok()
        } else {
            None
        }
    });
    if r.is_empty() {
        root.to_path_buf()
    } else {
        root.join(r)
    }
}

/// The symlink-free relative path `rel` names, given `link(prefix)` that returns the target
/// of a prefix that is a symlink. Absolute targets restart at the root; `..` stops there.
pub fn resolve_links(rel: &str, link: impl Fn(&str) -> Option<PathBuf>) -> String {
    let mut todo: Vec<String> = rel
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .rev()
        .map(String::from)
        .collect();
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        done.push(c);
        if hops >= 40 {
            continue;
        }
        let Some(target) = link(&done.join("/")) else {
            continue;
        };
        hops += 1;
        done.pop();
        let t = target.to_string_lossy();
        if t.starts_with('/') {
            done.clear();
        }
        todo.extend(
            t.split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .rev()
                .map(String::from),
        );
    }
    done.join("/")
}

/// Streaming content hash of files for the cache key.
#[derive(Default)]
pub struct ContentHash(Sha256);

impl ContentHash {
    pub fn new() -> Self {
        ContentHash(Sha256::new())
    }

    pub fn text(&mut self, s: &str) {
        self.0.update(s.as_bytes());
        self.0.update([0]);
    }

    /// Path, type, mode, and the content of a file or a link's target.
    pub fn entry(&mut self, dest: &str, path: &Path) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::symlink_metadata(path)?;
        self.text(dest);
        self.text(&format!("{:o}", m.mode()));
        if m.file_type().is_symlink() {
            self.text(&fs::read_link(path)?.to_string_lossy());
        } else if m.is_file() {
            let mut f = fs::File::open(path)?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                self.0.update(&buf[..n]);
            }
            self.0.update([0]);
        }
        Ok(())
    }

    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_globs_and_honours_ignore() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("src/inner")).unwrap();
        for f in [
            "a.txt",
            "b.txt",
            "c.log",
            "src/x.rs",
            "src/inner/y.rs",
            "src/skip.tmp",
        ] {
            fs::write(r.join(f), f).unwrap();
        }
        let ig = Ignore::parse("*.log\nsrc/*.tmp\n");
        let s = Source {
            root: r,
            ignore: Some(&ig),
        };
        assert_eq!(s.resolve("*.txt").unwrap(), vec!["a.txt", "b.txt"]);
        assert!(s.resolve("c.log").unwrap_err().contains("dockerignore"));
        assert!(s.resolve("missing").is_err());
        assert_eq!(s.resolve("./src/../a.txt").unwrap(), vec!["a.txt"]);
        assert_eq!(s.walk("src").unwrap(), vec!["inner", "inner/y.rs", "x.rs"]);
        assert_eq!(s.walk("").unwrap().len(), 6);
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("etc")).unwrap();
        fs::create_dir_all(r.join("real/dir")).unwrap();
        fs::write(r.join("etc/shadow"), "inside").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../etc/shadow", r.join("up")).unwrap();
        std::os::unix::fs::symlink("real/dir", r.join("dirlink")).unwrap();
        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        assert_eq!(scoped(r, "abs"), r.join("etc/shadow"));
        assert_eq!(scoped(r, "up"), r.join("etc/shadow"));
        assert_eq!(scoped(r, "dirlink/x"), r.join("real/dir/x"));
        assert_eq!(scoped(r, "a/../etc/./shadow"), r.join("etc/shadow"));
        assert!(scoped(r, "loop").starts_with(r));
        assert_eq!(scoped(r, ""), r.to_path_buf());
    }
}
