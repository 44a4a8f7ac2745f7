//! Published ports: the typed request (compose's short and long syntax, parsed by the compose
//! crate), resolution of random and ranged host ports, and the "already taken" check done by
//! binding the host port before anything is created.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};

use serde::{Deserialize, Serialize};

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One `ports:` entry: `[HOST_IP:][HOST[-HOST]:]CONTAINER[-CONTAINER][/PROTO]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// `None` = every host address (0.0.0.0).
    pub host_ip: Option<Ipv4Addr>,
    /// Host port range, inclusive; `None` = a random free port per container port.
    pub host_ports: Option<(u16, u16)>,
    /// Container port range, inclusive.
    pub container_ports: (u16, u16),
    pub proto: Proto,
}

/// A resolved host port → container port mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
    /// The container address traffic is sent to.
    pub target: Ipv4Addr,
}

impl std::fmt::Display for PublishedPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        write!(
            f,
            "{ip}:{}->{}/{}",
            self.host_port, self.container_port, self.proto
        )
    }
}

/// Errors resolving ports; each names the container and the port.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortError {
    #[error("container {container}: port {host_ip}:{port}/{proto} is already taken{by}")]
    Taken {
        container: String,
        host_ip: Ipv4Addr,
        port: u16,
        proto: Proto,
        by: String,
    },
    #[error("container {container}: invalid port range {spec}: {reason}")]
    Range {
        container: String,
        spec: String,
        reason: &'static str,
    },
    #[error("container {container}: cannot publish on {host_ip}: not an address of this host")]
    NotLocal {
        container: String,
        host_ip: Ipv4Addr,
    },
    #[error("container {container}: no free host port for {proto} in {from}-{to}")]
    NoFree {
        container: String,
        proto: Proto,
        from: u16,
        to: u16,
    },
}

/// Tries to bind `ip:port` for `proto`; true if it is free on the host.
pub fn bindable(ip: Option<Ipv4Addr>, port: u16, proto: Proto) -> bool {
    let addr = SocketAddrV4::new(ip.unwrap_or(Ipv4Addr::UNSPECIFIED), port);
    match proto {
        Proto::Tcp => TcpListener::bind(addr).is_ok(),
        Proto::Udp => UdpSocket::bind(addr).is_ok(),
    }
}

/// Checks that every `host_ip` of `specs` is an address of this host (binding to it works).
pub fn check_host_ips(container: &str, specs: &[PortSpec]) -> Result<(), PortError> {
    for s in specs {
        if let Some(ip) = s.host_ip.filter(|ip| !ip.is_unspecified()) {
            if let Err(e) = UdpSocket::bind(SocketAddrV4::new(ip, 0)) {
                if e.kind() == std::io::ErrorKind::AddrNotAvailable {
                    return Err(PortError::NotLocal {
                        container: container.to_owned(),
                        host_ip: ip,
                    });
                }
            }
        }
    }
    Ok(())
}

/// A free port chosen by the kernel (bind to port 0).
fn ephemeral(ip: Option<Ipv4Addr>, proto: Proto) -> Option<u16> {
    let addr = SocketAddrV4::new(ip.unwrap_or(Ipv4Addr::UNSPECIFIED), 0);
    match proto {
        Proto::Tcp => TcpListener::bind(addr)
            .ok()?
            .local_addr()
            .ok()
            .map(|a| a.port()),
        Proto::Udp => UdpSocket::bind(addr)
            .ok()?
            .local_addr()
            .ok()
            .map(|a| a.port()),
    }
}

/// Resolves `specs` for `container` to concrete mappings to `target`. `in_use` holds the
/// mappings other containers of this root already have (DNAT rules bind no socket).
/// `free` decides whether a host port is free (normally [`bindable`]).
pub fn resolve(
    container: &str,
    target: Ipv4Addr,
    specs: &[PortSpec],
    in_use: &[(String, PublishedPort)],
    free: &dyn Fn(Option<Ipv4Addr>, u16, Proto) -> bool,
) -> Result<Vec<PublishedPort>, PortError> {
    let mut out: Vec<PublishedPort> = Vec::new();
    let clash = |out: &[PublishedPort], ip: Option<Ipv4Addr>, port: u16, proto: Proto| {
        let same = |p: &PublishedPort| {
            p.proto == proto
                && p.host_port == port
                && (p.host_ip.is_none() || ip.is_none() || p.host_ip == ip)
        };
        if let Some((c, _)) = in_use.iter().find(|(_, p)| same(p)) {
            return Some(format!(" by container {c}"));
        }
        if out.iter().any(same) {
            return Some(" twice by this container".to_owned());
        }
        if !free(ip, port, proto) {
            return Some(String::new());
        }
        None
    };
    for s in specs {
        let (c0, c1) = s.container_ports;
        let spec_text = format!("{c0}-{c1}");
        if c0 == 0 || c1 < c0 {
            return Err(PortError::Range {
                container: container.to_owned(),
                spec: spec_text,
                reason: "container ports must be 1-65535, low to high",
            });
        }
        match s.host_ports {
            None => {
                for cp in c0..=c1 {
                    let mut found = None;
                    for _ in 0..32 {
                        if let Some(p) = ephemeral(s.host_ip, s.proto) {
                            if clash(&out, s.host_ip, p, s.proto).is_none() {
                                found = Some(p);
                                break;
                            }
                        }
                    }
                    let host_port = found.ok_or(PortError::NoFree {
                        container: container.to_owned(),
                        proto: s.proto,
                        from: 1024,
                        to: 65535,
                    })?;
                    out.push(PublishedPort {
                        host_ip: s.host_ip,
                        host_port,
                        container_port: cp,
                        proto: s.proto,
                        target,
                    });
                }
            }
            Some((h0, h1)) => {
                if h0 == 0 || h1 < h0 {
                    return Err(PortError::Range {
                        container: container.to_owned(),
                        spec: format!("{h0}-{h1}:{spec_text}"),
                        reason: "host ports must be 1-65535, low to high",
                    });
                }
                if h1 - h0 == c1 - c0 {
                    for i in 0..=(c1 - c0) {
                        let hp = h0 + i;
                        if let Some(by) = clash(&out, s.host_ip, hp, s.proto) {
                            return Err(PortError::Taken {
                                container: container.to_owned(),
                                host_ip: s.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
                                port: hp,
                                proto: s.proto,
                                by,
                            });
                        }
                        out.push(PublishedPort {
                            host_ip: s.host_ip,
                            host_port: hp,
                            container_port: c0 + i,
                            proto: s.proto,
                            target,
                        });
                    }
                } else if c0 == c1 {
                    // A host range for one container port: the first free one (as Docker).
                    let hp = (h0..=h1)
                        .find(|&p| clash(&out, s.host_ip, p, s.proto).is_none())
                        .ok_or(PortError::NoFree {
                            container: container.to_owned(),
                            proto: s.proto,
                            from: h0,
                            to: h1,
                        })?;
                    out.push(PublishedPort {
                        host_ip: s.host_ip,
                        host_port: hp,
                        container_port: c0,
                        proto: s.proto,
                        target,
                    });
                } else {
                    return Err(PortError::Range {
                        container: container.to_owned(),
                        spec: format!("{h0}-{h1}:{spec_text}"),
                        reason: "host and container ranges differ in length",
                    });
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Ipv4Addr {
        "10.1.0.2".parse().unwrap()
    }

    fn spec(h: Option<(u16, u16)>, c: (u16, u16)) -> PortSpec {
        PortSpec {
            host_ip: None,
            host_ports: h,
            container_ports: c,
            proto: Proto::Tcp,
        }
    }

    #[test]
    fn ranges_map_one_to_one() {
        let all = |_: Option<Ipv4Addr>, _: u16, _: Proto| true;
        let r = resolve("c", t(), &[spec(Some((8000, 8002)), (80, 82))], &[], &all).unwrap();
        let s: Vec<String> = r.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            s,
            [
                "0.0.0.0:8000->80/tcp",
                "0.0.0.0:8001->81/tcp",
                "0.0.0.0:8002->82/tcp"
            ]
        );
        let e = resolve("c", t(), &[spec(Some((8000, 8002)), (80, 81))], &[], &all).unwrap_err();
        assert!(e.to_string().contains("differ in length"), "{e}");
    }

    #[test]
    fn taken_ports_are_reported() {
        let none = |_: Option<Ipv4Addr>, p: u16, _: Proto| p != 8080;
        let e = resolve(
            "web",
            t(),
            &[spec(Some((8080, 8080)), (80, 80))],
            &[],
            &none,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "container web: port 0.0.0.0:8080/tcp is already taken"
        );
        let used = vec![(
            "db".to_owned(),
            PublishedPort {
                host_ip: Some("127.0.0.1".parse().unwrap()),
                host_port: 9000,
                container_port: 5432,
                proto: Proto::Tcp,
                target: t(),
            },
        )];
        let all = |_: Option<Ipv4Addr>, _: u16, _: Proto| true;
        let e = resolve(
            "web",
            t(),
            &[spec(Some((9000, 9000)), (80, 80))],
            &used,
            &all,
        )
        .unwrap_err();
        assert!(e.to_string().ends_with("by container db"), "{e}");
        // A host range skips the taken one.
        let r = resolve(
            "web",
            t(),
            &[spec(Some((9000, 9001)), (80, 80))],
            &used,
            &all,
        )
        .unwrap();
        assert_eq!(r[0].host_port, 9001);
    }

    #[test]
    fn host_ips_must_be_local() {
        let mut s = spec(Some((8080, 8080)), (80, 80));
        s.host_ip = Some("127.0.0.1".parse().unwrap());
        assert!(check_host_ips("web", std::slice::from_ref(&s)).is_ok());
        // TEST-NET-3: never configured here.
        s.host_ip = Some("203.0.113.7".parse().unwrap());
        assert_eq!(
            check_host_ips("web", &[s]).unwrap_err().to_string(),
            "container web: cannot publish on 203.0.113.7: not an address of this host"
        );
    }

    #[test]
    fn random_ports_are_distinct() {
        let r = resolve("c", t(), &[spec(None, (80, 81))], &[], &|ip, p, pr| {
            bindable(ip, p, pr)
        })
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_ne!(r[0].host_port, r[1].host_port);
        assert!(r.iter().all(|p| p.host_port > 0));
    }
}
