//! cgroup v1: one hierarchy per controller under the root (`cpu` and `cpuacct` may be
//! separate mounts, as on this machine). Controllers missing on the host are skipped.

use std::path::{Path, PathBuf};

use super::{
    cpu_quota, mkdir, parse_u64, read, read_pids, rmdir, write, Cgroup, CgroupError, DeviceRules,
    Result, Stats, DEFAULT_DEVICE_RULES,
};
use crate::container::spec::Resources;

/// The controllers rcompose uses; a process joins each one that is mounted.
pub const CONTROLLERS: &[&str] = &[
    "memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "freezer", "devices", "systemd",
];

#[derive(Debug, Clone)]
pub struct V1 {
    root: PathBuf,
    relative: PathBuf,
}

impl V1 {
    pub fn new(root: &Path, relative: &Path) -> Self {
        Self {
            root: root.into(),
            relative: relative.into(),
        }
    }

    /// The folder of this cgroup in one controller's hierarchy, if that controller is mounted.
    fn dir(&self, controller: &str) -> Option<PathBuf> {
        let mount = self.root.join(controller);
        mount.is_dir().then(|| mount.join(&self.relative))
    }

    fn mounted(&self) -> Vec<(&'static str, PathBuf)> {
        CONTROLLERS
            .iter()
            .filter_map(|c| self.dir(c).map(|d| (*c, d)))
            .collect()
    }

    /// cpuset needs cpus and mems in every level before a process can join.
    fn init_cpuset(&self, dir: &Path) -> Result<()> {
        let mount = self.root.join("cpuset");
        let mut level = mount.clone();
        for comp in self.relative.components() {
            let parent = level.clone();
            level = level.join(comp);
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let own = read(&level.join(file))?;
                if own.trim().is_empty() {
                    let inherited = read(&parent.join(file))?;
                    write(&level.join(file), inherited.trim())?;
                }
            }
        }
        debug_assert_eq!(level, dir);
        Ok(())
    }
}

impl Cgroup for V1 {
    fn create(&self, r: &Resources, devices: &DeviceRules) -> Result<()> {
        for (controller, dir) in self.mounted() {
            mkdir(&dir)?;
            match controller {
                "cpuset" => {
                    self.init_cpuset(&dir)?;
                    if let Some(cpus) = &r.cpuset_cpus {
                        write(&dir.join("cpuset.cpus"), cpus)?;
                    }
                    if let Some(mems) = &r.cpuset_mems {
                        write(&dir.join("cpuset.mems"), mems)?;
                    }
                }
                "memory" => {
                    if let Some(m) = r.memory {
                        write(&dir.join("memory.limit_in_bytes"), &m.to_string())?;
                    }
                    if let Some(s) = r.memory_swap {
                        let file = dir.join("memory.memsw.limit_in_bytes");
                        if file.exists() {
                            write(&file, &s.to_string())?;
                        } else {
                            tracing::warn!(
                                "memswap_limit ignored: the kernel has no swap accounting"
                            );
                        }
                    }
                    if let Some(s) = r.memory_reservation {
                        write(&dir.join("memory.soft_limit_in_bytes"), &s.to_string())?;
                    }
                    if r.oom_kill_disable {
                        write(&dir.join("memory.oom_control"), "1")?;
                    }
                }
                "cpu" => {
                    if let Some(s) = r.cpu_shares {
                        write(&dir.join("cpu.shares"), &s.to_string())?;
                    }
                    let (quota, period) = cpu_quota(r);
                    if let Some(q) = quota {
                        write(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
                        write(&dir.join("cpu.cfs_quota_us"), &q.to_string())?;
                    }
                }
                "pids" => {
                    if let Some(p) = r.pids_limit {
                        let v = if p <= 0 {
                            "max".to_string()
                        } else {
                            p.to_string()
                        };
                        write(&dir.join("pids.max"), &v)?;
                    }
                }
                "blkio" => {
                    if let Some(w) = r.blkio_weight {
                        let file = dir.join("blkio.weight");
                        let bfq = dir.join("blkio.bfq.weight");
                        if file.exists() {
                            write(&file, &w.to_string())?;
                        } else if bfq.exists() {
                            write(&bfq, &w.to_string())?;
                        } else {
                            tracing::warn!(
                                "blkio weight ignored: no blkio.weight in {}",
                                dir.display()
                            );
                        }
                    }
                }
                "devices" => {
                    if devices.allow_all {
                        write(&dir.join("devices.allow"), "a *:* rwm")?;
                    } else {
                        write(&dir.join("devices.deny"), "a *:* rwm")?;
                        for rule in DEFAULT_DEVICE_RULES
                            .iter()
                            .copied()
                            .chain(devices.extra.iter().map(String::as_str))
                        {
                            write(&dir.join("devices.allow"), rule)?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn add_pid(&self, pid: i32) -> Result<()> {
        for (_, dir) in self.mounted() {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn add_self_single_threaded(&self) -> Result<()> {
        // `0` into `tasks` moves the calling thread alone, and the kernel then skips the global
        // threadgroup rwsem (cgroup_procs_write_start: "if the thread is `current` ... we can
        // skip the global lock"); writing a pid to `cgroup.procs` takes it for writing, which
        // waits for an RCU grace period (8-16 ms measured here) on each join.
        for (_, dir) in self.mounted() {
            write(&dir.join("tasks"), "0")?;
        }
        Ok(())
    }

    fn pids(&self) -> Result<Vec<i32>> {
        // The freezer (or memory) hierarchy holds every process of the container.
        let dir = self
            .dir("freezer")
            .or_else(|| self.dir("memory"))
            .or_else(|| self.dir("pids"));
        match dir {
            Some(d) => read_pids(&d.join("cgroup.procs")),
            None => Ok(Vec::new()),
        }
    }

    fn freeze(&self) -> Result<()> {
        let Some(dir) = self.dir("freezer") else {
            return Ok(());
        };
        write(&dir.join("freezer.state"), "FROZEN")?;
        // FREEZING becomes FROZEN once every task stopped.
        for _ in 0..1000 {
            if read(&dir.join("freezer.state"))?.trim() == "FROZEN" {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err(CgroupError::Busy { path: dir })
    }

    fn thaw(&self) -> Result<()> {
        match self.dir("freezer") {
            Some(dir) if dir.exists() => write(&dir.join("freezer.state"), "THAWED"),
            _ => Ok(()),
        }
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        if let Some(d) = self.dir("cpuacct") {
            let p = d.join("cpuacct.usage");
            s.cpu_usage_ns = parse_u64(&p, &read(&p)?)?;
        }
        if let Some(d) = self.dir("memory") {
            let p = d.join("memory.usage_in_bytes");
            s.memory_usage = parse_u64(&p, &read(&p)?)?;
            let p = d.join("memory.limit_in_bytes");
            let limit = parse_u64(&p, &read(&p)?)?;
            // The kernel reports "no limit" as a huge page-aligned number.
            s.memory_limit = (limit < (1 << 62)).then_some(limit);
            let p = d.join("memory.oom_control");
            for line in read(&p)?.lines() {
                if let Some(n) = line.strip_prefix("oom_kill ") {
                    s.oom_kills = parse_u64(&p, n)?;
                }
            }
        }
        if let Some(d) = self.dir("pids") {
            let p = d.join("pids.current");
            s.pids = parse_u64(&p, &read(&p)?)?;
        }
        Ok(s)
    }

    fn destroy(&self) -> Result<()> {
        let mut first_err = None;
        for (_, dir) in self.mounted() {
            if let Err(e) = rmdir(&dir) {
                first_err.get_or_insert(e);
            }
            // The per-root parent goes when its last container went.
            if let Some(parent) = dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn paths(&self) -> Vec<PathBuf> {
        self.mounted().into_iter().map(|(_, d)| d).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake v1 tree: one folder per controller with the files the kernel would offer.
    fn fixture() -> (tempfile::TempDir, V1) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for c in [
            "memory", "cpu", "cpuacct", "cpuset", "pids", "freezer", "devices",
        ] {
            std::fs::create_dir_all(root.join(c)).unwrap();
        }
        std::fs::write(root.join("cpuset/cpuset.cpus"), "0-1\n").unwrap();
        std::fs::write(root.join("cpuset/cpuset.mems"), "0\n").unwrap();
        let levels = ["cpuset/rcompose-abcd", "cpuset/rcompose-abcd/c1"];
        for l in levels {
            std::fs::create_dir_all(root.join(l)).unwrap();
            std::fs::write(root.join(l).join("cpuset.cpus"), "").unwrap();
            std::fs::write(root.join(l).join("cpuset.mems"), "").unwrap();
        }
        let cg = V1::new(root, Path::new("rcompose-abcd/c1"));
        (tmp, cg)
    }

    #[test]
    fn v1_writes_limits_per_controller_and_skips_missing_ones() {
        let (tmp, cg) = fixture();
        let r = Resources {
            memory: Some(1 << 20),
            memory_reservation: Some(1 << 19),
            cpu_quota: Some(20_000),
            cpu_period: Some(50_000),
            cpu_shares: Some(256),
            pids_limit: Some(0),
            blkio_weight: Some(100),
            ..Default::default()
        };
        let devices = DeviceRules {
            allow_all: false,
            extra: vec!["c 10:200 rwm".into()],
        };
        cg.create(&r, &devices).unwrap();
        let d = |c: &str, f: &str| {
            std::fs::read_to_string(tmp.path().join(c).join("rcompose-abcd/c1").join(f)).unwrap()
        };
        assert_eq!(d("memory", "memory.limit_in_bytes"), "1048576");
        assert_eq!(d("memory", "memory.soft_limit_in_bytes"), "524288");
        assert_eq!(d("cpu", "cpu.cfs_quota_us"), "20000");
        assert_eq!(d("cpu", "cpu.cfs_period_us"), "50000");
        assert_eq!(d("cpu", "cpu.shares"), "256");
        assert_eq!(d("pids", "pids.max"), "max");
        // cpuset levels inherit the parent's cpus and mems before a process may join.
        assert_eq!(d("cpuset", "cpuset.cpus"), "0-1");
        assert_eq!(d("cpuset", "cpuset.mems"), "0");
        // A plain file keeps only the last write: the extra rule came last.
        assert_eq!(d("devices", "devices.allow"), "c 10:200 rwm");
        assert_eq!(d("devices", "devices.deny"), "a *:* rwm");
        assert!(!tmp.path().join("blkio").exists());
        assert_eq!(cg.paths().len(), 7);
    }

    #[test]
    fn v1_pids_come_from_the_freezer_hierarchy() {
        let (tmp, cg) = fixture();
        let d = tmp.path().join("freezer/rcompose-abcd/c1");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cgroup.procs"), "30\n10\n20\n").unwrap();
        assert_eq!(cg.pids().unwrap(), vec![10, 20, 30]);
    }
}
