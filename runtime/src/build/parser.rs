//! Dockerfile → stages of instructions. First step of a build: parser directives (`# escape=`,
//! `# syntax=` ignored), comments, line continuations, heredocs (`RUN <<EOF`, `COPY <<EOF`),
//! flags (`--from=`, `--chown=`, ...), JSON (exec) and shell forms. Words stay raw here: the
//! executor substitutes variables when it reaches each instruction, with the stage's values.
//! Errors name the file, line and instruction and say how to fix it.

use super::words::split_words;
use super::BuildError;

/// The instructions Docker knows.
pub const INSTRUCTIONS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "ARG",
    "LABEL",
    "EXPOSE",
    "WORKDIR",
    "USER",
    "VOLUME",
    "COPY",
    "ADD",
    "SHELL",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "ONBUILD",
    "MAINTAINER",
];

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// How errors name the file (`Dockerfile`, `web/Dockerfile.dev`, `<inline>`).
    pub name: String,
    pub escape: char,
    /// ARGs before the first FROM (usable in FROM lines, re-declarable in stages).
    pub global_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
}

/// One `FROM` and what follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub index: usize,
    /// `AS name`, lowercased (Docker's stage names are case-insensitive).
    pub name: Option<String>,
    /// The raw image word (`alpine:${V}`, `scratch`, a stage name).
    pub base: String,
    pub platform: Option<String>,
    pub line: usize,
    pub instructions: Vec<Instruction>,
}

/// One instruction with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    pub line: usize,
    /// The instruction as written (continuations joined), for messages and history.
    pub text: String,
    pub kind: Kind,
}

impl Instruction {
    pub fn keyword(&self) -> &'static str {
        match &self.kind {
            Kind::From { .. } => "FROM",
            Kind::Run { .. } => "RUN",
            Kind::Cmd(_) => "CMD",
            Kind::Entrypoint(_) => "ENTRYPOINT",
            Kind::Env(_) => "ENV",
            Kind::Arg(_) => "ARG",
            Kind::Label(_) => "LABEL",
            Kind::Expose(_) => "EXPOSE",
            Kind::Workdir(_) => "WORKDIR",
            Kind::User(_) => "USER",
            Kind::Volume(_) => "VOLUME",
            Kind::Copy(c) if c.add => "ADD",
            Kind::Copy(_) => "COPY",
            Kind::Shell(_) => "SHELL",
            Kind::StopSignal(_) => "STOPSIGNAL",
            Kind::Healthcheck(_) => "HEALTHCHECK",
            Kind::Onbuild(_) => "ONBUILD",
            Kind::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// Shell form (run through the stage's SHELL) or exec form (JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    From {
        base: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Run {
        command: Command,
        /// `RUN <<EOF` with nothing else: the heredoc body is the script.
        script: Option<String>,
        network: Option<String>,
        /// `--mount=type=cache|bind|tmpfs,...`
        mounts: Vec<RunMount>,
    },
    Cmd(Command),
    Entrypoint(Command),
    /// Raw `KEY=value` pairs (value unexpanded).
    Env(Vec<(String, String)>),
    /// Names with optional raw defaults.
    Arg(Vec<(String, Option<String>)>),
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
    Workdir(String),
    User(String),
    Volume(Vec<String>),
    Copy(CopySpec),
    Shell(Vec<String>),
    StopSignal(String),
    /// `None` is `HEALTHCHECK NONE`.
    Healthcheck(Option<HealthSpec>),
    /// The trigger instruction, stored in the image config.
    Onbuild(String),
    Maintainer(String),
}

/// A `RUN --mount`: present while the command runs, never part of the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMount {
    /// A folder kept between builds (package caches), shared by `id` (default: the target).
    Cache {
        target: String,
        id: Option<String>,
        uid: Option<u32>,
        gid: Option<u32>,
        mode: Option<u32>,
        read_only: bool,
    },
    /// A file or folder of the context (or of a stage / named context with `from`),
    /// read-only.
    Bind {
        target: String,
        source: String,
        from: Option<String>,
    },
    Tmpfs {
        target: String,
        size: Option<u64>,
    },
}

/// Parse one `--mount` value (`type=cache,target=/root/.cache,id=pip`).
fn parse_mount(v: &str) -> Result<RunMount, String> {
    let mut kv: Vec<(String, String)> = Vec::new();
    for part in v.split(',').filter(|p| !p.is_empty()) {
        let (k, val) = part.split_once('=').unwrap_or((part, "true"));
        kv.push((k.trim().to_ascii_lowercase(), val.trim().to_string()));
    }
    let get = |names: &[&str]| {
        kv.iter()
            .rev()
            .find(|(k, _)| names.contains(&k.as_str()))
            .map(|(_, v)| v.clone())
    };
    let truthy = |names: &[&str]| get(names).is_some_and(|v| v != "false");
    let num = |name: &str, radix: u32| -> Result<Option<u32>, String> {
        get(&[name])
            .map(|s| {
                u32::from_str_radix(&s, radix)
                    .map_err(|_| format!("--mount {name}={s}: not a number"))
            })
            .transpose()
    };
    let kind = get(&["type"]).unwrap_or_else(|| "bind".into());
    let target = get(&["target", "dst", "destination"]);
    let need_target = || {
        target
            .clone()
            .ok_or_else(|| format!("--mount type={kind} needs target=<path>"))
    };
    match kind.as_str() {
        "cache" => Ok(RunMount::Cache {
            target: need_target()?,
            id: get(&["id"]),
            uid: num("uid", 10)?,
            gid: num("gid", 10)?,
            mode: num("mode", 8)?,
            read_only: truthy(&["ro", "readonly"]),
        }),
        "bind" => {
            if truthy(&["rw", "readwrite"]) {
                return Err("--mount type=bind,rw is not supported (binds are read-only here)".into());
            }
            Ok(RunMount::Bind {
                target: need_target()?,
                source: get(&["source", "src"]).unwrap_or_else(|| ".".into()),
                from: get(&["from"]),
            })
        }
        "tmpfs" => Ok(RunMount::Tmpfs {
            target: need_target()?,
            size: get(&["size"]).and_then(|s| s.parse().ok()),
        }),
        "secret" | "ssh" => Err(format!(
            "--mount type={kind} is not supported by rcompose's builder (no build secrets or ssh forwarding)"
        )),
        other => Err(format!("--mount type={other}: expected cache, bind or tmpfs")),
    }
}

/// COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopySpec {
    pub add: bool,
    /// Raw source words (expanded later); `<<NAME` refers to a heredoc in `heredocs`.
    pub sources: Vec<String>,
    pub dest: String,
    /// Whether the words came from the JSON form (no quote removal).
    pub json: bool,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub heredocs: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthSpec {
    pub command: Vec<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<String>,
}

struct Logical {
    line: usize,
    text: String,
    heredocs: Vec<(String, String)>,
}

/// Parse a Dockerfile's text; `name` is how errors refer to it.
pub fn parse(name: &str, text: &str) -> Result<Dockerfile, BuildError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut escape = '\\';
    // Parser directives: only at the very top, before any instruction, comment or blank.
    let mut first = 0;
    while first < lines.len() {
        let l = lines[first].trim();
        let Some(d) = l.strip_prefix('#') else { break };
        let Some((k, v)) = d.split_once('=') else {
            break;
        };
        let k = k.trim().to_ascii_lowercase();
        if k.contains(char::is_whitespace) || k.is_empty() {
            break;
        }
        // `syntax` names a BuildKit frontend (we are the frontend); `check` tunes lints.
        if k == "escape" {
            match v.trim() {
                "\\" => escape = '\\',
                "`" => escape = '`',
                other => {
                    return Err(perr(
                        name,
                        first + 1,
                        "# escape",
                        format!("invalid escape character {other:?}: use \\ or `"),
                    ))
                }
            }
        }
        first += 1;
    }
    let logical = logical_lines(&lines, first, escape);
    let mut df = Dockerfile {
        name: name.to_string(),
        escape,
        global_args: Vec::new(),
        stages: Vec::new(),
    };
    for l in logical {
        let ins = parse_instruction(name, &l, escape)?;
        match (&ins.kind, df.stages.last_mut()) {
            (Kind::From {
                base,
                name: sname,
                platform,
            }, _) => {
                if let Some(n) = sname {
                    if df.stages.iter().any(|s| s.name.as_deref() == Some(n)) {
                        return Err(perr(
                            name,
                            ins.line,
                            "FROM",
                            format!("duplicate stage name {n:?}: give each stage its own name"),
                        ));
                    }
                }
                df.stages.push(Stage {
                    index: df.stages.len(),
                    name: sname.clone(),
                    base: base.clone(),
                    platform: platform.clone(),
                    line: ins.line,
                    instructions: Vec::new(),
                });
            }
            (Kind::Arg(_), None) => df.global_args.push(ins),
            (_, None) => {
                return Err(perr(
                    name,
                    ins.line,
                    ins.keyword(),
                    format!(
                        "{} before the first FROM: a Dockerfile must start with FROM (only ARG may come before it)",
                        ins.keyword()
                    ),
                ))
            }
            (_, Some(stage)) => stage.instructions.push(ins),
        }
    }
    if df.stages.is_empty() {
        return Err(perr(
            name,
            lines.len().max(1),
            "FROM",
            "no FROM instruction: add `FROM <image>` (or `FROM scratch`)".into(),
        ));
    }
    Ok(df)
}

fn perr(file: &str, line: usize, instruction: &str, message: String) -> BuildError {
    BuildError::Parse {
        file: file.to_string(),
        line,
        instruction: instruction.to_string(),
        message,
    }
}

/// Join continuation lines, drop comments and blanks, collect heredoc bodies.
fn logical_lines(lines: &[&str], first: usize, escape: char) -> Vec<Logical> {
    let mut out = Vec::new();
    let mut i = first;
    while i < lines.len() {
        let raw = lines[i];
        let t = raw.trim_start();
        if t.is_empty() || t.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut text = String::new();
        let mut cur = raw.trim_end();
        loop {
            if let Some(stripped) = cur.strip_suffix(escape) {
                text.push_str(stripped);
                i += 1;
                // Comments and blank lines inside a continuation are skipped.
                while i < lines.len() {
                    let n = lines[i].trim_start();
                    if n.starts_with('#') || n.trim().is_empty() {
                        i += 1;
                    } else {
                        break;
                    }
                }
                if i >= lines.len() {
                    break;
                }
                cur = lines[i].trim_end();
            } else {
                text.push_str(cur);
                i += 1;
                break;
            }
        }
        let mut heredocs = Vec::new();
        let keyword = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
            for (word, strip_tabs) in heredoc_markers(&text) {
                let mut body = String::new();
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let cmp = if strip_tabs {
                        l.trim_start_matches('\t')
                    } else {
                        l
                    };
                    if cmp == word {
                        break;
                    }
                    body.push_str(if strip_tabs { cmp } else { l });
                    body.push('\n');
                }
                heredocs.push((word, body));
            }
        }
        out.push(Logical {
            line: start,
            text,
            heredocs,
        });
    }
    out
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"` markers on an instruction line: (word, strip leading tabs).
fn heredoc_markers(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(p) = rest.find("<<") {
        let mut after = &rest[p + 2..];
        let strip = after.starts_with('-');
        if strip {
            after = &after[1..];
        }
        let after = after.trim_start_matches(['"', '\'']);
        let word: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !word.is_empty() {
            out.push((word, strip));
        }
        rest = &rest[p + 2..];
    }
    out
}

/// Parse a JSON array of strings (exec form), or None for the shell form.
fn json_array(s: &str) -> Option<Vec<String>> {
    let t = s.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

/// Leading `--name=value` flags.
fn take_flags(rest: &str) -> (Vec<(String, String)>, &str) {
    let mut flags = Vec::new();
    let mut r = rest.trim_start();
    while let Some(f) = r.strip_prefix("--") {
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        let word = &f[..end];
        let (k, v) = word.split_once('=').unwrap_or((word, ""));
        flags.push((k.to_ascii_lowercase(), v.to_string()));
        r = f[end..].trim_start();
    }
    (flags, r)
}

fn command(rest: &str) -> Command {
    match json_array(rest) {
        Some(v) => Command::Exec(v),
        None => Command::Shell(rest.trim().to_string()),
    }
}

fn parse_instruction(file: &str, l: &Logical, escape: char) -> Result<Instruction, BuildError> {
    let text = l.text.trim();
    let (kw, rest) = text
        .split_once(char::is_whitespace)
        .map(|(k, r)| (k, r.trim()))
        .unwrap_or((text, ""));
    let keyword = kw.to_ascii_uppercase();
    let err = |message: String| perr(file, l.line, &keyword, message);
    if !INSTRUCTIONS.contains(&keyword.as_str()) {
        let hint = suggest(&keyword)
            .map(|s| format!(" — did you mean {s}?"))
            .unwrap_or_else(|| format!(" (known: {})", INSTRUCTIONS.join(", ")));
        return Err(err(format!("unknown instruction {kw}{hint}")));
    }
    let need_args = |what: &str| -> Result<(), BuildError> {
        if rest.is_empty() {
            Err(err(format!("{keyword} requires {what}")))
        } else {
            Ok(())
        }
    };
    let (flags, body) = take_flags(rest);
    let allowed: &[&str] = match keyword.as_str() {
        "FROM" => &["platform"],
        "RUN" => &["network", "mount", "security"],
        "COPY" => &["from", "chown", "chmod", "link", "parents", "exclude"],
        "ADD" => &[
            "chown",
            "chmod",
            "link",
            "checksum",
            "keep-git-dir",
            "exclude",
        ],
        "HEALTHCHECK" => &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
        _ => &[],
    };
    for (k, _) in &flags {
        if !allowed.contains(&k.as_str()) {
            let list = if allowed.is_empty() {
                "it takes no flags".to_string()
            } else {
                format!("known flags: --{}", allowed.join(", --"))
            };
            return Err(err(format!("unknown flag --{k} for {keyword}: {list}")));
        }
    }
    let flag = |n: &str| {
        flags
            .iter()
            .rev()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    let kind = match keyword.as_str() {
        "FROM" => {
            need_args("an image: FROM <image>[:tag] [AS <name>]")?;
            let w: Vec<&str> = body.split_whitespace().collect();
            let name = match w.as_slice() {
                [_] => None,
                [_, as_, n] if as_.eq_ignore_ascii_case("as") => Some(n.to_ascii_lowercase()),
                _ => {
                    return Err(err(
                        "expected FROM [--platform=<platform>] <image> [AS <name>]".into(),
                    ))
                }
            };
            Kind::From {
                base: w[0].to_string(),
                name,
                platform: flag("platform"),
            }
        }
        "RUN" => {
            need_args("a command")?;
            if flag("security").is_some() {
                return Err(err(
                    "RUN --security is not supported by rcompose's builder: remove it".into(),
                ));
            }
            let mut mounts = Vec::new();
            for (k, v) in &flags {
                if k == "mount" {
                    mounts.push(parse_mount(v).map_err(err)?);
                }
            }
            let script = match (body.trim(), l.heredocs.as_slice()) {
                (b, [(word, content)])
                    if b.trim_start_matches("<<")
                        .trim_start_matches('-')
                        .trim_matches(['"', '\''])
                        == word =>
                {
                    Some(content.clone())
                }
                _ => None,
            };
            let command = if l.heredocs.is_empty() || script.is_some() {
                command(body)
            } else {
                // The heredocs go to the shell with the command line that reads them.
                let mut s = body.to_string();
                for (word, content) in &l.heredocs {
                    s.push('\n');
                    s.push_str(content);
                    s.push_str(word);
                }
                Command::Shell(s)
            };
            Kind::Run {
                command,
                script,
                network: flag("network"),
                mounts,
            }
        }
        "CMD" => {
            need_args("a command")?;
            Kind::Cmd(command(body))
        }
        "ENTRYPOINT" => {
            need_args("a command")?;
            Kind::Entrypoint(command(body))
        }
        "SHELL" => match json_array(body) {
            Some(v) if !v.is_empty() => Kind::Shell(v),
            _ => {
                return Err(err(
                    "SHELL requires the JSON form: SHELL [\"/bin/sh\", \"-c\"]".into(),
                ))
            }
        },
        "ENV" | "LABEL" => {
            need_args("KEY=value pairs")?;
            let words = split_words(body, escape);
            let pairs = if words.first().is_some_and(|w| !w.contains('=')) {
                if keyword == "LABEL" || words.len() < 2 {
                    return Err(err(format!(
                        "{keyword} {}: expected KEY=value (for example {keyword} {}=value)",
                        words[0], words[0]
                    )));
                }
                // The legacy `ENV KEY value with spaces` form.
                let (k, v) = body.split_once(char::is_whitespace).expect("two words");
                vec![(k.to_string(), v.trim().to_string())]
            } else {
                let mut pairs = Vec::new();
                for w in words {
                    let Some((k, v)) = w.split_once('=') else {
                        return Err(err(format!("{w}: expected KEY=value")));
                    };
                    if k.is_empty() {
                        return Err(err(format!("{w}: the name before = is empty")));
                    }
                    pairs.push((k.to_string(), v.to_string()));
                }
                pairs
            };
            if keyword == "ENV" {
                Kind::Env(pairs)
            } else {
                Kind::Label(pairs)
            }
        }
        "ARG" => {
            need_args("a name: ARG <name>[=<default>]")?;
            let mut args = Vec::new();
            for w in split_words(body, escape) {
                match w.split_once('=') {
                    Some((k, v)) => args.push((k.to_string(), Some(v.to_string()))),
                    None => args.push((w, None)),
                }
            }
            Kind::Arg(args)
        }
        "EXPOSE" => {
            need_args("a port: EXPOSE <port>[/<protocol>]")?;
            Kind::Expose(split_words(body, escape))
        }
        "WORKDIR" => {
            need_args("a path")?;
            Kind::Workdir(body.to_string())
        }
        "USER" => {
            need_args("a user: USER <user>[:<group>]")?;
            Kind::User(body.to_string())
        }
        "VOLUME" => {
            need_args("a path")?;
            Kind::Volume(json_array(body).unwrap_or_else(|| split_words(body, escape)))
        }
        "STOPSIGNAL" => {
            need_args("a signal")?;
            Kind::StopSignal(body.to_string())
        }
        "MAINTAINER" => Kind::Maintainer(body.to_string()),
        "ONBUILD" => {
            need_args("an instruction")?;
            let inner = body
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            if matches!(inner.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                return Err(err(format!("{inner} is not allowed as an ONBUILD trigger")));
            }
            if !INSTRUCTIONS.contains(&inner.as_str()) {
                return Err(err(format!("ONBUILD: unknown instruction {inner}")));
            }
            Kind::Onbuild(body.to_string())
        }
        "HEALTHCHECK" => {
            need_args("NONE or CMD <command>")?;
            let (head, cmd) = body
                .split_once(char::is_whitespace)
                .map(|(h, c)| (h, c.trim()))
                .unwrap_or((body, ""));
            match head.to_ascii_uppercase().as_str() {
                "NONE" if cmd.is_empty() && flags.is_empty() => Kind::Healthcheck(None),
                "NONE" => return Err(err("HEALTHCHECK NONE takes no arguments".into())),
                "CMD" if !cmd.is_empty() => {
                    let command = match json_array(cmd) {
                        Some(v) => {
                            let mut c = vec!["CMD".to_string()];
                            c.extend(v);
                            c
                        }
                        None => vec!["CMD-SHELL".to_string(), cmd.to_string()],
                    };
                    Kind::Healthcheck(Some(HealthSpec {
                        command,
                        interval: flag("interval"),
                        timeout: flag("timeout"),
                        start_period: flag("start-period"),
                        start_interval: flag("start-interval"),
                        retries: flag("retries"),
                    }))
                }
                _ => {
                    return Err(err(
                        "expected HEALTHCHECK [OPTIONS] CMD <command> or HEALTHCHECK NONE".into(),
                    ))
                }
            }
        }
        "COPY" | "ADD" => {
            need_args("sources and a destination")?;
            let (words, json) = match json_array(body) {
                Some(v) => (v, true),
                None => (split_words(body, escape), false),
            };
            if words.len() < 2 {
                return Err(err(format!(
                    "{keyword} requires at least one source and a destination: {keyword} <src>... <dest>"
                )));
            }
            let (dest, sources) = words.split_last().expect("two words");
            if keyword == "ADD" && flag("from").is_some() {
                return Err(err("ADD has no --from: use COPY --from".into()));
            }
            // --link only changes how BuildKit rebases layers: the content is the same here.
            for f in ["exclude", "parents", "checksum", "keep-git-dir"] {
                if flag(f).is_some() {
                    return Err(err(format!(
                        "{keyword} --{f} is not supported by rcompose's builder{}",
                        if f == "exclude" {
                            ": list the paths in .dockerignore instead"
                        } else {
                            ""
                        }
                    )));
                }
            }
            Kind::Copy(CopySpec {
                add: keyword == "ADD",
                sources: sources.to_vec(),
                dest: dest.clone(),
                json,
                from: flag("from"),
                chown: flag("chown"),
                chmod: flag("chmod"),
                heredocs: l.heredocs.clone(),
            })
        }
        _ => unreachable!("checked against INSTRUCTIONS"),
    };
    Ok(Instruction {
        line: l.line,
        text: text.to_string(),
        kind,
    })
}

/// Parse one instruction line outside a Dockerfile (an image's ONBUILD trigger).
pub fn parse_line(
    file: &str,
    line: usize,
    text: &str,
    escape: char,
) -> Result<Instruction, BuildError> {
    parse_instruction(
        file,
        &Logical {
            line,
            text: text.to_string(),
            heredocs: Vec::new(),
        },
        escape,
    )
}

/// The known instruction closest to a misspelt one (edit distance ≤ 2).
fn suggest(word: &str) -> Option<&'static str> {
    INSTRUCTIONS
        .iter()
        .map(|k| (distance(word, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Damerau-Levenshtein (optimal string alignment) distance: a swap counts once.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, v) in d[0].iter_mut().enumerate() {
        *v = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Dockerfile {
        parse("Dockerfile", s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_stages_and_instructions() {
        let df = p(r#"# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM --platform=linux/amd64 ${BASE} AS Build
# a comment
RUN echo one \
    # inside a continuation
    two
ENV A=1 B="x y"
ENV LEGACY value with spaces
COPY --from=base --chown=1:2 --chmod=0755 a b /dst/
CMD ["sh", "-c", "echo"]
ENTRYPOINT echo hi
FROM scratch
LABEL a=b
HEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost
"#);
        assert_eq!(df.global_args.len(), 1);
        assert_eq!(df.stages.len(), 2);
        let s = &df.stages[0];
        assert_eq!(s.name.as_deref(), Some("build"));
        assert_eq!(s.base, "${BASE}");
        assert_eq!(s.platform.as_deref(), Some("linux/amd64"));
        assert_eq!(s.line, 3);
        assert_eq!(s.instructions[0].line, 5);
        assert_eq!(
            s.instructions[0].kind,
            Kind::Run {
                command: Command::Shell("echo one     two".into()),
                script: None,
                network: None,
                mounts: vec![]
            }
        );
        assert_eq!(
            s.instructions[1].kind,
            Kind::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "\"x y\"".into())
            ])
        );
        assert_eq!(
            s.instructions[2].kind,
            Kind::Env(vec![("LEGACY".into(), "value with spaces".into())])
        );
        let Kind::Copy(c) = &s.instructions[3].kind else {
            panic!()
        };
        assert_eq!(c.sources, vec!["a", "b"]);
        assert_eq!(c.dest, "/dst/");
        assert_eq!(c.from.as_deref(), Some("base"));
        assert_eq!(c.chown.as_deref(), Some("1:2"));
        assert_eq!(
            s.instructions[4].kind,
            Kind::Cmd(Command::Exec(vec!["sh".into(), "-c".into(), "echo".into()]))
        );
        let Kind::Healthcheck(Some(h)) = &df.stages[1].instructions[1].kind else {
            panic!()
        };
        assert_eq!(h.command, vec!["CMD-SHELL", "wget -q localhost"]);
        assert_eq!(h.interval.as_deref(), Some("5s"));
    }

    #[test]
    fn unknown_instruction_suggests_a_fix() {
        let e = parse("Dockerfile", "FORM busybox\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "Dockerfile:1: FORM: unknown instruction FORM — did you mean FROM?"
        );
        let e = parse("web/Dockerfile", "FROM a\nRUN true\nCOPPY x y\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("web/Dockerfile:3: COPPY:"), "{e}");
        assert!(e.contains("did you mean COPY?"), "{e}");
    }

    #[test]
    fn instruction_before_from_is_an_error() {
        let e = parse("Dockerfile", "RUN true\nFROM a\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Dockerfile:1: RUN:"), "{e}");
        assert!(e.contains("must start with FROM"), "{e}");
        assert!(parse("Dockerfile", "# only a comment\n")
            .unwrap_err()
            .to_string()
            .contains("no FROM"));
    }

    #[test]
    fn escape_directive_changes_continuation() {
        let df = p("# escape=`\nFROM a\nRUN echo C:\\dir `\n  more\n");
        assert_eq!(df.escape, '`');
        assert_eq!(
            df.stages[0].instructions[0].kind,
            Kind::Run {
                command: Command::Shell("echo C:\\dir   more".into()),
                script: None,
                network: None,
                mounts: vec![]
            }
        );
    }

    #[test]
    fn heredocs() {
        let df = p("FROM a\nRUN <<EOF\necho hi\necho there\nEOF\nRUN cat <<-END > /f\n\tline\n\tEND\nCOPY <<CONF /etc/x.conf\nk=v\nCONF\nCMD x\n");
        let ins = &df.stages[0].instructions;
        assert_eq!(ins.len(), 4);
        let Kind::Run { script, .. } = &ins[0].kind else {
            panic!()
        };
        assert_eq!(script.as_deref(), Some("echo hi\necho there\n"));
        let Kind::Run {
            command, script, ..
        } = &ins[1].kind
        else {
            panic!()
        };
        assert!(script.is_none());
        assert_eq!(
            command,
            &Command::Shell("cat <<-END > /f\nline\nEND".into())
        );
        let Kind::Copy(c) = &ins[2].kind else {
            panic!()
        };
        assert_eq!(c.heredocs, vec![("CONF".into(), "k=v\n".into())]);
        assert_eq!(ins[3].line, 12);
    }

    #[test]
    fn rejects_bad_flags_and_forms() {
        let e = parse("Dockerfile", "FROM a\nCOPY --form=x a b\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown flag --form for COPY"), "{e}");
        assert!(parse("Dockerfile", "FROM a\nSHELL sh -c\n").is_err());
        assert!(parse("Dockerfile", "FROM a\nCOPY onlyone\n").is_err());
        assert!(parse("Dockerfile", "FROM a AS x\nFROM b AS x\n").is_err());
        assert!(parse("Dockerfile", "FROM a\nONBUILD FROM b\n").is_err());
        assert!(parse("Dockerfile", "FROM a\nRUN --mount=type=secret,id=x x\n").is_err());
        assert!(parse("Dockerfile", "FROM a\nRUN --mount=type=cache x\n").is_err());
        let df = p("FROM a\nRUN --mount=type=cache,target=/root/.cache,id=pip,uid=1000,mode=0700 \\\n    --mount=type=bind,source=go.sum,target=go.sum,from=base \\\n    --mount=type=tmpfs,dst=/t go build\n");
        let Kind::Run {
            mounts, command, ..
        } = &df.stages[0].instructions[0].kind
        else {
            panic!()
        };
        assert_eq!(command, &Command::Shell("go build".into()));
        assert_eq!(
            mounts,
            &vec![
                RunMount::Cache {
                    target: "/root/.cache".into(),
                    id: Some("pip".into()),
                    uid: Some(1000),
                    gid: None,
                    mode: Some(0o700),
                    read_only: false
                },
                RunMount::Bind {
                    target: "go.sum".into(),
                    source: "go.sum".into(),
                    from: Some("base".into())
                },
                RunMount::Tmpfs {
                    target: "/t".into(),
                    size: None
                }
            ]
        );
        let e = parse("Dockerfile", "FROM a\nCOPY --exclude=*.md . /app\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(".dockerignore"), "{e}");
    }

    #[test]
    fn distance_counts_swaps_once() {
        assert_eq!(distance("FORM", "FROM"), 1);
        assert_eq!(distance("RUN", "RUN"), 0);
        assert_eq!(suggest("XYZZY"), None);
    }
}
