//! Bearer-token auth as Docker Hub and GHCR do it: the registry answers 401 with a
//! `WWW-Authenticate: Bearer realm=…,service=…,scope=…` challenge, the client fetches a token
//! from the realm (with basic credentials when it has them) and retries. The packaged
//! registry needs a separate token server with certificates for this, so a small fake
//! registry on 127.0.0.1 serves an OCI layout here.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use runtime::image::{ImageError, PullPolicy, RegistryOptions, Store};
use support::*;

/// Requests seen: (path, authorization header).
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

struct FakeRegistry {
    port: u16,
    seen: Seen,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn respond(s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
}

/// Serves `layout` (an OCI layout whose index names one manifest) as `repo:tag`; the token
/// endpoint hands out `token` to `user:password` (or anyone when `user` is None).
fn start_fake(
    layout: PathBuf,
    repo: &'static str,
    tag: &'static str,
    user: Option<(&'static str, &'static str)>,
) -> FakeRegistry {
    start_fake_with(layout, repo, tag, user, false)
}

/// `flaky`: the first download of each layer blob stops half way (connection closed).
fn start_fake_with(
    layout: PathBuf,
    repo: &'static str,
    tag: &'static str,
    user: Option<(&'static str, &'static str)>,
    flaky: bool,
) -> FakeRegistry {
    let mut cut_once: std::collections::HashSet<String> = std::collections::HashSet::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (seen2, stop2) = (seen.clone(), stop.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if stop2.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let Ok(mut s) = conn else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            if r.read_line(&mut first).is_err() || !first.starts_with("GET ") {
                continue; // e.g. a TLS ClientHello: drop it
            }
            let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut headers = HashMap::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let auth = headers.get("authorization").cloned();
            seen2.lock().unwrap().push((path.clone(), auth.clone()));
            let challenge = format!(
                "Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake-registry\",scope=\"repository:{repo}:pull\""
            );
            if path.starts_with("/token") {
                let ok_scope = path.contains(&format!(
                    "scope=repository%3A{}%3Apull",
                    repo.replace('/', "%2F")
                )) && path.contains("service=fake-registry");
                let ok_user = match user {
                    None => true,
                    Some((u, p)) => {
                        use base64::Engine as _;
                        let want = format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                        );
                        auth.as_deref() == Some(want.as_str())
                    }
                };
                if ok_scope && ok_user {
                    respond(
                        &mut s,
                        "200 OK",
                        &[("Content-Type", "application/json".into())],
                        br#"{"token":"T0K3N"}"#,
                    );
                } else {
                    respond(&mut s, "401 Unauthorized", &[], b"{}");
                }
                continue;
            }
            if auth.as_deref() != Some("Bearer T0K3N") {
                respond(
                    &mut s,
                    "401 Unauthorized",
                    &[("WWW-Authenticate", challenge)],
                    b"{}",
                );
                continue;
            }
            let index: serde_json::Value =
                serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
            let top = index["manifests"][0]["digest"]
                .as_str()
                .unwrap()
                .to_string();
            let prefix = format!("/v2/{repo}/");
            let Some(rest) = path.strip_prefix(&prefix) else {
                respond(&mut s, "404 Not Found", &[], b"{}");
                continue;
            };
            let (digest, ct) =
                if rest == format!("manifests/{tag}") || rest == format!("manifests/{top}") {
                    (top.clone(), "application/vnd.oci.image.manifest.v1+json")
                } else if let Some(d) = rest.strip_prefix("blobs/") {
                    (d.to_string(), "application/octet-stream")
                } else {
                    respond(&mut s, "404 Not Found", &[], b"{}");
                    continue;
                };
            match std::fs::read(
                layout
                    .join("blobs/sha256")
                    .join(digest.trim_start_matches("sha256:")),
            ) {
                Ok(b) if flaky && b.len() > 100_000 && cut_once.insert(digest.clone()) => {
                    // Announce the whole blob, send half, hang up.
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        b.len()
                    );
                    let _ = s.write_all(head.as_bytes());
                    let _ = s.write_all(&b[..b.len() / 2]);
                    let _ = s.shutdown(std::net::Shutdown::Both);
                }
                Ok(b) => respond(&mut s, "200 OK", &[("Content-Type", ct.into())], &b),
                Err(_) => respond(&mut s, "404 Not Found", &[], b"{}"),
            }
            let _ = r.read(&mut [0u8; 0]);
        }
    });
    FakeRegistry { port, seen, stop }
}

#[test]
fn bearer_challenge_is_answered_with_a_token_from_the_realm() {
    let layout = tempfile::tempdir().unwrap();
    let built = write_layout(
        layout.path(),
        "1",
        &[ImageSpec::new(vec![(busybox_layer(), Compression::Gzip)])],
    );
    let fake = start_fake(layout.path().to_path_buf(), "team/app", "1", None);
    let root = state_root();
    let store = Store::open_with(root.path(), RegistryOptions::default()).unwrap();
    let img = store
        .ensure(
            &format!("127.0.0.1:{}/team/app:1", fake.port),
            PullPolicy::Always,
            None,
            &|_| {},
        )
        .unwrap();
    assert_eq!(img.id.as_str(), built.images[0].2);
    let seen = fake.seen.lock().unwrap().clone();
    let tokens = seen.iter().filter(|(p, _)| p.starts_with("/token")).count();
    assert_eq!(tokens, 1, "one token for the whole pull: {seen:?}");
    assert!(seen
        .iter()
        .filter(|(p, _)| p.contains("/blobs/"))
        .all(|(_, a)| a.as_deref() == Some("Bearer T0K3N")));
}

#[test]
fn bearer_token_request_sends_credentials_and_wrong_ones_are_unauthorized() {
    let layout = tempfile::tempdir().unwrap();
    write_layout(
        layout.path(),
        "1",
        &[ImageSpec::new(vec![(busybox_layer(), Compression::Gzip)])],
    );
    let fake = start_fake(
        layout.path().to_path_buf(),
        "private/app",
        "1",
        Some(("bob", "hunter2")),
    );
    let reference = format!("127.0.0.1:{}/private/app:1", fake.port);
    let root = state_root();
    let cfg = tempfile::tempdir().unwrap();
    let store_with = |creds: &str| {
        std::fs::write(
            cfg.path().join("config.json"),
            format!(
                r#"{{"auths":{{"127.0.0.1:{}":{{"username":"bob","password":"{creds}"}}}}}}"#,
                fake.port
            ),
        )
        .unwrap();
        Store::open_with(
            root.path(),
            RegistryOptions {
                docker_config: Some(cfg.path().to_path_buf()),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let err = store_with("wrong")
        .ensure(&reference, PullPolicy::Always, None, &|_| {})
        .unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("private/app"), "{err}");
    let img = store_with("hunter2")
        .ensure(&reference, PullPolicy::Always, None, &|_| {})
        .unwrap();
    assert!(img.layers[0].join("bin/busybox").is_file());
}

#[test]
fn a_connection_dropped_mid_layer_is_retried() {
    let layout = tempfile::tempdir().unwrap();
    let built = write_layout(
        layout.path(),
        "1",
        &[ImageSpec::new(vec![(busybox_layer(), Compression::Gzip)])],
    );
    let fake = start_fake_with(layout.path().to_path_buf(), "team/flaky", "1", None, true);
    let root = state_root();
    let store = Store::open_with(root.path(), RegistryOptions::default()).unwrap();
    let img = store
        .ensure(
            &format!("127.0.0.1:{}/team/flaky:1", fake.port),
            PullPolicy::Always,
            None,
            &|_| {},
        )
        .unwrap();
    assert_eq!(img.id.as_str(), built.images[0].2);
    let layer = &built.images[0].3[0];
    let gets = fake
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p.ends_with(layer.as_str()))
        .count();
    assert_eq!(gets, 2, "the layer was fetched twice");
    assert!(img.layers[0].join("bin/busybox").is_file());
}
