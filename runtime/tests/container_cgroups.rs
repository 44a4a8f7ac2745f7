//! Privileged tests of cgroups v1 (this machine's hierarchy): limits written where the kernel
//! reads them, processes listed, stats, freeze/thaw, stop that kills every process, OOM kills
//! reported as such. v2 is covered by unit tests against temp-dir fixtures.

mod container_support;

use std::path::PathBuf;
use std::time::Duration;

use container_support::{eventually, Harness};
use runtime::container::{ExitStatus, Resources};

fn cg_file(h: &Harness, controller: &str, id: &str, file: &str) -> String {
    let rel = runtime::container::cgroups::relative_path(&h.runtime.state_root, id);
    let p = PathBuf::from("/sys/fs/cgroup")
        .join(controller)
        .join(rel)
        .join(file);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn limits_are_written_to_the_v1_controllers() {
    let h = Harness::new();
    let mut spec = h.spec(
        "limits",
        &[
            "sh",
            "-c",
            "cat /proc/self/cgroup | grep -E ':memory:|:pids:'; sleep 30; true",
        ],
    );
    spec.resources = Resources {
        memory: Some(64 << 20),
        memory_swap: Some(96 << 20),
        memory_reservation: Some(32 << 20),
        cpus: Some(0.5),
        cpu_shares: Some(512),
        cpuset_cpus: Some("0".into()),
        pids_limit: Some(20),
        blkio_weight: Some(300),
        ..Default::default()
    };
    let (c, out, _err) = h.create(&spec);
    assert_eq!(
        cg_file(&h, "memory", "limits", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(
        cg_file(&h, "memory", "limits", "memory.memsw.limit_in_bytes"),
        (96u64 << 20).to_string()
    );
    assert_eq!(
        cg_file(&h, "memory", "limits", "memory.soft_limit_in_bytes"),
        (32u64 << 20).to_string()
    );
    assert_eq!(cg_file(&h, "cpu", "limits", "cpu.cfs_quota_us"), "50000");
    assert_eq!(cg_file(&h, "cpu", "limits", "cpu.cfs_period_us"), "100000");
    assert_eq!(cg_file(&h, "cpu", "limits", "cpu.shares"), "512");
    assert_eq!(cg_file(&h, "cpuset", "limits", "cpuset.cpus"), "0");
    assert_eq!(cg_file(&h, "pids", "limits", "pids.max"), "20");
    assert_eq!(
        cg_file(&h, "blkio", "limits", "blkio.bfq.weight")
            .split_whitespace()
            .last()
            .unwrap(),
        "300"
    );
    let devices = cg_file(&h, "devices", "limits", "devices.list");
    assert!(
        devices.contains("c 1:3 rwm") && !devices.contains("a *:* rwm"),
        "{devices}"
    );
    // The container process is in every controller's cgroup.
    for ctrl in [
        "memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "freezer", "devices",
    ] {
        let procs = cg_file(&h, ctrl, "limits", "cgroup.procs");
        assert_eq!(procs, c.pid.to_string(), "{ctrl}");
    }
    c.start().unwrap();
    // Wait for the steady state, `sh` waiting on `sleep 30`: before it, the cgroup also holds
    // two processes for a moment (`sh` and one side of the pipeline), then only `sh` between
    // the pipeline and `sleep`, and `pids.current` read then is 1.
    let comm = |pid: &i32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert!(eventually(Duration::from_secs(5), || {
        let procs = c.processes().unwrap();
        procs.len() == 2 && procs.iter().any(|p| comm(p).trim() == "sleep")
    }));
    let stats = c.stats().unwrap();
    assert!(stats.pids >= 2, "{stats:?}");
    assert_eq!(stats.memory_limit, Some(64 << 20));
    assert!(
        stats.memory_usage > 0 && stats.cpu_usage_ns > 0,
        "{stats:?}"
    );
    c.stop(Duration::from_millis(200)).unwrap();
    runtime::container::wait(c.pid).unwrap();
    c.remove().unwrap();
    // Inside, the cgroup namespace shows the container's own cgroup as the root.
    let stdout = out.join().unwrap();
    assert!(stdout.lines().all(|l| l.ends_with(":/")), "{stdout}");
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let h = Harness::new();
    let mut spec = h.spec(
        "pids",
        &[
            "sh",
            "-c",
            "for i in $(seq 20); do sleep 30 & done; echo spawned; sleep 30; true",
        ],
    );
    spec.resources.pids_limit = Some(6);
    let (c, out, err) = h.create(&spec);
    c.start().unwrap();
    let mut max_seen = 0;
    for _ in 0..50 {
        max_seen = max_seen
            .max(c.processes().unwrap().len())
            .max(c.stats().unwrap().pids as usize);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(max_seen <= 6, "{max_seen} processes under a limit of 6");
    // The kernel counted refused forks (the shell may already be gone: ash exits when a fork
    // fails).
    assert!(eventually(Duration::from_secs(5), || {
        let events = cg_file(&h, "pids", "pids", "pids.events");
        events
            .strip_prefix("max ")
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            > 0
    }));
    c.stop(Duration::from_millis(100)).unwrap();
    runtime::container::wait(c.pid).unwrap();
    c.remove().unwrap();
    let (_, stderr) = container_support::Capture::finish(out, err);
    assert!(stderr.contains("fork"), "{stderr}");
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let h = Harness::new();
    let counter = h.tmp.path().join("counter");
    std::fs::create_dir_all(&counter).unwrap();
    let mut spec = h.spec(
        "pause",
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /c/n; sleep 0.01; done",
        ],
    );
    spec.mounts = vec![runtime::container::MountSpec::Bind {
        source: counter.clone(),
        target: "/c".into(),
        read_only: false,
        propagation: None,
        create_host_path: false,
    }];
    let (c, _out, _err) = h.create(&spec);
    c.start().unwrap();
    let read = || std::fs::read_to_string(counter.join("n")).unwrap_or_default();
    assert!(eventually(Duration::from_secs(5), || !read().is_empty()));
    c.pause().unwrap();
    assert_eq!(cg_file(&h, "freezer", "pause", "freezer.state"), "FROZEN");
    let before = read();
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(read(), before, "a frozen container made progress");
    c.resume().unwrap();
    assert_eq!(cg_file(&h, "freezer", "pause", "freezer.state"), "THAWED");
    assert!(eventually(Duration::from_secs(5), || read() != before));
    c.stop(Duration::from_millis(100)).unwrap();
    runtime::container::wait(c.pid).unwrap();
    c.remove().unwrap();
}

#[test]
fn stop_kills_every_process_of_the_cgroup() {
    let h = Harness::new();
    // Daemonized grandchildren in their own sessions still belong to the cgroup.
    let spec = h.spec("stopall", &["sh", "-c", "trap 'exit 0' TERM; setsid sleep 100 & setsid sh -c 'trap \"\" TERM; sleep 100' & while true; do sleep 0.05; done"]);
    let (c, _out, _err) = h.create(&spec);
    c.start().unwrap();
    assert!(eventually(Duration::from_secs(5), || c
        .processes()
        .unwrap()
        .len()
        >= 4));
    let pids = c.processes().unwrap();
    c.stop(Duration::from_millis(500)).unwrap();
    assert_eq!(
        runtime::container::wait(c.pid).unwrap(),
        ExitStatus::Code(0)
    );
    for p in pids {
        let gone = eventually(Duration::from_secs(2), || {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)
        });
        assert!(gone, "process {p} survived stop");
    }
    c.remove().unwrap();
}

#[test]
fn an_oom_kill_is_reported_as_such() {
    let h = Harness::new();
    let mut spec = h.spec("oom", &["tail", "/dev/zero"]);
    spec.resources.memory = Some(16 << 20);
    spec.resources.memory_swap = Some(16 << 20);
    let (c, _out, _err) = h.create(&spec);
    c.start().unwrap();
    let status = runtime::container::wait(c.pid).unwrap();
    let exit = c.exit_info(status);
    assert_eq!(exit.status, ExitStatus::Signal(libc::SIGKILL));
    assert!(exit.oom_killed, "{exit:?}");
    c.remove().unwrap();

    let out = h.run(&h.spec("nooom", &["true"]));
    assert_eq!(out.status, ExitStatus::Code(0));
}

#[test]
fn sys_fs_cgroup_shows_the_containers_own_cgroup_read_only() {
    let h = Harness::new();
    let mut spec = h.spec("cgfs", &["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; cat /sys/fs/cgroup/pids/pids.max; echo 1 > /sys/fs/cgroup/pids/pids.max 2>/dev/null && echo WRITABLE || echo ro; mkdir /sys/fs/cgroup/x 2>/dev/null && echo TMPFS-RW || echo tmpfs-ro"]);
    spec.resources.memory = Some(48 << 20);
    spec.resources.pids_limit = Some(33);
    let out = h.run(&spec);
    assert_eq!(out.status, ExitStatus::Code(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!("{}\n33\nro\ntmpfs-ro\n", 48u64 << 20),
        "{}",
        out.stderr
    );
}

/// Removes a test's cgroup2 folder even on failure.
struct V2Dir(PathBuf);

impl Drop for V2Dir {
    fn drop(&mut self) {
        let _ = container_support::eventually(Duration::from_secs(5), || {
            std::fs::remove_dir(&self.0).is_ok() || !self.0.exists()
        });
    }
}

#[test]
fn v2_device_program_denies_what_the_rules_do_not_allow() {
    use runtime::container::cgroups::{v2::V2, Cgroup, DeviceRules};
    // This machine's cgroup2 offers no controller but takes device programs all the same.
    let unified = std::path::Path::new("/sys/fs/cgroup/unified");
    assert!(
        unified.join("cgroup.procs").exists(),
        "prerequisite missing: a cgroup2 mount at {}",
        unified.display()
    );
    // A shell joins the cgroup, then opens devices: /dev/null (1:3) is allowed, /dev/kmsg
    // (1:11) is not in Docker's list.
    let probe = |dir: &std::path::Path| {
        let script = format!(
            "echo $$ > {}/cgroup.procs; : < /dev/null && echo null-ok; (: < /dev/kmsg) 2>/dev/null && echo kmsg-open || echo kmsg-denied",
            dir.display()
        );
        let out = std::process::Command::new(container_support::BUSYBOX)
            .args(["sh", "-c", &script])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    for (suffix, devices, want) in [
        ("default", DeviceRules::default(), "null-ok\nkmsg-denied\n"),
        (
            "extra",
            DeviceRules {
                allow_all: false,
                extra: vec!["c 1:11 r".into()],
            },
            "null-ok\nkmsg-open\n",
        ),
    ] {
        let rel = format!("rcompose-devtest-{}-{suffix}", std::process::id());
        let dir = V2Dir(unified.join(&rel));
        V2::new(unified, std::path::Path::new(&rel))
            .create(&Resources::default(), &devices)
            .unwrap();
        assert_eq!(probe(&dir.0), want, "{suffix}");
    }
}
