//! The embedded DNS server of a network: listens on the gateway address (UDP and TCP), answers
//! A and PTR queries for the names of containers on that network (service names with all
//! replicas in rotating order, container names, hostnames, aliases, `links`) only to askers
//! from that network's subnet, and forwards everything else to the host's resolvers. It runs
//! in the host namespace, so a host stub resolver on 127.0.0.x works as upstream.
//!
//! Plain std threads (the supervisor is tokio, but this keeps the API sync); the name table
//! is swapped at runtime through [`arc_swap`], and reloaded from the state file when that
//! changes, so a `connect` by any process is seen on the next query.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use ipnet::Ipv4Net;
use nix::sys::socket::{shutdown, Shutdown};
use tracing::{debug, warn};

use crate::state::NetworkRecord;

/// TTL of local answers (as Docker's embedded server).
const TTL: u32 = 600;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// How often an idle server checks that its network still exists.
const GONE_CHECK: Duration = Duration::from_secs(1);

/// Errors starting the DNS server; each names the listen address.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("dns server on {addr}: binding {proto}: {source}")]
    Bind {
        addr: SocketAddr,
        proto: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl DnsError {
    /// True when another process already listens on the address: every server of a state
    /// root follows the same state file, so one server per network is enough (e.g. a
    /// project joining a network as `external` need not start its own).
    pub fn is_addr_in_use(&self) -> bool {
        match self {
            DnsError::Bind { source, .. } => source.kind() == std::io::ErrorKind::AddrInUse,
        }
    }
}

/// Names of one network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameTable {
    names: HashMap<String, Vec<Ipv4Addr>>,
    reverse: HashMap<Ipv4Addr, String>,
    /// Per asker: `links` alias → target name.
    links: HashMap<Ipv4Addr, HashMap<String, String>>,
    /// Per asker: names of the asker's other networks (a container on several networks
    /// asks only its first network's server, as with Docker's single 127.0.0.11).
    extra: HashMap<Ipv4Addr, HashMap<String, Vec<Ipv4Addr>>>,
    /// Per asker: its own upstream resolvers (`dns:`), port 53.
    upstreams: HashMap<Ipv4Addr, Vec<SocketAddr>>,
}

fn norm(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl NameTable {
    /// The names of every endpoint of `net`; replicas are ordered by address.
    pub fn from_record(net: &NetworkRecord) -> NameTable {
        let mut t = NameTable::default();
        let mut eps: Vec<_> = net.endpoints.values().collect();
        eps.sort_by_key(|e| e.ip);
        for e in eps {
            for n in &e.names {
                t.insert(n, e.ip);
            }
            t.reverse.insert(e.ip, e.container.clone());
            if !e.dns.is_empty() {
                t.upstreams.insert(
                    e.ip,
                    e.dns.iter().map(|ip| SocketAddr::new(*ip, 53)).collect(),
                );
            }
            if !e.links.is_empty() {
                t.links.insert(
                    e.ip,
                    e.links.iter().map(|(a, n)| (norm(a), norm(n))).collect(),
                );
            }
        }
        t
    }

    /// The names of `network` in `state`, plus, for each of its containers, the names of
    /// the other networks that container is on.
    pub fn from_state(state: &crate::state::State, network: &str) -> NameTable {
        let Some(net) = state.networks.get(network) else {
            return NameTable::default();
        };
        let mut t = NameTable::from_record(net);
        for (container, ep) in &net.endpoints {
            for other in state.networks.values() {
                if other.name == net.name || !other.endpoints.contains_key(container) {
                    continue;
                }
                let mut eps: Vec<_> = other.endpoints.values().collect();
                eps.sort_by_key(|e| e.ip);
                let extra = t.extra.entry(ep.ip).or_default();
                for e in eps {
                    for n in &e.names {
                        let v = extra.entry(norm(n)).or_default();
                        if !v.contains(&e.ip) {
                            v.push(e.ip);
                        }
                    }
                }
            }
        }
        t
    }

    /// Adds `name` → `ip` (deduplicated).
    pub fn insert(&mut self, name: &str, ip: Ipv4Addr) {
        let v = self.names.entry(norm(name)).or_default();
        if !v.contains(&ip) {
            v.push(ip);
        }
    }

    /// The addresses `name` has for `asker`.
    pub fn lookup(&self, asker: Ipv4Addr, name: &str) -> Option<&[Ipv4Addr]> {
        let mut n = norm(name);
        if let Some(target) = self.links.get(&asker).and_then(|l| l.get(&n)) {
            n = target.clone();
        }
        self.names
            .get(&n)
            .or_else(|| self.extra.get(&asker).and_then(|x| x.get(&n)))
            .map(Vec::as_slice)
    }

    /// The upstream resolvers of `asker` (its `dns:`), if it has its own.
    pub fn upstreams(&self, asker: Ipv4Addr) -> Option<&[SocketAddr]> {
        self.upstreams.get(&asker).map(Vec::as_slice)
    }

    /// The container name of `ip`.
    pub fn reverse(&self, ip: Ipv4Addr) -> Option<&str> {
        self.reverse.get(&ip).map(String::as_str)
    }
}

/// What to do with a query.
#[derive(Debug)]
pub enum Verdict {
    /// Answer locally with this message.
    Answer(Message),
    /// Send the raw query to the upstream resolvers.
    Forward,
}

/// Decides the reply to `req` from `asker`; `turn` rotates replicas.
pub fn decide(
    table: &NameTable,
    subnet: Ipv4Net,
    forward: bool,
    asker: Ipv4Addr,
    req: &Message,
    turn: usize,
) -> Verdict {
    let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.queries = req.queries.clone();
    let fail = |mut resp: Message, code| {
        resp.metadata.response_code = code;
        Verdict::Answer(resp)
    };
    if req.metadata.message_type != MessageType::Query || req.metadata.op_code != OpCode::Query {
        return fail(resp, ResponseCode::NotImp);
    }
    let [q] = req.queries.as_slice() else {
        return fail(resp, ResponseCode::FormErr);
    };
    let qname = q.name().to_ascii();
    if q.query_type() == RecordType::PTR {
        if let Some(ip) = parse_arpa(&qname) {
            if let Some(c) = table.reverse(ip) {
                if let Ok(target) = Name::from_ascii(format!("{c}.")) {
                    resp.metadata.authoritative = true;
                    resp.add_answer(Record::from_rdata(
                        q.name().clone(),
                        TTL,
                        RData::PTR(PTR(target)),
                    ));
                    return Verdict::Answer(resp);
                }
            }
            if subnet.contains(&ip) {
                resp.metadata.authoritative = true;
                return fail(resp, ResponseCode::NXDomain);
            }
        }
    } else if let Some(ips) = table.lookup(asker, &qname) {
        resp.metadata.authoritative = true;
        if matches!(q.query_type(), RecordType::A | RecordType::ANY) {
            let n = ips.len();
            for i in 0..n {
                let ip = ips[(turn + i) % n];
                resp.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(ip))));
            }
        }
        // Other types of a known name: an empty NOERROR answer (no AAAA, no MX).
        return Verdict::Answer(resp);
    }
    if forward {
        Verdict::Forward
    } else {
        fail(resp, ResponseCode::ServFail)
    }
}

fn parse_arpa(name: &str) -> Option<Ipv4Addr> {
    let rest = norm(name);
    let rest = rest.strip_suffix(".in-addr.arpa")?;
    let parts: Vec<u8> = rest
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [d, c, b, a] = parts.as_slice() else {
        return None;
    };
    Some(Ipv4Addr::new(*a, *b, *c, *d))
}

/// Nameservers of a resolv.conf text, port 53.
pub fn resolv_conf_servers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "nameserver")
                .then(|| w.next())
                .flatten()
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

/// The host's resolvers from `/etc/resolv.conf`.
pub fn host_resolvers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .map(|t| resolv_conf_servers(&t))
        .unwrap_or_default()
}

/// How a DNS server is set up.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Address to bind (the gateway) and port (53; tests may pick another).
    pub listen: SocketAddr,
    /// Only askers from this subnet get answers.
    pub subnet: Ipv4Net,
    /// Upstream resolvers for other names (the host's).
    pub upstreams: Vec<SocketAddr>,
    /// Forward unknown names (false for internal networks).
    pub forward: bool,
    /// Reload the table from this state file and network when the file changes.
    pub reload: Option<(PathBuf, String)>,
}

struct Shared {
    cfg: DnsConfig,
    /// Clones of the listening sockets, to wake the loops (`shutdown(2)`); dropped then,
    /// so the sockets close as soon as the loops end.
    wakers: Mutex<Option<(UdpSocket, TcpListener)>>,
    table: ArcSwap<NameTable>,
    turn: AtomicUsize,
    stop: AtomicBool,
    stamp: Mutex<Option<SystemTime>>,
}

impl Shared {
    /// Stops both loops: the flag, then `shutdown(2)` on the sockets, which wakes a blocked
    /// `recv`/`accept` even when the gateway address is already gone.
    fn wake(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let taken = self.wakers.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((udp, tcp)) = taken {
            let _ = shutdown(udp.as_raw_fd(), Shutdown::Both);
            let _ = shutdown(tcp.as_raw_fd(), Shutdown::Both);
        }
    }

    /// True when the state no longer has this network (removed, maybe by another process):
    /// the server then stops, so no listener outlives its network.
    fn network_gone(&self) -> bool {
        let Some((path, net)) = &self.cfg.reload else {
            return false;
        };
        crate::state::read(path).is_ok_and(|st| !st.networks.contains_key(net))
    }

    fn refresh(&self) {
        let Some((path, net)) = &self.cfg.reload else {
            return;
        };
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let mut stamp = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        if *stamp == mtime {
            return;
        }
        if let Ok(st) = crate::state::read(path) {
            let t = NameTable::from_state(&st, net);
            self.table.store(Arc::new(t));
            *stamp = mtime;
        }
    }

    /// Handles one raw query; returns the raw reply (None = drop).
    fn handle(&self, asker: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
        let SocketAddr::V4(a) = asker else {
            return None;
        };
        if !self.cfg.subnet.contains(a.ip()) {
            debug!(%asker, "dns: refusing asker outside the network");
            let req = Message::from_vec(query).ok()?;
            let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
            resp.queries = req.queries;
            resp.metadata.response_code = ResponseCode::Refused;
            return resp.to_vec().ok();
        }
        let req = Message::from_vec(query).ok()?;
        self.refresh();
        // Only A queries turn the rotation: resolvers ask A and AAAA in pairs.
        let turn = if req.queries.first().map(|q| q.query_type()) == Some(RecordType::A) {
            self.turn.fetch_add(1, Ordering::Relaxed)
        } else {
            self.turn.load(Ordering::Relaxed)
        };
        match decide(
            &self.table.load(),
            self.cfg.subnet,
            self.cfg.forward,
            *a.ip(),
            &req,
            turn,
        ) {
            Verdict::Answer(m) => m.to_vec().ok(),
            Verdict::Forward => {
                let table = self.table.load();
                let ups = table.upstreams(*a.ip()).unwrap_or(&self.cfg.upstreams);
                forward(ups, query)
            }
            .or_else(|| {
                let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
                resp.queries = req.queries;
                resp.metadata.response_code = ResponseCode::ServFail;
                resp.to_vec().ok()
            }),
        }
    }
}

/// Sends `query` over UDP to each upstream in turn; the first reply wins.
fn forward(upstreams: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    for up in upstreams {
        let bind: SocketAddr = if up.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let Ok(s) = UdpSocket::bind(bind) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(UPSTREAM_TIMEOUT));
        if s.send_to(query, up).is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        match s.recv_from(&mut buf) {
            Ok((n, from)) if from == *up => {
                buf.truncate(n);
                return Some(buf);
            }
            _ => warn!(upstream = %up, "dns: no answer from upstream"),
        }
    }
    None
}

/// A running DNS server; stops when dropped.
pub struct DnsServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds UDP and TCP on `cfg.listen` and starts answering with `table`.
    pub fn start(cfg: DnsConfig, table: NameTable) -> Result<DnsServer, DnsError> {
        let udp = UdpSocket::bind(cfg.listen).map_err(|source| DnsError::Bind {
            addr: cfg.listen,
            proto: "udp",
            source,
        })?;
        let addr = udp.local_addr().map_err(|source| DnsError::Bind {
            addr: cfg.listen,
            proto: "udp",
            source,
        })?;
        let tcp = TcpListener::bind(addr).map_err(|source| DnsError::Bind {
            addr,
            proto: "tcp",
            source,
        })?;
        let clone_err = |proto, source| DnsError::Bind {
            addr,
            proto,
            source,
        };
        let shared = Arc::new(Shared {
            wakers: Mutex::new(Some((
                udp.try_clone().map_err(|e| clone_err("udp", e))?,
                tcp.try_clone().map_err(|e| clone_err("tcp", e))?,
            ))),
            cfg,
            table: ArcSwap::from_pointee(table),
            turn: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            stamp: Mutex::new(None),
        });
        shared.refresh();
        let mut threads = Vec::new();
        let s = shared.clone();
        threads.push(std::thread::spawn(move || udp_loop(&s, udp)));
        let s = shared.clone();
        threads.push(std::thread::spawn(move || tcp_loop(&s, tcp)));
        debug!(%addr, "dns server started");
        Ok(DnsServer {
            shared,
            addr,
            threads,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the name table.
    pub fn set_table(&self, table: NameTable) {
        self.shared.table.store(Arc::new(table));
    }

    /// Stops the listeners and waits for them.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// False once the server stopped (also by itself, when its network was removed).
    pub fn is_running(&self) -> bool {
        !self.shared.stop.load(Ordering::SeqCst)
    }

    fn shutdown(&mut self) {
        self.shared.wake();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        debug!(addr = %self.addr, "dns server stopped");
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.shutdown();
        }
    }
}

fn udp_loop(shared: &Arc<Shared>, udp: UdpSocket) {
    let udp = Arc::new(udp);
    let _ = udp.set_read_timeout(Some(GONE_CHECK));
    let mut buf = vec![0u8; 4096];
    while !shared.stop.load(Ordering::SeqCst) {
        let (n, from) = match udp.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if shared.network_gone() {
                    debug!("dns: network removed, stopping");
                    shared.wake();
                }
                continue;
            }
            Err(_) => continue,
        };
        if n == 0 && shared.stop.load(Ordering::SeqCst) {
            break;
        }
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let query = buf[..n].to_vec();
        let quick = Message::from_vec(&query)
            .ok()
            .map(|m| {
                let asker = match from {
                    SocketAddr::V4(a) => *a.ip(),
                    SocketAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
                };
                !shared.cfg.subnet.contains(&asker)
                    || !matches!(
                        decide(
                            &shared.table.load(),
                            shared.cfg.subnet,
                            shared.cfg.forward,
                            asker,
                            &m,
                            0
                        ),
                        Verdict::Forward
                    )
            })
            .unwrap_or(true);
        if quick {
            if let Some(reply) = shared.handle(from, &query) {
                let _ = udp.send_to(&reply, from);
            }
        } else {
            // Forwarded queries wait on the upstream: off the receive loop.
            let (s, u) = (shared.clone(), udp.clone());
            std::thread::spawn(move || {
                if let Some(reply) = s.handle(from, &query) {
                    let _ = u.send_to(&reply, from);
                }
            });
        }
    }
}

fn tcp_loop(shared: &Arc<Shared>, tcp: TcpListener) {
    while !shared.stop.load(Ordering::SeqCst) {
        let Ok((mut conn, from)) = tcp.accept() else {
            if !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            continue;
        };
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let s = shared.clone();
        std::thread::spawn(move || {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            loop {
                let mut len = [0u8; 2];
                if conn.read_exact(&mut len).is_err() {
                    return;
                }
                let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                if conn.read_exact(&mut q).is_err() {
                    return;
                }
                let Some(reply) = s.handle(from, &q) else {
                    return;
                };
                let mut out = (reply.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&reply);
                if conn.write_all(&out).is_err() {
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn table() -> NameTable {
        let mut t = NameTable::default();
        for (n, ip) in [
            ("web", "10.1.0.2"),
            ("web", "10.1.0.3"),
            ("p-web-1", "10.1.0.2"),
            ("db", "10.1.0.4"),
        ] {
            t.insert(n, ip.parse().unwrap());
        }
        t.reverse
            .insert("10.1.0.4".parse().unwrap(), "p-db-1".into());
        t.links.insert(
            "10.1.0.2".parse().unwrap(),
            [("database".to_owned(), "db".to_owned())].into(),
        );
        t
    }

    fn query(name: &str, ty: RecordType) -> Message {
        let mut m = Message::query();
        m.metadata.id = 7;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), ty));
        m
    }

    fn ask(name: &str, ty: RecordType, asker: &str, turn: usize) -> Verdict {
        decide(
            &table(),
            "10.1.0.0/24".parse().unwrap(),
            true,
            asker.parse().unwrap(),
            &query(name, ty),
            turn,
        )
    }

    fn a_records(v: Verdict) -> Vec<String> {
        let Verdict::Answer(m) = v else {
            panic!("forwarded")
        };
        m.answers.iter().map(|r| r.data.to_string()).collect()
    }

    #[test]
    fn service_names_rotate_replicas() {
        assert_eq!(
            a_records(ask("web.", RecordType::A, "10.1.0.9", 0)),
            ["10.1.0.2", "10.1.0.3"]
        );
        assert_eq!(
            a_records(ask("WEB", RecordType::A, "10.1.0.9", 1)),
            ["10.1.0.3", "10.1.0.2"]
        );
        assert!(a_records(ask("web", RecordType::AAAA, "10.1.0.9", 0)).is_empty());
    }

    #[test]
    fn links_only_for_the_linking_container() {
        assert_eq!(
            a_records(ask("database", RecordType::A, "10.1.0.2", 0)),
            ["10.1.0.4"]
        );
        assert!(matches!(
            ask("database", RecordType::A, "10.1.0.3", 0),
            Verdict::Forward
        ));
    }

    #[test]
    fn reverse_and_forwarding() {
        assert_eq!(
            a_records(ask(
                "4.0.1.10.in-addr.arpa.",
                RecordType::PTR,
                "10.1.0.9",
                0
            )),
            ["p-db-1."]
        );
        let Verdict::Answer(m) = ask("99.0.1.10.in-addr.arpa.", RecordType::PTR, "10.1.0.9", 0)
        else {
            panic!()
        };
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(matches!(
            ask("example.org.", RecordType::A, "10.1.0.9", 0),
            Verdict::Forward
        ));
        assert!(matches!(
            ask("1.2.0.192.in-addr.arpa.", RecordType::PTR, "10.1.0.9", 0),
            Verdict::Forward
        ));
    }

    #[test]
    fn containers_on_several_networks_resolve_all_their_networks() {
        use crate::state::{EndpointRecord, NetworkRecord, State};
        let ep = |c: &str, ip: &str, names: &[&str]| EndpointRecord {
            container: c.into(),
            ifname: "eth0".into(),
            host_veth: "v".into(),
            netns: "/x".into(),
            ip: ip.parse().unwrap(),
            mac: String::new(),
            names: names.iter().map(|s| s.to_string()).collect(),
            links: Default::default(),
            dns: Vec::new(),
        };
        let net = |name: &str, sub: &str, eps: Vec<EndpointRecord>| NetworkRecord {
            name: name.into(),
            bridge: format!("br-{name}"),
            subnet: sub.parse().unwrap(),
            gateway: "10.0.0.1".parse().unwrap(),
            ip_range: None,
            internal: false,
            mtu: None,
            labels: Default::default(),
            endpoints: eps.into_iter().map(|e| (e.container.clone(), e)).collect(),
        };
        let mut st = State::default();
        st.networks.insert(
            "front".into(),
            net(
                "front",
                "10.1.0.0/24",
                vec![
                    ep("app", "10.1.0.2", &["app"]),
                    ep("web", "10.1.0.3", &["web"]),
                ],
            ),
        );
        st.networks.insert(
            "back".into(),
            net(
                "back",
                "10.2.0.0/24",
                vec![
                    ep("app", "10.2.0.2", &["app"]),
                    ep("db", "10.2.0.3", &["db"]),
                ],
            ),
        );
        let t = NameTable::from_state(&st, "front");
        let app: Ipv4Addr = "10.1.0.2".parse().unwrap();
        let web: Ipv4Addr = "10.1.0.3".parse().unwrap();
        assert_eq!(
            t.lookup(app, "db"),
            Some(&["10.2.0.3".parse().unwrap()][..])
        );
        assert_eq!(t.lookup(web, "db"), None, "web is not on back");
        assert_eq!(t.lookup(app, "web"), Some(&[web][..]));
    }

    #[test]
    fn resolv_conf_nameservers() {
        let t = "# x\nnameserver 127.0.0.53\nsearch a\nnameserver ::1\n";
        assert_eq!(
            resolv_conf_servers(t),
            vec![
                "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
    }
}
