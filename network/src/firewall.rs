//! Packet filtering and NAT for networks and published ports, behind the [`Firewall`] trait:
//! nftables (the real one, one table of rcompose's own per state root, replaced atomically
//! as a whole from the recorded state) and a no-op for tests and `network_mode: host`.
//!
//! Rules (family `ip`):
//! - published ports: DNAT in prerouting (traffic from containers and outside) and output
//!   (traffic from the host itself, including 127.0.0.1, which needs `route_localnet` on the
//!   bridge and a masquerade of 127.0.0.0/8 leaving through it);
//! - hairpin: DNATed traffic from a network's own subnet back into its bridge is masqueraded,
//!   so replies return through the host;
//! - outbound: a non-internal network's subnet is masqueraded when it leaves its bridge;
//! - isolation: forwarding between two bridges is dropped unless it was DNATed (a published
//!   port reached through the host address); an internal network forwards nowhere.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;
use tracing::debug;

use crate::ports::PublishedPort;

/// Errors applying firewall rules; each names the table.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("nft table {table}: running nft: {source}")]
    Spawn {
        table: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nft table {table}: nft failed: {stderr}")]
    Nft { table: String, stderr: String },
}

/// One bridge network as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwNetwork {
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub internal: bool,
}

/// The complete desired rule set of one state root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ruleset {
    pub table: String,
    pub networks: Vec<FwNetwork>,
    pub ports: Vec<PublishedPort>,
}

/// Applies rule sets. Implementations replace the whole table atomically.
pub trait Firewall: Send + Sync {
    /// Makes the kernel's table equal to `rules` (created if missing).
    fn apply(&self, rules: &Ruleset) -> Result<(), FirewallError>;
    /// Deletes the table `table`; a missing table is not an error.
    fn remove(&self, table: &str) -> Result<(), FirewallError>;
    /// Whether the table `table` exists.
    fn exists(&self, table: &str) -> Result<bool, FirewallError>;
}

/// The nftables implementation: feeds a script to `nft -f -`.
#[derive(Debug, Default, Clone)]
pub struct Nft;

/// A firewall that does nothing (tests of the manager, `network_mode: host`).
#[derive(Debug, Default, Clone)]
pub struct NoFirewall;

impl Firewall for NoFirewall {
    fn apply(&self, _: &Ruleset) -> Result<(), FirewallError> {
        Ok(())
    }
    fn remove(&self, _: &str) -> Result<(), FirewallError> {
        Ok(())
    }
    fn exists(&self, _: &str) -> Result<bool, FirewallError> {
        Ok(false)
    }
}

fn run_nft(table: &str, script: &str) -> Result<(), FirewallError> {
    debug!(table, "nft -f -\n{script}");
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| FirewallError::Spawn {
            table: table.to_owned(),
            source,
        })?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(script.as_bytes())
        .map_err(|source| FirewallError::Spawn {
            table: table.to_owned(),
            source,
        })?;
    let out = child
        .wait_with_output()
        .map_err(|source| FirewallError::Spawn {
            table: table.to_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(FirewallError::Nft {
            table: table.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

impl Firewall for Nft {
    fn apply(&self, rules: &Ruleset) -> Result<(), FirewallError> {
        run_nft(&rules.table, &render(rules))
    }

    fn exists(&self, table: &str) -> Result<bool, FirewallError> {
        let out = Command::new("nft")
            .args(["list", "table", "ip", table])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|source| FirewallError::Spawn {
                table: table.to_owned(),
                source,
            })?;
        Ok(out.success())
    }

    fn remove(&self, table: &str) -> Result<(), FirewallError> {
        // "add" first so the delete never fails on a missing table: one transaction.
        run_nft(
            table,
            &format!("add table ip {table}\ndelete table ip {table}\n"),
        )
    }
}

/// Renders the nft script that atomically replaces the table with `rules`.
pub fn render(rules: &Ruleset) -> String {
    let t = &rules.table;
    let mut s = String::new();
    let _ = writeln!(s, "add table ip {t}\ndelete table ip {t}\ntable ip {t} {{");

    s.push_str("\tchain ports {\n");
    let mut ports = rules.ports.clone();
    ports.sort_by_key(|p| (p.host_port, p.proto, p.host_ip));
    for p in &ports {
        let daddr = match p.host_ip {
            Some(ip) if !ip.is_unspecified() => format!("ip daddr {ip} "),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "\t\t{daddr}{} dport {} dnat to {}:{}",
            p.proto, p.host_port, p.target, p.container_port
        );
    }
    s.push_str("\t}\n");

    s.push_str(
        "\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\
         \t\tfib daddr type local jump ports\n\t}\n",
    );
    s.push_str(
        "\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n\
         \t\tfib daddr type local jump ports\n\t}\n",
    );

    s.push_str(
        "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n",
    );
    for n in &rules.networks {
        let (b, sub) = (&n.bridge, n.subnet);
        let _ = writeln!(s, "\t\toifname \"{b}\" ip saddr 127.0.0.0/8 masquerade");
        let _ = writeln!(
            s,
            "\t\toifname \"{b}\" ip saddr {sub} ct status dnat masquerade"
        );
        if !n.internal {
            let _ = writeln!(s, "\t\tip saddr {sub} oifname != \"{b}\" masquerade");
        }
    }
    s.push_str("\t}\n");

    s.push_str("\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n");
    for n in rules.networks.iter().filter(|n| n.internal) {
        let b = &n.bridge;
        let _ = writeln!(s, "\t\tiifname \"{b}\" oifname != \"{b}\" drop");
        let _ = writeln!(s, "\t\toifname \"{b}\" iifname != \"{b}\" drop");
    }
    for a in &rules.networks {
        for b in &rules.networks {
            if a.bridge != b.bridge {
                let _ = writeln!(
                    s,
                    "\t\tiifname \"{}\" oifname \"{}\" ct status & dnat == 0 drop",
                    a.bridge, b.bridge
                );
            }
        }
    }
    s.push_str("\t}\n}\n");
    s
}

/// Enables `net.ipv4.ip_forward`; returns the previous value if it changed it.
pub fn enable_forwarding() -> std::io::Result<Option<String>> {
    let path = "/proc/sys/net/ipv4/ip_forward";
    let before = std::fs::read_to_string(path)?.trim().to_owned();
    if before == "1" {
        return Ok(None);
    }
    std::fs::write(path, "1")?;
    debug!(before, "enabled ip_forward");
    Ok(Some(before))
}

/// Lets traffic with a 127.0.0.0/8 source leave through `bridge` (after the output DNAT of
/// a port published on 127.0.0.1); without it the kernel drops such packets as martians.
pub fn enable_route_localnet(bridge: &str) -> std::io::Result<()> {
    std::fs::write(
        format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"),
        "1",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Proto;

    pub(crate) fn sample() -> Ruleset {
        Ruleset {
            table: "rcompose_abc".into(),
            networks: vec![
                FwNetwork {
                    bridge: "rcb1".into(),
                    subnet: "10.213.1.0/24".parse().unwrap(),
                    internal: false,
                },
                FwNetwork {
                    bridge: "rcb2".into(),
                    subnet: "10.213.2.0/24".parse().unwrap(),
                    internal: true,
                },
            ],
            ports: vec![
                PublishedPort {
                    host_ip: Some("127.0.0.1".parse().unwrap()),
                    host_port: 8081,
                    container_port: 81,
                    proto: Proto::Udp,
                    target: "10.213.1.3".parse().unwrap(),
                },
                PublishedPort {
                    host_ip: None,
                    host_port: 8080,
                    container_port: 80,
                    proto: Proto::Tcp,
                    target: "10.213.1.2".parse().unwrap(),
                },
            ],
        }
    }

    #[test]
    fn renders_whole_table() {
        let text = render(&sample());
        let expected = r#"add table ip rcompose_abc
delete table ip rcompose_abc
table ip rcompose_abc {
	chain ports {
		tcp dport 8080 dnat to 10.213.1.2:80
		ip daddr 127.0.0.1 udp dport 8081 dnat to 10.213.1.3:81
	}
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local jump ports
	}
	chain output {
		type nat hook output priority -100; policy accept;
		fib daddr type local jump ports
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "rcb1" ip saddr 127.0.0.0/8 masquerade
		oifname "rcb1" ip saddr 10.213.1.0/24 ct status dnat masquerade
		ip saddr 10.213.1.0/24 oifname != "rcb1" masquerade
		oifname "rcb2" ip saddr 127.0.0.0/8 masquerade
		oifname "rcb2" ip saddr 10.213.2.0/24 ct status dnat masquerade
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "rcb2" oifname != "rcb2" drop
		oifname "rcb2" iifname != "rcb2" drop
		iifname "rcb1" oifname "rcb2" ct status & dnat == 0 drop
		iifname "rcb2" oifname "rcb1" ct status & dnat == 0 drop
	}
}
"#;
        assert_eq!(text, expected);
    }
}
