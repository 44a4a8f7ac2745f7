//! The image builder: a Dockerfile and a build context → an OCI image in the store, with our
//! own container runtime (no Docker, no BuildKit). Called by `rcompose build` and by `up`
//! for services with `build:`.
//!
//! Data flow: `parser` (Dockerfile → stages of raw instructions) → plan (the target stage and
//! the stages it needs, through `FROM <stage>` and `COPY --from`) → `executor` (each stage in
//! order: metadata instructions change the config; RUN runs in a container of our runtime on
//! an overlay of the stage's layers and its upper dir becomes a layer (`layer`); COPY/ADD write
//! a layer from the context (`context`, `ignore`) or another stage) → the store (layers ingested
//! as they are made, the config with history and diff_ids, the name recorded last).
//!
//! Cache (`cache`): every step has a key chained from its parent's key, the instruction with
//! its variables substituted, and for COPY/ADD a hash of the files' content; a step whose key
//! has a layer in the store is not run again.
//!
//! Network of RUN: the host's network (as Docker's default builder), with the host's
//! `/etc/resolv.conf` and `/etc/hosts`; `BuildNetwork::None` gives a loopback-only namespace.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use crate::image::{Digest, Image, ImageError};

mod cache;
pub mod context;
mod executor;
pub mod ignore;
pub mod layer;
pub mod parser;
pub mod words;

pub use executor::build;

/// What to build and how (compose's `build:` keys and `rcompose build` flags).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The build context folder.
    pub context: PathBuf,
    /// The Dockerfile, relative to the context (default `Dockerfile`) or absolute.
    pub dockerfile: Option<PathBuf>,
    /// The Dockerfile's text (compose `dockerfile_inline`), instead of a file.
    pub dockerfile_inline: Option<String>,
    /// The stage to build (default: the last one).
    pub target: Option<String>,
    /// Build arguments (`args:`, `--build-arg`).
    pub args: BTreeMap<String, String>,
    /// Labels added to the image config (`labels:`).
    pub labels: BTreeMap<String, String>,
    /// Names for the result: the first is the image's name, the others extra tags.
    pub tags: Vec<String>,
    /// Run every step again (`no_cache:`, `--no-cache`).
    pub no_cache: bool,
    /// Pull base images even when present (`pull:`, `--pull`).
    pub pull: bool,
    pub network: BuildNetwork,
    /// Named contexts (compose `additional_contexts`): a name `FROM` or `COPY --from` uses
    /// that means an image or a folder rather than a stage.
    pub contexts: BTreeMap<String, NamedContext>,
}

/// What a named build context stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// An image reference (`docker-image://ref`, or `service:name` resolved to its image).
    Image(String),
    /// A local folder.
    Dir(PathBuf),
}

/// The network RUN steps see.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BuildNetwork {
    /// The host's network (Docker's default for builds).
    #[default]
    Host,
    /// Loopback only (`network: none`).
    None,
}

impl BuildNetwork {
    /// compose `build.network` / `RUN --network`: `default`, `host` or `none`.
    pub fn parse(s: &str) -> Option<BuildNetwork> {
        match s {
            "default" | "host" => Some(BuildNetwork::Host),
            "none" => Some(BuildNetwork::None),
            _ => None,
        }
    }
}

/// Progress of a build, for the CLI's renderers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    /// A step starts (`step` counts from 1 over the stages built); `cached` when its result
    /// comes from the cache.
    Step {
        stage: String,
        step: usize,
        total: usize,
        instruction: String,
        cached: bool,
    },
    /// A line a RUN step printed.
    Output { line: String },
    /// The image is in the store under its names.
    Done {
        reference: String,
        id: Digest,
        steps: usize,
        cached: usize,
    },
}

/// The result of a build.
#[derive(Debug, Clone)]
pub struct Built {
    pub image: Image,
    /// Steps of the stages built, and how many of them came from the cache.
    pub steps: usize,
    pub cached: usize,
}

/// Build errors. Those about an instruction name the Dockerfile, the line and the instruction.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{file}:{line}: {instruction}: {message}")]
    Parse {
        file: String,
        line: usize,
        instruction: String,
        message: String,
    },
    #[error("{file}:{line}: {instruction}: {message}")]
    Step {
        file: String,
        line: usize,
        instruction: String,
        message: String,
    },
    #[error("{file}:{line}: {instruction}: the command exited with code {code}{output}")]
    RunFailed {
        file: String,
        line: usize,
        instruction: String,
        code: i32,
        /// The last lines it printed, indented, for the message.
        output: String,
    },
    #[error("{file}:{line}: FROM {image}: {source}")]
    Base {
        file: String,
        line: usize,
        image: String,
        #[source]
        source: Box<ImageError>,
    },
    #[error("build target {target:?} not found in {file}: its stages are {available}")]
    Target {
        target: String,
        file: String,
        available: String,
    },
    #[error("build context {}: {source}", path.display())]
    Context {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("build: no image name given (set `image:` or tag the build)")]
    NoName,
    #[error(transparent)]
    Image(Box<ImageError>),
}

impl From<ImageError> for BuildError {
    fn from(e: ImageError) -> Self {
        BuildError::Image(Box::new(e))
    }
}
