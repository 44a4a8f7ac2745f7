//! Reading container logs back: the json-file logs the supervisor writes
//! (`{"log":"text\n","stream":"stdout","time":"<RFC 3339 nano>"}` per line, rotated as
//! `<file>.1`, `<file>.2`, … oldest last), all at once or followed. Following polls the files
//! (no inotify: it works the same for a supervisor in this process, another process, or none)
//! and reopens a file whose inode changed (rotation, recreated container), so `logs -f` and
//! attached `up` follow a service across restarts and recreation.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// One stored line, borrowed from the buffer it was read from.
#[derive(Debug, Deserialize)]
pub struct Entry<'a> {
    #[serde(borrow)]
    pub log: Cow<'a, str>,
    #[serde(borrow, default)]
    pub stream: Cow<'a, str>,
    #[serde(borrow, default)]
    pub time: Cow<'a, str>,
}

/// Parse one line of a json-file log.
pub fn parse(line: &[u8]) -> Option<Entry<'_>> {
    serde_json::from_slice(line).ok()
}

fn rotated(path: &Path, i: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

/// The log file and its rotated predecessors, oldest first.
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let mut i = 1;
    while rotated(path, i).exists() {
        v.push(rotated(path, i));
        i += 1;
    }
    v.reverse();
    v.push(path.to_path_buf());
    v
}

/// Time bounds for `--since` / `--until`, as RFC 3339 nano strings in UTC (which compare
/// correctly as text against the stored times).
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub since: Option<String>,
    pub until: Option<String>,
}

impl Window {
    pub fn contains(&self, time: &str) -> bool {
        self.since.as_deref().is_none_or(|s| time >= s)
            && self.until.as_deref().is_none_or(|u| time < u)
    }
}

/// Parse `--since`/`--until`: an RFC 3339 time, a unix timestamp, or a duration before now
/// (`42m`, `10s`, `1h30m`).
pub fn parse_time_bound(s: &str) -> Option<String> {
    let t = if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        t
    } else if let Ok(secs) = s.parse::<f64>() {
        std::time::UNIX_EPOCH + Duration::from_secs_f64(secs)
    } else {
        std::time::SystemTime::now().checked_sub(humantime::parse_duration(s).ok()?)?
    };
    Some(humantime::format_rfc3339_nanos(t).to_string())
}

/// Read every stored entry of one container's log, calling `f` with each raw line in order.
/// Lines outside `window` are skipped; `tail` keeps only the last N.
pub fn read_all(
    path: &Path,
    window: &Window,
    tail: Option<usize>,
    f: &mut dyn FnMut(&Entry<'_>),
) -> io::Result<()> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let keep_all = tail.is_none();
    for file in files(path) {
        let file = match File::open(&file) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut buf = Vec::with_capacity(256);
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf)? == 0 {
                break;
            }
            let Some(e) = parse(&buf) else { continue };
            if !window.contains(&e.time) {
                continue;
            }
            if keep_all {
                f(&e);
            } else {
                lines.push(buf.clone());
            }
        }
    }
    if let Some(n) = tail {
        let start = lines.len().saturating_sub(n);
        for l in &lines[start..] {
            if let Some(e) = parse(l) {
                f(&e);
            }
        }
    }
    Ok(())
}

/// Follows one log file from a position, across rotation and replacement.
#[derive(Debug)]
pub struct Tail {
    pub path: PathBuf,
    file: Option<File>,
    ino: u64,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    /// Start at the current end of the file (what `read_all` already printed is skipped).
    pub fn at_end(path: &Path) -> Tail {
        let mut t = Tail {
            path: path.to_path_buf(),
            file: None,
            ino: 0,
            offset: 0,
            partial: Vec::new(),
        };
        if let Ok(mut f) = File::open(path) {
            t.ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
            t.offset = f.seek(SeekFrom::End(0)).unwrap_or(0);
            t.file = Some(f);
        }
        t
    }

    /// Start at the beginning of the file.
    pub fn at_start(path: &Path) -> Tail {
        Tail {
            path: path.to_path_buf(),
            file: None,
            ino: 0,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// Read what was appended since the last call and hand each complete entry to `f`.
    /// Returns whether anything was read.
    pub fn poll(&mut self, f: &mut dyn FnMut(&Entry<'_>)) -> bool {
        // Reopen when the path now names another file (rotated, or the container recreated).
        let current = std::fs::metadata(&self.path)
            .map(|m| (m.ino(), m.len()))
            .ok();
        match (current, &self.file) {
            (None, _) => {}
            (Some((ino, _)), Some(_)) if ino == self.ino => {}
            (Some((ino, _)), _) => {
                if let Some(old) = self.file.as_mut() {
                    // Drain the rest of the old file first.
                    let mut rest = Vec::new();
                    let _ = old.read_to_end(&mut rest);
                    self.partial.extend_from_slice(&rest);
                }
                self.file = File::open(&self.path).ok();
                self.ino = ino;
                self.offset = 0;
            }
        }
        let Some(file) = self.file.as_mut() else {
            return false;
        };
        if let Some((_, len)) = current {
            if len < self.offset {
                // Truncated in place (max-file 1): start over.
                let _ = file.seek(SeekFrom::Start(0));
                self.offset = 0;
            }
        }
        let mut chunk = Vec::new();
        let n = file.read_to_end(&mut chunk).unwrap_or(0);
        self.offset += n as u64;
        self.partial.extend_from_slice(&chunk);
        if self.partial.is_empty() {
            return false;
        }
        let mut start = 0;
        while let Some(pos) = self.partial[start..].iter().position(|b| *b == b'\n') {
            if let Some(e) = parse(&self.partial[start..start + pos]) {
                f(&e);
            }
            start += pos + 1;
        }
        self.partial.drain(..start);
        n > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(text: &str, time: &str) -> String {
        format!(
            "{}\n",
            serde_json::json!({"log": format!("{text}\n"), "stream": "stdout", "time": time})
        )
    }

    #[test]
    fn read_all_honours_tail_window_and_rotation() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("json.log");
        std::fs::write(
            rotated(&p, 1),
            line("one", "2026-01-01T00:00:01.000000000Z"),
        )
        .unwrap();
        std::fs::write(
            &p,
            line("two", "2026-01-01T00:00:02.000000000Z")
                + &line("three", "2026-01-01T00:00:03.000000000Z"),
        )
        .unwrap();
        let mut seen = Vec::new();
        read_all(&p, &Window::default(), None, &mut |e| {
            seen.push(e.log.trim().to_string())
        })
        .unwrap();
        assert_eq!(seen, ["one", "two", "three"]);
        seen.clear();
        read_all(&p, &Window::default(), Some(2), &mut |e| {
            seen.push(e.log.trim().to_string())
        })
        .unwrap();
        assert_eq!(seen, ["two", "three"]);
        seen.clear();
        let w = Window {
            since: parse_time_bound("2026-01-01T00:00:02Z"),
            until: parse_time_bound("2026-01-01T00:00:03Z"),
        };
        read_all(&p, &w, None, &mut |e| seen.push(e.log.trim().to_string())).unwrap();
        assert_eq!(seen, ["two"]);
    }

    #[test]
    fn a_tail_follows_appends_and_replacement() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("json.log");
        std::fs::write(&p, line("old", "t")).unwrap();
        let mut t = Tail::at_end(&p);
        let mut seen = Vec::new();
        t.poll(&mut |e| seen.push(e.log.trim().to_string()));
        assert!(seen.is_empty());
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        let l = line("new", "t");
        f.write_all(&l.as_bytes()[..10]).unwrap();
        t.poll(&mut |e| seen.push(e.log.trim().to_string()));
        assert!(seen.is_empty(), "a partial line waits");
        f.write_all(&l.as_bytes()[10..]).unwrap();
        t.poll(&mut |e| seen.push(e.log.trim().to_string()));
        assert_eq!(seen, ["new"]);
        // The container is recreated: a new file at the same path.
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, line("fresh", "t")).unwrap();
        t.poll(&mut |e| seen.push(e.log.trim().to_string()));
        assert_eq!(seen, ["new", "fresh"]);
    }
}
