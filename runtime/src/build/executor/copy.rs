//! COPY and ADD steps of the executor: sources resolved in the context (minus `.dockerignore`),
//! a stage, a named context or an image; their content hashed for the cache key; the files
//! written as a layer tar (owners, modes, parent folders as the stage has them, local tars
//! extracted for ADD).

use super::*;

impl Builder<'_> {
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

    pub(super) fn copy_step(
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
