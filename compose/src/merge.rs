//! Merging of canonical trees: several `-f` files, a service over the one it `extends`, and
//! multi-document files, by the Compose Specification's merge rules.
//!
//! Mappings merge key by key; scalars are replaced; sequences are appended, except the ones
//! the spec replaces (`command`, `entrypoint`, `healthcheck.test`, `profiles`) and the ones
//! kept unique by a key (`ports`, `volumes` by target, `secrets`/`configs` by target, `dns`,
//! …) where a later entry replaces an earlier one with the same key. `!reset` removes the
//! inherited value, `!override` replaces it whole. The rules are a table keyed by path.

use crate::yaml::{Node, Tag, Value};

/// How a sequence at a path merges.
#[derive(Debug, Clone, Copy)]
enum SeqRule {
    Replace,
    Append,
    /// Append, then keep one entry per key (the later one, at the earlier one's place).
    Unique(fn(&Node) -> String),
}

fn by_value(n: &Node) -> String {
    n.to_json().to_string()
}

fn by_target(n: &Node) -> String {
    match n.get("target").and_then(Node::as_str) {
        Some(t) => t.to_string(),
        None => n
            .get("source")
            .and_then(Node::as_str)
            .unwrap_or_default()
            .to_string(),
    }
}

fn by_port(n: &Node) -> String {
    let g = |k: &str| {
        n.get(k)
            .and_then(Node::as_str)
            .unwrap_or_default()
            .to_string()
    };
    format!(
        "{}:{}:{}/{}/{}",
        g("host_ip"),
        g("published"),
        g("target"),
        g("protocol"),
        g("mode")
    )
}

fn by_source_target(n: &Node) -> String {
    let g = |k: &str| {
        n.get(k)
            .and_then(Node::as_str)
            .unwrap_or_default()
            .to_string()
    };
    format!("{}:{}", g("source"), g("target"))
}

/// The rule for a sequence at `path` (service-relative paths start with `services.*`).
fn seq_rule(path: &[&str]) -> SeqRule {
    let p: Vec<&str> = path.to_vec();
    match p.as_slice() {
        ["services", _, "command" | "entrypoint" | "profiles"] => SeqRule::Replace,
        ["services", _, "healthcheck", "test"] => SeqRule::Replace,
        ["services", _, "volumes"] => SeqRule::Unique(by_target),
        ["services", _, "secrets" | "configs"] => SeqRule::Unique(by_target),
        ["services", _, "build", "secrets"] => SeqRule::Unique(by_target),
        ["services", _, "ports"] => SeqRule::Unique(by_port),
        ["services", _, "devices"] => SeqRule::Unique(by_source_target),
        ["services", _, "env_file"] => SeqRule::Unique(|n| {
            n.get("path")
                .and_then(Node::as_str)
                .unwrap_or_default()
                .to_string()
        }),
        ["services", _, "dns"
        | "dns_search"
        | "dns_opt"
        | "tmpfs"
        | "cap_add"
        | "cap_drop"
        | "expose"
        | "external_links"
        | "security_opt"
        | "group_add"
        | "device_cgroup_rules"
        | "volumes_from"
        | "links"
        | "label_file"] => SeqRule::Unique(by_value),
        ["services", _, "extra_hosts", _] => SeqRule::Unique(by_value),
        ["services", _, "build", "cache_from" | "cache_to" | "tags" | "platforms" | "ssh"] => {
            SeqRule::Unique(by_value)
        }
        _ => SeqRule::Append,
    }
}

/// Merges `over` onto `base`; `path` is where the two sit in the project tree.
pub fn merge(base: Node, over: Node, path: &mut Vec<String>) -> Option<Node> {
    match over.tag {
        Some(Tag::Reset) => return None,
        Some(Tag::Override) => {
            let mut o = over;
            o.tag = None;
            return Some(o);
        }
        None => {}
    }
    match (base.value, over.value) {
        (Value::Map(mut b), Value::Map(o)) => {
            for (k, v) in *o {
                path.push(k.clone());
                // In place: no shifting of the mapping (services may number thousands).
                match b.get_mut(&k) {
                    Some(slot) => {
                        let span = slot.span.clone();
                        let bv = std::mem::replace(slot, Node::null(span));
                        match merge_value(bv, v, path) {
                            Some(m) => *slot = m,
                            None => {
                                b.shift_remove(&k);
                            }
                        }
                    }
                    None => {
                        if v.tag != Some(Tag::Reset) {
                            b.insert(k, v);
                        }
                    }
                }
                path.pop();
            }
            Some(Node {
                value: Value::Map(b),
                span: base.span,
                tag: None,
            })
        }
        (Value::Seq(mut b), Value::Seq(o)) => {
            let refs: Vec<&str> = path.iter().map(String::as_str).collect();
            let value = match seq_rule(&refs) {
                SeqRule::Replace => o,
                SeqRule::Append => {
                    b.extend(o);
                    b
                }
                SeqRule::Unique(key) => {
                    b.extend(o);
                    unique(b, key)
                }
            };
            Some(Node {
                value: Value::Seq(value),
                span: over.span,
                tag: None,
            })
        }
        (bv, Value::Null) => {
            // `key:` with no value keeps what was there (a service listed again, `networks:
            // {default: null}`), except for scalars it blanks.
            match bv {
                Value::Map(_) | Value::Seq(_) => Some(Node {
                    value: bv,
                    span: base.span,
                    tag: None,
                }),
                _ => Some(Node::null(over.span)),
            }
        }
        (_, ov) => Some(Node {
            value: ov,
            span: over.span,
            tag: None,
        }),
    }
}

fn merge_value(base: Node, over: Node, path: &mut Vec<String>) -> Option<Node> {
    merge(base, over, path)
}

/// Keeps one entry per key: the last one, at the first one's position.
fn unique(items: Vec<Node>, key: fn(&Node) -> String) -> Vec<Node> {
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut out: Vec<Node> = Vec::with_capacity(items.len());
    for it in items {
        let k = key(&it);
        match index.get(&k) {
            Some(&i) => out[i] = it,
            None => {
                index.insert(k, out.len());
                out.push(it);
            }
        }
    }
    out
}

/// Drops merge tags from a subtree (what remains after a merge, or a first file's `!reset`).
pub fn strip_tags(mut n: Node) -> Node {
    n.tag = None;
    match &mut n.value {
        Value::Map(m) => {
            if m.values().any(|v| v.tag == Some(Tag::Reset)) {
                m.retain(|_, v| v.tag != Some(Tag::Reset));
            }
            for v in m.values_mut() {
                *v = strip_tags(std::mem::replace(v, Node::null(v.span.clone())));
            }
        }
        Value::Seq(items) => {
            items.retain(|v| v.tag != Some(Tag::Reset));
            for v in items.iter_mut() {
                *v = strip_tags(std::mem::replace(v, Node::null(v.span.clone())));
            }
        }
        _ => {}
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn doc(t: &str) -> Node {
        crate::yaml::parse(t, "t.yaml").unwrap().remove(0)
    }

    fn m(a: &str, b: &str) -> serde_json::Value {
        strip_tags(merge(doc(a), doc(b), &mut vec![]).unwrap()).to_json()
    }

    #[test]
    fn rules() {
        let j = m(
            "services: {a: {image: x, command: [a, b], dns: [1, 2], environment: {A: '1', B: '2'}}}",
            "services: {a: {image: y, command: [c], dns: [2, 3], environment: {B: '3'}}}",
        );
        assert_eq!(
            j,
            serde_json::json!({"services": {"a": {"image": "y", "command": ["c"],
                "dns": [1, 2, 3], "environment": {"A": "1", "B": "3"}}}})
        );
        let j = m(
            "services: {a: {volumes: [{target: /w, source: foo}], ports: [1]}}",
            "services: {a: {volumes: [{target: /w, source: bar}]}}",
        );
        assert_eq!(
            j["services"]["a"]["volumes"],
            serde_json::json!([{"target": "/w", "source": "bar"}])
        );
        let j = m("a: {b: 1, c: 2}", "a: {b: !reset null}");
        assert_eq!(j, serde_json::json!({"a": {"c": 2}}));
        let j = m("a: {b: {x: 1}}", "a: {b: !override {y: 2}}");
        assert_eq!(j, serde_json::json!({"a": {"b": {"y": 2}}}));
    }

    fn arb_tree() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            any::<u8>().prop_map(|n| serde_json::json!(n)),
            "[a-z]{1,4}".prop_map(|s| serde_json::json!(s)),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("[a-c]", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn node(j: &serde_json::Value) -> Node {
        doc(&serde_json::to_string(j).unwrap())
    }

    proptest! {
        /// Merging a mapping with an empty one is the identity, both ways.
        #[test]
        fn empty_is_identity(t in arb_tree()) {
            let n = node(&t);
            if n.as_map().is_some() {
                let e = doc("{}");
                prop_assert_eq!(strip_tags(merge(n.clone(), e.clone(), &mut vec![]).unwrap()).to_json(), t.clone());
                prop_assert_eq!(merge(e, n, &mut vec![]).unwrap().to_json(), t);
            }
        }

        /// Every key of either side is in the result; scalars of the override win.
        #[test]
        fn keys_are_kept_and_override_scalars_win(a in arb_tree(), b in arb_tree()) {
            let (na, nb) = (node(&a), node(&b));
            if let (Some(ma), Some(mb)) = (na.as_map(), nb.as_map()) {
                let (ma, mb) = (ma.clone(), mb.clone());
                let r = merge(na, nb, &mut vec![]).unwrap();
                let rm = r.as_map().unwrap();
                for k in ma.keys().chain(mb.keys()) {
                    prop_assert!(rm.contains_key(k));
                }
                for (k, v) in &mb {
                    if matches!(v.value, Value::Scalar { .. }) {
                        prop_assert_eq!(rm[k].to_json(), v.to_json());
                    }
                }
            }
        }

        /// Merging a tree onto itself is idempotent for appended sequences only in length;
        /// mappings of scalars are idempotent.
        #[test]
        fn scalar_maps_idempotent(m in prop::collection::btree_map("[a-e]", "[a-z]{1,3}", 0..5)) {
            let j = serde_json::Value::Object(m.into_iter().map(|(k, v)| (k, serde_json::json!(v))).collect());
            let n = node(&j);
            prop_assert_eq!(merge(n.clone(), n, &mut vec![]).unwrap().to_json(), j);
        }
    }
}
