//! `rcompose push`: push the services' images from the store to their registries (the
//! runtime's `Store::push`: blobs the registry lacks, then the manifest under the tag).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use runtime::image as img;

use super::global::GlobalArgs;
use super::project::Ctx;

/// `rcompose push`
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// Push what it can and ignores images with push failures
    #[arg(long)]
    pub ignore_push_failures: bool,
    /// Also push images of services declared as dependencies
    #[arg(long)]
    pub include_deps: bool,
    /// Push without printing progress information
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

pub fn run(g: &GlobalArgs, a: PushArgs) -> Result<ExitCode> {
    let ctx = Ctx::with_project(g, &a.services)?;
    let project = ctx.project.as_ref().expect("loaded");
    let mut wanted: Vec<String> = if a.services.is_empty() {
        project.services.keys().cloned().collect()
    } else {
        a.services.clone()
    };
    if a.include_deps {
        let mut i = 0;
        while i < wanted.len() {
            if let Some(svc) = project.services.get(&wanted[i]) {
                for d in svc.depends_on.iter().flatten().map(|(d, _)| d) {
                    if !wanted.contains(d) {
                        wanted.push(d.clone());
                    }
                }
            }
            i += 1;
        }
    }
    let store = img::Store::open(&g.root)?;
    let mut failed = false;
    let mut done = std::collections::BTreeSet::new();
    for name in &wanted {
        let Some(svc) = project.services.get(name) else {
            anyhow::bail!("no such service: {name}");
        };
        // Docker Compose pushes only services with an `image:`.
        if svc.image.is_none() {
            continue;
        }
        let reference = crate::supervisor::spec::image_ref(project, svc);
        if !done.insert(reference.clone()) {
            continue;
        }
        let say = |line: String| {
            if !a.quiet {
                eprintln!("{line}");
            }
        };
        say(format!(" Pushing {reference}"));
        let result = store.push(&reference, None, &|e| match e {
            img::PushEvent::Pushing { digest, size } => say(format!(
                " {}: pushing {}",
                digest.short(),
                super::image::human_size(size)
            )),
            img::PushEvent::Pushed { digest } => say(format!(" {}: pushed", digest.short())),
            img::PushEvent::Exists { digest } => {
                say(format!(" {}: layer already exists", digest.short()))
            }
            img::PushEvent::Manifest { .. } => {}
        });
        match result {
            Ok(d) => {
                say(format!(" Pushed {reference}"));
                if !a.quiet {
                    println!("{reference}: digest: {d}");
                }
            }
            Err(e) => {
                eprintln!(" Error pushing {reference}: {e}");
                failed = !a.ignore_push_failures || failed;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
