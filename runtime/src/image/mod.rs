//! Images: references, the registry client, the content-addressed store, layer unpacking and
//! the image config. The supervisor calls `Store::ensure` for every service before creating
//! its container; the container half gets `Image::layers` (overlay lowerdirs) and
//! `Image::config` (the container's defaults).
//!
//! Data flow of a pull: `reference` (parse) → `registry` (manifest, platform choice through
//! `manifest`) → `store` (blobs verified while they stream, layers decompressed and handed to
//! `unpack` as they arrive, atomic rename into place) → `Image`.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod archive;
mod auth;
pub mod change;
mod commit;
pub mod digest;
pub mod layerfs;
pub mod manifest;
mod pull;
pub mod reference;
mod registry;
pub mod rootfs;
pub(crate) mod store;
pub mod unpack;

pub use commit::CommitInfo;
pub use digest::Digest;
pub use reference::Reference;
pub use registry::push::PushEvent;
pub use registry::RegistryOptions;
pub use store::{PruneReport, Store};

/// An image present in the store, ready to run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Image {
    /// The image ID: the digest of its config blob (as Docker's `sha256:…` ID).
    pub id: Digest,
    /// The reference it was asked for (normalized).
    pub reference: Reference,
    /// Digest of the manifest the image came from (the "repo digest").
    pub manifest_digest: Option<Digest>,
    pub config: ImageConfig,
    /// Unpacked layer directories, lowest first, ready as overlayfs lowerdirs (overlay wants
    /// them highest first in `lowerdir=`: reverse this list).
    pub layers: Vec<PathBuf>,
    /// Uncompressed layer digests, same order as `layers`.
    pub diff_ids: Vec<Digest>,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    /// Creation time from the config (RFC 3339), when it has one.
    pub created: Option<String>,
    /// Compressed size of the layers (what `docker images` calls SIZE is close to this).
    pub size: u64,
}

/// The parts of an image config that become a container's defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `KEY=value` strings, in image order.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// `80/tcp`, `53/udp`, sorted.
    pub exposed_ports: Vec<String>,
    /// Container paths, sorted.
    pub volumes: Vec<String>,
    pub healthcheck: Option<Healthcheck>,
    pub stop_signal: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// The image's HEALTHCHECK, as Docker stores it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", args…]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub retries: Option<u32>,
}

/// When `ensure` contacts the registry (compose `pull_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Always pull (a present, unchanged image costs one manifest request).
    Always,
    /// Pull only if the image is absent (compose's default, also `if_not_present`).
    Missing,
    /// Never pull: an absent image is an error.
    Never,
    /// The image is built, not pulled: an absent image is an error the caller handles by
    /// building.
    Build,
    /// Pull if absent or last pulled longer ago than this (`daily`, `weekly`, `every_<d>`).
    Every(Duration),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid pull policy \"{0}\": expected always, missing, never, build, daily, weekly or every_<duration>")]
pub struct PolicyError(pub String);

impl PullPolicy {
    pub const DAILY: PullPolicy = PullPolicy::Every(Duration::from_secs(24 * 3600));
    pub const WEEKLY: PullPolicy = PullPolicy::Every(Duration::from_secs(7 * 24 * 3600));

    /// Parse a compose `pull_policy` value.
    pub fn parse(s: &str) -> Result<PullPolicy, PolicyError> {
        match s {
            "always" => Ok(PullPolicy::Always),
            "missing" | "if_not_present" => Ok(PullPolicy::Missing),
            "never" => Ok(PullPolicy::Never),
            "build" => Ok(PullPolicy::Build),
            "daily" => Ok(PullPolicy::DAILY),
            "weekly" => Ok(PullPolicy::WEEKLY),
            _ => {
                let d = s
                    .strip_prefix("every_")
                    .and_then(|d| humantime::parse_duration(d).ok())
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| PolicyError(s.to_string()))?;
                Ok(PullPolicy::Every(d))
            }
        }
    }
}

impl std::str::FromStr for PullPolicy {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PullPolicy::parse(s)
    }
}

/// An OS/architecture/variant triple (`linux/arm64/v8`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of this machine, in OCI names.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "x86" => ("386", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(String::from),
        }
    }

    /// Parse `os/arch[/variant]` as compose's `platform:`.
    pub fn parse(s: &str) -> Result<Platform, ImageError> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || ImageError::InvalidPlatform(s.to_string());
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform {
                os: os.to_string(),
                architecture: normalize_arch(arch).to_string(),
                variant: None,
            }),
            [os, arch, variant] => Ok(Platform {
                os: os.to_string(),
                architecture: normalize_arch(arch).to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(bad()),
        }
    }
}

fn normalize_arch(a: &str) -> &str {
    match a {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Progress of `ensure`/`pull`, for the CLI's renderers. Layer events name the layer by its
/// (compressed) blob digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// Asking the registry for the manifest of this reference.
    Resolving { reference: String },
    /// The layer is already in the store.
    LayerExists { digest: Digest, size: u64 },
    /// Download of a layer starts (`size` from the manifest).
    LayerStart { digest: Digest, size: u64 },
    /// Bytes of the layer downloaded so far (downloaded and unpacked as they arrive).
    LayerProgress {
        digest: Digest,
        done: u64,
        size: u64,
    },
    /// The layer is verified and in place.
    LayerDone { digest: Digest, size: u64 },
    /// The image was present and unchanged: nothing downloaded.
    UpToDate { reference: String, id: Digest },
    /// The image is pulled and recorded under its name.
    Pulled {
        reference: String,
        id: Digest,
        manifest_digest: Digest,
    },
}

/// Errors of the image half of the runtime. Messages name the image, digest, registry or path.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Reference(#[from] reference::ReferenceError),
    #[error(transparent)]
    Digest(#[from] digest::DigestError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Change(#[from] change::ChangeError),
    #[error("invalid platform \"{0}\": expected os/arch[/variant]")]
    InvalidPlatform(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no space left on device while writing {}", path.display())]
    DiskFull { path: PathBuf },
    #[error("image \"{0}\" is not present and the pull policy forbids pulling it")]
    NotPresent(String),
    #[error("image \"{0}\" is not present and must be built (pull_policy: build)")]
    NeedsBuild(String),
    #[error("no such image: {0}")]
    NoSuchImage(String),
    #[error("image \"{reference}\" not found in registry {registry}: manifest unknown")]
    ManifestUnknown { reference: String, registry: String },
    #[error("blob {digest} of \"{reference}\" not found in registry {registry}")]
    BlobUnknown {
        reference: String,
        registry: String,
        digest: Digest,
    },
    #[error("registry {registry} refused access to \"{reference}\": unauthorized (check the credentials in ~/.docker/config.json)")]
    Unauthorized { reference: String, registry: String },
    #[error("registry {registry} is unreachable: {source}")]
    Unreachable {
        registry: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("registry {registry} answered {status} to {url}")]
    RegistryStatus {
        registry: String,
        url: String,
        status: u16,
    },
    #[error("registry {registry}: {reason}")]
    RegistryProtocol { registry: String, reason: String },
    #[error("credentials for registry {registry}: {reason}")]
    Credentials { registry: String, reason: String },
    #[error(
        "digest mismatch for {what}: expected {expected}, got {actual}; nothing of it was kept"
    )]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}; nothing of it was kept")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("manifest {what}: {reason}")]
    InvalidManifest { what: String, reason: String },
    #[error("image config {digest}: {reason}")]
    InvalidConfig { digest: Digest, reason: String },
    #[error("\"{reference}\" has no image for platform {platform} (available: {available})")]
    NoMatchingPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("layer {digest}: {source}")]
    Unpack {
        digest: String,
        #[source]
        source: unpack::UnpackError,
    },
    #[error("archive {}: {reason}", path.display())]
    Archive { path: PathBuf, reason: String },
    #[error("image record {}: {reason}", path.display())]
    CorruptStore { path: PathBuf, reason: String },
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> ImageError {
    let path = path.into();
    move |source| {
        if source.raw_os_error() == Some(28) {
            ImageError::DiskFull { path }
        } else {
            ImageError::Io { path, source }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pull_policies() {
        assert_eq!(PullPolicy::parse("always").unwrap(), PullPolicy::Always);
        assert_eq!(
            PullPolicy::parse("if_not_present").unwrap(),
            PullPolicy::Missing
        );
        assert_eq!(PullPolicy::parse("daily").unwrap(), PullPolicy::DAILY);
        assert_eq!(
            PullPolicy::parse("every_12h").unwrap(),
            PullPolicy::Every(Duration::from_secs(12 * 3600))
        );
        assert_eq!(
            PullPolicy::parse("every_1h30m").unwrap(),
            PullPolicy::Every(Duration::from_secs(5400))
        );
        assert!(PullPolicy::parse("every_").is_err());
        assert!(PullPolicy::parse("sometimes").is_err());
    }

    #[test]
    fn parses_platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.architecture, "arm64");
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().architecture,
            "amd64"
        );
        assert!(Platform::parse("linux").is_err());
        assert_eq!(Platform::host().os, "linux");
    }
}
