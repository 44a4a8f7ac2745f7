//! `rcompose network ls|inspect|rm|prune`: the networks recorded under the state root
//! (`--root`, kept by the `network` crate in `<root>/network`), shown and removed as
//! `docker network` does. Networks are made by `up`; there is no `create` here.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use network::{NetworkRecord, Networks};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::global::GlobalArgs;
use super::render;

#[derive(Debug, Args)]
pub struct NetworkArgs {
    #[command(subcommand)]
    pub command: NetworkCommand,
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks (JSON)
    Inspect(InspectArgs),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all networks no container is connected to
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Format the output: table, json, or a template such as `{{.Name}}\t{{.ID}}`
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Filter output (`name=`, `id=`, `driver=`, `scope=`, `label=KEY[=VALUE]`,
    /// `dangling=true|false`), repeatable; the same key ORs, different keys AND
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Do not truncate the network ID
    #[arg(long)]
    pub no_trunc: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Networks (name or ID prefix)
    #[arg(required = true)]
    pub networks: Vec<String>,
    /// Format each network with a template (`{{.Name}}`, `{{json .IPAM}}`) instead of JSON
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Networks (name or ID prefix)
    #[arg(required = true)]
    pub networks: Vec<String>,
    /// Do not fail if a network does not exist
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation (accepted for Docker compatibility; never prompts)
    #[arg(short, long)]
    pub force: bool,
    /// Only prune networks matching these filters (`label=KEY[=VALUE]`, `label!=…`, `name=`)
    #[arg(long = "filter", value_name = "FILTER")]
    pub filter: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: NetworkArgs) -> anyhow::Result<ExitCode> {
    let nets = Networks::new(&global.root);
    match args.command {
        NetworkCommand::Ls(a) => ls(&nets, a),
        NetworkCommand::Inspect(a) => inspect(&nets, a),
        NetworkCommand::Rm(a) => rm(&nets, a, global.dry_run),
        NetworkCommand::Prune(a) => {
            let filters = Filters::parse(&a.filter)?;
            if global.dry_run {
                for n in list(&nets)? {
                    if n.endpoints.is_empty() && filters.matches(&n) {
                        println!("would remove network {}", n.name);
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            let removed = nets.prune(|n| filters.matches(n))?;
            if !removed.is_empty() {
                println!("Deleted Networks:");
                for n in removed {
                    println!("{n}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The network's ID: 64 hex digits derived from its name (names are unique per root), as
/// Docker shows IDs; the first 12 in tables.
pub fn network_id(name: &str) -> String {
    hex::encode(Sha256::digest(
        format!("rcompose network\0{name}").as_bytes(),
    ))
}

fn list(nets: &Networks) -> anyhow::Result<Vec<NetworkRecord>> {
    let mut all = nets.list().context("reading the network state")?;
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// A network by exact name, else by unique ID prefix.
fn find(all: &[NetworkRecord], wanted: &str) -> anyhow::Result<Option<NetworkRecord>> {
    if let Some(n) = all.iter().find(|n| n.name == wanted) {
        return Ok(Some(n.clone()));
    }
    let by_id: Vec<&NetworkRecord> = all
        .iter()
        .filter(|n| !wanted.is_empty() && network_id(&n.name).starts_with(wanted))
        .collect();
    match by_id.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        _ => anyhow::bail!("network ID prefix {wanted} is ambiguous: use more digits or the name"),
    }
}

/// `docker network ls` fields of one network.
fn row_fields(n: &NetworkRecord, no_trunc: bool) -> Map<String, Value> {
    let id = network_id(&n.name);
    let labels = n
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut m = Map::new();
    m.insert(
        "ID".into(),
        Value::String(if no_trunc { id } else { id[..12].to_owned() }),
    );
    m.insert("Name".into(), Value::String(n.name.clone()));
    m.insert("Driver".into(), Value::String("bridge".into()));
    m.insert("Scope".into(), Value::String("local".into()));
    m.insert("IPv6".into(), Value::String("false".into()));
    m.insert("Internal".into(), Value::String(n.internal.to_string()));
    m.insert("Labels".into(), Value::String(labels));
    m.insert("CreatedAt".into(), Value::String(String::new()));
    m
}

fn ls(nets: &Networks, a: LsArgs) -> anyhow::Result<ExitCode> {
    let filters = Filters::parse(&a.filter)?;
    let shown: Vec<NetworkRecord> = list(nets)?
        .into_iter()
        .filter(|n| filters.matches(n))
        .collect();
    if a.quiet {
        for n in &shown {
            println!(
                "{}",
                row_fields(n, a.no_trunc)["ID"].as_str().unwrap_or_default()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    match a.format.as_str() {
        "table" => {
            let rows: Vec<Vec<String>> = shown
                .iter()
                .map(|n| {
                    let f = row_fields(n, a.no_trunc);
                    ["ID", "Name", "Driver", "Scope"]
                        .iter()
                        .map(|k| f[*k].as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .collect();
            print!(
                "{}",
                render::table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows)
            );
        }
        "json" => {
            for n in &shown {
                println!("{}", Value::Object(row_fields(n, a.no_trunc)));
            }
        }
        tpl => {
            let tpl = tpl.strip_prefix("table ").unwrap_or(tpl);
            for n in &shown {
                println!("{}", render::template(tpl, &row_fields(n, a.no_trunc)));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `docker network inspect` JSON of one network.
pub fn inspect_json(n: &NetworkRecord) -> Value {
    let containers: Map<String, Value> = n
        .endpoints
        .values()
        .map(|e| {
            (
                e.container.clone(),
                json!({
                    "Name": e.container,
                    "EndpointID": hex::encode(Sha256::digest(
                        format!("{}\0{}", n.name, e.container).as_bytes())),
                    "MacAddress": e.mac,
                    "IPv4Address": format!("{}/{}", e.ip, n.subnet.prefix_len()),
                    "IPv6Address": "",
                }),
            )
        })
        .collect();
    let mut options = Map::new();
    options.insert(
        "com.docker.network.bridge.name".into(),
        Value::String(n.bridge.clone()),
    );
    if let Some(mtu) = n.mtu {
        options.insert(
            "com.docker.network.driver.mtu".into(),
            Value::String(mtu.to_string()),
        );
    }
    let mut ipam = json!({ "Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string() });
    if let Some(r) = n.ip_range {
        ipam["IPRange"] = Value::String(r.to_string());
    }
    json!({
        "Name": n.name,
        "Id": network_id(&n.name),
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": false,
        "IPAM": { "Driver": "default", "Options": {}, "Config": [ipam] },
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": n.labels,
    })
}

fn inspect(nets: &Networks, a: InspectArgs) -> anyhow::Result<ExitCode> {
    let all = list(nets)?;
    let mut out = Vec::new();
    let mut failed = false;
    for wanted in &a.networks {
        match find(&all, wanted)? {
            Some(n) => out.push(inspect_json(&n)),
            None => {
                eprintln!("rcompose: network {wanted} not found");
                failed = true;
            }
        }
    }
    match &a.format {
        Some(tpl) => {
            for v in &out {
                if let Value::Object(m) = v {
                    println!("{}", render::template(tpl, m));
                }
            }
        }
        None => println!("{}", serde_json::to_string_pretty(&out)?),
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Removes each network (`--dry-run`: only says which it would remove).
fn rm(nets: &Networks, a: RmArgs, dry_run: bool) -> anyhow::Result<ExitCode> {
    let all = list(nets)?;
    let mut failed = false;
    for wanted in &a.networks {
        let n = match find(&all, wanted) {
            Ok(Some(n)) => n,
            Ok(None) if a.force => continue,
            Ok(None) => {
                eprintln!("rcompose: network {wanted} not found");
                failed = true;
                continue;
            }
            Err(e) => {
                eprintln!("rcompose: {e:#}");
                failed = true;
                continue;
            }
        };
        if dry_run {
            println!("would remove network {}", n.name);
            continue;
        }
        match nets.remove_network(&n.name) {
            Ok(()) => println!("{wanted}"),
            Err(e) => {
                eprintln!("rcompose: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `--filter` terms as Docker reads them: terms with the same key OR, different keys AND.
#[derive(Debug, Default)]
struct Filters {
    terms: Vec<(String, bool, String)>,
}

impl Filters {
    fn parse(raw: &[String]) -> anyhow::Result<Filters> {
        let mut terms = Vec::new();
        for f in raw {
            let (key, value) = f
                .split_once('=')
                .with_context(|| format!("bad filter {f:?}: expected KEY=VALUE"))?;
            let (key, negated) = match key.strip_suffix('!') {
                Some(k) => (k, true),
                None => (key, false),
            };
            anyhow::ensure!(
                matches!(
                    key,
                    "name" | "id" | "driver" | "scope" | "label" | "dangling" | "type"
                ),
                "invalid filter {key:?}: expected name, id, driver, scope, label, dangling or type"
            );
            anyhow::ensure!(
                !negated || key == "label",
                "invalid filter {key}!=: only label!= is supported"
            );
            if key == "dangling" {
                anyhow::ensure!(
                    matches!(value, "true" | "false" | "1" | "0"),
                    "invalid filter dangling={value}: expected true or false"
                );
            }
            terms.push((key.to_owned(), negated, value.to_owned()));
        }
        Ok(Filters { terms })
    }

    fn term_matches(n: &NetworkRecord, key: &str, value: &str) -> bool {
        match key {
            "name" => n.name.contains(value),
            "id" => network_id(&n.name).starts_with(value),
            "driver" => value == "bridge",
            "scope" => value == "local",
            // Networks made by `up` are all custom ones.
            "type" => value == "custom",
            "dangling" => n.endpoints.is_empty() == matches!(value, "true" | "1"),
            "label" => match value.split_once('=') {
                Some((k, v)) => n.labels.get(k).is_some_and(|x| x == v),
                None => n.labels.contains_key(value),
            },
            _ => false,
        }
    }

    fn matches(&self, n: &NetworkRecord) -> bool {
        let mut keys: Vec<&str> = self.terms.iter().map(|(k, _, _)| k.as_str()).collect();
        keys.sort();
        keys.dedup();
        keys.iter().all(|key| {
            let terms = self.terms.iter().filter(|(k, _, _)| k == key);
            let (neg, pos): (Vec<_>, Vec<_>) = terms.partition(|(_, negated, _)| *negated);
            (pos.is_empty() || pos.iter().any(|(k, _, v)| Self::term_matches(n, k, v)))
                && neg.iter().all(|(k, _, v)| !Self::term_matches(n, k, v))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, labels: &[(&str, &str)]) -> NetworkRecord {
        NetworkRecord {
            name: name.into(),
            bridge: "rcx".into(),
            subnet: "10.213.1.0/24".parse().unwrap(),
            gateway: "10.213.1.1".parse().unwrap(),
            ip_range: None,
            internal: false,
            mtu: None,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            endpoints: Default::default(),
        }
    }

    fn f(terms: &[&str]) -> Filters {
        Filters::parse(&terms.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn same_key_filters_or_and_different_keys_and() {
        let a = rec("demo_default", &[("com.docker.compose.project", "demo")]);
        let b = rec("other_back", &[]);
        let names = f(&["name=demo", "name=back"]);
        assert!(names.matches(&a) && names.matches(&b));
        let both = f(&["name=demo", "label=com.docker.compose.project=demo"]);
        assert!(both.matches(&a) && !both.matches(&b));
        let not = f(&["label!=com.docker.compose.project"]);
        assert!(!not.matches(&a) && not.matches(&b));
        assert!(f(&["dangling=true"]).matches(&a));
        assert!(f(&[&format!("id={}", &network_id("demo_default")[..5])]).matches(&a));
    }

    #[test]
    fn unknown_filters_and_bad_values_are_errors() {
        for bad in ["colour=red", "name", "dangling=maybe", "name!=x"] {
            assert!(Filters::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_are_stable_hex_and_found_by_prefix() {
        let id = network_id("demo_default");
        assert_eq!(id.len(), 64);
        assert_eq!(id, network_id("demo_default"));
        let all = vec![rec("demo_default", &[]), rec("x", &[])];
        assert_eq!(find(&all, &id[..6]).unwrap().unwrap().name, "demo_default");
        assert_eq!(find(&all, "x").unwrap().unwrap().name, "x");
        assert!(find(&all, "nope-zz").unwrap().is_none());
    }
}
