//! The process model. A supervisor owns one project's containers: it is their subreaper and
//! parent, holds the project lock for its whole life, serves requests on
//! `<run>/<project>/supervisor.sock`, and exits once nothing of the project runs any more.
//! `up -d` re-executes this binary as a detached supervisor (`rcompose __supervise`); attached
//! `up` runs one in its own process. Clients talk to a running supervisor, or, when none runs,
//! either start one (requests that leave containers running) or do the work themselves from
//! the on-disk state (stop, kill, rm, down).

use std::io::Read;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::api::{self, Line, Responder};
use super::engine::Engine;
use super::events::{Event, EventSink};
use super::ops::{self, Reporter, Request};
use super::state::{pid_start_time, ProjectLock, ProjectPaths, StateError, SupervisorRecord};

/// Reporter that streams to a socket client.
struct SocketReporter<'a> {
    out: Mutex<&'a mut Responder>,
}

impl EventSink for SocketReporter<'_> {
    fn emit(&self, e: Event) {
        self.out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(&Line::Event(e));
    }
}

impl Reporter for SocketReporter<'_> {
    fn message(&self, text: &str) {
        self.out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(&Line::Message(text.to_string()));
    }
}

/// A running supervisor (in this process).
pub struct Supervisor {
    pub engine: Arc<Engine>,
    busy: Arc<AtomicUsize>,
    last_active: Arc<Mutex<Instant>>,
    /// Set by a `down` request: exit as soon as it is answered.
    pub done: Arc<AtomicBool>,
    _lock: ProjectLock,
}

/// Errors starting a supervisor.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("supervisor socket {path}: {source}")]
    Socket {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot become a child subreaper: {0}")]
    Subreaper(std::io::Error),
    #[error("the supervisor of project {project} did not start: {detail}")]
    Spawn { project: String, detail: String },
}

impl Supervisor {
    /// Take the project lock, become subreaper, open the engine and serve the socket.
    pub fn start(paths: &ProjectPaths) -> Result<Supervisor, DaemonError> {
        let lock = ProjectLock::acquire(paths, Duration::from_secs(10))?;
        runtime::container::become_subreaper().map_err(DaemonError::Subreaper)?;
        let engine = Engine::open(paths.clone(), true)?;
        super::journal::record(&engine, paths);
        let pid = std::process::id() as i32;
        let socket = paths.socket();
        engine.update(|st| {
            st.supervisor = Some(SupervisorRecord {
                pid,
                pid_start: pid_start_time(pid),
                socket: socket.clone(),
            })
        });
        let busy = Arc::new(AtomicUsize::new(0));
        let last_active = Arc::new(Mutex::new(Instant::now()));
        let done = Arc::new(AtomicBool::new(false));
        let (e, b, l, d) = (
            engine.clone(),
            busy.clone(),
            last_active.clone(),
            done.clone(),
        );
        // The thread that will run `run_until_idle`: woken when a request ends, so that it
        // exits right after answering `down` instead of at its next tick.
        let main = std::thread::current();
        api::serve(&socket, move |req, out| {
            b.fetch_add(1, Ordering::SeqCst);
            let result = match serde_json::from_slice::<Request>(&req.body) {
                Ok(Request::Events) => {
                    let rx = e.subscribe();
                    while let Ok(ev) = rx.recv() {
                        out.send(&Line::Event(ev));
                        if out.is_broken() {
                            break;
                        }
                    }
                    Ok(0)
                }
                Ok(r) => {
                    let is_down = matches!(r, Request::Down { .. });
                    let rep = SocketReporter {
                        out: Mutex::new(&mut *out),
                    };
                    let res = ops::handle(&e, &r, &rep).map_err(|e| e.to_string());
                    if is_down {
                        d.store(true, Ordering::SeqCst);
                    }
                    res
                }
                Err(_) if req.path == "/v1/ping" => Ok(0),
                Err(err) => Err(format!("bad request: {err}")),
            };
            out.send(&Line::Result(result));
            *l.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            b.fetch_sub(1, Ordering::SeqCst);
            main.unpark();
        })
        .map_err(|source| DaemonError::Socket {
            path: socket.clone(),
            source,
        })?;
        Ok(Supervisor {
            engine,
            busy,
            last_active,
            done,
            _lock: lock,
        })
    }

    /// Nothing runs, no request is being served, and none came for a moment.
    pub fn idle(&self) -> bool {
        if self.done.load(Ordering::SeqCst) {
            return self.busy.load(Ordering::SeqCst) == 0;
        }
        self.busy.load(Ordering::SeqCst) == 0
            && self
                .last_active
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .elapsed()
                > Duration::from_millis(300)
            && !self.engine.anything_running()
    }

    /// Serve until idle (detached mode), then clean up. SIGTERM/SIGINT stop the project's
    /// containers gracefully first.
    pub fn run_until_idle(self) {
        let term = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            let _ = signal_hook::flag::register(sig, term.clone());
        }
        let mut last_observe = Instant::now();
        loop {
            std::thread::park_timeout(Duration::from_millis(50));
            if term.load(Ordering::SeqCst) {
                self.stop_all(None);
                break;
            }
            if self.idle() {
                break;
            }
            // Containers adopted from a previous supervisor are not our children: poll them.
            if last_observe.elapsed() > Duration::from_secs(1) {
                self.engine.supervise_adopted();
                last_observe = Instant::now();
            }
        }
        self.shutdown();
    }

    /// Stop every container of the project (graceful, then SIGKILL after the grace period).
    pub fn stop_all(&self, timeout: Option<Duration>) {
        self.engine.shutting_down.store(true, Ordering::SeqCst);
        let req = Request::Stop {
            services: Vec::new(),
            timeout,
        };
        let _ = ops::handle(&self.engine, &req, &Quiet);
    }

    /// Remove the socket and the supervisor record; stop the DNS servers.
    pub fn shutdown(self) {
        self.engine.stop_dns();
        let _ = std::fs::remove_file(self.engine.paths.socket());
        let _ = std::fs::remove_file(self.engine.paths.pid_file());
        self.engine.update(|st| st.supervisor = None);
        if self.engine.forget_if_empty().unwrap_or(false) {
            let _ = std::fs::remove_dir_all(&self.engine.paths.run_dir);
        }
    }
}

/// Reports nothing.
pub struct Quiet;
impl EventSink for Quiet {
    fn emit(&self, _e: Event) {}
}
impl Reporter for Quiet {
    fn message(&self, _text: &str) {}
}

/// Is a supervisor answering for this project?
pub fn running(paths: &ProjectPaths) -> bool {
    paths.socket().exists() && api::ping(&paths.socket())
}

/// Start a detached supervisor: this binary re-executed as `__supervise`, in its own session
/// (a Ctrl-C or hang-up of the user's terminal does not reach it), in `/`, with stdin from
/// /dev/null, output to `supervisor.log` and no other descriptor of the caller (see
/// [`super::fds::detach`]). Returns once it answers on its socket.
pub fn spawn(paths: &ProjectPaths, exe_args: &[String]) -> Result<(), DaemonError> {
    let fail = |detail: String| DaemonError::Spawn {
        project: paths.project.clone(),
        detail,
    };
    std::fs::create_dir_all(&paths.state_dir).map_err(|e| fail(e.to_string()))?;
    let log_path = paths.supervisor_log();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| fail(format!("{}: {e}", log_path.display())))?;
    let exe = std::env::current_exe().map_err(|e| fail(e.to_string()))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(exe_args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| fail(e.to_string()))?)
        .stderr(log);
    super::fds::detach(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if running(paths) {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut text = String::new();
            let _ = std::fs::File::open(&log_path).and_then(|mut f| f.read_to_string(&mut text));
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(fail(format!("it exited ({status}): {}", tail.join(" / "))));
        }
        if Instant::now() > deadline {
            return Err(fail("no answer on its socket after 15 s".into()));
        }
        std::thread::sleep(Duration::from_millis(3));
    }
}

/// Send a request to the running supervisor, feeding response lines to `on_line`.
pub fn call(
    paths: &ProjectPaths,
    req: &Request,
    on_line: &mut dyn FnMut(Line),
) -> Result<i32, api::ApiError> {
    api::call(&paths.socket(), "POST", "/v1/request", req, on_line)
}

/// Run a request in this process on a one-shot engine (no supervisor runs). Takes the project
/// lock so it cannot race a supervisor that starts meanwhile.
pub fn run_locally(
    paths: &ProjectPaths,
    req: &Request,
    out: &dyn Reporter,
) -> Result<i32, LocalError> {
    let _lock = ProjectLock::acquire(paths, Duration::from_secs(30))?;
    let engine = Engine::open(paths.clone(), false)?;
    Ok(ops::handle(&engine, req, out)?)
}

/// Errors of `run_locally`.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Op(#[from] ops::OpError),
}

/// Remove a stale socket left by a killed supervisor (nothing answers on it).
pub fn clear_stale_socket(paths: &ProjectPaths) {
    let s = paths.socket();
    if s.exists() && !api::ping(&s) {
        let _ = std::fs::remove_file(&s);
    }
}
