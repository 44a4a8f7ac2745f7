//! Test support shared by the workspace's test suites (root e2e, runtime, network): polling
//! instead of sleeps ([`eventually`] and its variants), free loopback ports, a root
//! filesystem of the host's static busybox ([`busybox`]), leak checks for what a state root
//! may leave on the machine ([`leaks`]) and a real registry server ([`registry`]).
//!
//! Only for tests: a dev-dependency, never published. It names no crate of the workspace;
//! callers pass in the names (interface prefix, nft table, cgroup) their crate derives.

pub mod busybox;
pub mod leaks;
pub mod registry;

use std::time::{Duration, Instant};

/// Poll `f` every 20 ms until it is true; panic naming `what` after `timeout`.
pub fn eventually(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    if !poll(timeout, Duration::from_millis(20), &mut f) {
        panic!("timed out after {timeout:?} waiting for {what}");
    }
}

/// Poll `f` every `every` until it is true or `within` passes; whether it became true.
pub fn poll(within: Duration, every: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// Poll `f` (backing off from 5 to 100 ms) until it returns `Some`; panic naming `what`
/// after `timeout`.
pub fn eventually_some<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let mut delay = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// Poll `f` every 25 ms until it returns `Ok`; after `timeout`, its last error.
pub fn eventually_ok<T, E>(timeout: Duration, mut f: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if start.elapsed() > timeout => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(25)),
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the caller binds it, and retries if
/// something else took it meanwhile).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_returns_as_soon_as_true_and_gives_up_after_the_timeout() {
        let mut n = 0;
        assert!(poll(
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                n += 1;
                n == 3
            }
        ));
        assert_eq!(n, 3);
        assert!(!poll(
            Duration::from_millis(30),
            Duration::from_millis(5),
            || false
        ));
        assert_eq!(
            eventually_some("three", Duration::from_secs(5), || {
                n += 1;
                (n >= 6).then_some(n)
            }),
            6
        );
        let r: Result<(), &str> = eventually_ok(Duration::from_millis(30), || Err("no"));
        assert_eq!(r, Err("no"));
    }

    #[test]
    #[should_panic(expected = "waiting for nothing")]
    fn eventually_panics_with_what_it_waited_for() {
        eventually(Duration::from_millis(30), "nothing", || false);
    }

    #[test]
    fn free_port_is_bindable() {
        let p = free_port();
        assert_ne!(p, 0);
        std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
    }
}
