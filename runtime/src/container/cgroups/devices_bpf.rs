//! The device controller of cgroup v2: no files, an eBPF program of type
//! BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup, which the kernel runs on every open or
//! mknod of a device node by a process of the cgroup (and below). The program is assembled here
//! from the same rules as v1's `devices.allow` lines (`c 1:3 rwm`, `c *:* m`, `a *:* rwm`):
//! everything is denied except what a rule allows, as Docker's default. Loaded and attached
//! with bpf(2); the attachment holds the program until the cgroup is removed.

#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::{CgroupError, DeviceRules, Result, DEFAULT_DEVICE_RULES};

/// One rule: device type (`None` = any), major/minor (`None` = `*`), access bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub kind: Option<u32>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u32,
}

// struct bpf_cgroup_dev_ctx: access_type = (access << 16) | type, then major, minor.
const DEV_BLOCK: u32 = 1; // BPF_DEVCG_DEV_BLOCK
const DEV_CHAR: u32 = 2; // BPF_DEVCG_DEV_CHAR
const ACC_MKNOD: u32 = 1; // BPF_DEVCG_ACC_MKNOD
const ACC_READ: u32 = 2; // BPF_DEVCG_ACC_READ
const ACC_WRITE: u32 = 4; // BPF_DEVCG_ACC_WRITE

/// Parse a v1-style rule: `<a|b|c> <major|*>:<minor|*> <r|w|m…>`.
pub fn parse_rule(text: &str) -> Option<Rule> {
    let mut f = text.split_whitespace();
    let kind = match f.next()? {
        "a" => None,
        "b" => Some(DEV_BLOCK),
        "c" => Some(DEV_CHAR),
        _ => return None,
    };
    let (major, minor) = f.next()?.split_once(':')?;
    let num = |s: &str| -> Option<Option<u32>> {
        if s == "*" {
            Some(None)
        } else {
            s.parse().ok().map(Some)
        }
    };
    let mut access = 0;
    for c in f.next().unwrap_or("rwm").chars() {
        access |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => return None,
        };
    }
    Some(Rule {
        kind,
        major: num(major)?,
        minor: num(minor)?,
        access,
    })
}

/// The rules of a container: everything (privileged) or Docker's defaults plus `devices`.
pub fn rules(devices: &DeviceRules) -> Vec<Rule> {
    if devices.allow_all {
        return vec![parse_rule("a *:* rwm").expect("a valid rule")];
    }
    DEFAULT_DEVICE_RULES
        .iter()
        .copied()
        .chain(devices.extra.iter().map(String::as_str))
        .filter_map(parse_rule)
        .collect()
}

/// A BPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const MOV64_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// The program: r2 = type, r3 = access, r4 = major, r5 = minor; each rule is a block of
/// checks that jump to the next block on mismatch and return 1 (allow) at its end; after the
/// last block, return 0 (deny).
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules {
        let mut block = Vec::new();
        if let Some(k) = r.kind {
            block.push(insn(JNE_K, 2, 0, 0, k as i32));
        }
        if r.access != ACC_MKNOD | ACC_READ | ACC_WRITE {
            // Denied unless every requested access bit is in the rule: (access & !rule) == 0.
            block.push(insn(MOV64_X, 1, 3, 0, 0));
            block.push(insn(AND32_K, 1, 0, 0, !(r.access as i32) & 0x7));
            block.push(insn(JNE_K, 1, 0, 0, 0));
        }
        if let Some(m) = r.major {
            block.push(insn(JNE_K, 4, 0, 0, m as i32));
        }
        if let Some(m) = r.minor {
            block.push(insn(JNE_K, 5, 0, 0, m as i32));
        }
        block.push(insn(MOV64_K, 0, 0, 0, 1));
        block.push(insn(EXIT, 0, 0, 0, 0));
        // Every jump goes to the first instruction after this block.
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JNE_K {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(MOV64_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> std::io::Result<i64> {
    // SAFETY: `attr` is a zero-padded `union bpf_attr` of 128 bytes that lives for the call;
    // the kernel reads (and for some commands writes) within that size.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Whether `dir` is on a cgroup2 filesystem (unit tests use plain folders).
fn is_cgroup2(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir)
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// Load the device program for `devices` and attach it to the cgroup folder `dir`. A folder
/// that is not on cgroup2 (a unit test's fixture) is left alone.
pub fn attach(dir: &Path, devices: &DeviceRules) -> Result<()> {
    if !is_cgroup2(dir) {
        tracing::debug!(dir = %dir.display(), "not cgroup2: no device program");
        return Ok(());
    }
    let err = |what: &str, e: std::io::Error| CgroupError::Io {
        path: dir.to_path_buf(),
        source: std::io::Error::new(e.kind(), format!("{what}: {e}")),
    };
    let prog = program(&rules(devices));
    let mut raw = Vec::with_capacity(prog.len() * 8);
    for i in &prog {
        raw.push(i.code);
        raw.push(i.regs);
        raw.extend_from_slice(&i.off.to_le_bytes());
        raw.extend_from_slice(&i.imm.to_le_bytes());
    }
    let license = c"Apache-2.0";
    // Without a log first (a verbose log that overflows its buffer fails the load with
    // ENOSPC); on failure once more with the verifier's log for the message.
    let load = |log: Option<&mut Vec<u8>>| {
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&BPF_PROG_TYPE_CGROUP_DEVICE.to_ne_bytes());
        attr[4..8].copy_from_slice(&(prog.len() as u32).to_ne_bytes());
        attr[8..16].copy_from_slice(&(raw.as_ptr() as u64).to_ne_bytes());
        attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
        if let Some(log) = log {
            attr[24..28].copy_from_slice(&1u32.to_ne_bytes()); // log_level
            attr[28..32].copy_from_slice(&(log.len() as u32).to_ne_bytes());
            attr[32..40].copy_from_slice(&(log.as_mut_ptr() as u64).to_ne_bytes());
        }
        attr[48..58].copy_from_slice(b"rc_devices"); // prog_name
        bpf(BPF_PROG_LOAD, &mut attr)
    };
    let fd = match load(None) {
        Ok(fd) => fd,
        Err(e) => {
            let mut log = vec![0u8; 1 << 20];
            let _ = load(Some(&mut log));
            let text = String::from_utf8_lossy(&log);
            let tail: String = text
                .trim_end_matches('\0')
                .lines()
                .last()
                .unwrap_or("")
                .into();
            return Err(err(&format!("load the device program ({tail})"), e));
        }
    };
    // SAFETY: BPF_PROG_LOAD returned a new descriptor that we own.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cg = std::fs::File::open(dir).map_err(|e| err("open", e))?;
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&(cg.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog_fd.as_raw_fd() as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&BPF_CGROUP_DEVICE.to_ne_bytes());
    attr[12..16].copy_from_slice(&BPF_F_ALLOW_MULTI.to_ne_bytes());
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| err("attach the device program", e))?;
    tracing::debug!(dir = %dir.display(), insns = prog.len(), "device program attached");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_like_v1_lines() {
        assert_eq!(
            parse_rule("c 1:3 rwm"),
            Some(Rule {
                kind: Some(DEV_CHAR),
                major: Some(1),
                minor: Some(3),
                access: 7
            })
        );
        assert_eq!(
            parse_rule("b *:* m"),
            Some(Rule {
                kind: Some(DEV_BLOCK),
                major: None,
                minor: None,
                access: ACC_MKNOD
            })
        );
        assert_eq!(parse_rule("c 136:* rw").unwrap().minor, None);
        assert!(parse_rule("x 1:3 rwm").is_none());
        assert!(parse_rule("c 1:3 q").is_none());
    }

    /// Run the program in a tiny interpreter of the opcodes it uses.
    fn run(p: &[Insn], kind: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | kind, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => r[dst] = ctx[i.off as usize / 4] as u64,
                AND32_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                RSH32_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                MOV64_X => r[dst] = r[src],
                MOV64_K => r[dst] = i.imm as i64 as u64,
                JNE_K => {
                    if r[dst] != i.imm as i64 as u64 {
                        pc += i.off as usize;
                    }
                }
                EXIT => return r[0],
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn the_default_program_allows_dockers_devices_only() {
        let p = program(&rules(&DeviceRules::default()));
        let rw = ACC_READ | ACC_WRITE;
        assert_eq!(run(&p, DEV_CHAR, rw, 1, 3), 1, "/dev/null");
        assert_eq!(run(&p, DEV_CHAR, rw, 136, 7), 1, "a pty");
        assert_eq!(
            run(&p, DEV_CHAR, ACC_MKNOD, 8, 0),
            1,
            "mknod of any char device"
        );
        assert_eq!(
            run(&p, DEV_BLOCK, ACC_MKNOD, 8, 0),
            1,
            "mknod of any block device"
        );
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 1), 0, "/dev/mem");
        assert_eq!(run(&p, DEV_BLOCK, rw, 8, 0), 0, "/dev/sda");
        assert_eq!(
            run(&p, DEV_CHAR, rw | ACC_MKNOD, 10, 237),
            0,
            "loop-control"
        );
        let extra = DeviceRules {
            allow_all: false,
            extra: vec!["c 10:237 r".into()],
        };
        let p = program(&rules(&extra));
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 10, 237), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 10, 237), 0, "read only");
        let all = program(&rules(&DeviceRules {
            allow_all: true,
            extra: vec![],
        }));
        assert_eq!(run(&all, DEV_BLOCK, rw, 8, 0), 1);
    }
}
