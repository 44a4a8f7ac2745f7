//! `image load` / `image save`: `docker save` tarballs (manifest.json + config + layer tars)
//! and OCI image layouts (oci-layout, index.json, blobs/), as folders or tar archives. Saved
//! archives carry both, as Docker 25+ writes them, so `docker load` and skopeo read them.
//!
//! Archives are untrusted: they are unpacked with the same contained unpacker as layers, and
//! every blob is verified against its digest before it enters the store.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::manifest::{
    self, parse_document, select_platform, ConfigFile, Descriptor, Document, Index,
};
use super::store::{remove_any, ImageRecord, Ingested, LayerRecord, Store};
use super::unpack::{clean_entry_path, unpack_layer};
use super::{io_err, Digest, Image, ImageError, Platform, Reference, Result};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerSaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

impl Store {
    /// Load images from an archive stream (tar of a `docker save` or an OCI layout).
    pub fn load<R: Read>(&self, archive: R) -> Result<Vec<Image>> {
        let tmp = self.tmp_path("load");
        std::fs::create_dir(&tmp).map_err(io_err(&tmp))?;
        let res = unpack_layer(archive, &tmp)
            .map_err(|e| ImageError::Archive {
                path: PathBuf::from("-"),
                reason: e.to_string(),
            })
            .and_then(|_| self.load_dir(&tmp));
        let _ = remove_any(&tmp);
        res
    }

    /// Load from a tar file or an OCI layout folder.
    pub fn load_path(&self, path: &Path) -> Result<Vec<Image>> {
        if path.is_dir() {
            return self.load_dir(path);
        }
        let f = File::open(path).map_err(io_err(path))?;
        self.load(f).map_err(|e| match e {
            ImageError::Archive { reason, .. } => ImageError::Archive {
                path: path.to_path_buf(),
                reason,
            },
            other => other,
        })
    }

    fn load_dir(&self, dir: &Path) -> Result<Vec<Image>> {
        let archive_err = |reason: String| ImageError::Archive {
            path: dir.to_path_buf(),
            reason,
        };
        let _shared = self.store_lock(false)?;
        // Names from manifest.json, by config digest (Docker's own view of the archive).
        let mut docker_entries: Vec<DockerSaveEntry> = Vec::new();
        let mpath = dir.join("manifest.json");
        if mpath.is_file() {
            let b = std::fs::read(&mpath).map_err(io_err(&mpath))?;
            docker_entries = serde_json::from_slice(&b)
                .map_err(|e| archive_err(format!("manifest.json: {e}")))?;
        }
        let mut out = Vec::new();
        let ipath = dir.join("index.json");
        if ipath.is_file() {
            let b = std::fs::read(&ipath).map_err(io_err(&ipath))?;
            let index: Index =
                serde_json::from_slice(&b).map_err(|e| archive_err(format!("index.json: {e}")))?;
            for desc in &index.manifests {
                let (m_desc, m) = self.resolve_layout_manifest(dir, desc)?;
                let cfg_bytes = read_layout_blob(dir, &m.config.digest, 16 << 20)?;
                let cfg = ConfigFile::parse(&m.config.digest, &cfg_bytes)?;
                if cfg.rootfs.diff_ids.len() != m.layers.len() {
                    return Err(archive_err(format!(
                        "manifest {} has {} layers, its config {} diff_ids",
                        m_desc.digest,
                        m.layers.len(),
                        cfg.rootfs.diff_ids.len()
                    )));
                }
                self.put_blob(&cfg_bytes, Some(&m.config.digest), "image config")?;
                let mut layers = Vec::new();
                for (l, diff) in m.layers.iter().zip(&cfg.rootfs.diff_ids) {
                    if !(self.has_layer(diff) && self.has_blob(&l.digest)) {
                        let p = layout_blob_path(dir, &l.digest);
                        let f = File::open(&p)
                            .map_err(|e| archive_err(format!("layer {}: {e}", l.digest)))?;
                        self.ingest_layer(f, Some((&l.digest, l.size)), Some(diff), &|_| {})?;
                    }
                    layers.push(LayerRecord {
                        blob: l.digest.clone(),
                        media_type: l.media_type.clone(),
                        size: l.size,
                        diff_id: diff.clone(),
                    });
                }
                let m_bytes = read_layout_blob(dir, &m_desc.digest, 4 << 20)?;
                self.put_blob(&m_bytes, Some(&m_desc.digest), "image manifest")?;
                let rec = ImageRecord {
                    id: m.config.digest.clone(),
                    manifest_digest: m_desc.digest.clone(),
                    manifest_media_type: m_desc.media_type.clone(),
                    layers,
                };
                self.write_record(&rec)?;
                let mut names: BTreeSet<String> = BTreeSet::new();
                for key in [
                    "io.containerd.image.name",
                    "org.opencontainers.image.ref.name",
                ] {
                    if let Some(n) = desc.annotations.get(key) {
                        if let Ok(r) = Reference::parse(n) {
                            // A bare ref.name is only a tag: keep it when it parses as a
                            // full name (has a '/' or ':').
                            if key == "io.containerd.image.name" || n.contains([':', '/']) {
                                names.insert(r.to_string());
                            }
                        }
                    }
                }
                for e in &docker_entries {
                    if e.config.ends_with(m.config.digest.hex()) {
                        for t in e.repo_tags.iter().flatten() {
                            if let Ok(r) = Reference::parse(t) {
                                names.insert(r.to_string());
                            }
                        }
                    }
                }
                out.extend(self.name_loaded(&rec, names)?);
            }
            return Ok(out);
        }
        if docker_entries.is_empty() {
            return Err(archive_err(
                "neither an OCI layout (index.json) nor a docker save archive (manifest.json)"
                    .into(),
            ));
        }
        for e in &docker_entries {
            let cfg_path = archive_member(dir, &e.config)?;
            let cfg_bytes = std::fs::read(&cfg_path).map_err(io_err(&cfg_path))?;
            let id = Digest::of(&cfg_bytes);
            let cfg = ConfigFile::parse(&id, &cfg_bytes)?;
            if cfg.rootfs.diff_ids.len() != e.layers.len() {
                return Err(archive_err(format!(
                    "{} lists {} layers, its config {} diff_ids",
                    e.config,
                    e.layers.len(),
                    cfg.rootfs.diff_ids.len()
                )));
            }
            self.put_blob(&cfg_bytes, None, "image config")?;
            let mut ingested = Vec::new();
            for (lp, diff) in e.layers.iter().zip(&cfg.rootfs.diff_ids) {
                let p = archive_member(dir, lp)?;
                let f = File::open(&p).map_err(io_err(&p))?;
                ingested.push(self.ingest_layer(f, None, Some(diff), &|_| {})?);
            }
            let rec = self.record_for(&id, cfg_bytes.len() as u64, &ingested)?;
            self.write_record(&rec)?;
            let names = e
                .repo_tags
                .iter()
                .flatten()
                .filter_map(|t| Reference::parse(t).ok())
                .map(|r| r.to_string())
                .collect();
            out.extend(self.name_loaded(&rec, names)?);
        }
        Ok(out)
    }

    fn resolve_layout_manifest(
        &self,
        dir: &Path,
        desc: &Descriptor,
    ) -> Result<(Descriptor, manifest::Manifest)> {
        let bytes = read_layout_blob(dir, &desc.digest, 4 << 20)?;
        match parse_document(desc.digest.as_str(), Some(&desc.media_type), &bytes)? {
            Document::Manifest(m) => Ok((desc.clone(), m)),
            Document::Index(idx) => {
                let d = select_platform(desc.digest.as_str(), &idx, &Platform::host())?.clone();
                let b = read_layout_blob(dir, &d.digest, 4 << 20)?;
                match parse_document(d.digest.as_str(), Some(&d.media_type), &b)? {
                    Document::Manifest(m) => Ok((d, m)),
                    Document::Index(_) => Err(ImageError::InvalidManifest {
                        what: d.digest.to_string(),
                        reason: "an index inside an index is not supported".into(),
                    }),
                }
            }
        }
    }

    /// Record names for a loaded image; unnamed images are still returned (by ID).
    fn name_loaded(&self, rec: &ImageRecord, names: BTreeSet<String>) -> Result<Vec<Image>> {
        let mut out = Vec::new();
        for n in names {
            let r = Reference::parse(&n)?;
            self.commit_name(&r, rec)?;
            out.push(self.image_from_record(r, rec)?);
        }
        Ok(out)
    }

    /// An OCI manifest for a config already in the store and ingested layers.
    pub(crate) fn record_for(
        &self,
        config: &Digest,
        config_size: u64,
        layers: &[Ingested],
    ) -> Result<ImageRecord> {
        let layers = layers
            .iter()
            .map(|l| LayerRecord {
                blob: l.blob.clone(),
                media_type: l.media_type.into(),
                size: l.size,
                diff_id: l.diff_id.clone(),
            })
            .collect();
        self.oci_record(config.clone(), config_size, layers)
    }

    /// Store the OCI manifest of a config (already in the store, `config_size` bytes) and
    /// `layers` (their blobs in the store too); the image's record.
    pub(crate) fn oci_record(
        &self,
        config: Digest,
        config_size: u64,
        layers: Vec<LayerRecord>,
    ) -> Result<ImageRecord> {
        let m = manifest::Manifest {
            schema_version: 2,
            media_type: Some(manifest::OCI_MANIFEST.into()),
            config: Descriptor {
                media_type: manifest::OCI_CONFIG.into(),
                digest: config.clone(),
                size: config_size,
                platform: None,
                annotations: BTreeMap::new(),
            },
            layers: layers
                .iter()
                .map(|l| Descriptor {
                    media_type: l.media_type.clone(),
                    digest: l.blob.clone(),
                    size: l.size,
                    platform: None,
                    annotations: BTreeMap::new(),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&m).expect("manifest serializes");
        let manifest_digest = self.put_blob(&bytes, None, "image manifest")?;
        Ok(ImageRecord {
            id: config,
            manifest_digest,
            manifest_media_type: manifest::OCI_MANIFEST.into(),
            layers,
        })
    }

    /// Write the named images as a tar: an OCI layout plus Docker's manifest.json.
    pub fn save<W: Write>(&self, references: &[&str], out: W) -> Result<()> {
        let mut tar = tar::Builder::new(out);
        let mut written: BTreeSet<Digest> = BTreeSet::new();
        let mut index = Vec::new();
        let mut docker = Vec::new();
        let stdout = PathBuf::from("-");
        let werr = |e: std::io::Error| io_err(stdout.clone())(e);
        for name in references {
            let img = self
                .get(name)?
                .ok_or_else(|| ImageError::NoSuchImage(name.to_string()))?;
            let rec = self
                .read_record(&img.id)?
                .ok_or_else(|| ImageError::NoSuchImage(name.to_string()))?;
            let mut blobs = vec![rec.manifest_digest.clone(), rec.id.clone()];
            blobs.extend(rec.layers.iter().map(|l| l.blob.clone()));
            for b in blobs {
                if written.insert(b.clone()) {
                    let p = self.blob_path(&b);
                    let mut f = File::open(&p).map_err(io_err(&p))?;
                    tar.append_file(format!("blobs/sha256/{}", b.hex()), &mut f)
                        .map_err(werr)?;
                }
            }
            let msize = std::fs::metadata(self.blob_path(&rec.manifest_digest))
                .map(|m| m.len())
                .unwrap_or(0);
            let mut ann = BTreeMap::new();
            ann.insert(
                "io.containerd.image.name".to_string(),
                img.reference.to_string(),
            );
            if let Some(t) = &img.reference.tag {
                ann.insert("org.opencontainers.image.ref.name".to_string(), t.clone());
            }
            index.push(serde_json::json!({
                "mediaType": rec.manifest_media_type,
                "digest": rec.manifest_digest,
                "size": msize,
                "annotations": ann,
            }));
            docker.push(serde_json::json!({
                "Config": format!("blobs/sha256/{}", rec.id.hex()),
                "RepoTags": img.reference.tag.as_ref().map(|_| vec![img.reference.familiar()]),
                "Layers": rec.layers.iter().map(|l| format!("blobs/sha256/{}", l.blob.hex())).collect::<Vec<_>>(),
            }));
        }
        let files = [
            (
                "oci-layout",
                serde_json::json!({"imageLayoutVersion": "1.0.0"}),
            ),
            (
                "index.json",
                serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": index}),
            ),
            ("manifest.json", serde_json::Value::Array(docker)),
        ];
        for (name, v) in files {
            let bytes = serde_json::to_vec(&v).expect("json");
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            tar.append_data(&mut h, name, &bytes[..]).map_err(werr)?;
        }
        tar.into_inner().and_then(|mut w| w.flush()).map_err(werr)?;
        Ok(())
    }
}

fn layout_blob_path(dir: &Path, d: &Digest) -> PathBuf {
    dir.join("blobs/sha256").join(d.hex())
}

/// Read a small blob of a layout, verifying its digest.
fn read_layout_blob(dir: &Path, d: &Digest, limit: u64) -> Result<Vec<u8>> {
    let p = layout_blob_path(dir, d);
    let f = File::open(&p).map_err(|e| ImageError::Archive {
        path: dir.to_path_buf(),
        reason: format!("blob {d}: {e}"),
    })?;
    let mut b = Vec::new();
    f.take(limit).read_to_end(&mut b).map_err(io_err(&p))?;
    let actual = Digest::of(&b);
    if actual != *d {
        return Err(ImageError::DigestMismatch {
            what: format!("blob {d} in {}", dir.display()),
            expected: d.clone(),
            actual,
        });
    }
    Ok(b)
}

/// A path named inside an archive, kept inside the archive folder.
fn archive_member(dir: &Path, name: &str) -> Result<PathBuf> {
    let rel = clean_entry_path(Path::new(name)).map_err(|e| ImageError::Archive {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(dir.join(rel))
}
