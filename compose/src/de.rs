//! Typing: binds the canonical untyped tree to the typed model with serde.
//!
//! Last phase of the loader. Scalars are read leniently, as compose-go casts interpolated
//! values: a string field takes any scalar's text, a number or boolean field parses text.
//! An error names the position of the innermost node that did not fit.

use std::fmt;

use serde::de::{self, DeserializeOwned, Error as _, IntoDeserializer, Visitor};

use crate::yaml::{Node, ScalarType, Span, Value};

/// A node that does not fit the typed model.
#[derive(Debug, Clone, thiserror::Error)]
pub struct DeError {
    pub span: Option<Span>,
    /// Key path from the top, innermost last (`services`, `web`, `mem_limit`).
    pub path: Vec<String>,
    pub msg: String,
}

impl DeError {
    /// The key path rendered like `services.web.ports[0]`.
    pub fn path(&self) -> String {
        let mut s = String::new();
        for p in &self.path {
            if !s.is_empty() && !p.starts_with('[') {
                s.push('.');
            }
            s.push_str(p);
        }
        s
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.span {
            write!(f, "{s}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path())?;
        }
        f.write_str(&self.msg)
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            span: None,
            path: Vec::new(),
            msg: msg.to_string(),
        }
    }
}

impl DeError {
    fn at(mut self, span: &Span) -> Self {
        if self.span.is_none() {
            self.span = Some(span.clone());
        }
        self
    }
}

/// Deserializes a typed value from a node.
pub fn from_node<T: DeserializeOwned>(node: &Node) -> Result<T, DeError> {
    T::deserialize(NodeDe(node))
}

/// A serde deserializer over one node.
pub struct NodeDe<'a>(pub &'a Node);

fn text(n: &Node) -> Option<&str> {
    match &n.value {
        Value::Scalar { text, .. } => Some(text),
        _ => None,
    }
}

macro_rules! parse_num {
    ($name:ident, $visit:ident, $t:ty) => {
        fn $name<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
            let n = self.0;
            let r = match text(n) {
                Some(t) => match t.trim().parse::<$t>() {
                    Ok(x) => v.$visit(x),
                    Err(_) => Err(DeError::custom(format!("expected a number, found {:?}", t))),
                },
                None => Err(DeError::custom(format!(
                    "expected a number, found {}",
                    n.kind()
                ))),
            };
            r.map_err(|e| e.at(&n.span))
        }
    };
}

impl<'de, 'a> de::Deserializer<'de> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let n = self.0;
        let r = match &n.value {
            Value::Null => v.visit_unit(),
            Value::Scalar { text, .. } => match n.scalar_type() {
                ScalarType::Bool(b) => v.visit_bool(b),
                ScalarType::Int(i) => v.visit_i64(i),
                ScalarType::Float(f) => v.visit_f64(f),
                ScalarType::Str => v.visit_str(text),
            },
            Value::Seq(items) => v.visit_seq(SeqAccess::new(items)),
            Value::Map(m) => v.visit_map(MapAccess {
                it: m.iter(),
                value: None,
            }),
        };
        r.map_err(|e| e.at(&n.span))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let n = self.0;
        let r = match text(n) {
            Some(t) => match parse_bool(t) {
                Some(b) => v.visit_bool(b),
                None => Err(DeError::custom(format!("expected a boolean, found {t:?}"))),
            },
            None => Err(DeError::custom(format!(
                "expected a boolean, found {}",
                n.kind()
            ))),
        };
        r.map_err(|e| e.at(&n.span))
    }

    parse_num!(deserialize_i8, visit_i8, i8);
    parse_num!(deserialize_i16, visit_i16, i16);
    parse_num!(deserialize_i32, visit_i32, i32);
    parse_num!(deserialize_i64, visit_i64, i64);
    parse_num!(deserialize_u8, visit_u8, u8);
    parse_num!(deserialize_u16, visit_u16, u16);
    parse_num!(deserialize_u32, visit_u32, u32);
    parse_num!(deserialize_u64, visit_u64, u64);
    parse_num!(deserialize_f32, visit_f32, f32);
    parse_num!(deserialize_f64, visit_f64, f64);

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let n = self.0;
        let r = match text(n) {
            Some(t) => v.visit_str(t),
            None => Err(DeError::custom(format!(
                "expected a string, found {}",
                n.kind()
            ))),
        };
        r.map_err(|e| e.at(&n.span))
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.0.is_null() {
            v.visit_none()
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let n = self.0;
        let r = match &n.value {
            Value::Seq(items) => v.visit_seq(SeqAccess::new(items)),
            Value::Null => v.visit_seq(SeqAccess::new(&[])),
            _ => Err(DeError::custom(format!(
                "expected a list, found {}",
                n.kind()
            ))),
        };
        r.map_err(|e| e.at(&n.span))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let n = self.0;
        let r = match &n.value {
            Value::Map(m) => v.visit_map(MapAccess {
                it: m.iter(),
                value: None,
            }),
            Value::Null => v.visit_map(MapAccess {
                it: indexmap::map::Iter::default(),
                value: None,
            }),
            _ => Err(DeError::custom(format!(
                "expected a mapping, found {}",
                n.kind()
            ))),
        };
        r.map_err(|e| e.at(&n.span))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        let n = self.0;
        let r = match text(n) {
            Some(t) => v.visit_enum(t.into_deserializer()),
            None => Err(DeError::custom(format!(
                "expected a string, found {}",
                n.kind()
            ))),
        };
        r.map_err(|e| e.at(&n.span))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }
}

/// Booleans as compose-go casts them.
pub fn parse_bool(t: &str) -> Option<bool> {
    match t {
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "y" | "Y" | "on" | "On" | "ON" => {
            Some(true)
        }
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "n" | "N" | "off" | "Off" | "OFF" => {
            Some(false)
        }
        _ => None,
    }
}

struct SeqAccess<'a>(std::iter::Enumerate<std::slice::Iter<'a, Node>>);

impl<'a> SeqAccess<'a> {
    fn new(items: &'a [Node]) -> Self {
        SeqAccess(items.iter().enumerate())
    }
}

impl<'de, 'a> de::SeqAccess<'de> for SeqAccess<'a> {
    type Error = DeError;
    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.0.next() {
            Some((i, n)) => seed.deserialize(NodeDe(n)).map(Some).map_err(|e| {
                let mut e = e.at(&n.span);
                e.path.insert(0, format!("[{i}]"));
                e
            }),
            None => Ok(None),
        }
    }
}

struct MapAccess<'a> {
    it: indexmap::map::Iter<'a, String, Node>,
    value: Option<(&'a str, &'a Node)>,
}

impl<'de, 'a> de::MapAccess<'de> for MapAccess<'a> {
    type Error = DeError;
    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.it.next() {
            Some((k, v)) => {
                self.value = Some((k.as_str(), v));
                let kd: de::value::StrDeserializer<'_, DeError> = k.as_str().into_deserializer();
                seed.deserialize(kd).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, DeError> {
        let (k, v) = self
            .value
            .take()
            .ok_or_else(|| DeError::custom("value without key"))?;
        seed.deserialize(NodeDe(v)).map_err(|e| {
            let mut e = e.at(&v.span);
            e.path.insert(0, k.to_string());
            e
        })
    }
}
