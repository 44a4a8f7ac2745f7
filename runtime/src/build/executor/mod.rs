//! Runs a parsed Dockerfile: picks the stages the target needs, walks their instructions with
//! Docker's semantics (ARG/ENV scoping, ENTRYPOINT resetting an inherited CMD, WORKDIR
//! relative to the previous one, ...), runs RUN steps in containers of our runtime, writes
//! COPY/ADD layers, consults the cache for every layer step, and finally records the image
//! (config with history and diff_ids, OCI manifest, names) in the store. RUN steps live in
//! `run`, COPY/ADD in `copy`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tracing::{debug, info};

use super::cache::{self, Entry};
use super::context::{ContentHash, Source};
use super::ignore::{clean, Ignore};
use super::layer::{self, LayerTar, MergedView};
use super::parser::{self, Command, CopySpec, Dockerfile, Instruction, Kind, Stage};
use super::words::{expand, expand_vars};
use super::{BuildError, BuildEvent, BuildNetwork, BuildOptions, Built, NamedContext};
use crate::container::{self, ContainerSpec, MountSpec, NetMode, ProcessSpec, Runtime, Stdio};
use crate::image::manifest::{ConfigFile, ContainerConfig, RootFs};
use crate::image::store::LayerRecord;
use crate::image::{Healthcheck, ImageConfig, ImageError, Platform, PullPolicy, Reference, Store};

mod copy;
mod run;

/// Where a `RUN <<EOF` script with a shebang is bound during its step.
const HEREDOC_SCRIPT: &str = "/.rcompose-heredoc";

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The filesystem and config of a stage as the build goes.
#[derive(Debug, Clone)]
struct StageState {
    label: String,
    layers: Vec<LayerRecord>,
    config: ImageConfig,
    onbuild: Vec<String>,
    /// ONBUILD triggers of the base image, run right after FROM.
    triggers: Vec<String>,
    shell: Vec<String>,
    history: Vec<serde_json::Value>,
    /// ARGs declared in the stage, with their values.
    args: BTreeMap<String, String>,
    key: String,
    cmd_set: bool,
    platform: Platform,
}

struct Builder<'a> {
    store: &'a Store,
    runtime: &'a Runtime,
    opts: &'a BuildOptions,
    progress: &'a (dyn Fn(BuildEvent) + Sync),
    df: Dockerfile,
    context: PathBuf,
    ignore: Ignore,
    global: BTreeMap<String, String>,
    step: usize,
    total: usize,
    cached: usize,
    /// Scratch space for merged views and layer tars (removed at the end).
    work: PathBuf,
}

/// Build the image `opts` describes into `store`, running RUN steps with `runtime`. The
/// result is named `opts.tags[0]` (and the other tags). Call from a blocking thread.
pub fn build(
    store: &Store,
    runtime: &Runtime,
    opts: &BuildOptions,
    progress: &(dyn Fn(BuildEvent) + Sync),
) -> Result<Built, BuildError> {
    let name = opts.tags.first().ok_or(BuildError::NoName)?;
    let names: Vec<Reference> = opts
        .tags
        .iter()
        .map(|t| Reference::parse(t).map_err(ImageError::from))
        .collect::<Result<_, _>>()?;
    let span = tracing::info_span!("build", image = %name);
    let _g = span.enter();
    let context = opts.context.clone();
    let ctx_meta = fs::metadata(&context).map_err(|source| BuildError::Context {
        path: context.clone(),
        source,
    })?;
    if !ctx_meta.is_dir() {
        return Err(BuildError::Context {
            path: context.clone(),
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a folder"),
        });
    }
    let (df_name, text, df_path) = match (&opts.dockerfile_inline, &opts.dockerfile) {
        (Some(t), _) => ("<dockerfile_inline>".to_string(), t.clone(), None),
        (None, d) => {
            let rel = d.clone().unwrap_or_else(|| PathBuf::from("Dockerfile"));
            let path = context.join(&rel);
            let text = fs::read_to_string(&path).map_err(|source| BuildError::Context {
                path: path.clone(),
                source,
            })?;
            (rel.display().to_string(), text, Some(path))
        }
    };
    let df = parser::parse(&df_name, &text)?;
    // `<Dockerfile>.dockerignore` next to the Dockerfile wins over the context's.
    let ignore_text = df_path
        .as_ref()
        .and_then(|p| fs::read_to_string(format!("{}.dockerignore", p.display())).ok())
        .or_else(|| fs::read_to_string(context.join(".dockerignore")).ok())
        .unwrap_or_default();
    let work = store.tmp_path("build");
    fs::create_dir_all(&work).map_err(|source| BuildError::Context {
        path: work.clone(),
        source,
    })?;
    // Pruning must not take layers from under a build.
    let _shared = store.store_lock(false)?;
    container::become_subreaper().map_err(|source| BuildError::Context {
        path: "prctl(PR_SET_CHILD_SUBREAPER)".into(),
        source,
    })?;
    clean_stale(runtime);
    let mut b = Builder {
        store,
        runtime,
        opts,
        progress,
        df,
        context,
        ignore: Ignore::parse(&ignore_text),
        global: BTreeMap::new(),
        step: 0,
        total: 0,
        cached: 0,
        work: work.clone(),
    };
    let result = b.run(&names);
    if let Err(e) = fs::remove_dir_all(&work) {
        tracing::warn!(path = %work.display(), %e, "remove build scratch folder");
    }
    result
}

impl Builder<'_> {
    fn run(&mut self, names: &[Reference]) -> Result<Built, BuildError> {
        self.global_args()?;
        let target = self.target()?;
        let needed = self.needed(target);
        self.total = needed
            .iter()
            .map(|i| self.df.stages[*i].instructions.len() + 1)
            .sum();
        let mut done: Vec<Option<StageState>> = vec![None; self.df.stages.len()];
        for i in needed {
            let stage = self.df.stages[i].clone();
            let st = self.stage(&stage, &done)?;
            done[i] = Some(st);
        }
        let mut st = done[target].take().expect("target built");
        // compose `labels:` are a last config step.
        for (k, v) in &self.opts.labels {
            st.config.labels.insert(k.clone(), v.clone());
        }
        st.key = cache::chain(
            &st.key,
            &format!(
                "labels {}",
                serde_json::to_string(&self.opts.labels).unwrap_or_default()
            ),
        );
        let image = self.commit(&st, names)?;
        (self.progress)(BuildEvent::Done {
            reference: names[0].familiar(),
            id: image.id.clone(),
            steps: self.total,
            cached: self.cached,
        });
        info!(id = %image.id, steps = self.total, cached = self.cached, "built");
        Ok(Built {
            image,
            steps: self.total,
            cached: self.cached,
        })
    }

    fn global_args(&mut self) -> Result<(), BuildError> {
        let host = Platform::host();
        let plat = host.to_string();
        for (k, v) in [
            ("TARGETPLATFORM", plat.clone()),
            ("TARGETOS", host.os.clone()),
            ("TARGETARCH", host.architecture.clone()),
            ("TARGETVARIANT", host.variant.clone().unwrap_or_default()),
            ("BUILDPLATFORM", plat),
            ("BUILDOS", host.os.clone()),
            ("BUILDARCH", host.architecture.clone()),
            ("BUILDVARIANT", host.variant.clone().unwrap_or_default()),
        ] {
            self.global.insert(k.into(), v);
        }
        for ins in self.df.global_args.clone() {
            let Kind::Arg(args) = &ins.kind else {
                continue;
            };
            for (name, default) in args {
                let value = match (self.opts.args.get(name), default) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(d)) => Some(self.expand(&ins, d, &self.global)?),
                    (None, None) => None,
                };
                if let Some(v) = value {
                    self.global.insert(name.clone(), v);
                }
            }
        }
        Ok(())
    }

    fn target(&self) -> Result<usize, BuildError> {
        let Some(t) = &self.opts.target else {
            return Ok(self.df.stages.len() - 1);
        };
        let lower = t.to_ascii_lowercase();
        self.df
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .ok_or_else(|| BuildError::Target {
                target: t.clone(),
                file: self.df.name.clone(),
                available: {
                    let names: Vec<String> = self
                        .df
                        .stages
                        .iter()
                        .map(|s| s.name.clone().unwrap_or_else(|| s.index.to_string()))
                        .collect();
                    names.join(", ")
                },
            })
    }

    /// An earlier stage named (or numbered) `word`.
    fn stage_ref(&self, word: &str, before: usize) -> Option<usize> {
        let lower = word.to_ascii_lowercase();
        self.df.stages[..before].iter().position(|s| {
            s.name.as_deref() == Some(lower.as_str())
                || (s.name.is_none() || lower.parse::<usize>().is_ok())
                    && lower.parse::<usize>().ok() == Some(s.index)
        })
    }

    /// The target and every stage it depends on, in order.
    fn needed(&self, target: usize) -> Vec<usize> {
        let mut need = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if !need.insert(i) {
                continue;
            }
            let s = &self.df.stages[i];
            let base = expand(&s.base, &self.global, self.df.escape).unwrap_or_default();
            if let Some(d) = self.stage_ref(&base, i) {
                todo.push(d);
            }
            for ins in &s.instructions {
                if let Kind::Copy(CopySpec { from: Some(f), .. }) = &ins.kind {
                    let f = expand(f, &self.global, self.df.escape).unwrap_or_default();
                    if let Some(d) = self.stage_ref(&f, i) {
                        todo.push(d);
                    }
                }
            }
        }
        need.into_iter().collect()
    }

    /// How progress names a stage: its name, `stage-N`, or nothing for a single stage.
    fn label(&self, stage: &Stage) -> String {
        match &stage.name {
            Some(n) => n.clone(),
            None if self.df.stages.len() == 1 => String::new(),
            None => format!("stage-{}", stage.index),
        }
    }

    fn err(&self, ins: &Instruction, message: impl Into<String>) -> BuildError {
        BuildError::Step {
            file: self.df.name.clone(),
            line: ins.line,
            instruction: ins.keyword().to_string(),
            message: message.into(),
        }
    }

    fn expand(
        &self,
        ins: &Instruction,
        word: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<String, BuildError> {
        expand(word, env, self.df.escape).map_err(|m| self.err(ins, m))
    }

    fn emit_step(&mut self, stage: &str, text: &str, cached: bool) {
        self.step += 1;
        if cached {
            self.cached += 1;
        }
        (self.progress)(BuildEvent::Step {
            stage: stage.to_string(),
            step: self.step,
            total: self.total,
            instruction: text.to_string(),
            cached,
        });
    }

    fn synth_from(&self, stage: &Stage) -> Instruction {
        Instruction {
            line: stage.line,
            text: format!("FROM {}", stage.base),
            kind: Kind::From {
                base: stage.base.clone(),
                name: stage.name.clone(),
                platform: stage.platform.clone(),
            },
        }
    }

    /// The starting state of a stage: another stage, `scratch`, or an image from the store
    /// (pulled if absent, or always with `pull`).
    fn base(&self, stage: &Stage, done: &[Option<StageState>]) -> Result<StageState, BuildError> {
        let from = self.synth_from(stage);
        let base = self.expand(&from, &stage.base, &self.global)?;
        let label = self.label(stage);
        if let Some(i) = self.stage_ref(&base, stage.index) {
            let mut st = done[i].clone().expect("dependencies are built first");
            st.label = label;
            st.args.clear();
            st.cmd_set = false;
            return Ok(st);
        }
        let empty = StageState {
            label,
            layers: Vec::new(),
            config: ImageConfig::default(),
            onbuild: Vec::new(),
            triggers: Vec::new(),
            shell: vec!["/bin/sh".into(), "-c".into()],
            history: Vec::new(),
            args: BTreeMap::new(),
            key: cache::chain("", "scratch"),
            cmd_set: false,
            platform: Platform::host(),
        };
        if base == "scratch" {
            return Ok(empty);
        }
        let base = match self.opts.contexts.get(&base) {
            Some(NamedContext::Image(r)) => r.clone(),
            Some(NamedContext::Dir(p)) => {
                return Err(self.err(
                    &from,
                    format!(
                        "{base} is the folder {}: a folder context cannot be a base image",
                        p.display()
                    ),
                ))
            }
            None => base,
        };
        let platform = match &stage.platform {
            Some(p) => {
                let p = self.expand(&from, p, &self.global)?;
                Some(Platform::parse(&p).map_err(|e| self.err(&from, e.to_string()))?)
            }
            None => None,
        };
        let policy = if self.opts.pull {
            PullPolicy::Always
        } else {
            PullPolicy::Missing
        };
        let base_err = |source| BuildError::Base {
            file: self.df.name.clone(),
            line: stage.line,
            image: base.clone(),
            source: Box::new(source),
        };
        let img = self
            .store
            .ensure(&base, policy, platform.as_ref(), &|_| {})
            .map_err(base_err)?;
        let rec = self
            .store
            .read_record(&img.id)
            .map_err(base_err)?
            .ok_or_else(|| base_err(ImageError::NoSuchImage(base.clone())))?;
        let raw: serde_json::Value =
            serde_json::from_slice(&self.store.config_blob(&img.id).map_err(base_err)?)
                .unwrap_or_default();
        let history = raw["history"].as_array().cloned().unwrap_or_default();
        let shell = raw["config"]["Shell"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .filter(|v: &Vec<String>| !v.is_empty())
            .unwrap_or(empty.shell.clone());
        let onbuild = raw["config"]["OnBuild"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        Ok(StageState {
            layers: rec.layers,
            config: img.config.clone(),
            shell,
            // Triggers fire in the child build and are not passed on (Docker's rule).
            triggers: onbuild,
            history,
            key: cache::chain("", &format!("from {}", img.id)),
            platform: Platform {
                os: img.os.clone(),
                architecture: img.architecture.clone(),
                variant: img.variant.clone(),
            },
            ..empty
        })
    }

    fn stage(
        &mut self,
        stage: &Stage,
        done: &[Option<StageState>],
    ) -> Result<StageState, BuildError> {
        let span = tracing::info_span!("stage", index = stage.index, name = ?stage.name);
        let _g = span.enter();
        let label = self.label(stage);
        self.emit_step(&label, &format!("FROM {}", stage.base), false);
        let mut st = self.base(stage, done)?;
        let triggers = std::mem::take(&mut st.triggers);
        self.total += triggers.len();
        for t in &triggers {
            let ins =
                parser::parse_line(&self.df.name, stage.line, t, self.df.escape).map_err(|e| {
                    self.err(
                        &self.synth_from(stage),
                        format!("ONBUILD trigger of the base image: {e}"),
                    )
                })?;
            if matches!(ins.kind, Kind::Onbuild(_) | Kind::From { .. }) {
                return Err(self.err(&ins, "not allowed as an ONBUILD trigger"));
            }
            self.instruction(&mut st, &ins, done)?;
        }
        for ins in &stage.instructions {
            self.instruction(&mut st, ins, done)?;
        }
        Ok(st)
    }

    /// Environment for substitution: ARGs, overridden by ENV (Docker's precedence).
    fn env_of(st: &StageState) -> BTreeMap<String, String> {
        let mut env = st.args.clone();
        // As BuildKit: an image without PATH still expands `$PATH` to the default one.
        let (k, v) = DEFAULT_PATH.split_once('=').expect("KEY=value");
        env.insert(k.into(), v.into());
        for e in &st.config.env {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            env.insert(k.to_string(), v.to_string());
        }
        env
    }

    fn history(st: &mut StageState, text: &str, empty_layer: bool) {
        let created = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let mut h = serde_json::json!({"created": created, "created_by": text, "comment": "rcompose build"});
        if empty_layer {
            h["empty_layer"] = serde_json::Value::Bool(true);
        }
        st.history.push(h);
    }

    fn shell_or_exec(st: &StageState, c: &Command) -> Vec<String> {
        match c {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut v = st.shell.clone();
                v.push(s.clone());
                v
            }
        }
    }

    fn instruction(
        &mut self,
        st: &mut StageState,
        ins: &Instruction,
        done: &[Option<StageState>],
    ) -> Result<(), BuildError> {
        let env = Self::env_of(st);
        let x = |w: &str| self.expand(ins, w, &env);
        // The step as the cache sees it: variables substituted where Docker substitutes.
        let mut step = ins.text.clone();
        let mut layer = false;
        match &ins.kind {
            Kind::From { .. } => unreachable!("FROM starts a stage"),
            Kind::Arg(args) => {
                let mut parts = Vec::new();
                for (name, default) in args {
                    let value = match (self.opts.args.get(name), default) {
                        (Some(v), _) => Some(v.clone()),
                        (None, Some(d)) => Some(x(d)?),
                        (None, None) => self.global.get(name).cloned(),
                    };
                    parts.push(format!("{name}={value:?}"));
                    if let Some(v) = value {
                        st.args.insert(name.clone(), v);
                    }
                }
                step = format!("ARG {}", parts.join(" "));
            }
            Kind::Env(pairs) => {
                let mut parts = Vec::new();
                for (k, v) in pairs {
                    // Every value sees the environment from before this ENV (Docker's rule).
                    let v = x(v)?;
                    st.config
                        .env
                        .retain(|e| e.split_once('=').map(|p| p.0) != Some(k));
                    st.config.env.push(format!("{k}={v}"));
                    parts.push(format!("{k}={v}"));
                }
                step = format!("ENV {}", parts.join(" "));
            }
            Kind::Label(pairs) => {
                let mut parts = Vec::new();
                for (k, v) in pairs {
                    let (k, v) = (x(k)?, x(v)?);
                    parts.push(format!("{k}={v}"));
                    st.config.labels.insert(k, v);
                }
                step = format!("LABEL {}", parts.join(" "));
            }
            Kind::Workdir(w) => {
                let w = x(w)?;
                let base = st.config.working_dir.clone().unwrap_or_else(|| "/".into());
                let joined = if w.starts_with('/') {
                    w
                } else {
                    format!("{base}/{w}")
                };
                let dir = format!("/{}", clean(&joined));
                step = format!("WORKDIR {dir}");
                st.config.working_dir = Some(dir);
            }
            Kind::User(u) => {
                let u = x(u)?;
                step = format!("USER {u}");
                st.config.user = Some(u);
            }
            Kind::Expose(ports) => {
                for p in ports {
                    let p = x(p)?;
                    let (port, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                    let proto = proto.to_ascii_lowercase();
                    let range = match port.split_once('-') {
                        Some((a, b)) => a.parse::<u16>().ok().zip(b.parse::<u16>().ok()),
                        None => port.parse::<u16>().ok().map(|a| (a, a)),
                    };
                    let Some((a, b)) = range.filter(|(a, b)| a <= b) else {
                        return Err(self.err(
                            ins,
                            format!(
                                "invalid port {p:?}: expected <port>[/tcp|udp|sctp] or a range"
                            ),
                        ));
                    };
                    for n in a..=b {
                        st.config.exposed_ports.push(format!("{n}/{proto}"));
                    }
                }
                st.config.exposed_ports.sort();
                st.config.exposed_ports.dedup();
            }
            Kind::Volume(vols) => {
                for v in vols {
                    let v = x(v)?;
                    if v.is_empty() {
                        return Err(self.err(ins, "VOLUME with an empty path"));
                    }
                    st.config.volumes.push(v);
                }
                st.config.volumes.sort();
                st.config.volumes.dedup();
            }
            Kind::Cmd(c) => {
                st.config.cmd = Some(Self::shell_or_exec(st, c));
                st.cmd_set = true;
            }
            Kind::Entrypoint(c) => {
                st.config.entrypoint = Some(Self::shell_or_exec(st, c));
                // An ENTRYPOINT drops a CMD inherited from the base image.
                if !st.cmd_set {
                    st.config.cmd = None;
                }
            }
            Kind::Shell(s) => st.shell = s.clone(),
            Kind::StopSignal(s) => {
                let s = x(s)?;
                step = format!("STOPSIGNAL {s}");
                st.config.stop_signal = Some(s);
            }
            Kind::Healthcheck(None) => {
                st.config.healthcheck = Some(Healthcheck {
                    test: vec!["NONE".into()],
                    ..Default::default()
                })
            }
            Kind::Healthcheck(Some(h)) => {
                let dur =
                    |v: &Option<String>, what: &str| -> Result<Option<Duration>, BuildError> {
                        v.as_ref()
                            .map(|s| {
                                humantime::parse_duration(s).map_err(|e| {
                                    self.err(
                                        ins,
                                        format!("--{what}={s}: {e} (use a duration such as 30s)"),
                                    )
                                })
                            })
                            .transpose()
                    };
                let retries = h
                    .retries
                    .as_ref()
                    .map(|r| {
                        r.parse::<u32>()
                            .map_err(|_| self.err(ins, format!("--retries={r}: expected a number")))
                    })
                    .transpose()?;
                st.config.healthcheck = Some(Healthcheck {
                    test: h.command.clone(),
                    interval: dur(&h.interval, "interval")?,
                    timeout: dur(&h.timeout, "timeout")?,
                    start_period: dur(&h.start_period, "start-period")?,
                    start_interval: dur(&h.start_interval, "start-interval")?,
                    retries,
                });
            }
            Kind::Onbuild(t) => st.onbuild.push(t.clone()),
            Kind::Maintainer(_) => {}
            Kind::Run {
                command,
                script,
                network,
                mounts,
            } => {
                layer = true;
                // The mounts (and, for binds, their content) are part of the key; views of
                // stages for `--mount=from=` stay mounted until the step is done.
                let (mut mount_specs, mount_key, mut skip, _views) =
                    self.run_mounts(st, ins, mounts, &env, done)?;
                let argv = match script {
                    // A heredoc with a shebang runs as its own executable file (Docker's rule),
                    // bound read-only at a path left out of the layer.
                    Some(s) if s.starts_with("#!") => {
                        let file = self.work.join(format!("{}.script", unique_id()));
                        let made = fs::write(&file, s).and_then(|_| {
                            use std::os::unix::fs::PermissionsExt;
                            fs::set_permissions(&file, fs::Permissions::from_mode(0o755))
                        });
                        made.map_err(|e| self.err(ins, format!("heredoc script: {e}")))?;
                        mount_specs.push(MountSpec::File {
                            source: file,
                            target: HEREDOC_SCRIPT.into(),
                            read_only: true,
                        });
                        skip.push(HEREDOC_SCRIPT.trim_start_matches('/').into());
                        vec![HEREDOC_SCRIPT.to_string()]
                    }
                    Some(s) => {
                        let mut v = st.shell.clone();
                        v.push(s.clone());
                        v
                    }
                    None => Self::shell_or_exec(st, command),
                };
                let net = match network.as_deref() {
                    None => self.opts.network,
                    Some(n) => BuildNetwork::parse(n).ok_or_else(|| {
                        self.err(
                            ins,
                            format!("--network={n}: expected default, host or none"),
                        )
                    })?,
                };
                // ARG values are in the RUN's environment (not in the image): part of the key.
                let mut run_env = st.config.env.clone();
                for (k, v) in &st.args {
                    if !run_env
                        .iter()
                        .any(|e| e.split_once('=').map(|p| p.0) == Some(k))
                    {
                        run_env.push(format!("{k}={v}"));
                    }
                }
                if !run_env.iter().any(|e| e.starts_with("PATH=")) {
                    run_env.push(DEFAULT_PATH.into());
                }
                step = format!(
                    "RUN {} script={:?} env={} user={:?} workdir={:?} net={net:?} mounts={mount_key}",
                    serde_json::to_string(&argv).unwrap_or_default(),
                    script.as_deref().unwrap_or(""),
                    serde_json::to_string(&run_env).unwrap_or_default(),
                    st.config.user,
                    st.config.working_dir
                );
                let key = cache::chain(&st.key, &step);
                let rec = match self.cached_layer(&key) {
                    Some(rec) => {
                        self.emit_step(&st.label, &ins.text, true);
                        rec
                    }
                    None => {
                        self.emit_step(&st.label, &ins.text, false);
                        let rec = self.run_step(st, ins, argv, run_env, net, mount_specs, &skip)?;
                        cache::put(self.store, &key, &Entry::Layer(rec.clone()));
                        rec
                    }
                };
                st.key = key;
                st.layers.push(rec);
                Self::history(st, &ins.text, false);
            }
            Kind::Copy(spec) => {
                layer = true;
                self.copy_step(st, ins, spec, &env, done)?;
            }
        }
        if !layer {
            self.emit_step(&st.label, &ins.text, false);
            st.key = cache::chain(&st.key, &step);
            Self::history(st, &ins.text, true);
        }
        Ok(())
    }

    fn cached_layer(&self, key: &str) -> Option<LayerRecord> {
        if self.opts.no_cache {
            return None;
        }
        match cache::get(self.store, key) {
            Some(Entry::Layer(l)) => Some(l),
            _ => None,
        }
    }

    fn layer_dirs(&self, layers: &[LayerRecord]) -> Vec<PathBuf> {
        layers
            .iter()
            .map(|l| self.store.layer_path(&l.diff_id))
            .collect()
    }

    /// Ingest a layer tar written to `path` into the store.
    fn ingest(&self, ins: &Instruction, path: &Path) -> Result<LayerRecord, BuildError> {
        let f = File::open(path).map_err(|e| self.err(ins, format!("read layer: {e}")))?;
        let l = self.store.ingest_layer(f, None, None, &|_| {})?;
        let _ = fs::remove_file(path);
        Ok(LayerRecord {
            blob: l.blob,
            media_type: l.media_type.to_string(),
            size: l.size,
            diff_id: l.diff_id,
        })
    }

    /// Write the config and manifest, and record the names.
    fn commit(
        &self,
        st: &StageState,
        names: &[Reference],
    ) -> Result<crate::image::Image, BuildError> {
        let final_key = cache::chain(&st.key, "image");
        let cached = (!self.opts.no_cache)
            .then(|| cache::get(self.store, &final_key))
            .flatten();
        let (id, size) = match cached {
            Some(Entry::Config(d)) => {
                let size = self.store.config_blob(&d)?.len() as u64;
                (d, size)
            }
            _ => {
                let created = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
                let cfg = ConfigFile {
                    architecture: st.platform.architecture.clone(),
                    os: st.platform.os.clone(),
                    variant: st.platform.variant.clone(),
                    created: Some(created),
                    config: Some(ContainerConfig::from(&st.config)),
                    rootfs: RootFs {
                        kind: "layers".into(),
                        diff_ids: st.layers.iter().map(|l| l.diff_id.clone()).collect(),
                    },
                };
                let mut v = serde_json::to_value(&cfg).expect("config serializes");
                v["history"] = serde_json::Value::Array(st.history.clone());
                if st.shell != ["/bin/sh", "-c"] {
                    v["config"]["Shell"] = serde_json::json!(st.shell);
                }
                if !st.onbuild.is_empty() {
                    v["config"]["OnBuild"] = serde_json::json!(st.onbuild);
                }
                let bytes = serde_json::to_vec(&v).expect("config serializes");
                let d = self.store.put_blob(&bytes, None, "image config")?;
                cache::put(self.store, &final_key, &Entry::Config(d.clone()));
                (d, bytes.len() as u64)
            }
        };
        let rec = self.store.oci_record(id.clone(), size, st.layers.clone())?;
        for n in names {
            self.store.commit_name(n, &rec)?;
        }
        self.store
            .get(&names[0].to_string())?
            .ok_or_else(|| BuildError::from(ImageError::NoSuchImage(names[0].familiar())))
    }
}

/// An instruction for a message: whitespace runs collapsed, at most `max` characters.
fn shorten(text: &str, max: usize) -> String {
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= max {
        one
    } else {
        format!("{}…", one.chars().take(max - 1).collect::<String>())
    }
}

fn unique_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let seed = format!(
        "{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    // The pid tells a later build whether the step's owner is gone (`clean_stale`).
    format!(
        "build-{}-{}",
        std::process::id(),
        &cache::chain("", &seed)[..12]
    )
}

/// Remove RUN containers of builds whose process is gone (killed, Ctrl-C): their processes,
/// cgroups and folders. Containers of running builds are left alone.
fn clean_stale(runtime: &Runtime) {
    let dir = runtime.state_root.join("build");
    let Ok(rd) = fs::read_dir(&dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').nth(1).unwrap_or("");
        let alive = !pid.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
            && Path::new("/proc").join(pid).exists();
        if !alive {
            info!(container = %name, "removing a build container left by a dead build");
            if let Err(err) = container::cleanup(&e.path()) {
                tracing::warn!(container = %name, %err, "remove stale build container");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_instructions_are_shortened_for_messages() {
        assert_eq!(shorten("RUN  a \\\n   b", 100), "RUN a \\ b");
        let long = format!("RUN {}", "x".repeat(200));
        let s = shorten(&long, 20);
        assert_eq!(s.chars().count(), 20);
        assert!(s.ends_with('…'));
    }
}
