//! Registry credentials from the Docker CLI's `config.json` (`$DOCKER_CONFIG/config.json`,
//! else `~/.docker/config.json`): `auths` entries, then `credHelpers` for the host, then
//! `credsStore` — each helper is the `docker-credential-<name> get` protocol.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;
use tracing::debug;

use super::{ImageError, Result};

#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ****)", self.username)
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperOutput {
    username: String,
    secret: String,
}

/// The folder holding `config.json`.
pub(crate) fn default_config_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(d));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker"))
}

/// The keys a registry may be filed under in `auths` (Docker Hub has historical ones).
fn keys_for(registry: &str) -> Vec<String> {
    if registry == "docker.io" {
        vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
            "registry-1.docker.io".into(),
        ]
    } else {
        vec![registry.to_string()]
    }
}

/// `https://host:5000/v1/` → `host:5000`.
fn normalize_key(k: &str) -> &str {
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    k.split('/').next().unwrap_or(k)
}

/// Credentials for `registry` (as in a reference: `docker.io`, `localhost:5000`), if any.
pub(crate) fn lookup(config_dir: Option<&Path>, registry: &str) -> Result<Option<Credentials>> {
    let Some(dir) = config_dir
        .map(Path::to_path_buf)
        .or_else(default_config_dir)
    else {
        return Ok(None);
    };
    let path = dir.join("config.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(_) => return Ok(None),
    };
    let cred_err = |reason: String| ImageError::Credentials {
        registry: registry.to_string(),
        reason,
    };
    let cfg: ConfigFile =
        serde_json::from_slice(&bytes).map_err(|e| cred_err(format!("{}: {e}", path.display())))?;
    let keys = keys_for(registry);
    let wanted: Vec<&str> = keys.iter().map(|k| normalize_key(k)).collect();
    for (k, entry) in &cfg.auths {
        if !wanted.contains(&normalize_key(k)) {
            continue;
        }
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|e| cred_err(format!("auths.\"{k}\".auth is not base64: {e}")))?;
            let s = String::from_utf8(decoded)
                .map_err(|_| cred_err(format!("auths.\"{k}\".auth is not UTF-8")))?;
            let (u, p) = s
                .split_once(':')
                .ok_or_else(|| cred_err(format!("auths.\"{k}\".auth is not user:password")))?;
            return Ok(Some(Credentials {
                username: u.into(),
                password: p.into(),
            }));
        }
        if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
            return Ok(Some(Credentials {
                username: u.clone(),
                password: p.clone(),
            }));
        }
    }
    let helper = cfg
        .cred_helpers
        .iter()
        .find(|(k, _)| wanted.contains(&normalize_key(k)))
        .map(|(_, v)| v.clone())
        .or(cfg.creds_store.clone());
    match helper {
        Some(h) if !h.is_empty() => run_helper(&h, &keys[0], registry),
        _ => Ok(None),
    }
}

fn run_helper(helper: &str, server: &str, registry: &str) -> Result<Option<Credentials>> {
    let program = format!("docker-credential-{helper}");
    debug!(%program, %server, "asking credential helper");
    let cred_err = |reason: String| ImageError::Credentials {
        registry: registry.to_string(),
        reason,
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| cred_err(format!("running {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| cred_err(format!("running {program}: {e}")))?;
    if !out.status.success() {
        // "credentials not found in native keychain" is not an error: go anonymous.
        let msg = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if msg.to_lowercase().contains("not found") {
            return Ok(None);
        }
        return Err(cred_err(format!("{program} failed: {}", msg.trim())));
    }
    let o: HelperOutput = serde_json::from_slice(&out.stdout)
        .map_err(|e| cred_err(format!("{program} printed invalid JSON: {e}")))?;
    Ok(Some(Credentials {
        username: o.username,
        password: o.secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auths() {
        let dir = tempfile::tempdir().unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            dir.path().join("config.json"),
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},
                "localhost:5000":{{"username":"bob","password":"pw"}}}}}}"#
            ),
        )
        .unwrap();
        let c = lookup(Some(dir.path()), "docker.io").unwrap().unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "s3cret")
        );
        let c = lookup(Some(dir.path()), "localhost:5000").unwrap().unwrap();
        assert_eq!(c.username, "bob");
        assert!(lookup(Some(dir.path()), "ghcr.io").unwrap().is_none());
    }

    #[test]
    fn runs_credential_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-fake");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread host\necho \"{\\\"Username\\\":\\\"u-$host\\\",\\\"Secret\\\":\\\"p\\\"}\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"credHelpers":{"ghcr.io":"fake"}}"#,
        )
        .unwrap();
        // PATH is per process under nextest.
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap()
        );
        std::env::set_var("PATH", path);
        let c = lookup(Some(dir.path()), "ghcr.io").unwrap().unwrap();
        assert_eq!(c.username, "u-ghcr.io");
        assert!(lookup(Some(dir.path()), "quay.io").unwrap().is_none());
    }
}
