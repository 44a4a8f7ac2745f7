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

    env.nets.disconnect_all("p-a-1").unwrap();
    assert!(links_with_prefix(&ea.host_veth).is_empty());
    env.nets.remove_network("p_one").unwrap();
    assert!(links_with_prefix(&one.bridge).is_empty());
    // The last network gone: so is the table.
    assert!(nft_table(&env.nets.nft_table()).is_none());
    assert_eq!(
        env.nets.remove_network("p_one").unwrap_err().to_string(),
        "network p_one not found"
    );
    env.finish();
}
