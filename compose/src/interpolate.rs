//! Variable interpolation (`$VAR`, `${VAR:-default}`, …) of the untyped tree.
//!
//! Second phase of the loader: runs on every scalar of a parsed file before anything is typed,
//! with values from the process environment and the `.env` / `--env-file` files.
//! Grammar (the Compose Specification's, as Docker Compose implements it):
//! `$$` is a literal `$`; `$NAME` and `${NAME}` substitute; inside braces `:-` / `-` give a
//! default (when unset or empty / when unset), `:?` / `?` fail with a message, `:+` / `+`
//! substitute a replacement (when set and non-empty / when set). Defaults, messages and
//! replacements are themselves interpolated, so `${A:-${B:-c}}` nests.

use crate::yaml::{Node, Value};

/// Why a template could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolateError {
    #[error("invalid interpolation format in {template:?}")]
    InvalidTemplate { template: String },
    #[error("required variable {name} is missing a value: {message}")]
    Required { name: String, message: String },
}

/// Interpolates one template. `lookup` gives a variable's value (None when unset); `unset`
/// is told every variable that was substituted without a value (Docker Compose warns).
pub fn interpolate(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut dyn FnMut(&str),
) -> Result<String, InterpolateError> {
    if !template.contains('$') {
        return Ok(template.to_string());
    }
    let b = template.as_bytes();
    let mut out = String::with_capacity(template.len());
    let mut i = 0;
    let invalid = || InterpolateError::InvalidTemplate {
        template: template.to_string(),
    };
    while i < b.len() {
        let Some(off) = template[i..].find('$') else {
            out.push_str(&template[i..]);
            break;
        };
        out.push_str(&template[i..i + off]);
        i += off + 1;
        match b.get(i) {
            Some(b'$') => {
                out.push('$');
                i += 1;
            }
            Some(b'{') => {
                let start = i + 1;
                let end = matching_brace(b, start).ok_or_else(invalid)?;
                out.push_str(&braced(&template[start..end], template, lookup, unset)?);
                i = end + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let name = &template[start..i];
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => unset(name),
                }
            }
            _ => return Err(invalid()),
        }
    }
    Ok(out)
}

/// Index of the `}` closing a `${` whose content starts at `start`, honouring nesting.
fn matching_brace(b: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' => {
                if depth == 0 {
                    return Some(i);
                }
                depth -= 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn braced(
    inner: &str,
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut dyn FnMut(&str),
) -> Result<String, InterpolateError> {
    let invalid = || InterpolateError::InvalidTemplate {
        template: template.to_string(),
    };
    let b = inner.as_bytes();
    let mut n = 0;
    while n < b.len() && (b[n].is_ascii_alphanumeric() || b[n] == b'_' || b[n] == b'.') {
        n += 1;
    }
    if n == 0 || b[0].is_ascii_digit() {
        return Err(invalid());
    }
    let name = &inner[..n];
    let rest = &inner[n..];
    let value = lookup(name);
    let (op, arg) = if rest.is_empty() {
        ("", "")
    } else if let Some(a) = rest.strip_prefix(":-") {
        (":-", a)
    } else if let Some(a) = rest.strip_prefix(":?") {
        (":?", a)
    } else if let Some(a) = rest.strip_prefix(":+") {
        (":+", a)
    } else if let Some(a) = rest.strip_prefix('-') {
        ("-", a)
    } else if let Some(a) = rest.strip_prefix('?') {
        ("?", a)
    } else if let Some(a) = rest.strip_prefix('+') {
        ("+", a)
    } else {
        return Err(invalid());
    };
    let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
    match op {
        "" => Ok(value.unwrap_or_else(|| {
            unset(name);
            String::new()
        })),
        ":-" if !set_nonempty => interpolate(arg, lookup, unset),
        "-" if value.is_none() => interpolate(arg, lookup, unset),
        ":-" | "-" => Ok(value.unwrap_or_default()),
        ":?" if !set_nonempty => Err(InterpolateError::Required {
            name: name.to_string(),
            message: interpolate(arg, lookup, unset)?,
        }),
        "?" if value.is_none() => Err(InterpolateError::Required {
            name: name.to_string(),
            message: interpolate(arg, lookup, unset)?,
        }),
        ":?" | "?" => Ok(value.unwrap_or_default()),
        ":+" if set_nonempty => interpolate(arg, lookup, unset),
        "+" if value.is_some() => interpolate(arg, lookup, unset),
        _ => Ok(String::new()),
    }
}

/// An interpolation error at a place in the tree.
#[derive(Debug, thiserror::Error)]
#[error("{span}: {path}: {source}")]
pub struct TreeError {
    pub span: crate::yaml::Span,
    pub path: String,
    pub source: InterpolateError,
}

/// Interpolates every scalar of a tree in place (values, not keys). Interpolated scalars
/// become text (typing casts `${PORT}` to a number where one is expected).
pub fn interpolate_tree(
    node: &mut Node,
    path: &mut Vec<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut dyn FnMut(&str),
) -> Result<(), Box<TreeError>> {
    match &mut node.value {
        Value::Scalar { text, plain } => {
            if text.contains('$') {
                match interpolate(text, lookup, unset) {
                    Ok(v) => {
                        // Interpolated values are text, as in compose-go; typing casts them.
                        *text = v;
                        *plain = false;
                    }
                    Err(source) => {
                        return Err(Box::new(TreeError {
                            span: node.span.clone(),
                            path: path.join("."),
                            source,
                        }))
                    }
                }
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(format!("[{i}]"));
                let r = interpolate_tree(item, path, lookup, unset);
                path.pop();
                r?;
            }
        }
        Value::Map(m) => {
            for (k, v) in m.iter_mut() {
                path.push(k.clone());
                let r = interpolate_tree(v, path, lookup, unset);
                path.pop();
                r?;
            }
        }
        Value::Null => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn run(t: &str, vars: &[(&str, &str)]) -> Result<String, InterpolateError> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        interpolate(t, &|k| m.get(k).cloned(), &mut |_| {})
    }

    #[test]
    fn forms() {
        let v = [("A", "a"), ("E", "")];
        assert_eq!(run("$A ${A} $$A", &v).unwrap(), "a a $A");
        assert_eq!(run("${U:-d} ${E:-d} ${E-d} ${U-d}", &v).unwrap(), "d d  d");
        assert_eq!(run("${A:+x} ${E:+x} ${E+x} ${U+x}", &v).unwrap(), "x  x ");
        assert_eq!(run("${U:-${A}-${V:-z}}", &v).unwrap(), "a-z");
        assert_eq!(run("${A:?boom}", &v).unwrap(), "a");
        assert!(matches!(
            run("${E:?boom}", &v),
            Err(InterpolateError::Required { .. })
        ));
        assert_eq!(run("${E?boom}", &v).unwrap(), "");
        assert!(run("${U?boom $A}", &v)
            .unwrap_err()
            .to_string()
            .contains("boom a"));
        assert!(run("${A", &v).is_err());
        assert!(run("$1", &v).is_err());
        assert!(run("${}", &v).is_err());
        assert_eq!(run("x$A.y", &v).unwrap(), "xa.y");
    }

    #[test]
    fn unset_variables_are_reported() {
        let mut seen = vec![];
        let out = interpolate("${X}$Y${Z:-1}", &|_| None, &mut |n| {
            seen.push(n.to_string())
        });
        assert_eq!(out.unwrap(), "1");
        assert_eq!(seen, ["X", "Y"]);
    }

    proptest! {
        /// Text without `$` is left alone.
        #[test]
        fn no_dollar_is_identity(s in "[^$]*") {
            prop_assert_eq!(run(&s, &[]).unwrap(), s);
        }

        /// `$$` escapes: doubling every `$` of any text gives the text back.
        #[test]
        fn escaped_text_round_trips(s in ".*") {
            prop_assert_eq!(run(&s.replace('$', "$$"), &[]).unwrap(), s);
        }

        /// A set variable substitutes its value in all forms, whatever the default.
        #[test]
        fn set_variable_wins(v in "[a-z0-9 ]{1,8}", d in "[a-z0-9]{0,8}") {
            let vars = [("V", v.as_str())];
            prop_assert_eq!(run("$V", &vars).unwrap(), v.clone());
            prop_assert_eq!(run(&format!("${{V:-{d}}}"), &vars).unwrap(), v.clone());
            prop_assert_eq!(run(&format!("${{V-{d}}}"), &vars).unwrap(), v.clone());
            prop_assert_eq!(run(&format!("${{V:+{d}}}"), &vars).unwrap(), d.clone());
            prop_assert_eq!(run(&format!("${{U:-{d}}}"), &vars).unwrap(), d);
        }

        /// Nesting defaults to any depth resolves to the innermost default.
        #[test]
        fn nested_defaults(depth in 1usize..20, d in "[a-z]{1,5}") {
            let mut t = d.clone();
            for _ in 0..depth { t = format!("${{U:-{t}}}"); }
            prop_assert_eq!(run(&t, &[]).unwrap(), d);
        }

        /// Arbitrary input never panics.
        #[test]
        fn never_panics(s in "[${}:?+\\-a-zA-Z_0-9 ]{0,40}") {
            let _ = run(&s, &[("a", "1")]);
        }
    }
}
