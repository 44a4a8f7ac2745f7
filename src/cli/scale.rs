//! `rcompose scale SERVICE=N…`: set the number of containers of services, as `up --scale`
//! does but without recreating anything: only the named services' replicas are added or
//! removed (their dependencies started unless `--no-deps`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use crate::supervisor::ops::Request;
use crate::supervisor::reconcile::UpOptions;

use super::global::GlobalArgs;
use super::project::{exit, parse_scale, Ctx};
use super::render::ProgressSink;

/// `rcompose scale`
#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    /// Don't start linked services
    #[arg(long)]
    pub no_deps: bool,
    /// SERVICE=REPLICAS, one or more
    #[arg(required = true, value_name = "SERVICE=REPLICAS")]
    pub scale: Vec<String>,
}

pub fn run(g: &GlobalArgs, a: ScaleArgs) -> Result<ExitCode> {
    let scale = parse_scale(&a.scale)?;
    let services: Vec<String> = scale.keys().cloned().collect();
    let ctx = Ctx::with_project(g, &services)?;
    let project = ctx.project.as_ref().expect("loaded");
    for s in &services {
        if !project.services.contains_key(s) {
            bail!("no such service: {s}");
        }
    }
    let options = UpOptions {
        services: services.clone(),
        no_deps: a.no_deps,
        no_recreate: true,
        scale,
        timeout: Some(Duration::from_secs(10)),
        ..Default::default()
    };
    if g.dry_run {
        let engine = crate::supervisor::engine::Engine::open(ctx.paths.clone(), false)?;
        engine.set_project(project.clone());
        let observed = engine.observe(false);
        let loaded = engine.loaded().expect("just set");
        let plan = crate::supervisor::reconcile::reconcile_up(&loaded.desired, &observed, &options);
        print!("{}", plan.text());
        return Ok(ExitCode::SUCCESS);
    }
    let req = Request::Up {
        load: Ctx::load_request(g, &services),
        options,
        parallel: g.parallel_limit(),
        wait: None,
    };
    let sink = ProgressSink::new(g, false);
    Ok(exit(ctx.send(&req, &sink)?))
}
