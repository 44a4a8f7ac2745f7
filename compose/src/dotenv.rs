//! `.env` files (the project's, `--env-file`, and a service's `env_file`), in Docker Compose's
//! syntax: `KEY=VALUE`, optional `export `, `#` comments, single quotes (literal), double quotes
//! (escapes and interpolation), unquoted values (trimmed, ` #` starts a comment, interpolated).
//! Values may refer to variables set earlier in the same file or in the environment.

use indexmap::IndexMap;

use crate::interpolate::{interpolate, InterpolateError};

/// Why an env file did not parse.
#[derive(Debug, thiserror::Error)]
pub enum DotenvError {
    #[error("{file}:{line}: invalid variable name {name:?}")]
    BadName {
        file: String,
        line: usize,
        name: String,
    },
    #[error("{file}:{line}: unterminated quoted value")]
    Unterminated { file: String, line: usize },
    #[error("{file}:{line}: {source}")]
    Interpolate {
        file: String,
        line: usize,
        source: InterpolateError,
    },
}

/// Parses env-file text. `lookup` resolves variables not set earlier in the file; a bare
/// `KEY` line takes its value from `lookup` (and is skipped when unset).
pub fn parse(
    text: &str,
    file: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, DotenvError> {
    let mut out: IndexMap<String, String> = IndexMap::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut idx = 0;
    while idx < lines.len() {
        let lineno = idx + 1;
        let raw = lines[idx];
        idx += 1;
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let (key, value) = match line.find(['=', ':']) {
            Some(p) => (line[..p].trim(), Some(&line[p + 1..])),
            None => (line.trim(), None),
        };
        if key.is_empty()
            || key.chars().any(|c| c.is_whitespace() || c == '#')
            || key.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(DotenvError::BadName {
                file: file.to_string(),
                line: lineno,
                name: key.to_string(),
            });
        }
        let Some(value) = value else {
            if let Some(v) = out.get(key).cloned().or_else(|| lookup(key)) {
                out.insert(key.to_string(), v);
            }
            continue;
        };
        let value = value.trim_start();
        let lk = |k: &str| lookup(k).or_else(|| out.get(k).cloned());
        let interp = |s: &str| {
            interpolate(s, &lk, &mut |_| {}).map_err(|source| DotenvError::Interpolate {
                file: file.to_string(),
                line: lineno,
                source,
            })
        };
        let parsed = if let Some(rest) = value.strip_prefix('\'') {
            let mut acc = rest.to_string();
            loop {
                if let Some(end) = acc.find('\'') {
                    acc.truncate(end);
                    break acc;
                }
                if idx >= lines.len() {
                    return Err(DotenvError::Unterminated {
                        file: file.to_string(),
                        line: lineno,
                    });
                }
                acc.push('\n');
                acc.push_str(lines[idx]);
                idx += 1;
            }
        } else if let Some(rest) = value.strip_prefix('"') {
            let mut acc = rest.to_string();
            let body = loop {
                if let Some(end) = closing_double_quote(&acc) {
                    acc.truncate(end);
                    break acc;
                }
                if idx >= lines.len() {
                    return Err(DotenvError::Unterminated {
                        file: file.to_string(),
                        line: lineno,
                    });
                }
                acc.push('\n');
                acc.push_str(lines[idx]);
                idx += 1;
            };
            interp(&unescape(&body))?
        } else {
            let v = match value.find(" #") {
                Some(p) => &value[..p],
                None => value,
            };
            interp(v.trim_end())?
        };
        out.insert(key.to_string(), parsed);
    }
    Ok(out)
}

fn closing_double_quote(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('$') => out.push_str("$$"),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let text = "# c\nA=1\nexport B = two words # note\nC='lit $A'\nD=\"x\\ny $A\"\nE=${A}${F:-f}\nHOME\n";
        let m = parse(text, ".env", &|k| (k == "HOME").then(|| "/h".to_string())).unwrap();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "two words");
        assert_eq!(m["C"], "lit $A");
        assert_eq!(m["D"], "x\ny 1");
        assert_eq!(m["E"], "1f");
        assert_eq!(m["HOME"], "/h");
    }

    #[test]
    fn bad_name() {
        assert!(parse("A B=1\n", ".env", &|_| None).is_err());
    }
}
