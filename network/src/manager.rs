//! The network manager: bridges per compose network (IPAM from a pool, gateway on the
//! bridge), a veth per container and network, port publishing and the firewall table, all
//! recorded in the state file before they are created so [`Networks::remove_all`] can undo
//! them after a crash.
//!
//! Every operation takes the state lock, so several rcompose processes sharing a root
//! serialize. Kernel work happens on the calling thread (netlink sockets are opened inside a
//! container's namespace on a short-lived helper thread), never on a forked process.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use crate::dns::DnsConfig;
use crate::firewall::{self, Firewall, FirewallError, FwNetwork, Nft, Ruleset};
use crate::ipam::{self, IpamError, Pool};
use crate::netlink::{Mac, Netlink, NetlinkError};
use crate::ports::{self, PortError, PortSpec, PublishedPort};
use crate::state::{self, EndpointRecord, NetworkRecord, State, StateError};

/// Errors of the network manager; each names the network (and container).
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Ports(#[from] PortError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    #[error("network {0} not found")]
    Unknown(String),
    #[error("network {0} is declared external but does not exist: create it first")]
    ExternalMissing(String),
    #[error("network {network}: {what} {wanted} differs from the existing network's {existing}")]
    Mismatch {
        network: String,
        what: &'static str,
        wanted: String,
        existing: String,
    },
    #[error("network {network}: invalid {what} {value:?}: {reason}")]
    Invalid {
        network: String,
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("network {network}: bridge {bridge}: {source}")]
    Bridge {
        network: String,
        bridge: String,
        #[source]
        source: NetlinkError,
    },
    #[error("network {network}: container {container}: {source}")]
    Endpoint {
        network: String,
        container: String,
        #[source]
        source: NetlinkError,
    },
    #[error("network {network}: container {container} is already connected")]
    AlreadyConnected { network: String, container: String },
    #[error("network {network} is still used by containers: {containers}")]
    InUse { network: String, containers: String },
    #[error("network {network}: container {container} is not connected")]
    NotConnected { network: String, container: String },
    #[error("network {network}: writing {path}: {source}")]
    Sysctl {
        network: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{} teardown errors: {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Teardown(Vec<NetworkError>),
}

type Result<T, E = NetworkError> = std::result::Result<T, E>;

/// A compose network as the supervisor asks for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Full name, e.g. `proj_default` (or the external name).
    pub name: String,
    /// `ipam.config[0].subnet`; picked from the pool when `None`.
    pub subnet: Option<String>,
    /// `ipam.config[0].gateway`; the first host address when `None`.
    pub gateway: Option<Ipv4Addr>,
    /// `ipam.config[0].ip_range`: where container addresses are picked.
    pub ip_range: Option<String>,
    pub internal: bool,
    /// Must already exist (made by another project); never created here.
    pub external: bool,
    /// `driver_opts` `com.docker.network.driver.mtu`.
    pub mtu: Option<u32>,
    /// `driver_opts` `com.docker.network.bridge.name`.
    pub bridge: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// What a network is once it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    pub name: String,
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub internal: bool,
}

/// A container's attachment request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointSpec {
    /// Container name, e.g. `proj-web-1`: the key of the endpoint in the network.
    pub container: String,
    /// Interface inside the container: `eth0`, `eth1`, … by network `priority`.
    pub ifname: String,
    /// `ipv4_address`.
    pub ipv4: Option<Ipv4Addr>,
    /// `mac_address` (`aa:bb:cc:dd:ee:ff`); derived from the address when `None`.
    pub mac: Option<String>,
    /// DNS names on this network: service, container name, hostname, aliases.
    pub names: Vec<String>,
    /// `links` as alias → target name (answered to this container only).
    pub links: BTreeMap<String, String>,
    /// `dns`: upstream resolvers the network's DNS server forwards this container's other
    /// queries to (instead of the host's), as Docker's embedded server does.
    pub dns: Vec<std::net::IpAddr>,
    /// Route everything through this network's gateway (the container's first network).
    pub default_route: bool,
}

/// A container's attachment once made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub network: String,
    pub container: String,
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    pub host_veth: String,
}

/// The network manager of one state root.
pub struct Networks {
    dir: PathBuf,
    hash: String,
    pool: Pool,
    firewall: Box<dyn Firewall>,
}

fn short_hash(s: &str, n: usize) -> String {
    let d = Sha256::digest(s.as_bytes());
    hex::encode(d)[..n].to_owned()
}

fn parse_mac(s: &str) -> Option<Mac> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| {
            (p.len() == 2)
                .then(|| u8::from_str_radix(p, 16).ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    let mac: Mac = parts.try_into().ok()?;
    // Multicast addresses cannot be an interface's own.
    (mac[0] & 1 == 0).then_some(mac)
}

fn fmt_mac(m: &Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The MAC of a container address (locally administered, as Docker's `02:42:` + IPv4).
pub fn mac_for(ip: Ipv4Addr) -> Mac {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

impl Networks {
    /// The manager for `state_root` (rcompose's root: state goes to `<root>/network`), with
    /// the default pool and the nftables firewall.
    pub fn new(state_root: &Path) -> Networks {
        let root = std::path::absolute(state_root).unwrap_or_else(|_| state_root.to_owned());
        Networks {
            dir: root.join("network"),
            hash: short_hash(&root.to_string_lossy(), 5),
            pool: Pool::default(),
            firewall: Box::new(Nft),
        }
    }

    /// Uses `pool` for automatic subnets.
    pub fn with_pool(mut self, pool: Pool) -> Networks {
        self.pool = pool;
        self
    }

    /// Uses another firewall implementation.
    pub fn with_firewall(mut self, fw: Box<dyn Firewall>) -> Networks {
        self.firewall = fw;
        self
    }

    /// Prefix of every interface this root creates (`rc` + root hash): for leak checks.
    pub fn iface_prefix(&self) -> String {
        format!("rc{}", self.hash)
    }

    /// The nftables table (family `ip`) of this root.
    pub fn nft_table(&self) -> String {
        format!("rcompose_{}", self.hash)
    }

    /// The state file (read by DNS servers to follow changes).
    pub fn state_file(&self) -> PathBuf {
        state::state_path(&self.dir)
    }

    fn bridge_name(&self, network: &str) -> String {
        format!("rc{}b{}", self.hash, short_hash(network, 6))
    }

    fn veth_name(&self, network: &str, container: &str) -> String {
        format!(
            "rc{}v{}",
            self.hash,
            short_hash(&format!("{network}\0{container}"), 6)
        )
    }

    /// Every network recorded under this root.
    pub fn list(&self) -> Result<Vec<NetworkRecord>> {
        Ok(state::read(&self.state_file())?
            .networks
            .into_values()
            .collect())
    }

    /// One network's record.
    pub fn inspect(&self, name: &str) -> Result<NetworkRecord> {
        state::read(&self.state_file())?
            .networks
            .remove(name)
            .ok_or_else(|| NetworkError::Unknown(name.to_owned()))
    }

    /// Published ports by container.
    pub fn ports(&self) -> Result<BTreeMap<String, Vec<PublishedPort>>> {
        Ok(state::read(&self.state_file())?.ports)
    }

    fn ruleset(&self, st: &State) -> Ruleset {
        Ruleset {
            table: self.nft_table(),
            networks: st
                .networks
                .values()
                .map(|n| FwNetwork {
                    bridge: n.bridge.clone(),
                    subnet: n.subnet,
                    internal: n.internal,
                })
                .collect(),
            ports: st.ports.values().flatten().cloned().collect(),
        }
    }

    /// Makes the nft table match `lk.state` (recording the table before creating it).
    fn sync_firewall(&self, lk: &mut state::Locked) -> Result<()> {
        if lk.state.networks.is_empty() && lk.state.ports.is_empty() {
            if let Some(t) = lk.state.nft_table.clone() {
                self.firewall.remove(&t)?;
                lk.state.nft_table = None;
                lk.save()?;
            }
            return Ok(());
        }
        if lk.state.nft_table.is_none() {
            lk.state.nft_table = Some(self.nft_table());
            lk.save()?;
        }
        self.firewall.apply(&self.ruleset(&lk.state))?;
        Ok(())
    }

    /// Creates the network (bridge, gateway address, firewall rules) unless it exists, and
    /// returns what it is. An `external` network must exist already.
    pub fn ensure_network(&self, spec: &NetworkSpec) -> Result<NetworkInfo> {
        let name = spec.name.as_str();
        let mut lk = state::lock(&self.dir)?;
        if let Some(rec) = lk.state.networks.get(name).cloned() {
            if let Some(s) = &spec.subnet {
                let want = ipam::parse_subnet(name, s)?;
                if want != rec.subnet {
                    return Err(NetworkError::Mismatch {
                        network: name.to_owned(),
                        what: "subnet",
                        wanted: want.to_string(),
                        existing: rec.subnet.to_string(),
                    });
                }
            }
            // After a reboot the record survives but the bridge does not.
            self.create_bridge(&rec)?;
            self.sync_firewall(&mut lk)?;
            return Ok(info(&rec));
        }
        if spec.external {
            return Err(NetworkError::ExternalMissing(name.to_owned()));
        }
        // Held until the bridge has its address (and so its route): other roots see it.
        let _machine = if spec.subnet.is_none() {
            Some(state::machine_lock()?)
        } else {
            None
        };
        let used: Vec<(String, Ipv4Net)> = lk
            .state
            .networks
            .values()
            .map(|n| (n.name.clone(), n.subnet))
            .collect();
        let subnet = match &spec.subnet {
            Some(s) => {
                let net = ipam::parse_subnet(name, s)?;
                ipam::check_subnet(name, net, &used)?;
                if let Some(r) = ipam::host_routes()
                    .into_iter()
                    .find(|r| r.prefix_len() > 0 && ipam::overlaps(r, &net))
                {
                    return Err(IpamError::Overlap {
                        network: name.to_owned(),
                        subnet: net,
                        other: format!("the host route {r}"),
                    }
                    .into());
                }
                net
            }
            None => ipam::pick_subnet(name, &self.pool, &used, &ipam::host_routes())?,
        };
        let gateway = match spec.gateway {
            Some(g) => {
                ipam::check_in_subnet(name, "gateway", g, subnet)?;
                g
            }
            None => Ipv4Addr::from(u32::from(subnet.network()) + 1),
        };
        let ip_range = match &spec.ip_range {
            Some(r) => {
                let r = ipam::parse_subnet(name, r)?;
                if !subnet.contains(&r) {
                    return Err(IpamError::Outside {
                        network: name.to_owned(),
                        what: "ip_range",
                        addr: r.to_string(),
                        subnet,
                    }
                    .into());
                }
                Some(r)
            }
            None => None,
        };
        let bridge = match &spec.bridge {
            Some(b) => {
                if b.is_empty() || b.len() > 15 || b.contains(['/', ' ', ':']) {
                    return Err(NetworkError::Invalid {
                        network: name.to_owned(),
                        what: "bridge name",
                        value: b.clone(),
                        reason: "must be 1-15 bytes without '/', ':' or spaces",
                    });
                }
                b.clone()
            }
            None => self.bridge_name(name),
        };
        if lk.state.networks.values().any(|n| n.bridge == bridge) {
            return Err(NetworkError::Invalid {
                network: name.to_owned(),
                what: "bridge name",
                value: bridge,
                reason: "already used by another network",
            });
        }
        if spec.bridge.is_some() {
            let exists = Netlink::open()
                .and_then(|mut nl| nl.link_index(&bridge))
                .map_err(|source| NetworkError::Bridge {
                    network: name.to_owned(),
                    bridge: bridge.clone(),
                    source,
                })?;
            if exists.is_some() {
                return Err(NetworkError::Invalid {
                    network: name.to_owned(),
                    what: "bridge name",
                    value: bridge,
                    reason: "an interface with that name already exists",
                });
            }
        }
        if let Some(mtu) = spec.mtu {
            if !(68..=65535).contains(&mtu) {
                return Err(NetworkError::Invalid {
                    network: name.to_owned(),
                    what: "mtu",
                    value: mtu.to_string(),
                    reason: "must be 68-65535",
                });
            }
        }
        let rec = NetworkRecord {
            name: name.to_owned(),
            bridge,
            subnet,
            gateway,
            ip_range,
            internal: spec.internal,
            mtu: spec.mtu,
            labels: spec.labels.clone(),
            endpoints: BTreeMap::new(),
        };
        // Recorded first: a crash from here on leaves something remove_all can find.
        lk.state.networks.insert(name.to_owned(), rec.clone());
        lk.save()?;
        let res = self.create_bridge(&rec).and_then(|()| {
            if let Some(before) =
                firewall::enable_forwarding().map_err(|source| NetworkError::Sysctl {
                    network: name.to_owned(),
                    path: "/proc/sys/net/ipv4/ip_forward".into(),
                    source,
                })?
            {
                if lk.state.ip_forward_before.is_none() {
                    lk.state.ip_forward_before = Some(before);
                    lk.save()?;
                }
            }
            self.sync_firewall(&mut lk)
        });
        if let Err(e) = res {
            warn!(network = name, error = %e, "creating network failed, rolling back");
            let _ = Netlink::open().and_then(|mut nl| nl.del_link(&rec.bridge));
            lk.state.networks.remove(name);
            let _ = lk.save();
            let _ = self.sync_firewall(&mut lk);
            return Err(e);
        }
        info!(network = name, bridge = %rec.bridge, %subnet, "network created");
        Ok(info(&rec))
    }

    fn create_bridge(&self, rec: &NetworkRecord) -> Result<()> {
        let err = |source| NetworkError::Bridge {
            network: rec.name.clone(),
            bridge: rec.bridge.clone(),
            source,
        };
        let mut nl = Netlink::open().map_err(err)?;
        if nl.link_index(&rec.bridge).map_err(err)?.is_none() {
            let h = Sha256::digest(rec.bridge.as_bytes());
            let mac = [0x02, 0x52, h[0], h[1], h[2], h[3]];
            nl.add_bridge(&rec.bridge, rec.mtu, mac).map_err(err)?;
        }
        match nl.add_address(&rec.bridge, rec.gateway, rec.subnet.prefix_len()) {
            Ok(()) => {}
            Err(NetlinkError::Request { source, .. })
                if source.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(err(e)),
        }
        firewall::enable_route_localnet(&rec.bridge).map_err(|source| NetworkError::Sysctl {
            network: rec.name.clone(),
            path: format!("/proc/sys/net/ipv4/conf/{}/route_localnet", rec.bridge),
            source,
        })?;
        Ok(())
    }

    /// Wires the namespace pinned at `netns` into `network`: a veth (`spec.ifname` inside,
    /// up, with its MAC), the address, loopback up, and the default route if asked.
    pub fn connect(&self, network: &str, netns: &Path, spec: &EndpointSpec) -> Result<Endpoint> {
        let mut lk = state::lock(&self.dir)?;
        let rec = lk
            .state
            .networks
            .get(network)
            .cloned()
            .ok_or_else(|| NetworkError::Unknown(network.to_owned()))?;
        let c = spec.container.as_str();
        if rec.endpoints.contains_key(c) {
            return Err(NetworkError::AlreadyConnected {
                network: network.to_owned(),
                container: c.to_owned(),
            });
        }
        let mut used: Vec<Ipv4Addr> = rec.endpoints.values().map(|e| e.ip).collect();
        used.push(rec.gateway);
        let ip = match spec.ipv4 {
            Some(ip) => {
                ipam::check_in_subnet(network, "ipv4_address", ip, rec.subnet)?;
                if let Some(by) = rec.endpoints.values().find(|e| e.ip == ip) {
                    return Err(IpamError::InUse {
                        network: network.to_owned(),
                        addr: ip,
                        by: format!("container {}", by.container),
                    }
                    .into());
                }
                if ip == rec.gateway {
                    return Err(IpamError::InUse {
                        network: network.to_owned(),
                        addr: ip,
                        by: "the gateway".into(),
                    }
                    .into());
                }
                ip
            }
            None => ipam::pick_address(
                network,
                rec.subnet,
                rec.ip_range.unwrap_or(rec.subnet),
                &used,
            )?,
        };
        let mac = match &spec.mac {
            Some(m) => parse_mac(m).ok_or_else(|| NetworkError::Invalid {
                network: network.to_owned(),
                what: "mac_address",
                value: m.clone(),
                reason: "expected six hex pairs like 02:42:0a:00:00:02, not multicast",
            })?,
            None => mac_for(ip),
        };
        let ep = EndpointRecord {
            container: c.to_owned(),
            ifname: spec.ifname.clone(),
            host_veth: self.veth_name(network, c),
            netns: netns.to_owned(),
            ip,
            mac: fmt_mac(&mac),
            names: spec.names.clone(),
            links: spec.links.clone(),
            dns: spec.dns.clone(),
        };
        lk.state
            .networks
            .get_mut(network)
            .expect("checked above")
            .endpoints
            .insert(c.to_owned(), ep.clone());
        lk.save()?;
        let err = |source| NetworkError::Endpoint {
            network: network.to_owned(),
            container: c.to_owned(),
            source,
        };
        let wire = || -> Result<()> {
            let mut nl = Netlink::open().map_err(err)?;
            let master =
                nl.link_index(&rec.bridge)
                    .map_err(err)?
                    .ok_or_else(|| NetworkError::Bridge {
                        network: network.to_owned(),
                        bridge: rec.bridge.clone(),
                        source: NetlinkError::Request {
                            op: "looking up bridge".into(),
                            source: std::io::Error::from_raw_os_error(libc::ENODEV),
                        },
                    })?;
            nl.add_veth(&ep.host_veth, master, &ep.ifname, netns, mac, rec.mtu)
                .map_err(err)?;
            // With br_netfilter (bridge-nf-call-iptables), DNAT happens while bridging: a
            // container reaching itself through a published port leaves and re-enters the
            // same bridge port, which the bridge refuses unless the port is in hairpin mode.
            let hp = format!("/sys/class/net/{}/brport/hairpin_mode", ep.host_veth);
            std::fs::write(&hp, "1").map_err(|source| NetworkError::Sysctl {
                network: network.to_owned(),
                path: hp.clone(),
                source,
            })?;
            let mut inner = Netlink::open_in(netns).map_err(err)?;
            inner.set_up_by_name("lo").map_err(err)?;
            inner
                .add_address(&ep.ifname, ip, rec.subnet.prefix_len())
                .map_err(err)?;
            inner.set_up_by_name(&ep.ifname).map_err(err)?;
            if spec.default_route {
                inner.add_default_route(rec.gateway).map_err(err)?;
            }
            Ok(())
        };
        if let Err(e) = wire() {
            warn!(network, container = c, error = %e, "connect failed, rolling back");
            let _ = Netlink::open().and_then(|mut nl| nl.del_link(&ep.host_veth));
            if let Some(n) = lk.state.networks.get_mut(network) {
                n.endpoints.remove(c);
            }
            let _ = lk.save();
            return Err(e);
        }
        debug!(network, container = c, %ip, "connected");
        Ok(Endpoint {
            network: network.to_owned(),
            container: c.to_owned(),
            ifname: ep.ifname,
            ip,
            prefix: rec.subnet.prefix_len(),
            gateway: rec.gateway,
            mac: ep.mac,
            host_veth: ep.host_veth,
        })
    }

    /// Removes `container`'s veth from `network` (its peer inside goes with it).
    pub fn disconnect(&self, network: &str, container: &str) -> Result<()> {
        let mut lk = state::lock(&self.dir)?;
        let rec = lk
            .state
            .networks
            .get_mut(network)
            .ok_or_else(|| NetworkError::Unknown(network.to_owned()))?;
        let ep =
            rec.endpoints
                .get(container)
                .cloned()
                .ok_or_else(|| NetworkError::NotConnected {
                    network: network.to_owned(),
                    container: container.to_owned(),
                })?;
        let err = |source| NetworkError::Endpoint {
            network: network.to_owned(),
            container: container.to_owned(),
            source,
        };
        Netlink::open()
            .and_then(|mut nl| nl.del_link(&ep.host_veth))
            .map_err(err)?;
        rec.endpoints.remove(container);
        lk.save()?;
        Ok(())
    }

    /// Forgets `container`'s endpoint on `network` without deleting its veth, for a caller
    /// that destroys the container's network namespace: the kernel then removes both ends of
    /// the veth with the namespace, for all namespaces that die together in one batch, where
    /// an `RTM_DELLINK` per veth waits for an RCU grace period under the rtnl lock each (tens
    /// of ms apiece, serialized). Returns the host-side veth name, so the caller can wait for
    /// it to go (or delete it if it does not).
    pub fn release(&self, network: &str, container: &str) -> Result<String> {
        let mut lk = state::lock(&self.dir)?;
        let rec = lk
            .state
            .networks
            .get_mut(network)
            .ok_or_else(|| NetworkError::Unknown(network.to_owned()))?;
        let ep = rec
            .endpoints
            .remove(container)
            .ok_or_else(|| NetworkError::NotConnected {
                network: network.to_owned(),
                container: container.to_owned(),
            })?;
        lk.save()?;
        Ok(ep.host_veth)
    }

    /// Deletes a host-side veth by name (after [`Networks::release`], when the namespace
    /// did not take it away). A missing link is not an error.
    pub fn delete_veth(&self, host_veth: &str) -> Result<()> {
        if !Path::new("/sys/class/net").join(host_veth).exists() {
            return Ok(());
        }
        Netlink::open()
            .and_then(|mut nl| nl.del_link(host_veth))
            .map(|_| ())
            .map_err(|source| NetworkError::Endpoint {
                network: String::new(),
                container: host_veth.to_owned(),
                source,
            })
    }

    /// Disconnects `container` from every network it is on (container removal).
    pub fn disconnect_all(&self, container: &str) -> Result<()> {
        let nets: Vec<String> = self
            .list()?
            .into_iter()
            .filter(|n| n.endpoints.contains_key(container))
            .map(|n| n.name)
            .collect();
        let mut errors = Vec::new();
        for n in nets {
            if let Err(e) = self.disconnect(&n, container) {
                errors.push(e);
            }
        }
        if let Err(e) = self.unpublish(container) {
            errors.push(e);
        }
        teardown_result(errors)
    }

    /// Removes every network without endpoints whose name `select` accepts (e.g. a
    /// project prefix); returns the names removed, sorted.
    pub fn prune(&self, select: impl Fn(&NetworkRecord) -> bool) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        let mut errors = Vec::new();
        for n in self.list()? {
            if n.endpoints.is_empty() && select(&n) {
                match self.remove_network(&n.name) {
                    Ok(()) => removed.push(n.name),
                    Err(e) => errors.push(e),
                }
            }
        }
        teardown_result(errors)?;
        removed.sort();
        Ok(removed)
    }

    /// Checks the ports of every container of a plan together (two services asking for the
    /// same host port clash too), before anything is created.
    pub fn check_all_ports(&self, requests: &[(String, Vec<PortSpec>)]) -> Result<()> {
        let st = state::read(&self.state_file())?;
        let mut taken: Vec<(String, PublishedPort)> = Vec::new();
        for (container, specs) in requests {
            ports::check_host_ips(container, specs)?;
            let mut in_use = in_use(&st, container);
            in_use.extend(taken.iter().filter(|(c, _)| c != container).cloned());
            let got = ports::resolve(
                container,
                Ipv4Addr::UNSPECIFIED,
                specs,
                &in_use,
                &ports::bindable,
            )?;
            taken.extend(got.into_iter().map(|p| (container.clone(), p)));
        }
        Ok(())
    }

    /// Checks that `specs` can be published for `container` (free host ports, valid ranges)
    /// without recording anything: call before anything starts.
    pub fn check_ports(&self, container: &str, specs: &[PortSpec]) -> Result<()> {
        ports::check_host_ips(container, specs)?;
        let st = state::read(&self.state_file())?;
        let in_use = in_use(&st, container);
        ports::resolve(
            container,
            Ipv4Addr::UNSPECIFIED,
            specs,
            &in_use,
            &ports::bindable,
        )?;
        Ok(())
    }

    /// Publishes `specs` of `container` to its address `target`: resolves random and ranged
    /// host ports, records them, and installs the DNAT rules. Replaces earlier mappings of
    /// that container.
    pub fn publish(
        &self,
        container: &str,
        target: Ipv4Addr,
        specs: &[PortSpec],
    ) -> Result<Vec<PublishedPort>> {
        ports::check_host_ips(container, specs)?;
        let mut lk = state::lock(&self.dir)?;
        let in_use = in_use(&lk.state, container);
        let resolved = ports::resolve(container, target, specs, &in_use, &ports::bindable)?;
        let before = lk
            .state
            .ports
            .insert(container.to_owned(), resolved.clone());
        lk.save()?;
        if let Err(e) = self.sync_firewall(&mut lk) {
            match before {
                Some(b) => lk.state.ports.insert(container.to_owned(), b),
                None => lk.state.ports.remove(container),
            };
            let _ = lk.save();
            let _ = self.sync_firewall(&mut lk);
            return Err(e);
        }
        Ok(resolved)
    }

    /// Removes `container`'s published ports.
    pub fn unpublish(&self, container: &str) -> Result<()> {
        let mut lk = state::lock(&self.dir)?;
        if lk.state.ports.remove(container).is_some() {
            lk.save()?;
            self.sync_firewall(&mut lk)?;
        }
        Ok(())
    }

    /// Removes a network: the bridge (with its address and routes) and its firewall rules.
    /// Refused while containers are connected (disconnect the project's own first; others,
    /// e.g. of a project using it as `external`, keep it alive). Never call it for a network
    /// the project only references as `external`.
    pub fn remove_network(&self, name: &str) -> Result<()> {
        let mut lk = state::lock(&self.dir)?;
        let rec = lk
            .state
            .networks
            .get(name)
            .cloned()
            .ok_or_else(|| NetworkError::Unknown(name.to_owned()))?;
        if !rec.endpoints.is_empty() {
            return Err(NetworkError::InUse {
                network: name.to_owned(),
                containers: rec.endpoints.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        let mut errors = Vec::new();
        self.delete_links(&rec, &mut errors);
        if errors.is_empty() {
            lk.state.networks.remove(name);
            lk.save()?;
        }
        if let Err(e) = self.sync_firewall(&mut lk) {
            errors.push(e);
        }
        info!(network = name, "network removed");
        teardown_result(errors)
    }

    fn delete_links(&self, rec: &NetworkRecord, errors: &mut Vec<NetworkError>) {
        let mut nl = match Netlink::open() {
            Ok(nl) => nl,
            Err(source) => {
                errors.push(NetworkError::Bridge {
                    network: rec.name.clone(),
                    bridge: rec.bridge.clone(),
                    source,
                });
                return;
            }
        };
        for ep in rec.endpoints.values() {
            if let Err(source) = nl.del_link(&ep.host_veth) {
                errors.push(NetworkError::Endpoint {
                    network: rec.name.clone(),
                    container: ep.container.clone(),
                    source,
                });
            }
        }
        if let Err(source) = nl.del_link(&rec.bridge) {
            errors.push(NetworkError::Bridge {
                network: rec.name.clone(),
                bridge: rec.bridge.clone(),
                source,
            });
        }
    }

    /// Removes everything the state of this root records: every veth, bridge, port mapping
    /// and the nft table, also after a crash of the process that made them. Keeps going on
    /// errors and reports them all.
    pub fn remove_all(&self) -> Result<()> {
        let mut lk = state::lock(&self.dir)?;
        let mut errors = Vec::new();
        let names: Vec<String> = lk.state.networks.keys().cloned().collect();
        for name in names {
            let rec = lk.state.networks[&name].clone();
            let before = errors.len();
            self.delete_links(&rec, &mut errors);
            if errors.len() == before {
                lk.state.networks.remove(&name);
            }
        }
        lk.state.ports.clear();
        if let Err(e) = lk.save() {
            errors.push(e.into());
        }
        if let Some(t) = lk.state.nft_table.clone() {
            match self.firewall.remove(&t) {
                Ok(()) if lk.state.networks.is_empty() => lk.state.nft_table = None,
                Ok(()) => {}
                Err(e) => errors.push(e.into()),
            }
        }
        if let Err(e) = lk.save() {
            errors.push(e.into());
        }
        teardown_result(errors)
    }

    /// Kernel objects of this root that exist right now, for leak checks after `down`:
    /// interfaces named with [`Networks::iface_prefix`] or recorded as bridges, and the nft
    /// table. Empty when everything is gone.
    pub fn leftovers(&self) -> Result<Vec<String>> {
        let recorded: Vec<String> = state::read(&self.state_file())?
            .networks
            .into_values()
            .map(|n| n.bridge)
            .collect();
        let prefix = self.iface_prefix();
        let mut out: Vec<String> = Netlink::open()
            .and_then(|mut nl| nl.link_names())
            .map_err(|source| NetworkError::Bridge {
                network: "*".into(),
                bridge: prefix.clone(),
                source,
            })?
            .into_iter()
            .filter(|n| n.starts_with(&prefix) || recorded.contains(n))
            .map(|n| format!("interface {n}"))
            .collect();
        if self.firewall.exists(&self.nft_table())? {
            out.push(format!("nft table ip {}", self.nft_table()));
        }
        out.sort();
        Ok(out)
    }

    /// The DNS server settings of `network`: on its gateway port 53, upstreams as given
    /// (normally [`crate::dns::host_resolvers`]), following the state file.
    pub fn dns_config(&self, network: &str, upstreams: Vec<SocketAddr>) -> Result<DnsConfig> {
        let rec = self.inspect(network)?;
        Ok(DnsConfig {
            listen: SocketAddr::new(rec.gateway.into(), 53),
            subnet: rec.subnet,
            upstreams,
            forward: !rec.internal,
            reload: Some((self.state_file(), network.to_owned())),
        })
    }
}

fn info(rec: &NetworkRecord) -> NetworkInfo {
    NetworkInfo {
        name: rec.name.clone(),
        bridge: rec.bridge.clone(),
        subnet: rec.subnet,
        gateway: rec.gateway,
        internal: rec.internal,
    }
}

fn in_use(st: &State, except: &str) -> Vec<(String, PublishedPort)> {
    st.ports
        .iter()
        .filter(|(c, _)| c.as_str() != except)
        .flat_map(|(c, ps)| ps.iter().map(move |p| (c.clone(), p.clone())))
        .collect()
}

fn teardown_result(errors: Vec<NetworkError>) -> Result<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(NetworkError::Teardown(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_include_root_hash() {
        let a = Networks::new(Path::new("/tmp/root-a"));
        let b = Networks::new(Path::new("/tmp/root-b"));
        let ba = a.bridge_name("proj_default");
        assert!(ba.len() <= 15 && ba.starts_with(&a.iface_prefix()));
        assert_ne!(ba, b.bridge_name("proj_default"));
        let v = a.veth_name("proj_default", "proj-web-1");
        assert!(v.len() <= 15 && v.starts_with(&a.iface_prefix()));
        assert_ne!(a.nft_table(), b.nft_table());
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:42:0A:00:00:02"), Some([2, 0x42, 10, 0, 0, 2]));
        assert_eq!(parse_mac("01:00:5e:00:00:01"), None);
        assert_eq!(parse_mac("02:42:0a:00:00"), None);
        assert_eq!(
            fmt_mac(&mac_for("10.1.2.3".parse().unwrap())),
            "02:42:0a:01:02:03"
        );
    }
}
