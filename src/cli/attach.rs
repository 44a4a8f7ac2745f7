//! Printing container output: `logs` and attached `up` read the json-file logs (the same files
//! whether a supervisor runs here, in another process, or not at all) and print each line with
//! a coloured `name-1 | ` prefix, following across restarts.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::time::Duration;

use crate::supervisor::logs::{Entry, Tail};
use crate::supervisor::state::{
    ContainerRecord, ContainerStatus, ProjectPaths, ProjectState, StateStore,
};

use super::render::log_prefix;

/// Formats and writes log lines.
pub struct Printer {
    pub color: bool,
    pub prefix: bool,
    pub timestamps: bool,
    pub width: usize,
    /// Service → colour index (stable: the order services first appear).
    colors: BTreeMap<String, usize>,
    out: BufWriter<std::io::Stdout>,
}

impl Printer {
    pub fn new(color: bool, prefix: bool, timestamps: bool) -> Printer {
        Printer {
            color,
            prefix,
            timestamps,
            width: 0,
            colors: BTreeMap::new(),
            out: BufWriter::with_capacity(1 << 16, std::io::stdout()),
        }
    }

    /// The name shown for a container: `web-1` (or the one-off's full name).
    pub fn display_name(c: &ContainerRecord) -> String {
        if c.oneoff {
            c.name.clone()
        } else {
            format!("{}-{}", c.service, c.number)
        }
    }

    pub fn register(&mut self, c: &ContainerRecord) {
        self.width = self.width.max(Self::display_name(c).chars().count());
        let n = self.colors.len();
        self.colors.entry(c.service.clone()).or_insert(n);
    }

    pub fn line(&mut self, c: &ContainerRecord, e: &Entry<'_>) {
        if self.prefix {
            let idx = self.colors.get(&c.service).copied().unwrap_or(0);
            let p = log_prefix(&Self::display_name(c), self.width, idx, self.color);
            let _ = self.out.write_all(p.as_bytes());
        }
        if self.timestamps {
            let _ = write!(self.out, "{} ", e.time);
        }
        let _ = self.out.write_all(e.log.as_bytes());
        if !e.log.ends_with('\n') {
            let _ = self.out.write_all(b"\n");
        }
    }

    pub fn text(&mut self, s: &str) {
        let _ = writeln!(self.out, "{s}");
    }

    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }
}

/// Follow the logs of the containers `select` picks until `stop` says so. New containers are
/// picked up as they appear; `from_start` prints a container's whole log when it is first seen
/// (attached `up`), otherwise only what comes after (logs already printed by the caller).
/// `on_exit` is told when a container moves to `exited`: compared with `before` (the state
/// before the caller acted, e.g. before `up` started the containers), so an exit that happened
/// before the first look still counts, and a container that was already exited and untouched
/// does not.
pub fn follow(
    paths: &ProjectPaths,
    printer: &mut Printer,
    select: &dyn Fn(&ContainerRecord) -> bool,
    from_start: bool,
    before: Option<&ProjectState>,
    stop: &mut dyn FnMut(&ProjectState) -> bool,
    on_exit: &mut dyn FnMut(&mut Printer, &ContainerRecord),
) {
    let store = StateStore::new(paths.clone());
    let mut tails: BTreeMap<String, (Tail, ContainerRecord)> = BTreeMap::new();
    // Status and run (start time, restart count) last seen: a new run that exited is an exit.
    let run = |c: &ContainerRecord| (c.status, c.started, c.restart_count);
    let mut last_status: BTreeMap<String, (ContainerStatus, Option<u64>, u32)> = before
        .map(|b| {
            b.containers
                .values()
                .map(|c| (c.name.clone(), run(c)))
                .collect()
        })
        .unwrap_or_default();
    loop {
        let st = store.load().ok().flatten().unwrap_or_default();
        for c in st.containers.values().filter(|c| select(c)) {
            if !tails.contains_key(&c.name) {
                printer.register(c);
                let path = paths.log_file(&c.name);
                let t = if from_start {
                    Tail::at_start(&path)
                } else {
                    Tail::at_end(&path)
                };
                tails.insert(c.name.clone(), (t, c.clone()));
            }
        }
        let mut any = false;
        for (t, c) in tails.values_mut() {
            any |= t.poll(&mut |e| printer.line(c, e));
        }
        for c in st.containers.values().filter(|c| select(c)) {
            let prev = last_status.insert(c.name.clone(), run(c));
            if c.status == ContainerStatus::Exited && prev != Some(run(c)) {
                // Print what it wrote last before saying it exited.
                if let Some((t, rec)) = tails.get_mut(&c.name) {
                    t.poll(&mut |e| printer.line(rec, e));
                }
                on_exit(printer, c);
            }
        }
        printer.flush();
        if stop(&st) {
            for (t, c) in tails.values_mut() {
                t.poll(&mut |e| printer.line(c, e));
            }
            printer.flush();
            return;
        }
        if !any {
            std::thread::sleep(Duration::from_millis(40));
        }
    }
}
