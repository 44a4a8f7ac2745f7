//! Validation of one file's tree against the Compose Specification's JSON schema
//! (`compose-spec.json`, embedded), with positions: unknown keys, wrong types, missing
//! required keys, values out of range or outside an enumeration.
//!
//! Runs on each file after interpolation, before the files are merged, as compose-go does, so
//! that an error points into the file that has it. The schema is the rule table: no per-key
//! code here. Scalars are matched leniently (interpolated text may stand for a number).

use std::sync::LazyLock;

use serde_json::Value as J;

use crate::de::parse_bool;
use crate::yaml::{Node, ScalarType, Span, Value};

fn node_is_plain(n: &Node) -> bool {
    matches!(n.value, Value::Scalar { plain: true, .. })
}

static SCHEMA: LazyLock<J> = LazyLock::new(|| {
    serde_json::from_str(include_str!("compose-spec.json")).expect("embedded schema is JSON")
});

/// A node that breaks the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{span}: {path}: {msg}")]
pub struct SchemaError {
    pub span: Span,
    /// Key path, like `services.web.ports[0]`.
    pub path: String,
    pub msg: String,
}

/// Validates a whole file (its top-level mapping) against the schema.
pub fn validate_file(root: &Node) -> Result<(), SchemaError> {
    let mut path = Vec::new();
    check(root, &SCHEMA, &mut path)
}

fn render(path: &[String]) -> String {
    let mut s = String::new();
    for p in path {
        if p.starts_with('[') || s.is_empty() {
            s.push_str(p);
        } else {
            s.push('.');
            s.push_str(p);
        }
    }
    if s.is_empty() {
        s.push_str("(top level)");
    }
    s
}

fn resolve(schema: &J) -> &J {
    let mut s = schema;
    for _ in 0..16 {
        match s.get("$ref").and_then(J::as_str) {
            Some(r) => match r.strip_prefix("#").and_then(|p| SCHEMA.pointer(p)) {
                Some(t) => s = t,
                None => return s,
            },
            None => return s,
        }
    }
    s
}

fn type_matches(node: &Node, ty: &str) -> bool {
    match (&node.value, ty) {
        (Value::Null, "null") => true,
        (Value::Map(_), "object") => true,
        (Value::Seq(_), "array") => true,
        (Value::Scalar { .. }, "string") => {
            !node_is_plain(node) || matches!(node.scalar_type(), ScalarType::Str)
        }
        // A `${VAR}` left by `--no-interpolate` may stand for any scalar.
        (Value::Scalar { text, .. }, "integer" | "number" | "boolean") if text.contains("${") => {
            true
        }
        (Value::Scalar { text, .. }, "integer") => text.trim().parse::<i64>().is_ok(),
        (Value::Scalar { text, .. }, "number") => text.trim().parse::<f64>().is_ok(),
        (Value::Scalar { text, .. }, "boolean") => parse_bool(text).is_some(),
        _ => false,
    }
}

fn types_of(schema: &J) -> Vec<&str> {
    match schema.get("type") {
        Some(J::String(t)) => vec![t.as_str()],
        Some(J::Array(ts)) => ts.iter().filter_map(J::as_str).collect(),
        _ => Vec::new(),
    }
}

fn describe(types: &[&str]) -> String {
    let names: Vec<&str> = types
        .iter()
        .map(|t| match *t {
            "object" => "a mapping",
            "array" => "a list",
            "string" => "a string",
            "integer" => "an integer",
            "number" => "a number",
            "boolean" => "a boolean",
            "null" => "null",
            o => o,
        })
        .collect();
    names.join(" or ")
}

/// Whether `node` could be meant for this branch (its type fits), to pick which branch's error
/// to report when no `oneOf` branch matches.
fn branch_fits(node: &Node, schema: &J) -> bool {
    let s = resolve(schema);
    let types = types_of(s);
    if types.is_empty() {
        return s
            .get("oneOf")
            .and_then(J::as_array)
            .is_some_and(|bs| bs.iter().any(|b| branch_fits(node, b)));
    }
    types.iter().any(|t| type_matches(node, t))
}

fn pattern_matches(pattern: &str, text: &str) -> bool {
    match pattern {
        // Unanchored in the schema: some alphanumeric followed by a name character.
        "[a-zA-Z0-9][a-zA-Z0-9_.-]+" => {
            let b = text.as_bytes();
            b.windows(2).any(|w| {
                w[0].is_ascii_alphanumeric()
                    && (w[1].is_ascii_alphanumeric() || matches!(w[1], b'_' | b'.' | b'-'))
            })
        }
        p if p.starts_with("always|never") => {
            [
                "always",
                "never",
                "build",
                "if_not_present",
                "missing",
                "refresh",
                "daily",
                "weekly",
            ]
            .iter()
            .any(|w| text.contains(w))
                || text.contains("every_")
        }
        "^x-" => text.starts_with("x-"),
        "^.+$" | ".+" => !text.is_empty(),
        "^[a-zA-Z0-9._-]+$" => {
            !text.is_empty()
                && text
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        }
        "^[a-z]+$" => !text.is_empty() && text.bytes().all(|c| c.is_ascii_lowercase()),
        _ => true,
    }
}

fn err(node: &Node, path: &[String], msg: String) -> SchemaError {
    SchemaError {
        span: node.span.clone(),
        path: render(path),
        msg,
    }
}

fn check(node: &Node, schema: &J, path: &mut Vec<String>) -> Result<(), SchemaError> {
    let schema = resolve(schema);
    if let Some(branches) = schema.get("oneOf").and_then(J::as_array) {
        let mut first_err = None;
        for b in branches {
            match check(node, b, path) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    if first_err.is_none() && branch_fits(node, b) {
                        first_err = Some(e);
                    }
                }
            }
        }
        return Err(first_err.unwrap_or_else(|| {
            let mut types = Vec::new();
            for b in branches {
                let r = resolve(b);
                types.extend(types_of(r));
                if let Some(inner) = r.get("oneOf").and_then(J::as_array) {
                    for i in inner {
                        types.extend(types_of(resolve(i)));
                    }
                }
            }
            types.dedup();
            err(
                node,
                path,
                format!("expected {}, found {}", describe(&types), node.kind()),
            )
        }));
    }
    let types = types_of(schema);
    if !types.is_empty() && !types.iter().any(|t| type_matches(node, t)) {
        // A quoted or interpolated scalar fails a number/boolean check with its text.
        let found = match &node.value {
            Value::Scalar { text, .. } if !types.contains(&"string") => format!("{text:?}"),
            _ => node.kind().to_string(),
        };
        return Err(err(
            node,
            path,
            format!("expected {}, found {found}", describe(&types)),
        ));
    }
    if let Some(values) = schema.get("enum").and_then(J::as_array) {
        if let Some(t) = node.as_str() {
            let ok = values.iter().any(|v| match v {
                J::String(s) => s == t,
                J::Null => false,
                other => other.to_string().as_str() == t,
            });
            if !ok {
                let allowed: Vec<String> = values.iter().map(J::to_string).collect();
                return Err(err(
                    node,
                    path,
                    format!(
                        "invalid value {t:?}: expected one of {}",
                        allowed.join(", ")
                    ),
                ));
            }
        }
    }
    if let Some(t) = node.as_str() {
        if let Ok(n) = t.trim().parse::<f64>() {
            if let Some(min) = schema.get("minimum").and_then(J::as_f64) {
                if n < min {
                    return Err(err(node, path, format!("{t} is below the minimum {min}")));
                }
            }
            if let Some(max) = schema.get("maximum").and_then(J::as_f64) {
                if n > max {
                    return Err(err(node, path, format!("{t} is above the maximum {max}")));
                }
            }
        }
        if let Some(p) = schema.get("pattern").and_then(J::as_str) {
            if !pattern_matches(p, t) {
                return Err(err(node, path, format!("invalid value {t:?}")));
            }
        }
    }
    match &node.value {
        Value::Map(m) => {
            let props = schema.get("properties").and_then(J::as_object);
            let pprops = schema.get("patternProperties").and_then(J::as_object);
            let additional = schema.get("additionalProperties");
            if let Some(req) = schema.get("required").and_then(J::as_array) {
                for r in req.iter().filter_map(J::as_str) {
                    if !m.contains_key(r) {
                        return Err(err(node, path, format!("missing required key {r:?}")));
                    }
                }
            }
            for (k, v) in m.iter() {
                path.push(k.clone());
                let mut matched = false;
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    matched = true;
                    check(v, s, path)?;
                }
                if let Some(pp) = pprops {
                    for (pat, s) in pp {
                        if pattern_matches(pat, k) {
                            matched = true;
                            check(v, s, path)?;
                        }
                    }
                }
                if !matched {
                    match additional {
                        Some(J::Bool(false)) => {
                            path.pop();
                            let what = if path.is_empty() {
                                "top-level key".to_string()
                            } else {
                                "key".to_string()
                            };
                            return Err(err(v, path, format!("unknown {what} {k:?}")));
                        }
                        Some(s @ J::Object(_)) => check(v, s, path)?,
                        _ => {}
                    }
                }
                path.pop();
            }
        }
        Value::Seq(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    path.push(format!("[{i}]"));
                    check(item, s, path)?;
                    path.pop();
                }
            }
            if schema.get("uniqueItems").and_then(J::as_bool) == Some(true) {
                let mut seen = std::collections::HashSet::new();
                for item in items {
                    let key = item.to_json().to_string();
                    if !seen.insert(key) {
                        return Err(err(
                            item,
                            path,
                            "list items must be unique: duplicate entry".to_string(),
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Result<(), SchemaError> {
        validate_file(&crate::yaml::parse(text, "c.yaml").unwrap()[0])
    }

    #[test]
    fn accepts_a_plain_service() {
        v("services:\n  web:\n    image: nginx\n    ports: ['80:80']\n").unwrap();
    }

    #[test]
    fn unknown_key_named_with_position() {
        let e = v("services:\n  web:\n    image: nginx\n    wrongField: 1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.yaml:4:17: services.web: unknown key \"wrongField\""
        );
    }

    #[test]
    fn wrong_type() {
        let e = v("services:\n  web:\n    image: [a]\n").unwrap_err();
        assert_eq!(e.path, "services.web.image");
        assert!(e.msg.contains("expected a string, found a list"), "{e}");
    }
}
