//! The loader's driver: finds the compose files and the environment, then runs the phases
//! over each file (yaml → interpolate → validate → canonical → include), merges the files,
//! applies `extends` and profiles, finishes the normalization, checks consistency and types
//! the result into a [`Project`].

use std::path::{Path, PathBuf};

use indexmap::{IndexMap, IndexSet};

use crate::error::Error;
use crate::merge::{merge, strip_tags};
use crate::model::Project;
use crate::normalize::{canonical_file, clean, PathCtx};
use crate::yaml::{Map, Node, Span, Value};

/// What to load and how. `LoadOptions::from_process()` fills the environment and the current
/// folder from the process; tests fill them by hand.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `-f` files in order (`-` reads standard input). Empty: `COMPOSE_FILE`, then discovery.
    pub files: Vec<PathBuf>,
    /// Content for `-` (when `None`, standard input is read).
    pub stdin: Option<String>,
    /// Folder relative paths on the command line and discovery start from.
    pub cwd: PathBuf,
    /// `--project-directory`.
    pub project_directory: Option<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--env-file` (repeatable). Empty: the project's `.env`.
    pub env_files: Vec<PathBuf>,
    /// `--profile` (repeatable); `COMPOSE_PROFILES` adds to them.
    pub profiles: Vec<String>,
    /// Services named on the command line: their profiles are enabled.
    pub services: Vec<String>,
    /// The process environment.
    pub environment: IndexMap<String, String>,
    /// Interpolate `${VAR}` (off for `config --no-interpolate`).
    pub interpolate: bool,
    /// Make relative paths absolute.
    pub resolve_paths: bool,
    /// Check references between services, networks, volumes, secrets and configs.
    pub consistency: bool,
    /// Fill in resource names (`<project>_<key>`); off for `config --no-normalize`.
    pub normalize: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            files: Vec::new(),
            stdin: None,
            cwd: PathBuf::from("."),
            project_directory: None,
            project_name: None,
            env_files: Vec::new(),
            profiles: Vec::new(),
            services: Vec::new(),
            environment: IndexMap::new(),
            interpolate: true,
            resolve_paths: true,
            consistency: true,
            normalize: true,
        }
    }
}

impl LoadOptions {
    /// Options with the process's environment and current folder.
    pub fn from_process() -> Self {
        LoadOptions {
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            environment: std::env::vars().collect(),
            ..Default::default()
        }
    }
}

const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];
const OVERRIDE_FILES: [&str; 4] = [
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yaml",
    "docker-compose.override.yml",
];

/// Finds the compose file (and its override) in `dir` or its parents.
pub fn discover(dir: &Path) -> Option<Vec<PathBuf>> {
    let mut d = Some(dir);
    while let Some(cur) = d {
        for name in DEFAULT_FILES {
            let p = cur.join(name);
            if p.is_file() {
                let mut files = vec![p];
                if let Some(o) = OVERRIDE_FILES
                    .iter()
                    .map(|o| cur.join(o))
                    .find(|o| o.is_file())
                {
                    files.push(o);
                }
                return Some(files);
            }
        }
        d = cur.parent();
    }
    None
}

/// Normalizes a folder name into a project name like Docker Compose: lowercase, only
/// `[a-z0-9_-]`, no leading `_` or `-`.
pub fn normalize_project_name(name: &str) -> String {
    let s: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    s.trim_start_matches(['_', '-']).to_string()
}

fn valid_project_name(name: &str) -> bool {
    !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Loads an env file into `env`; variables already set keep their value.
fn load_env_file(path: &Path, env: &mut IndexMap<String, String>) -> Result<(), Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let vars = crate::dotenv::parse(&text, &path.display().to_string(), &|k| env.get(k).cloned())?;
    for (k, v) in vars {
        env.entry(k).or_insert(v);
    }
    Ok(())
}

fn invalid(span: &Span, path: &str, msg: String) -> Error {
    Error::Invalid {
        span: span.clone(),
        path: path.to_string(),
        msg,
    }
}

struct Loader<'a> {
    opts: &'a LoadOptions,
    /// `COMPOSE_PROJECT_NAME` as files see it: from `-p` or the environment, else the first
    /// `name:`, else the folder's name.
    project_name: String,
    name_fixed: bool,
    home: Option<String>,
    warnings: Vec<String>,
    unset: IndexSet<String>,
    include_stack: Vec<PathBuf>,
}

impl Loader<'_> {
    fn read(&self, path: &Path) -> Result<(String, String), Error> {
        if path == Path::new("-") {
            let text = match &self.opts.stdin {
                Some(t) => t.clone(),
                None => std::io::read_to_string(std::io::stdin()).map_err(|source| Error::Io {
                    path: path.to_path_buf(),
                    source,
                })?,
            };
            return Ok(("-".into(), text));
        }
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok((path.display().to_string(), text))
    }

    /// One file: parse, interpolate, validate, canonicalize each document, merge the
    /// documents, then apply its `include`s.
    fn load_file(
        &mut self,
        path: &Path,
        env: &IndexMap<String, String>,
        base: &Path,
    ) -> Result<Node, Error> {
        let (name, text) = self.read(path)?;
        let docs = crate::yaml::parse(&text, &name)?;
        let mut acc: Option<Node> = None;
        for mut doc in docs {
            if doc.is_null() {
                continue;
            }
            if doc.as_map().is_none() {
                return Err(invalid(
                    &doc.span,
                    "(top level)",
                    format!("expected a mapping, found {}", doc.kind()),
                ));
            }
            if self.opts.interpolate {
                let mut unset = Vec::new();
                if !self.name_fixed {
                    if let Some(n) = doc.as_map_mut().and_then(|m| m.get_mut("name")) {
                        let pn = self.project_name.clone();
                        crate::interpolate::interpolate_tree(
                            n,
                            &mut vec!["name".into()],
                            &|k| env.get(k).cloned(),
                            &mut |_| {},
                        )?;
                        let _ = pn;
                        if let Some(t) = n.as_str() {
                            self.project_name = normalize_project_name(t);
                            self.name_fixed = true;
                        }
                    }
                }
                let pname = self.project_name.clone();
                crate::interpolate::interpolate_tree(
                    &mut doc,
                    &mut Vec::new(),
                    &|k| {
                        if k == "COMPOSE_PROJECT_NAME" {
                            Some(pname.clone())
                        } else {
                            env.get(k).cloned()
                        }
                    },
                    &mut |k| unset.push(k.to_string()),
                )?;
                self.unset.extend(unset);
            }
            crate::validate::validate_file(&doc)?;
            if doc.get("version").is_some() {
                self.warnings.push(format!(
                    "{name}: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion"
                ));
            }
            let ctx = PathCtx {
                base,
                home: self.home.as_deref(),
                resolve: self.opts.resolve_paths,
            };
            canonical_file(&mut doc, &ctx)?;
            acc = Some(match acc {
                None => doc,
                Some(a) => merge(a, doc, &mut Vec::new())
                    .unwrap_or_else(|| Node::null(Span::synthetic(&name))),
            });
        }
        let Some(mut acc) = acc else {
            return Err(Error::Empty {
                path: path.to_path_buf(),
            });
        };
        self.apply_includes(&mut acc, env, base)?;
        Ok(acc)
    }

    /// Loads several files as one model (the first, then each merged over it).
    fn load_files(
        &mut self,
        files: &[PathBuf],
        env: &IndexMap<String, String>,
        base: &Path,
    ) -> Result<Node, Error> {
        let mut acc: Option<Node> = None;
        for f in files {
            let doc = self.load_file(f, env, base)?;
            acc = Some(match acc {
                None => doc,
                Some(a) => merge(a, doc, &mut Vec::new())
                    .unwrap_or_else(|| Node::map(Map::new(), Span::synthetic("-"))),
            });
        }
        let mut acc = acc.unwrap_or_else(|| Node::map(Map::new(), Span::synthetic("-")));
        // Services of this model count as coming from its first file (for extends cycles).
        let key = files
            .first()
            .map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.clone()))
            .unwrap_or_default();
        self.apply_extends(&mut acc, env, &key)?;
        Ok(acc)
    }

    fn apply_includes(
        &mut self,
        model: &mut Node,
        env: &IndexMap<String, String>,
        base: &Path,
    ) -> Result<(), Error> {
        let Some(top) = model.as_map_mut() else {
            return Ok(());
        };
        let Some(inc) = top.shift_remove("include") else {
            return Ok(());
        };
        let Some(entries) = inc.as_seq() else {
            return Ok(());
        };
        for (i, entry) in entries.iter().enumerate() {
            let ipath = format!("include[{i}]");
            let paths: Vec<PathBuf> = entry
                .get("path")
                .and_then(Node::as_seq)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(Node::as_str)
                        .map(|p| PathBuf::from(clean(&base.join(p))))
                        .collect()
                })
                .unwrap_or_default();
            let Some(first) = paths.first() else {
                return Err(invalid(&entry.span, &ipath, "no path to include".into()));
            };
            let pd = match entry.get("project_directory").and_then(Node::as_str) {
                Some(d) => PathBuf::from(clean(&base.join(d))),
                None => first.parent().map(Path::to_path_buf).unwrap_or_default(),
            };
            let key = std::fs::canonicalize(first).unwrap_or_else(|_| first.clone());
            if self.include_stack.contains(&key) {
                let mut names: Vec<String> = self
                    .include_stack
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                names.push(key.display().to_string());
                return Err(Error::Cycle {
                    span: entry.span.clone(),
                    path: ipath,
                    what: "include",
                    cycle: names.join(" -> "),
                });
            }
            let mut ienv = env.clone();
            match entry.get("env_file").and_then(Node::as_seq) {
                Some(files) => {
                    for f in files.iter().filter_map(Node::as_str) {
                        load_env_file(&PathBuf::from(clean(&base.join(f))), &mut ienv)?;
                    }
                }
                None => {
                    let dotenv = pd.join(".env");
                    if dotenv.is_file() {
                        load_env_file(&dotenv, &mut ienv)?;
                    }
                }
            }
            self.include_stack.push(key);
            let sub = self.load_files(&paths, &ienv, &pd);
            self.include_stack.pop();
            let sub = sub?;
            let Some(sub) = sub.as_map() else { continue };
            let top = model.as_map_mut().expect("checked above");
            for section in [
                "services", "networks", "volumes", "secrets", "configs", "models",
            ] {
                let Some(sm) = sub.get(section).and_then(Node::as_map) else {
                    continue;
                };
                let target = top
                    .entry(section.to_string())
                    .or_insert_with(|| Node::map(Map::new(), entry.span.clone()));
                if target.is_null() {
                    *target = Node::map(Map::new(), entry.span.clone());
                }
                let Some(tm) = target.as_map_mut() else {
                    continue;
                };
                for (k, v) in sm {
                    match tm.get(k) {
                        Some(existing) if existing.to_json() != v.to_json() => {
                            return Err(Error::Conflict {
                                span: existing.span.clone(),
                                path: format!("{section}.{k}"),
                                msg: format!(
                                    "conflicts with the one imported from {}",
                                    first.display()
                                ),
                            })
                        }
                        Some(_) => {}
                        None => {
                            tm.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn apply_extends(
        &mut self,
        model: &mut Node,
        env: &IndexMap<String, String>,
        file: &Path,
    ) -> Result<(), Error> {
        let Some(services) = model
            .as_map_mut()
            .and_then(|m| m.get_mut("services"))
            .and_then(Node::as_map_mut)
        else {
            return Ok(());
        };
        let names: Vec<String> = services.keys().cloned().collect();
        for name in names {
            let mut stack = Vec::new();
            self.resolve_extends(services, &name, file, &mut stack, env)?;
        }
        Ok(())
    }

    /// Resolves `services[name]`'s `extends` chain in place. `file` identifies the model the
    /// services come from (empty for the project itself); `stack` holds the (file, service)
    /// pairs being resolved, so a pair seen twice is a cycle, while a file may be visited
    /// again for another service.
    fn resolve_extends(
        &mut self,
        services: &mut Map,
        name: &str,
        file: &Path,
        stack: &mut Vec<(PathBuf, String)>,
        env: &IndexMap<String, String>,
    ) -> Result<(), Error> {
        let Some(svc) = services.get(name) else {
            return Ok(());
        };
        let Some(ext) = svc.get("extends").cloned() else {
            return Ok(());
        };
        let path = format!("services.{name}.extends");
        let key = (file.to_path_buf(), name.to_string());
        if stack.contains(&key) {
            let mut c: Vec<String> = stack.iter().map(|(_, s)| s.clone()).collect();
            c.push(name.to_string());
            let from = c.iter().position(|s| s == name).unwrap_or(0);
            return Err(Error::Cycle {
                span: ext.span.clone(),
                path,
                what: "extends",
                cycle: c[from..].join(" -> "),
            });
        }
        let target = ext
            .get("service")
            .and_then(Node::as_str)
            .unwrap_or_default()
            .to_string();
        stack.push(key);
        let base = self.extends_base(services, &ext, &target, file, stack, env, &path);
        stack.pop();
        let mut base = base?;
        if let Some(m) = base.as_map_mut() {
            m.shift_remove("extends");
        }
        let mut svc = services.get(name).cloned().expect("checked above");
        if let Some(m) = svc.as_map_mut() {
            m.shift_remove("extends");
        }
        let mut p = vec!["services".to_string(), name.to_string()];
        let merged = merge(base, svc, &mut p).unwrap_or_else(|| Node::map(Map::new(), ext.span));
        services.insert(name.to_string(), merged);
        Ok(())
    }

    /// The resolved service `target` that `ext` points at.
    #[allow(clippy::too_many_arguments)]
    fn extends_base(
        &mut self,
        services: &mut Map,
        ext: &Node,
        target: &str,
        file: &Path,
        stack: &mut Vec<(PathBuf, String)>,
        env: &IndexMap<String, String>,
        path: &str,
    ) -> Result<Node, Error> {
        let reference = |msg: String| Error::Reference {
            span: ext.span.clone(),
            path: path.to_string(),
            msg,
        };
        match ext.get("file").and_then(Node::as_str) {
            Some(other) => {
                let other = PathBuf::from(other);
                let okey = std::fs::canonicalize(&other).unwrap_or_else(|_| other.clone());
                let dir = other.parent().map(Path::to_path_buf).unwrap_or_default();
                let mut model = self.load_file(&other, env, &dir)?;
                let Some(osvcs) = model
                    .as_map_mut()
                    .and_then(|m| m.get_mut("services"))
                    .and_then(Node::as_map_mut)
                else {
                    return Err(reference(format!(
                        "cannot extend service {target:?} in {}: no services section",
                        other.display()
                    )));
                };
                if !osvcs.contains_key(target) {
                    return Err(reference(format!(
                        "cannot extend service {target:?} in {}: no such service",
                        other.display()
                    )));
                }
                self.resolve_extends(osvcs, target, &okey, stack, env)?;
                Ok(osvcs[target].clone())
            }
            None => {
                if !services.contains_key(target) {
                    return Err(reference(format!(
                        "cannot extend undefined service {target:?}"
                    )));
                }
                self.resolve_extends(services, target, file, stack, env)?;
                Ok(services[target].clone())
            }
        }
    }
}

/// Loads, validates and types a project.
pub fn load(opts: &LoadOptions) -> Result<Project, Error> {
    let cwd = if opts.cwd.is_absolute() {
        opts.cwd.clone()
    } else {
        std::env::current_dir()
            .map(|d| d.join(&opts.cwd))
            .unwrap_or_else(|_| opts.cwd.clone())
    };
    let abs = |p: &Path| -> PathBuf {
        if p == Path::new("-") || p.is_absolute() {
            p.to_path_buf()
        } else {
            PathBuf::from(clean(&cwd.join(p)))
        }
    };
    let project_dir = opts.project_directory.as_deref().map(abs);
    let mut env = opts.environment.clone();
    let first_file_dir = opts
        .files
        .first()
        .filter(|f| *f != Path::new("-"))
        .map(|f| abs(f).parent().map(Path::to_path_buf).unwrap_or_default());
    let env_dir = project_dir
        .clone()
        .or(first_file_dir)
        .unwrap_or_else(|| cwd.clone());
    if opts.env_files.is_empty() {
        let dotenv = env_dir.join(".env");
        if dotenv.is_file() {
            load_env_file(&dotenv, &mut env)?;
        }
    } else {
        for f in &opts.env_files {
            load_env_file(&abs(f), &mut env)?;
        }
    }
    let files: Vec<PathBuf> = if !opts.files.is_empty() {
        opts.files.iter().map(|f| abs(f)).collect()
    } else if let Some(cf) = env.get("COMPOSE_FILE").filter(|s| !s.is_empty()) {
        let sep = env
            .get("COMPOSE_PATH_SEPARATOR")
            .and_then(|s| s.chars().next())
            .unwrap_or(':');
        let base = project_dir.clone().unwrap_or_else(|| cwd.clone());
        cf.split(sep)
            .filter(|s| !s.is_empty())
            .map(|f| {
                let p = Path::new(f);
                if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    PathBuf::from(clean(&base.join(p)))
                }
            })
            .collect()
    } else {
        let start = project_dir.clone().unwrap_or_else(|| cwd.clone());
        discover(&start).ok_or(Error::NoFile { dir: start })?
    };
    let working_dir = project_dir.clone().unwrap_or_else(|| {
        files
            .first()
            .filter(|f| *f != Path::new("-"))
            .and_then(|f| f.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| cwd.clone())
    });
    if opts.env_files.is_empty() && working_dir != env_dir {
        let dotenv = working_dir.join(".env");
        if dotenv.is_file() {
            load_env_file(&dotenv, &mut env)?;
        }
    }

    let cli_name = opts
        .project_name
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            env.get("COMPOSE_PROJECT_NAME")
                .filter(|n| !n.is_empty())
                .cloned()
        });
    let mut loader = Loader {
        opts,
        name_fixed: cli_name.is_some(),
        project_name: cli_name
            .map(|n| normalize_project_name(&n))
            .unwrap_or_else(|| {
                normalize_project_name(
                    &working_dir
                        .file_name()
                        .map(|s| s.to_string_lossy().to_string())
                        .unwrap_or_default(),
                )
            }),
        home: env.get("HOME").cloned(),
        warnings: Vec::new(),
        unset: IndexSet::new(),
        include_stack: Vec::new(),
    };
    // Every top-level file is its own include root, for cycle detection.
    for f in &files {
        loader
            .include_stack
            .push(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone()));
    }
    let model = loader.load_files(&files, &env, &working_dir)?;
    let mut model = strip_tags(model);
    if model.as_map().is_none() {
        // A document `!reset` away: an empty project.
        model = Node::map(Map::new(), model.span.clone());
    }
    let mut warnings = std::mem::take(&mut loader.warnings);
    for v in &loader.unset {
        warnings.push(format!(
            "The {v:?} variable is not set. Defaulting to a blank string."
        ));
    }

    // Project name: -p, COMPOSE_PROJECT_NAME, name:, the folder.
    let file_name = model.get("name").and_then(Node::as_str).map(str::to_string);
    let name = if let Some(n) = opts.project_name.clone().filter(|n| !n.is_empty()) {
        n
    } else if let Some(n) = env.get("COMPOSE_PROJECT_NAME").filter(|n| !n.is_empty()) {
        n.clone()
    } else if let Some(n) = file_name.filter(|n| !n.is_empty()) {
        n
    } else {
        normalize_project_name(
            &working_dir
                .file_name()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default(),
        )
    };
    let name = normalize_project_name(&name);
    if !valid_project_name(&name) {
        return Err(Error::ProjectName { name });
    }

    // Profiles.
    let mut active: Vec<String> = opts.profiles.clone();
    if let Some(p) = env.get("COMPOSE_PROFILES") {
        active.extend(
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    let top = model.as_map_mut().expect("a mapping");
    if let Some(svcs) = top.get("services").and_then(Node::as_map) {
        for s in &opts.services {
            match svcs.get(s) {
                Some(svc) => {
                    if let Some(ps) = svc.get("profiles").and_then(Node::as_seq) {
                        active.extend(ps.iter().filter_map(Node::as_str).map(str::to_string));
                    }
                }
                None => return Err(Error::NoSuchService { name: s.clone() }),
            }
        }
    }
    active.sort();
    active.dedup();
    let mut disabled = Map::new();
    if let Some(svcs) = top.get_mut("services").and_then(Node::as_map_mut) {
        let names: Vec<String> = svcs.keys().cloned().collect();
        for n in names {
            let enabled = match svcs[&n].get("profiles").and_then(Node::as_seq) {
                None => true,
                Some(ps) if ps.is_empty() => true,
                Some(ps) => ps
                    .iter()
                    .filter_map(Node::as_str)
                    .any(|p| active.iter().any(|a| a == p || a == "*")),
            };
            if !enabled {
                let s = svcs.shift_remove(&n).expect("listed");
                disabled.insert(n, s);
            }
        }
    }

    crate::finish::finish(&mut model, &name, &env, opts)?;
    if opts.consistency {
        crate::finish::check_consistency(&model)?;
    }

    let mut project: Project = crate::de::from_node(&model)?;
    project.name = name;
    project.working_dir = working_dir;
    project.compose_files = files;
    project.environment = env;
    project.active_profiles = active;
    project.warnings = warnings;
    for (n, s) in project.services.iter_mut() {
        s.name = n.clone();
    }
    project.services.sort_keys();
    for (n, s) in disabled {
        let mut svc: crate::model::Service = crate::de::from_node(&s)?;
        svc.name = n.clone();
        project.disabled_services.insert(n, svc);
    }
    if opts.consistency {
        if let Err(Error::Cycle {
            path, what, cycle, ..
        }) = project.graph()
        {
            // Point at the first service's depends_on in its file.
            let first = cycle.split(" -> ").next().unwrap_or_default();
            let span = model
                .get("services")
                .and_then(|s| s.get(first))
                .map(|s| s.get("depends_on").unwrap_or(s).span.clone())
                .unwrap_or_else(|| Span::synthetic("services"));
            return Err(Error::Cycle {
                span,
                path,
                what,
                cycle,
            });
        }
    }
    Ok(project)
}

/// Reads a top-level value of the tree (for the CLI's `--no-interpolate` and tests).
pub fn top_level(model: &Node, key: &str) -> Option<Value> {
    model.get(key).map(|n| n.value.clone())
}
