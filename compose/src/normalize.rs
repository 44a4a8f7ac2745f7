//! Canonical forms: every short syntax of a file's tree rewritten to its long form, so that
//! merging, extends and typing see one shape (ports, volumes, depends_on, environment, …).
//!
//! Runs on each file right after validation ([`canonical_file`]); relative paths are resolved
//! against the file's base folder here too. [`finish`] runs once on the merged project: defaults
//! (default network, resource names, build context), `env_file` folded into `environment`.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::error::Error;
use crate::yaml::{Map, Node, Span, Value};

/// Where relative paths of a file resolve, and how `~` expands.
pub struct PathCtx<'a> {
    pub base: &'a Path,
    pub home: Option<&'a str>,
    pub resolve: bool,
}

impl PathCtx<'_> {
    pub fn resolve(&self, p: &str) -> String {
        if !self.resolve {
            return p.to_string();
        }
        if let Some(rest) = p.strip_prefix('~') {
            if rest.is_empty() || rest.starts_with('/') {
                if let Some(h) = self.home {
                    return format!("{h}{rest}");
                }
            }
            return p.to_string();
        }
        if p.starts_with('/') {
            return p.to_string();
        }
        clean(&self.base.join(p))
    }
}

/// Lexically cleans a path (`a/./b/../c` → `a/c`), like Go's `filepath.Clean`.
pub fn clean(p: &Path) -> String {
    let mut out: Vec<&str> = Vec::new();
    let abs = p.is_absolute();
    for c in p.to_str().unwrap_or_default().split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !abs {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let s = out.join("/");
    if abs {
        format!("/{s}")
    } else if s.is_empty() {
        ".".into()
    } else {
        s
    }
}

fn invalid(node: &Node, path: &str, msg: String) -> Error {
    Error::Invalid {
        span: node.span.clone(),
        path: path.to_string(),
        msg,
    }
}

fn s(text: impl Into<String>, span: &Span) -> Node {
    Node::string(text, span.clone())
}

fn plain(text: impl Into<String>, span: &Span) -> Node {
    Node::new(
        Value::Scalar {
            text: text.into(),
            plain: true,
        },
        span.clone(),
    )
}

fn text_of(n: &Node) -> Option<String> {
    n.as_str().map(str::to_string)
}

/// A `list_or_dict` (environment, labels, args, …) as a mapping; `K=V` items split, a bare `K`
/// maps to null.
pub fn list_or_dict(node: &Node, sep: char) -> Node {
    list_or_dict_with(node, sep, false)
}

/// [`list_or_dict`] where a missing value becomes `""` (labels, options) instead of null.
pub fn labels(node: &Node) -> Node {
    list_or_dict_with(node, '=', true)
}

fn list_or_dict_with(node: &Node, sep: char, empty_for_null: bool) -> Node {
    let null = |span: &Span| {
        if empty_for_null {
            s("", span)
        } else {
            Node::null(span.clone())
        }
    };
    match &node.value {
        Value::Seq(items) => {
            let mut m = Map::new();
            for it in items {
                let Some(t) = it.as_str() else { continue };
                match t.split_once(sep) {
                    Some((k, v)) => {
                        m.insert(k.to_string(), s(v, &it.span));
                    }
                    None => {
                        m.insert(t.to_string(), null(&it.span));
                    }
                }
            }
            Node::map(m, node.span.clone())
        }
        Value::Map(m) => {
            let mut out = Map::new();
            for (k, v) in m.iter() {
                let v = match &v.value {
                    Value::Scalar { text, .. } => s(text.clone(), &v.span),
                    Value::Null => null(&v.span),
                    _ => v.clone(),
                };
                out.insert(k.clone(), v);
            }
            Node {
                value: Value::Map(Box::new(out)),
                span: node.span.clone(),
                tag: node.tag,
            }
        }
        _ => node.clone(),
    }
}

/// `extra_hosts`: list `host:ip` / `host=ip` or mapping → mapping of host to list of addresses.
fn extra_hosts(node: &Node) -> Node {
    let mut m: Map = Map::new();
    let mut add = |k: &str, v: &str, span: &Span| {
        let e = m
            .entry(k.to_string())
            .or_insert_with(|| Node::seq(vec![], span.clone()));
        if let Value::Seq(items) = &mut e.value {
            items.push(s(v, span));
        }
    };
    match &node.value {
        Value::Seq(items) => {
            for it in items {
                let Some(t) = it.as_str() else { continue };
                let (k, v) = t
                    .split_once('=')
                    .or_else(|| t.split_once(':'))
                    .unwrap_or((t, ""));
                add(k.trim(), v.trim(), &it.span);
            }
        }
        Value::Map(mm) => {
            for (k, v) in mm.iter() {
                match &v.value {
                    Value::Seq(items) => {
                        for it in items {
                            add(k, it.as_str().unwrap_or_default(), &it.span)
                        }
                    }
                    _ => add(k, v.as_str().unwrap_or_default(), &v.span),
                }
            }
        }
        _ => return node.clone(),
    }
    Node {
        value: Value::Map(Box::new(m)),
        span: node.span.clone(),
        tag: node.tag,
    }
}

fn string_or_list(node: &Node) -> Node {
    match &node.value {
        Value::Scalar { .. } => Node {
            value: Value::Seq(vec![s(node.as_str().unwrap_or_default(), &node.span)]),
            span: node.span.clone(),
            tag: node.tag,
        },
        _ => node.clone(),
    }
}

/// Splits a command string as a POSIX shell would (compose-go uses shellwords).
fn shell_split(node: &Node, path: &str) -> Result<Node, Error> {
    match &node.value {
        Value::Scalar { text, .. } => {
            let words = shlex::split(text)
                .ok_or_else(|| invalid(node, path, format!("unbalanced quotes in {text:?}")))?;
            Ok(Node {
                value: Value::Seq(words.into_iter().map(|w| s(w, &node.span)).collect()),
                span: node.span.clone(),
                tag: node.tag,
            })
        }
        _ => Ok(node.clone()),
    }
}

/// Rewrites one file's tree into canonical form, in place.
pub fn canonical_file(root: &mut Node, paths: &PathCtx) -> Result<(), Error> {
    let Some(top) = root.as_map_mut() else {
        return Ok(());
    };
    if let Some(services) = top.get_mut("services").and_then(Node::as_map_mut) {
        for (name, svc) in services.iter_mut() {
            canonical_service(name, svc, paths)?;
        }
    }
    for kind in ["networks", "volumes", "secrets", "configs"] {
        if let Some(m) = top.get_mut(kind).and_then(Node::as_map_mut) {
            for (name, obj) in m.iter_mut() {
                if obj.is_null() {
                    *obj = Node::map(Map::new(), obj.span.clone());
                }
                let Some(o) = obj.as_map_mut() else { continue };
                // Legacy `external: {name: x}`.
                if let Some(ext) = o.get("external").cloned() {
                    if let Some(n) = ext.get("name") {
                        o.insert("name".into(), n.clone());
                        o.insert("external".into(), plain("true", &ext.span));
                    } else if ext.as_map().is_some() {
                        o.insert("external".into(), plain("true", &ext.span));
                    }
                }
                for key in ["labels", "driver_opts"] {
                    if let Some(v) = o.get(key) {
                        let v = labels(v);
                        o.insert(key.into(), v);
                    }
                }
                if kind == "secrets" || kind == "configs" {
                    if let Some(f) = o.get("file").and_then(text_of) {
                        let span = o["file"].span.clone();
                        o.insert("file".into(), s(paths.resolve(&f), &span));
                    }
                }
                let _ = name;
            }
        }
    }
    if let Some(inc) = top.get_mut("include") {
        if let Value::Seq(items) = &mut inc.value {
            for it in items.iter_mut() {
                if let Value::Scalar { text, .. } = &it.value {
                    let mut m = Map::new();
                    m.insert(
                        "path".into(),
                        Node::seq(vec![s(text.clone(), &it.span)], it.span.clone()),
                    );
                    *it = Node::map(m, it.span.clone());
                }
                if let Some(m) = it.as_map_mut() {
                    for key in ["path", "env_file"] {
                        if let Some(v) = m.get(key) {
                            let v = string_or_list(v);
                            m.insert(key.into(), v);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn canonical_service(name: &str, svc: &mut Node, paths: &PathCtx) -> Result<(), Error> {
    if svc.is_null() {
        *svc = Node::map(Map::new(), svc.span.clone());
    }
    let span = svc.span.clone();
    let Some(m) = svc.as_map_mut() else {
        return Ok(());
    };
    let p = |k: &str| format!("services.{name}.{k}");
    if let Some(b) = m.get("build").cloned() {
        let mut bm = match &b.value {
            Value::Scalar { text, .. } => {
                let mut bm = Map::new();
                bm.insert("context".into(), s(text.clone(), &b.span));
                bm
            }
            Value::Map(bm) => (**bm).clone(),
            _ => Map::new(),
        };
        if let Some(v) = bm.get("args") {
            let v = list_or_dict(v, '=');
            bm.insert("args".into(), v);
        }
        if let Some(v) = bm.get("labels") {
            let v = labels(v);
            bm.insert("labels".into(), v);
        }
        if let Some(v) = bm.get("additional_contexts") {
            let mut v = list_or_dict(v, '=');
            if let Some(am) = v.as_map_mut() {
                for (_, c) in am.iter_mut() {
                    if let Some(t) = c.as_str() {
                        if !t.contains("://") && !t.contains(':') {
                            *c = s(paths.resolve(t), &c.span);
                        }
                    }
                }
            }
            bm.insert("additional_contexts".into(), v);
        }
        if let Some(v) = bm.get("extra_hosts") {
            let v = extra_hosts(v);
            bm.insert("extra_hosts".into(), v);
        }
        if let Some(v) = bm.get("secrets") {
            let v = file_refs(v);
            bm.insert("secrets".into(), v);
        }
        if let Some(v) = bm.get("ssh") {
            let pairs: Vec<(String, Option<String>, Span)> = match &v.value {
                Value::Map(sm) => sm
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string), v.span.clone()))
                    .collect(),
                Value::Seq(items) => items
                    .iter()
                    .map(|i| {
                        let t = i.as_str().unwrap_or_default();
                        match t.split_once('=') {
                            Some((k, p)) => (k.to_string(), Some(p.to_string()), i.span.clone()),
                            None => (t.to_string(), None, i.span.clone()),
                        }
                    })
                    .collect(),
                _ => Vec::new(),
            };
            // Docker Compose prints `id: /absolute/path` for keyed entries.
            let items = pairs
                .into_iter()
                .map(|(k, p, sp)| match p {
                    Some(p) => s(format!("{k}: {}", paths.resolve(&p)), &sp),
                    None => s(k, &sp),
                })
                .collect();
            bm.insert("ssh".into(), Node::seq(items, v.span.clone()));
        }
        if let Some(ul) = bm.get("ulimits") {
            let ul = ulimits(ul);
            bm.insert("ulimits".into(), ul);
        }
        let ctx = bm.get("context").and_then(text_of);
        let ctx_span = bm
            .get("context")
            .map(|c| c.span.clone())
            .unwrap_or(b.span.clone());
        let ctx = ctx.unwrap_or_else(|| ".".into());
        let is_remote =
            ctx.contains("://") || ctx.starts_with("git@") || ctx.starts_with("github.com/");
        let resolved = if is_remote { ctx } else { paths.resolve(&ctx) };
        bm.insert("context".into(), s(resolved, &ctx_span));
        m.insert(
            "build".into(),
            Node {
                value: Value::Map(Box::new(bm)),
                span: b.span.clone(),
                tag: b.tag,
            },
        );
    }
    for key in ["command", "entrypoint"] {
        if let Some(v) = m.get(key) {
            let v = shell_split(v, &p(key))?;
            m.insert(key.into(), v);
        }
    }
    if let Some(d) = m.get("depends_on").cloned() {
        let mut out = Map::new();
        match &d.value {
            Value::Seq(items) => {
                for it in items {
                    let mut e = Map::new();
                    e.insert("condition".into(), s("service_started", &it.span));
                    e.insert("required".into(), plain("true", &it.span));
                    out.insert(
                        it.as_str().unwrap_or_default().to_string(),
                        Node::map(e, it.span.clone()),
                    );
                }
            }
            Value::Map(dm) => {
                for (k, v) in dm.iter() {
                    let mut e = v.as_map().cloned().unwrap_or_default();
                    if !e.contains_key("condition") {
                        e.insert("condition".into(), s("service_started", &v.span));
                    }
                    if !e.contains_key("required") {
                        e.insert("required".into(), plain("true", &v.span));
                    }
                    out.insert(k.clone(), Node::map(e, v.span.clone()));
                }
            }
            _ => {}
        }
        m.insert(
            "depends_on".into(),
            Node {
                value: Value::Map(Box::new(out)),
                span: d.span.clone(),
                tag: d.tag,
            },
        );
    }
    if let Some(v) = m.get("environment") {
        let v = list_or_dict(v, '=');
        m.insert("environment".into(), v);
    }
    for key in ["labels", "annotations", "sysctls", "storage_opt"] {
        if let Some(v) = m.get(key) {
            let v = labels(v);
            m.insert(key.into(), v);
        }
    }
    if let Some(v) = m.get("extra_hosts") {
        let v = extra_hosts(v);
        m.insert("extra_hosts".into(), v);
    }
    for key in ["dns", "dns_search", "tmpfs", "label_file"] {
        if let Some(v) = m.get(key) {
            let v = string_or_list(v);
            m.insert(key.into(), v);
        }
    }
    if let Some(v) = m.get("label_file").cloned() {
        let items = v
            .as_seq()
            .map(|items| {
                items
                    .iter()
                    .map(|i| s(paths.resolve(i.as_str().unwrap_or_default()), &i.span))
                    .collect()
            })
            .unwrap_or_default();
        m.insert("label_file".into(), Node::seq(items, v.span.clone()));
    }
    if let Some(v) = m.get("env_file").cloned() {
        let items = match &v.value {
            Value::Seq(items) => items.clone(),
            _ => vec![v.clone()],
        };
        let mut out = Vec::new();
        for it in items {
            let mut e = match &it.value {
                Value::Map(mm) => (**mm).clone(),
                _ => {
                    let mut mm = Map::new();
                    mm.insert("path".into(), s(it.as_str().unwrap_or_default(), &it.span));
                    mm
                }
            };
            if let Some(path) = e.get("path").and_then(text_of) {
                e.insert("path".into(), s(paths.resolve(&path), &it.span));
            }
            if !e.contains_key("required") {
                e.insert("required".into(), plain("true", &it.span));
            }
            out.push(Node::map(e, it.span.clone()));
        }
        m.insert(
            "env_file".into(),
            Node {
                value: Value::Seq(out),
                span: v.span.clone(),
                tag: v.tag,
            },
        );
    }
    if let Some(e) = m.get("extends").cloned() {
        let mut em = match &e.value {
            Value::Scalar { text, .. } => {
                let mut em = Map::new();
                em.insert("service".into(), s(text.clone(), &e.span));
                em
            }
            Value::Map(em) => (**em).clone(),
            _ => Map::new(),
        };
        if let Some(f) = em.get("file").and_then(text_of) {
            let span = em["file"].span.clone();
            em.insert("file".into(), s(paths.resolve(&f), &span));
        }
        m.insert("extends".into(), Node::map(em, e.span.clone()));
    }
    if let Some(n) = m.get("networks").cloned() {
        if let Value::Seq(items) = &n.value {
            let mut out = Map::new();
            for it in items {
                out.insert(
                    it.as_str().unwrap_or_default().to_string(),
                    Node::null(it.span.clone()),
                );
            }
            m.insert(
                "networks".into(),
                Node {
                    value: Value::Map(Box::new(out)),
                    span: n.span.clone(),
                    tag: n.tag,
                },
            );
        }
    }
    if let Some(md) = m.get("models").cloned() {
        if let Value::Seq(items) = &md.value {
            let mut out = Map::new();
            for it in items {
                out.insert(
                    it.as_str().unwrap_or_default().to_string(),
                    Node::null(it.span.clone()),
                );
            }
            m.insert("models".into(), Node::map(out, md.span.clone()));
        }
    }
    if let Some(ports) = m.get("ports").cloned() {
        let mut out = Vec::new();
        if let Value::Seq(items) = &ports.value {
            for (i, it) in items.iter().enumerate() {
                let path = format!("services.{name}.ports[{i}]");
                match &it.value {
                    Value::Scalar { text, .. } => {
                        for p in parse_port(text).map_err(|msg| invalid(it, &path, msg))? {
                            out.push(p.to_node(&it.span));
                        }
                    }
                    Value::Map(pm) => {
                        let mut pm = pm.clone();
                        if !pm.contains_key("mode") {
                            pm.insert("mode".into(), s("ingress", &it.span));
                        }
                        if !pm.contains_key("protocol") {
                            pm.insert("protocol".into(), s("tcp", &it.span));
                        }
                        if let Some(p) = pm.get("published") {
                            if let Some(t) = p.as_str() {
                                let n = s(t, &p.span);
                                pm.insert("published".into(), n);
                            }
                        }
                        out.push(Node::map(*pm, it.span.clone()));
                    }
                    _ => {}
                }
            }
        }
        m.insert(
            "ports".into(),
            Node {
                value: Value::Seq(out),
                span: ports.span.clone(),
                tag: ports.tag,
            },
        );
    }
    if let Some(e) = m.get("expose").cloned() {
        if let Value::Seq(items) = &e.value {
            let items = items
                .iter()
                .map(|i| s(i.as_str().unwrap_or_default(), &i.span))
                .collect();
            m.insert(
                "expose".into(),
                Node {
                    value: Value::Seq(items),
                    span: e.span.clone(),
                    tag: e.tag,
                },
            );
        }
    }
    if let Some(vols) = m.get("volumes").cloned() {
        let mut out = Vec::new();
        if let Value::Seq(items) = &vols.value {
            for (i, it) in items.iter().enumerate() {
                let path = format!("services.{name}.volumes[{i}]");
                let mut vm = match &it.value {
                    Value::Scalar { text, .. } => {
                        parse_volume(text, &it.span).map_err(|msg| invalid(it, &path, msg))?
                    }
                    Value::Map(vm) => (**vm).clone(),
                    _ => continue,
                };
                if let Some(t) = vm.get("target").and_then(text_of) {
                    let span = vm["target"].span.clone();
                    vm.insert("target".into(), s(clean(Path::new(&t)), &span));
                }
                let kind = vm.get("type").and_then(text_of).unwrap_or_default();
                if kind == "bind" {
                    if let Some(src) = vm.get("source").and_then(text_of) {
                        let span = vm["source"].span.clone();
                        vm.insert("source".into(), s(paths.resolve(&src), &span));
                    }
                }
                if let Some(v) = vm.get_mut("volume").and_then(Node::as_map_mut) {
                    if let Some(l) = v.get("labels") {
                        let l = labels(l);
                        v.insert("labels".into(), l);
                    }
                }
                out.push(Node::map(vm, it.span.clone()));
            }
        }
        m.insert(
            "volumes".into(),
            Node {
                value: Value::Seq(out),
                span: vols.span.clone(),
                tag: vols.tag,
            },
        );
    }
    for key in ["secrets", "configs"] {
        if let Some(v) = m.get(key) {
            let v = file_refs(v);
            m.insert(key.into(), v);
        }
    }
    if let Some(d) = m.get("devices").cloned() {
        if let Value::Seq(items) = &d.value {
            let mut out = Vec::new();
            for it in items {
                match &it.value {
                    Value::Scalar { text, .. } => {
                        let parts: Vec<&str> = text.split(':').collect();
                        let mut dm = Map::new();
                        dm.insert("source".into(), s(parts[0], &it.span));
                        dm.insert(
                            "target".into(),
                            s(*parts.get(1).unwrap_or(&parts[0]), &it.span),
                        );
                        dm.insert(
                            "permissions".into(),
                            s(*parts.get(2).unwrap_or(&"rwm"), &it.span),
                        );
                        out.push(Node::map(dm, it.span.clone()));
                    }
                    _ => out.push(it.clone()),
                }
            }
            m.insert("devices".into(), Node::seq(out, d.span.clone()));
        }
    }
    if let Some(ul) = m.get("ulimits") {
        let ul = ulimits(ul);
        m.insert("ulimits".into(), ul);
    }
    if let Some(h) = m.get_mut("healthcheck").and_then(Node::as_map_mut) {
        if let Some(t) = h.get("test").cloned() {
            if let Value::Scalar { text, .. } = &t.value {
                let items = vec![s("CMD-SHELL", &t.span), s(text.clone(), &t.span)];
                h.insert(
                    "test".into(),
                    Node {
                        value: Value::Seq(items),
                        span: t.span.clone(),
                        tag: t.tag,
                    },
                );
            }
        }
    }
    if let Some(dep) = m.get_mut("deploy").and_then(Node::as_map_mut) {
        if let Some(l) = dep.get("labels") {
            let l = labels(l);
            dep.insert("labels".into(), l);
        }
    }
    if let Some(lg) = m.get_mut("logging").and_then(Node::as_map_mut) {
        if let Some(o) = lg.get("options") {
            let o = labels(o);
            lg.insert("options".into(), o);
        }
    }
    let _ = span;
    Ok(())
}

fn ulimits(node: &Node) -> Node {
    let Some(m) = node.as_map() else {
        return node.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        let e = match &v.value {
            Value::Scalar { text, .. } => {
                let mut e = Map::new();
                e.insert("single".into(), plain(text.clone(), &v.span));
                Node::map(e, v.span.clone())
            }
            _ => v.clone(),
        };
        out.insert(k.clone(), e);
    }
    Node {
        value: Value::Map(Box::new(out)),
        span: node.span.clone(),
        tag: node.tag,
    }
}

fn file_refs(node: &Node) -> Node {
    let Some(items) = node.as_seq() else {
        return node.clone();
    };
    let items = items
        .iter()
        .map(|it| match &it.value {
            Value::Scalar { text, .. } => {
                let mut m = Map::new();
                m.insert("source".into(), s(text.clone(), &it.span));
                Node::map(m, it.span.clone())
            }
            _ => it.clone(),
        })
        .collect();
    Node {
        value: Value::Seq(items),
        span: node.span.clone(),
        tag: node.tag,
    }
}

/// One entry of the port short syntax, expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortPort {
    pub host_ip: Option<String>,
    pub published: Option<String>,
    pub target: u16,
    pub protocol: String,
}

impl ShortPort {
    fn to_node(&self, span: &Span) -> Node {
        let mut m = Map::new();
        m.insert("mode".into(), s("ingress", span));
        if let Some(ip) = &self.host_ip {
            m.insert("host_ip".into(), s(ip.clone(), span));
        }
        m.insert("target".into(), plain(self.target.to_string(), span));
        if let Some(p) = &self.published {
            m.insert("published".into(), s(p.clone(), span));
        }
        m.insert("protocol".into(), s(self.protocol.clone(), span));
        Node::map(m, span.clone())
    }
}

fn parse_range(s: &str) -> Option<(u32, u32)> {
    let s = s.trim();
    match s.split_once('-') {
        Some((a, b)) => {
            let a: u32 = a.parse().ok()?;
            let b: u32 = b.parse().ok()?;
            (a <= b && b <= 65535).then_some((a, b))
        }
        None => {
            let a: u32 = s.parse().ok()?;
            (a <= 65535).then_some((a, a))
        }
    }
}

/// Parses the port short syntax `[[HOST_IP:][HOST_PORT[-END]]:]CONTAINER_PORT[-END][/PROTO]`.
pub fn parse_port(text: &str) -> Result<Vec<ShortPort>, String> {
    let expected = "expected [[HOST_IP:]HOST_PORT:]CONTAINER_PORT[/PROTOCOL]";
    let bad = |why: &str| format!("invalid port {text:?}: {why}{expected}");
    let (spec, proto) = match text.rsplit_once('/') {
        Some((a, p)) => (a, p),
        None => (text, "tcp"),
    };
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(format!(
            "invalid port {text:?}: invalid protocol {proto:?}: expected tcp, udp or sctp"
        ));
    }
    let (ip, rest) = if let Some(r) = spec.strip_prefix('[') {
        let (ip, r) = r.split_once(']').ok_or_else(|| bad(""))?;
        (Some(ip.to_string()), r.strip_prefix(':').unwrap_or(r))
    } else {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.len() {
            1 | 2 => (None, spec),
            3 => (Some(parts[0].to_string()), &spec[parts[0].len() + 1..]),
            _ => return Err(bad("too many colons: ")),
        }
    };
    let (host, container) = match rest.rsplit_once(':') {
        Some((h, c)) => (Some(h), c),
        None => (None, rest),
    };
    if container.is_empty() {
        return Err(bad("no container port: "));
    }
    let (cs, ce) = parse_range(container).ok_or_else(|| bad("bad container port: "))?;
    if cs == 0 {
        return Err(bad("port 0: "));
    }
    let host = host.filter(|h| !h.is_empty());
    let ip = ip.filter(|i| !i.is_empty());
    let mut out = Vec::new();
    match host {
        None => {
            for p in cs..=ce {
                out.push(ShortPort {
                    host_ip: ip.clone(),
                    published: None,
                    target: p as u16,
                    protocol: proto.to_string(),
                });
            }
        }
        Some(h) => {
            let (hs, he) = parse_range(h).ok_or_else(|| bad("bad host port: "))?;
            let clen = ce - cs;
            let hlen = he - hs;
            if clen == hlen {
                for i in 0..=clen {
                    out.push(ShortPort {
                        host_ip: ip.clone(),
                        published: Some((hs + i).to_string()),
                        target: (cs + i) as u16,
                        protocol: proto.to_string(),
                    });
                }
            } else if clen == 0 {
                out.push(ShortPort {
                    host_ip: ip.clone(),
                    published: Some(format!("{hs}-{he}")),
                    target: cs as u16,
                    protocol: proto.to_string(),
                });
            } else {
                return Err(format!(
                    "invalid port {text:?}: container range {cs}-{ce} and host range {hs}-{he} differ in size"
                ));
            }
        }
    }
    Ok(out)
}

/// Parses the volume short syntax `[SOURCE:]TARGET[:OPTIONS]` into the long form.
pub fn parse_volume(text: &str, span: &Span) -> Result<Map, String> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "invalid volume {text:?}: empty section between colons: expected [SOURCE:]TARGET[:MODE]"
        ));
    }
    let mut m = Map::new();
    let (source, target, opts) = match parts.len() {
        1 => (None, parts[0], None),
        2 => (Some(parts[0]), parts[1], None),
        3 => (Some(parts[0]), parts[1], Some(parts[2])),
        _ => {
            return Err(format!(
                "invalid volume {text:?}: too many colons: expected [SOURCE:]TARGET[:MODE]"
            ))
        }
    };
    let is_bind = source.is_some_and(|s| s.starts_with(['.', '/', '~']));
    let kind = if is_bind { "bind" } else { "volume" };
    m.insert("type".into(), Node::string(kind, span.clone()));
    if let Some(src) = source {
        m.insert("source".into(), Node::string(src, span.clone()));
    }
    m.insert("target".into(), Node::string(target, span.clone()));
    let mut bind = Map::new();
    let mut volume = Map::new();
    if let Some(opts) = opts {
        for o in opts.split(',') {
            match o {
                "ro" => {
                    m.insert("read_only".into(), plain("true", span));
                }
                "rw" => {}
                "z" | "Z" => {
                    bind.insert("selinux".into(), Node::string(o, span.clone()));
                }
                "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                    bind.insert("propagation".into(), Node::string(o, span.clone()));
                }
                "nocopy" => {
                    volume.insert("nocopy".into(), plain("true", span));
                }
                "consistent" | "cached" | "delegated" => {
                    m.insert("consistency".into(), Node::string(o, span.clone()));
                }
                other => {
                    return Err(format!(
                        "invalid volume {text:?}: unknown option {other:?}: expected ro, rw, z, Z, nocopy or a propagation mode"
                    ))
                }
            }
        }
    }
    if is_bind {
        bind.insert("create_host_path".into(), plain("true", span));
        m.insert("bind".into(), Node::map(bind, span.clone()));
    } else {
        m.insert("volume".into(), Node::map(volume, span.clone()));
    }
    Ok(m)
}

/// The relative form a path had before [`PathCtx::resolve`] (for messages).
pub fn display_path(p: &Path) -> String {
    p.display().to_string()
}

/// Reads a service's `env_file` entries into one mapping (later files win). A missing file is
/// an error when `required`.
pub fn read_env_files(
    entries: &Node,
    service: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, Error> {
    let mut out = IndexMap::new();
    let Some(items) = entries.as_seq() else {
        return Ok(out);
    };
    for (i, it) in items.iter().enumerate() {
        let Some(path) = it.get("path").and_then(text_of) else {
            continue;
        };
        let required = it
            .get("required")
            .and_then(Node::as_str)
            .and_then(crate::de::parse_bool)
            .unwrap_or(true);
        let pb = PathBuf::from(&path);
        let text = match std::fs::read_to_string(&pb) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => continue,
            Err(e) => {
                return Err(invalid(
                    it,
                    &format!("services.{service}.env_file[{i}]"),
                    format!("env file {path} not found: {e}"),
                ))
            }
        };
        if it.get("format").and_then(Node::as_str) == Some("raw") {
            // `format: raw`: values taken verbatim, no quotes or interpolation.
            for line in text.lines() {
                let l = line.trim_start();
                if l.is_empty() || l.starts_with('#') {
                    continue;
                }
                if let Some((k, v)) = l.split_once('=') {
                    out.insert(k.trim().to_string(), v.to_string());
                }
            }
            continue;
        }
        let vars =
            crate::dotenv::parse(&text, &path, &|k| out.get(k).cloned().or_else(|| lookup(k)))?;
        out.extend(vars);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(t: &str) -> Vec<(Option<String>, Option<String>, u16, String)> {
        parse_port(t)
            .unwrap()
            .into_iter()
            .map(|p| (p.host_ip, p.published, p.target, p.protocol))
            .collect()
    }

    #[test]
    fn port_short_syntax() {
        assert_eq!(ports("80"), vec![(None, None, 80, "tcp".into())]);
        assert_eq!(
            ports("8080:80/udp"),
            vec![(None, Some("8080".into()), 80, "udp".into())]
        );
        assert_eq!(
            ports("127.0.0.1::80"),
            vec![(Some("127.0.0.1".into()), None, 80, "tcp".into())]
        );
        assert_eq!(
            ports("[::1]:8080:80"),
            vec![(Some("::1".into()), Some("8080".into()), 80, "tcp".into())]
        );
        assert_eq!(ports("3000-3002").len(), 3);
        assert_eq!(
            ports("9000-9010:80"),
            vec![(None, Some("9000-9010".into()), 80, "tcp".into())]
        );
        let e = parse_port("8000-8004:8000-8002").unwrap_err();
        assert!(e.contains("differ in size"), "{e}");
        assert!(parse_port("80/foo").is_err());
        assert!(parse_port("a:b:c:d").is_err());
        assert!(parse_port("").is_err());
        assert!(parse_port("70000").is_err());
    }

    #[test]
    fn volume_short_syntax() {
        let sp = Span::synthetic("t");
        let v = parse_volume("./a:/b:ro,z", &sp).unwrap();
        assert_eq!(v["type"].as_str(), Some("bind"));
        assert_eq!(v["read_only"].as_str(), Some("true"));
        assert_eq!(v["bind"].get("selinux").and_then(Node::as_str), Some("z"));
        let v = parse_volume("data:/d:nocopy", &sp).unwrap();
        assert_eq!(v["type"].as_str(), Some("volume"));
        assert_eq!(
            v["volume"].get("nocopy").and_then(Node::as_str),
            Some("true")
        );
        let v = parse_volume("/anon", &sp).unwrap();
        assert!(v.get("source").is_none());
        let v = parse_volume("/h:/c:rshared", &sp).unwrap();
        assert_eq!(
            v["bind"].get("propagation").and_then(Node::as_str),
            Some("rshared")
        );
        assert!(parse_volume(":/x", &sp).is_err());
        assert!(parse_volume("a:/b:bogus", &sp).is_err());
        assert!(parse_volume("a:b:c:d", &sp).is_err());
    }

    #[test]
    fn paths() {
        assert_eq!(clean(Path::new("/a/./b/../c/")), "/a/c");
        assert_eq!(clean(Path::new("a/../../b")), "../b");
        let ctx = PathCtx {
            base: Path::new("/proj"),
            home: Some("/home/u"),
            resolve: true,
        };
        assert_eq!(ctx.resolve("./x/../y"), "/proj/y");
        assert_eq!(ctx.resolve("~/d"), "/home/u/d");
        assert_eq!(ctx.resolve("/abs/"), "/abs/");
    }
}
