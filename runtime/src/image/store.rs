//! The content-addressed image store under `<root>/images`:
//!
//! ```text
//! blobs/sha256/<hex>        manifests, configs and layer blobs, by digest
//! layers/sha256/<hex>/      unpacked layers by diff_id, shared between images (lowerdirs)
//! records/sha256/<hex>.json one record per image (config digest): manifest, layers
//! names.json                reference → image id, manifest digest, last pull time
//! tmp/<pid>-…               staging; everything enters the store by rename(2)
//! locks/                    flock(2) files
//! ```
//!
//! Crash safety: nothing is visible under its final name before it is complete and verified
//! (write to `tmp/`, then rename), and the name is recorded last. A pull killed at any point
//! leaves at most unreferenced layers or staging files of a dead pid, which the next `open`
//! removes. Concurrent pulls of one reference serialize on a per-reference lock, layers on a
//! per-layer lock, so the work is done once; pruning takes the store lock exclusively.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::digest::{HashReader, TeeHashReader};
use super::manifest::{self, ConfigFile, ContainerConfig, RootFs};
use super::registry::{Client, RegistryOptions};
use super::unpack::unpack_layer;
use super::{io_err, Digest, Image, ImageConfig, ImageError, Platform, PullEvent, PullPolicy};
use super::{Reference, Result};

/// The image store. Cheap to open; safe to use from several threads and processes.
pub struct Store {
    dir: PathBuf,
    options: RegistryOptions,
    client: OnceLock<Client>,
}

/// One image as recorded on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    pub id: Digest,
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    pub layers: Vec<LayerRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LayerRecord {
    pub blob: Digest,
    pub media_type: String,
    pub size: u64,
    pub diff_id: Digest,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct NameEntry {
    pub id: Digest,
    pub manifest_digest: Digest,
    /// Seconds since the epoch of the last successful pull or import.
    pub pulled_at: u64,
}

/// What `prune` removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    pub images: Vec<Digest>,
    pub layers: usize,
    pub blobs: usize,
    pub bytes: u64,
}

/// A verified, unpacked layer ingested into the store.
#[derive(Debug, Clone)]
pub(crate) struct Ingested {
    pub blob: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub media_type: &'static str,
}

/// An flock(2) held until dropped.
pub(crate) struct Lock(#[allow(dead_code)] File);

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Open (creating if needed) the store under `<root>/images`, with registry options from
    /// the environment (`RCOMPOSE_INSECURE_REGISTRIES`, `DOCKER_CONFIG`).
    pub fn open(root: &Path) -> Result<Store> {
        Store::open_with(root, RegistryOptions::from_env())
    }

    pub fn open_with(root: &Path, options: RegistryOptions) -> Result<Store> {
        let dir = root.join("images");
        for sub in [
            "blobs/sha256",
            "layers/sha256",
            "records/sha256",
            "tmp",
            "locks",
        ] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let store = Store {
            dir,
            options,
            client: OnceLock::new(),
        };
        store.clean_tmp();
        Ok(store)
    }

    /// The directory holding the store (`<root>/images`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn client(&self) -> &Client {
        self.client
            .get_or_init(|| Client::new(self.options.clone()))
    }

    // ---- paths and primitives -------------------------------------------------------------

    pub(crate) fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(d.hex())
    }

    pub(crate) fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.dir.join("layers/sha256").join(diff_id.hex())
    }

    fn record_path(&self, id: &Digest) -> PathBuf {
        self.dir
            .join("records/sha256")
            .join(format!("{}.json", id.hex()))
    }

    fn names_path(&self) -> PathBuf {
        self.dir.join("names.json")
    }

    /// A fresh staging path, tagged with our pid so a later `open` can tell it is stale.
    pub(crate) fn tmp_path(&self, what: &str) -> PathBuf {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        self.dir
            .join("tmp")
            .join(format!("{}-{nanos}-{n}-{what}", std::process::id()))
    }

    /// Remove staging entries of processes that are gone (killed pulls).
    fn clean_tmp(&self) {
        let Ok(rd) = fs::read_dir(self.dir.join("tmp")) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').next().unwrap_or("");
            let alive = !pid.is_empty() && Path::new("/proc").join(pid).exists();
            if !alive {
                debug!(path = %e.path().display(), "removing stale staging entry");
                let _ = remove_any(&e.path());
            }
        }
    }

    pub(crate) fn lock(&self, name: &str, exclusive: bool) -> Result<Lock> {
        let path = self.dir.join("locks").join(name);
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let op = if exclusive {
            rustix::fs::FlockOperation::LockExclusive
        } else {
            rustix::fs::FlockOperation::LockShared
        };
        rustix::fs::flock(&f, op).map_err(|e| io_err(&path)(e.into()))?;
        Ok(Lock(f))
    }

    /// Held shared by everything that adds to the store, exclusive by prune and rm.
    pub(crate) fn store_lock(&self, exclusive: bool) -> Result<Lock> {
        self.lock("store.lock", exclusive)
    }

    pub(crate) fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    pub(crate) fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_path(diff_id).is_dir()
    }

    pub(crate) fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        fs::read(&p).map_err(io_err(&p))
    }

    /// Store a small blob (manifest, config) after checking its digest.
    pub(crate) fn put_blob(
        &self,
        bytes: &[u8],
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<Digest> {
        let d = Digest::of(bytes);
        if let Some(e) = expected {
            if *e != d {
                return Err(ImageError::DigestMismatch {
                    what: what.to_string(),
                    expected: e.clone(),
                    actual: d,
                });
            }
        }
        let dest = self.blob_path(&d);
        if !dest.exists() {
            write_atomic(&self.tmp_path("blob"), &dest, bytes)?;
        }
        Ok(d)
    }

    /// Stream a layer blob into the store: hash it (blob digest), keep it, decompress it
    /// (gzip, zstd or plain, by magic number), hash that (diff_id) and unpack it, all in one
    /// pass. Anything that does not match `expected_*` is thrown away and reported.
    pub(crate) fn ingest_layer<R: Read>(
        &self,
        reader: R,
        expected_blob: Option<(&Digest, u64)>,
        expected_diff_id: Option<&Digest>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Ingested> {
        let what = expected_blob
            .map(|(d, _)| d.to_string())
            .unwrap_or_else(|| "from the imported tarball".to_string());
        let tmp_blob = self.tmp_path("layer-blob");
        let tmp_dir = self.tmp_path("layer");
        let cleanup = || {
            let _ = fs::remove_file(&tmp_blob);
            let _ = remove_any(&tmp_dir);
        };
        let result = (|| {
            fs::create_dir(&tmp_dir).map_err(io_err(&tmp_dir))?;
            let blob_file = File::create(&tmp_blob).map_err(io_err(&tmp_blob))?;
            let mut tee = TeeHashReader::new(
                reader,
                Some(io::BufWriter::with_capacity(1 << 20, blob_file)),
                progress,
            );
            let (media_type, diff) = {
                let mut buffered = BufReader::with_capacity(1 << 20, &mut tee);
                let head = buffered.fill_buf().map_err(io_err(&tmp_blob))?;
                let (media_type, decoder): (&'static str, Box<dyn Read + '_>) =
                    if head.starts_with(&[0x1f, 0x8b]) {
                        (
                            manifest::OCI_LAYER_GZIP,
                            Box::new(flate2::bufread::MultiGzDecoder::new(&mut buffered)),
                        )
                    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                        let z = zstd::stream::read::Decoder::with_buffer(&mut buffered)
                            .map_err(io_err(&tmp_blob))?;
                        (manifest::OCI_LAYER_ZSTD, Box::new(z))
                    } else {
                        (manifest::OCI_LAYER, Box::new(&mut buffered))
                    };
                let mut hashed = HashReader::new(decoder);
                unpack_layer(&mut hashed, &tmp_dir).map_err(|source| match &source {
                    super::unpack::UnpackError::Write { source: e, .. }
                        if e.raw_os_error() == Some(28) =>
                    {
                        ImageError::DiskFull {
                            path: self.dir.clone(),
                        }
                    }
                    _ => ImageError::Unpack {
                        digest: what.clone(),
                        source,
                    },
                })?;
                // The tar end marker may be followed by padding: the digest covers it all.
                let diff = hashed.finish().map_err(|e| ImageError::Unpack {
                    digest: what.clone(),
                    source: super::unpack::UnpackError::Read(e),
                })?;
                io::copy(&mut buffered, &mut io::sink()).map_err(io_err(&tmp_blob))?;
                (media_type, diff)
            };
            let (blob, size, out) = tee.finish().map_err(io_err(&tmp_blob))?;
            let mut out = out.expect("tee has a writer");
            out.flush().map_err(io_err(&tmp_blob))?;
            drop(out);
            if let Some((expected, expected_size)) = expected_blob {
                if *expected != blob {
                    return Err(ImageError::DigestMismatch {
                        what: format!("layer blob {expected}"),
                        expected: expected.clone(),
                        actual: blob,
                    });
                }
                if expected_size != size {
                    return Err(ImageError::SizeMismatch {
                        digest: expected.clone(),
                        expected: expected_size,
                        actual: size,
                    });
                }
            }
            let diff_id = diff.0;
            if let Some(expected) = expected_diff_id {
                if *expected != diff_id {
                    return Err(ImageError::DigestMismatch {
                        what: format!("uncompressed layer {expected} (blob {blob})"),
                        expected: expected.clone(),
                        actual: diff_id,
                    });
                }
            }
            let _layer_lock = self.lock(&format!("layer-{}", diff_id.hex()), true)?;
            let layer = self.layer_path(&diff_id);
            if !layer.exists() {
                fs::rename(&tmp_dir, &layer).map_err(io_err(&layer))?;
            }
            let dest = self.blob_path(&blob);
            if !dest.exists() {
                fs::rename(&tmp_blob, &dest).map_err(io_err(&dest))?;
            }
            Ok(Ingested {
                blob,
                size,
                diff_id,
                media_type,
            })
        })();
        cleanup();
        result
    }

    // ---- names and records ----------------------------------------------------------------

    pub(crate) fn read_names(&self) -> Result<BTreeMap<String, NameEntry>> {
        let p = self.names_path();
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| ImageError::CorruptStore {
                path: p,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(io_err(p)(e)),
        }
    }

    /// Change the name index under its lock, written atomically.
    pub(crate) fn update_names<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, NameEntry>) -> T,
    ) -> Result<T> {
        let _l = self.lock("names.lock", true)?;
        let mut names = self.read_names()?;
        let out = f(&mut names);
        let bytes = serde_json::to_vec_pretty(&names).expect("names serialize");
        write_atomic(&self.tmp_path("names"), &self.names_path(), &bytes)?;
        Ok(out)
    }

    pub(crate) fn read_record(&self, id: &Digest) -> Result<Option<ImageRecord>> {
        let p = self.record_path(id);
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| ImageError::CorruptStore {
                    path: p,
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(p)(e)),
        }
    }

    pub(crate) fn write_record(&self, rec: &ImageRecord) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(rec).expect("record serializes");
        write_atomic(&self.tmp_path("record"), &self.record_path(&rec.id), &bytes)
    }

    /// Record `reference` as naming the image `rec` (the last step of a pull or import).
    pub(crate) fn commit_name(&self, reference: &Reference, rec: &ImageRecord) -> Result<()> {
        self.write_record(rec)?;
        let entry = NameEntry {
            id: rec.id.clone(),
            manifest_digest: rec.manifest_digest.clone(),
            pulled_at: now_secs(),
        };
        self.update_names(|n| {
            n.insert(reference.to_string(), entry);
        })
    }

    /// Whether everything a record needs is on disk.
    pub(crate) fn complete(&self, rec: &ImageRecord) -> bool {
        self.has_blob(&rec.id) && rec.layers.iter().all(|l| self.has_layer(&l.diff_id))
    }

    pub(crate) fn image_from_record(
        &self,
        reference: Reference,
        rec: &ImageRecord,
    ) -> Result<Image> {
        let cfg_bytes = self.read_blob(&rec.id)?;
        let cfg = ConfigFile::parse(&rec.id, &cfg_bytes)?;
        Ok(Image {
            id: rec.id.clone(),
            reference,
            manifest_digest: Some(rec.manifest_digest.clone()),
            config: cfg.image_config(),
            layers: rec
                .layers
                .iter()
                .map(|l| self.layer_path(&l.diff_id))
                .collect(),
            diff_ids: rec.layers.iter().map(|l| l.diff_id.clone()).collect(),
            os: cfg.os,
            architecture: cfg.architecture,
            variant: cfg.variant,
            created: cfg.created,
            size: rec.layers.iter().map(|l| l.size).sum(),
        })
    }

    // ---- public API -----------------------------------------------------------------------

    /// When the image a reference names was last pulled (or imported), in seconds since the
    /// epoch; `None` when the name is not in the store. What `pull_policy: daily`, `weekly`
    /// and `every_<d>` compare against.
    pub fn pulled_at(&self, reference: &str) -> Result<Option<u64>> {
        let r = Reference::parse(reference)?;
        Ok(self.read_names()?.get(&r.to_string()).map(|e| e.pulled_at))
    }

    /// The image a reference names, if it is present and complete. Also accepts an image ID
    /// (`sha256:…` or a unique prefix of at least 4 hex digits).
    pub fn get(&self, reference: &str) -> Result<Option<Image>> {
        if let Some(found) = self.get_by_id(reference)? {
            return Ok(Some(found));
        }
        let r = Reference::parse(reference)?;
        let names = self.read_names()?;
        let Some(entry) = names.get(&r.to_string()) else {
            return Ok(None);
        };
        match self.read_record(&entry.id)? {
            Some(rec) if self.complete(&rec) => Ok(Some(self.image_from_record(r, &rec)?)),
            _ => Ok(None),
        }
    }

    fn get_by_id(&self, s: &str) -> Result<Option<Image>> {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if hex.len() < 4
            || hex.len() > 64
            || !hex
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        {
            return Ok(None);
        }
        let names = self.read_names()?;
        let mut ids: BTreeMap<&Digest, &String> = BTreeMap::new();
        for (name, e) in &names {
            if e.id.hex().starts_with(hex) {
                ids.entry(&e.id).or_insert(name);
            }
        }
        if ids.len() != 1 {
            return Ok(None);
        }
        let (id, name) = ids.into_iter().next().expect("one");
        match self.read_record(id)? {
            Some(rec) if self.complete(&rec) => {
                let r = Reference::parse(name)?;
                Ok(Some(self.image_from_record(r, &rec)?))
            }
            _ => Ok(None),
        }
    }

    /// Every named image, sorted by reference.
    pub fn list(&self) -> Result<Vec<Image>> {
        let names = self.read_names()?;
        let mut out = Vec::new();
        for (name, entry) in names {
            let Ok(r) = Reference::parse(&name) else {
                continue;
            };
            if let Some(rec) = self.read_record(&entry.id)? {
                if self.complete(&rec) {
                    out.push(self.image_from_record(r, &rec)?);
                }
            }
        }
        Ok(out)
    }

    /// Make the image present according to `policy` and return it. `platform` overrides this
    /// machine's (compose `platform:`). `progress` receives events as the pull goes.
    pub fn ensure(
        &self,
        reference: &str,
        policy: PullPolicy,
        platform: Option<&Platform>,
        progress: &(dyn Fn(PullEvent) + Sync),
    ) -> Result<Image> {
        let r = Reference::parse(reference)?;
        let present = self.get(reference)?;
        let pull = match (&present, policy) {
            (_, PullPolicy::Always) => true,
            (Some(_), PullPolicy::Missing | PullPolicy::Never | PullPolicy::Build) => false,
            (None, PullPolicy::Missing) => true,
            (None, PullPolicy::Never) => return Err(ImageError::NotPresent(r.familiar())),
            (None, PullPolicy::Build) => return Err(ImageError::NeedsBuild(r.familiar())),
            (None, PullPolicy::Every(_)) => true,
            (Some(_), PullPolicy::Every(max_age)) => {
                let names = self.read_names()?;
                let pulled = names.get(&r.to_string()).map(|e| e.pulled_at).unwrap_or(0);
                now_secs().saturating_sub(pulled) >= max_age.as_secs()
            }
        };
        match (pull, present) {
            (false, Some(img)) => Ok(img),
            _ => self.pull(reference, platform, progress),
        }
    }

    /// Pull the image from its registry (always contacts it).
    pub fn pull(
        &self,
        reference: &str,
        platform: Option<&Platform>,
        progress: &(dyn Fn(PullEvent) + Sync),
    ) -> Result<Image> {
        let r = Reference::parse(reference)?;
        let platform = platform.cloned().unwrap_or_else(Platform::host);
        super::pull::pull(self, &r, &platform, progress)
    }

    /// Create a one-layer image from a root filesystem tarball (plain, gzip or zstd), as
    /// `docker import`, and name it `reference`.
    pub fn import_rootfs<R: Read>(&self, tar: R, reference: &str) -> Result<Image> {
        self.import_rootfs_with_config(tar, reference, &ImageConfig::default())
    }

    /// `import_rootfs` with container defaults (as `docker import --change`).
    pub fn import_rootfs_with_config<R: Read>(
        &self,
        tar: R,
        reference: &str,
        config: &ImageConfig,
    ) -> Result<Image> {
        let r = Reference::parse(reference)?;
        let _shared = self.store_lock(false)?;
        let layer = self.ingest_layer(tar, None, None, &|_| {})?;
        let rec = self.make_image(&[layer], config)?;
        self.commit_name(&r, &rec)?;
        info!(reference = %r, id = %rec.id, "imported image");
        self.get(&r.to_string())?
            .ok_or_else(|| ImageError::NoSuchImage(r.familiar()))
    }

    /// `import_rootfs` from a file (`-` is not special here).
    pub fn import_rootfs_path(&self, tar: &Path, reference: &str) -> Result<Image> {
        let f = File::open(tar).map_err(io_err(tar))?;
        self.import_rootfs(f, reference)
    }

    /// Write config and OCI manifest for ingested layers; returns the (unnamed) record.
    pub(crate) fn make_image(
        &self,
        layers: &[Ingested],
        config: &ImageConfig,
    ) -> Result<ImageRecord> {
        let host = Platform::host();
        let created = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
        let cfg = ConfigFile {
            architecture: host.architecture,
            os: host.os,
            variant: host.variant,
            created: Some(created.clone()),
            config: Some(ContainerConfig::from(config)),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: layers.iter().map(|l| l.diff_id.clone()).collect(),
            },
        };
        let mut cfg_json = serde_json::to_value(&cfg).expect("config serializes");
        cfg_json["history"] =
            serde_json::json!([{"created": created, "created_by": "rcompose image import"}]);
        let cfg_bytes = serde_json::to_vec(&cfg_json).expect("config serializes");
        let id = self.put_blob(&cfg_bytes, None, "image config")?;
        self.record_for(&id, cfg_bytes.len() as u64, layers)
    }

    /// Give an existing image another name (`docker tag`).
    pub fn tag(&self, source: &str, target: &str) -> Result<Image> {
        let img = self
            .get(source)?
            .ok_or_else(|| ImageError::NoSuchImage(source.to_string()))?;
        let r = Reference::parse(target)?;
        let rec = self
            .read_record(&img.id)?
            .ok_or_else(|| ImageError::NoSuchImage(source.to_string()))?;
        self.commit_name(&r, &rec)?;
        Ok(Image {
            reference: r,
            ..img
        })
    }

    /// Remove a name (or every name of an image ID), then whatever no remaining image uses.
    /// Returns the names removed.
    pub fn remove(&self, reference: &str) -> Result<Vec<String>> {
        let _excl = self.store_lock(true)?;
        let img = self
            .get(reference)?
            .ok_or_else(|| ImageError::NoSuchImage(reference.to_string()))?;
        let by_id = reference.starts_with("sha256:")
            || (img.id.hex().starts_with(reference) && reference.len() >= 4);
        let key = img.reference.to_string();
        let removed = self.update_names(|names| {
            let keys: Vec<String> = if by_id {
                names
                    .iter()
                    .filter(|(_, e)| e.id == img.id)
                    .map(|(k, _)| k.clone())
                    .collect()
            } else {
                vec![key]
            };
            for k in &keys {
                names.remove(k);
            }
            keys
        })?;
        self.collect_garbage()?;
        Ok(removed)
    }

    /// Remove every image record no name points at, then unreferenced layers and blobs.
    pub fn prune(&self) -> Result<PruneReport> {
        let _excl = self.store_lock(true)?;
        self.collect_garbage()
    }

    /// Caller holds the store lock exclusively.
    fn collect_garbage(&self) -> Result<PruneReport> {
        let names = self.read_names()?;
        let named: BTreeSet<Digest> = names.values().map(|e| e.id.clone()).collect();
        let mut keep_blobs: BTreeSet<String> = BTreeSet::new();
        let mut keep_layers: BTreeSet<String> = BTreeSet::new();
        for e in names.values() {
            keep_blobs.insert(e.manifest_digest.hex().to_string());
        }
        let mut report = PruneReport::default();
        let rec_dir = self.dir.join("records/sha256");
        for e in fs::read_dir(&rec_dir).map_err(io_err(&rec_dir))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(hex) = name.strip_suffix(".json") else {
                continue;
            };
            let Ok(id) = Digest::parse(&format!("sha256:{hex}")) else {
                continue;
            };
            if !named.contains(&id) {
                let _ = fs::remove_file(e.path());
                report.images.push(id);
                continue;
            }
            if let Some(rec) = self.read_record(&id)? {
                keep_blobs.insert(rec.id.hex().to_string());
                keep_blobs.insert(rec.manifest_digest.hex().to_string());
                for l in &rec.layers {
                    keep_blobs.insert(l.blob.hex().to_string());
                    keep_layers.insert(l.diff_id.hex().to_string());
                }
            }
        }
        // Index manifests (manifest lists) are kept with the images they led to only when a
        // name records them; others go.
        for (sub, keep, is_layer) in [
            ("layers/sha256", &keep_layers, true),
            ("blobs/sha256", &keep_blobs, false),
        ] {
            let d = self.dir.join(sub);
            for e in fs::read_dir(&d).map_err(io_err(&d))?.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if keep.contains(&name) {
                    continue;
                }
                // Move out of sight first, so a half-removed layer is never visible.
                let doomed = self.tmp_path("doomed");
                if fs::rename(e.path(), &doomed).is_ok() {
                    report.bytes += disk_usage(&doomed);
                    if let Err(err) = remove_any(&doomed) {
                        warn!(path = %doomed.display(), %err, "removing pruned entry");
                    }
                    if is_layer {
                        report.layers += 1;
                    } else {
                        report.blobs += 1;
                    }
                }
            }
        }
        Ok(report)
    }

    /// The raw config blob of an image (for `inspect`).
    pub fn config_blob(&self, id: &Digest) -> Result<Vec<u8>> {
        self.read_blob(id)
    }
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Write `bytes` to `tmp`, fsync, rename to `dest`.
pub(crate) fn write_atomic(tmp: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(tmp).map_err(io_err(tmp))?;
    f.write_all(bytes).map_err(io_err(tmp))?;
    f.sync_all().map_err(io_err(tmp))?;
    drop(f);
    fs::rename(tmp, dest).map_err(|e| {
        let _ = fs::remove_file(tmp);
        io_err(dest)(e)
    })
}

pub(crate) fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn disk_usage(p: &Path) -> u64 {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| disk_usage(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}
