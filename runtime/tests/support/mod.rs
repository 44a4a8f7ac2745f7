//! Test support for image tests (and any test that needs images): a real registry server
//! (Debian's `docker-registry`, the CNCF distribution registry) on a free 127.0.0.1 port,
//! an OCI image builder (layers from the host's static busybox and generated content, gzip /
//! zstd / plain, multi-platform indexes), pushing with `skopeo`, and `eventually`.
//!
//! Use from another test file with `mod support;`. Every helper cleans up on drop.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
pub const BUSYBOX: &str = "/usr/bin/busybox";

/// Poll `f` until it returns `Some`, or panic after `timeout` naming `what`.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let mut delay = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A registry server on 127.0.0.1, its storage in a temp dir; killed (by pid) on drop.
pub struct Registry {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
    pub auth: Option<(String, String)>,
}

impl Registry {
    /// An anonymous registry.
    pub fn start() -> Registry {
        Registry::start_with(None)
    }

    /// A registry with htpasswd basic auth for one user.
    pub fn start_with_auth(user: &str, password: &str) -> Registry {
        Registry::start_with(Some((user.to_string(), password.to_string())))
    }

    fn start_with(auth: Option<(String, String)>) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: install Debian's docker-registry package"
        );
        let mut last_log = String::new();
        // A free port can be taken between our probe and the registry's bind: retry.
        for _attempt in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("rcompose-registry-")
                .tempdir()
                .expect("tempdir");
            let port = free_port();
            let mut cfg = format!(
                "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            );
            if let Some((u, p)) = &auth {
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
                child,
                auth: auth.clone(),
            };
            let start = Instant::now();
            let up = loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break true;
                }
                if let Ok(Some(_)) = reg.child.try_wait() {
                    break false;
                }
                if start.elapsed() > Duration::from_secs(20) {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            if up {
                return reg;
            }
            last_log = reg.log();
        }
        panic!("docker-registry did not start: {last_log}");
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// How many requests the registry logged whose line contains `needle` (e.g.
    /// `/manifests/`, `/blobs/`). Counts GETs of completed responses.
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

    /// Push an OCI layout (all of its index) with skopeo to `name:tag` here.
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
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// A layer under construction: a tar built entry by entry.
pub struct LayerBuilder {
    tar: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    pub fn new() -> LayerBuilder {
        let mut tar = tar::Builder::new(Vec::new());
        tar.mode(tar::HeaderMode::Complete);
        LayerBuilder { tar }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.tar.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.file_owned(path, mode, 0, 0, data)
    }

    pub fn file_owned(
        &mut self,
        path: &str,
        mode: u32,
        uid: u64,
        gid: u64,
        data: &[u8],
    ) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.tar.append_data(&mut h, path, data).unwrap();
        self
    }

    /// A regular file with an extended attribute (pax `SCHILY.xattr.`).
    pub fn file_with_xattr(
        &mut self,
        path: &str,
        mode: u32,
        data: &[u8],
        name: &str,
        value: &str,
    ) -> &mut Self {
        self.tar
            .append_pax_extensions([(format!("SCHILY.xattr.{name}").as_str(), value.as_bytes())])
            .unwrap();
        self.file(path, mode, data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(path, tar::EntryType::Symlink, Some(target), 0o777, &[])
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(path, tar::EntryType::Link, Some(target), 0o644, &[])
    }

    pub fn char_device(&mut self, path: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Char, 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.tar.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    /// An entry written with raw name bytes: tar-rs refuses to *write* `..` or absolute paths,
    /// hostile layers have them.
    pub fn raw(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        link: Option<&str>,
        mode: u32,
        data: &[u8],
    ) -> &mut Self {
        let mut h = Self::header(kind, mode, data.len() as u64);
        {
            let old = h.as_old_mut();
            assert!(path.len() < 100 && link.map_or(0, str::len) < 100);
            old.name = [0; 100];
            old.name[..path.len()].copy_from_slice(path.as_bytes());
            if let Some(l) = link {
                old.linkname = [0; 100];
                old.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_cksum();
        self.tar.append(&h, data).unwrap();
        self
    }

    /// The uncompressed tar.
    pub fn finish(self) -> Vec<u8> {
        self.tar.into_inner().unwrap()
    }
}

/// A root filesystem with the static busybox as `/bin/busybox` and a few applets.
pub fn busybox_layer() -> Vec<u8> {
    let bb = std::fs::read(BUSYBOX).unwrap_or_else(|e| {
        panic!("{BUSYBOX} is missing ({e}): install Debian's busybox-static package")
    });
    let mut l = LayerBuilder::new();
    l.dir("bin", 0o755)
        .file("bin/busybox", 0o755, &bb)
        .symlink("bin/sh", "busybox")
        .symlink("bin/true", "busybox")
        .symlink("bin/cat", "busybox")
        .dir("etc", 0o755)
        .file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        .dir("tmp", 0o1777);
    l.finish()
}

pub fn compress(tar: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::None => tar.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(tar, 3).unwrap(),
    }
}

fn layer_media_type(c: Compression) -> &'static str {
    match c {
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    }
}

/// One platform's image: layers plus a config.
pub struct ImageSpec {
    pub architecture: String,
    pub layers: Vec<(Vec<u8>, Compression)>,
    /// The `config` object of the image config (Docker's PascalCase keys).
    pub config: serde_json::Value,
}

impl ImageSpec {
    pub fn new(layers: Vec<(Vec<u8>, Compression)>) -> ImageSpec {
        ImageSpec {
            architecture: "amd64".into(),
            layers,
            config: serde_json::json!({}),
        }
    }
}

/// Built image digests, for assertions.
#[derive(Debug, Clone)]
pub struct Built {
    /// The digest the tag points at (manifest, or index for multi-platform).
    pub top: String,
    /// Per platform: (architecture, manifest digest, config digest, layer blob digests).
    pub images: Vec<(String, String, String, Vec<String>)>,
}

/// Write an OCI layout at `dir` with `tag` naming one image, or an index when several specs
/// are given.
pub fn write_layout(dir: &Path, tag: &str, specs: &[ImageSpec]) -> Built {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| -> String {
        let d = sha256(b);
        std::fs::write(blobs.join(&d[7..]), b).unwrap();
        d
    };
    let mut descs = Vec::new();
    let mut images = Vec::new();
    for spec in specs {
        let mut diff_ids = Vec::new();
        let mut layer_descs = Vec::new();
        let mut layer_digests = Vec::new();
        for (tar, c) in &spec.layers {
            diff_ids.push(sha256(tar));
            let blob = compress(tar, *c);
            let d = put(&blob);
            layer_digests.push(d.clone());
            layer_descs.push(serde_json::json!({
                "mediaType": layer_media_type(*c), "digest": d, "size": blob.len()
            }));
        }
        let cfg = serde_json::to_vec(&serde_json::json!({
            "architecture": spec.architecture, "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "config": spec.config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let cfg_d = put(&cfg);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_d, "size": cfg.len()},
            "layers": layer_descs,
        }))
        .unwrap();
        let m_d = put(&manifest);
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m_d, "size": manifest.len(),
            "platform": {"architecture": spec.architecture, "os": "linux"},
        }));
        images.push((spec.architecture.clone(), m_d, cfg_d, layer_digests));
    }
    let top = if descs.len() == 1 {
        let mut d = descs.pop().unwrap();
        d.as_object_mut().unwrap().remove("platform");
        d
    } else {
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": descs,
        }))
        .unwrap();
        let d = put(&index);
        serde_json::json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": index.len()})
    };
    let top_digest = top["digest"].as_str().unwrap().to_string();
    let mut top = top;
    top["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [top]})).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    Built {
        top: top_digest,
        images,
    }
}

/// Build `specs` as an OCI layout in a temp dir and push it to `registry` as `name:tag`.
pub fn build_and_push(registry: &Registry, name_tag: &str, specs: &[ImageSpec]) -> Built {
    let dir = tempfile::tempdir().unwrap();
    let built = write_layout(dir.path(), "t", specs);
    registry.push(dir.path(), "t", name_tag);
    built
}

/// A fresh state root for a test.
pub fn state_root() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rcompose-image-test-")
        .tempdir()
        .unwrap()
}

/// Ignore `BTreeMap` unused warnings in files that do not use it.
pub type Labels = BTreeMap<String, String>;
