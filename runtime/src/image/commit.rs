//! `commit`: a new image made of an existing image's layers plus one more (a container's
//! changes, as [`super::layerfs::diff_tar`] writes them), with a new container config and a
//! history entry, named in the store like a pulled image.

use std::io::Read;
use std::time::SystemTime;

use tracing::info;

use super::manifest::ContainerConfig;
use super::store::{LayerRecord, Store};
use super::{Image, ImageConfig, ImageError, Reference, Result};

/// Who made a committed image and why (`docker commit -a`, `-m`).
#[derive(Debug, Clone, Default)]
pub struct CommitInfo {
    pub author: Option<String>,
    pub comment: Option<String>,
    /// What the history entry says created the layer.
    pub created_by: String,
}

impl Store {
    /// Store `layer` (a tarball, plain or compressed) on top of image `base`'s layers as a new
    /// image with `config` as its container defaults, and name it `reference`.
    pub fn commit_layer<R: Read>(
        &self,
        base: &str,
        layer: R,
        config: &ImageConfig,
        reference: &str,
        info: &CommitInfo,
    ) -> Result<Image> {
        let r = Reference::parse(reference)?;
        let _shared = self.store_lock(false)?;
        let base_img = self
            .get(base)?
            .ok_or_else(|| ImageError::NoSuchImage(base.to_string()))?;
        let base_rec = self
            .read_record(&base_img.id)?
            .ok_or_else(|| ImageError::NoSuchImage(base.to_string()))?;
        let mut cfg: serde_json::Value = serde_json::from_slice(&self.read_blob(&base_img.id)?)
            .map_err(|e| ImageError::CorruptStore {
                path: self.dir().join("blobs/sha256").join(base_img.id.hex()),
                reason: e.to_string(),
            })?;
        let added = self.ingest_layer(layer, None, None, &|_| {})?;
        let created = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
        cfg["created"] = created.clone().into();
        if let Some(a) = &info.author {
            cfg["author"] = a.clone().into();
        }
        cfg["config"] = serde_json::to_value(ContainerConfig::from(config))
            .expect("a container config serializes");
        if !cfg["rootfs"]["diff_ids"].is_array() {
            cfg["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": []});
        }
        if let Some(ids) = cfg["rootfs"]["diff_ids"].as_array_mut() {
            ids.push(added.diff_id.to_string().into());
        }
        let mut entry = serde_json::json!({"created": created, "created_by": info.created_by});
        if let Some(a) = &info.author {
            entry["author"] = a.clone().into();
        }
        if let Some(c) = &info.comment {
            entry["comment"] = c.clone().into();
        }
        match cfg["history"].as_array_mut() {
            Some(h) => h.push(entry),
            None => cfg["history"] = serde_json::json!([entry]),
        }
        let cfg_bytes = serde_json::to_vec(&cfg).expect("config serializes");
        let id = self.put_blob(&cfg_bytes, None, "image config")?;
        let mut layers = base_rec.layers.clone();
        layers.push(LayerRecord {
            blob: added.blob.clone(),
            media_type: added.media_type.to_string(),
            size: added.size,
            diff_id: added.diff_id.clone(),
        });
        let rec = self.oci_record(id, cfg_bytes.len() as u64, layers)?;
        self.commit_name(&r, &rec)?;
        info!(reference = %r, id = %rec.id, base, "committed image");
        self.get(&r.to_string())?
            .ok_or_else(|| ImageError::NoSuchImage(r.familiar()))
    }
}
