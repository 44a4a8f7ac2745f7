//! The read-only verbs: `top`, `port`, `images`, `ls`, `stats`, `events`, `attach`, `cp`,
//! `pull`. Their flags are Docker Compose's.

use clap::Args;

/// `rcompose top`
#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `rcompose port`
#[derive(Debug, Clone, Args)]
pub struct PortArgs {
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// tcp or udp
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    /// The service
    pub service: String,
    /// The container port
    pub private_port: u16,
}

/// `rcompose images`
#[derive(Debug, Clone, Args)]
pub struct ImagesArgs {
    /// Format the output: table or json
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Only display IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `rcompose ls`
#[derive(Debug, Clone, Args)]
pub struct LsArgs {
    /// Show all stopped Compose projects
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Filter output based on conditions provided (name=...)
    #[arg(long)]
    pub filter: Option<String>,
    /// Format the output: table or json
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Only display project names
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `rcompose attach`
#[derive(Debug, Clone, Args)]
pub struct AttachArgs {
    /// Override the key sequence for detaching from a container
    #[arg(long)]
    pub detach_keys: Option<String>,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// Do not attach STDIN
    #[arg(long)]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// The service
    pub service: String,
}

/// `rcompose cp`
#[derive(Debug, Clone, Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// SERVICE:SRC_PATH or a host path
    pub source: String,
    /// SERVICE:DEST_PATH or a host path
    pub destination: String,
}

/// `rcompose pull`
#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// Ignore images that can be built
    #[arg(long)]
    pub ignore_buildable: bool,
    /// Pull what it can and ignores images with pull failures
    #[arg(long)]
    pub ignore_pull_failures: bool,
    /// Also pull services declared as dependencies
    #[arg(long)]
    pub include_deps: bool,
    /// Apply pull policy ("missing"|"always")
    #[arg(long)]
    pub policy: Option<String>,
    /// Pull without printing progress information
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `rcompose completion`
#[derive(Debug, Clone, Args)]
pub struct CompletionArgs {
    /// The shell: bash, zsh or fish
    pub shell: clap_complete::Shell,
}

use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use runtime::container as rt;
use runtime::image as img;
use serde_json::json;

use crate::supervisor::state::{
    list_projects, pid_alive, ContainerStatus, ProjectState, StateStore,
};

use super::global::GlobalArgs;
use super::project::Ctx;
use super::render::table;

fn running_state(ctx: &Ctx) -> Result<ProjectState> {
    let mut st = ctx.state()?;
    for c in st.containers.values_mut() {
        if matches!(c.status, ContainerStatus::Running | ContainerStatus::Paused)
            && !c.pid.is_some_and(|p| pid_alive(p, c.pid_start))
        {
            c.status = ContainerStatus::Exited;
        }
    }
    Ok(st)
}

fn handle(ctx: &Ctx, name: &str) -> Result<rt::Created> {
    rt::Created::load(&ctx.paths.container_dir(name).join("rt"))
        .with_context(|| format!("container {name}"))
}

/// `rcompose top`.
pub fn top(g: &GlobalArgs, a: TopArgs) -> Result<ExitCode> {
    let ctx = Ctx::without_project(g)?;
    let st = running_state(&ctx)?;
    for c in st.containers.values().filter(|c| {
        c.status == ContainerStatus::Running
            && (a.services.is_empty() || a.services.contains(&c.service))
    }) {
        let h = handle(&ctx, &c.name)?;
        let mut rows = Vec::new();
        for pid in h.processes().unwrap_or_default() {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, r)| r.split_whitespace().collect())
                .unwrap_or_default();
            let ppid = fields.get(1).copied().unwrap_or("0").to_string();
            let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("Uid:"))
                        .and_then(|l| l.split_whitespace().nth(1).map(String::from))
                })
                .unwrap_or_default();
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| {
                    b.split(|x| *x == 0)
                        .filter(|p| !p.is_empty())
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            rows.push(vec![uid, pid.to_string(), ppid, cmd]);
        }
        println!("{}", c.name);
        print!("{}", table(&["UID", "PID", "PPID", "CMD"], &rows));
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

/// `rcompose port`.
pub fn port(g: &GlobalArgs, a: PortArgs) -> Result<ExitCode> {
    let ctx = Ctx::without_project(g)?;
    let st = ctx.state()?;
    let Some(c) = st
        .containers
        .values()
        .find(|c| c.service == a.service && c.number == a.index && !c.oneoff)
    else {
        bail!("service {:?} has no container {}", a.service, a.index);
    };
    match c
        .ports
        .iter()
        .find(|p| p.container_port == a.private_port && p.protocol == a.protocol)
    {
        Some(p) => {
            println!("{}:{}", p.host_ip, p.host_port);
            Ok(ExitCode::SUCCESS)
        }
        None => bail!(
            "no port {}/{} published for {}",
            a.private_port,
            a.protocol,
            c.name
        ),
    }
}

/// `rcompose images`: the images of the project's containers.
pub fn images(g: &GlobalArgs, a: ImagesArgs) -> Result<ExitCode> {
    let ctx = Ctx::without_project(g)?;
    let st = ctx.state()?;
    let store = img::Store::open(&g.root)?;
    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    for c in st
        .containers
        .values()
        .filter(|c| a.services.is_empty() || a.services.contains(&c.service))
    {
        let Some(i) = store.get(&c.image)? else {
            continue;
        };
        let id = i.id.to_string();
        let short = id
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect::<String>();
        let (repo, tag) = match c.image.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
            _ => (c.image.clone(), "latest".to_string()),
        };
        if a.quiet {
            println!("{id}");
            continue;
        }
        json_rows.push(json!({"ContainerName": c.name, "Repository": repo, "Tag": tag, "ID": id, "Size": i.size}));
        rows.push(vec![
            c.name.clone(),
            repo,
            tag,
            short,
            format!("{}B", i.size),
        ]);
    }
    if a.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    if a.format == "json" {
        println!("{}", serde_json::Value::Array(json_rows));
    } else {
        print!(
            "{}",
            table(
                &["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"],
                &rows
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `rcompose ls`: projects recorded under this root.
pub fn ls(g: &GlobalArgs, a: LsArgs) -> Result<ExitCode> {
    let mut rows = Vec::new();
    let mut objs = Vec::new();
    for name in list_projects(&g.root) {
        if let Some(f) = &a.filter {
            if let Some(("name", v)) = f.split_once('=') {
                if !name.contains(v) {
                    continue;
                }
            }
        }
        let paths = crate::supervisor::state::ProjectPaths::new(&g.root, &g.run_dir, &name);
        let Some(st) = StateStore::new(paths).load()? else {
            continue;
        };
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for c in st.containers.values() {
            let alive = c.pid.is_some_and(|p| pid_alive(p, c.pid_start));
            let s = match c.status {
                ContainerStatus::Running | ContainerStatus::Paused if alive => c.status.as_str(),
                ContainerStatus::Running | ContainerStatus::Paused => "exited",
                other => other.as_str(),
            };
            *counts.entry(s).or_default() += 1;
        }
        let running = counts.get("running").copied().unwrap_or(0);
        if running == 0 && !a.all {
            continue;
        }
        let status = counts
            .iter()
            .map(|(s, n)| format!("{s}({n})"))
            .collect::<Vec<_>>()
            .join(", ");
        let files = st
            .config_files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(",");
        if a.quiet {
            println!("{name}");
            continue;
        }
        objs.push(json!({"Name": name, "Status": status, "ConfigFiles": files}));
        rows.push(vec![name, status, files]);
    }
    if a.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    if a.format == "json" {
        println!("{}", serde_json::Value::Array(objs));
    } else {
        print!("{}", table(&["NAME", "STATUS", "CONFIG FILES"], &rows));
    }
    Ok(ExitCode::SUCCESS)
}

/// `rcompose pull`: the images of the project's services.
pub fn pull(g: &GlobalArgs, a: PullArgs) -> Result<ExitCode> {
    let ctx = Ctx::with_project(g, &a.services)?;
    let project = ctx.project.as_ref().expect("loaded");
    let store = img::Store::open(&g.root)?;
    let policy = img::PullPolicy::parse(a.policy.as_deref().unwrap_or("always"))?;
    // Per-layer progress: bars on a terminal, a line per layer otherwise.
    let renderer = super::image::Renderer::new(a.quiet);
    let mut failed = false;
    for (name, svc) in &project.services {
        if !a.services.is_empty() && !a.services.contains(name) {
            continue;
        }
        let reference = crate::supervisor::spec::image_ref(project, svc);
        if !a.quiet {
            eprintln!(" Image {reference}  Pulling");
        }
        match store.ensure(&reference, policy, None, &|e| renderer.event(e)) {
            Ok(_) => {
                if !a.quiet {
                    eprintln!(" Image {reference}  Pulled");
                }
            }
            Err(e) if a.ignore_pull_failures => eprintln!(" Image {reference}  Error {e}"),
            Err(e) => {
                eprintln!(" Image {reference}  Error {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(18)
    } else {
        ExitCode::SUCCESS
    })
}

/// `rcompose attach`: the container's output as it comes, and (unless `--no-stdin`) this
/// terminal's input into the container's standard input through the supervisor's relay
/// (containers with `stdin_open: true` or `tty: true`); `--detach-keys` (default ctrl-p
/// ctrl-q) detaches, `--sig-proxy` (default on, not with a tty) passes signals on. Exits with
/// the container's exit code, or 0 after detaching.
pub fn attach(g: &GlobalArgs, a: AttachArgs) -> Result<ExitCode> {
    use std::io::IsTerminal;
    use std::sync::atomic::{AtomicBool, Ordering};
    let ctx = Ctx::without_project(g)?;
    let st = running_state(&ctx)?;
    let Some(c) = st
        .containers
        .values()
        .find(|c| c.service == a.service && c.number == a.index && !c.oneoff)
        .cloned()
    else {
        bail!("service {:?} has no container {}", a.service, a.index);
    };
    if c.status != ContainerStatus::Running {
        bail!("container {} is not running", c.name);
    }
    let keys = super::detach::parse_keys(
        a.detach_keys
            .as_deref()
            .unwrap_or(super::detach::DEFAULT_KEYS),
    )?;
    let tty = handle(&ctx, &c.name).is_ok_and(|h| h.spec.process.tty);
    let detached = std::sync::Arc::new(AtomicBool::new(false));
    let mut raw = None;
    if !a.no_stdin {
        let sock = crate::supervisor::stdin::socket_path(&ctx.paths, &c.name);
        match super::detach::input_target(&sock, c.pid) {
            Some(target) => {
                if tty && std::io::stdin().is_terminal() {
                    raw = Some(super::tty::RawMode::enter()?);
                }
                super::detach::forward_stdin(target, keys, detached.clone())
                    .with_context(|| format!("container {}: forwarding input", c.name))?;
            }
            None if std::io::stdin().is_terminal() => eprintln!(
                "container {} keeps no standard input open (stdin_open: true or tty: true): input is not forwarded",
                c.name
            ),
            None => {}
        }
    }
    if a.sig_proxy && !tty {
        if let Some(pid) = c.pid {
            super::detach::proxy_signals(pid)?;
        }
    }
    let name = c.name.clone();
    let mut printer = super::attach::Printer::new(false, false, false);
    let mut last = None;
    super::attach::follow(
        &ctx.paths,
        &mut printer,
        &move |r| r.name == name,
        false,
        None,
        &mut |st| {
            let rec = st.containers.get(&c.name);
            last = rec.cloned();
            detached.load(Ordering::SeqCst)
                || rec.is_none_or(|r| {
                    r.status == ContainerStatus::Exited
                        || !r.pid.is_some_and(|p| pid_alive(p, r.pid_start))
                })
        },
        &mut |_, _| {},
    );
    drop(raw);
    if detached.load(Ordering::SeqCst) {
        eprintln!("read escape sequence");
        return Ok(ExitCode::SUCCESS);
    }
    // The exit code is recorded once the supervisor reaped the container.
    let mut code = last.as_ref().and_then(|r| r.exit_code);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while code.is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        code = ctx
            .state()
            .ok()
            .and_then(|s| s.containers.get(&c.name).and_then(|r| r.exit_code));
    }
    Ok(super::project::exit(code.unwrap_or(0)))
}

/// `rcompose cp`: copy between a container and the host by running `tar` in the container
/// (**Δ** the image needs a `tar`; Docker reads the container's filesystem directly).
pub fn cp(g: &GlobalArgs, a: CpArgs) -> Result<ExitCode> {
    let ctx = Ctx::without_project(g)?;
    let split = |s: &str| -> Option<(String, String)> {
        let (svc, path) = s.split_once(':')?;
        (!svc.contains('/')).then(|| (svc.to_string(), path.to_string()))
    };
    let (from_container, svc, cpath, host) = match (split(&a.source), split(&a.destination)) {
        (Some((s, p)), None) => (true, s, p, a.destination.clone()),
        (None, Some((s, p))) => (false, s, p, a.source.clone()),
        _ => bail!("cp: exactly one of source and destination must be SERVICE:PATH"),
    };
    let st = running_state(&ctx)?;
    let Some(c) = st
        .containers
        .values()
        .find(|c| c.service == svc && c.number == a.index && !c.oneoff)
    else {
        bail!("service {svc:?} has no container {}", a.index);
    };
    if c.status != ContainerStatus::Running {
        bail!("container {} is not running", c.name);
    }
    let created = handle(&ctx, &c.name)?;
    let runtime = rt::Runtime::new(&g.root)?;
    rt::become_subreaper()?;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let stderr = std::io::stderr().as_fd_owned()?;
    let cpath = std::path::Path::new(&cpath);
    let (dir, base) = (
        cpath
            .parent()
            .map(|p| p.display().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into()),
        cpath
            .file_name()
            .map(|b| b.to_string_lossy().to_string())
            .unwrap_or_else(|| ".".into()),
    );
    let mut host_tar = std::process::Command::new("tar");
    let (args, stdio, host_stdio) = if from_container {
        std::fs::create_dir_all(&host)?;
        host_tar.args(["-xf", "-", "-C", &host]);
        (
            vec![
                "tar".to_string(),
                "-C".into(),
                dir,
                "-cf".into(),
                "-".into(),
                base,
            ],
            rt::Stdio {
                stdin: None,
                stdout: w,
                stderr,
            },
            std::process::Stdio::from(r),
        )
    } else {
        let hp = std::path::Path::new(&host);
        let hdir = hp
            .parent()
            .map(|p| p.display().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| ".".into());
        let hbase = hp
            .file_name()
            .map(|b| b.to_string_lossy().to_string())
            .unwrap_or_else(|| ".".into());
        host_tar.args(["-C", &hdir, "-cf", "-", &hbase]);
        let target = cpath.display().to_string();
        (
            vec![
                "tar".to_string(),
                "-C".into(),
                target,
                "-xf".into(),
                "-".into(),
            ],
            rt::Stdio {
                stdin: Some(r),
                stdout: std::io::stdout().as_fd_owned()?,
                stderr,
            },
            std::process::Stdio::from(w),
        )
    };
    let spec = rt::ExecSpec {
        process: rt::ProcessSpec {
            args,
            env: created.spec.process.env.clone(),
            stdin: !from_container,
            ..Default::default()
        },
        privileged: false,
    };
    if from_container {
        host_tar.stdin(host_stdio);
    } else {
        host_tar.stdout(host_stdio);
    }
    let mut host_child = host_tar.spawn().context("run tar on the host")?;
    drop(host_tar);
    let p = created.exec(&runtime, &spec, stdio)?;
    let status = rt::wait(p.pid)?;
    let host_status = host_child.wait()?;
    if status.code() != 0 || !host_status.success() {
        bail!(
            "cp: tar in container {} exited with {}, tar on the host with {host_status}",
            c.name,
            status.code()
        );
    }
    Ok(ExitCode::SUCCESS)
}

trait AsFdOwned {
    fn as_fd_owned(&self) -> std::io::Result<std::os::fd::OwnedFd>;
}

impl<T: std::os::fd::AsFd> AsFdOwned for T {
    fn as_fd_owned(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        self.as_fd().try_clone_to_owned()
    }
}
