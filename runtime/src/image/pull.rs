//! A pull: manifest (and platform choice), config, then every missing layer downloaded in
//! parallel and unpacked as it arrives (`Store::ingest_layer`), then the name recorded. A
//! present image whose manifest digest has not changed costs one manifest request.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tracing::{info, warn};

use super::manifest::{parse_document, select_platform, ConfigFile, Document};
use super::store::{now_secs, ImageRecord, LayerRecord, Store};
use super::{Digest, Image, ImageError, Platform, PullEvent, Reference, Result};

pub(crate) fn pull(
    store: &Store,
    r: &Reference,
    platform: &Platform,
    progress: &(dyn Fn(PullEvent) + Sync),
) -> Result<Image> {
    let _shared = store.store_lock(false)?;
    // Two pulls of one reference at once: the second waits, then finds the work done.
    let key = Digest::of(r.to_string().as_bytes());
    let _pull_lock = store.lock(&format!("pull-{}", &key.hex()[..16]), true)?;
    progress(PullEvent::Resolving {
        reference: r.familiar(),
    });
    let client = store.client();
    let (body, content_type) = client.manifest(r, &r.api_reference())?;
    let top_digest = Digest::of(&body);
    if let Some(want) = &r.digest {
        if *want != top_digest {
            return Err(ImageError::DigestMismatch {
                what: format!("manifest of {}", r.familiar()),
                expected: want.clone(),
                actual: top_digest,
            });
        }
    }
    let (manifest, manifest_digest, manifest_bytes, media_type) = match parse_document(
        &format!("{} ({top_digest})", r.familiar()),
        content_type.as_deref(),
        &body,
    )? {
        Document::Manifest(m) => {
            let mt = m
                .media_type
                .clone()
                .or(content_type.clone())
                .unwrap_or_else(|| super::manifest::OCI_MANIFEST.into());
            (m, top_digest, body, mt)
        }
        Document::Index(index) => {
            let d = select_platform(&r.familiar(), &index, platform)?.clone();
            let (b, ct) = client.manifest(r, d.digest.as_str())?;
            let actual = Digest::of(&b);
            if actual != d.digest {
                return Err(ImageError::DigestMismatch {
                    what: format!("manifest {} of {}", d.digest, r.familiar()),
                    expected: d.digest,
                    actual,
                });
            }
            match parse_document(d.digest.as_str(), ct.as_deref(), &b)? {
                Document::Manifest(m) => (m, d.digest, b, d.media_type),
                Document::Index(_) => {
                    return Err(ImageError::InvalidManifest {
                        what: d.digest.to_string(),
                        reason: "an index inside an index is not supported".into(),
                    })
                }
            }
        }
    };

    // Fast path: the name already records this manifest and everything is on disk.
    let names = store.read_names()?;
    if let Some(entry) = names.get(&r.to_string()) {
        if entry.manifest_digest == manifest_digest {
            if let Some(rec) = store.read_record(&entry.id)? {
                if store.complete(&rec) {
                    store.update_names(|n| {
                        if let Some(e) = n.get_mut(&r.to_string()) {
                            e.pulled_at = now_secs();
                        }
                    })?;
                    progress(PullEvent::UpToDate {
                        reference: r.familiar(),
                        id: rec.id.clone(),
                    });
                    return store.image_from_record(r.clone(), &rec);
                }
            }
        }
    }

    let cfg_digest = manifest.config.digest.clone();
    let cfg_bytes = if store.has_blob(&cfg_digest) {
        store.read_blob(&cfg_digest)?
    } else {
        let mut b = Vec::new();
        client
            .blob(r, &cfg_digest)?
            .take(16 << 20)
            .read_to_end(&mut b)
            .map_err(|e| ImageError::RegistryProtocol {
                registry: r.registry.clone(),
                reason: format!("reading config {cfg_digest}: {e}"),
            })?;
        store.put_blob(&b, Some(&cfg_digest), &format!("image config {cfg_digest}"))?;
        b
    };
    let cfg = ConfigFile::parse(&cfg_digest, &cfg_bytes)?;
    if cfg.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(ImageError::InvalidManifest {
            what: manifest_digest.to_string(),
            reason: format!(
                "{} layers but the config lists {} diff_ids",
                manifest.layers.len(),
                cfg.rootfs.diff_ids.len()
            ),
        });
    }

    // Layers, in parallel.
    let queue = Mutex::new((0..manifest.layers.len()).rev().collect::<Vec<_>>());
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<ImageError>> = Mutex::new(None);
    let workers = client.max_parallel().min(manifest.layers.len()).max(1);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                let Some(i) = queue.lock().expect("queue").pop() else {
                    return;
                };
                let desc = &manifest.layers[i];
                let diff_id = &cfg.rootfs.diff_ids[i];
                let res = fetch_layer(store, r, &desc.digest, desc.size, diff_id, progress);
                if let Err(e) = res {
                    failed.store(true, Ordering::Relaxed);
                    first_error.lock().expect("error slot").get_or_insert(e);
                    return;
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("error slot") {
        return Err(e);
    }

    store.put_blob(&manifest_bytes, Some(&manifest_digest), "image manifest")?;
    let rec = ImageRecord {
        id: cfg_digest.clone(),
        manifest_digest: manifest_digest.clone(),
        manifest_media_type: media_type,
        layers: manifest
            .layers
            .iter()
            .zip(&cfg.rootfs.diff_ids)
            .map(|(d, diff)| LayerRecord {
                blob: d.digest.clone(),
                media_type: d.media_type.clone(),
                size: d.size,
                diff_id: diff.clone(),
            })
            .collect(),
    };
    store.commit_name(r, &rec)?;
    info!(reference = %r, id = %cfg_digest, "pulled image");
    progress(PullEvent::Pulled {
        reference: r.familiar(),
        id: cfg_digest,
        manifest_digest,
    });
    store.image_from_record(r.clone(), &rec)
}

fn fetch_layer(
    store: &Store,
    r: &Reference,
    blob: &Digest,
    size: u64,
    diff_id: &Digest,
    progress: &(dyn Fn(PullEvent) + Sync),
) -> Result<()> {
    if store.has_layer(diff_id) && store.has_blob(blob) {
        progress(PullEvent::LayerExists {
            digest: blob.clone(),
            size,
        });
        return Ok(());
    }
    // One download of a layer at a time across processes; the second finds it done.
    let _dl = store.lock(&format!("download-{}", blob.hex()), true)?;
    if store.has_layer(diff_id) && store.has_blob(blob) {
        progress(PullEvent::LayerExists {
            digest: blob.clone(),
            size,
        });
        return Ok(());
    }
    progress(PullEvent::LayerStart {
        digest: blob.clone(),
        size,
    });
    let on_bytes = |done: u64| {
        progress(PullEvent::LayerProgress {
            digest: blob.clone(),
            done,
            size,
        })
    };
    // A connection dropped mid-layer is retried from the start (staging is discarded on
    // every failure); verification, auth and not-found errors are not.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = store.client().blob(r, blob).and_then(|reader| {
            store.ingest_layer(reader, Some((blob, size)), Some(diff_id), &on_bytes)
        });
        match result {
            Ok(_) => break,
            Err(e) if attempt < 3 && transient(&e) => {
                warn!(digest = %blob, attempt, error = %e, "layer download failed, retrying");
                std::thread::sleep(std::time::Duration::from_millis(300 * attempt));
            }
            Err(e) => return Err(e),
        }
    }
    progress(PullEvent::LayerDone {
        digest: blob.clone(),
        size,
    });
    Ok(())
}

/// Failures worth another attempt: the network, not the content.
fn transient(e: &ImageError) -> bool {
    match e {
        ImageError::Unreachable { .. } => true,
        ImageError::RegistryStatus { status, .. } => *status >= 500 || *status == 429,
        ImageError::Unpack {
            source: super::unpack::UnpackError::Read(io),
            ..
        } => !matches!(
            io.kind(),
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
        ),
        _ => false,
    }
}
