//! Running `up`, `down` and `create`: build the options, talk to the supervisor, render.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::supervisor::daemon::{self, Supervisor};
use crate::supervisor::engine::Engine;
use crate::supervisor::ops::{self, Request};
use crate::supervisor::reconcile::{self, DownOptions, UpOptions};
use crate::supervisor::state::{ContainerStatus, ProjectState};

use super::attach::{follow, Printer};
use super::down::DownArgs;
use super::global::GlobalArgs;
use super::lifecycle::CreateArgs;
use super::project::{exit, parse_scale, Ctx};
use super::render::ProgressSink;
use super::up::UpArgs;

/// `rcompose up`.
pub fn up(g: &GlobalArgs, args: UpArgs) -> Result<ExitCode> {
    let ctx = Ctx::with_project(g, &args.services)?;
    // Refused before a supervisor starts or anything is created.
    for p in ctx.project.iter() {
        for svc in p.services.values() {
            crate::supervisor::spec::check_service(svc).map_err(anyhow::Error::msg)?;
        }
        crate::supervisor::spec::check_platforms(p, &ctx.paths.root).map_err(anyhow::Error::msg)?;
    }
    // Images of `build:` services first (the selected ones and their dependencies).
    super::build::before_start(g, &ctx, &args.services, args.build, args.no_build)?;
    let options = UpOptions {
        services: args.services.clone(),
        no_deps: args.no_deps,
        force_recreate: args.force_recreate,
        no_recreate: args.no_recreate,
        no_start: args.no_start,
        remove_orphans: args.remove_orphans,
        scale: parse_scale(&args.scale)?,
        pull: args.pull.clone(),
        timeout: args.timeout.map(Duration::from_secs),
    };
    let sink = ProgressSink::new(g, false);
    if g.dry_run {
        return dry_run(&ctx, &options);
    }
    let load = Ctx::load_request(g, &args.services);
    let detached = args.detach || args.wait;
    let req = Request::Up {
        load,
        options: options.clone(),
        parallel: g.parallel_limit(),
        wait: args.wait.then(|| args.wait_timeout.unwrap_or(0)),
    };
    if detached {
        return Ok(exit(ctx.send(&req, &sink)?));
    }
    attached(&ctx, &args, &req, &sink)
}

/// `up --dry-run`: the plan, each step with its cause; nothing changes.
fn dry_run(ctx: &Ctx, options: &UpOptions) -> Result<ExitCode> {
    let engine = Engine::open(ctx.paths.clone(), false)?;
    engine.set_project(ctx.project.clone().expect("up loads the project"));
    let observed = engine.observe(false);
    let loaded = engine.loaded().expect("just set");
    let plan = reconcile::reconcile_up(&loaded.desired, &observed, options);
    print!("{}", plan.text());
    Ok(ExitCode::SUCCESS)
}

/// Attached `up`: bring the stack up with a supervisor in this process (or the running one),
/// print every container's output until all exit or Ctrl-C; the first Ctrl-C stops the stack
/// gracefully, the second kills it.
fn attached(ctx: &Ctx, args: &UpArgs, req: &Request, sink: &ProgressSink) -> Result<ExitCode> {
    let interrupts = Arc::new(AtomicUsize::new(0));
    count_signals(interrupts.clone())?;
    // What ran before this `up`: a container that exits before the log follower first looks
    // still counts as an exit (`--exit-code-from`, `--abort-on-container-exit`).
    let before = ctx.state()?;
    let local: Option<Supervisor> = if daemon::running(&ctx.paths) {
        ctx.send(req, sink)?;
        None
    } else {
        daemon::clear_stale_socket(&ctx.paths);
        let sup = Supervisor::start(&ctx.paths)?;
        if let Err(e) = ops::handle(&sup.engine, req, sink) {
            sup.stop_all(Some(Duration::from_secs(0)));
            sup.shutdown();
            return Err(e.into());
        }
        Some(sup)
    };
    if args.no_start {
        if let Some(s) = local {
            s.shutdown();
        }
        return Ok(ExitCode::SUCCESS);
    }
    let no_attach = args.no_attach.clone();
    let attach_only = args.attach.clone();
    let select = move |c: &crate::supervisor::state::ContainerRecord| {
        !c.oneoff
            && !no_attach.contains(&c.service)
            && (attach_only.is_empty() || attach_only.contains(&c.service))
    };
    let st = ctx.state()?;
    let names: Vec<String> = st
        .containers
        .values()
        .filter(|c| select(c))
        .map(Printer::display_name)
        .collect();
    sink.message(&format!("Attaching to {}", names.join(", ")));
    let color = g_color(&ctx.global, args.no_color);
    let mut printer = Printer::new(color, !args.no_log_prefix, args.timestamps);
    let abort = args.abort_on_container_exit || args.exit_code_from.is_some();
    let abort_fail = args.abort_on_container_failure;
    let mut exit_code = 0;
    let aborted = std::cell::Cell::new(false);
    let exit_from = args.exit_code_from.clone();
    let mut stop_requested = false;
    let mut handled = 0usize;
    let paths = ctx.paths.clone();
    let stop_stack = |force: bool| {
        let req = if force {
            Request::Kill {
                services: vec![],
                signal: libc::SIGKILL,
            }
        } else {
            Request::Stop {
                services: vec![],
                timeout: args.timeout.map(Duration::from_secs),
            }
        };
        let p = paths.clone();
        std::thread::spawn(move || {
            let _ = daemon::call(&p, &req, &mut |_| {});
        });
    };
    follow(
        &ctx.paths,
        &mut printer,
        &select,
        true,
        Some(&before),
        &mut |st: &ProjectState| {
            let n = interrupts.load(Ordering::SeqCst);
            if n > handled {
                handled = n;
                if n == 1 {
                    eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
                    stop_stack(false);
                    stop_requested = true;
                } else {
                    stop_stack(true);
                }
            }
            let all_down =
                st.containers.values().filter(|c| select(c)).all(|c| {
                    matches!(c.status, ContainerStatus::Exited | ContainerStatus::Created)
                });
            if aborted.get() && !stop_requested {
                stop_stack(false);
                stop_requested = true;
            }
            all_down
        },
        &mut |p: &mut Printer, c| {
            let code = c.exit_code.unwrap_or(0);
            p.text(&format!(
                "{} exited with code {code}",
                Printer::display_name(c)
            ));
            if exit_from.as_deref() == Some(c.service.as_str()) {
                exit_code = code;
            }
            if (abort || (abort_fail && code != 0)) && !aborted.get() {
                aborted.set(true);
                if exit_from.is_none() && code != 0 {
                    exit_code = code;
                }
                p.text("Aborting on container exit...");
            }
        },
    );
    if let Some(s) = local {
        s.shutdown();
    }
    Ok(exit(exit_code))
}

fn g_color(g: &GlobalArgs, no_color: bool) -> bool {
    use std::io::IsTerminal;
    !no_color && g.use_ansi_on(std::io::stdout().is_terminal())
}

/// Count SIGINT/SIGTERM deliveries into `counter`, from a thread (signal-hook's iterator:
/// no code of ours runs in the signal handler).
pub fn count_signals(counter: Arc<AtomicUsize>) -> Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        })?;
    Ok(())
}

/// `rcompose down`.
pub fn down(g: &GlobalArgs, args: DownArgs) -> Result<ExitCode> {
    let ctx = Ctx::without_project(g)?;
    let options = DownOptions {
        remove_orphans: args.remove_orphans,
        volumes: args.volumes,
        timeout: args.timeout.map(Duration::from_secs),
        services: args.services.clone(),
        rmi: args.rmi.clone(),
    };
    let sink = ProgressSink::new(g, false);
    if g.dry_run {
        let st = ctx.state()?;
        let desired = ctx.project.as_ref().map(crate::supervisor::spec::desired);
        print!(
            "{}",
            reconcile::reconcile_down(&st, desired.as_ref(), &options).text()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let req = Request::Down {
        options,
        parallel: g.parallel_limit(),
    };
    let st = ctx.state()?;
    let sup_pid = st.supervisor.as_ref().map(|s| (s.pid, s.pid_start));
    let code = ctx.send(&req, &sink)?;
    // The supervisor exits after answering `down`: wait for it, so that nothing of the project
    // runs once `down` returns.
    if let Some((pid, start)) = sup_pid {
        crate::supervisor::state::wait_gone(pid, start, Duration::from_secs(5));
    }
    Ok(exit(code))
}

/// `rcompose create`: `up --no-start`.
pub fn create(g: &GlobalArgs, args: CreateArgs) -> Result<ExitCode> {
    let up_args = UpArgs {
        detach: true,
        abort_on_container_exit: false,
        abort_on_container_failure: false,
        exit_code_from: None,
        attach: vec![],
        attach_dependencies: false,
        no_attach: vec![],
        force_recreate: args.force_recreate,
        no_recreate: args.no_recreate,
        always_recreate_deps: false,
        no_deps: false,
        no_start: true,
        pull: args.pull,
        quiet_pull: args.quiet_pull,
        remove_orphans: args.remove_orphans,
        renew_anon_volumes: false,
        scale: args.scale,
        timeout: None,
        timestamps: false,
        no_color: false,
        no_log_prefix: false,
        wait: false,
        wait_timeout: None,
        build: args.build,
        no_build: args.no_build,
        yes: args.yes,
        services: args.services,
    };
    up(g, up_args)
}
