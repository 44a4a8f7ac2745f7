//! `.dockerignore` and path globs. The build context is the folder minus what `.dockerignore`
//! excludes, with Docker's rules (moby/patternmatcher): patterns are relative to the context
//! root (a leading `/` is dropped, paths are cleaned), `*` and `?` stay within one path segment,
//! `**` matches any number of segments, `[a-z]` classes and `\` escapes work, a pattern that
//! matches a folder excludes everything under it, and `!pattern` re-includes; the last matching
//! pattern wins. COPY/ADD source globs use the same segment matcher.

/// One compiled `.dockerignore` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    segments: Vec<String>,
    exclusion: bool,
}

/// The patterns of a `.dockerignore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    /// Parse `.dockerignore` text (comments start with `#`; blank lines ignored).
    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (exclusion, p) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let cleaned = clean(p);
            if cleaned.is_empty() {
                continue;
            }
            patterns.push(Pattern {
                segments: cleaned.split('/').map(String::from).collect(),
                exclusion,
            });
        }
        Ignore { patterns }
    }

    /// Whether a context-relative path (`a/b/c`, `/`-separated) is excluded.
    pub fn excluded(&self, path: &str) -> bool {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut excluded = false;
        for p in &self.patterns {
            // A pattern matching a parent folder matches everything below it.
            let hit = (1..=segs.len()).any(|n| match_segments(&p.segments, &segs[..n]));
            if hit {
                excluded = !p.exclusion;
            }
        }
        excluded
    }

    /// Whether some `!` pattern could re-include something below `dir` (then the walk must
    /// descend into an excluded folder).
    pub fn may_reinclude_under(&self, dir: &str) -> bool {
        let segs: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
        self.patterns.iter().any(|p| {
            p.exclusion
                && (p.segments.iter().any(|s| s.contains("**"))
                    || p.segments.len() > segs.len()
                        && match_segments(&p.segments[..segs.len()], &segs))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// Lexically clean a path as Go's filepath.Clean, relative, without a leading `/`.
pub fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for s in p.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

/// Match pattern segments against path segments (`**` spans any number of segments).
pub fn match_segments(pat: &[String], path: &[&str]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_segments(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((p, prest)) => glob_segment(first, p) && match_segments(rest, prest),
            None => false,
        },
    }
}

/// Whether a word has glob characters.
pub fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Go's filepath.Match for one segment: `*`, `?`, `[...]` (with `^`/`!` negation and ranges),
/// `\` escapes.
pub fn glob_segment(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_at(&p, &n)
}

fn glob_at(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => {
            // `**` inside a segment behaves as `*`.
            let rest = &p[1..];
            (0..=n.len()).any(|k| glob_at(rest, &n[k..]))
        }
        Some('?') => !n.is_empty() && glob_at(&p[1..], &n[1..]),
        Some('[') => {
            let Some(c) = n.first() else { return false };
            let mut i = 1;
            let negate = matches!(p.get(1), Some('^' | '!'));
            if negate {
                i += 1;
            }
            let mut matched = false;
            let mut first = true;
            while i < p.len() && (p[i] != ']' || first) {
                first = false;
                let mut lo = p[i];
                if lo == '\\' && i + 1 < p.len() {
                    i += 1;
                    lo = p[i];
                }
                let mut hi = lo;
                if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|c| *c != ']') {
                    hi = p[i + 2];
                    i += 2;
                }
                if lo <= *c && *c <= hi {
                    matched = true;
                }
                i += 1;
            }
            if i >= p.len() {
                // Unterminated class: no match (Go reports ErrBadPattern).
                return false;
            }
            matched != negate && glob_at(&p[i + 1..], &n[1..])
        }
        Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && glob_at(&p[2..], &n[1..]),
        Some(c) => n.first() == Some(c) && glob_at(&p[1..], &n[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_ignore_rules() {
        let ig = Ignore::parse(
            "# comment\n\n*.log\n/secret\nbuild/\n**/*.tmp\n!keep.log\ndocs/**/draft*\nnode_modules\n!node_modules/keep\n",
        );
        assert!(ig.excluded("a.log"));
        assert!(!ig.excluded("dir/a.log"), "* does not cross folders");
        assert!(!ig.excluded("keep.log"), "! re-includes");
        assert!(ig.excluded("secret"));
        assert!(
            ig.excluded("secret/inner/file"),
            "a folder excludes its content"
        );
        assert!(ig.excluded("build/out.bin"));
        assert!(ig.excluded("x/y/z.tmp"));
        assert!(ig.excluded("z.tmp"), "** matches zero folders");
        assert!(ig.excluded("docs/a/b/draft1.md"));
        assert!(!ig.excluded("docs/a/final.md"));
        assert!(ig.excluded("node_modules/x"));
        assert!(!ig.excluded("node_modules/keep"));
        assert!(ig.may_reinclude_under("node_modules"));
        assert!(!ig.may_reinclude_under("build"));
        assert!(!ig.excluded("src/main.rs"));
    }

    #[test]
    fn segment_globs() {
        assert!(glob_segment("*.rs", "main.rs"));
        assert!(!glob_segment("*.rs", "main.rc"));
        assert!(glob_segment("file?.txt", "file1.txt"));
        assert!(glob_segment("[a-c]x", "bx"));
        assert!(!glob_segment("[^a-c]x", "bx"));
        assert!(glob_segment(r"a\*b", "a*b"));
        assert!(!glob_segment(r"a\*b", "axb"));
        assert_eq!(clean("/./a//b/../c/"), "a/c");
    }
}
