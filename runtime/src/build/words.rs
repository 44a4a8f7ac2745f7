//! Dockerfile words: splitting an instruction's arguments on unquoted whitespace, and Docker's
//! variable substitution with quote removal (`$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR:+word}`,
//! `${VAR-word}`, `${VAR+word}`). The parser keeps words raw; the executor expands them with
//! the stage's environment (ENV over ARG) when it reaches the instruction, as Docker does.

use std::collections::BTreeMap;

/// Split on whitespace that is outside quotes, keeping quotes and escapes in the words (the
/// expansion removes them later).
pub fn split_words(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == escape && quote != Some('\'') {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
            in_word = true;
            continue;
        }
        match quote {
            Some(q) => {
                cur.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                if c == '"' || c == '\'' {
                    quote = Some(c);
                }
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// Substitute variables and remove quotes and escapes from one word. `Err` carries a message
/// for the caller to place (file, line, instruction).
pub fn expand(word: &str, env: &BTreeMap<String, String>, escape: char) -> Result<String, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        if quote == Some('\'') {
            if c == '\'' {
                quote = None;
            } else {
                out.push(c);
            }
            i += 1;
            continue;
        }
        if c == escape {
            if let Some(&n) = chars.get(i + 1) {
                // Inside double quotes an escape only escapes what the shell would.
                if quote == Some('"') && !matches!(n, '"' | '$') && n != escape {
                    out.push(c);
                }
                out.push(n);
                i += 2;
            } else {
                out.push(c);
                i += 1;
            }
            continue;
        }
        match c {
            '"' if quote.is_none() => quote = Some('"'),
            '"' if quote == Some('"') => quote = None,
            '\'' if quote.is_none() => quote = Some('\''),
            '$' => {
                let (value, used) = variable(&chars[i + 1..], env, escape)?;
                out.push_str(&value);
                i += used;
            }
            _ => out.push(c),
        }
        i += 1;
    }
    if let Some(q) = quote {
        return Err(format!("unterminated {q} quote in {word:?}"));
    }
    Ok(out)
}

/// Substitute variables only (no quote processing): the words of a JSON-form COPY/ADD.
pub fn expand_vars(word: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '$' {
            let (value, used) = variable(&chars[i + 1..], env, '\\')?;
            out.push_str(&value);
            i += used + 1;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// A variable reference after `$`: returns its value and how many chars it used.
fn variable(
    rest: &[char],
    env: &BTreeMap<String, String>,
    escape: char,
) -> Result<(String, usize), String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    match rest.first() {
        Some('{') => {
            let close = find_close(rest).ok_or_else(|| {
                format!(
                    "missing '}}' in ${}",
                    rest.iter().take(20).collect::<String>()
                )
            })?;
            let inner: String = rest[1..close].iter().collect();
            let name_len = inner.chars().take_while(|c| is_name(*c)).count();
            let name = &inner[..name_len];
            if name.is_empty() {
                return Err(format!("bad substitution ${{{inner}}}"));
            }
            let op = &inner[name_len..];
            let value = env.get(name);
            let sub = |w: &str| expand(w, env, escape);
            let v = if op.is_empty() {
                value.cloned().unwrap_or_default()
            } else if let Some(w) = op.strip_prefix(":-") {
                match value {
                    Some(v) if !v.is_empty() => v.clone(),
                    _ => sub(w)?,
                }
            } else if let Some(w) = op.strip_prefix(":+") {
                match value {
                    Some(v) if !v.is_empty() => sub(w)?,
                    _ => String::new(),
                }
            } else if let Some(w) = op.strip_prefix('-') {
                match value {
                    Some(v) => v.clone(),
                    None => sub(w)?,
                }
            } else if let Some(w) = op.strip_prefix('+') {
                match value {
                    Some(_) => sub(w)?,
                    None => String::new(),
                }
            } else if let Some(w) = op.strip_prefix(":?") {
                match value {
                    Some(v) if !v.is_empty() => v.clone(),
                    _ => return Err(format!("{name}: {}", sub(w)?)),
                }
            } else {
                return Err(format!(
                    "unsupported modifier ({op}) in substitution ${{{inner}}}"
                ));
            };
            Ok((v, close + 1))
        }
        Some(c) if is_name(*c) && !c.is_ascii_digit() => {
            let n = rest.iter().take_while(|c| is_name(**c)).count();
            let name: String = rest[..n].iter().collect();
            Ok((env.get(&name).cloned().unwrap_or_default(), n))
        }
        // A lone `$` stays itself.
        _ => Ok(("$".to_string(), 0)),
    }
}

fn find_close(rest: &[char]) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in rest.iter().enumerate() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Split `KEY=value` words (ENV, LABEL, ARG); the value stays raw.
pub fn split_kv(word: &str) -> Option<(&str, &str)> {
    word.split_once('=')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("A", "1"), ("EMPTY", ""), ("NAME", "web")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn splits_on_unquoted_whitespace() {
        assert_eq!(
            split_words(r#"A=1 B="x y" C='p q' D=a\ b"#, '\\'),
            vec!["A=1", r#"B="x y""#, "C='p q'", r"D=a\ b"]
        );
        assert_eq!(split_words("  a   b ", '\\'), vec!["a", "b"]);
    }

    #[test]
    fn expands_variables_and_modifiers() {
        let e = env();
        let x = |s: &str| expand(s, &e, '\\').unwrap();
        assert_eq!(x("$A-${NAME}"), "1-web");
        assert_eq!(x("${MISSING:-def}"), "def");
        assert_eq!(x("${EMPTY:-def}"), "def");
        assert_eq!(x("${EMPTY-def}"), "");
        assert_eq!(x("${A:+set}"), "set");
        assert_eq!(x("${MISSING:+set}"), "");
        assert_eq!(x("${MISSING:-${NAME}}"), "web");
        assert_eq!(x(r#""a $A b""#), "a 1 b");
        assert_eq!(x("'$A'"), "$A");
        assert_eq!(x(r"\$A"), "$A");
        assert_eq!(x("cost$"), "cost$");
        assert!(expand("${A", &e, '\\').is_err());
        assert!(expand("${MISSING:?is required}", &e, '\\')
            .unwrap_err()
            .contains("is required"));
    }

    #[test]
    fn backtick_escape_keeps_backslashes() {
        assert_eq!(expand(r"C:\dir`$A", &env(), '`').unwrap(), r"C:\dir$A");
    }
}
