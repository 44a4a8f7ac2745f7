//! The per-project API: HTTP/1.1 + JSON over the unix socket `<run>/<project>/supervisor.sock`,
//! as the Docker CLI talks to its daemon. One request per connection; the response body is a
//! stream of JSON lines (progress events, then one `{"result":..}` line) so clients render
//! progress as it happens. Plain threads: a request is rare and short, and the supervisor
//! must stay small (≤ 15 MiB).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::events::Event;

/// Errors talking to a supervisor, naming the socket.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("supervisor socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("supervisor socket {path}: bad response: {detail}")]
    Protocol { path: PathBuf, detail: String },
    #[error("{0}")]
    Remote(String),
}

/// One line of a response stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    Event(Event),
    /// Free text for the user (warnings, the plan of a dry run).
    Message(String),
    /// The end: `Ok(exit code)` or the error text.
    Result(Result<i32, String>),
}

/// A request as the server sees it.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// Where a handler writes its response lines.
pub struct Responder {
    stream: UnixStream,
    broken: bool,
}

impl Responder {
    /// Send one line; a client that went away is not an error for the handler.
    pub fn send(&mut self, line: &Line) {
        if self.broken {
            return;
        }
        let mut bytes = serde_json::to_vec(line).expect("lines serialize");
        bytes.push(b'\n');
        if self.stream.write_all(&bytes).is_err() {
            self.broken = true;
        }
    }
    pub fn is_broken(&self) -> bool {
        self.broken
    }
}

fn read_request(stream: &UnixStream) -> io::Result<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; len.min(16 << 20)];
    reader.read_exact(&mut body)?;
    Ok(Request { method, path, body })
}

/// Bind the socket (replacing a stale one) and serve each connection on its own thread.
pub fn serve<H>(socket: &Path, handler: H) -> io::Result<std::thread::JoinHandle<()>>
where
    H: Fn(Request, &mut Responder) + Send + Sync + 'static,
{
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    let handler = std::sync::Arc::new(handler);
    std::thread::Builder::new()
        .name("api".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(stream) = conn else { continue };
                let handler = handler.clone();
                let _ = std::thread::Builder::new()
                    .name("api-conn".into())
                    .spawn(move || {
                        let req = match read_request(&stream) {
                            Ok(r) => r,
                            Err(_) => return,
                        };
                        let mut out = stream;
                        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n\
                                Connection: close\r\n\r\n";
                        if out.write_all(head.as_bytes()).is_err() {
                            return;
                        }
                        let mut responder = Responder {
                            stream: out,
                            broken: false,
                        };
                        handler(req, &mut responder);
                    });
            }
        })
}

/// Is a supervisor answering on `socket`?
pub fn ping(socket: &Path) -> bool {
    matches!(
        call(
            socket,
            "GET",
            "/v1/ping",
            &serde_json::Value::Null,
            &mut |_| {}
        ),
        Ok(0)
    )
}

/// Send a request and feed each streamed line to `on_line`; returns the final result.
pub fn call<B: Serialize>(
    socket: &Path,
    method: &str,
    path: &str,
    body: &B,
    on_line: &mut dyn FnMut(Line),
) -> Result<i32, ApiError> {
    let io = |source| ApiError::Io {
        path: socket.to_path_buf(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(io)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .map_err(io)?;
    let body = serde_json::to_vec(body).expect("request serializes");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: rcompose\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).map_err(io)?;
    stream.write_all(&body).map_err(io)?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).map_err(io)?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(ApiError::Protocol {
            path: socket.to_path_buf(),
            detail: format!("status line {:?}", status.trim()),
        });
    }
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).map_err(io)? == 0 || h == "\r\n" {
            break;
        }
    }
    for line in reader.lines() {
        let line = line.map_err(io)?;
        if line.is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(&line).map_err(|e| ApiError::Protocol {
            path: socket.to_path_buf(),
            detail: format!("{e}: {line}"),
        })?;
        match parsed {
            Line::Result(Ok(code)) => return Ok(code),
            Line::Result(Err(e)) => return Err(ApiError::Remote(e)),
            other => on_line(other),
        }
    }
    Err(ApiError::Protocol {
        path: socket.to_path_buf(),
        detail: "the supervisor closed the connection before answering (did it exit?)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::events::Resource;

    #[test]
    fn a_request_streams_events_then_a_result() {
        let tmp = tempfile::tempdir().unwrap();
        let sock = tmp.path().join("s.sock");
        serve(&sock, |req, out| {
            if req.path == "/v1/ping" {
                out.send(&Line::Result(Ok(0)));
                return;
            }
            let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            out.send(&Line::Event(Event::done(
                Resource::Container,
                v["name"].as_str().unwrap(),
                "Started",
            )));
            out.send(&Line::Result(Err("container x: boom".into())));
        })
        .unwrap();
        assert!(ping(&sock));
        let mut seen = Vec::new();
        let r = call(
            &sock,
            "POST",
            "/v1/up",
            &serde_json::json!({"name": "p-web-1"}),
            &mut |l| seen.push(l),
        );
        assert_eq!(r.unwrap_err().to_string(), "container x: boom");
        assert!(matches!(&seen[0], Line::Event(e) if e.name == "p-web-1"));
        assert!(!ping(&tmp.path().join("absent.sock")));
    }
}
