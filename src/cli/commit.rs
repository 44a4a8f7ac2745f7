//! `rcompose export` and `rcompose commit`: a service container's filesystem as a tarball
//! (the merged view of its image layers and its changes), or its changes as a new image in
//! the store (the overlay upper dir as one more layer on the image's layers).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::Args;
use runtime::container as rt;
use runtime::image as img;

use crate::supervisor::state::ContainerRecord;

use super::global::GlobalArgs;
use super::project::Ctx;

/// `rcompose export`
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Index of the container if the service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<std::path::PathBuf>,
    /// The service
    pub service: String,
}

/// `rcompose commit`
#[derive(Debug, Clone, Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image (CMD, ENTRYPOINT, ENV, WORKDIR,
    /// USER, EXPOSE, VOLUME, LABEL, STOPSIGNAL), repeatable
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub change: Vec<String>,
    /// Index of the container if the service has multiple replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// Commit message
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub pause: bool,
    /// The service
    pub service: String,
    /// The new image's name (REPOSITORY[:TAG]); required (**Δ** an unnamed image would be
    /// pruned)
    pub reference: Option<String>,
}

/// The record and runtime handle of a service's container `index`.
fn container(ctx: &Ctx, service: &str, index: u32) -> Result<(ContainerRecord, rt::Created)> {
    let st = ctx.state()?;
    let Some(c) = st
        .containers
        .values()
        .find(|c| c.service == service && c.number == index && !c.oneoff)
        .cloned()
    else {
        bail!(
            "service {service:?} has no container {index} in project {}",
            ctx.name
        );
    };
    let h = rt::Created::load(&ctx.paths.container_dir(&c.name).join("rt"))
        .with_context(|| format!("container {}: no runtime state (was it created?)", c.name))?;
    Ok((c, h))
}

/// `rcompose export`: the container's root filesystem as a tarball (volumes and the files
/// rcompose binds in, like /etc/hosts, are not part of it, as with Docker).
pub fn export(g: &GlobalArgs, a: ExportArgs) -> Result<ExitCode> {
    let ctx = Ctx::without_project(g)?;
    let (c, h) = container(&ctx, &a.service, a.index)?;
    let upper = h.spec.state_dir.join("upper");
    let mut layers: Vec<&std::path::Path> = vec![upper.as_path()];
    layers.extend(h.spec.lower_dirs.iter().rev().map(|p| p.as_path()));
    match &a.output {
        Some(path) => {
            let tmp = path.with_extension("rcompose-partial");
            let f =
                std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
            let w = img::layerfs::merged_tar(&layers, std::io::BufWriter::new(f))
                .with_context(|| format!("export container {}", c.name));
            match w.and_then(|mut w| Ok(w.flush()?)) {
                Ok(()) => std::fs::rename(&tmp, path)
                    .with_context(|| format!("rename to {}", path.display()))?,
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            }
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut w = img::layerfs::merged_tar(&layers, out)
                .with_context(|| format!("export container {}", c.name))?;
            w.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The image config of a commit: the base image's, with the container's environment,
/// working folder and user, its command when the service overrode it, then `-c` changes.
fn commit_config(
    base: &img::ImageConfig,
    spec: &rt::ContainerSpec,
    changes: &[String],
) -> Result<img::ImageConfig> {
    let mut cfg = base.clone();
    let p = &spec.process;
    let image_args: Vec<String> = base
        .entrypoint
        .iter()
        .flatten()
        .chain(base.cmd.iter().flatten())
        .cloned()
        .collect();
    if !p.args.is_empty() && p.args != image_args {
        cfg.entrypoint = None;
        cfg.cmd = Some(p.args.clone());
    }
    if !p.env.is_empty() {
        cfg.env = p.env.clone();
    }
    if p.cwd.is_some() {
        cfg.working_dir = p.cwd.clone();
    }
    if p.user.is_some() {
        cfg.user = p.user.clone();
    }
    for ch in changes {
        img::change::apply_change(&mut cfg, ch)?;
    }
    Ok(cfg)
}

/// `rcompose commit`: the container's changes as a new image.
pub fn commit(g: &GlobalArgs, a: CommitArgs) -> Result<ExitCode> {
    let Some(reference) = a.reference.clone() else {
        bail!("commit: give the new image a name (REPOSITORY[:TAG]): rcompose keeps no unnamed images");
    };
    let ctx = Ctx::without_project(g)?;
    let (c, h) = container(&ctx, &a.service, a.index)?;
    let store = img::Store::open(&g.root)?;
    let base = store.get(&c.image)?.with_context(|| {
        format!(
            "container {}: its image {} is not in the store",
            c.name, c.image
        )
    })?;
    let config = commit_config(&base.config, &h.spec, &a.change)?;
    let upper = h.spec.state_dir.join("upper");
    // Paused while the layer is read, so the image is one moment of the container.
    let paused = a.pause && c.pid.is_some() && h.pause().is_ok();
    // In the store's staging folder, named `<pid>-…` as the store's own staging files are,
    // so a crashed commit's leftovers are cleaned by the next open.
    let tmp = store
        .dir()
        .join("tmp")
        .join(format!("{}-commit-layer", std::process::id()));
    let _cleanup = RemoveOnDrop(tmp.clone());
    let diff = std::fs::File::create(&tmp)
        .with_context(|| format!("create {}", tmp.display()))
        .and_then(|f| {
            img::layerfs::diff_tar(&upper, std::io::BufWriter::new(f))
                .with_context(|| format!("read the changes of container {}", c.name))
        })
        .with_context(|| format!("read the changes of container {}", c.name))
        .and_then(|mut w| Ok(w.flush()?));
    if paused {
        let _ = h.resume();
    }
    diff?;
    let info = img::CommitInfo {
        author: a.author.clone(),
        comment: a.message.clone(),
        created_by: format!("rcompose commit {}", c.name),
    };
    let image = store
        .commit_layer(
            &c.image,
            std::fs::File::open(&tmp)?,
            &config,
            &reference,
            &info,
        )
        .with_context(|| format!("commit container {} as {reference}", c.name))?;
    println!("{}", image.id);
    Ok(ExitCode::SUCCESS)
}

struct RemoveOnDrop(std::path::PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_keeps_the_containers_settings_then_applies_changes() {
        let base = img::ImageConfig {
            cmd: Some(vec!["sh".into()]),
            env: vec!["PATH=/bin".into()],
            ..Default::default()
        };
        let mut spec = rt::ContainerSpec::default();
        spec.process.args = vec!["sleep".into(), "1000".into()];
        spec.process.env = vec!["PATH=/bin".into(), "A=1".into()];
        let cfg = commit_config(
            &base,
            &spec,
            &["CMD [\"echo\", \"hi\"]".into(), "ENV B=2".into()],
        )
        .unwrap();
        assert_eq!(cfg.cmd, Some(vec!["echo".to_string(), "hi".into()]));
        assert_eq!(cfg.entrypoint, None);
        assert!(cfg.env.contains(&"A=1".to_string()) && cfg.env.contains(&"B=2".to_string()));
        assert!(commit_config(&base, &spec, &["FROM x".into()]).is_err());
    }
}
