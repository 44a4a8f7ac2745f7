//! YAML front-end: text → an untyped tree of [`Node`]s that keep their file, line and column.
//!
//! First phase of the loader. It resolves anchors and aliases (with an expansion budget against
//! "billion laughs" files), `<<` merge keys (single and list), keeps the `!reset` and
//! `!override` tags for the merge phase, and rejects duplicate keys. Everything after this phase
//! (interpolation, include, extends, merge, validation, typing) works on this tree. Built on the
//! `saphyr-parser` event stream so that the swap to another parser stays inside this module.

use std::fmt;
use std::sync::Arc;

use indexmap::IndexMap;
use saphyr_parser::{Event, Parser, ScalarStyle};

/// Largest number of nodes alias expansion may create in one file. Real files stay far below;
/// a "billion laughs" file hits it after a few milliseconds.
pub const ALIAS_BUDGET: usize = 1_000_000;

/// Where a node starts: the file and its 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
}

impl Span {
    pub fn new(file: &Arc<str>, line: usize, col: usize) -> Self {
        Span {
            file: file.clone(),
            line: line as u32,
            col: col as u32,
        }
    }

    /// A span for values that did not come from a file (defaults, command-line values).
    pub fn synthetic(what: &str) -> Self {
        Span {
            file: Arc::from(what),
            line: 0,
            col: 0,
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.col)
        }
    }
}

/// The merge tags of the Compose Specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// `!reset`: drop the value inherited from earlier files (or the extended service).
    Reset,
    /// `!override`: replace the inherited value instead of merging with it.
    Override,
}

/// A mapping: keys in file order.
pub type Map = IndexMap<String, Node>;

/// The value of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// A scalar's text; `plain` when it was unquoted (so `80` may be a number and `true` a
    /// boolean, while `"80"` stays text).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Box<Map>),
}

/// One node of the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
    pub tag: Option<Tag>,
}

/// The YAML errors: syntax, duplicate keys, alias budget.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("{span}: invalid yaml: {msg}")]
    Syntax { span: Span, msg: String },
    #[error("{span}: duplicate key {key:?}")]
    DuplicateKey { span: Span, key: String },
    #[error("{span}: alias expansion exceeds {budget} nodes (a \"billion laughs\" file?)")]
    AliasBudget { span: Span, budget: usize },
    #[error("{span}: unknown anchor in alias")]
    UnknownAlias { span: Span },
    #[error("{span}: mapping keys must be scalars")]
    ComplexKey { span: Span },
    #[error("{span}: merge key `<<` expects a mapping or a list of mappings")]
    BadMerge { span: Span },
}

impl Node {
    pub fn new(value: Value, span: Span) -> Self {
        Node {
            value,
            span,
            tag: None,
        }
    }

    pub fn string(text: impl Into<String>, span: Span) -> Self {
        Node::new(
            Value::Scalar {
                text: text.into(),
                plain: false,
            },
            span,
        )
    }

    pub fn null(span: Span) -> Self {
        Node::new(Value::Null, span)
    }

    pub fn map(map: Map, span: Span) -> Self {
        Node::new(Value::Map(Box::new(map)), span)
    }

    pub fn seq(items: Vec<Node>, span: Span) -> Self {
        Node::new(Value::Seq(items), span)
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    pub fn as_map(&self) -> Option<&Map> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&Vec<Node>> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The text of a scalar (any scalar: numbers and booleans too).
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map().and_then(|m| m.get(key))
    }

    /// What kind of value this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Scalar { .. } => match self.scalar_type() {
                ScalarType::Bool(_) => "a boolean",
                ScalarType::Int(_) => "an integer",
                ScalarType::Float(_) => "a number",
                ScalarType::Str => "a string",
            },
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// How a scalar types under the YAML 1.2 core schema (quoted scalars are strings).
    pub fn scalar_type(&self) -> ScalarType {
        match &self.value {
            Value::Scalar { text, plain: true } => scalar_type(text),
            _ => ScalarType::Str,
        }
    }

    /// This node as JSON, typing plain scalars by the core schema.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Scalar { text, .. } => match self.scalar_type() {
                ScalarType::Bool(b) => J::Bool(b),
                ScalarType::Int(i) => J::from(i),
                ScalarType::Float(f) => serde_json::Number::from_f64(f)
                    .map(J::Number)
                    .unwrap_or_else(|| J::String(text.clone())),
                ScalarType::Str => J::String(text.clone()),
            },
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }

    /// Number of nodes in this subtree (for the alias budget).
    fn size(&self) -> usize {
        match &self.value {
            Value::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            Value::Map(m) => 1 + m.values().map(Node::size).sum::<usize>(),
            _ => 1,
        }
    }
}

/// The type of a plain scalar under the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScalarType {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str,
}

/// Types a plain scalar's text by the YAML 1.2 core schema.
pub fn scalar_type(text: &str) -> ScalarType {
    match text {
        "true" | "True" | "TRUE" => return ScalarType::Bool(true),
        "false" | "False" | "FALSE" => return ScalarType::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return ScalarType::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return ScalarType::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return ScalarType::Float(f64::NAN),
        _ => {}
    }
    let b = text.as_bytes();
    if b.is_empty() {
        return ScalarType::Str;
    }
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let unsigned = if b[0] == b'-' || b[0] == b'+' {
        &b[1..]
    } else {
        b
    };
    if digits(unsigned) {
        // Go's yaml.v3 reads integers with base prefixes: a leading zero is octal.
        if unsigned.len() > 1 && unsigned[0] == b'0' {
            if let Ok(i) = i64::from_str_radix(&text[text.len() - unsigned.len() + 1..], 8) {
                return ScalarType::Int(if b[0] == b'-' { -i } else { i });
            }
        }
        if let Ok(i) = text.parse::<i64>() {
            return ScalarType::Int(i);
        }
        if let Ok(f) = text.parse::<f64>() {
            return ScalarType::Float(f);
        }
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return ScalarType::Int(i);
        }
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if let Ok(i) = i64::from_str_radix(oct, 8) {
            return ScalarType::Int(i);
        }
    }
    // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let mut i = 0;
    let n = unsigned.len();
    let s = unsigned;
    let int_start = i;
    while i < n && s[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < n && s[i] == b'.' {
        i += 1;
        let fs = i;
        while i < n && s[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - fs;
    } else if int_digits == 0 {
        return ScalarType::Str;
    }
    if int_digits == 0 && frac_digits == 0 {
        return ScalarType::Str;
    }
    if i < n && (s[i] == b'e' || s[i] == b'E') {
        i += 1;
        if i < n && (s[i] == b'-' || s[i] == b'+') {
            i += 1;
        }
        let es = i;
        while i < n && s[i].is_ascii_digit() {
            i += 1;
        }
        if i == es {
            return ScalarType::Str;
        }
    }
    if i != n {
        return ScalarType::Str;
    }
    match text.parse::<f64>() {
        Ok(f) => ScalarType::Float(f),
        Err(_) => ScalarType::Str,
    }
}

fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// Parses YAML text into its documents. `file` names the source in spans.
pub fn parse(text: &str, file: &str) -> Result<Vec<Node>, YamlError> {
    let file: Arc<str> = Arc::from(file);
    let mut b = Builder {
        anchors: Vec::new(),
        created: 0,
        stack: Vec::new(),
        docs: Vec::new(),
    };
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| YamlError::Syntax {
            span: Span::new(&file, e.marker().line(), e.marker().col() + 1),
            msg: e.info().to_string(),
        })?;
        let sp = Span::new(&file, span.start.line(), span.start.col() + 1);
        match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentStart(_) | Event::DocumentEnd => {}
            Event::Alias(id) => {
                let node = match b.anchors.get(id).and_then(|a| a.as_ref()) {
                    Some(n) => n.clone(),
                    None => return Err(YamlError::UnknownAlias { span: sp }),
                };
                b.created += node.size();
                if b.created > ALIAS_BUDGET {
                    return Err(YamlError::AliasBudget {
                        span: sp,
                        budget: ALIAS_BUDGET,
                    });
                }
                b.push_value(node)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                b.created += 1;
                let plain = matches!(style, ScalarStyle::Plain);
                let mytag = tag.as_ref().and_then(|t| merge_tag(&t.handle, &t.suffix));
                let is_str_tag = tag
                    .as_ref()
                    .map(|t| t.suffix == "str" && t.handle.starts_with("tag:yaml.org"))
                    .unwrap_or(false);
                let value = if plain && is_null_text(&text) && !is_str_tag {
                    Value::Null
                } else {
                    Value::Scalar {
                        text: text.into_owned(),
                        plain: plain && !is_str_tag,
                    }
                };
                let node = Node {
                    value,
                    span: sp,
                    tag: mytag,
                };
                if anchor > 0 {
                    b.set_anchor(anchor, &node);
                }
                b.push_value(node)?;
            }
            Event::SequenceStart(anchor, tag) => {
                b.created += 1;
                let t = tag.as_ref().and_then(|t| merge_tag(&t.handle, &t.suffix));
                b.stack.push(Frame::Seq {
                    items: Vec::new(),
                    span: sp,
                    anchor,
                    tag: t,
                });
            }
            Event::MappingStart(anchor, tag) => {
                b.created += 1;
                let t = tag.as_ref().and_then(|t| merge_tag(&t.handle, &t.suffix));
                b.stack.push(Frame::Map {
                    entries: Map::new(),
                    merges: Vec::new(),
                    key: None,
                    span: sp,
                    anchor,
                    tag: t,
                });
            }
            Event::SequenceEnd => {
                let Some(Frame::Seq {
                    items,
                    span,
                    anchor,
                    tag,
                }) = b.stack.pop()
                else {
                    return Err(YamlError::Syntax {
                        span: sp,
                        msg: "unbalanced sequence".into(),
                    });
                };
                let node = Node {
                    value: Value::Seq(items),
                    span,
                    tag,
                };
                if anchor > 0 {
                    b.set_anchor(anchor, &node);
                }
                b.push_value(node)?;
            }
            Event::MappingEnd => {
                let Some(Frame::Map {
                    mut entries,
                    merges,
                    span,
                    anchor,
                    tag,
                    ..
                }) = b.stack.pop()
                else {
                    return Err(YamlError::Syntax {
                        span: sp,
                        msg: "unbalanced mapping".into(),
                    });
                };
                // Merge keys: explicit keys win, then earlier merged mappings win over later.
                for m in merges {
                    let maps: Vec<Node> = match m.value {
                        Value::Map(_) => vec![m],
                        Value::Seq(items) => items,
                        _ => return Err(YamlError::BadMerge { span: m.span }),
                    };
                    for item in maps {
                        let Value::Map(mm) = item.value else {
                            return Err(YamlError::BadMerge { span: item.span });
                        };
                        for (k, v) in *mm {
                            entries.entry(k).or_insert(v);
                        }
                    }
                }
                let node = Node {
                    value: Value::Map(Box::new(entries)),
                    span,
                    tag,
                };
                if anchor > 0 {
                    b.set_anchor(anchor, &node);
                }
                b.push_value(node)?;
            }
        }
    }
    Ok(b.docs)
}

fn merge_tag(handle: &str, suffix: &str) -> Option<Tag> {
    if handle != "!" {
        return None;
    }
    match suffix {
        "reset" => Some(Tag::Reset),
        "override" => Some(Tag::Override),
        _ => None,
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        span: Span,
        anchor: usize,
        tag: Option<Tag>,
    },
    Map {
        entries: Map,
        merges: Vec<Node>,
        key: Option<(String, Span, bool)>,
        span: Span,
        anchor: usize,
        tag: Option<Tag>,
    },
}

struct Builder {
    anchors: Vec<Option<Node>>,
    created: usize,
    stack: Vec<Frame>,
    docs: Vec<Node>,
}

impl Builder {
    fn set_anchor(&mut self, id: usize, node: &Node) {
        if self.anchors.len() <= id {
            self.anchors.resize(id + 1, None);
        }
        self.anchors[id] = Some(node.clone());
    }

    fn push_value(&mut self, node: Node) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => {
                self.docs.push(node);
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map {
                entries,
                merges,
                key,
                ..
            }) => match key.take() {
                None => {
                    let (text, plain) = match node.value {
                        Value::Null => (String::new(), true),
                        Value::Scalar { text, plain } => (text, plain),
                        _ => return Err(YamlError::ComplexKey { span: node.span }),
                    };
                    *key = Some((text, node.span, plain));
                    Ok(())
                }
                Some((k, kspan, plain)) => {
                    if plain && k == "<<" {
                        merges.push(node);
                        return Ok(());
                    }
                    if entries.contains_key(&k) {
                        return Err(YamlError::DuplicateKey {
                            span: kspan,
                            key: k,
                        });
                    }
                    entries.insert(k, node);
                    Ok(())
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        parse(text, "t.yaml").unwrap().remove(0)
    }

    #[test]
    fn spans_are_one_based() {
        let n = one("a:\n  b: 1\n");
        let b = n.get("a").unwrap().get("b").unwrap();
        assert_eq!((b.span.line, b.span.col), (2, 6));
    }

    #[test]
    fn merge_keys_single_and_list() {
        let n = one("x: &x {a: 1, b: 2}\ny: &y {b: 3, c: 4}\nz:\n  <<: [*x, *y]\n  a: 9\n");
        let z = n.get("z").unwrap().to_json();
        assert_eq!(z, serde_json::json!({"a": 9, "b": 2, "c": 4}));
        let n = one("x: &x {a: 1}\nz:\n  <<: *x\n  b: 2\n");
        assert_eq!(
            n.get("z").unwrap().to_json(),
            serde_json::json!({"b": 2, "a": 1})
        );
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = parse("a: 1\nb: 2\na: 3\n", "t.yaml").unwrap_err();
        assert_eq!(e.to_string(), "t.yaml:3:1: duplicate key \"a\"");
    }

    #[test]
    fn billion_laughs_fails_fast() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            s.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let t = std::time::Instant::now();
        let e = parse(&s, "t.yaml").unwrap_err();
        assert!(matches!(e, YamlError::AliasBudget { .. }), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn tags_and_types() {
        let n = one("a: !reset []\nb: !override {x: 1}\nc: \"80\"\nd: 80\ne: ~\nf: 1.5\ng: true\n");
        assert_eq!(n.get("a").unwrap().tag, Some(Tag::Reset));
        assert_eq!(n.get("b").unwrap().tag, Some(Tag::Override));
        assert_eq!(n.get("c").unwrap().to_json(), serde_json::json!("80"));
        assert_eq!(n.get("d").unwrap().to_json(), serde_json::json!(80));
        assert!(n.get("e").unwrap().is_null());
        assert_eq!(n.get("f").unwrap().to_json(), serde_json::json!(1.5));
        assert_eq!(n.get("g").unwrap().to_json(), serde_json::json!(true));
    }

    #[test]
    fn multi_document() {
        let d = parse("a: 1\n---\nb: 2\n", "t.yaml").unwrap();
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn syntax_error_has_position() {
        let e = parse("a:\n  - b\n c: d\n", "t.yaml").unwrap_err();
        assert!(e.to_string().starts_with("t.yaml:"), "{e}");
    }
}
