//! `rcompose build`: build the images of services with `build:` (Dockerfile builds with our
//! own runtime), and the build step `up`/`run` take before starting (`--build`, `--no-build`,
//! `pull_policy: build`, or an image not in the store). Renders the builder's progress as
//! Docker Compose's plain progress does: one line per step, `CACHED` when reused, RUN output
//! indented.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use runtime::build::BuildEvent;
use runtime::image::Store;

use crate::supervisor::build::{self, BuildOverrides};

use super::global::{GlobalArgs, Progress};
use super::project::Ctx;

#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the base images
    #[arg(long)]
    pub pull: bool,
    /// Set build-time variables for services (KEY=VALUE, or KEY to take it from the
    /// environment)
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_arg: Vec<String>,
    /// Don't print anything to standard output
    #[arg(short, long)]
    pub quiet: bool,
    /// Services to build (default: every service with a build section)
    pub services: Vec<String>,
}

/// `--build-arg` values: `KEY=VALUE`, or `KEY` taken from the environment (left out if unset).
pub fn parse_build_args(args: &[String]) -> BTreeMap<String, String> {
    args.iter()
        .filter_map(|a| match a.split_once('=') {
            Some((k, v)) => Some((k.to_string(), v.to_string())),
            None => std::env::var(a).ok().map(|v| (a.clone(), v)),
        })
        .collect()
}

/// `rcompose build [SERVICE…]`.
pub fn run(g: &GlobalArgs, a: BuildArgs) -> Result<ExitCode> {
    let ctx = Ctx::with_project(g, &a.services)?;
    let project = ctx.project.clone().expect("loaded");
    for s in &a.services {
        match project.services.get(s) {
            None => bail!("no such service: {s}"),
            Some(svc) if svc.build.is_none() => {
                bail!("service {s}: has no build section (nothing to build)")
            }
            Some(_) => {}
        }
    }
    let selected: Vec<String> = project
        .services
        .iter()
        .filter(|(n, s)| s.build.is_some() && (a.services.is_empty() || a.services.contains(n)))
        .map(|(n, _)| n.clone())
        .collect();
    let overrides = BuildOverrides {
        no_cache: a.no_cache,
        pull: a.pull,
        args: parse_build_args(&a.build_arg),
    };
    if g.dry_run {
        for s in &selected {
            let o = build::options(&project, s, &overrides)?;
            println!(
                "build {s}: {} from {} ({})",
                o.tags.join(", "),
                o.context.display(),
                o.dockerfile_inline
                    .as_ref()
                    .map(|_| "dockerfile_inline".to_string())
                    .unwrap_or_else(|| o
                        .dockerfile
                        .map(|d| d.display().to_string())
                        .unwrap_or_else(|| "Dockerfile".into()))
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    build_services(
        g,
        &project,
        &build::build_order(&project, &selected),
        &overrides,
        a.quiet,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Build `services` one after the other, rendering progress on standard error.
pub fn build_services(
    g: &GlobalArgs,
    project: &compose::Project,
    services: &[String],
    overrides: &BuildOverrides,
    quiet: bool,
) -> Result<()> {
    let quiet = quiet || g.progress == Progress::Quiet;
    let json = g.progress == Progress::Json;
    // One service; `tagged` prefixes its lines with the service when builds run side by side.
    let one = |s: &str, tagged: bool| -> Result<()> {
        if !quiet && !json {
            eprintln!("Building {s}");
        }
        let started = std::time::Instant::now();
        let who = if tagged {
            format!("{s} ")
        } else {
            String::new()
        };
        let render = |e: BuildEvent| {
            if quiet {
                return;
            }
            let mut err = std::io::stderr().lock();
            if json {
                let v = match &e {
                    BuildEvent::Step {
                        stage,
                        step,
                        total,
                        instruction,
                        cached,
                    } => serde_json::json!({"service": s, "stage": stage, "step": step,
                        "total": total, "instruction": instruction, "cached": cached}),
                    BuildEvent::Output { line } => {
                        serde_json::json!({"service": s, "output": line})
                    }
                    BuildEvent::Done {
                        reference,
                        id,
                        steps,
                        cached,
                    } => serde_json::json!({
                        "service": s, "image": reference, "id": id.to_string(),
                        "steps": steps, "cached": cached}),
                };
                let _ = writeln!(err, "{v}");
                return;
            }
            let _ = match e {
                BuildEvent::Step {
                    stage,
                    step,
                    total,
                    instruction,
                    cached,
                } => writeln!(
                    err,
                    " => {}[{who}{}{step}/{total}] {instruction}",
                    if cached { "CACHED " } else { "" },
                    if stage.is_empty() {
                        String::new()
                    } else {
                        format!("{stage} ")
                    }
                ),
                BuildEvent::Output { line } => writeln!(err, "    {who}{line}"),
                BuildEvent::Done { reference, id, .. } => {
                    writeln!(err, " => naming to {reference} ({})", id.short())
                }
            };
        };
        build::build_service(&g.root, project, s, overrides, &render)?;
        if !quiet && !json {
            eprintln!(
                " ✔ Service {s}  Built  {:.1}s",
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    };
    // Waves: services whose builds use no image still to be built run side by side (as
    // Docker Compose builds in parallel), at most `--parallel` at a time.
    let mut rest: Vec<String> = services.to_vec();
    while !rest.is_empty() {
        let mut wave: Vec<String> = rest
            .iter()
            .filter(|s| {
                project
                    .services
                    .get(*s)
                    .map(build::build_deps)
                    .unwrap_or_default()
                    .iter()
                    .all(|d| !rest.contains(d) || d == *s)
            })
            .cloned()
            .collect();
        if wave.is_empty() {
            wave.push(rest[0].clone());
        }
        rest.retain(|s| !wave.contains(s));
        let limit = match g.parallel_limit() {
            0 => wave.len(),
            n => n,
        };
        for chunk in wave.chunks(limit.max(1)) {
            if chunk.len() == 1 {
                one(&chunk[0], false)?;
                continue;
            }
            let results: Vec<Result<()>> = std::thread::scope(|sc| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|s| {
                        let one = &one;
                        sc.spawn(move || one(s, true))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("a build thread panicked")))
                    })
                    .collect()
            });
            for r in results {
                r?;
            }
        }
    }
    Ok(())
}

/// Before `up`/`run`: build what Docker Compose's rule says must be built (`force` is
/// `--build`; `no_build` is `--no-build`).
pub fn before_start(
    g: &GlobalArgs,
    ctx: &Ctx,
    services: &[String],
    force: bool,
    no_build: bool,
) -> Result<()> {
    if no_build {
        return Ok(());
    }
    let Some(project) = &ctx.project else {
        return Ok(());
    };
    // The selected services and what they depend on (all when none is selected).
    let mut selected: Vec<String> = Vec::new();
    let mut queue: Vec<String> = services.to_vec();
    while let Some(s) = queue.pop() {
        if selected.contains(&s) {
            continue;
        }
        if let Some(svc) = project.services.get(&s) {
            queue.extend(svc.depends_on.iter().flatten().map(|(d, _)| d.clone()));
        }
        selected.push(s);
    }
    let store = Store::open(&g.root)?;
    let todo = build::needing_build(&store, project, &selected, force)?;
    if todo.is_empty() {
        return Ok(());
    }
    if g.dry_run {
        for s in &todo {
            println!("build {s}");
        }
        return Ok(());
    }
    let todo = build::build_order(project, &todo);
    build_services(g, project, &todo, &BuildOverrides::default(), false)
}
