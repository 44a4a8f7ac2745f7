//! Benchmark driver for `benches/start.sh`: create, start and reap one container running
//! `true` on a given root filesystem folder, then remove it (create-to-exit, as `runc run`).
//!
//! Usage: container_start <helper-binary> <rootfs> <state-root>

use std::path::PathBuf;

use runtime::container::{
    become_subreaper, wait, ContainerSpec, ExitStatus, ProcessSpec, Runtime, Stdio,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: container_start <helper-binary> <rootfs> <state-root>");
        std::process::exit(2);
    }
    become_subreaper().expect("subreaper");
    let state_root = PathBuf::from(&args[3]);
    let runtime = Runtime {
        helper: args[1].clone().into(),
        cgroup_root: "/sys/fs/cgroup".into(),
        state_root: state_root.clone(),
    };
    let id = format!("bench-{}", std::process::id());
    let spec = ContainerSpec {
        id: id.clone(),
        name: id.clone(),
        service: "bench".into(),
        state_dir: state_root.join(&id),
        lower_dirs: vec![PathBuf::from(&args[2])],
        process: ProcessSpec {
            args: vec!["/bin/true".into()],
            ..Default::default()
        },
        hostname: Some("bench".into()),
        ..Default::default()
    };
    let t0 = std::time::Instant::now();
    let null = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .expect("/dev/null")
            .into()
    };
    let c = runtime
        .create(
            &spec,
            Stdio {
                stdin: None,
                stdout: null(),
                stderr: null(),
            },
        )
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(1)
        });
    let t1 = t0.elapsed();
    c.start().expect("start");
    let t2 = t0.elapsed();
    let status = wait(c.pid).expect("wait");
    let t3 = t0.elapsed();
    c.remove().expect("remove");
    if std::env::var_os("RCOMPOSE_BENCH_PHASES").is_some() {
        eprintln!(
            "create {t1:?} start {:?} run+exit {:?} remove {:?}",
            t2 - t1,
            t3 - t2,
            t0.elapsed() - t3
        );
    }
    std::process::exit(if status == ExitStatus::Code(0) { 0 } else { 1 });
}
