//! Test support for image tests (and any test that needs images): a real registry server
//! (Debian's `docker-registry`, the CNCF distribution registry) on a free 127.0.0.1 port,
//! an OCI image builder (layers from the host's static busybox and generated content, gzip /
//! zstd / plain, multi-platform indexes), pushing with `skopeo`, and `eventually`.
//!
//! Use from another test file with `mod support;`. Every helper cleans up on drop.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use sha2::{Digest as _, Sha256};

#[allow(unused_imports)]
pub use testkit::registry::REGISTRY_BIN;
#[allow(unused_imports)]
pub use testkit::{eventually_some as eventually, free_port};
pub const BUSYBOX: &str = testkit::busybox::BUSYBOX;

/// A registry server on 127.0.0.1, its storage in a temp dir; killed (by pid) on drop (the
/// workspace's `testkit` registry, with this suite's constructors).
pub struct Registry(testkit::registry::Registry);

impl Registry {
    /// An anonymous registry.
    pub fn start() -> Registry {
        Registry(testkit::registry::Registry::start(None))
    }

    /// A registry with htpasswd basic auth for one user.
    pub fn start_with_auth(user: &str, password: &str) -> Registry {
        Registry(testkit::registry::Registry::start(Some((user, password))))
    }
}

impl std::ops::Deref for Registry {
    type Target = testkit::registry::Registry;
    fn deref(&self) -> &Self::Target {
        &self.0
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
