//! A real registry server for end-to-end tests: Debian's `docker-registry` (the CNCF
//! distribution registry) on a free 127.0.0.1 port, optionally behind htpasswd basic auth
//! (with a Docker CLI `config.json` holding the credentials); killed by pid on drop. It lives
//! in the workspace's `testkit` crate: `Registry::start(auth)`, `host()`,
//! `docker_config()`, `manifest_digest(..)` and more.

#[allow(unused_imports)]
pub use testkit::registry::Registry;
