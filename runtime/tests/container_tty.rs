//! Privileged tests of the container's own terminal (`tty: true`, `exec -t`): a pty of the
//! container's devpts is the process's stdio and controlling terminal (and /dev/console for
//! pid 1); the caller holds the master, and a window size set on it reaches the process.

mod container_support;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use container_support::{Capture, Harness};
use runtime::container::{ExecSpec, ExitStatus, ProcessSpec};

/// Everything the master gives until `until` holds for it (or the terminal closes, or 10 s).
struct Screen {
    rx: mpsc::Receiver<Vec<u8>>,
    text: String,
    _writer: std::fs::File,
}

impl Screen {
    fn new(master: OwnedFd) -> (Self, std::fs::File) {
        let mut reader = std::fs::File::from(master.try_clone().unwrap());
        let writer = std::fs::File::from(master);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once every slave descriptor is closed.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let w2 = writer.try_clone().unwrap();
        (
            Self {
                rx,
                text: String::new(),
                _writer: writer,
            },
            w2,
        )
    }

    fn wait_for(&mut self, until: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !until(&self.text) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(chunk) => self.text.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => return until(&self.text),
            }
        }
        true
    }
}

fn resize(master: &impl AsRawFd, rows: u16, cols: u16) {
    runtime::container::tty::set_window_size(master, rows, cols).unwrap();
}

/// What `ps` shows as `+` (busybox's `ps` does not): from the `stat:` line, the output of
/// `cat /proc/self/stat` inside, the process has a controlling terminal (tty_nr) and its process
/// group is that terminal's foreground group (tpgid).
fn foreground(text: &str) -> bool {
    let Some(line) = text.lines().find_map(|l| l.trim().strip_prefix("stat: ")) else {
        return false;
    };
    let Some((_, rest)) = line.rsplit_once(')') else {
        return false;
    };
    // After the command: state ppid pgrp session tty_nr tpgid.
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.len() > 5 && f[4] != "0" && f[2] == f[5]
}

#[test]
fn exec_with_a_terminal_gets_a_controlling_pty_that_follows_resizes() {
    let h = Harness::new();
    let (c, _o, _e) = h.create(&h.spec("exectty", &["sleep", "30"]));
    c.start().unwrap();
    let exec = ExecSpec {
        process: ProcessSpec {
            args: vec![
                "sh".into(),
                "-c".into(),
                "trap 'echo got-winch' WINCH; tty; echo stat: $(cat /proc/self/stat); echo ready; read x; stty size"
                    .into(),
            ],
            tty: true,
            ..Default::default()
        },
        privileged: false,
    };
    let (stdio, _out, _err) = Capture::new().split();
    let (p, master) = c.exec_with_terminal(&h.runtime, &exec, stdio).unwrap();
    let (mut screen, mut input) = Screen::new(master);
    assert!(
        screen.wait_for(|t| t.contains("ready")),
        "{:?}",
        screen.text
    );
    // A pty of the container's own devpts (new instance: numbering starts at 0).
    assert!(
        screen.text.lines().any(|l| l.trim() == "/dev/pts/0"),
        "{:?}",
        screen.text
    );
    // `+`: the process group in the terminal's foreground, so the pty is its controlling one.
    assert!(foreground(&screen.text), "{:?}", screen.text);
    resize(&input, 33, 77);
    input.write_all(b"go\n").unwrap();
    assert!(
        screen.wait_for(|t| t.contains("33 77") && t.contains("got-winch")),
        "{:?}",
        screen.text
    );
    assert_eq!(
        runtime::container::wait(p.pid).unwrap(),
        ExitStatus::Code(0)
    );
    c.stop(Duration::from_millis(200)).unwrap();
    runtime::container::wait(c.pid).unwrap();
    c.remove().unwrap();
}

#[test]
fn a_terminal_container_has_its_pty_as_controlling_terminal_and_console() {
    let h = Harness::new();
    let mut spec = h.spec(
        "ctrtty",
        &[
            "sh",
            "-c",
            "tty; stat -c 'console %t:%T' /dev/console; stat -L -c 'stdin %t:%T' /proc/self/fd/0; echo stat: $(cat /proc/self/stat); echo ready; read x; stty size",
        ],
    );
    spec.process.tty = true;
    let (stdio, _out, _err) = Capture::new().split();
    let (c, master) = h.runtime.create_with_terminal(&spec, stdio).unwrap();
    // Set before start: the process sees it from its first instruction.
    resize(&master, 21, 55);
    let (mut screen, mut input) = Screen::new(master);
    c.start().unwrap();
    assert!(
        screen.wait_for(|t| t.contains("ready")),
        "{:?}",
        screen.text
    );
    input.write_all(b"\n").unwrap();
    assert!(
        screen.wait_for(|t| t.contains("21 55")),
        "{:?}",
        screen.text
    );
    let text = screen.text.clone();
    assert!(text.lines().any(|l| l.trim() == "/dev/pts/0"), "{text:?}");
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {text:?}"))
            .to_string()
    };
    // /dev/console is the same device as stdin: the pty slave (major 136 = 0x88).
    assert_eq!(field("console "), field("stdin "), "{text:?}");
    assert!(field("console ").starts_with("88:"), "{text:?}");
    assert!(foreground(&text), "{text:?}");
    assert_eq!(
        runtime::container::wait(c.pid).unwrap(),
        ExitStatus::Code(0)
    );
    c.remove().unwrap();
}
