//! Names, as Docker Compose spells them: the project name, containers
//! `<project>-<service>-<n>`, one-off containers `<project>-<service>-run-<id>`, networks and
//! volumes `<project>_<name>`; plus the short hash of the state root that every kernel-visible
//! name carries so that two roots on one machine never collide.

use std::path::Path;

use sha2::{Digest, Sha256};

/// Normalize a project name as Docker Compose does: lowercase, keep `[a-z0-9_-]`, and the
/// first character must be a letter or a digit.
pub fn normalize_project_name(raw: &str) -> String {
    let lowered: String = raw
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    lowered.trim_start_matches(['_', '-']).to_string()
}

/// True when `name` is already a valid project name.
pub fn is_valid_project_name(name: &str) -> bool {
    !name.is_empty() && normalize_project_name(name) == name
}

/// `<project>-<service>-<n>`.
pub fn container_name(project: &str, service: &str, number: u32) -> String {
    format!("{project}-{service}-{number}")
}

/// `<project>-<service>-run-<id>` for one-off containers of `rcompose run`.
/// The image of a service without `image:` (what `build:` produces): `<project>-<service>`.
pub fn scoped_image(project: &str, service: &str) -> String {
    format!("{project}-{service}")
}

pub fn oneoff_name(project: &str, service: &str, id: &str) -> String {
    format!("{project}-{service}-run-{id}")
}

/// `<project>_<name>` for networks and volumes (unless they set `name:` themselves).
pub fn scoped_name(project: &str, name: &str) -> String {
    format!("{project}_{name}")
}

/// Parse `<project>-<service>-<n>` back into its service and number.
pub fn parse_container_name<'a>(project: &str, name: &'a str) -> Option<(&'a str, u32)> {
    let rest = name.strip_prefix(project)?.strip_prefix('-')?;
    let (service, number) = rest.rsplit_once('-')?;
    Some((service, number.parse().ok()?))
}

/// Eight hex digits of the SHA-256 of the state root path; part of every kernel-visible name
/// (cgroups, bridges, nft tables) so tests with different roots can run side by side.
pub fn root_hash(root: &Path) -> String {
    let digest = Sha256::digest(root.as_os_str().as_encoded_bytes());
    hex::encode(&digest[..4])
}

/// A short random id for one-off containers (12 hex digits, like Docker's short ids).
pub fn short_id() -> String {
    let mut hasher = Sha256::new();
    hasher.update(std::process::id().to_le_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.update(now.as_nanos().to_le_bytes());
    hex::encode(&hasher.finalize()[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_are_normalized_like_docker_compose() {
        assert_eq!(normalize_project_name("My App.v2"), "myappv2");
        assert_eq!(normalize_project_name("_x-Y_z"), "x-y_z");
        assert!(is_valid_project_name("demo_1"));
        assert!(!is_valid_project_name("Demo"));
        assert!(!is_valid_project_name(""));
    }

    #[test]
    fn container_names_round_trip() {
        let n = container_name("demo", "web-front", 3);
        assert_eq!(n, "demo-web-front-3");
        assert_eq!(parse_container_name("demo", &n), Some(("web-front", 3)));
        assert_eq!(parse_container_name("demo", "other-web-1"), None);
        assert_eq!(oneoff_name("p", "s", "abc"), "p-s-run-abc");
        assert_eq!(scoped_name("p", "default"), "p_default");
    }

    #[test]
    fn root_hash_differs_per_root() {
        let a = root_hash(Path::new("/var/lib/rcompose"));
        let b = root_hash(Path::new("/tmp/x"));
        assert_eq!(a.len(), 8);
        assert_ne!(a, b);
    }
}
