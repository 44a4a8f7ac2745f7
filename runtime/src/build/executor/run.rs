//! RUN steps of the executor: a container of the runtime on an overlay of the stage's layers
//! (its env, workdir, user; the host's network or none), `RUN --mount`s (cache folders, read-
//! only binds, tmpfs), the output streamed as events, and the container's upper dir turned
//! into a layer the store ingests. The container is removed even when the step fails.

use super::*;

impl Builder<'_> {
    /// `RUN --mount`s as container mounts: cache folders under `<root>/build-cache-mounts`,
    /// read-only binds of the context (or a stage, named context or image), tmpfs. Returns the
    /// mounts, their part of the cache key, the targets to leave out of the layer, and the
    /// views to keep mounted while the step runs.
    #[allow(clippy::type_complexity)]
    pub(super) fn run_mounts(
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

    /// One RUN: a container on the stage's layers; its upper dir becomes the layer.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_step(
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
