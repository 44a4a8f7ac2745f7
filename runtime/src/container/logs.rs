//! Container logs in Docker's json-file format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"2026-11-25T17:53:54.123456789Z"}`, with
//! `max-size` / `max-file` rotation (`<file>`, `<file>.1`, … oldest last). The supervisor
//! writes what it reads from the container's stdout/stderr pipes; `logs` reads it back.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One log line as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// `logging.options` of the json-file driver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// `max-size` in bytes; `None` never rotates.
    pub max_size: Option<u64>,
    /// `max-file` (default 1: the file is truncated when full).
    pub max_file: u32,
}

/// Appends container output to a json-file log, rotating by size.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    options: LogOptions,
    file: File,
    size: u64,
    /// Partial lines (no newline yet), per stream.
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    pub fn open(path: &Path, options: LogOptions) -> io::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.into(),
            options,
            file,
            size,
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Record a chunk of output; complete lines are written now, a trailing partial line when
    /// its newline arrives (or on [`LogWriter::flush_partial`]).
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        let idx = stream as usize;
        let mut buf = std::mem::take(&mut self.partial[idx]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|b| *b == b'\n') {
            let line = buf[start..start + pos + 1].to_vec();
            self.write_line(stream, &line, SystemTime::now())?;
            start += pos + 1;
        }
        self.partial[idx] = buf[start..].to_vec();
        Ok(())
    }

    /// Write out partial lines (the stream ended without a final newline).
    pub fn flush_partial(&mut self) -> io::Result<()> {
        for (idx, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            let buf = std::mem::take(&mut self.partial[idx]);
            if !buf.is_empty() {
                self.write_line(stream, &buf, SystemTime::now())?;
            }
        }
        Ok(())
    }

    /// Write one entry (the line keeps its newline, as Docker stores it).
    pub fn write_line(&mut self, stream: Stream, line: &[u8], time: SystemTime) -> io::Result<()> {
        let entry = LogEntry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream: stream.as_str().into(),
            time: rfc3339_nano(time),
        };
        let mut text = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        text.push(b'\n');
        if let Some(max) = self.options.max_size {
            if self.size > 0 && self.size + text.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file.write_all(&text)?;
        self.size += text.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.options.max_file.max(1);
        if keep == 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let _ = std::fs::remove_file(rotated(&self.path, keep - 1));
        for i in (1..keep - 1).rev() {
            let from = rotated(&self.path, i);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, i + 1))?;
            }
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn rotated(path: &Path, i: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

/// Every entry of a log and its rotated files, oldest first.
pub fn read_logs(path: &Path) -> io::Result<Vec<LogEntry>> {
    let mut files = Vec::new();
    let mut i = 1;
    while rotated(path, i).exists() {
        files.push(rotated(path, i));
        i += 1;
    }
    files.reverse();
    files.push(path.to_path_buf());
    let mut out = Vec::new();
    for f in files {
        let file = match File::open(&f) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in BufReader::new(file).lines() {
            let line = line?;
            if line.is_empty() {
                continue;
            }
            out.push(serde_json::from_str(&line).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", f.display()))
            })?);
        }
    }
    Ok(out)
}

/// `2026-11-25T17:53:54.123456789Z` (Go's RFC3339Nano without trailing-zero trimming).
pub fn rfc3339_nano(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn time_format_matches_docker() {
        let t = UNIX_EPOCH + Duration::new(1_795_974_834, 123_456_789);
        assert_eq!(rfc3339_nano(t), "2026-11-29T17:53:54.123456789Z");
        assert_eq!(
            rfc3339_nano(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000000Z"
        );
    }

    #[test]
    fn lines_are_split_and_partial_lines_wait() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c-json.log");
        let mut w = LogWriter::open(&path, LogOptions::default()).unwrap();
        w.write(Stream::Stdout, b"hello\nwor").unwrap();
        w.write(Stream::Stderr, b"oops\n").unwrap();
        w.write(Stream::Stdout, b"ld\n\"q\"").unwrap();
        w.flush_partial().unwrap();
        let e = read_logs(&path).unwrap();
        let got: Vec<(&str, &str)> = e
            .iter()
            .map(|e| (e.log.as_str(), e.stream.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("hello\n", "stdout"),
                ("oops\n", "stderr"),
                ("world\n", "stdout"),
                ("\"q\"", "stdout")
            ]
        );
        let raw = std::fs::read_to_string(&path).unwrap();
        assert!(
            raw.starts_with("{\"log\":\"hello\\n\",\"stream\":\"stdout\",\"time\":\""),
            "{raw}"
        );
    }

    #[test]
    fn rotation_keeps_max_file_files() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c-json.log");
        let mut w = LogWriter::open(
            &path,
            LogOptions {
                max_size: Some(200),
                max_file: 3,
            },
        )
        .unwrap();
        for i in 0..20 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        assert!(rotated(&path, 1).exists() && rotated(&path, 2).exists());
        assert!(!rotated(&path, 3).exists());
        for f in [path.clone(), rotated(&path, 1), rotated(&path, 2)] {
            assert!(std::fs::metadata(&f).unwrap().len() <= 200);
        }
        let logs = read_logs(&path).unwrap();
        assert_eq!(logs.last().unwrap().log, "line 19\n");
        let nums: Vec<u32> = logs
            .iter()
            .map(|e| e.log.trim().strip_prefix("line ").unwrap().parse().unwrap())
            .collect();
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
    }
}
