//! `rcompose network …` and `rcompose volume …` end to end: networks made through the
//! `network` crate in a fresh state root, listed, inspected and removed with the real binary,
//! checked against the kernel (`ip -j link`), and leak-checked. Needs root (netlink, nft).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use network::{NetworkInfo, NetworkSpec, Networks};
use rcompose::cli::network::network_id;

fn rcompose(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rcompose"))
        .arg("--root")
        .arg(root)
        .arg("--run-dir")
        .arg(root.join("run"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn fails(o: Output) -> String {
    assert!(
        !o.status.success(),
        "unexpected success: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stderr).unwrap()
}

fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "these tests create bridges and nft tables: run them as root"
    );
}

fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["-j", "link", "show", "dev", name])
        .output()
        .expect("ip (iproute2) is missing")
        .status
        .success()
}

/// A state root in a temp folder whose networks are all torn down on drop, test failed or
/// not; `check_no_leaks` is the test's own assertion.
struct Root {
    dir: tempfile::TempDir,
    nets: Networks,
}

impl Root {
    fn new() -> Root {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("rc-cli-net")
            .tempdir()
            .unwrap();
        let nets = Networks::new(dir.path());
        Root { dir, nets }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn network(&self, name: &str, subnet: &str, labels: &[(&str, &str)]) -> NetworkInfo {
        self.nets
            .ensure_network(&NetworkSpec {
                name: name.into(),
                subnet: Some(subnet.into()),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            })
            .unwrap()
    }

    fn check_no_leaks(&self) {
        assert_eq!(self.nets.leftovers().unwrap(), Vec::<String>::new());
        assert!(self.nets.list().unwrap().is_empty());
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        for e in network::Netns::remove_all_under(&self.dir.path().join("run")) {
            eprintln!("cleanup of {}: {e}", self.dir.path().display());
        }
        if let Err(e) = self.nets.remove_all() {
            eprintln!("cleanup of {}: {e}", self.dir.path().display());
        }
    }
}

#[test]
fn a_network_made_by_the_crate_is_listed_inspected_and_removed_by_the_cli() {
    let root = Root::new();
    let info = root.network(
        "clinet_default",
        "10.213.224.0/24",
        &[("com.docker.compose.project", "clinet")],
    );
    assert!(link_exists(&info.bridge));
    let id = network_id("clinet_default");

    let table = ok(rcompose(root.path(), &["network", "ls"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    let header: Vec<&str> = lines[0].split("   ").map(str::trim).collect();
    assert_eq!(
        header
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>(),
        ["NETWORK ID", "NAME", "DRIVER", "SCOPE"]
    );
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(cells, [&id[..12], "clinet_default", "bridge", "local"]);

    assert_eq!(
        ok(rcompose(root.path(), &["network", "ls", "-q"])),
        format!("{}\n", &id[..12])
    );
    assert_eq!(
        ok(rcompose(
            root.path(),
            &["network", "ls", "-q", "--no-trunc"]
        )),
        format!("{id}\n")
    );
    let json: serde_json::Value = serde_json::from_str(&ok(rcompose(
        root.path(),
        &["network", "ls", "--format", "json"],
    )))
    .unwrap();
    assert_eq!(json["Name"], "clinet_default");
    assert_eq!(json["Driver"], "bridge");
    assert_eq!(json["Labels"], "com.docker.compose.project=clinet");
    // Filters: a miss leaves the header only; a label hit lists it.
    assert_eq!(
        ok(rcompose(root.path(), &["network", "ls", "-f", "name=zzz"]))
            .lines()
            .count(),
        1
    );
    assert_eq!(
        ok(rcompose(
            root.path(),
            &[
                "network",
                "ls",
                "-q",
                "-f",
                "label=com.docker.compose.project=clinet"
            ]
        ))
        .trim(),
        &id[..12]
    );
    assert!(fails(rcompose(
        root.path(),
        &["network", "ls", "-f", "colour=red"]
    ))
    .contains("invalid filter"));

    // inspect by name and by ID prefix, with the kernel's view of the same bridge.
    for key in ["clinet_default", &id[..8]] {
        let v: serde_json::Value =
            serde_json::from_str(&ok(rcompose(root.path(), &["network", "inspect", key]))).unwrap();
        let n = &v[0];
        assert_eq!(n["Name"], "clinet_default");
        assert_eq!(n["Id"], id.as_str());
        assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "10.213.224.0/24");
        assert_eq!(n["IPAM"]["Config"][0]["Gateway"], info.gateway.to_string());
        assert_eq!(
            n["Options"]["com.docker.network.bridge.name"],
            info.bridge.as_str()
        );
        assert_eq!(n["Labels"]["com.docker.compose.project"], "clinet");
    }
    assert_eq!(
        ok(rcompose(
            root.path(),
            &[
                "network",
                "inspect",
                "-f",
                "{{.Name}} {{.Driver}}",
                "clinet_default"
            ]
        )),
        "clinet_default bridge\n"
    );
    let addr = Command::new("ip")
        .args(["-j", "addr", "show", "dev", &info.bridge])
        .output()
        .unwrap();
    let addr: serde_json::Value = serde_json::from_slice(&addr.stdout).unwrap();
    assert_eq!(
        addr[0]["addr_info"][0]["local"],
        info.gateway.to_string().as_str()
    );

    let err = fails(rcompose(root.path(), &["network", "inspect", "nope"]));
    assert!(err.contains("network nope not found"), "{err}");

    assert_eq!(
        ok(rcompose(
            root.path(),
            &["--dry-run", "network", "rm", "clinet_default"]
        )),
        "would remove network clinet_default\n"
    );
    assert!(link_exists(&info.bridge));
    assert_eq!(
        ok(rcompose(root.path(), &["network", "rm", "clinet_default"])),
        "clinet_default\n"
    );
    assert!(!link_exists(&info.bridge));
    assert_eq!(
        ok(rcompose(root.path(), &["network", "ls", "-q"])),
        String::new()
    );
    let err = fails(rcompose(root.path(), &["network", "rm", "clinet_default"]));
    assert!(err.contains("network clinet_default not found"), "{err}");
    ok(rcompose(
        root.path(),
        &["network", "rm", "--force", "clinet_default"],
    ));
    root.check_no_leaks();
}

#[test]
fn prune_removes_only_the_unused_networks_its_filter_selects() {
    let root = Root::new();
    let keep = root.network(
        "prunekeep_default",
        "10.213.225.0/24",
        &[("com.docker.compose.project", "keep")],
    );
    let gone = root.network(
        "prunegone_default",
        "10.213.226.0/24",
        &[("com.docker.compose.project", "gone")],
    );
    let out = ok(rcompose(
        root.path(),
        &[
            "network",
            "prune",
            "--force",
            "--filter",
            "label=com.docker.compose.project=gone",
        ],
    ));
    assert_eq!(out, "Deleted Networks:\nprunegone_default\n");
    assert!(!link_exists(&gone.bridge));
    assert!(link_exists(&keep.bridge));
    let names: Vec<String> = root
        .nets
        .list()
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["prunekeep_default"]);

    assert_eq!(
        ok(rcompose(root.path(), &["network", "prune", "-f"])),
        "Deleted Networks:\nprunekeep_default\n"
    );
    assert!(!link_exists(&keep.bridge));
    root.check_no_leaks();
}

#[test]
fn a_network_with_a_container_connected_is_shown_in_use_and_not_removed() {
    let root = Root::new();
    let info = root.network("cliuse_default", "10.213.227.0/24", &[]);
    let pin = network::Netns::pin_for(&root.path().join("run"), "cliuse-web-1");
    network::Netns::create(&pin).unwrap();
    let ep = root
        .nets
        .connect(
            "cliuse_default",
            &pin,
            &network::EndpointSpec {
                container: "cliuse-web-1".into(),
                ifname: "eth0".into(),
                names: vec!["web".into()],
                default_route: true,
                ..Default::default()
            },
        )
        .unwrap();

    let v: serde_json::Value = serde_json::from_str(&ok(rcompose(
        root.path(),
        &["network", "inspect", "cliuse_default"],
    )))
    .unwrap();
    let c = &v[0]["Containers"]["cliuse-web-1"];
    assert_eq!(c["IPv4Address"], format!("{}/24", ep.ip));
    assert_eq!(c["MacAddress"], ep.mac.as_str());
    assert!(ok(rcompose(
        root.path(),
        &["network", "ls", "-q", "-f", "dangling=true"]
    ))
    .is_empty());

    let err = fails(rcompose(root.path(), &["network", "rm", "cliuse_default"]));
    assert!(
        err.contains("network cliuse_default is still used by containers: cliuse-web-1"),
        "{err}"
    );
    assert_eq!(ok(rcompose(root.path(), &["network", "prune", "-f"])), "");
    assert!(link_exists(&info.bridge) && link_exists(&ep.host_veth));

    root.nets.disconnect_all("cliuse-web-1").unwrap();
    network::Netns::remove(&pin).unwrap();
    ok(rcompose(root.path(), &["network", "rm", "cliuse_default"]));
    assert!(!link_exists(&info.bridge) && !link_exists(&ep.host_veth));
    root.check_no_leaks();
}

// ---- volumes ---------------------------------------------------------------------------

fn volume(root: &Path, name: &str) -> PathBuf {
    let data = root.join("volumes").join(name).join("_data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("sub/file"), b"kept until rm").unwrap();
    data
}

/// A project state recording `volumes`, with one container when `with_container`.
fn project(root: &Path, project: &str, volumes: &[&str], with_container: bool) {
    let vols: serde_json::Map<String, serde_json::Value> = volumes
        .iter()
        .map(|v| {
            (
                v.to_string(),
                serde_json::json!({ "name": v, "path": root.join("volumes").join(v).join("_data") }),
            )
        })
        .collect();
    let mut containers = serde_json::Map::new();
    if with_container {
        containers.insert(
            format!("{project}-db-1"),
            serde_json::json!({
                "name": format!("{project}-db-1"), "service": "db", "number": 1,
                "config_hash": "x", "image": "busybox", "status": "exited", "created": 0,
            }),
        );
    }
    let state = serde_json::json!({ "name": project, "volumes": vols, "containers": containers });
    let dir = root.join("projects").join(project);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("state.json"), state.to_string()).unwrap();
}

#[test]
fn volumes_are_listed_inspected_and_removed_unless_in_use() {
    let dir = tempfile::Builder::new()
        .prefix("rc-cli-vol")
        .tempdir()
        .unwrap();
    let root = dir.path();
    let data = volume(root, "volp_data");
    let busy = volume(root, "volbusy_db");
    project(root, "volp", &["volp_data"], false);
    project(root, "volbusy", &["volbusy_db"], true);

    let table = ok(rcompose(root, &["volume", "ls"]));
    assert_eq!(
        table,
        "DRIVER   VOLUME NAME\nlocal    volbusy_db\nlocal    volp_data\n"
    );
    assert_eq!(
        ok(rcompose(
            root,
            &["volume", "ls", "-q", "-f", "dangling=true"]
        )),
        "volp_data\n"
    );
    let line = ok(rcompose(
        root,
        &["volume", "ls", "--format", "json", "-f", "name=volp"],
    ));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["Name"], "volp_data");
    assert_eq!(v["Mountpoint"], data.display().to_string());

    let v: serde_json::Value =
        serde_json::from_str(&ok(rcompose(root, &["volume", "inspect", "volp_data"]))).unwrap();
    assert_eq!(v[0]["Driver"], "local");
    assert_eq!(v[0]["Mountpoint"], data.display().to_string());
    assert_eq!(v[0]["Labels"]["com.docker.compose.project"], "volp");
    assert_eq!(v[0]["Labels"]["com.docker.compose.volume"], "data");
    assert!(fails(rcompose(root, &["volume", "inspect", "../etc"])).contains("not found"));

    // In use: refused, data intact.
    let err = fails(rcompose(root, &["volume", "rm", "volbusy_db"]));
    assert!(
        err.contains("volume volbusy_db is in use by project volbusy"),
        "{err}"
    );
    assert!(busy.join("sub/file").exists());

    ok(rcompose(root, &["--dry-run", "volume", "rm", "volp_data"]));
    assert!(data.join("sub/file").exists());
    assert_eq!(
        ok(rcompose(root, &["volume", "rm", "volp_data"])),
        "volp_data\n"
    );
    assert!(!root.join("volumes/volp_data").exists());
    ok(rcompose(root, &["volume", "rm", "-f", "volp_data"]));

    // Prune: named volumes only with --all, and never one in use.
    volume(root, "loose");
    assert_eq!(
        ok(rcompose(root, &["volume", "prune", "-f"])),
        "Total reclaimed space: N/A\n"
    );
    assert!(root.join("volumes/loose").exists());
    let out = ok(rcompose(root, &["volume", "prune", "-f", "--all"]));
    assert!(out.starts_with("Deleted Volumes:\nloose\n"), "{out}");
    assert!(!root.join("volumes/loose").exists());
    assert!(busy.join("sub/file").exists());
}
