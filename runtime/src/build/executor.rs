//! Runs a parsed Dockerfile: picks the stages the target needs, walks their instructions with
//! Docker's semantics (ARG/ENV scoping, ENTRYPOINT resetting an inherited CMD, WORKDIR
//! relative to the previous one, ...), runs RUN steps in containers of our runtime, writes
//! COPY/ADD layers, consults the cache for every layer step, and finally records the image
//! (config with history and diff_ids, OCI manifest, names) in the store.

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
use crate::image::manifest::{self, ConfigFile, ContainerConfig, Descriptor, RootFs};
use crate::image::store::{ImageRecord, LayerRecord};
use crate::image::{Healthcheck, ImageConfig, ImageError, Platform, PullPolicy, Reference, Store};

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

    /// One RUN: a container on the stage's layers; its upper dir becomes the layer.
    /// `RUN --mount`s as container mounts: cache folders under `<root>/build-cache-mounts`,
    /// read-only binds of the context (or a stage, named context or image), tmpfs. Returns the
    /// mounts, their part of the cache key, the targets to leave out of the layer, and the
    /// views to keep mounted while the step runs.
    #[allow(clippy::type_complexity)]
    fn run_mounts(
        &self,
        st: &StageState,
        ins: &Instruction,
        mounts: &[parser::RunMount],
        env: &BTreeMap<String, String>,
        done: &[Option<StageState>],
    ) -> Result<(Vec<MountSpec>, String, Vec<String>, Vec<MergedView>), BuildError> {
        use parser::RunMount;
        let workdir = st.config.working_dir.clone().unwrap_or_else(|| "/".into());
        let abs = |t: &str| -> Result<String, BuildError> {
            let t = self.expand(ins, t, env)?;
            let joined = if t.starts_with('/') {
                t
            } else {
                format!("{workdir}/{t}")
            };
            Ok(clean(&joined))
        };
        let (mut specs, mut key, mut skip, mut views) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for m in mounts {
            match m {
                RunMount::Cache {
                    target,
                    id,
                    uid,
                    gid,
                    mode,
                    read_only,
                } => {
                    let t = abs(target)?;
                    let cid = id.clone().unwrap_or_else(|| format!("/{t}"));
                    let dir = self
                        .runtime
                        .state_root
                        .join("build-cache-mounts")
                        .join(&cache::chain("", &cid)[..16]);
                    if !dir.exists() {
                        let made = fs::create_dir_all(&dir)
                            .and_then(|_| std::os::unix::fs::chown(&dir, *uid, *gid))
                            .and_then(|_| {
                                use std::os::unix::fs::PermissionsExt;
                                fs::set_permissions(
                                    &dir,
                                    fs::Permissions::from_mode(mode.unwrap_or(0o755)),
                                )
                            });
                        made.map_err(|e| {
                            self.err(ins, format!("cache mount {}: {e}", dir.display()))
                        })?;
                    }
                    key.push(format!("cache {t} {cid}"));
                    specs.push(MountSpec::Bind {
                        source: dir,
                        target: format!("/{t}"),
                        read_only: *read_only,
                        propagation: None,
                        create_host_path: false,
                    });
                    skip.push(t);
                }
                RunMount::Tmpfs { target, size } => {
                    let t = abs(target)?;
                    key.push(format!("tmpfs {t}"));
                    specs.push(MountSpec::Tmpfs {
                        target: format!("/{t}"),
                        size: *size,
                        mode: None,
                    });
                    skip.push(t);
                }
                RunMount::Bind {
                    target,
                    source,
                    from,
                } => {
                    let t = abs(target)?;
                    let (root, ignore): (PathBuf, Option<&Ignore>) = match from {
                        None => (self.context.clone(), Some(&self.ignore)),
                        Some(f) => {
                            let f = self.expand(ins, f, env)?;
                            let lower = f.to_ascii_lowercase();
                            let stage = self
                                .df
                                .stages
                                .iter()
                                .position(|s| s.name.as_deref() == Some(lower.as_str()));
                            let layers = match (stage, self.opts.contexts.get(&f)) {
                                (Some(i), _) => done
                                    .get(i)
                                    .and_then(|s| s.as_ref())
                                    .map(|s| s.layers.clone())
                                    .ok_or_else(|| self.err(ins, format!("--mount from={f}: stage {f} must come before this one")))?,
                                (None, Some(NamedContext::Dir(p))) => {
                                    views.push(MergedView::new(std::slice::from_ref(p), p)
                                        .map_err(|e| self.err(ins, format!("--mount from={f}: {e}")))?);
                                    Vec::new()
                                }
                                (None, named) => {
                                    let r = match named {
                                        Some(NamedContext::Image(r)) => r.clone(),
                                        _ => f.clone(),
                                    };
                                    let img = self
                                        .store
                                        .ensure(&r, PullPolicy::Missing, None, &|_| {})
                                        .map_err(|e| self.err(ins, format!("--mount from={f}: {e}")))?;
                                    self.store
                                        .read_record(&img.id)?
                                        .map(|r| r.layers)
                                        .unwrap_or_default()
                                }
                            };
                            if !layers.is_empty() {
                                let mp = self.work.join(format!("{}.mount", unique_id()));
                                views.push(
                                    MergedView::new(&self.layer_dirs(&layers), &mp).map_err(
                                        |e| self.err(ins, format!("--mount from={f}: {e}")),
                                    )?,
                                );
                            }
                            let root = views
                                .last()
                                .map(|v| v.root.clone())
                                .unwrap_or_else(|| self.context.clone());
                            (root, None)
                        }
                    };
                    let src = Source {
                        root: &root,
                        ignore,
                    };
                    let word = self.expand(ins, source, env)?;
                    let rel = src
                        .resolve(&word)
                        .map_err(|m| self.err(ins, format!("--mount source={m}")))?
                        .remove(0);
                    let path = src.path(&rel);
                    let mut h = ContentHash::new();
                    h.entry(&rel, &path)
                        .map_err(|e| self.err(ins, format!("{}: {e}", path.display())))?;
                    if path.is_dir() {
                        for sub in src
                            .walk(&rel)
                            .map_err(|e| self.err(ins, format!("{rel}: {e}")))?
                        {
                            h.entry(&sub, &path.join(&sub))
                                .map_err(|e| self.err(ins, format!("{sub}: {e}")))?;
                        }
                    }
                    key.push(format!("bind {t} {}", h.finish()));
                    specs.push(MountSpec::Bind {
                        source: path,
                        target: format!("/{t}"),
                        read_only: true,
                        propagation: None,
                        create_host_path: false,
                    });
                    skip.push(t);
                }
            }
        }
        Ok((specs, key.join(";"), skip, views))
    }

    #[allow(clippy::too_many_arguments)]
    fn run_step(
        &mut self,
        st: &StageState,
        ins: &Instruction,
        argv: Vec<String>,
        env: Vec<String>,
        net: BuildNetwork,
        extra_mounts: Vec<MountSpec>,
        skip: &[String],
    ) -> Result<LayerRecord, BuildError> {
        let id = unique_id();
        let state_dir = self.runtime.state_root.join("build").join(&id);
        let guard = ContainerGuard(state_dir.clone());
        let mut lower_dirs = self.layer_dirs(&st.layers);
        if lower_dirs.is_empty() {
            // FROM scratch: overlay needs a lower folder.
            let empty = state_dir.join("empty-lower");
            fs::create_dir_all(&empty)
                .map_err(|e| self.err(ins, format!("{}: {e}", empty.display())))?;
            lower_dirs.push(empty);
        }
        let mut mounts = Vec::new();
        let namespaces = match net {
            BuildNetwork::Host => {
                for f in ["/etc/resolv.conf", "/etc/hosts"] {
                    if Path::new(f).exists() {
                        mounts.push(MountSpec::File {
                            source: f.into(),
                            target: f.into(),
                            read_only: true,
                        });
                    }
                }
                container::NamespaceSpec {
                    net: NetMode::Host,
                    ..Default::default()
                }
            }
            BuildNetwork::None => container::NamespaceSpec::default(),
        };
        mounts.extend(extra_mounts);
        let spec = ContainerSpec {
            id: id.clone(),
            name: format!("build-step-{}", self.step),
            service: "build".into(),
            state_dir: state_dir.clone(),
            lower_dirs,
            process: ProcessSpec {
                args: argv,
                env,
                cwd: st.config.working_dir.clone(),
                user: st.config.user.clone(),
                ..Default::default()
            },
            hostname: Some("rcompose-build".into()),
            mounts,
            namespaces,
            ..Default::default()
        };
        let pipe = || {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| self.err(ins, format!("pipe: {e}")))
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let progress = self.progress;
        let started = std::time::Instant::now();
        let (status, created) = std::thread::scope(|s| -> Result<_, BuildError> {
            for r in [out_r, err_r] {
                let tail = tail.clone();
                s.spawn(move || {
                    for line in BufReader::new(File::from(r)).lines() {
                        let Ok(line) = line else { break };
                        progress(BuildEvent::Output { line: line.clone() });
                        let mut t = tail.lock().expect("tail lock");
                        if t.len() == 10 {
                            t.pop_front();
                        }
                        t.push_back(line);
                    }
                });
            }
            let stdio = Stdio {
                stdin: None,
                stdout: out_w,
                stderr: err_w,
            };
            let created = self
                .runtime
                .create(&spec, stdio)
                .map_err(|e| self.err(ins, e.to_string()))?;
            created.start().map_err(|e| self.err(ins, e.to_string()))?;
            let status = container::wait(created.pid)
                .map_err(|e| self.err(ins, format!("wait for the RUN process: {e}")))?;
            // Whatever it left running in the background ends with the step.
            if !created.processes().unwrap_or_default().is_empty() {
                let _ = created.kill_all();
            }
            Ok((status, created))
        })?;
        debug!(?status, elapsed = ?started.elapsed(), "RUN finished");
        if status.code() != 0 {
            let lines: Vec<String> = tail.lock().expect("tail lock").iter().cloned().collect();
            let output = if lines.is_empty() {
                String::new()
            } else {
                format!("; last output:\n  {}", lines.join("\n  "))
            };
            return Err(BuildError::RunFailed {
                file: self.df.name.clone(),
                line: ins.line,
                instruction: shorten(&ins.text, 100),
                code: status.code(),
                output,
            });
        }
        let tar_path = self.work.join(format!("{id}.tar"));
        let write = || -> io::Result<usize> {
            let f = io::BufWriter::new(File::create(&tar_path)?);
            let mut t = LayerTar::new(f);
            let n = layer::diff_upper(&state_dir.join("upper"), skip, &mut t)?;
            // A staging file the store copies: flushed, not synced.
            t.finish()?.into_inner().map_err(|e| e.into_error())?;
            Ok(n)
        };
        let n = write().map_err(|e| self.err(ins, format!("write the layer: {e}")))?;
        drop(created);
        drop(guard);
        debug!(entries = n, "RUN layer");
        self.ingest(ins, &tar_path)
    }

    /// Resolve `--chown=user[:group]` through the stage's /etc/passwd and /etc/group.
    fn owner(
        &self,
        st: &StageState,
        ins: &Instruction,
        spec: &str,
    ) -> Result<(u64, u64), BuildError> {
        let layers = self.layer_dirs(&st.layers);
        let (u, g) = spec.split_once(':').unwrap_or((spec, ""));
        let find = |file: &str, name: &str| -> Option<(u64, u64)> {
            let p = layer::lookup(&layers, file)?;
            // Only a regular file: a symlink here would be read on the host.
            if !fs::symlink_metadata(&p).ok()?.is_file() {
                return None;
            }
            let text = fs::read_to_string(p).ok()?;
            text.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.first() == Some(&name)).then(|| {
                    (
                        f.get(2).and_then(|v| v.parse().ok()).unwrap_or(0),
                        f.get(3).and_then(|v| v.parse().ok()).unwrap_or(0),
                    )
                })
            })
        };
        let (uid, primary) = match u.parse::<u64>() {
            Ok(n) => (n, n),
            Err(_) => find("etc/passwd", u).ok_or_else(|| {
                self.err(
                    ins,
                    format!("--chown={spec}: no user {u:?} in the stage's /etc/passwd"),
                )
            })?,
        };
        let gid = if g.is_empty() {
            primary
        } else {
            match g.parse::<u64>() {
                Ok(n) => n,
                Err(_) => find("etc/group", g).map(|(gid, _)| gid).ok_or_else(|| {
                    self.err(
                        ins,
                        format!("--chown={spec}: no group {g:?} in the stage's /etc/group"),
                    )
                })?,
            }
        };
        Ok((uid, gid))
    }

    fn copy_step(
        &mut self,
        st: &mut StageState,
        ins: &Instruction,
        spec: &CopySpec,
        env: &BTreeMap<String, String>,
        done: &[Option<StageState>],
    ) -> Result<(), BuildError> {
        let x = |w: &str| -> Result<String, BuildError> {
            if spec.json {
                expand_vars(w, env).map_err(|m| self.err(ins, m))
            } else {
                self.expand(ins, w, env)
            }
        };
        let id = unique_id();
        // Where sources come from.
        let mut view: Option<MergedView> = None;
        let mut from_key = String::new();
        let mut named_dir: Option<PathBuf> = None;
        let source_root: PathBuf = match &spec.from {
            None => self.context.clone(),
            Some(f) => {
                let f = self.expand(ins, f, env)?;
                let stage_idx = self
                    .df
                    .stages
                    .iter()
                    .position(|s| s.name.as_deref() == Some(f.to_ascii_lowercase().as_str()))
                    .or_else(|| {
                        f.parse::<usize>()
                            .ok()
                            .filter(|i| *i < self.df.stages.len())
                    });
                let named = self.opts.contexts.get(&f).filter(|_| stage_idx.is_none());
                let layers = match (stage_idx, named) {
                    (_, Some(NamedContext::Dir(p))) => {
                        from_key = format!("dir {}", p.display());
                        named_dir = Some(p.clone());
                        Vec::new()
                    }
                    (Some(i), _) => {
                        let Some(src) = done.get(i).and_then(|s| s.as_ref()) else {
                            return Err(self.err(
                                ins,
                                format!("--from={f}: stage {f} must come before this one"),
                            ));
                        };
                        from_key = src.key.clone();
                        src.layers.clone()
                    }
                    (None, named) => {
                        let policy = if self.opts.pull {
                            PullPolicy::Always
                        } else {
                            PullPolicy::Missing
                        };
                        let r = match named {
                            Some(NamedContext::Image(r)) => r.clone(),
                            _ => f.clone(),
                        };
                        let img = self
                            .store
                            .ensure(&r, policy, None, &|_| {})
                            .map_err(|e| self.err(ins, format!("--from={f}: {e}")))?;
                        from_key = img.id.to_string();
                        self.store
                            .read_record(&img.id)?
                            .map(|r| r.layers)
                            .unwrap_or_default()
                    }
                };
                if let Some(p) = named_dir.take() {
                    p
                } else {
                    let v = MergedView::new(
                        &self.layer_dirs(&layers),
                        &self.work.join(format!("{id}.from")),
                    )
                    .map_err(|e| self.err(ins, format!("--from={f}: mount its filesystem: {e}")))?;
                    let root = v.root.clone();
                    view = Some(v);
                    root
                }
            }
        };
        let source = Source {
            root: &source_root,
            ignore: spec.from.is_none().then_some(&self.ignore),
        };
        let dest_word = x(&spec.dest)?;
        let workdir = st.config.working_dir.clone().unwrap_or_else(|| "/".into());
        let abs = if dest_word.starts_with('/') {
            dest_word.clone()
        } else {
            format!("{workdir}/{dest_word}")
        };
        let stage_layers = self.layer_dirs(&st.layers);
        // Through the image's own symlinks (`/bin -> usr/bin`), never replacing them.
        let dest = layer::resolve(&stage_layers, &clean(&abs));
        let dest_exists_dir = layer::lookup(&stage_layers, &dest)
            .and_then(|p| fs::symlink_metadata(p).ok())
            .is_some_and(|m| m.is_dir());
        // Resolve every source word.
        let mut items: Vec<Item> = Vec::new();
        for w in &spec.sources {
            if let Some(name) = w.strip_prefix("<<") {
                let name = name.trim_start_matches('-').trim_matches(['"', '\'']);
                let body = spec
                    .heredocs
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, b)| b.clone())
                    .ok_or_else(|| self.err(ins, format!("heredoc <<{name} has no body")))?;
                items.push(Item::Inline(name.to_string(), body));
                continue;
            }
            let w = x(w)?;
            if w.contains("://") || w.starts_with("git@") {
                return Err(self.err(ins, format!(
                    "{w}: rcompose builds offline and does not download sources: fetch it into the build context and COPY it"
                )));
            }
            for rel in source.resolve(&w).map_err(|m| self.err(ins, m))? {
                items.push(Item::Path(rel));
            }
        }
        let dest_is_dir = spec.dest.ends_with('/')
            || dest_word.ends_with('/')
            || items.len() > 1
            || dest_exists_dir;
        let (uid, gid) = match &spec.chown {
            Some(c) => {
                let c = self.expand(ins, c, env)?;
                self.owner(st, ins, &c)?
            }
            None => (0, 0),
        };
        let chmod = match &spec.chmod {
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        self.err(
                            ins,
                            format!("--chmod={m}: expected an octal mode such as 0755"),
                        )
                    })?,
            ),
            None => None,
        };
        // The plan: (destination path, what).
        let mut plan: Vec<(String, Planned)> = Vec::new();
        for item in &items {
            match item {
                Item::Inline(name, body) => {
                    let target = if dest_is_dir {
                        join(&dest, name)
                    } else {
                        dest.clone()
                    };
                    plan.push((target, Planned::Bytes(body.clone().into_bytes())));
                }
                Item::Path(rel) => {
                    let p = source.path(rel);
                    // The source itself is followed when it is a symlink (as BuildKit does).
                    let meta =
                        fs::metadata(&p).map_err(|e| self.err(ins, format!("{rel}: {e}")))?;
                    if meta.is_dir() {
                        plan.push((dest.clone(), Planned::Dir(p.clone())));
                        for sub in source
                            .walk(rel)
                            .map_err(|e| self.err(ins, format!("{rel}: {e}")))?
                        {
                            let sp = p.join(&sub);
                            plan.push((join(&dest, &sub), Planned::AsIs(sp)));
                        }
                    } else if spec.add && is_archive(&p) {
                        plan.push((dest.clone(), Planned::Archive(p.clone())));
                    } else {
                        let base = Path::new(rel)
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        let target = if dest_is_dir {
                            join(&dest, &base)
                        } else {
                            dest.clone()
                        };
                        plan.push((target, Planned::File(p.clone())));
                    }
                }
            }
        }
        // The key: the instruction, the owner/mode, and the content of every file.
        let mut h = ContentHash::new();
        h.text(&format!(
            "{} {dest} {uid}:{gid} {chmod:?} from={from_key}",
            ins.keyword()
        ));
        for (d, what) in &plan {
            match what {
                Planned::Bytes(b) => h.text(&format!("{d} {}", String::from_utf8_lossy(b))),
                Planned::Dir(p) | Planned::AsIs(p) | Planned::File(p) | Planned::Archive(p) => h
                    .entry(d, p)
                    .map_err(|e| self.err(ins, format!("{}: {e}", p.display())))?,
            }
        }
        let key = cache::chain(&st.key, &h.finish());
        let rec = match self.cached_layer(&key) {
            Some(rec) => {
                self.emit_step(&st.label, &ins.text, true);
                rec
            }
            None => {
                self.emit_step(&st.label, &ins.text, false);
                let tar_path = self.work.join(format!("{id}.tar"));
                let write = || -> io::Result<()> {
                    let f = io::BufWriter::new(File::create(&tar_path)?);
                    let mut t = LayerTar::new(f);
                    write_copy(
                        &mut t,
                        &plan,
                        &stage_layers,
                        uid,
                        gid,
                        chmod,
                        spec.chown.is_some(),
                    )?;
                    t.finish()?.into_inner().map_err(|e| e.into_error())?;
                    Ok(())
                };
                write().map_err(|e| self.err(ins, format!("write the layer: {e}")))?;
                let rec = self.ingest(ins, &tar_path)?;
                cache::put(self.store, &key, &Entry::Layer(rec.clone()));
                rec
            }
        };
        drop(view);
        st.key = key;
        st.layers.push(rec);
        Self::history(st, &ins.text, false);
        Ok(())
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
        let m = manifest::Manifest {
            schema_version: 2,
            media_type: Some(manifest::OCI_MANIFEST.into()),
            config: Descriptor {
                media_type: manifest::OCI_CONFIG.into(),
                digest: id.clone(),
                size,
                platform: None,
                annotations: BTreeMap::new(),
            },
            layers: st
                .layers
                .iter()
                .map(|l| Descriptor {
                    media_type: l.media_type.clone(),
                    digest: l.blob.clone(),
                    size: l.size,
                    platform: None,
                    annotations: BTreeMap::new(),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&m).expect("manifest serializes");
        let manifest_digest = self.store.put_blob(&bytes, None, "image manifest")?;
        let rec = ImageRecord {
            id: id.clone(),
            manifest_digest,
            manifest_media_type: manifest::OCI_MANIFEST.into(),
            layers: st.layers.clone(),
        };
        for n in names {
            self.store.commit_name(n, &rec)?;
        }
        self.store
            .get(&names[0].to_string())?
            .ok_or_else(|| BuildError::from(ImageError::NoSuchImage(names[0].familiar())))
    }
}

enum Item {
    Path(String),
    Inline(String, String),
}

enum Planned {
    /// A source folder whose content goes to the destination folder.
    Dir(PathBuf),
    /// Something inside a copied folder.
    AsIs(PathBuf),
    File(PathBuf),
    Bytes(Vec<u8>),
    /// ADD of a local tar: its entries go below the destination.
    Archive(PathBuf),
}

fn join(dir: &str, name: &str) -> String {
    clean(&format!("{dir}/{name}"))
}

/// Whether a file is a tar archive ADD extracts (plain, gzip or zstd).
fn is_archive(p: &Path) -> bool {
    let mut head = [0u8; 512];
    let Ok(mut f) = File::open(p) else {
        return false;
    };
    let n = f.read(&mut head).unwrap_or(0);
    if n >= 2 && head[..2] == [0x1f, 0x8b] || n >= 4 && head[..4] == [0x28, 0xb5, 0x2f, 0xfd] {
        return true;
    }
    n >= 262 && &head[257..262] == b"ustar"
}

fn decoder(p: &Path) -> io::Result<Box<dyn Read>> {
    let mut f = File::open(p)?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic)?;
    let f = File::open(p)?;
    Ok(if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Box::new(zstd::stream::read::Decoder::new(f)?)
    } else {
        Box::new(f)
    })
}

/// Folders above `path` the layer must hold: as they are in the stage, or new (0755, root).
fn parents<W: io::Write>(t: &mut LayerTar<W>, path: &str, stage: &[PathBuf]) -> io::Result<()> {
    let mut acc = String::new();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for s in segs.iter().take(segs.len().saturating_sub(1)) {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(s);
        existing_or_new_dir(t, &acc, stage, 0o755, 0, 0)?;
    }
    Ok(())
}

fn existing_or_new_dir<W: io::Write>(
    t: &mut LayerTar<W>,
    path: &str,
    stage: &[PathBuf],
    mode: u32,
    uid: u64,
    gid: u64,
) -> io::Result<()> {
    match layer::lookup(stage, path).and_then(|p| fs::symlink_metadata(p).ok()) {
        Some(m) if m.file_type().is_symlink() => Ok(()),
        Some(m) if m.is_dir() => t.dir(
            path,
            m.mode(),
            m.uid().into(),
            m.gid().into(),
            layer::mtime(&m),
        ),
        _ => t.dir(path, mode, uid, gid, now()),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn write_copy<W: io::Write>(
    t: &mut LayerTar<W>,
    plan: &[(String, Planned)],
    stage: &[PathBuf],
    uid: u64,
    gid: u64,
    chmod: Option<u32>,
    chown: bool,
) -> io::Result<()> {
    for (dest, what) in plan {
        parents(t, dest, stage)?;
        match what {
            Planned::Dir(_) => {
                existing_or_new_dir(t, dest, stage, chmod.unwrap_or(0o755), uid, gid)?
            }
            Planned::Bytes(b) => t.file(
                dest,
                chmod.unwrap_or(0o644),
                uid,
                gid,
                now(),
                b.len() as u64,
                &b[..],
            )?,
            Planned::File(p) | Planned::AsIs(p) => {
                let m = fs::symlink_metadata(p)?;
                let m = if matches!(what, Planned::File(_)) {
                    fs::metadata(p)?
                } else {
                    m
                };
                let ft = m.file_type();
                let mode = chmod.unwrap_or(m.mode() & 0o7777);
                if ft.is_dir() {
                    t.dir(dest, mode, uid, gid, layer::mtime(&m))?;
                } else if ft.is_symlink() {
                    t.symlink(dest, &fs::read_link(p)?, uid, gid, layer::mtime(&m))?;
                } else if ft.is_file() {
                    t.file(
                        dest,
                        mode,
                        uid,
                        gid,
                        layer::mtime(&m),
                        m.len(),
                        File::open(p)?,
                    )?;
                }
                // Devices, fifos and sockets in a context are skipped, as Docker does.
            }
            Planned::Archive(p) => {
                existing_or_new_dir(t, dest, stage, 0o755, 0, 0)?;
                let mut a = tar::Archive::new(decoder(p)?);
                for e in a.entries()? {
                    let mut e = e?;
                    let rel = clean(&e.path()?.to_string_lossy());
                    if rel.is_empty() {
                        continue;
                    }
                    let target = join(dest, &rel);
                    parents(t, &target, stage)?;
                    let h = e.header().clone();
                    let (u, g) = if chown {
                        (uid, gid)
                    } else {
                        (h.uid().unwrap_or(0), h.gid().unwrap_or(0))
                    };
                    let mode = chmod.unwrap_or(h.mode().unwrap_or(0o644));
                    let mtime = h.mtime().unwrap_or(0);
                    match h.entry_type() {
                        tar::EntryType::Directory => t.dir(&target, mode, u, g, mtime)?,
                        tar::EntryType::Symlink => {
                            if let Some(l) = e.link_name()? {
                                t.symlink(&target, &l, u, g, mtime)?;
                            }
                        }
                        tar::EntryType::Link => {
                            if let Some(l) = e.link_name()? {
                                // Hard links point inside the extracted tree.
                                let to = join(dest, &clean(&l.to_string_lossy()));
                                let mut lh = tar::Header::new_gnu();
                                lh.set_entry_type(tar::EntryType::Link);
                                lh.set_size(0);
                                lh.set_mode(mode);
                                lh.set_uid(u);
                                lh.set_gid(g);
                                lh.set_mtime(mtime);
                                t.raw_link(&mut lh, &target, &to)?;
                            }
                        }
                        tar::EntryType::Regular | tar::EntryType::Continuous => {
                            let size = h.size().unwrap_or(0);
                            t.file(&target, mode, u, g, mtime, size, &mut e)?;
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(())
}

/// Removes a RUN container (processes, cgroup, mounts, state folder) even on error.
struct ContainerGuard(PathBuf);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if let Err(e) = container::cleanup(&self.0) {
            tracing::warn!(path = %self.0.display(), %e, "remove build container");
        }
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
