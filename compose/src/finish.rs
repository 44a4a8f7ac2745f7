//! Normalization of the merged project tree, and its consistency checks.
//!
//! After merge, extends and profiles: `env_file` folded into `environment` (bare names taken
//! from the environment), the default network, resource names (`<project>_<key>`), unused
//! networks and volumes dropped, defaults Docker Compose prints. Then every reference between
//! services, networks, volumes, secrets and configs is checked, as are conflicting
//! attributes.

use indexmap::IndexMap;

use crate::error::Error;
use crate::load::LoadOptions;
use crate::normalize::read_env_files;
use crate::yaml::{Map, Node, Span, Value};

fn s(text: impl Into<String>, span: &Span) -> Node {
    Node::string(text, span.clone())
}

fn section_mut<'a>(top: &'a mut Map, key: &str) -> Option<&'a mut Map> {
    top.get_mut(key).and_then(Node::as_map_mut)
}

/// Finishes the normalization of the merged tree in place.
pub fn finish(
    model: &mut Node,
    project: &str,
    env: &IndexMap<String, String>,
    opts: &LoadOptions,
) -> Result<(), Error> {
    check_conflicts(model)?;
    let top = model.as_map_mut().expect("a mapping");
    top.shift_remove("version");
    top.insert("name".into(), s(project, &Span::synthetic("name")));
    for key in [
        "services", "networks", "volumes", "secrets", "configs", "models",
    ] {
        if top.get(key).is_some_and(Node::is_null) {
            top.shift_remove(key);
        }
    }
    let mut used_networks: Vec<String> = Vec::new();
    let mut used_volumes: Vec<String> = Vec::new();
    let mut used_secrets: Vec<String> = Vec::new();
    let mut used_configs: Vec<String> = Vec::new();
    let used =
        |v: &Vec<String>| -> std::collections::HashSet<String> { v.iter().cloned().collect() };
    if let Some(svcs) = section_mut(top, "services") {
        for (name, svc) in svcs.iter_mut() {
            let Some(m) = svc.as_map_mut() else { continue };
            // env_file, then environment over it; bare names from the environment.
            let mut environment: IndexMap<String, Option<String>> = IndexMap::new();
            let mut env_span = svc_span(m);
            if let Some(ef) = m.shift_remove("env_file") {
                let vars = read_env_files(&ef, name, &|k| env.get(k).cloned())?;
                for (k, v) in vars {
                    environment.insert(k, Some(v));
                }
                env_span = ef.span.clone();
            }
            if let Some(e) = m.get("environment").and_then(Node::as_map) {
                env_span = m["environment"].span.clone();
                for (k, v) in e {
                    let val = match v.as_str() {
                        Some(t) => Some(t.to_string()),
                        None => env
                            .get(k)
                            .cloned()
                            .or_else(|| environment.get(k).cloned().flatten()),
                    };
                    environment.insert(k.clone(), val);
                }
            }
            if !environment.is_empty() {
                let mut em = Map::new();
                for (k, v) in environment {
                    em.insert(
                        k,
                        match v {
                            Some(v) => s(v, &env_span),
                            None => Node::null(env_span.clone()),
                        },
                    );
                }
                m.insert("environment".into(), Node::map(em, env_span));
            }
            if let Some(lf) = m.shift_remove("label_file") {
                let mut labels = Map::new();
                for it in lf.as_seq().into_iter().flatten() {
                    let mut e = Map::new();
                    e.insert("path".into(), it.clone());
                    let one = Node::seq(vec![Node::map(e, it.span.clone())], it.span.clone());
                    for (k, v) in read_env_files(&one, name, &|_| None)? {
                        labels.insert(k, s(v, &it.span));
                    }
                }
                if let Some(l) = m.get("labels").and_then(Node::as_map) {
                    for (k, v) in l {
                        labels.insert(k.clone(), v.clone());
                    }
                }
                m.insert("labels".into(), Node::map(labels, lf.span.clone()));
            }
            // The default network.
            let span = svc_span(m);
            if !m.contains_key("network_mode") {
                let nets = m
                    .entry("networks".to_string())
                    .or_insert_with(|| Node::map(Map::new(), span.clone()));
                if nets.is_null() {
                    *nets = Node::map(Map::new(), span.clone());
                }
                if nets.as_map().is_some_and(|n| n.is_empty()) {
                    nets.as_map_mut()
                        .expect("a mapping")
                        .insert("default".into(), Node::null(span.clone()));
                }
            }
            if let Some(nets) = m.get("networks").and_then(Node::as_map) {
                used_networks.extend(nets.keys().cloned());
            }
            if let Some(vols) = m.get("volumes").and_then(Node::as_seq) {
                for v in vols {
                    if v.get("type").and_then(Node::as_str) == Some("volume") {
                        if let Some(src) = v.get("source").and_then(Node::as_str) {
                            used_volumes.push(src.to_string());
                        }
                    }
                }
            }
            for (kind, used) in [
                ("secrets", &mut used_secrets),
                ("configs", &mut used_configs),
            ] {
                if let Some(refs) = m.get(kind).and_then(Node::as_seq) {
                    used.extend(
                        refs.iter()
                            .filter_map(|r| r.get("source").and_then(Node::as_str))
                            .map(str::to_string),
                    );
                }
            }
            if let Some(refs) = m
                .get("build")
                .and_then(|b| b.get("secrets"))
                .and_then(Node::as_seq)
            {
                used_secrets.extend(
                    refs.iter()
                        .filter_map(|r| r.get("source").and_then(Node::as_str))
                        .map(str::to_string),
                );
            }
            // Implicit dependencies, as Docker Compose adds them.
            let mut implicit: Vec<(String, bool)> = Vec::new();
            if let Some(other) = m
                .get("network_mode")
                .and_then(Node::as_str)
                .and_then(|n| n.strip_prefix("service:"))
            {
                implicit.push((other.to_string(), true));
            }
            // `ipc: service:x` and `pid: service:x` join x's namespaces: x starts first.
            for key in ["ipc", "pid"] {
                if let Some(other) = m
                    .get(key)
                    .and_then(Node::as_str)
                    .and_then(|n| n.strip_prefix("service:"))
                {
                    implicit.push((other.to_string(), true));
                }
            }
            for v in m
                .get("volumes_from")
                .and_then(Node::as_seq)
                .into_iter()
                .flatten()
            {
                if let Some(t) = v.as_str().filter(|t| !t.starts_with("container:")) {
                    implicit.push((t.split(':').next().unwrap_or_default().to_string(), false));
                }
            }
            for v in m.get("links").and_then(Node::as_seq).into_iter().flatten() {
                if let Some(t) = v.as_str() {
                    implicit.push((t.split(':').next().unwrap_or_default().to_string(), true));
                }
            }
            if !implicit.is_empty() {
                let deps = m
                    .entry("depends_on".to_string())
                    .or_insert_with(|| Node::map(Map::new(), span.clone()));
                if let Some(dm) = deps.as_map_mut() {
                    for (d, restart) in implicit {
                        dm.entry(d).or_insert_with(|| {
                            let mut e = Map::new();
                            e.insert("condition".into(), s("service_started", &span));
                            if restart {
                                e.insert("restart".into(), plain_true(&span));
                            }
                            e.insert("required".into(), plain_true(&span));
                            Node::map(e, span.clone())
                        });
                    }
                }
            }
            hosts_to_list(m);
            if let Some(b) = m.get_mut("build").and_then(Node::as_map_mut) {
                hosts_to_list(b);
                if !b.contains_key("dockerfile") && !b.contains_key("dockerfile_inline") {
                    b.insert("dockerfile".into(), s("Dockerfile", &span));
                }
            }
            if let Some(secrets) = m.get_mut("secrets").and_then(|n| match &mut n.value {
                Value::Seq(items) => Some(items),
                _ => None,
            }) {
                for sec in secrets.iter_mut() {
                    if let Some(sm) = sec.as_map_mut() {
                        if !sm.contains_key("target") {
                            let src = sm
                                .get("source")
                                .and_then(Node::as_str)
                                .unwrap_or_default()
                                .to_string();
                            let sp = sm
                                .get("source")
                                .map(|n| n.span.clone())
                                .unwrap_or(span.clone());
                            sm.insert("target".into(), s(format!("/run/secrets/{src}"), &sp));
                        }
                    }
                }
            }
        }
    }
    // Top-level resources: names; unused networks and volumes dropped as Docker Compose does.
    if used_networks.iter().any(|n| n == "default") {
        let nets = top
            .entry("networks".to_string())
            .or_insert_with(|| Node::map(Map::new(), Span::synthetic("networks")));
        if let Some(nm) = nets.as_map_mut() {
            if !nm.contains_key("default") {
                nm.insert(
                    "default".into(),
                    Node::map(Map::new(), Span::synthetic("networks.default")),
                );
            }
        }
    }
    for (kind, names) in [
        ("networks", used(&used_networks)),
        ("volumes", used(&used_volumes)),
        ("secrets", used(&used_secrets)),
        ("configs", used(&used_configs)),
    ] {
        if let Some(m) = section_mut(top, kind) {
            m.retain(|k, _| names.contains(k));
        }
    }
    for kind in ["networks", "volumes", "secrets", "configs"] {
        let Some(m) = section_mut(top, kind) else {
            continue;
        };
        for (key, obj) in m.iter_mut() {
            if obj.is_null() {
                *obj = Node::map(Map::new(), obj.span.clone());
            }
            let ospan = obj.span.clone();
            let Some(o) = obj.as_map_mut() else { continue };
            let external = o
                .get("external")
                .and_then(Node::as_str)
                .and_then(crate::de::parse_bool)
                .unwrap_or(false);
            if !o.contains_key("name") && (opts.normalize || external) {
                let n = if external {
                    key.clone()
                } else {
                    format!("{project}_{key}")
                };
                o.insert("name".into(), s(n, &ospan));
            }
            if kind == "networks" && !o.contains_key("ipam") && !external {
                o.insert("ipam".into(), Node::map(Map::new(), ospan));
            }
        }
    }
    Ok(())
}

/// `extra_hosts` mapping (merged by host) → `host=address` entries sorted by host, the form
/// Docker Compose prints.
fn hosts_to_list(m: &mut Map) {
    let Some(h) = m.get("extra_hosts").and_then(Node::as_map) else {
        return;
    };
    let span = m["extra_hosts"].span.clone();
    let mut entries: Vec<(&String, &Node)> = h.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut items = Vec::new();
    for (host, addrs) in entries {
        for a in addrs.as_seq().into_iter().flatten() {
            items.push(s(
                format!("{host}={}", a.as_str().unwrap_or_default()),
                &a.span,
            ));
        }
    }
    m.insert("extra_hosts".into(), Node::seq(items, span));
}

fn plain_true(span: &Span) -> Node {
    Node::new(
        Value::Scalar {
            text: "true".into(),
            plain: true,
        },
        span.clone(),
    )
}

fn svc_span(m: &Map) -> Span {
    m.values()
        .next()
        .map(|n| n.span.clone())
        .unwrap_or_else(|| Span::synthetic("services"))
}

fn reference(span: &Span, path: String, msg: String) -> Error {
    Error::Reference {
        span: span.clone(),
        path,
        msg,
    }
}

fn conflict(span: &Span, path: String, msg: String) -> Error {
    Error::Conflict {
        span: span.clone(),
        path,
        msg,
    }
}

/// Checks attributes that exclude each other (always, before unused resources are dropped).
pub fn check_conflicts(model: &Node) -> Result<(), Error> {
    let empty = Map::new();
    let section = |k: &str| model.get(k).and_then(Node::as_map).unwrap_or(&empty);
    let networks = section("networks");
    let volumes = section("volumes");
    for (key, v) in volumes {
        let ext = v
            .get("external")
            .and_then(Node::as_str)
            .and_then(crate::de::parse_bool)
            .unwrap_or(false);
        if ext {
            for attr in ["driver", "driver_opts", "labels"] {
                if let Some(a) = v.get(attr) {
                    return Err(conflict(
                        &a.span,
                        format!("volumes.{key}"),
                        format!("conflicting parameters \"external\" and {attr:?} specified"),
                    ));
                }
            }
        }
    }
    for (key, v) in networks {
        let ext = v
            .get("external")
            .and_then(Node::as_str)
            .and_then(crate::de::parse_bool)
            .unwrap_or(false);
        if ext {
            for attr in ["driver", "driver_opts", "ipam"] {
                if let Some(a) = v
                    .get(attr)
                    .filter(|a| !(a.is_null() || a.as_map().is_some_and(|m| m.is_empty())))
                {
                    return Err(conflict(
                        &a.span,
                        format!("networks.{key}"),
                        format!("conflicting parameters \"external\" and {attr:?} specified"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Checks references between the elements of the finished tree.
pub fn check_consistency(model: &Node) -> Result<(), Error> {
    let empty = Map::new();
    let section = |k: &str| model.get(k).and_then(Node::as_map).unwrap_or(&empty);
    let services = section("services");
    let networks = section("networks");
    let volumes = section("volumes");
    let secrets = section("secrets");
    let configs = section("configs");
    for (name, svc) in services {
        let p = |k: &str| format!("services.{name}.{k}");
        if let Some(deps) = svc.get("depends_on").and_then(Node::as_map) {
            for (d, spec) in deps {
                let required = spec
                    .get("required")
                    .and_then(Node::as_str)
                    .and_then(crate::de::parse_bool)
                    .unwrap_or(true);
                if required && !services.contains_key(d) {
                    return Err(reference(
                        &spec.span,
                        p("depends_on"),
                        format!("service {name:?} depends on undefined service {d:?}"),
                    ));
                }
            }
        }
        let replicas = svc
            .get("deploy")
            .and_then(|d| d.get("replicas"))
            .and_then(Node::as_str)
            .and_then(|r| r.parse::<i64>().ok());
        if let (Some(r), Some(sc)) = (replicas, svc.get("scale")) {
            if sc.as_str().and_then(|t| t.parse::<i64>().ok()) != Some(r) {
                return Err(conflict(
                    &sc.span,
                    p("scale"),
                    format!("can't set distinct values on 'scale' and 'deploy.replicas' of service {name:?}"),
                ));
            }
        }
        if let (Some(r), Some(cn)) = (replicas, svc.get("container_name")) {
            if r > 1 {
                return Err(conflict(
                    &cn.span,
                    p("container_name"),
                    format!("service {name:?} sets container_name, so it cannot run {r} replicas"),
                ));
            }
        }
        if let Some(nm) = svc.get("network_mode") {
            if let Some(nets) = svc.get("networks").and_then(Node::as_map) {
                if !nets.is_empty() {
                    return Err(conflict(
                        &nm.span,
                        p("network_mode"),
                        format!(
                            "service {name:?} declares mutually exclusive `network_mode` and `networks`"
                        ),
                    ));
                }
            }
            if let Some(other) = nm.as_str().and_then(|t| t.strip_prefix("service:")) {
                if !services.contains_key(other) {
                    return Err(reference(
                        &nm.span,
                        p("network_mode"),
                        format!("service {name:?} uses the network stack of undefined service {other:?}"),
                    ));
                }
            }
        }
        if let Some(nets) = svc.get("networks").and_then(Node::as_map) {
            for (n, v) in nets {
                if !networks.contains_key(n) {
                    return Err(reference(
                        &v.span,
                        p("networks"),
                        format!("service {name:?} refers to undefined network {n:?}"),
                    ));
                }
            }
        }
        if let Some(vols) = svc.get("volumes").and_then(Node::as_seq) {
            for (i, v) in vols.iter().enumerate() {
                if v.get("type").and_then(Node::as_str) != Some("volume") {
                    continue;
                }
                if let Some(src) = v.get("source").and_then(Node::as_str) {
                    if !volumes.contains_key(src) {
                        return Err(reference(
                            &v.span,
                            format!("services.{name}.volumes[{i}]"),
                            format!("service {name:?} refers to undefined volume {src:?}"),
                        ));
                    }
                }
            }
        }
        for (kind, defined) in [("secrets", secrets), ("configs", configs)] {
            if let Some(refs) = svc.get(kind).and_then(Node::as_seq) {
                for (i, r) in refs.iter().enumerate() {
                    if let Some(src) = r.get("source").and_then(Node::as_str) {
                        if !defined.contains_key(src) {
                            let what = &kind[..kind.len() - 1];
                            return Err(reference(
                                &r.span,
                                format!("services.{name}.{kind}[{i}]"),
                                format!("service {name:?} refers to undefined {what} {src:?}"),
                            ));
                        }
                    }
                }
            }
        }
        if let Some(devs) = svc
            .get("deploy")
            .and_then(|d| d.get("resources"))
            .and_then(|r| r.get("reservations"))
            .and_then(|r| r.get("devices"))
            .and_then(Node::as_seq)
        {
            for (i, d) in devs.iter().enumerate() {
                if d.get("count").is_some() && d.get("device_ids").is_some() {
                    return Err(conflict(
                        &d.span,
                        format!("services.{name}.deploy.resources.reservations.devices[{i}]"),
                        "\"count\" and \"device_ids\" attributes are exclusive".into(),
                    ));
                }
            }
        }
    }
    Ok(())
}
