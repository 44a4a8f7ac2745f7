//! Privileged: namespaces on one bridge talk to each other; state checked with `ip -j`.

mod common;

use std::time::Duration;

use common::*;
use network::{EndpointSpec, NetworkSpec};

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

#[test]
fn two_namespaces_on_one_bridge_talk() {
    let mut env = Env::new("10.213.10.0/23");
    let info = env.nets.ensure_network(&spec("p_default")).unwrap();
    assert_eq!(info.subnet.to_string(), "10.213.10.0/24");
    assert_eq!(info.gateway.to_string(), "10.213.10.1");
    assert_eq!(addrs(None, &info.bridge), ["10.213.10.1/24"]);

    let a = env.netns("a");
    let b = env.netns("b");
    let ea = env
        .nets
        .connect("p_default", &a, &ep("p-web-1", &["web"]))
        .unwrap();
    let eb = env
        .nets
        .connect("p_default", &b, &ep("p-client-1", &["client"]))
        .unwrap();
    assert_eq!(ea.ip.to_string(), "10.213.10.2");
    assert_eq!(eb.ip.to_string(), "10.213.10.3");
    assert_eq!(ea.mac, "02:42:0a:d5:0a:02");

    // Kernel state, read with ip -j.
    assert_eq!(addrs(Some(&a), "eth0"), ["10.213.10.2/24"]);
    let lo = ip_json(Some(&a), &["link", "show", "lo"]);
    assert!(lo[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    let routes = ip_json(Some(&a), &["route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], "10.213.10.1");
    let ports = ip_json(None, &["link", "show", "master", &info.bridge]);
    let mut names: Vec<&str> = ports
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap())
        .collect();
    names.sort();
    let mut want = vec![ea.host_veth.as_str(), eb.host_veth.as_str()];
    want.sort();
    assert_eq!(names, want);

    env.httpd(&a, 80, &[("index.html", b"hello from a\n")]);
    let got = eventually(Duration::from_secs(5), || {
        wget_in(&b, "http://10.213.10.2/index.html")
    })
    .unwrap();
    assert_eq!(got, "hello from a\n");

    // Disconnect removes the veth on both sides.
    env.nets.disconnect("p_default", "p-client-1").unwrap();
    assert!(links_with_prefix(&eb.host_veth).is_empty());
    assert!(ip_json(Some(&b), &["link", "show"])
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["ifname"] != "eth0"));
    env.finish();
}

#[test]
fn bad_input_is_rejected_before_anything_is_created() {
    let mut env = Env::new("10.213.12.0/23");
    let mut s = spec("p_a");
    s.subnet = Some("10.213.12.0/24".into());
    env.nets.ensure_network(&s).unwrap();
    let mut overlap = spec("p_b");
    overlap.subnet = Some("10.213.12.128/25".into());
    let e = env.nets.ensure_network(&overlap).unwrap_err();
    assert_eq!(
        e.to_string(),
        "network p_b: subnet 10.213.12.128/25 overlaps network p_a (10.213.12.0/24)"
    );
    let mut bad = spec("p_c");
    bad.subnet = Some("10.213.13.5/24".into());
    assert!(env
        .nets
        .ensure_network(&bad)
        .unwrap_err()
        .to_string()
        .contains("host bits set"));
    // A subnet the host already routes (its own LAN, e.g. eth0's).
    let routes = ip_json(None, &["-4", "route", "show", "table", "main"]);
    let lan = routes
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["dev"].as_str().unwrap_or("").starts_with("rc"))
        .filter_map(|r| r["dst"].as_str())
        .find(|d| *d != "default" && d.contains('/'))
        .expect("a connected route on the host")
        .to_owned();
    let mut on_host = spec("p_host");
    on_host.subnet = Some(lan.clone());
    assert_eq!(
        env.nets.ensure_network(&on_host).unwrap_err().to_string(),
        format!("network p_host: subnet {lan} overlaps the host route {lan}")
    );
    let mut lo = spec("p_lo");
    lo.bridge = Some("lo".into());
    assert_eq!(
        env.nets.ensure_network(&lo).unwrap_err().to_string(),
        "network p_lo: invalid bridge name \"lo\": an interface with that name already exists"
    );
    let mut ext = spec("shared");
    ext.external = true;
    assert_eq!(
        env.nets.ensure_network(&ext).unwrap_err().to_string(),
        "network shared is declared external but does not exist: create it first"
    );
    let n = env.netns("x");
    let mut e1 = ep("p-x-1", &[]);
    e1.ipv4 = Some("10.213.99.2".parse().unwrap());
    assert_eq!(
        env.nets.connect("p_a", &n, &e1).unwrap_err().to_string(),
        "network p_a: ipv4_address 10.213.99.2 is outside subnet 10.213.12.0/24"
    );
    assert_eq!(
        env.nets.connect("p_nope", &n, &e1).unwrap_err().to_string(),
        "network p_nope not found"
    );
    e1.ipv4 = Some("10.213.12.7".parse().unwrap());
    e1.mac = Some("02:00:00:00:00:07".into());
    env.nets.connect("p_a", &n, &e1).unwrap();
    let links = ip_json(Some(&n), &["link", "show", "eth0"]);
    assert_eq!(links[0]["address"], "02:00:00:00:00:07");
    let m = env.netns("y");
    let mut e2 = ep("p-y-1", &[]);
    e2.ipv4 = Some("10.213.12.7".parse().unwrap());
    assert_eq!(
        env.nets.connect("p_a", &m, &e2).unwrap_err().to_string(),
        "network p_a: address 10.213.12.7 is already used by container p-x-1"
    );
    // Nothing half-made: only the one network and its one endpoint.
    let recs = env.nets.list().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].endpoints.len(), 1);
    env.finish();
}

#[test]
fn remove_all_cleans_up_after_a_crash() {
    let mut env = Env::new("10.213.14.0/23");
    env.nets.ensure_network(&spec("p_one")).unwrap();
    let mut s = spec("p_two");
    s.internal = true;
    s.mtu = Some(1400);
    s.bridge = Some(format!("{}xbr", env.nets.iface_prefix()));
    let two = env.nets.ensure_network(&s).unwrap();
    let mtu = ip_json(None, &["link", "show", &two.bridge]);
    assert_eq!(mtu[0]["mtu"], 1400);
    let a = env.netns("a");
    env.nets.connect("p_one", &a, &ep("p-a-1", &["a"])).unwrap();
    let mut second = ep("p-a-1", &["a"]);
    second.ifname = "eth1".into();
    second.default_route = false;
    env.nets.connect("p_two", &a, &second).unwrap();
    assert_eq!(addrs(Some(&a), "eth1").len(), 1);
    assert!(nft_table(&env.nets.nft_table()).is_some());
    let left = env.nets.leftovers().unwrap();
    assert!(
        left.contains(&format!("interface {}", two.bridge)),
        "{left:?}"
    );
    assert!(
        left.contains(&format!("nft table ip {}", env.nets.nft_table())),
        "{left:?}"
    );
    // A fresh manager on the same root (the first one "crashed") removes everything.
    let again = network::Networks::new(&env.tmp.path().join("root"));
    again.remove_all().unwrap();
    assert!(links_with_prefix(&env.nets.iface_prefix()).is_empty());
    assert!(nft_table(&env.nets.nft_table()).is_none());
    env.finish();
}

fn mounted(pin: &std::path::Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(pin.to_str().unwrap()))
}

#[test]
fn netns_pins_are_created_and_removed() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let pin = network::Netns::pin_for(&run, "p-web-1");
    let ns = network::Netns::create(&pin).unwrap();
    assert_eq!(ns.path(), pin);
    assert!(mounted(&pin));
    // A fresh namespace: only lo, and it is up.
    let links = ip_json(Some(&pin), &["link", "show"]);
    assert_eq!(links.as_array().unwrap().len(), 1, "{links}");
    assert_eq!(links[0]["ifname"], "lo");
    assert_eq!(links[0]["operstate"], "UNKNOWN");
    // Its inode differs from ours.
    let ours = std::fs::metadata("/proc/self/ns/net").unwrap();
    let theirs = std::fs::metadata(&pin).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_ne!(ours.ino(), theirs.ino());
    // Existing pin: refused.
    assert!(network::Netns::create(&pin).is_err());
    assert!(network::Netns::remove_all_under(&run).is_empty());
    assert!(!mounted(&pin) && !pin.exists());
    // Idempotent.
    network::Netns::remove(&pin).unwrap();
}

#[test]
fn removing_a_network_takes_everything_away() {
    let mut env = Env::new("10.213.16.0/23");
    let one = env.nets.ensure_network(&spec("p_one")).unwrap();
    // Idempotent: the same network comes back.
    assert_eq!(env.nets.ensure_network(&spec("p_one")).unwrap(), one);
    let two = env.nets.ensure_network(&spec("p_two")).unwrap();
    let a = env.netns("a");
    let ea = env.nets.connect("p_one", &a, &ep("p-a-1", &["a"])).unwrap();
    let mut labels = spec("p_two");
    labels.subnet = Some("10.213.99.0/24".into());
    assert!(env
        .nets
        .ensure_network(&labels)
        .unwrap_err()
        .to_string()
        .contains("differs"));

    // prune keeps networks with containers.
    assert_eq!(
        env.nets.prune(|n| n.name.starts_with("p_")).unwrap(),
        ["p_two"]
    );
    assert!(links_with_prefix(&two.bridge).is_empty());
    let table = nft_table(&env.nets.nft_table()).unwrap().to_string();
    assert!(!table.contains(&two.bridge), "{table}");
    assert!(table.contains(&one.bridge));

    // A DNS server of p_one stops by itself once the network is removed (by anyone).
    let dns = network::DnsServer::start(
        env.nets.dns_config("p_one", vec![]).unwrap(),
        network::NameTable::default(),
    )
    .unwrap();
    let gw = one.gateway.to_string();
    assert!(listeners_on(&gw) >= 2, "udp+tcp on {gw}");

    assert_eq!(
        env.nets.remove_network("p_one").unwrap_err().to_string(),
        "network p_one is still used by containers: p-a-1"
    );
    let second = network::DnsServer::start(
        env.nets.dns_config("p_one", vec![]).unwrap(),
        network::NameTable::default(),
    );
    assert!(second.err().is_some_and(|e| e.is_addr_in_use()));
    env.nets.disconnect_all("p-a-1").unwrap();
    assert!(links_with_prefix(&ea.host_veth).is_empty());
    env.nets.remove_network("p_one").unwrap();
    assert!(links_with_prefix(&one.bridge).is_empty());
    eventually(Duration::from_secs(5), || {
        anyhow::ensure!(!dns.is_running(), "dns still running");
        anyhow::ensure!(listeners_on(&gw) == 0, "listeners left on {gw}");
        Ok(())
    })
    .unwrap();
    drop(dns);
    // The last network gone: so is the table.
    assert!(nft_table(&env.nets.nft_table()).is_none());
    assert_eq!(
        env.nets.remove_network("p_one").unwrap_err().to_string(),
        "network p_one not found"
    );
    env.finish();
}

/// Sockets listening (TCP) or bound (UDP) on `ip`, from `ss`.
fn listeners_on(ip: &str) -> usize {
    let out = run(&["ss", "-Hlnut"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("{ip}:")))
        .count()
}

#[test]
fn two_roots_sharing_a_pool_never_pick_the_same_subnet() {
    let a = Env::new("10.213.36.0/23");
    let b = Env::new("10.213.36.0/23");
    let (ia, ib) = std::thread::scope(|s| {
        let ta = s.spawn(|| a.nets.ensure_network(&spec("p_default")).unwrap());
        let tb = s.spawn(|| b.nets.ensure_network(&spec("p_default")).unwrap());
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert_ne!(ia.subnet, ib.subnet);
    assert_ne!(ia.bridge, ib.bridge);
    a.finish();
    b.finish();
}

#[test]
fn ipam_config_subnet_gateway_and_ip_range_are_honoured() {
    let mut env = Env::new("10.213.42.0/23");
    let mut s = spec("p_custom");
    s.subnet = Some("10.213.40.0/24".into());
    s.gateway = Some("10.213.40.254".parse().unwrap());
    s.ip_range = Some("10.213.40.128/25".into());
    s.labels = [("com.example.team".to_owned(), "net".to_owned())].into();
    let info = env.nets.ensure_network(&s).unwrap();
    assert_eq!(addrs(None, &info.bridge), ["10.213.40.254/24"]);
    let n = env.netns("n");
    let e = env.nets.connect("p_custom", &n, &ep("p-n-1", &[])).unwrap();
    assert_eq!(e.ip.to_string(), "10.213.40.128");
    assert_eq!(
        ip_json(Some(&n), &["route", "show", "default"])[0]["gateway"],
        "10.213.40.254"
    );
    let rec = env.nets.inspect("p_custom").unwrap();
    assert_eq!(rec.labels["com.example.team"], "net");
    let mut bad = spec("p_bad");
    bad.subnet = Some("10.213.41.0/24".into());
    bad.gateway = Some("10.213.40.1".parse().unwrap());
    assert_eq!(
        env.nets.ensure_network(&bad).unwrap_err().to_string(),
        "network p_bad: gateway 10.213.40.1 is outside subnet 10.213.41.0/24"
    );
    env.finish();
}

#[test]
fn teardown_tolerates_resources_recorded_but_never_created() {
    // A crash right after recording (before creating) leaves records of things that do not
    // exist: teardown must still succeed and clear the state.
    let env = Env::new("10.213.44.0/23");
    let info = env.nets.ensure_network(&spec("p_real")).unwrap();
    let path = env.nets.state_file();
    let mut st: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut ghost = st["networks"]["p_real"].clone();
    ghost["name"] = "p_ghost".into();
    ghost["bridge"] = format!("{}gh", env.nets.iface_prefix()).into();
    ghost["subnet"] = "10.213.45.0/24".into();
    ghost["gateway"] = "10.213.45.1".into();
    ghost["endpoints"]["p-ghost-1"] = serde_json::json!({
        "container": "p-ghost-1", "ifname": "eth0",
        "host_veth": format!("{}gv", env.nets.iface_prefix()),
        "netns": "/nonexistent", "ip": "10.213.45.2", "mac": "02:42:0a:d5:2d:02"
    });
    st["networks"]["p_ghost"] = ghost;
    st["ports"]["p-ghost-1"] = serde_json::json!([{
        "host_ip": null, "host_port": 1, "container_port": 80, "proto": "tcp",
        "target": "10.213.45.2"
    }]);
    std::fs::write(&path, serde_json::to_vec(&st).unwrap()).unwrap();
    assert_eq!(env.nets.list().unwrap().len(), 2);
    env.nets.remove_all().unwrap();
    assert!(env.nets.list().unwrap().is_empty());
    assert!(env.nets.ports().unwrap().is_empty());
    assert!(links_with_prefix(&info.bridge).is_empty());
    env.finish();
}
