//! The project's event journal: every finished event the supervisor's engine publishes,
//! appended as one JSON line (`{"time": <unix ns>, "event": {…}}`) to
//! `<root>/projects/<p>/events.jsonl`, so `rcompose events --since` can show past events,
//! also when no supervisor runs any more. The journal lives as long as the project's state
//! (`down` removes both); it is cut to its newer half when it passes 1 MiB.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::engine::Engine;
use super::events::Event;
use super::state::ProjectPaths;

const MAX_BYTES: u64 = 1 << 20;

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Unix time in nanoseconds.
    pub time: u128,
    pub event: Event,
}

pub fn path(paths: &ProjectPaths) -> PathBuf {
    paths.state_dir.join("events.jsonl")
}

/// Start appending the engine's finished events to the journal (a thread that ends when the
/// engine is dropped).
pub fn record(engine: &Arc<Engine>, paths: &ProjectPaths) {
    let rx = engine.subscribe();
    let file = path(paths);
    let _ = std::fs::create_dir_all(&paths.state_dir);
    trim(&file);
    let spawned = std::thread::Builder::new()
        .name("journal".into())
        .stack_size(128 << 10)
        .spawn(move || {
            let mut out = match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file)
            {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!("event journal {}: {e}", file.display());
                    return;
                }
            };
            while let Ok(event) = rx.recv() {
                if !event.done {
                    continue;
                }
                let entry = Entry {
                    time: now_ns(),
                    event,
                };
                let mut line = serde_json::to_vec(&entry).expect("an entry serializes");
                line.push(b'\n');
                if let Err(e) = out.write_all(&line) {
                    tracing::warn!("event journal {}: {e}", file.display());
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("event journal thread: {e}");
    }
}

pub fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Keep the newer half of a journal grown past [`MAX_BYTES`].
fn trim(file: &Path) {
    let Ok(meta) = std::fs::metadata(file) else {
        return;
    };
    if meta.len() <= MAX_BYTES {
        return;
    }
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let cut = text[text.len() / 2..]
        .find('\n')
        .map_or(text.len(), |i| text.len() / 2 + i + 1);
    let tmp = file.with_extension("jsonl.tmp");
    if std::fs::write(&tmp, &text[cut..]).is_ok() {
        let _ = std::fs::rename(&tmp, file);
    }
}

/// The journal's entries (unreadable lines skipped); none when there is no journal.
pub fn read(paths: &ProjectPaths) -> Vec<Entry> {
    let Ok(f) = std::fs::File::open(path(paths)) else {
        return Vec::new();
    };
    std::io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::events::Resource;

    #[test]
    fn finished_events_are_appended_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = ProjectPaths::new(tmp.path(), &tmp.path().join("run"), "p");
        std::fs::create_dir_all(&paths.state_dir).unwrap();
        let engine = Engine::open(paths.clone(), false).unwrap();
        record(&engine, &paths);
        engine.publish(Event::working(Resource::Container, "p-web-1", "Starting"));
        engine.publish(Event::done(Resource::Container, "p-web-1", "Started"));
        drop(engine);
        let mut entries = Vec::new();
        for _ in 0..100 {
            entries = read(&paths);
            if !entries.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].event.status, "Started");
        assert!(entries[0].time > 0);
    }

    #[test]
    fn a_long_journal_keeps_its_newer_half() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("events.jsonl");
        let line = "x".repeat(99) + "\n";
        std::fs::write(&f, line.repeat(20_000)).unwrap();
        trim(&f);
        let len = std::fs::metadata(&f).unwrap().len();
        assert!(len <= MAX_BYTES && len > 0 && len % 100 == 0, "{len}");
    }
}
