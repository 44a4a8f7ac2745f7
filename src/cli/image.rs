//! `rcompose image ls|inspect|pull|rm|prune|import|load|save|tag`: the image store from the
//! command line. Progress renderers live here: per-layer bars on a terminal, plain lines
//! otherwise, nothing with `--quiet`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use runtime::image::{Platform, PullEvent, PullPolicy, RegistryOptions, Store};

use super::global::GlobalArgs;

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more images (JSON)
    Inspect(InspectArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove images without a name and unused layers
    Prune(PruneArgs),
    /// Create an image from a root filesystem tarball (as `docker import`)
    Import(ImportArgs),
    /// Load images from a `docker save` tar archive or an OCI layout
    Load(LoadArgs),
    /// Save images to a tar archive (OCI layout with a `docker save` manifest.json)
    Save(SaveArgs),
    /// Give an image another name
    Tag(TagArgs),
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Format the output: table or json
    #[arg(long, default_value = "table")]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Images (name or ID)
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Image reference (`busybox`, `ghcr.io/o/r:tag`, `name@sha256:…`)
    pub reference: String,
    /// Platform to pull (os/arch[/variant]) instead of this machine's
    #[arg(long)]
    pub platform: Option<String>,
    /// Pull policy: always, missing, never, daily, weekly, every_<duration>
    #[arg(long, default_value = "always")]
    pub policy: String,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// Registry reachable over plain http / unchecked TLS (repeatable)
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Images (name or ID)
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Force removal of an image only stopped containers use (they cannot start again)
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all images no container uses, not just unnamed ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation (accepted for Docker compatibility; never prompts).
    /// No `-f`: that is the global compose-file flag.
    #[arg(long)]
    pub force: bool,
}

/// A container on this machine (any project under the root, one-offs too) and whether it
/// runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUser {
    pub container: String,
    pub running: bool,
}

/// Every container under the root that runs `img`: the image its reference names, when that
/// is what it runs, else the image made of its layers.
pub fn image_users(
    global: &GlobalArgs,
    store: &runtime::image::Store,
    img: &runtime::image::Image,
) -> Vec<ImageUser> {
    use crate::supervisor::state::{pid_alive, ContainerStatus, ProjectPaths, StateStore};
    let mut users = Vec::new();
    let Ok(projects) = std::fs::read_dir(global.root.join("projects")) else {
        return users;
    };
    for p in projects.flatten() {
        let name = p.file_name().to_string_lossy().into_owned();
        let main = ProjectPaths::new(&global.root, &global.run_dir, &name);
        let mut all = vec![main.clone()];
        if let Ok(oneoffs) = std::fs::read_dir(main.oneoff_root()) {
            all.extend(
                oneoffs
                    .flatten()
                    .map(|o| main.oneoff(&o.file_name().to_string_lossy())),
            );
        }
        for paths in all {
            let Ok(Some(st)) = StateStore::new(paths.clone()).load() else {
                continue;
            };
            for c in st.containers.values() {
                let lower =
                    runtime::container::Created::load(&paths.container_dir(&c.name).join("rt"))
                        .ok()
                        .map(|h| h.spec.lower_dirs);
                let by_ref = store.get(&c.image).ok().flatten();
                let uses = match (lower, by_ref) {
                    // Its reference still names what it runs: by image ID (images built from
                    // the same layers share them, and may go while another uses them).
                    (Some(l), Some(r)) if r.layers == l => r.id == img.id,
                    // Retagged or removed since: by its layers.
                    (Some(l), _) => l == img.layers,
                    (None, Some(r)) => r.id == img.id,
                    (None, None) => false,
                };
                if uses {
                    users.push(ImageUser {
                        container: c.name.clone(),
                        running: matches!(
                            c.status,
                            ContainerStatus::Running | ContainerStatus::Paused
                        ) && c.pid.is_some_and(|pid| pid_alive(pid, c.pid_start)),
                    });
                }
            }
        }
    }
    users.sort_by(|a, b| a.container.cmp(&b.container));
    users
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Root filesystem tarball (plain, gzip or zstd), `-` for standard input
    #[arg(value_name = "FILE")]
    pub tarball: String,
    /// Name for the new image
    pub reference: String,
    /// Apply a Dockerfile instruction to the image config (repeatable): CMD, ENTRYPOINT,
    /// ENV, WORKDIR, USER, EXPOSE, VOLUME, LABEL, STOPSIGNAL
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub change: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Archive to read (`docker save` tar or OCI layout tar/folder); standard input if absent
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Images to save
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Write to a file instead of standard output
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

fn open_store(global: &GlobalArgs, insecure: &[String]) -> anyhow::Result<Store> {
    let mut options = RegistryOptions::from_env();
    options.insecure.extend(insecure.iter().cloned());
    Store::open_with(&global.root, options)
        .with_context(|| format!("opening the image store under {}", global.root.display()))
}

pub fn run(global: &GlobalArgs, args: ImageArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ImageCommand::Ls(a) => ls(global, a),
        ImageCommand::Inspect(a) => inspect(global, a),
        ImageCommand::Pull(a) => pull(global, a),
        ImageCommand::Rm(a) => rm(global, a),
        ImageCommand::Prune(a) => {
            let store = open_store(global, &[])?;
            if a.all {
                // Every named image no container uses; the others are kept and said so.
                for img in store.list()? {
                    let users = image_users(global, &store, &img);
                    let name = img.reference.familiar();
                    if users.is_empty() {
                        for n in store.remove(&img.reference.to_string())? {
                            let short = runtime::image::Reference::parse(&n)
                                .map(|r| r.familiar())
                                .unwrap_or(n);
                            println!("untagged: {short}");
                        }
                    } else {
                        eprintln!(
                            "kept {name}: used by container {}",
                            users
                                .iter()
                                .map(|u| u.container.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                    }
                }
            }
            let r = store.prune()?;
            for id in &r.images {
                println!("deleted: {id}");
            }
            println!(
                "Total reclaimed space: {} ({} layers, {} blobs)",
                human_size(r.bytes),
                r.layers,
                r.blobs
            );
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Import(a) => {
            let mut config = runtime::image::ImageConfig::default();
            for c in &a.change {
                runtime::image::change::apply_change(&mut config, c)?;
            }
            let store = open_store(global, &[])?;
            let img = if a.tarball == "-" {
                store.import_rootfs_with_config(std::io::stdin().lock(), &a.reference, &config)?
            } else {
                let path = std::path::Path::new(&a.tarball);
                let f = std::fs::File::open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                store.import_rootfs_with_config(f, &a.reference, &config)?
            };
            println!("{}", img.id);
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Load(a) => {
            let store = open_store(global, &[])?;
            let loaded = match &a.input {
                Some(p) => store.load_path(p)?,
                None => store.load(std::io::stdin().lock())?,
            };
            if !a.quiet {
                for img in loaded {
                    println!("Loaded image: {}", img.reference.familiar());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Save(a) => {
            let store = open_store(global, &[])?;
            let refs: Vec<&str> = a.images.iter().map(String::as_str).collect();
            match &a.output {
                Some(p) => {
                    let f = std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?;
                    store.save(&refs, f)?;
                }
                None => {
                    anyhow::ensure!(
                        !std::io::stdout().is_terminal(),
                        "refusing to write an archive to a terminal: use -o FILE or redirect"
                    );
                    store.save(&refs, std::io::stdout().lock())?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Tag(a) => {
            let store = open_store(global, &[])?;
            store.tag(&a.source, &a.target)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn ls(global: &GlobalArgs, a: LsArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(global, &[])?;
    let images = store.list()?;
    if a.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for img in &images {
            if seen.insert(img.id.clone()) {
                println!("{}", img.id.short());
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if a.format == "json" {
        for img in &images {
            println!(
                "{}",
                serde_json::json!({
                    "Repository": img.reference.familiar_name(),
                    "Tag": img.reference.tag.clone().unwrap_or_else(|| "<none>".into()),
                    "Digest": img.manifest_digest.as_ref().map(|d| d.to_string()),
                    "ID": img.id.short(),
                    "CreatedAt": img.created,
                    "Size": human_size(img.size),
                })
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<40} {:<16} {:<14} {:<16} {:>10}",
        "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"
    );
    for img in &images {
        println!(
            "{:<40} {:<16} {:<14} {:<16} {:>10}",
            img.reference.familiar_name(),
            img.reference.tag.as_deref().unwrap_or("<none>"),
            img.id.short(),
            created_ago(img.created.as_deref()),
            human_size(img.size)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(global: &GlobalArgs, a: InspectArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(global, &[])?;
    let mut out = Vec::new();
    for name in &a.images {
        let img = store
            .get(name)?
            .ok_or_else(|| anyhow::anyhow!("no such image: {name}"))?;
        let raw: serde_json::Value = serde_json::from_slice(&store.config_blob(&img.id)?)
            .with_context(|| format!("image config {}", img.id))?;
        out.push(serde_json::json!({
            "Id": img.id,
            "RepoTags": [img.reference.familiar()],
            "RepoDigests": img.manifest_digest.as_ref()
                .map(|d| vec![format!("{}@{d}", img.reference.familiar_name())])
                .unwrap_or_default(),
            "Created": img.created,
            "Os": img.os,
            "Architecture": img.architecture,
            "Variant": img.variant,
            "Size": img.size,
            "Config": raw.get("config").cloned().unwrap_or_default(),
            "RootFS": { "Type": "layers", "Layers": img.diff_ids },
            "GraphDriver": { "Name": "overlay", "Data": {
                "LowerDirs": img.layers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            }},
        }));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

fn rm(global: &GlobalArgs, a: RmArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(global, &[])?;
    let mut failed = false;
    for name in &a.images {
        let img = match store.get(name) {
            Ok(Some(i)) => i,
            Ok(None) => {
                eprintln!("rcompose: no such image: {name}");
                failed = true;
                continue;
            }
            Err(e) => {
                eprintln!("rcompose: {e}");
                failed = true;
                continue;
            }
        };
        // Removing one of several names of an image leaves it (and its layers) in place.
        let by_id = name.starts_with("sha256:")
            || (name.len() >= 4 && img.id.hex().starts_with(name.as_str()));
        let other_names = store
            .list()
            .map(|l| {
                l.iter()
                    .filter(|i| i.id == img.id && i.reference != img.reference)
                    .count()
            })
            .unwrap_or(0);
        let users = if by_id || other_names == 0 {
            image_users(global, &store, &img)
        } else {
            Vec::new()
        };
        let list = |only_running: bool| {
            users
                .iter()
                .filter(|u| !only_running || u.running)
                .map(|u| u.container.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if users.iter().any(|u| u.running) {
            eprintln!(
                "rcompose: conflict: unable to remove image {name} (cannot be forced): it is used by running container {}",
                list(true)
            );
            failed = true;
            continue;
        }
        if !users.is_empty() && !a.force {
            eprintln!(
                "rcompose: conflict: unable to remove image {name} (must be forced): it is used by stopped container {}",
                list(false)
            );
            failed = true;
            continue;
        }
        if !users.is_empty() {
            eprintln!(
                "warning: container {} will not start again without image {name}",
                list(false)
            );
        }
        match store.remove(name) {
            Ok(names) => {
                for n in names {
                    let short = runtime::image::Reference::parse(&n)
                        .map(|r| r.familiar())
                        .unwrap_or(n);
                    println!("Untagged: {short}");
                }
            }
            Err(e) => {
                eprintln!("rcompose: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn pull(global: &GlobalArgs, a: PullArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(global, &a.insecure_registry)?;
    let policy = PullPolicy::parse(&a.policy)?;
    let platform = a.platform.as_deref().map(Platform::parse).transpose()?;
    let renderer = Renderer::new(a.quiet);
    let img = store.ensure(&a.reference, policy, platform.as_ref(), &|e| {
        renderer.event(e)
    })?;
    renderer.finish();
    if !a.quiet {
        if let Some(d) = &img.manifest_digest {
            println!("Digest: {d}");
        }
        println!("{}", img.reference);
    }
    Ok(ExitCode::SUCCESS)
}

/// Renders pull progress: bars on a terminal, lines otherwise, nothing when quiet.
pub struct Renderer {
    mode: Mode,
}

enum Mode {
    Quiet,
    Plain,
    Bars {
        multi: MultiProgress,
        bars: Mutex<HashMap<String, ProgressBar>>,
    },
}

impl Renderer {
    pub fn new(quiet: bool) -> Renderer {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars {
                multi: MultiProgress::new(),
                bars: Mutex::new(HashMap::new()),
            }
        } else {
            Mode::Plain
        };
        Renderer { mode }
    }

    pub fn event(&self, e: PullEvent) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Plain => match e {
                PullEvent::Resolving { reference } => eprintln!("pulling {reference}"),
                PullEvent::LayerExists { digest, .. } => {
                    eprintln!("{}: already exists", digest.short())
                }
                PullEvent::LayerStart { digest, size } => {
                    eprintln!("{}: downloading {}", digest.short(), human_size(size))
                }
                PullEvent::LayerProgress { .. } => {}
                PullEvent::LayerDone { digest, .. } => {
                    eprintln!("{}: pull complete", digest.short())
                }
                PullEvent::UpToDate { reference, .. } => {
                    eprintln!("Status: image is up to date for {reference}")
                }
                PullEvent::Pulled { reference, .. } => {
                    eprintln!("Status: downloaded newer image for {reference}")
                }
            },
            Mode::Bars { multi, bars } => {
                let style = ProgressStyle::with_template(
                    "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                )
                .expect("template")
                .progress_chars("=> ");
                let mut bars = bars.lock().expect("bars");
                match e {
                    PullEvent::Resolving { reference } => {
                        let _ = multi.println(format!("pulling {reference}"));
                    }
                    PullEvent::LayerExists { digest, .. } => {
                        let _ = multi.println(format!("{}: already exists", digest.short()));
                    }
                    PullEvent::LayerStart { digest, size } => {
                        let pb = multi.add(ProgressBar::new(size));
                        pb.set_style(style);
                        pb.set_prefix(digest.short().to_string());
                        bars.insert(digest.to_string(), pb);
                    }
                    PullEvent::LayerProgress { digest, done, .. } => {
                        if let Some(pb) = bars.get(digest.as_str()) {
                            pb.set_position(done);
                        }
                    }
                    PullEvent::LayerDone { digest, .. } => {
                        if let Some(pb) = bars.get(digest.as_str()) {
                            pb.finish_with_message("pull complete");
                        }
                    }
                    PullEvent::UpToDate { reference, .. } => {
                        let _ =
                            multi.println(format!("Status: image is up to date for {reference}"));
                    }
                    PullEvent::Pulled { reference, .. } => {
                        let _ = multi
                            .println(format!("Status: downloaded newer image for {reference}"));
                    }
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Mode::Bars { bars, .. } = &self.mode {
            for pb in bars.lock().expect("bars").values() {
                pb.finish();
            }
        }
    }
}

/// Sizes as Docker prints them (decimal units).
pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + units[i]
    }
}

fn created_ago(created: Option<&str>) -> String {
    let Some(t) = created.and_then(|c| humantime::parse_rfc3339_weak(c).ok()) else {
        return "N/A".into();
    };
    let secs = SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match secs {
        0..=59 => "Less than a minute ago".into(),
        60..=3599 => format!("{} minutes ago", secs / 60),
        3600..=86399 => format!("{} hours ago", secs / 3600),
        _ => format!("{} days ago", secs / 86400),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn image_verbs_do_not_clash_with_global_flags() {
        use clap::CommandFactory;
        super::super::Cli::command().debug_assert();
    }

    #[test]
    fn sizes_print_as_docker_does() {
        assert_eq!(super::human_size(999), "999B");
        assert_eq!(super::human_size(1_031_490), "1.031MB");
        assert_eq!(super::human_size(130_000_000), "130MB");
    }
}
