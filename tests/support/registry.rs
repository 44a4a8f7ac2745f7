//! A real registry server for end-to-end tests: Debian's `docker-registry` (the CNCF
//! distribution registry) on a free 127.0.0.1 port, optionally behind htpasswd basic auth
//! (with a Docker CLI `config.json` holding the credentials); killed by pid on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Registry {
    /// Start one; with `auth` the registry wants that user and password, and
    /// [`Registry::docker_config`] holds them.
    pub fn start(auth: Option<(&str, &str)>) -> Registry {
        let bin = "/usr/bin/docker-registry";
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: install Debian's docker-registry package"
        );
        for _attempt in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("rc-e2e-registry-")
                .tempdir_in("/tmp")
                .unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut cfg = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
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
                    "auth:\n  htpasswd:\n    realm: rcompose-e2e\n    path: {}\n",
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
            let child = Command::new(bin)
                .arg("serve")
                .arg(&cfg_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let mut reg = Registry { port, dir, child };
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
            let _ = reg.child.kill();
        }
        panic!("docker-registry did not start");
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The folder to give as `DOCKER_CONFIG` (its `config.json` has the credentials).
    pub fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker")
    }

    /// `GET /v2/<repo>/manifests/<tag>` with basic auth: (status, Docker-Content-Digest).
    pub fn manifest_digest(
        &self,
        repo: &str,
        tag: &str,
        auth: Option<(&str, &str)>,
    ) -> (u16, String) {
        use std::io::{Read, Write};
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

fn base64_encode(data: &[u8]) -> String {
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
