//! Manifest, index and image-config documents (Docker schema 2 and OCI), and the choice of
//! one platform's manifest from a manifest list / image index.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Digest, Healthcheck, ImageConfig, ImageError, Platform, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// What we send as `Accept` for manifests.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<DescriptorPlatform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DescriptorPlatform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// A fetched manifest document, classified.
#[derive(Debug)]
pub enum Document {
    Manifest(Manifest),
    Index(Index),
}

/// Classify a manifest document by its media type (header, then body field, then shape).
pub fn parse_document(what: &str, content_type: Option<&str>, body: &[u8]) -> Result<Document> {
    let invalid = |reason: String| ImageError::InvalidManifest {
        what: what.to_string(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let body_type = value.get("mediaType").and_then(|v| v.as_str());
    let ct = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| !c.is_empty() && *c != "application/json" && *c != "text/plain");
    let kind = ct
        .or(body_type)
        .unwrap_or(if value.get("manifests").is_some() {
            OCI_INDEX
        } else {
            OCI_MANIFEST
        });
    if value.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
        return Err(invalid("schema 1 manifests are not supported".into()));
    }
    match kind {
        OCI_INDEX | DOCKER_LIST => Ok(Document::Index(
            serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?,
        )),
        OCI_MANIFEST | DOCKER_MANIFEST => Ok(Document::Manifest(
            serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?,
        )),
        other => Err(invalid(format!("unsupported media type {other}"))),
    }
}

/// Pick the manifest for `want` from an index: exact os/arch, variant matched when both
/// sides name one (arm64 without a variant is v8).
pub fn select_platform<'a>(
    reference: &str,
    index: &'a Index,
    want: &Platform,
) -> Result<&'a Descriptor> {
    let norm_variant = |arch: &str, v: Option<&str>| -> Option<String> {
        match (arch, v) {
            ("arm64", None) => Some("v8".into()),
            (_, v) => v.map(String::from),
        }
    };
    let want_variant = norm_variant(&want.architecture, want.variant.as_deref());
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| {
            d.platform.as_ref().is_some_and(|p| {
                p.os == want.os
                    && p.architecture == want.architecture
                    && (want.variant.is_none()
                        || norm_variant(&p.architecture, p.variant.as_deref()) == want_variant)
            })
        })
        .collect();
    // Prefer an exact variant match, then the first listed.
    candidates
        .iter()
        .find(|d| {
            let p = d.platform.as_ref().expect("filtered on platform");
            norm_variant(&p.architecture, p.variant.as_deref()) == want_variant
        })
        .or(candidates.first())
        .copied()
        .ok_or_else(|| {
            let mut available: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .filter(|p| p.os != "unknown")
                .map(|p| match &p.variant {
                    Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                    None => format!("{}/{}", p.os, p.architecture),
                })
                .collect();
            available.sort();
            available.dedup();
            ImageError::NoMatchingPlatform {
                reference: reference.to_string(),
                platform: want.to_string(),
                available: if available.is_empty() {
                    "none".into()
                } else {
                    available.join(", ")
                },
            }
        })
}

/// The parts of an image config blob we read.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct ConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<RawHealthcheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// Docker's HEALTHCHECK in a config: durations in nanoseconds.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RawHealthcheck {
    #[serde(default)]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
}

impl ConfigFile {
    pub fn parse(digest: &Digest, bytes: &[u8]) -> Result<ConfigFile> {
        let c: ConfigFile =
            serde_json::from_slice(bytes).map_err(|e| ImageError::InvalidConfig {
                digest: digest.clone(),
                reason: e.to_string(),
            })?;
        if c.rootfs.kind != "layers" {
            return Err(ImageError::InvalidConfig {
                digest: digest.clone(),
                reason: format!("rootfs type \"{}\" is not \"layers\"", c.rootfs.kind),
            });
        }
        Ok(c)
    }

    /// The container defaults this config carries.
    pub fn image_config(&self) -> ImageConfig {
        let Some(c) = &self.config else {
            return ImageConfig::default();
        };
        let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        let ns = |v: Option<u64>| v.filter(|n| *n > 0).map(Duration::from_nanos);
        ImageConfig {
            entrypoint: c.entrypoint.clone(),
            cmd: c.cmd.clone(),
            env: c.env.clone().unwrap_or_default(),
            working_dir: nonempty(&c.working_dir),
            user: nonempty(&c.user),
            exposed_ports: c
                .exposed_ports
                .as_ref()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
            volumes: c
                .volumes
                .as_ref()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
            healthcheck: c.healthcheck.as_ref().map(|h| Healthcheck {
                test: h.test.clone(),
                interval: ns(h.interval),
                timeout: ns(h.timeout),
                start_period: ns(h.start_period),
                start_interval: ns(h.start_interval),
                retries: h.retries.filter(|r| *r > 0),
            }),
            stop_signal: nonempty(&c.stop_signal),
            labels: c.labels.clone().unwrap_or_default(),
        }
    }
}

impl From<&ImageConfig> for ContainerConfig {
    fn from(c: &ImageConfig) -> Self {
        let set = |v: &Vec<String>| {
            (!v.is_empty()).then(|| {
                v.iter()
                    .map(|k| (k.clone(), serde_json::json!({})))
                    .collect()
            })
        };
        ContainerConfig {
            entrypoint: c.entrypoint.clone(),
            cmd: c.cmd.clone(),
            env: (!c.env.is_empty()).then(|| c.env.clone()),
            working_dir: c.working_dir.clone(),
            user: c.user.clone(),
            exposed_ports: set(&c.exposed_ports),
            volumes: set(&c.volumes),
            healthcheck: c.healthcheck.as_ref().map(|h| RawHealthcheck {
                test: h.test.clone(),
                interval: h.interval.map(|d| d.as_nanos() as u64),
                timeout: h.timeout.map(|d| d.as_nanos() as u64),
                start_period: h.start_period.map(|d| d.as_nanos() as u64),
                start_interval: h.start_interval.map(|d| d.as_nanos() as u64),
                retries: h.retries,
            }),
            stop_signal: c.stop_signal.clone(),
            labels: (!c.labels.is_empty()).then(|| c.labels.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(arch: &str, variant: Option<&str>, n: u8) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: Digest::of(&[n]),
            size: 1,
            platform: Some(DescriptorPlatform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.map(String::from),
            }),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn selects_platform() {
        let index = Index {
            schema_version: 2,
            media_type: None,
            manifests: vec![
                desc("arm", Some("v7"), 1),
                desc("arm64", None, 2),
                desc("amd64", None, 3),
            ],
        };
        let pick = |s: &str| select_platform("x", &index, &Platform::parse(s).unwrap());
        assert_eq!(pick("linux/amd64").unwrap().digest, Digest::of(&[3]));
        assert_eq!(pick("linux/arm64/v8").unwrap().digest, Digest::of(&[2]));
        assert_eq!(pick("linux/arm/v7").unwrap().digest, Digest::of(&[1]));
        let err = pick("linux/s390x").unwrap_err().to_string();
        assert!(
            err.contains("linux/amd64, linux/arm/v7, linux/arm64"),
            "{err}"
        );
    }

    #[test]
    fn reads_docker_config() {
        let json = br#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":null,
            "Cmd":["sh"],"Env":["PATH=/bin"],"WorkingDir":"","ExposedPorts":{"80/tcp":{}},
            "Volumes":{"/data":{}},"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000,
            "Retries":3},"StopSignal":"SIGQUIT","Labels":{"a":"b"}},
            "rootfs":{"type":"layers","diff_ids":[]}}"#;
        let c = ConfigFile::parse(&Digest::of(json), json)
            .unwrap()
            .image_config();
        assert_eq!(c.cmd, Some(vec!["sh".to_string()]));
        assert_eq!(c.entrypoint, None);
        assert_eq!(c.working_dir, None);
        assert_eq!(c.exposed_ports, vec!["80/tcp"]);
        assert_eq!(c.volumes, vec!["/data"]);
        let h = c.healthcheck.unwrap();
        assert_eq!(h.interval, Some(Duration::from_secs(1)));
        assert_eq!(h.retries, Some(3));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
    }
}
