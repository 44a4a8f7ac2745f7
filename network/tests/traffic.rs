//! Privileged: real traffic between namespaces through rcompose networks — DNS by service
//! name, alias, replica and PTR with forwarding; published ports from the host (127.0.0.1
//! and the host's address), hairpin and UDP; outbound NAT to a fake outside host; isolation
//! between networks; internal networks. State checked with `ip -j` and `nft -j`.

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record};
use network::{DnsServer, EndpointSpec, NameTable, Netns, NetworkSpec, PortSpec, Proto};

fn spec(name: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        ..Default::default()
    }
}

fn ep(container: &str, names: &[&str]) -> EndpointSpec {
    EndpointSpec {
        container: container.into(),
        ifname: "eth0".into(),
        names: names.iter().map(|s| s.to_string()).collect(),
        default_route: true,
        ..Default::default()
    }
}

/// A fake upstream resolver on a loopback address (like a host stub resolver) answering
/// every A query with `answer`.
struct FakeUpstream {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeUpstream {
    fn start(bind: &str, answer: Ipv4Addr) -> FakeUpstream {
        let sock = UdpSocket::bind(bind).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !s.load(Ordering::SeqCst) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut r = Message::response(q.metadata.id, q.metadata.op_code);
                r.metadata.recursion_desired = true;
                r.metadata.recursion_available = true;
                r.queries = q.queries.clone();
                if let Some(qq) = q.queries.first() {
                    if qq.query_type() == hickory_proto::rr::RecordType::A {
                        r.add_answer(Record::from_rdata(
                            qq.name().clone(),
                            60,
                            RData::A(A(answer)),
                        ));
                    }
                }
                let _ = sock.send_to(&r.to_vec().unwrap(), from);
            }
        });
        FakeUpstream {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Addresses from busybox nslookup output (after the server lines).
fn nslookup(pin: &std::path::Path, name: &str, server: Ipv4Addr) -> anyhow::Result<Vec<String>> {
    let out = run_in(
        pin,
        &[
            "timeout",
            "5",
            "/usr/bin/busybox",
            "nslookup",
            "-type=a",
            name,
            &server.to_string(),
        ],
    )?;
    let mut seen_name = false;
    let mut addrs = Vec::new();
    for l in out.lines() {
        if l.starts_with("Name:") {
            seen_name = true;
        }
        if let (true, Some(a)) = (seen_name, l.strip_prefix("Address:")) {
            addrs.push(a.trim().to_owned());
        }
    }
    anyhow::ensure!(!addrs.is_empty(), "no answer for {name}: {out}");
    Ok(addrs)
}

#[test]
fn dns_answers_names_aliases_replicas_reverse_and_forwards_the_rest() {
    let mut env = Env::new("10.213.20.0/23");
    let upstream = FakeUpstream::start("127.0.0.1:0", Ipv4Addr::new(10, 213, 200, 200));
    // p-web-2's own `dns:` resolver.
    let own = FakeUpstream::start("127.0.213.20:53", Ipv4Addr::new(10, 213, 201, 201));
    let net = env.nets.ensure_network(&spec("p_default")).unwrap();
    let w1 = env.netns("web1");
    let w2 = env.netns("web2");
    let c = env.netns("client");
    let mut e1 = ep("p-web-1", &["web", "p-web-1", "frontend"]);
    e1.ipv4 = Some("10.213.20.11".parse().unwrap());
    env.nets.connect("p_default", &w1, &e1).unwrap();
    let mut e2 = ep("p-web-2", &["web", "p-web-2", "frontend"]);
    e2.ipv4 = Some("10.213.20.12".parse().unwrap());
    e2.dns = vec!["127.0.213.20".parse().unwrap()];
    env.nets.connect("p_default", &w2, &e2).unwrap();
    let mut ec = ep("p-client-1", &["client", "p-client-1", "myhost"]);
    ec.links = BTreeMap::from([("db".to_owned(), "p-web-1".to_owned())]);
    env.nets.connect("p_default", &c, &ec).unwrap();

    let cfg = env
        .nets
        .dns_config("p_default", vec![upstream.addr])
        .unwrap();
    assert_eq!(cfg.listen, SocketAddr::new(net.gateway.into(), 53));
    let server = DnsServer::start(cfg, NameTable::default()).unwrap();
    let gw = net.gateway;

    // Service name: every replica, in rotating order.
    let first = eventually(Duration::from_secs(5), || nslookup(&c, "web", gw)).unwrap();
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(sorted, ["10.213.20.11", "10.213.20.12"]);
    let second = nslookup(&c, "web", gw).unwrap();
    assert_ne!(first, second, "replicas must rotate");
    // Container name, alias, hostname, links.
    assert_eq!(nslookup(&c, "p-web-2", gw).unwrap(), ["10.213.20.12"]);
    assert_eq!(nslookup(&w1, "myhost", gw).unwrap().len(), 1);
    assert_eq!(nslookup(&c, "db", gw).unwrap(), ["10.213.20.11"]);
    assert!(
        nslookup(&w1, "db", gw).unwrap() == ["10.213.200.200"],
        "links are per container"
    );
    // Everything else goes to the host's resolver (here a 127.0.0.1 stub).
    assert_eq!(
        nslookup(&c, "example.test", gw).unwrap(),
        ["10.213.200.200"]
    );
    // ... except for a container with its own `dns:`.
    assert_eq!(
        nslookup(&w2, "example.test", gw).unwrap(),
        ["10.213.201.201"]
    );
    drop(own);
    // Reverse lookup.
    let out = run_in(
        &c,
        &[
            "timeout",
            "5",
            "/usr/bin/busybox",
            "nslookup",
            "10.213.20.12",
            &gw.to_string(),
        ],
    )
    .unwrap();
    assert!(out.contains("p-web-2"), "{out}");

    // Askers from another network get nothing.
    let other = env.nets.ensure_network(&spec("p_other")).unwrap();
    let o = env.netns("other");
    env.nets
        .connect("p_other", &o, &ep("p-o-1", &["o"]))
        .unwrap();
    assert!(other.subnet != net.subnet);
    assert!(nslookup(&o, "web", gw).is_err());

    // A disconnected replica disappears from the answers (table follows the state file).
    env.nets.disconnect("p_default", "p-web-2").unwrap();
    eventually(Duration::from_secs(5), || {
        let a = nslookup(&c, "web", gw)?;
        anyhow::ensure!(a == ["10.213.20.11"], "{a:?}");
        Ok(())
    })
    .unwrap();

    // The same over TCP (truncated answers are retried over TCP by resolvers).
    let mut tcp = Netns::run_in(&c, move || std::net::TcpStream::connect((gw, 53)))
        .unwrap()
        .unwrap();
    let mut q = Message::query();
    q.metadata.id = 42;
    q.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii("frontend.").unwrap(),
        hickory_proto::rr::RecordType::A,
    ));
    let body = q.to_vec().unwrap();
    let mut framed = (body.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&body);
    use std::io::{Read, Write};
    tcp.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    tcp.read_exact(&mut len).unwrap();
    let mut reply = vec![0u8; u16::from_be_bytes(len) as usize];
    tcp.read_exact(&mut reply).unwrap();
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!(reply.metadata.id, 42);
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(reply.answers[0].data.to_string(), "10.213.20.11");
    drop(tcp);

    server.stop();
    // The listener is gone.
    assert!(UdpSocket::bind(SocketAddr::new(gw.into(), 53)).is_ok());
    env.finish();
}

/// The host's first global IPv4 address (not loopback).
fn host_address() -> Ipv4Addr {
    let v = ip_json(None, &["-4", "addr", "show", "scope", "global"]);
    v.as_array()
        .unwrap()
        .iter()
        .filter(|l| !l["ifname"].as_str().unwrap_or("").starts_with("rc"))
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .find_map(|a| a["local"].as_str().and_then(|s| s.parse().ok()))
        .expect("a global IPv4 address on the host")
}

#[test]
fn published_ports_work_from_host_loopback_host_address_hairpin_and_udp() {
    let mut env = Env::new("10.213.24.0/23");
    env.nets.ensure_network(&spec("p_default")).unwrap();
    let web = env.netns("web");
    let client = env.netns("client");
    let ew = env
        .nets
        .connect("p_default", &web, &ep("p-web-1", &["web"]))
        .unwrap();
    env.nets
        .connect("p_default", &client, &ep("p-client-1", &["client"]))
        .unwrap();
    env.httpd(&web, 80, &[("index.html", b"web\n")]);
    // A UDP echo server inside the container namespace.
    let udp = Netns::run_in(&web, || UdpSocket::bind("0.0.0.0:7000").unwrap()).unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();

    let fixed = free_port();
    let udp_port = free_port();
    let specs = vec![
        PortSpec {
            host_ip: Some(Ipv4Addr::LOCALHOST),
            host_ports: Some((fixed, fixed)),
            container_ports: (80, 80),
            proto: Proto::Tcp,
        },
        PortSpec {
            host_ip: None,
            host_ports: None,
            container_ports: (80, 80),
            proto: Proto::Tcp,
        },
        PortSpec {
            host_ip: None,
            host_ports: Some((udp_port, udp_port)),
            container_ports: (7000, 7000),
            proto: Proto::Udp,
        },
    ];
    env.nets.check_ports("p-web-1", &specs).unwrap();
    let published = env.nets.publish("p-web-1", ew.ip, &specs).unwrap();
    let random = published[1].host_port;
    assert!(random > 0 && random != fixed);
    assert_eq!(env.nets.ports().unwrap()["p-web-1"], published);

    // nft state, read independently.
    let table = nft_table(&env.nets.nft_table()).expect("nft table exists");
    let text = table.to_string();
    assert!(
        text.contains(&format!("\"{}\"", ew.ip)),
        "dnat target in {text}"
    );
    assert!(text.contains(&fixed.to_string()));

    let host = host_address();
    assert_eq!(
        wget(&format!("http://127.0.0.1:{fixed}/")).unwrap(),
        "web\n"
    );
    assert_eq!(
        wget(&format!("http://127.0.0.1:{random}/")).unwrap(),
        "web\n"
    );
    assert_eq!(wget(&format!("http://{host}:{random}/")).unwrap(), "web\n");
    // Published only on 127.0.0.1: not on the host's address.
    assert!(wget(&format!("http://{host}:{fixed}/")).is_err());
    // Hairpin: other containers, and the container itself, through the host's address.
    assert_eq!(
        wget_in(&client, &format!("http://{host}:{random}/")).unwrap(),
        "web\n"
    );
    assert_eq!(
        wget_in(&web, &format!("http://{host}:{random}/")).unwrap(),
        "web\n"
    );

    // UDP both ways through 127.0.0.1.
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    sender.send_to(b"ping", ("127.0.0.1", udp_port)).unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = udp.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    udp.send_to(b"pong", from).unwrap();
    let (n, _) = sender.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"pong");

    // A taken port is reported before anything is created.
    let e = env
        .nets
        .check_ports(
            "p-other-1",
            &[PortSpec {
                host_ip: None,
                host_ports: Some((fixed, fixed)),
                container_ports: (80, 80),
                proto: Proto::Tcp,
            }],
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "container p-other-1: port 0.0.0.0:{fixed}/tcp is already taken by container p-web-1"
        )
    );
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bp = busy.local_addr().unwrap().port();
    let e = env
        .nets
        .publish(
            "p-other-1",
            ew.ip,
            &[PortSpec {
                host_ip: None,
                host_ports: Some((bp, bp)),
                container_ports: (80, 80),
                proto: Proto::Tcp,
            }],
        )
        .unwrap_err();
    assert!(e.to_string().ends_with("is already taken"), "{e}");
    assert!(!env.nets.ports().unwrap().contains_key("p-other-1"));

    // Two services of one plan asking for the same free port clash before anything starts.
    let p = free_port();
    let want = vec![PortSpec {
        host_ip: None,
        host_ports: Some((p, p)),
        container_ports: (80, 80),
        proto: Proto::Tcp,
    }];
    let e = env
        .nets
        .check_all_ports(&[
            ("p-a-1".into(), want.clone()),
            ("p-b-1".into(), want.clone()),
        ])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("container p-b-1: port 0.0.0.0:{p}/tcp is already taken by container p-a-1")
    );
    env.nets.check_all_ports(&[("p-a-1".into(), want)]).unwrap();

    env.nets.unpublish("p-web-1").unwrap();
    assert!(wget(&format!("http://127.0.0.1:{fixed}/")).is_err());
    env.finish();
}

#[test]
fn outbound_is_masqueraded_networks_are_isolated_internal_has_no_way_out() {
    let mut env = Env::new("10.213.28.0/22");
    let outside = Outside::new(&mut env, "10.213.250.0/30");
    outside.serve_whoami(&mut env);
    env.nets.ensure_network(&spec("p_front")).unwrap();
    env.nets.ensure_network(&spec("p_back")).unwrap();
    let mut internal = spec("p_int");
    internal.internal = true;
    env.nets.ensure_network(&internal).unwrap();
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap()
            .trim(),
        "1"
    );

    let a = env.netns("a");
    let b = env.netns("b");
    let i = env.netns("i");
    let ea = env
        .nets
        .connect("p_front", &a, &ep("p-a-1", &["a"]))
        .unwrap();
    let eb = env
        .nets
        .connect("p_back", &b, &ep("p-b-1", &["b"]))
        .unwrap();
    env.nets.connect("p_int", &i, &ep("p-i-1", &["i"])).unwrap();
    env.httpd(&b, 80, &[("index.html", b"b\n")]);

    // Outbound: the outside host sees the host's address, not the container's.
    let seen = eventually(Duration::from_secs(5), || {
        wget_in(&a, &format!("http://{}/cgi-bin/ip", outside.ip))
    })
    .unwrap();
    // busybox httpd listens dual-stack: "[::ffff:a.b.c.d]".
    let seen = seen
        .trim()
        .trim_start_matches("[::ffff:")
        .trim_end_matches(']');
    assert_eq!(seen, outside.host_ip.to_string());
    assert_ne!(seen, ea.ip.to_string());

    // Isolation: b serves (the host reaches it) but a cannot reach b's network (routed
    // through the host, dropped by the forward chain).
    eventually(Duration::from_secs(5), || {
        wget(&format!("http://{}/", eb.ip))
    })
    .unwrap();
    assert!(wget_in(&a, &format!("http://{}/", eb.ip)).is_err());
    // Internal: containers on it talk to each other...
    let i2 = env.netns("i2");
    let ei2 = env
        .nets
        .connect("p_int", &i2, &ep("p-i-2", &["i2"]))
        .unwrap();
    env.httpd(&i2, 80, &[("index.html", b"i2\n")]);
    let got = eventually(Duration::from_secs(5), || {
        wget_in(&i, &format!("http://{}/", ei2.ip))
    })
    .unwrap();
    assert_eq!(got, "i2\n");
    // ... but have no way out.
    assert!(wget_in(&i, &format!("http://{}/", outside.ip)).is_err());

    let fwd = nft_table(&env.nets.nft_table()).unwrap().to_string();
    assert!(fwd.contains("\"drop\""), "{fwd}");
    drop(outside);
    env.finish();
}
