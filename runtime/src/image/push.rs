//! Pushing an image from the store to a registry (the OCI distribution API's push flow):
//! each layer blob and the config blob unless the registry has it (`HEAD`), as a monolithic
//! upload (`POST /blobs/uploads/` then `PUT <location>?digest=`), then the manifest, byte for
//! byte as the store keeps it (so its digest is the one `image ls` shows), under the tag.
//! A child module of `registry`: it answers auth challenges as pulls do, with the
//! `pull,push` scope.

use std::fs::File;

use tracing::debug;

use super::{Client, Response};
use crate::image::store::Store;
use crate::image::{Digest, ImageError, Reference, Result};

/// Progress of a push, one event per blob and one for the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// A blob is being uploaded (`size` bytes).
    Pushing { digest: Digest, size: u64 },
    /// A blob was uploaded.
    Pushed { digest: Digest },
    /// The registry had the blob already.
    Exists { digest: Digest },
    /// The manifest is in place under the tag: the push is complete.
    Manifest { digest: Digest },
}

impl Client {
    fn status_error(r: &Reference, url: &str, resp: &Response) -> ImageError {
        ImageError::RegistryStatus {
            registry: r.registry.clone(),
            url: url.to_string(),
            status: resp.status().as_u16(),
        }
    }

    /// Upload one blob from `path` unless the registry has it; true when it was uploaded.
    fn push_blob(&self, r: &Reference, digest: &Digest, path: &std::path::Path) -> Result<bool> {
        let base = self.base(r.api_host())?;
        let scope = format!("repository:{}:pull,push", r.repository);
        let head_url = format!("{base}/v2/{}/blobs/{digest}", r.repository);
        let resp = self.send_authorized(r, &scope, &|agent, auth| {
            let mut req = agent.head(&head_url);
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            req.call()
        })?;
        if resp.status().as_u16() == 200 {
            debug!(%digest, "blob already in the registry");
            return Ok(false);
        }
        let start_url = format!("{base}/v2/{}/blobs/uploads/", r.repository);
        let resp = self.send_authorized(r, &scope, &|agent, auth| {
            let mut req = agent.post(&start_url);
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            req.header("Content-Length", "0").send_empty()
        })?;
        if resp.status().as_u16() != 202 {
            return Err(Self::status_error(r, &start_url, &resp));
        }
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ImageError::RegistryProtocol {
                registry: r.registry.clone(),
                reason: format!("upload of {digest} started without a Location"),
            })?;
        let mut put_url = if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{base}{location}")
        };
        put_url.push(if put_url.contains('?') { '&' } else { '?' });
        put_url.push_str(&format!("digest={digest}"));
        let size = std::fs::metadata(path)
            .map_err(crate::image::io_err(path))?
            .len();
        let resp = self.send_authorized(r, &scope, &|agent, auth| {
            let file = File::open(path).map_err(ureq::Error::Io)?;
            let mut req = agent
                .put(&put_url)
                .header("Content-Type", "application/octet-stream")
                .header("Content-Length", size.to_string());
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            req.send(ureq::SendBody::from_owned_reader(file))
        })?;
        if resp.status().as_u16() != 201 {
            return Err(Self::status_error(r, &put_url, &resp));
        }
        Ok(true)
    }

    fn push_manifest(
        &self,
        r: &Reference,
        tag: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<()> {
        let base = self.base(r.api_host())?;
        let scope = format!("repository:{}:pull,push", r.repository);
        let url = format!("{base}/v2/{}/manifests/{tag}", r.repository);
        let resp = self.send_authorized(r, &scope, &|agent, auth| {
            let mut req = agent.put(&url).header("Content-Type", media_type);
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            req.send(bytes)
        })?;
        if resp.status().as_u16() != 201 {
            return Err(Self::status_error(r, &url, &resp));
        }
        Ok(())
    }
}

impl Store {
    /// Push the image named `source` in the store to `target` (a registry reference with a
    /// tag, `source` itself when None). Returns the manifest digest.
    pub fn push(
        &self,
        source: &str,
        target: Option<&str>,
        progress: &dyn Fn(PushEvent),
    ) -> Result<Digest> {
        let img = self
            .get(source)?
            .ok_or_else(|| ImageError::NoSuchImage(source.to_string()))?;
        let rec = self
            .read_record(&img.id)?
            .ok_or_else(|| ImageError::NoSuchImage(source.to_string()))?;
        let r = match target {
            Some(t) => Reference::parse(t)?,
            None => img.reference.clone(),
        };
        let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
        let client = self.client();
        let mut blobs: Vec<(Digest, u64)> = rec
            .layers
            .iter()
            .map(|l| (l.blob.clone(), l.size))
            .collect();
        let cfg_size = std::fs::metadata(self.blob_path(&rec.id))
            .map(|m| m.len())
            .unwrap_or(0);
        blobs.push((rec.id.clone(), cfg_size));
        for (digest, size) in blobs {
            progress(PushEvent::Pushing {
                digest: digest.clone(),
                size,
            });
            if client.push_blob(&r, &digest, &self.blob_path(&digest))? {
                progress(PushEvent::Pushed { digest });
            } else {
                progress(PushEvent::Exists { digest });
            }
        }
        let manifest = self.read_blob(&rec.manifest_digest)?;
        client.push_manifest(&r, &tag, &rec.manifest_media_type, &manifest)?;
        progress(PushEvent::Manifest {
            digest: rec.manifest_digest.clone(),
        });
        Ok(rec.manifest_digest)
    }
}
