//! cgroup v2: one unified hierarchy. Controllers must be enabled in the parent's
//! `cgroup.subtree_control` before their files appear in the child. Device access is an eBPF
//! program attached to the cgroup ([`super::devices_bpf`]).

use std::path::{Path, PathBuf};

use super::{
    cpu_quota, mkdir, parse_u64, read, read_pids, rmdir, write, Cgroup, CgroupError, DeviceRules,
    Result, Stats,
};
use crate::container::spec::Resources;

#[derive(Debug, Clone)]
pub struct V2 {
    root: PathBuf,
    relative: PathBuf,
}

impl V2 {
    pub fn new(root: &Path, relative: &Path) -> Self {
        Self {
            root: root.into(),
            relative: relative.into(),
        }
    }

    fn dir(&self) -> PathBuf {
        self.root.join(&self.relative)
    }

    /// Enable the controllers we need on each ancestor below the root.
    fn enable_controllers(&self) -> Result<()> {
        let available = read(&self.root.join("cgroup.controllers")).unwrap_or_default();
        let wanted: Vec<String> = ["cpu", "cpuset", "memory", "pids", "io"]
            .iter()
            .filter(|c| available.split_whitespace().any(|a| a == **c))
            .map(|c| format!("+{c}"))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let mut level = self.root.clone();
        let comps: Vec<_> = self.relative.components().collect();
        for comp in &comps[..comps.len().saturating_sub(1)] {
            write(&level.join("cgroup.subtree_control"), &wanted.join(" "))?;
            level = level.join(comp);
        }
        write(&level.join("cgroup.subtree_control"), &wanted.join(" "))
    }
}

/// v1 shares (2..=262144, default 1024) → v2 weight (1..=10000, default 100), the formula
/// runc and crun use.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

impl Cgroup for V2 {
    fn create(&self, r: &Resources, devices: &DeviceRules) -> Result<()> {
        let dir = self.dir();
        mkdir(&dir)?;
        self.enable_controllers()?;
        super::devices_bpf::attach(&dir, devices)?;
        if r.oom_kill_disable {
            tracing::warn!("oom_kill_disable ignored: cgroup v2 has no switch for the OOM killer");
        }
        if let Some(m) = r.memory {
            write(&dir.join("memory.max"), &m.to_string())?;
            if let Some(s) = r.memory_swap {
                // v2 limits swap alone; compose's memswap_limit is memory + swap.
                let swap = if s < 0 {
                    "max".to_string()
                } else {
                    (s - m).max(0).to_string()
                };
                write(&dir.join("memory.swap.max"), &swap)?;
            }
        }
        if let Some(s) = r.memory_reservation {
            write(&dir.join("memory.low"), &s.to_string())?;
        }
        if let Some(s) = r.cpu_shares {
            write(&dir.join("cpu.weight"), &shares_to_weight(s).to_string())?;
        }
        let (quota, period) = cpu_quota(r);
        if let Some(q) = quota {
            let q = if q <= 0 {
                "max".to_string()
            } else {
                q.to_string()
            };
            write(&dir.join("cpu.max"), &format!("{q} {period}"))?;
        }
        if let Some(c) = &r.cpuset_cpus {
            write(&dir.join("cpuset.cpus"), c)?;
        }
        if let Some(m) = &r.cpuset_mems {
            write(&dir.join("cpuset.mems"), m)?;
        }
        if let Some(p) = r.pids_limit {
            let v = if p <= 0 {
                "max".to_string()
            } else {
                p.to_string()
            };
            write(&dir.join("pids.max"), &v)?;
        }
        if let Some(w) = r.blkio_weight {
            // io.weight is 1..=10000; blkio weight 10..=1000 maps linearly as runc does.
            let weight = 1 + (u64::from(w).saturating_sub(10)) * 9999 / 990;
            write(&dir.join("io.weight"), &format!("default {weight}"))?;
        }
        Ok(())
    }

    fn add_pid(&self, pid: i32) -> Result<()> {
        write(&self.dir().join("cgroup.procs"), &pid.to_string())
    }

    fn pids(&self) -> Result<Vec<i32>> {
        read_pids(&self.dir().join("cgroup.procs"))
    }

    fn freeze(&self) -> Result<()> {
        let dir = self.dir();
        write(&dir.join("cgroup.freeze"), "1")?;
        for _ in 0..1000 {
            if read(&dir.join("cgroup.events"))?
                .lines()
                .any(|l| l.trim() == "frozen 1")
            {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err(CgroupError::Busy { path: dir })
    }

    fn thaw(&self) -> Result<()> {
        let dir = self.dir();
        if dir.exists() {
            write(&dir.join("cgroup.freeze"), "0")?;
        }
        Ok(())
    }

    fn stats(&self) -> Result<Stats> {
        let dir = self.dir();
        let mut s = Stats::default();
        let p = dir.join("cpu.stat");
        if let Ok(text) = read(&p) {
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("usage_usec ") {
                    s.cpu_usage_ns = parse_u64(&p, v)? * 1000;
                }
            }
        }
        let p = dir.join("memory.current");
        if p.exists() {
            s.memory_usage = parse_u64(&p, &read(&p)?)?;
            let p = dir.join("memory.max");
            let max = read(&p)?;
            s.memory_limit = if max.trim() == "max" {
                None
            } else {
                Some(parse_u64(&p, &max)?)
            };
            let p = dir.join("memory.events");
            for line in read(&p).unwrap_or_default().lines() {
                if let Some(v) = line.strip_prefix("oom_kill ") {
                    s.oom_kills = parse_u64(&p, v)?;
                }
            }
        }
        let p = dir.join("pids.current");
        if p.exists() {
            s.pids = parse_u64(&p, &read(&p)?)?;
        }
        Ok(s)
    }

    fn destroy(&self) -> Result<()> {
        let dir = self.dir();
        rmdir(&dir)?;
        if let Some(parent) = dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
        Ok(())
    }

    fn paths(&self) -> Vec<PathBuf> {
        vec![self.dir()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake unified hierarchy: plain files in a temp dir.
    fn fixture() -> (tempfile::TempDir, V2) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::write(
            root.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        std::fs::write(root.join("cgroup.subtree_control"), "").unwrap();
        std::fs::create_dir_all(root.join("rcompose-abcd")).unwrap();
        std::fs::write(root.join("rcompose-abcd/cgroup.subtree_control"), "").unwrap();
        let cg = V2::new(root, Path::new("rcompose-abcd/c1"));
        (tmp, cg)
    }

    #[test]
    fn v2_writes_limits_in_unified_format() {
        let (tmp, cg) = fixture();
        let r = Resources {
            memory: Some(64 << 20),
            memory_swap: Some(96 << 20),
            memory_reservation: Some(32 << 20),
            cpus: Some(1.5),
            cpu_shares: Some(512),
            cpuset_cpus: Some("0".into()),
            pids_limit: Some(20),
            blkio_weight: Some(500),
            ..Default::default()
        };
        cg.create(&r, &DeviceRules::default()).unwrap();
        let d = tmp.path().join("rcompose-abcd/c1");
        let f = |n: &str| std::fs::read_to_string(d.join(n)).unwrap();
        assert_eq!(f("memory.max"), "67108864");
        assert_eq!(f("memory.swap.max"), "33554432");
        assert_eq!(f("memory.low"), "33554432");
        assert_eq!(f("cpu.max"), "150000 100000");
        assert_eq!(f("cpu.weight"), shares_to_weight(512).to_string());
        assert_eq!(f("cpuset.cpus"), "0");
        assert_eq!(f("pids.max"), "20");
        assert_eq!(f("io.weight"), "default 4950");
        let sub = std::fs::read_to_string(tmp.path().join("cgroup.subtree_control")).unwrap();
        assert_eq!(sub, "+cpu +cpuset +memory +pids +io");
        let sub = std::fs::read_to_string(tmp.path().join("rcompose-abcd/cgroup.subtree_control"))
            .unwrap();
        assert_eq!(sub, "+cpu +cpuset +memory +pids +io");
    }

    #[test]
    fn v2_reads_stats_and_oom_kills() {
        let (tmp, cg) = fixture();
        let d = tmp.path().join("rcompose-abcd/c1");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\n").unwrap();
        std::fs::write(d.join("memory.current"), "4096\n").unwrap();
        std::fs::write(d.join("memory.max"), "max\n").unwrap();
        std::fs::write(d.join("memory.events"), "low 0\noom 1\noom_kill 2\n").unwrap();
        std::fs::write(d.join("pids.current"), "3\n").unwrap();
        std::fs::write(d.join("cgroup.procs"), "12\n7\n").unwrap();
        let s = cg.stats().unwrap();
        assert_eq!(
            s,
            Stats {
                cpu_usage_ns: 1_500_000,
                memory_usage: 4096,
                memory_limit: None,
                pids: 3,
                oom_kills: 2
            }
        );
        assert_eq!(cg.pids().unwrap(), vec![7, 12]);
    }

    #[test]
    fn v2_freeze_waits_for_frozen_event() {
        let (tmp, cg) = fixture();
        let d = tmp.path().join("rcompose-abcd/c1");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        cg.freeze().unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("cgroup.freeze")).unwrap(),
            "1"
        );
        cg.thaw().unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("cgroup.freeze")).unwrap(),
            "0"
        );
    }

    #[test]
    fn shares_map_to_weight_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10000);
        assert_eq!(shares_to_weight(1024), 39);
    }
}
