//! IPv4 address management: picks a subnet for a network from a pool (avoiding host routes,
//! Docker's and Podman's defaults and subnets already allocated) and addresses for endpoints.
//! Pure: the caller passes what is in use; the network manager persists the result.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Errors of address management; each names the network.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("network {network}: invalid subnet {subnet:?}: {reason}")]
    InvalidSubnet {
        network: String,
        subnet: String,
        reason: String,
    },
    #[error("network {network}: subnet {subnet} overlaps {other}")]
    Overlap {
        network: String,
        subnet: Ipv4Net,
        other: String,
    },
    #[error("network {network}: {what} {addr} is outside subnet {subnet}")]
    Outside {
        network: String,
        what: &'static str,
        addr: String,
        subnet: Ipv4Net,
    },
    #[error("network {network}: address {addr} is already used by {by}")]
    InUse {
        network: String,
        addr: Ipv4Addr,
        by: String,
    },
    #[error("network {network}: no free subnet left in the pool {pool}")]
    PoolExhausted { network: String, pool: String },
    #[error("network {network}: no free address left in {range}")]
    RangeExhausted { network: String, range: Ipv4Net },
}

/// Where network subnets come from: each base is split into subnets of `size` bits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub bases: Vec<Ipv4Net>,
    pub size: u8,
}

impl Default for Pool {
    /// `10.199.0.0/16` in /24s: inside 10/8 but away from Docker's 172.17/16 (and
    /// 172.18-31, 192.168/16 pools) and Podman's 10.88/16 and 10.89+ pools.
    fn default() -> Self {
        Pool {
            bases: vec!["10.199.0.0/16".parse().expect("valid default pool")],
            size: 24,
        }
    }
}

impl std::fmt::Display for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bases: Vec<String> = self.bases.iter().map(|b| b.to_string()).collect();
        write!(f, "{} (/{})", bases.join(","), self.size)
    }
}

/// Subnets never picked automatically: Docker's and Podman's defaults.
pub const AVOID: [&str; 3] = ["172.17.0.0/16", "10.88.0.0/16", "10.89.0.0/16"];

/// Parses a user subnet, insisting on a network address (no host bits set).
pub fn parse_subnet(network: &str, s: &str) -> Result<Ipv4Net, IpamError> {
    let invalid = |reason: &str| IpamError::InvalidSubnet {
        network: network.to_owned(),
        subnet: s.to_owned(),
        reason: reason.to_owned(),
    };
    let net: Ipv4Net = s
        .parse()
        .map_err(|_| invalid("expected an IPv4 CIDR like 10.1.2.0/24"))?;
    if net.prefix_len() > 30 {
        return Err(invalid("prefix longer than /30 leaves no room"));
    }
    if net.network().is_loopback() || net.network().is_multicast() || net.network().is_unspecified()
    {
        return Err(invalid(
            "loopback, multicast and 0.0.0.0/8 cannot be a network",
        ));
    }
    if net.trunc() != net {
        return Err(invalid(&format!(
            "host bits set, did you mean {}",
            net.trunc()
        )));
    }
    Ok(net)
}

/// Picks the first subnet of `pool` that overlaps none of `used` (named allocations of this
/// root), `host_routes` or [`AVOID`].
pub fn pick_subnet(
    network: &str,
    pool: &Pool,
    used: &[(String, Ipv4Net)],
    host_routes: &[Ipv4Net],
) -> Result<Ipv4Net, IpamError> {
    let avoid: Vec<Ipv4Net> = AVOID.iter().filter_map(|s| s.parse().ok()).collect();
    for base in &pool.bases {
        let Ok(subnets) = base.subnets(pool.size.max(base.prefix_len())) else {
            continue;
        };
        for cand in subnets {
            let clash = used.iter().any(|(_, n)| overlaps(n, &cand))
                || host_routes
                    .iter()
                    .any(|r| r.prefix_len() > 0 && overlaps(r, &cand))
                || avoid.iter().any(|a| overlaps(a, &cand));
            if !clash {
                return Ok(cand);
            }
        }
    }
    Err(IpamError::PoolExhausted {
        network: network.to_owned(),
        pool: pool.to_string(),
    })
}

/// Checks a user-chosen subnet against the allocations of this root.
pub fn check_subnet(
    network: &str,
    subnet: Ipv4Net,
    used: &[(String, Ipv4Net)],
) -> Result<(), IpamError> {
    for (other, n) in used {
        if overlaps(n, &subnet) {
            return Err(IpamError::Overlap {
                network: network.to_owned(),
                subnet,
                other: format!("network {other} ({n})"),
            });
        }
    }
    Ok(())
}

/// True if the two nets share any address.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Checks that `addr` is a usable host address of `subnet` (not network nor broadcast).
pub fn check_in_subnet(
    network: &str,
    what: &'static str,
    addr: Ipv4Addr,
    subnet: Ipv4Net,
) -> Result<(), IpamError> {
    if !subnet.contains(&addr) || addr == subnet.network() || addr == subnet.broadcast() {
        return Err(IpamError::Outside {
            network: network.to_owned(),
            what,
            addr: addr.to_string(),
            subnet,
        });
    }
    Ok(())
}

/// Picks the first free host address of `range` (inside `subnet`) not in `used`.
pub fn pick_address(
    network: &str,
    subnet: Ipv4Net,
    range: Ipv4Net,
    used: &[Ipv4Addr],
) -> Result<Ipv4Addr, IpamError> {
    let first = u32::from(range.network()).max(u32::from(subnet.network()) + 1);
    let last = u32::from(range.broadcast()).min(u32::from(subnet.broadcast()) - 1);
    for a in first..=last {
        let ip = Ipv4Addr::from(a);
        if !used.contains(&ip) {
            return Ok(ip);
        }
    }
    Err(IpamError::RangeExhausted {
        network: network.to_owned(),
        range,
    })
}

/// IPv4 routes of the host's main table, from `/proc/net/route` (little-endian hex).
pub fn host_routes() -> Vec<Ipv4Net> {
    let Ok(text) = std::fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    parse_proc_routes(&text)
}

fn parse_proc_routes(text: &str) -> Vec<Ipv4Net> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dst = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The kernel prints the network-order word as a host (little-endian) u32.
            let dst = Ipv4Addr::from(dst.to_le_bytes());
            let prefix = mask.count_ones() as u8;
            Ipv4Net::new(dst, prefix).ok().map(|n| n.trunc())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn proc_routes_are_decoded() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(
            parse_proc_routes(text),
            vec![net("0.0.0.0/0"), net("192.0.2.0/24")]
        );
    }

    #[test]
    fn pick_skips_used_routes_and_docker_podman() {
        let pool = Pool {
            bases: vec![net("10.88.0.0/15")],
            size: 24,
        };
        let used = vec![("a".to_owned(), net("10.89.0.0/24"))];
        // 10.88/16 and 10.89/16 are Podman's: nothing left
        assert!(pick_subnet("n", &pool, &used, &[]).is_err());
        let pool = Pool {
            bases: vec![net("10.213.0.0/22")],
            size: 24,
        };
        let routes = vec![net("10.213.1.0/24"), net("0.0.0.0/0")];
        let used = vec![("a".to_owned(), net("10.213.0.0/24"))];
        assert_eq!(
            pick_subnet("n", &pool, &used, &routes).unwrap(),
            net("10.213.2.0/24")
        );
    }

    #[test]
    fn default_pool_avoids_docker_and_podman() {
        let p = Pool::default();
        for a in AVOID {
            assert!(!p.bases.iter().any(|b| overlaps(b, &net(a))));
        }
    }

    #[test]
    fn subnet_validation() {
        assert!(parse_subnet("n", "10.1.2.0/24").is_ok());
        let e = parse_subnet("n", "10.1.2.3/24").unwrap_err();
        assert!(e.to_string().contains("did you mean 10.1.2.0/24"), "{e}");
        assert!(parse_subnet("n", "bogus").is_err());
        assert!(parse_subnet("n", "10.0.0.0/31").is_err());
        assert!(parse_subnet("n", "127.0.0.0/8").is_err());
        assert!(parse_subnet("n", "224.0.0.0/24").is_err());
        let e = check_subnet(
            "p_b",
            net("10.1.0.0/16"),
            &[("p_a".into(), net("10.1.2.0/24"))],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "network p_b: subnet 10.1.0.0/16 overlaps network p_a (10.1.2.0/24)"
        );
    }

    #[test]
    fn addresses() {
        let s = net("10.1.2.0/24");
        let used = vec!["10.1.2.1".parse().unwrap(), "10.1.2.2".parse().unwrap()];
        assert_eq!(
            pick_address("n", s, s, &used).unwrap().to_string(),
            "10.1.2.3"
        );
        let r = net("10.1.2.128/25");
        assert_eq!(
            pick_address("n", s, r, &used).unwrap().to_string(),
            "10.1.2.128"
        );
        let small = net("10.1.2.0/30");
        assert!(pick_address("n", small, small, &used).is_err());
        assert!(check_in_subnet("n", "ipv4_address", "10.1.3.1".parse().unwrap(), s).is_err());
        assert!(check_in_subnet("n", "ipv4_address", "10.1.2.255".parse().unwrap(), s).is_err());
    }

    proptest::proptest! {
        #[test]
        fn picked_addresses_are_fresh_and_inside(n in 0usize..250) {
            let s = net("10.9.8.0/24");
            let mut used: Vec<Ipv4Addr> = Vec::new();
            for _ in 0..n {
                let ip = pick_address("n", s, s, &used).unwrap();
                proptest::prop_assert!(!used.contains(&ip));
                proptest::prop_assert!(check_in_subnet("n", "a", ip, s).is_ok());
                used.push(ip);
            }
        }
    }
}
