//! Builds for services with `build:`: compose's build keys → `runtime::build::BuildOptions`,
//! and Docker Compose's rule for when `up`/`run` build (forced with `--build`, `pull_policy:
//! build`, or the service's image not in the store). Runs before the project's containers are
//! planned, in the calling process (builds need no supervisor); the image is named as the
//! service's `image:` or `<project>-<service>`, plus `build.tags`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use runtime::build::{BuildError, BuildEvent, BuildNetwork, BuildOptions, Built, NamedContext};
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
    // A named network cannot be joined by a build here: RUN gets the host's network.
    let network = match b.network.as_deref() {
        Some("none") => BuildNetwork::None,
        Some(other) => {
            if BuildNetwork::parse(other).is_none() {
                tracing::warn!(
                    service,
                    network = other,
                    "build.network: builds use the host's network"
                );
            }
            BuildNetwork::Host
        }
        None => BuildNetwork::Host,
    };
    let mut args = BTreeMap::new();
    for (k, v) in b.args.iter().flatten() {
        // `args: [FOO]` takes FOO from the environment, and is left out when unset.
        if let Some(v) = v.clone().or_else(|| std::env::var(k).ok()) {
            args.insert(k.clone(), v);
        }
    }
    args.extend(overrides.args.clone());
    let mut contexts = BTreeMap::new();
    for (name, value) in b.additional_contexts.iter().flatten() {
        let ctx = if let Some(other) = value.strip_prefix("service:") {
            let o = project.services.get(other).ok_or_else(|| {
                unsupported(
                    "additional_contexts",
                    &format!("{name}: no service {other:?} in the project"),
                )
            })?;
            NamedContext::Image(image_ref(project, o))
        } else if let Some(r) = value.strip_prefix("docker-image://") {
            NamedContext::Image(r.to_string())
        } else if value.contains("://") {
            return Err(unsupported(
                "additional_contexts",
                &format!("{name}: {value}: only folders, service:<name> and docker-image:// are supported"),
            ));
        } else {
            NamedContext::Dir(PathBuf::from(value))
        };
        contexts.insert(name.clone(), ctx);
    }
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
        contexts,
    })
}

/// Services a build uses the image of (`additional_contexts: {x: "service:other"}`).
pub fn build_deps(svc: &compose::Service) -> Vec<String> {
    svc.build
        .iter()
        .flat_map(|b| b.additional_contexts.iter().flatten())
        .filter_map(|(_, v)| v.strip_prefix("service:").map(String::from))
        .collect()
}

/// `services` ordered so that a service whose build uses another's image comes after it
/// (those it uses are added when they have `build:`).
pub fn build_order(project: &compose::Project, services: &[String]) -> Vec<String> {
    fn visit(project: &compose::Project, s: &str, out: &mut Vec<String>, seen: &mut Vec<String>) {
        if seen.iter().any(|x| x == s) {
            return;
        }
        seen.push(s.to_string());
        let Some(svc) = project.services.get(s) else {
            return;
        };
        for d in build_deps(svc) {
            if project.services.get(&d).is_some_and(|o| o.build.is_some()) {
                visit(project, &d, out, seen);
            }
        }
        out.push(s.to_string());
    }
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for s in services {
        visit(project, s, &mut out, &mut seen);
    }
    out
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

/// Desired state of services with `build:`. A rebuilt image must recreate the service's
/// containers, as Docker Compose does: the image ID present in the store is folded into the
/// desired configuration hash (which the reconciler compares with the containers'). And a
/// locally built image, or the image of a build-only service, is never pulled: its pull
/// policy becomes `build` (an absent one is then an error that says it must be built).
pub fn fold_image_ids(project: &compose::Project, desired: &mut DesiredProject, store: &Store) {
    use sha2::{Digest as _, Sha256};
    for (name, svc) in &project.services {
        if svc.build.is_none() {
            continue;
        }
        let Some(d) = desired.services.get_mut(name) else {
            continue;
        };
        let present = store.get(&image_ref(project, svc)).ok().flatten();
        if svc.image.is_none() || present.is_some() {
            d.pull_policy = "build".into();
        }
        let Some(img) = present else {
            continue;
        };
        let mut h = Sha256::new();
        h.update(d.config_hash.as_bytes());
        h.update(img.id.as_str().as_bytes());
        d.config_hash = hex::encode(h.finalize());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> (tempfile::TempDir, compose::Project) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("app")).unwrap();
        std::fs::write(t.path().join("compose.yaml"), yaml).unwrap();
        let p = compose::load(&compose::LoadOptions {
            files: vec![t.path().join("compose.yaml")],
            cwd: t.path().to_path_buf(),
            project_name: Some("demo".into()),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        (t, p)
    }

    #[test]
    fn compose_build_keys_become_builder_options() {
        let (t, p) = load(
            "services:\n  web:\n    image: example/web:1\n    build:\n      context: ./app\n      dockerfile: Dockerfile.dev\n      target: prod\n      args:\n        A: one\n        B: two\n      labels:\n        l: v\n      tags: [\"example/web:extra\"]\n      no_cache: true\n      network: none\n      additional_contexts:\n        base: service:base\n        assets: ./app\n        img: docker-image://busybox:1\n  base:\n    build: .\n",
        );
        let overrides = BuildOverrides {
            args: [("B".to_string(), "cli".to_string())].into(),
            ..Default::default()
        };
        let o = options(&p, "web", &overrides).unwrap();
        assert_eq!(o.context, t.path().join("app"));
        assert_eq!(o.dockerfile, Some(PathBuf::from("Dockerfile.dev")));
        assert_eq!(o.target.as_deref(), Some("prod"));
        assert_eq!(o.args.get("A").map(String::as_str), Some("one"));
        assert_eq!(o.args.get("B").map(String::as_str), Some("cli"));
        assert_eq!(o.labels.get("l").map(String::as_str), Some("v"));
        assert_eq!(o.tags, vec!["example/web:1", "example/web:extra"]);
        assert!(o.no_cache);
        assert_eq!(o.network, BuildNetwork::None);
        assert_eq!(
            o.contexts.get("base"),
            Some(&NamedContext::Image("demo-base".into()))
        );
        assert_eq!(
            o.contexts.get("img"),
            Some(&NamedContext::Image("busybox:1".into()))
        );
        assert_eq!(
            o.contexts.get("assets"),
            Some(&NamedContext::Dir(t.path().join("app")))
        );
        // `base` is built before `web`, whose build uses its image.
        assert_eq!(build_order(&p, &["web".into()]), vec!["base", "web"]);
        assert!(matches!(
            options(&p, "nope", &overrides),
            Err(ServiceBuildError::NoBuild { .. })
        ));
    }
}
