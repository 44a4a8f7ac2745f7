//! Docker's security defaults, computed before the container starts and applied by the
//! container process just before exec: capability sets (`cap_add` / `cap_drop` / `ALL` /
//! `privileged`), rlimits (the seccomp profile is in [`super::seccomp`]), and the user resolved through the
//! container's own `/etc/passwd` and `/etc/group`.

use std::collections::BTreeSet;

use caps::Capability;

use super::spec::SecuritySpec;

/// Errors computing the security settings; the caller adds the service name.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    #[error("unknown ulimit {0:?}")]
    UnknownUlimit(String),
    #[error("ulimit {name}: soft limit {soft} is above hard limit {hard}")]
    UlimitOrder { name: String, soft: u64, hard: u64 },
    #[error("ulimit {name}: hard limit {wanted} is above the current hard limit {current} (raising it needs CAP_SYS_RESOURCE)")]
    UlimitAboveHard {
        name: String,
        wanted: u64,
        current: u64,
    },
    #[error("user {0:?} not found in the container's /etc/passwd")]
    UnknownUser(String),
    #[error("group {0:?} not found in the container's /etc/group")]
    UnknownGroup(String),
}

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPS: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

fn parse_cap(name: &str) -> Result<Capability, SecurityError> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse()
        .map_err(|_| SecurityError::UnknownCapability(name.to_string()))
}

/// The capability set of the container process: Docker's defaults, then drops, then adds
/// (`ALL` in either list works as in Docker: drop ALL then add some keeps only the adds).
pub fn capabilities(sec: &SecuritySpec) -> Result<caps::CapsHashSet, SecurityError> {
    let all: caps::CapsHashSet = caps::all().into_iter().collect();
    if sec.privileged {
        return Ok(all);
    }
    let mut set: caps::CapsHashSet = DEFAULT_CAPS.iter().copied().collect();
    let is_all = |s: &String| s.eq_ignore_ascii_case("all") || s.eq_ignore_ascii_case("cap_all");
    let adds_all = sec.cap_add.iter().any(is_all);
    for d in &sec.cap_drop {
        if is_all(d) {
            set.clear();
        } else {
            set.remove(&parse_cap(d)?);
        }
    }
    if adds_all {
        set = all;
        for d in sec.cap_drop.iter().filter(|d| !is_all(d)) {
            set.remove(&parse_cap(d)?);
        }
    }
    for a in sec.cap_add.iter().filter(|a| !is_all(a)) {
        set.insert(parse_cap(a)?);
    }
    Ok(set)
}

/// rlimit names as compose writes them.
pub fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "core" => libc::RLIMIT_CORE,
        "cpu" => libc::RLIMIT_CPU,
        "data" => libc::RLIMIT_DATA,
        "fsize" => libc::RLIMIT_FSIZE,
        "locks" => libc::RLIMIT_LOCKS,
        "memlock" => libc::RLIMIT_MEMLOCK,
        "msgqueue" => libc::RLIMIT_MSGQUEUE,
        "nice" => libc::RLIMIT_NICE,
        "nofile" => libc::RLIMIT_NOFILE,
        "nproc" => libc::RLIMIT_NPROC,
        "rss" => libc::RLIMIT_RSS,
        "rtprio" => libc::RLIMIT_RTPRIO,
        "rttime" => libc::RLIMIT_RTTIME,
        "sigpending" => libc::RLIMIT_SIGPENDING,
        "stack" => libc::RLIMIT_STACK,
        "as" => libc::RLIMIT_AS,
        _ => return None,
    })
}

/// Check the ulimits against the current hard limits: without CAP_SYS_RESOURCE a hard limit
/// cannot be raised, and the kernel's EPERM would say nothing useful.
pub fn check_ulimits(
    sec: &SecuritySpec,
) -> Result<Vec<(libc::__rlimit_resource_t, u64, u64)>, SecurityError> {
    let mut out = Vec::new();
    for (name, &(soft, hard)) in &sec.ulimits {
        let res =
            rlimit_resource(name).ok_or_else(|| SecurityError::UnknownUlimit(name.clone()))?;
        if soft > hard {
            return Err(SecurityError::UlimitOrder {
                name: name.clone(),
                soft,
                hard,
            });
        }
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own.
        #[allow(unsafe_code)]
        unsafe {
            libc::getrlimit(res, &mut cur);
        }
        let has_sys_resource =
            caps::has_cap(None, caps::CapSet::Effective, Capability::CAP_SYS_RESOURCE)
                .unwrap_or(false);
        if hard > cur.rlim_max && !has_sys_resource {
            return Err(SecurityError::UlimitAboveHard {
                name: name.clone(),
                wanted: hard,
                current: cur.rlim_max,
            });
        }
        out.push((res, soft, hard));
    }
    Ok(out)
}

/// A user resolved inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

/// Resolve `user` (`name`, `uid`, `name:group`, `uid:gid`) and `group_add` against the
/// container's passwd and group files (their text, so this is pure and unit-tested).
pub fn resolve_user(
    user: Option<&str>,
    group_add: &[String],
    passwd: &str,
    group: &str,
) -> Result<ResolvedUser, SecurityError> {
    let user = user.unwrap_or("0");
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 7)
        .collect();
    let groups: Vec<Vec<&str>> = group
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 4)
        .collect();
    let by_name = entries.iter().find(|f| f[0] == u);
    let (uid, mut gid, home, name) = match (by_name, u.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse().unwrap_or(0),
            f[3].parse().unwrap_or(0),
            f[5].to_string(),
            Some(f[0]),
        ),
        (None, Ok(uid)) => match entries.iter().find(|f| f[2] == u) {
            Some(f) => (uid, f[3].parse().unwrap_or(0), f[5].to_string(), Some(f[0])),
            None => (uid, 0, "/".to_string(), None),
        },
        (None, Err(_)) => return Err(SecurityError::UnknownUser(u.to_string())),
    };
    let lookup_group = |g: &str| -> Result<u32, SecurityError> {
        if let Some(f) = groups.iter().find(|f| f[0] == g) {
            return Ok(f[2].parse().unwrap_or(0));
        }
        g.parse()
            .map_err(|_| SecurityError::UnknownGroup(g.to_string()))
    };
    if let Some(g) = g {
        gid = lookup_group(g)?;
    }
    let mut supp = vec![gid];
    if let Some(name) = name {
        for f in &groups {
            if f[3].split(',').any(|m| m == name) {
                supp.push(f[2].parse().unwrap_or(0));
            }
        }
    }
    for g in group_add {
        supp.push(lookup_group(g)?);
    }
    supp.dedup();
    let mut seen = BTreeSet::new();
    supp.retain(|g| seen.insert(*g));
    Ok(ResolvedUser {
        uid,
        gid,
        groups: supp,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nnogroup:x:65534:\napp:x:1000:\naudio:x:29:app\nvideo:x:44:\n";

    #[test]
    fn users_resolve_by_name_uid_and_group() {
        let u = resolve_user(Some("app"), &[], PASSWD, GROUP).unwrap();
        assert_eq!(
            u,
            ResolvedUser {
                uid: 1000,
                gid: 1000,
                groups: vec![1000, 29],
                home: "/home/app".into()
            }
        );
        let u = resolve_user(
            Some("1000:video"),
            &["audio".into(), "123".into()],
            PASSWD,
            GROUP,
        )
        .unwrap();
        assert_eq!((u.uid, u.gid, u.groups), (1000, 44, vec![44, 29, 123]));
        let u = resolve_user(Some("4242"), &[], PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 0, "/"));
        let u = resolve_user(None, &[], PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
    }

    #[test]
    fn unknown_user_and_group_are_errors() {
        assert!(
            matches!(resolve_user(Some("ghost"), &[], PASSWD, GROUP), Err(SecurityError::UnknownUser(u)) if u == "ghost")
        );
        assert!(
            matches!(resolve_user(Some("app:ghosts"), &[], PASSWD, GROUP), Err(SecurityError::UnknownGroup(g)) if g == "ghosts")
        );
    }

    #[test]
    fn capabilities_follow_docker_rules() {
        let def = capabilities(&SecuritySpec::default()).unwrap();
        assert_eq!(def.len(), 14);
        let s = SecuritySpec {
            cap_drop: vec!["ALL".into()],
            cap_add: vec!["net_admin".into(), "CAP_CHOWN".into()],
            ..Default::default()
        };
        let set = capabilities(&s).unwrap();
        assert_eq!(
            set,
            [Capability::CAP_NET_ADMIN, Capability::CAP_CHOWN]
                .into_iter()
                .collect()
        );
        let s = SecuritySpec {
            cap_add: vec!["ALL".into()],
            cap_drop: vec!["mknod".into()],
            ..Default::default()
        };
        let set = capabilities(&s).unwrap();
        assert!(set.contains(&Capability::CAP_SYS_ADMIN) && !set.contains(&Capability::CAP_MKNOD));
        let s = SecuritySpec {
            cap_add: vec!["CAP_FLY".into()],
            ..Default::default()
        };
        assert!(
            matches!(capabilities(&s), Err(SecurityError::UnknownCapability(c)) if c == "CAP_FLY")
        );
    }

    #[test]
    fn ulimit_above_hard_is_refused() {
        let mut s = SecuritySpec::default();
        s.ulimits.insert("nofile".into(), (10, u64::MAX - 1));
        if !caps::has_cap(None, caps::CapSet::Effective, Capability::CAP_SYS_RESOURCE).unwrap() {
            assert!(matches!(
                check_ulimits(&s),
                Err(SecurityError::UlimitAboveHard { .. })
            ));
        }
        s.ulimits.insert("nofile".into(), (10, 5));
        assert!(matches!(
            check_ulimits(&s),
            Err(SecurityError::UlimitOrder { .. })
        ));
    }
}
