//! Builds for services with `build:`: compose's build keys → `runtime::build::BuildOptions`,
//! and Docker Compose's rule for when `up`/`run` build (forced with `--build`, `pull_policy:
//! build`, or the service's image not in the store). Runs before the project's containers are
//! planned, in the calling process (builds need no supervisor); the image is named as the
//! service's `image:` or `<project>-<service>`, plus `build.tags`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use runtime::build::{BuildError, BuildEvent, BuildNetwork, BuildOptions, Built};
use runtime::image::{ImageError, Store};

use super::model::DesiredProject;
use super::spec::image_ref;

/// Per-invocation overrides (`rcompose build` / `up --build` flags).
#[derive(Debug, Clone, Default)]
pub struct BuildOverrides {
    pub no_cache: bool,
    pub pull: bool,
    /// `--build-arg KEY=VALUE` (over the compose file's `args:`).
    pub args: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceBuildError {
    #[error("service {service}: has no build section")]
    NoBuild { service: String },
    #[error("service {service}: build.{key}: {reason}")]
    Unsupported {
        service: String,
        key: &'static str,
        reason: String,
    },
    #[error("service {service}: {source}")]
    Build {
        service: String,
        #[source]
        source: Box<BuildError>,
    },
    #[error("service {service}: {source}")]
    Image {
        service: String,
        #[source]
        source: Box<ImageError>,
    },
    #[error("build runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// The services of `selected` (all when empty) that have `build:` and must be built now:
/// every one with `force`, else those with `pull_policy: build` or whose image is absent.
pub fn needing_build(
    store: &Store,
    project: &compose::Project,
    selected: &[String],
    force: bool,
) -> Result<Vec<String>, ServiceBuildError> {
    let mut out = Vec::new();
    for (name, svc) in &project.services {
        if svc.build.is_none() || (!selected.is_empty() && !selected.contains(name)) {
            continue;
        }
        let build = force
            || svc.pull_policy.as_deref() == Some("build")
            || store
                .get(&image_ref(project, svc))
                .map_err(|e| ServiceBuildError::Image {
                    service: name.clone(),
                    source: Box::new(e),
                })?
                .is_none();
        if build {
            out.push(name.clone());
        }
    }
    Ok(out)
}

/// The builder's options for a service.
pub fn options(
    project: &compose::Project,
    service: &str,
    overrides: &BuildOverrides,
) -> Result<BuildOptions, ServiceBuildError> {
    let svc = project
        .services
        .get(service)
        .ok_or_else(|| ServiceBuildError::NoBuild {
            service: service.to_string(),
        })?;
    let b = svc
        .build
        .as_ref()
        .ok_or_else(|| ServiceBuildError::NoBuild {
            service: service.to_string(),
        })?;
    let unsupported = |key, reason: &str| ServiceBuildError::Unsupported {
        service: service.to_string(),
        key,
        reason: reason.to_string(),
    };
    if b.secrets.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(unsupported(
            "secrets",
            "build secrets need RUN --mount, which rcompose does not support",
        ));
    }
    if b.ssh.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(unsupported(
            "ssh",
            "ssh forwarding needs RUN --mount, which rcompose does not support",
        ));
    }
    let context = PathBuf::from(b.context.clone().unwrap_or_else(|| ".".into()));
    if b.context.as_deref().is_some_and(|c| c.contains("://")) {
        return Err(unsupported(
            "context",
            "remote contexts (git or http URLs) are not supported: clone it and give a folder",
        ));
    }
    let network = match b.network.as_deref() {
        None => BuildNetwork::Host,
        Some(n) => BuildNetwork::parse(n)
            .ok_or_else(|| unsupported("network", "expected default, host or none"))?,
    };
    let mut args = BTreeMap::new();
    for (k, v) in b.args.iter().flatten() {
        // `args: [FOO]` takes FOO from the environment, and is left out when unset.
        if let Some(v) = v.clone().or_else(|| std::env::var(k).ok()) {
            args.insert(k.clone(), v);
        }
    }
    args.extend(overrides.args.clone());
    let mut tags = vec![image_ref(project, svc)];
    tags.extend(b.tags.iter().flatten().cloned());
    Ok(BuildOptions {
        context,
        dockerfile: b.dockerfile.clone().map(PathBuf::from),
        dockerfile_inline: b.dockerfile_inline.clone(),
        target: b.target.clone(),
        args,
        labels: b
            .labels
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        tags,
        no_cache: overrides.no_cache || b.no_cache.unwrap_or(false),
        pull: overrides.pull || b.pull.unwrap_or(false),
        network,
    })
}

/// Build one service's image into the store under `root`. Blocking.
pub fn build_service(
    root: &Path,
    project: &compose::Project,
    service: &str,
    overrides: &BuildOverrides,
    progress: &(dyn Fn(BuildEvent) + Sync),
) -> Result<Built, ServiceBuildError> {
    let opts = options(project, service, overrides)?;
    let store = Store::open(root).map_err(|e| ServiceBuildError::Image {
        service: service.to_string(),
        source: Box::new(e),
    })?;
    let rt = runtime::container::Runtime::new(root).map_err(ServiceBuildError::Runtime)?;
    runtime::build::build(&store, &rt, &opts, progress).map_err(|e| ServiceBuildError::Build {
        service: service.to_string(),
        source: Box::new(e),
    })
}

/// A rebuilt image must recreate its service's containers, as Docker Compose does: for
/// services with `build:`, the image ID present in the store is folded into the desired
/// configuration hash (which the reconciler compares with the containers').
pub fn fold_image_ids(project: &compose::Project, desired: &mut DesiredProject, store: &Store) {
    use sha2::{Digest as _, Sha256};
    for (name, svc) in &project.services {
        if svc.build.is_none() {
            continue;
        }
        let (Some(d), Ok(Some(img))) = (
            desired.services.get_mut(name),
            store.get(&image_ref(project, svc)),
        ) else {
            continue;
        };
        let mut h = Sha256::new();
        h.update(d.config_hash.as_bytes());
        h.update(img.id.as_str().as_bytes());
        d.config_hash = hex::encode(h.finalize());
    }
}
