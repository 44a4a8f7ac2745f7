//! `rcompose volume ls|inspect|rm|prune`: named volumes under the state root, shown and
//! removed as `docker volume` does. A volume is the folder `<root>/volumes/<name>`, its data
//! in `_data` (the supervisor's `ProjectPaths::volume_dir`, see
//! docs/developer/conventions.md). Which projects use a volume comes from their state files
//! (`<root>/projects/<project>/state.json`): a volume recorded by a project that still has
//! containers is in use and is never removed here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::global::GlobalArgs;
use super::render;
use crate::supervisor::state::{ProjectPaths, StateStore};

#[derive(Debug, Args)]
pub struct VolumeArgs {
    #[command(subcommand)]
    pub command: VolumeCommand,
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// List volumes
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes (JSON)
    Inspect(InspectArgs),
    /// Remove one or more volumes (never one in use)
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove unused anonymous volumes (all unused volumes with --all)
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
    /// Format the output: table, json, or a template such as `{{.Name}}\t{{.Mountpoint}}`
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Filter output (`name=`, `driver=`, `label=KEY[=VALUE]`, `dangling=true|false`),
    /// repeatable; the same key ORs, different keys AND
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    pub filter: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Volume names
    #[arg(required = true)]
    pub volumes: Vec<String>,
    /// Format each volume with a template (`{{.Mountpoint}}`) instead of JSON
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Volume names
    #[arg(required = true)]
    pub volumes: Vec<String>,
    /// Do not fail if a volume does not exist
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not only anonymous ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation (accepted for Docker compatibility; never prompts)
    #[arg(short, long)]
    pub force: bool,
    /// Only prune volumes matching these filters (`label=KEY[=VALUE]`, `name=`)
    #[arg(long = "filter", value_name = "FILTER")]
    pub filter: Vec<String>,
}

/// One volume as these verbs see it.
#[derive(Debug, Clone)]
struct Volume {
    name: String,
    /// `<root>/volumes/<name>/_data`
    mountpoint: PathBuf,
    created: Option<std::time::SystemTime>,
    labels: BTreeMap<String, String>,
    /// Projects whose state records the volume and still has containers.
    used_by: Vec<String>,
    anonymous: bool,
}

/// Docker's rule for volume names (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`); it also keeps a name from
/// escaping `<root>/volumes`.
pub fn valid_volume_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The folder of volume `name` under `root` (`<root>/volumes/<name>`).
pub fn volume_root(root: &Path, name: &str) -> PathBuf {
    root.join("volumes").join(name)
}

fn scan(global: &GlobalArgs) -> anyhow::Result<Vec<Volume>> {
    let dir = global.root.join("volumes");
    let mut names = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for e in entries {
                let e = e.with_context(|| format!("reading {}", dir.display()))?;
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    if let Some(n) = e.file_name().to_str().filter(|n| valid_volume_name(n)) {
                        names.push(n.to_owned());
                    }
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    }
    names.sort();
    // Project records: which project declares each volume and whether it still has
    // containers.
    let mut users: BTreeMap<String, (Vec<String>, Vec<String>, bool)> = BTreeMap::new();
    let projects = global.root.join("projects");
    if let Ok(entries) = std::fs::read_dir(&projects) {
        for e in entries.flatten() {
            let Some(project) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let store = StateStore::new(ProjectPaths::new(&global.root, &global.run_dir, &project));
            let Some(state) = store.load()? else { continue };
            for v in state.volumes.values() {
                let u = users.entry(v.name.clone()).or_default();
                u.0.push(project.clone());
                if !state.containers.is_empty() {
                    u.1.push(project.clone());
                }
                u.2 |= v.anonymous;
            }
        }
    }
    Ok(names
        .into_iter()
        .map(|name| {
            let (projects, used_by, anonymous) = users.remove(&name).unwrap_or_default();
            let mut labels = BTreeMap::new();
            if let Some(p) = projects.first() {
                labels.insert("com.docker.compose.project".to_owned(), p.clone());
                if let Some(short) = name.strip_prefix(&format!("{p}_")) {
                    labels.insert("com.docker.compose.volume".to_owned(), short.to_owned());
                }
            }
            let root = volume_root(&global.root, &name);
            Volume {
                created: std::fs::metadata(&root).and_then(|m| m.modified()).ok(),
                mountpoint: root.join("_data"),
                // Docker names anonymous volumes with 64 hex digits.
                anonymous: anonymous
                    || (name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit())),
                name,
                labels,
                used_by,
            }
        })
        .collect())
}

fn rfc3339(t: Option<std::time::SystemTime>) -> String {
    t.map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_default()
}

fn row_fields(v: &Volume) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("Driver".into(), Value::String("local".into()));
    m.insert("Name".into(), Value::String(v.name.clone()));
    m.insert(
        "Mountpoint".into(),
        Value::String(v.mountpoint.display().to_string()),
    );
    m.insert("Scope".into(), Value::String("local".into()));
    m.insert(
        "Labels".into(),
        Value::String(
            v.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        ),
    );
    m.insert("Links".into(), Value::String(v.used_by.len().to_string()));
    m.insert("Size".into(), Value::String("N/A".into()));
    m
}

fn inspect_json(v: &Volume) -> Value {
    json!({
        "CreatedAt": rfc3339(v.created),
        "Driver": "local",
        "Labels": v.labels,
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": null,
        "Scope": "local",
    })
}

pub fn run(global: &GlobalArgs, args: VolumeArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        VolumeCommand::Ls(a) => ls(global, a),
        VolumeCommand::Inspect(a) => {
            let all = scan(global)?;
            let mut out = Vec::new();
            let mut failed = false;
            for name in &a.volumes {
                match all.iter().find(|v| &v.name == name) {
                    Some(v) => out.push(inspect_json(v)),
                    None => {
                        eprintln!("rcompose: volume {name} not found");
                        failed = true;
                    }
                }
            }
            match &a.format {
                Some(tpl) => {
                    for v in &out {
                        if let Value::Object(m) = v {
                            println!("{}", render::template(tpl, m));
                        }
                    }
                }
                None => println!("{}", serde_json::to_string_pretty(&out)?),
            }
            Ok(exit(failed))
        }
        VolumeCommand::Rm(a) => {
            let all = scan(global)?;
            let mut failed = false;
            for name in &a.volumes {
                let result = match all.iter().find(|v| &v.name == name) {
                    None if a.force => continue,
                    None => Err(anyhow::anyhow!("volume {name} not found")),
                    Some(v) if global.dry_run && v.used_by.is_empty() => {
                        println!("would remove volume {}", v.name);
                        continue;
                    }
                    Some(v) => remove(global, v),
                };
                match result {
                    Ok(()) => println!("{name}"),
                    Err(e) => {
                        eprintln!("rcompose: {e:#}");
                        failed = true;
                    }
                }
            }
            Ok(exit(failed))
        }
        VolumeCommand::Prune(a) => {
            let filters = Filters::parse(&a.filter)?;
            let mut failed = false;
            let mut deleted = Vec::new();
            for v in scan(global)? {
                if !v.used_by.is_empty() || !(a.all || v.anonymous) || !filters.matches(&v) {
                    continue;
                }
                if global.dry_run {
                    println!("would remove volume {}", v.name);
                    continue;
                }
                match remove(global, &v) {
                    Ok(()) => deleted.push(v.name),
                    Err(e) => {
                        eprintln!("rcompose: {e:#}");
                        failed = true;
                    }
                }
            }
            if !deleted.is_empty() {
                println!("Deleted Volumes:");
                for n in &deleted {
                    println!("{n}");
                }
                println!();
            }
            println!("Total reclaimed space: N/A");
            Ok(exit(failed))
        }
    }
}

fn exit(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Removes a volume's folder, unless a project with containers records it or something is
/// mounted inside it (a bind or driver mount: deleting through it would delete the mounted
/// file system's contents).
fn remove(global: &GlobalArgs, v: &Volume) -> anyhow::Result<()> {
    anyhow::ensure!(
        v.used_by.is_empty(),
        "volume {} is in use by project {}: run `down` there first",
        v.name,
        v.used_by.join(", ")
    );
    let dir = volume_root(&global.root, &v.name);
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if let Some(m) = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .find(|m| Path::new(m).starts_with(&dir))
    {
        anyhow::bail!("volume {}: {m} is mounted: unmount it first", v.name);
    }
    // remove_dir_all does not follow symlinks out of the folder.
    std::fs::remove_dir_all(&dir)
        .with_context(|| format!("volume {}: removing {}", v.name, dir.display()))
}

fn ls(global: &GlobalArgs, a: LsArgs) -> anyhow::Result<ExitCode> {
    let filters = Filters::parse(&a.filter)?;
    let shown: Vec<Volume> = scan(global)?
        .into_iter()
        .filter(|v| filters.matches(v))
        .collect();
    print_list(&shown, a.quiet, &a.format)
}

fn print_list(shown: &[Volume], quiet: bool, format: &str) -> anyhow::Result<ExitCode> {
    if quiet {
        for v in shown {
            println!("{}", v.name);
        }
        return Ok(ExitCode::SUCCESS);
    }
    match format {
        "table" => {
            let rows: Vec<Vec<String>> = shown
                .iter()
                .map(|v| vec!["local".to_owned(), v.name.clone()])
                .collect();
            print!("{}", render::table(&["DRIVER", "VOLUME NAME"], &rows));
        }
        "json" => {
            for v in shown {
                println!("{}", Value::Object(row_fields(v)));
            }
        }
        tpl => {
            let tpl = tpl.strip_prefix("table ").unwrap_or(tpl);
            for v in shown {
                println!("{}", render::template(tpl, &row_fields(v)));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `rcompose volumes [SERVICES…]`
#[derive(Debug, Args)]
pub struct VolumesArgs {
    /// Format output using a custom template: 'table' (default), 'json', or a Go-style
    /// template such as '{{.Name}}'
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
    /// Only the volumes these services mount (default: all the project's)
    pub services: Vec<String>,
}

/// `rcompose volumes`: the project's volumes (those its state records, and the compose file's
/// named volumes that exist), shaped like `volume ls`.
pub fn project_volumes(global: &GlobalArgs, a: VolumesArgs) -> anyhow::Result<ExitCode> {
    use crate::supervisor::spec;
    let ctx = super::project::Ctx::without_project(global)?;
    let mut names: std::collections::BTreeSet<String> = ctx
        .state()
        .map(|st| st.volumes.into_keys().collect())
        .unwrap_or_default();
    if let Some(p) = &ctx.project {
        names.extend(p.volumes.keys().map(|k| spec::volume_name(p, k)));
        if !a.services.is_empty() {
            let mut mounted = std::collections::BTreeSet::new();
            for s in &a.services {
                let svc = p
                    .services
                    .get(s)
                    .with_context(|| format!("no such service: {s}"))?;
                mounted.extend(
                    spec::service_named_volumes(p, svc)
                        .into_iter()
                        .map(|k| spec::volume_name(p, &k)),
                );
            }
            names.retain(|n| mounted.contains(n));
        }
    } else if !a.services.is_empty() {
        anyhow::bail!(
            "volumes SERVICE…: no compose file found to tell which volumes a service mounts"
        );
    }
    let shown: Vec<Volume> = scan(global)?
        .into_iter()
        .filter(|v| names.contains(&v.name))
        .collect();
    print_list(&shown, a.quiet, &a.format)
}

/// `--filter` terms: the same key ORs, different keys AND (as Docker).
#[derive(Debug, Default)]
struct Filters {
    terms: Vec<(String, String)>,
}

impl Filters {
    fn parse(raw: &[String]) -> anyhow::Result<Filters> {
        let mut terms = Vec::new();
        for f in raw {
            let (key, value) = f
                .split_once('=')
                .with_context(|| format!("bad filter {f:?}: expected KEY=VALUE"))?;
            anyhow::ensure!(
                matches!(key, "name" | "driver" | "label" | "dangling"),
                "invalid filter {key:?}: expected name, driver, label or dangling"
            );
            if key == "dangling" {
                anyhow::ensure!(
                    matches!(value, "true" | "false" | "1" | "0"),
                    "invalid filter dangling={value}: expected true or false"
                );
            }
            terms.push((key.to_owned(), value.to_owned()));
        }
        Ok(Filters { terms })
    }

    fn matches(&self, v: &Volume) -> bool {
        let mut keys: Vec<&str> = self.terms.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort();
        keys.dedup();
        keys.iter().all(|key| {
            self.terms
                .iter()
                .filter(|(k, _)| k == key)
                .any(|(k, value)| match k.as_str() {
                    "name" => v.name.contains(value.as_str()),
                    "driver" => value == "local",
                    "dangling" => v.used_by.is_empty() == matches!(value.as_str(), "true" | "1"),
                    "label" => match value.split_once('=') {
                        Some((lk, lv)) => v.labels.get(lk).is_some_and(|x| x == lv),
                        None => v.labels.contains_key(value),
                    },
                    _ => false,
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names_follow_docker_and_cannot_escape_the_root() {
        for ok in ["data", "demo_db-data", "a.b", "x1"] {
            assert!(valid_volume_name(ok), "{ok}");
        }
        for bad in ["", "a", "..", "../etc", "a/b", ".hidden", "_x", "a b"] {
            assert!(!valid_volume_name(bad), "{bad}");
        }
    }

    #[test]
    fn filters_or_within_a_key_and_across_keys() {
        let v = Volume {
            name: "demo_data".into(),
            mountpoint: "/x/_data".into(),
            created: None,
            labels: [("com.docker.compose.project".to_owned(), "demo".to_owned())].into(),
            used_by: vec![],
            anonymous: false,
        };
        let f = |t: &[&str]| {
            Filters::parse(&t.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
        };
        assert!(f(&["name=nope", "name=data"]).matches(&v));
        assert!(!f(&["name=data", "dangling=false"]).matches(&v));
        assert!(f(&["label=com.docker.compose.project=demo", "dangling=true"]).matches(&v));
        assert!(Filters::parse(&["size=1".to_string()]).is_err());
    }
}
