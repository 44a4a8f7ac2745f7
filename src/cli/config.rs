//! `rcompose config`: parse, resolve and render the compose file in canonical format, as
//! `docker compose config` does (YAML, or JSON with `--format json`).

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::Value;

use super::global::GlobalArgs;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Format the output: yaml or json
    #[arg(long, default_value = "yaml", value_parser = ["yaml", "json"])]
    pub format: String,
    /// Only validate the configuration, don't print anything (the exit status says)
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the service names, one per line
    #[arg(long)]
    pub services: bool,
    /// Print the volume names, one per line
    #[arg(long)]
    pub volumes: bool,
    /// Print the profile names, one per line
    #[arg(long)]
    pub profiles: bool,
    /// Print the image names, one per line
    #[arg(long)]
    pub images: bool,
    /// Print the service config hash, one per line ("*" for all services)
    #[arg(long, value_name = "SERVICES")]
    pub hash: Option<String>,
    /// Don't interpolate environment variables
    #[arg(long)]
    pub no_interpolate: bool,
    /// Don't normalize the compose model (accepted for compatibility)
    #[arg(long)]
    pub no_normalize: bool,
    /// Don't check the model's consistency (references between elements)
    #[arg(long)]
    pub no_consistency: bool,
    /// Don't resolve file paths
    #[arg(long)]
    pub no_path_resolution: bool,
    /// Save to a file instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Only these services (and what they depend on)
    pub service: Vec<String>,
}

/// Builds the loader options from the global flags and the process.
pub fn load_options(global: &GlobalArgs) -> compose::LoadOptions {
    let mut opts = compose::LoadOptions::from_process();
    opts.files = global.file.clone();
    opts.project_name = global.project_name.clone();
    opts.project_directory = global.project_directory.clone();
    opts.env_files = global.env_file.clone();
    opts.profiles = global.profile.clone();
    opts
}

pub fn run(global: &GlobalArgs, args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let mut opts = load_options(global);
    opts.interpolate = !args.no_interpolate;
    opts.consistency = !args.no_consistency;
    opts.normalize = !args.no_normalize;
    opts.resolve_paths = !args.no_path_resolution;
    opts.services = args.service.clone();
    let mut project = compose::load(&opts)?;
    for w in &project.warnings {
        eprintln!("warning: {w}");
    }
    if args.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    if !args.service.is_empty() {
        let keep = project.graph()?.select(&args.service, false)?;
        project.services.retain(|k, _| keep.contains(k));
    }
    let mut out = String::new();
    if args.services {
        for name in project.services.keys() {
            writeln!(out, "{name}")?;
        }
    } else if args.volumes {
        for name in project.volumes.keys() {
            writeln!(out, "{name}")?;
        }
    } else if args.profiles {
        let mut ps: Vec<&String> = project
            .services
            .values()
            .chain(project.disabled_services.values())
            .flat_map(|s| s.profiles.iter().flatten())
            .collect();
        ps.sort();
        ps.dedup();
        for p in ps {
            writeln!(out, "{p}")?;
        }
    } else if args.images {
        for (name, s) in &project.services {
            let image = s
                .image
                .clone()
                .unwrap_or_else(|| format!("{}-{name}", project.name));
            writeln!(out, "{image}")?;
        }
    } else if let Some(h) = &args.hash {
        let wanted: Vec<&str> = h.split(',').map(str::trim).collect();
        for (name, s) in &project.services {
            if wanted.contains(&"*") || wanted.contains(&name.as_str()) {
                writeln!(out, "{name} {}", s.config_hash())?;
            }
        }
    } else {
        let mut v = serde_json::to_value(&project).context("rendering the project")?;
        sort_maps(&mut v, args.format == "json");
        escape_dollars(&mut v);
        if args.format == "json" {
            out = serde_json::to_string_pretty(&v)?;
            out.push('\n');
        } else {
            emit_yaml(&v, 0, &mut out, false);
        }
    }
    match &args.output {
        Some(p) => std::fs::write(p, out).with_context(|| format!("writing {}", p.display()))?,
        None => print!("{out}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Attributes whose values are mappings with user-chosen keys (Go maps, printed sorted).
const MAP_ATTRIBUTES: &[&str] = &[
    "environment",
    "labels",
    "annotations",
    "sysctls",
    "depends_on",
    "networks",
    "driver_opts",
    "options",
    "aux_addresses",
    "args",
    "ulimits",
    "storage_opt",
    "additional_contexts",
    "models",
];

/// Orders keys as Docker Compose prints them: the project's keys and each section's entries
/// sorted (Go maps there), mappings with user-chosen keys sorted, and the attributes of a
/// service, network, port, mount, … in declaration order.
fn sort_maps(v: &mut Value, json: bool) {
    fn walk(v: &mut Value, sort_here: bool) {
        match v {
            Value::Object(m) => {
                if sort_here {
                    m.sort_keys();
                }
                for (k, x) in m.iter_mut() {
                    walk(x, MAP_ATTRIBUTES.contains(&k.as_str()));
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, false)),
            _ => {}
        }
    }
    let Value::Object(top) = v else { return };
    // JSON prints the project's keys sorted; YAML in field order (name, services, networks, …).
    if json {
        top.sort_keys();
    }
    for (section, entries) in top.iter_mut() {
        let Value::Object(entries) = entries else {
            continue;
        };
        if section.starts_with("x-") {
            continue;
        }
        entries.sort_keys();
        for (_, e) in entries.iter_mut() {
            // Attributes in field order (compose-go's, mirrored by the model).
            walk(e, false);
        }
    }
}

/// Docker Compose escapes `$` as `$$` in its output so that it can be loaded again.
fn escape_dollars(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().filter(|k| k.contains('$')).cloned().collect();
            for k in keys {
                if let Some(x) = m.shift_remove(&k) {
                    m.insert(k.replace('$', "$$"), x);
                }
            }
            for (_, x) in m.iter_mut() {
                escape_dollars(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(escape_dollars),
        _ => {}
    }
}

fn yaml_scalar(s: &str) -> String {
    let needs_quotes = s.is_empty()
        || s.trim() != s
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || s.contains('\n')
        || s.contains('"')
        || s.contains('\'')
        || s.contains('\t')
        || s.starts_with([
            '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '%', '@', '`',
        ])
        || !matches!(
            compose::yaml::scalar_type(s),
            compose::yaml::ScalarType::Str
        )
        || matches!(
            s,
            "~" | "null"
                | "Null"
                | "NULL"
                | "yes"
                | "no"
                | "on"
                | "off"
                | "y"
                | "n"
                | "Yes"
                | "No"
                | "On"
                | "Off"
        );
    if needs_quotes {
        serde_json::to_string(s).unwrap_or_default()
    } else {
        s.to_string()
    }
}

/// A small YAML emitter for the JSON value of the project (block style, two-space indent).
fn emit_yaml(v: &Value, indent: usize, out: &mut String, in_seq: bool) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) => {
            if m.is_empty() {
                out.push_str("{}\n");
                return;
            }
            let mut first = true;
            for (k, x) in m {
                if !(first && in_seq) {
                    out.push_str(&pad);
                }
                first = false;
                out.push_str(&yaml_scalar(k));
                out.push(':');
                match x {
                    Value::Object(mm) if !mm.is_empty() => {
                        out.push('\n');
                        emit_yaml(x, indent + 2, out, false);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push('\n');
                        emit_yaml(x, indent + 2, out, false);
                    }
                    _ => {
                        out.push(' ');
                        emit_yaml(x, indent + 2, out, false);
                    }
                }
            }
        }
        Value::Array(a) => {
            if a.is_empty() {
                out.push_str("[]\n");
                return;
            }
            for x in a {
                out.push_str(&pad);
                out.push_str("- ");
                emit_yaml(x, indent + 2, out, true);
            }
        }
        Value::String(s) => {
            out.push_str(&yaml_scalar(s));
            out.push('\n');
        }
        Value::Null => out.push_str("null\n"),
        Value::Bool(b) => {
            out.push_str(if *b { "true" } else { "false" });
            out.push('\n');
        }
        Value::Number(n) => {
            out.push_str(&n.to_string());
            out.push('\n');
        }
    }
}
