//! A blocking client for the OCI distribution protocol (`/v2/`): manifests and blobs, with
//! anonymous access, bearer tokens obtained from the `WWW-Authenticate` challenge (Docker Hub,
//! GHCR) and basic auth. Plain http is used for loopback registries and the ones the user
//! lists as insecure, as Docker does: https is tried first (without certificate checks for
//! those hosts), http when the TLS connection fails.

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use tracing::debug;

use super::auth::{self, Credentials};
use super::{Digest, ImageError, Reference, Result};

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Registries (`host[:port]`) reachable over plain http or with unchecked TLS, besides
    /// loopback ones.
    pub insecure: Vec<String>,
    /// Folder of the Docker CLI `config.json` (default `$DOCKER_CONFIG`, `~/.docker`).
    pub docker_config: Option<PathBuf>,
    /// Layers downloaded at once (default 4).
    pub max_parallel: Option<usize>,
}

impl RegistryOptions {
    /// `RCOMPOSE_INSECURE_REGISTRIES` (comma-separated) and `DOCKER_CONFIG`.
    pub fn from_env() -> RegistryOptions {
        RegistryOptions {
            insecure: std::env::var("RCOMPOSE_INSECURE_REGISTRIES")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            docker_config: None,
            max_parallel: None,
        }
    }
}

#[derive(Default)]
struct HostState {
    base: Option<String>,
    /// Authorization header value per repository scope.
    auth: HashMap<String, String>,
}

pub(crate) struct Client {
    options: RegistryOptions,
    agent: ureq::Agent,
    insecure_agent: ureq::Agent,
    hosts: Mutex<HashMap<String, HostState>>,
}

pub(crate) type Response = ureq::http::Response<ureq::Body>;

/// Registry hosts that may be spoken to over plain http.
pub(crate) fn is_insecure(host: &str, listed: &[String]) -> bool {
    if listed.iter().any(|h| h == host) {
        return true;
    }
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    if h == "localhost" {
        return true;
    }
    h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn agent(insecure: bool) -> ureq::Agent {
    let mut tls = ureq::tls::TlsConfig::builder();
    if insecure {
        tls = tls.disable_verification(true);
    }
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .user_agent(concat!("rcompose/", env!("CARGO_PKG_VERSION")))
        .max_idle_connections_per_host(8)
        .tls_config(tls.build())
        .build();
    ureq::Agent::new_with_config(config)
}

/// Builds and sends one request, given the agent and the `Authorization` value.
type MakeRequest<'a> =
    &'a dyn Fn(&ureq::Agent, Option<&str>) -> std::result::Result<Response, ureq::Error>;

impl Client {
    pub(crate) fn new(options: RegistryOptions) -> Client {
        Client {
            options,
            agent: agent(false),
            insecure_agent: agent(true),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn max_parallel(&self) -> usize {
        self.options.max_parallel.unwrap_or(4).max(1)
    }

    fn agent_for(&self, host: &str) -> &ureq::Agent {
        if is_insecure(host, &self.options.insecure) {
            &self.insecure_agent
        } else {
            &self.agent
        }
    }

    fn unreachable(host: &str, e: ureq::Error) -> ImageError {
        ImageError::Unreachable {
            registry: host.to_string(),
            source: Box::new(e),
        }
    }

    /// `scheme://host` for a registry host, probing https then http for insecure ones.
    fn base(&self, host: &str) -> Result<String> {
        if let Some(b) = self
            .hosts
            .lock()
            .expect("hosts")
            .get(host)
            .and_then(|s| s.base.clone())
        {
            return Ok(b);
        }
        let base = if is_insecure(host, &self.options.insecure) {
            let https = format!("https://{host}");
            match self.insecure_agent.get(format!("{https}/v2/")).call() {
                Ok(_) => https,
                Err(e) => {
                    debug!(%host, error = %e, "https failed, using plain http");
                    format!("http://{host}")
                }
            }
        } else {
            format!("https://{host}")
        };
        self.hosts
            .lock()
            .expect("hosts")
            .entry(host.to_string())
            .or_default()
            .base = Some(base.clone());
        Ok(base)
    }

    /// GET `/v2/<repo>/<path>`, answering an auth challenge once.
    fn get(&self, r: &Reference, path: &str, accept: Option<&str>) -> Result<Response> {
        let base = self.base(r.api_host())?;
        let url = format!("{base}/v2/{}/{path}", r.repository);
        let scope = format!("repository:{}:pull", r.repository);
        self.send_authorized(r, &scope, &|agent, auth| {
            let mut req = agent.get(&url);
            if let Some(a) = accept {
                req = req.header("Accept", a);
            }
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            req.call()
        })
    }

    /// Send a request built by `mk` (given the `Authorization` value, if any), answering one
    /// auth challenge for `scope`.
    fn send_authorized(&self, r: &Reference, scope: &str, mk: MakeRequest<'_>) -> Result<Response> {
        let host = r.api_host().to_string();
        let agent = self.agent_for(&host);
        let cached = self
            .hosts
            .lock()
            .expect("hosts")
            .get(&host)
            .and_then(|s| s.auth.get(scope).cloned());
        let resp = mk(agent, cached.as_deref()).map_err(|e| Self::unreachable(&r.registry, e))?;
        if resp.status().as_u16() != 401 {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let auth = self.answer_challenge(r, &challenge, scope)?;
        self.hosts
            .lock()
            .expect("hosts")
            .entry(host)
            .or_default()
            .auth
            .insert(scope.to_string(), auth.clone());
        let resp = mk(agent, Some(&auth)).map_err(|e| Self::unreachable(&r.registry, e))?;
        if resp.status().as_u16() == 401 {
            return Err(ImageError::Unauthorized {
                reference: r.familiar(),
                registry: r.registry.clone(),
            });
        }
        Ok(resp)
    }

    fn credentials(&self, r: &Reference) -> Result<Option<Credentials>> {
        auth::lookup(self.options.docker_config.as_deref(), &r.registry)
    }

    /// Turn a `WWW-Authenticate` challenge into an `Authorization` header value.
    fn answer_challenge(&self, r: &Reference, challenge: &str, scope: &str) -> Result<String> {
        let unauthorized = || ImageError::Unauthorized {
            reference: r.familiar(),
            registry: r.registry.clone(),
        };
        let creds = self.credentials(r)?;
        let (scheme, params) = parse_challenge(challenge);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let c = creds.ok_or_else(unauthorized)?;
                Ok(basic(&c))
            }
            "bearer" => {
                let realm = params
                    .get("realm")
                    .ok_or_else(|| ImageError::RegistryProtocol {
                        registry: r.registry.clone(),
                        reason: format!("bearer challenge without realm: {challenge}"),
                    })?;
                let mut url = realm.clone();
                let mut sep = if url.contains('?') { '&' } else { '?' };
                if let Some(service) = params.get("service") {
                    url.push_str(&format!("{sep}service={}", urlencode(service)));
                    sep = '&';
                }
                let scope = params.get("scope").map(String::as_str).unwrap_or(scope);
                url.push_str(&format!("{sep}scope={}", urlencode(scope)));
                debug!(%url, "requesting bearer token");
                let token_host = realm
                    .split("://")
                    .nth(1)
                    .and_then(|s| s.split('/').next())
                    .unwrap_or("");
                let mut req = self.agent_for(token_host).get(&url);
                if let Some(c) = &creds {
                    req = req.header("Authorization", basic(c));
                }
                let mut resp = req.call().map_err(|e| Self::unreachable(&r.registry, e))?;
                match resp.status().as_u16() {
                    200 => {}
                    401 | 403 => return Err(unauthorized()),
                    s => {
                        return Err(ImageError::RegistryStatus {
                            registry: r.registry.clone(),
                            url,
                            status: s,
                        })
                    }
                }
                let bytes = resp
                    .body_mut()
                    .with_config()
                    .limit(1 << 20)
                    .read_to_vec()
                    .map_err(|e| Self::unreachable(&r.registry, e))?;
                let body: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|e| ImageError::RegistryProtocol {
                        registry: r.registry.clone(),
                        reason: format!("token response: {e}"),
                    })?;
                let token = body
                    .get("token")
                    .or_else(|| body.get("access_token"))
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| ImageError::RegistryProtocol {
                        registry: r.registry.clone(),
                        reason: "token response has no token".into(),
                    })?;
                Ok(format!("Bearer {token}"))
            }
            _ => Err(unauthorized()),
        }
    }

    /// Fetch a manifest by tag or digest: body and content type. At most 4 MiB, as
    /// containerd allows.
    pub(crate) fn manifest(
        &self,
        r: &Reference,
        reference: &str,
    ) -> Result<(Vec<u8>, Option<String>)> {
        let mut resp = self.get(
            r,
            &format!("manifests/{reference}"),
            Some(super::manifest::ACCEPT_MANIFESTS),
        )?;
        match resp.status().as_u16() {
            200 => {}
            404 => {
                return Err(ImageError::ManifestUnknown {
                    reference: r.familiar(),
                    registry: r.registry.clone(),
                })
            }
            s => {
                return Err(ImageError::RegistryStatus {
                    registry: r.registry.clone(),
                    url: format!("/v2/{}/manifests/{reference}", r.repository),
                    status: s,
                })
            }
        }
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let body = resp
            .body_mut()
            .with_config()
            .limit(4 << 20)
            .read_to_vec()
            .map_err(|e| Self::unreachable(&r.registry, e))?;
        Ok((body, ct))
    }

    /// Open a blob for streaming (the caller verifies its digest as it reads).
    pub(crate) fn blob(
        &self,
        r: &Reference,
        digest: &Digest,
    ) -> Result<impl Read + Send + 'static> {
        let resp = self.get(r, &format!("blobs/{digest}"), None)?;
        match resp.status().as_u16() {
            200 => Ok(resp.into_body().into_with_config().limit(u64::MAX).reader()),
            404 => Err(ImageError::BlobUnknown {
                reference: r.familiar(),
                registry: r.registry.clone(),
                digest: digest.clone(),
            }),
            s => Err(ImageError::RegistryStatus {
                registry: r.registry.clone(),
                url: format!("/v2/{}/blobs/{digest}", r.repository),
                status: s,
            }),
        }
    }
}

fn basic(c: &Credentials) -> String {
    let raw = format!("{}:{}", c.username, c.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `Bearer realm="x",service="y",scope="a:b:pull,push"` → ("Bearer", {realm, service, scope}).
pub(crate) fn parse_challenge(h: &str) -> (String, HashMap<String, String>) {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n)
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value);
    }
    (scheme.to_string(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(s, "Basic");
        assert_eq!(p["realm"], "Registry Realm");
    }

    #[test]
    fn knows_insecure_hosts() {
        assert!(is_insecure("localhost:5000", &[]));
        assert!(is_insecure("127.0.0.1:5000", &[]));
        assert!(is_insecure("127.9.9.9", &[]));
        assert!(is_insecure("[::1]:5000", &[]));
        assert!(!is_insecure("ghcr.io", &[]));
        assert!(!is_insecure("10.0.0.1:5000", &[]));
        assert!(is_insecure("reg.lan:5000", &["reg.lan:5000".to_string()]));
    }
}

// Push lives in a child module so it shares the client's auth cache and challenge answers.
#[path = "push.rs"]
pub(crate) mod push;
