//! The dependency graph of a project's services (petgraph): start order in waves (services of
//! one wave do not depend on each other and may start in parallel), the reverse order for
//! stopping, selection of services with their dependencies (or without, `--no-deps`), and the
//! per-service config hash used to recreate only what changed.

use indexmap::{IndexMap, IndexSet};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::model::{Project, Service};
use crate::yaml::Span;

/// Services and what each depends on.
#[derive(Debug, Clone)]
pub struct Graph {
    graph: DiGraph<String, ()>,
    index: IndexMap<String, NodeIndex>,
}

/// The services a service needs started first: `depends_on`, `network_mode: service:x`,
/// `volumes_from` services, `links`.
pub fn dependencies(svc: &Service) -> Vec<String> {
    let mut deps: IndexSet<String> = IndexSet::new();
    if let Some(d) = &svc.depends_on {
        deps.extend(d.keys().cloned());
    }
    if let Some(other) = svc
        .network_mode
        .as_deref()
        .and_then(|m| m.strip_prefix("service:"))
    {
        deps.insert(other.to_string());
    }
    for v in svc.volumes_from.iter().flatten() {
        if v.starts_with("container:") {
            continue;
        }
        deps.insert(v.split(':').next().unwrap_or_default().to_string());
    }
    for l in svc.links.iter().flatten() {
        deps.insert(l.split(':').next().unwrap_or_default().to_string());
    }
    deps.into_iter().collect()
}

impl Project {
    /// The dependency graph. Fails on a cycle, named deterministically (it starts at the
    /// alphabetically first service on a cycle).
    pub fn graph(&self) -> Result<Graph, Error> {
        let mut graph = DiGraph::new();
        let mut index = IndexMap::new();
        let mut names: Vec<&String> = self.services.keys().collect();
        names.sort();
        for n in &names {
            index.insert((*n).clone(), graph.add_node((*n).clone()));
        }
        for n in &names {
            let svc = &self.services[*n];
            for d in dependencies(svc) {
                if let Some(&di) = index.get(&d) {
                    // Edge from the service to what it depends on.
                    graph.add_edge(index[*n], di, ());
                }
            }
        }
        let g = Graph { graph, index };
        if let Some(cycle) = g.find_cycle() {
            return Err(Error::Cycle {
                span: Span::synthetic("services"),
                path: format!("services.{}.depends_on", cycle[0]),
                what: "dependency",
                cycle: cycle.join(" -> "),
            });
        }
        Ok(g)
    }
}

impl Graph {
    fn deps_of(&self, name: &str) -> Vec<String> {
        let Some(&i) = self.index.get(name) else {
            return Vec::new();
        };
        let mut v: Vec<String> = self
            .graph
            .neighbors_directed(i, Direction::Outgoing)
            .map(|j| self.graph[j].clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn find_cycle(&self) -> Option<Vec<String>> {
        // Colour DFS over names in order; the first back edge closes the cycle.
        let mut state: IndexMap<&str, u8> = IndexMap::new();
        let mut names: Vec<&String> = self.index.keys().collect();
        names.sort();
        for start in names {
            if state.get(start.as_str()).copied().unwrap_or(0) != 0 {
                continue;
            }
            let mut stack: Vec<(String, Vec<String>, usize)> =
                vec![(start.clone(), self.deps_of(start), 0)];
            state.insert(self.key(start), 1);
            while let Some((node, deps, pos)) = stack.last_mut() {
                if *pos >= deps.len() {
                    state.insert(self.key(node), 2);
                    stack.pop();
                    continue;
                }
                let next = deps[*pos].clone();
                *pos += 1;
                match state.get(next.as_str()).copied().unwrap_or(0) {
                    0 => {
                        state.insert(self.key(&next), 1);
                        let d = self.deps_of(&next);
                        stack.push((next, d, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|(n, _, _)| *n == next).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            stack[from..].iter().map(|(n, _, _)| n.clone()).collect();
                        cycle.push(next);
                        return Some(cycle);
                    }
                    _ => {}
                }
            }
        }
        None
    }

    fn key(&self, name: &str) -> &str {
        self.index
            .get_key_value(name)
            .map(|(k, _)| k.as_str())
            .unwrap_or("")
    }

    /// Direct dependencies of a service, sorted.
    pub fn dependencies(&self, service: &str) -> Vec<String> {
        self.deps_of(service)
    }

    /// Services in start order: each wave only depends on earlier waves; names sorted within
    /// a wave.
    pub fn start_waves(&self) -> Vec<Vec<String>> {
        let all: Vec<String> = self.index.keys().cloned().collect();
        self.waves_for(&all)
    }

    /// Waves for stopping: the start waves reversed.
    pub fn stop_waves(&self) -> Vec<Vec<String>> {
        let mut w = self.start_waves();
        w.reverse();
        w
    }

    /// The named services, plus (unless `no_deps`) everything they depend on, transitively.
    pub fn select(&self, services: &[String], no_deps: bool) -> Result<Vec<String>, Error> {
        let mut out: IndexSet<String> = IndexSet::new();
        let mut todo: Vec<String> = Vec::new();
        for s in services {
            if !self.index.contains_key(s) {
                return Err(Error::NoSuchService { name: s.clone() });
            }
            todo.push(s.clone());
        }
        while let Some(s) = todo.pop() {
            if !out.insert(s.clone()) || no_deps {
                continue;
            }
            todo.extend(self.deps_of(&s));
        }
        let mut v: Vec<String> = out.into_iter().collect();
        v.sort();
        Ok(v)
    }

    /// Start waves restricted to `selection` (dependencies outside it are taken as met).
    pub fn waves_for(&self, selection: &[String]) -> Vec<Vec<String>> {
        let sel: IndexSet<&str> = selection.iter().map(String::as_str).collect();
        let mut level: IndexMap<&str, usize> = IndexMap::new();
        // Longest path from a leaf; the graph is acyclic (checked at construction).
        fn depth<'a>(
            g: &'a Graph,
            n: &'a str,
            sel: &IndexSet<&str>,
            memo: &mut IndexMap<&'a str, usize>,
        ) -> usize {
            if let Some(&d) = memo.get(n) {
                return d;
            }
            let mut d = 0;
            if let Some(&i) = g.index.get(n) {
                for j in g.graph.neighbors_directed(i, Direction::Outgoing) {
                    let name = g.graph[j].as_str();
                    if sel.contains(name) {
                        d = d.max(depth(g, name, sel, memo) + 1);
                    }
                }
            }
            memo.insert(n, d);
            d
        }
        for (k, _) in &self.index {
            if sel.contains(k.as_str()) {
                depth(self, k.as_str(), &sel, &mut level);
            }
        }
        let max = level.values().copied().max();
        let mut waves = vec![Vec::new(); max.map_or(0, |m| m + 1)];
        for (n, d) in level {
            if sel.contains(n) {
                waves[d].push(n.to_string());
            }
        }
        for w in &mut waves {
            w.sort();
        }
        waves
    }
}

impl Service {
    /// A hash of everything that shapes the container: `replicas`, `scale`, `depends_on`,
    /// `build`, `pull_policy` and `profiles` do not count.
    pub fn config_hash(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            for k in ["depends_on", "build", "pull_policy", "profiles", "scale"] {
                m.remove(k);
            }
            if let Some(d) = m.get_mut("deploy").and_then(|d| d.as_object_mut()) {
                d.remove("replicas");
                if d.is_empty() {
                    m.remove("deploy");
                }
            }
            m.retain(|_, v| !v.is_null());
        }
        sort_keys(&mut v);
        let digest = Sha256::digest(v.to_string().as_bytes());
        hex::encode(digest)
    }
}

/// Sorts every object's keys, so that the hash does not depend on field order.
fn sort_keys(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.sort_keys();
            m.values_mut().for_each(sort_keys);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(sort_keys),
        _ => {}
    }
}
