//! The loader's error type. Every variant that comes from a file renders as
//! `FILE:LINE:COL: KEY.PATH: what was found: what was expected`.

use std::path::PathBuf;

use crate::yaml::Span;

/// Why a project did not load.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Yaml(#[from] crate::yaml::YamlError),
    #[error(transparent)]
    Schema(#[from] crate::validate::SchemaError),
    #[error(transparent)]
    Interpolate(#[from] Box<crate::interpolate::TreeError>),
    #[error(transparent)]
    Dotenv(#[from] crate::dotenv::DotenvError),
    #[error(transparent)]
    Type(#[from] crate::de::DeError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no configuration file provided: not found (looked for compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml in {} and its parents)", dir.display())]
    NoFile { dir: PathBuf },
    #[error("{}: the file is empty", path.display())]
    Empty { path: PathBuf },
    /// A malformed value (port, volume, name, …).
    #[error("{span}: {path}: {msg}")]
    Invalid {
        span: Span,
        path: String,
        msg: String,
    },
    /// A reference to something undefined (service, network, volume, secret, config).
    #[error("{span}: {path}: {msg}")]
    Reference {
        span: Span,
        path: String,
        msg: String,
    },
    /// Attributes that exclude each other.
    #[error("{span}: {path}: {msg}")]
    Conflict {
        span: Span,
        path: String,
        msg: String,
    },
    /// A cycle in depends_on, extends or include, named in order.
    #[error("{span}: {path}: {what} cycle: {cycle}")]
    Cycle {
        span: Span,
        path: String,
        what: &'static str,
        cycle: String,
    },
    #[error("invalid project name {name:?}: expected lowercase letters, digits, dashes and underscores, starting with a letter or digit")]
    ProjectName { name: String },
    #[error("no such service: {name}")]
    NoSuchService { name: String },
}
