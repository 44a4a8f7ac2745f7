//! A real registry server: Debian's `docker-registry` (the CNCF distribution registry) on a
//! free 127.0.0.1 port with its storage in a temp dir, optionally behind htpasswd basic auth
//! (with a Docker CLI `config.json` holding the credentials); killed by pid on drop. Its log
//! (level info, no access log) lets tests count the requests it served.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The registry binary of Debian's docker-registry package.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

pub struct Registry {
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The user and password it wants, if any.
    pub auth: Option<(String, String)>,
    child: Child,
}

impl Registry {
    /// Start one (retrying when another process takes the probed port first); with `auth`
    /// the registry wants that user and password, and [`Registry::docker_config`] holds them.
    pub fn start(auth: Option<(&str, &str)>) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: install Debian's docker-registry package"
        );
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("rcompose-registry-")
                .tempdir_in("/tmp")
                .expect("tempdir");
            let port = crate::free_port();
            let mut cfg = format!(
                "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            );
            if let Some((u, p)) = auth {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", u, p])
                    .output()
                    .expect("htpasswd (apache2-utils) must be installed");
                assert!(out.status.success(), "htpasswd failed");
                let hp = dir.path().join("htpasswd");
                std::fs::write(&hp, &out.stdout).unwrap();
                cfg.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: rcompose-test\n    path: {}\n",
                    hp.display()
                ));
                let conf = dir.path().join("docker");
                std::fs::create_dir_all(&conf).unwrap();
                let token = base64_encode(format!("{u}:{p}").as_bytes());
                std::fs::write(
                    conf.join("config.json"),
                    format!("{{\"auths\":{{\"127.0.0.1:{port}\":{{\"auth\":\"{token}\"}}}}}}"),
                )
                .unwrap();
            }
            let cfg_path = dir.path().join("config.yml");
            std::fs::write(&cfg_path, cfg).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&cfg_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let mut reg = Registry {
                port,
                dir,
                auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
                child,
            };
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return reg;
                }
                if let Ok(Some(_)) = reg.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            last_log = reg.log();
        }
        panic!("docker-registry did not start: {last_log}");
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The folder to give as `DOCKER_CONFIG` (its `config.json` has the credentials).
    pub fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker")
    }

    /// What the registry has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// How many completed GETs the registry logged whose line contains `needle` (e.g.
    /// `/manifests/`, `/blobs/`).
    pub fn count_requests(&self, needle: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| {
                l.contains("response completed")
                    && l.contains("http.request.method=GET")
                    && l.contains(needle)
            })
            .count()
    }

    /// The registry's stored file for a blob (to corrupt it in tests).
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Push an OCI layout (all of its index) with skopeo to `name:tag` here, digests kept.
    pub fn push(&self, layout: &Path, layout_tag: &str, name_tag: &str) {
        self.push_with(layout, layout_tag, name_tag, &["--preserve-digests"])
    }

    /// Push with extra skopeo arguments (`--format v2s2` converts to Docker schema 2).
    pub fn push_with(&self, layout: &Path, layout_tag: &str, name_tag: &str, extra: &[&str]) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--all", "--dest-tls-verify=false", "-q"]);
        cmd.args(extra);
        if let Some((u, p)) = &self.auth {
            cmd.arg(format!("--dest-creds={u}:{p}"));
        }
        cmd.arg(format!("oci:{}:{layout_tag}", layout.display()))
            .arg(format!("docker://{}/{name_tag}", self.host()));
        let out = cmd.output().expect("skopeo must be installed");
        assert!(
            out.status.success(),
            "skopeo copy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `GET /v2/<repo>/manifests/<tag>` with basic auth: (status, Docker-Content-Digest).
    pub fn manifest_digest(
        &self,
        repo: &str,
        tag: &str,
        auth: Option<(&str, &str)>,
    ) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut req = format!(
            "GET /v2/{repo}/manifests/{tag} HTTP/1.0\r\nHost: {}\r\nAccept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json\r\n",
            self.host()
        );
        if let Some((u, p)) = auth {
            req.push_str(&format!(
                "Authorization: Basic {}\r\n",
                base64_encode(format!("{u}:{p}").as_bytes())
            ));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let digest = out
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("docker-content-digest")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        (status, digest)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 with padding (for basic auth and Docker's `config.json`).
pub fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(i.as_bytes()), o);
        }
    }

    #[test]
    fn a_registry_with_auth_answers_401_without_and_404_with_credentials() {
        let r = Registry::start(Some(("u", "p")));
        assert_eq!(r.manifest_digest("none", "latest", None).0, 401);
        assert_eq!(r.manifest_digest("none", "latest", Some(("u", "p"))).0, 404);
        let cfg = std::fs::read_to_string(r.docker_config().join("config.json")).unwrap();
        assert!(cfg.contains(&r.host()), "{cfg}");
        let pid = r.child.id();
        drop(r);
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }
}
