//! Seccomp profiles: Docker's default profile (an allowlist: every system call not listed fails
//! with EPERM) encoded in Rust from the semantics of moby's published profile, and custom
//! profiles in Docker's JSON format (`security_opt: seccomp=<file>`). Both become one
//! [`Profile`], which [`Profile::compile`] turns into BPF programs for the capabilities, the
//! architecture and the kernel of the container. The helper installs them last before exec.

use std::collections::BTreeMap;

use caps::Capability;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use serde::Deserialize;

use super::syscalls;

/// Errors of profile parsing and compiling; each names the profile.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp profile {profile}: {source}")]
    Parse {
        profile: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("seccomp profile {profile}: {message}")]
    Invalid { profile: String, message: String },
    #[error("seccomp profile {profile}: {message}")]
    Compile { profile: String, message: String },
}

/// What a rule (or the default) does, as Docker's JSON spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Action {
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_KILL", alias = "SCMP_ACT_KILL_THREAD")]
    KillThread,
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
    /// No tracer exists in a container: like libseccomp without one, the call fails (ENOSYS).
    #[serde(rename = "SCMP_ACT_TRACE")]
    Trace,
}

/// An argument comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Op {
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    /// `(arg & value) == value_two`.
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u8,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: Op,
}

/// When a rule applies: capabilities (all of them granted), architectures, minimum kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default)]
    pub caps: Vec<String>,
    #[serde(default)]
    pub arches: Vec<String>,
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// One rule: the calls it names, its action, argument conditions (all must hold), and the
/// capabilities/architectures it is limited to or excluded from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub names: Vec<String>,
    /// The old single-name form.
    #[serde(default)]
    pub name: Option<String>,
    pub action: Action,
    #[serde(default)]
    pub args: Vec<Arg>,
    #[serde(default)]
    pub includes: Filter,
    #[serde(default)]
    pub excludes: Filter,
    #[serde(default)]
    pub errno_ret: Option<u32>,
}

/// A whole profile, Docker's JSON format (`architectures`, `archMap`, `flags`, comments are
/// accepted and not needed: rules resolve names on the running architecture).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: Action,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub syscalls: Vec<Rule>,
}

/// What the profile is compiled for.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub caps: &'a caps::CapsHashSet,
    /// Docker's architecture names (`amd64`, `arm64`, …).
    pub arch: &'static str,
    /// `(major, minor)` of the running kernel.
    pub kernel: (u32, u32),
}

impl Target<'_> {
    /// The running machine, with the container's capabilities.
    pub fn host(caps: &caps::CapsHashSet) -> Target<'_> {
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        Target {
            caps,
            arch: docker_arch(),
            kernel: parse_kernel(&release).unwrap_or((0, 0)),
        }
    }
}

fn docker_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn cap_granted(caps: &caps::CapsHashSet, name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse::<Capability>()
        .map(|c| caps.contains(&c))
        .unwrap_or(false)
}

impl Rule {
    fn applies(&self, t: &Target) -> bool {
        let inc = &self.includes;
        let exc = &self.excludes;
        if !inc.caps.iter().all(|c| cap_granted(t.caps, c)) {
            return false;
        }
        if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == t.arch) {
            return false;
        }
        if let Some(min) = inc.min_kernel.as_deref().and_then(parse_kernel) {
            if t.kernel < min {
                return false;
            }
        }
        if exc.caps.iter().any(|c| cap_granted(t.caps, c)) {
            return false;
        }
        if exc.arches.iter().any(|a| a == t.arch) {
            return false;
        }
        if let Some(max) = exc.min_kernel.as_deref().and_then(parse_kernel) {
            if t.kernel >= max {
                return false;
            }
        }
        true
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .map(String::as_str)
            .chain(self.name.as_deref())
    }
}

/// The BPF result of an action.
fn bpf_action(action: Action, errno: Option<u32>, default_errno: u32) -> SeccompAction {
    match action {
        Action::Allow => SeccompAction::Allow,
        Action::Errno => SeccompAction::Errno(errno.unwrap_or(default_errno)),
        Action::KillThread => SeccompAction::KillThread,
        Action::KillProcess => SeccompAction::KillProcess,
        Action::Trap => SeccompAction::Trap,
        Action::Log => SeccompAction::Log,
        Action::Trace => SeccompAction::Errno(libc::ENOSYS as u32),
    }
}

/// seccompiler rules for one profile rule's argument conditions: all conditions in one rule
/// (AND), except that repeated comparisons of one argument are alternatives (OR), as runc reads
/// them (opencontainers/runc#2735).
fn arg_rules(args: &[Arg]) -> Result<Vec<SeccompRule>, String> {
    let cond = |a: &Arg| {
        let op = match a.op {
            Op::Ne => SeccompCmpOp::Ne,
            Op::Lt => SeccompCmpOp::Lt,
            Op::Le => SeccompCmpOp::Le,
            Op::Eq => SeccompCmpOp::Eq,
            Op::Ge => SeccompCmpOp::Ge,
            Op::Gt => SeccompCmpOp::Gt,
            Op::MaskedEq => SeccompCmpOp::MaskedEq(a.value),
        };
        let value = if a.op == Op::MaskedEq {
            a.value_two
        } else {
            a.value
        };
        SeccompCondition::new(a.index, SeccompCmpArgLen::Qword, op, value)
            .map_err(|e| format!("argument {}: {e}", a.index))
    };
    if args.is_empty() {
        return Ok(Vec::new());
    }
    let mut indices: Vec<u8> = args.iter().map(|a| a.index).collect();
    indices.sort_unstable();
    indices.dedup();
    if indices.len() == args.len() {
        let conds = args.iter().map(cond).collect::<Result<Vec<_>, _>>()?;
        return Ok(vec![SeccompRule::new(conds).map_err(|e| e.to_string())?]);
    }
    args.iter()
        .map(|a| SeccompRule::new(vec![cond(a)?]).map_err(|e| e.to_string()))
        .collect()
}

/// Calls matched per (action): `None` rules = unconditional.
type Groups = BTreeMap<(u8, u32), (SeccompAction, BTreeMap<i64, Option<Vec<SeccompRule>>>)>;

/// An ordering key for actions, lowest = least restrictive (installed first).
fn action_key(a: &SeccompAction) -> (u8, u32) {
    match a {
        SeccompAction::Allow => (0, 0),
        SeccompAction::Log => (1, 0),
        SeccompAction::Trace(v) => (2, *v),
        SeccompAction::Errno(v) => (3, *v),
        SeccompAction::Trap => (4, 0),
        SeccompAction::KillThread => (5, 0),
        SeccompAction::KillProcess => (6, 0),
    }
}

impl Profile {
    /// Parse Docker's JSON profile format; `name` (the file) names the profile in errors.
    pub fn from_json(name: &str, text: &str) -> Result<Profile, SeccompError> {
        serde_json::from_str(text).map_err(|source| SeccompError::Parse {
            profile: name.into(),
            source,
        })
    }

    /// Compile for `target`: the BPF programs to install, in order. A call named by rules with
    /// several actions gets the strictest one (the kernel's precedence between filters), and
    /// among errnos the one of the last rule group.
    pub fn compile(&self, name: &str, t: &Target) -> Result<Vec<BpfProgram>, SeccompError> {
        let compile_err = |message: String| SeccompError::Compile {
            profile: name.into(),
            message,
        };
        let arch =
            TargetArch::try_from(std::env::consts::ARCH).map_err(|e| compile_err(e.to_string()))?;
        let default_errno = self.default_errno_ret.unwrap_or(libc::EPERM as u32);
        let default = bpf_action(self.default_action, None, default_errno);
        let mut groups: Groups = BTreeMap::new();
        for rule in self.syscalls.iter().filter(|r| r.applies(t)) {
            let action = bpf_action(rule.action, rule.errno_ret, default_errno);
            if action == default {
                continue;
            }
            let conds = arg_rules(&rule.args).map_err(&compile_err)?;
            let entry = groups
                .entry(action_key(&action))
                .or_insert_with(|| (action.clone(), BTreeMap::new()));
            for call in rule.names() {
                // Names of other architectures (or newer kernels than the table) are skipped.
                let Some(nr) = syscalls::number(call) else {
                    continue;
                };
                let slot = entry.1.entry(nr).or_insert_with(|| Some(Vec::new()));
                match (slot.as_mut(), conds.is_empty()) {
                    // Unconditional wins over any condition.
                    (_, true) => *slot = None,
                    (Some(list), false) => list.extend(conds.iter().cloned()),
                    (None, false) => {}
                }
            }
        }
        // One filter per action. The base filter (the profile's default for every call no
        // rule names) also lets through every call some other group decides, so that group's
        // filter alone decides it; the kernel runs all filters and keeps the strictest result
        // (the most recently installed among equals, hence the order below).
        let mut base: BTreeMap<i64, Option<Vec<SeccompRule>>> = BTreeMap::new();
        let mut filters = Vec::new();
        let mut others = Vec::new();
        for (_, (action, calls)) in groups {
            if calls.is_empty() {
                continue;
            }
            for (nr, conds) in &calls {
                match (base.get_mut(nr), conds) {
                    (None, c) => {
                        base.insert(*nr, c.clone());
                    }
                    (Some(slot), None) => *slot = None,
                    (Some(Some(list)), Some(c)) => list.extend(c.iter().cloned()),
                    (Some(None), Some(_)) => {}
                }
            }
            if action != SeccompAction::Allow {
                let rules = calls
                    .into_iter()
                    .map(|(nr, c)| (nr, c.unwrap_or_default()))
                    .collect::<BTreeMap<_, _>>();
                others.push((action, rules));
            }
        }
        let base: BTreeMap<i64, Vec<SeccompRule>> = base
            .into_iter()
            .map(|(nr, c)| (nr, c.unwrap_or_default()))
            .collect();
        if default != SeccompAction::Allow {
            filters.push(
                SeccompFilter::new(base, default, SeccompAction::Allow, arch)
                    .map_err(|e| compile_err(e.to_string()))?,
            );
        }
        for (action, rules) in others {
            filters.push(
                SeccompFilter::new(rules, SeccompAction::Allow, action, arch)
                    .map_err(|e| compile_err(e.to_string()))?,
            );
        }
        filters
            .into_iter()
            .map(|f| BpfProgram::try_from(f).map_err(|e| compile_err(e.to_string())))
            .collect()
    }
}

/// Address families `socket(2)` may create under Docker's default profile: every family the
/// kernel implements except AF_ALG (38, kernel crypto API: attack surface, no need in
/// containers) and AF_VSOCK (40, host/guest sockets, global across network namespaces).
/// Families the kernel removed (DECnet, Econet, ATMSVC, IrDA, WANPIPE, ISDN, CAIF) are left out.
const SOCKET_FAMILIES: &[u64] = &[
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 21, 22, 24, 26, 27, 28, 29, 30, 31,
    32, 33, 35, 36, 39, 41, 42, 43, 44, 45,
];

/// `personality(2)` values Docker's default profile lets through: PER_LINUX, PER_LINUX32,
/// UNAME26 variants, and the query 0xffffffff.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// System calls Docker's default profile allows to every container.
const DEFAULT_ALLOW: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "getxattrat",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listmount",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "riscv_hwprobe",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "setxattrat",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statmount",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "uretprobe",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// Calls allowed only with a capability (Docker's default profile).
const CAP_GATED: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "lsm_get_self_attr",
            "lsm_list_modules",
            "lsm_set_self_attr",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Calls allowed on some architectures only.
const ARCH_ONLY: &[(&[&str], &[&str])] = &[
    (&["amd64", "x32"], &["arch_prctl"]),
    (&["amd64", "x32", "x86"], &["modify_ldt"]),
    (&["ppc64le"], &["sync_file_range2", "swapcontext"]),
    (
        &["arm", "arm64"],
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
    ),
    (
        &["s390", "s390x"],
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
    ),
    (&["riscv64"], &["riscv_flush_icache"]),
];

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn allow(names: &[&str]) -> Rule {
    Rule {
        names: strings(names),
        name: None,
        action: Action::Allow,
        args: Vec::new(),
        includes: Filter::default(),
        excludes: Filter::default(),
        errno_ret: None,
    }
}

fn arg0(op: Op, value: u64) -> Vec<Arg> {
    vec![Arg {
        index: 0,
        value,
        value_two: 0,
        op,
    }]
}

/// Docker's default profile: EPERM for every call not allowed below.
pub fn default_profile() -> Profile {
    let mut rules = vec![allow(DEFAULT_ALLOW)];
    // ptrace and process_vm_* became safe to allow with the 4.8 seccomp/ptrace fix.
    rules.push(Rule {
        includes: Filter {
            min_kernel: Some("4.8".into()),
            ..Filter::default()
        },
        ..allow(&["process_vm_readv", "process_vm_writev", "ptrace"])
    });
    for &family in SOCKET_FAMILIES {
        rules.push(Rule {
            args: arg0(Op::Eq, family),
            ..allow(&["socket"])
        });
    }
    for &p in PERSONALITIES {
        rules.push(Rule {
            args: arg0(Op::Eq, p),
            ..allow(&["personality"])
        });
    }
    for (arches, names) in ARCH_ONLY {
        rules.push(Rule {
            includes: Filter {
                arches: strings(arches),
                ..Filter::default()
            },
            ..allow(names)
        });
    }
    for (cap, names) in CAP_GATED {
        rules.push(Rule {
            includes: Filter {
                caps: vec![cap.to_string()],
                ..Filter::default()
            },
            ..allow(names)
        });
    }
    // Without CAP_SYS_ADMIN: clone without namespace flags (s390 swaps the first two
    // arguments), and clone3, whose flags sit behind a pointer, answers ENOSYS so that libc
    // falls back to clone.
    let ns_flags = (libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWCGROUP) as u64;
    let no_admin = Filter {
        caps: vec!["CAP_SYS_ADMIN".into()],
        ..Filter::default()
    };
    rules.push(Rule {
        args: vec![Arg {
            index: 0,
            value: ns_flags,
            value_two: 0,
            op: Op::MaskedEq,
        }],
        excludes: Filter {
            arches: strings(&["s390", "s390x"]),
            ..no_admin.clone()
        },
        ..allow(&["clone"])
    });
    rules.push(Rule {
        args: vec![Arg {
            index: 1,
            value: ns_flags,
            value_two: 0,
            op: Op::MaskedEq,
        }],
        includes: Filter {
            arches: strings(&["s390", "s390x"]),
            ..Filter::default()
        },
        excludes: no_admin.clone(),
        ..allow(&["clone"])
    });
    rules.push(Rule {
        action: Action::Errno,
        errno_ret: Some(libc::ENOSYS as u32),
        excludes: no_admin,
        ..allow(&["clone3"])
    });
    Profile {
        default_action: Action::Errno,
        default_errno_ret: Some(libc::EPERM as u32),
        syscalls: rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(caps: &caps::CapsHashSet) -> Target<'_> {
        Target {
            caps,
            arch: "amd64",
            kernel: (6, 1),
        }
    }

    #[test]
    fn the_default_profile_compiles_for_default_and_admin_capabilities() {
        let def: caps::CapsHashSet = crate::container::security::DEFAULT_CAPS
            .iter()
            .copied()
            .collect();
        let progs = default_profile().compile("default", &target(&def)).unwrap();
        // The EPERM allowlist, then clone3's ENOSYS.
        assert_eq!(progs.len(), 2);
        let mut admin = def.clone();
        admin.insert(Capability::CAP_SYS_ADMIN);
        assert_eq!(
            default_profile()
                .compile("default", &target(&admin))
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn rules_follow_caps_arches_and_kernel() {
        let def: caps::CapsHashSet = [Capability::CAP_CHOWN].into_iter().collect();
        let t = target(&def);
        let r = |json: &str| serde_json::from_str::<Rule>(json).unwrap().applies(&t);
        assert!(r(r#"{"names":["a"],"action":"SCMP_ACT_ALLOW"}"#));
        assert!(r(
            r#"{"names":["a"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_CHOWN"]}}"#
        ));
        assert!(!r(
            r#"{"names":["a"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}"#
        ));
        assert!(!r(
            r#"{"names":["a"],"action":"SCMP_ACT_ALLOW","excludes":{"caps":["CAP_CHOWN"]}}"#
        ));
        assert!(!r(
            r#"{"names":["a"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["s390x"]}}"#
        ));
        assert!(!r(
            r#"{"names":["a"],"action":"SCMP_ACT_ALLOW","excludes":{"arches":["amd64"]}}"#
        ));
        assert!(r(
            r#"{"names":["a"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4.8"}}"#
        ));
        assert!(!r(
            r#"{"names":["a"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"6.10"}}"#
        ));
    }

    #[test]
    fn a_docker_json_profile_parses_and_compiles() {
        let json = r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["no_such_call"], "action": "SCMP_ACT_KILL"}
            ]
        }"#;
        let p = Profile::from_json("p.json", json).unwrap();
        assert_eq!(p.default_action, Action::Allow);
        assert_eq!(p.syscalls[0].errno_ret, Some(13));
        let caps = caps::CapsHashSet::new();
        // Allow by default: no base filter; one filter for EACCES, one for EPERM (the unknown
        // name's KILL group is empty and dropped).
        let progs = p.compile("p.json", &target(&caps)).unwrap();
        assert_eq!(progs.len(), 2);
        let err = Profile::from_json("bad.json", r#"{"defaultAction": "NOPE"}"#).unwrap_err();
        assert!(
            err.to_string().starts_with("seccomp profile bad.json: "),
            "{err}"
        );
    }

    #[test]
    fn every_default_name_of_this_architecture_resolves() {
        // The table must know the calls the kernel this runs on offers; x86_64 only.
        if cfg!(target_arch = "x86_64") {
            for n in [
                "read",
                "openat",
                "clone3",
                "mseal",
                "socket",
                "arch_prctl",
                "statmount",
            ] {
                assert!(syscalls::number(n).is_some(), "{n}");
            }
            assert_eq!(syscalls::number("mount"), Some(libc::SYS_mount));
            assert_eq!(syscalls::number("uretprobe"), Some(335));
        }
    }
}
