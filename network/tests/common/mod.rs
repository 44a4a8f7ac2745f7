//! Test support for the privileged network tests: a throwaway state root with its own pool,
//! namespaces and processes cleaned up on drop, `eventually`, and a leak check with
//! independent tools (`ip -j`, `nft -j`).
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use anyhow::{bail, Context, Result};
use network::{Netns, Networks, Pool};

#[allow(unused_imports)]
pub use testkit::leaks::links_with_prefix;
#[allow(unused_imports)]
pub use testkit::{eventually_ok as eventually, free_port};

/// Checks the tools the tests need; a missing one is a loud failure.
pub fn require_tools() {
    for t in ["/usr/bin/busybox", "/usr/sbin/nft", "/usr/bin/nsenter"] {
        assert!(
            Path::new(t).exists() || Path::new(&t.replace("/usr/sbin", "/sbin")).exists(),
            "missing prerequisite {t} (install busybox-static, nftables, util-linux)"
        );
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "network tests must run as root"
    );
}

/// A state root under a temp dir with a pool of its own.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub nets: Networks,
    pub pins: Vec<PathBuf>,
    pub procs: Vec<Child>,
    finished: bool,
}

impl Env {
    /// `pool` must be unique per test (tests run in parallel), inside 10.213.0.0/16.
    pub fn new(pool: &str) -> Env {
        require_tools();
        let tmp = tempfile::tempdir().expect("tempdir");
        let nets = Networks::new(&tmp.path().join("root")).with_pool(Pool {
            bases: vec![pool.parse().expect("pool")],
            size: 24,
        });
        Env {
            tmp,
            nets,
            pins: Vec::new(),
            procs: Vec::new(),
            finished: false,
        }
    }

    pub fn run_dir(&self) -> PathBuf {
        self.tmp.path().join("run")
    }

    /// Creates a pinned netns `<run>/netns/<name>`.
    pub fn netns(&mut self, name: &str) -> PathBuf {
        let pin = self.run_dir().join("netns").join(name);
        Netns::create(&pin).expect("create netns");
        self.pins.push(pin.clone());
        pin
    }

    /// Starts `args` inside the netns `pin`; killed (by pid) when the env drops.
    pub fn spawn_in(&mut self, pin: &Path, args: &[&str]) -> u32 {
        let child = Command::new("nsenter")
            .arg(format!("--net={}", pin.display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn in netns");
        let pid = child.id();
        self.procs.push(child);
        pid
    }

    /// Starts busybox httpd serving `files` (name, content) on `port` inside `pin`.
    pub fn httpd(&mut self, pin: &Path, port: u16, files: &[(&str, &[u8])]) -> PathBuf {
        let dir = self.tmp.path().join(format!(
            "www-{}-{port}",
            pin.file_name().unwrap().to_string_lossy()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for (n, c) in files {
            std::fs::write(dir.join(n), c).unwrap();
        }
        let p = port.to_string();
        let d = dir.to_string_lossy().into_owned();
        self.spawn_in(
            pin,
            &["/usr/bin/busybox", "httpd", "-f", "-p", &p, "-h", &d],
        );
        dir
    }

    /// Removes everything and checks that nothing of this root is left.
    pub fn finish(mut self) {
        self.finished = true;
        self.cleanup().expect("cleanup");
        leak_check(&self.nets).expect("leak check");
    }

    fn cleanup(&mut self) -> Result<()> {
        for mut c in self.procs.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        let r = self.nets.remove_all();
        for p in self.pins.drain(..) {
            let _ = Netns::remove(&p);
        }
        r.context("remove_all")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.cleanup();
        }
    }
}

/// Runs a command, returning its output (no status check).
pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"))
}

/// Runs `args` in the netns `pin` and returns stdout if it succeeded.
pub fn run_in(pin: &Path, args: &[&str]) -> Result<String> {
    let ns = format!("--net={}", pin.display());
    let mut full = vec!["nsenter", ns.as_str()];
    full.extend_from_slice(args);
    let out = run(&full);
    if !out.status.success() {
        bail!(
            "{args:?} in {}: {}: {}",
            pin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `wget -q -O - url` from inside `pin` (timeout 3 s; busybox 1.35 wget -T segfaults).
pub fn wget_in(pin: &Path, url: &str) -> Result<String> {
    run_in(
        pin,
        &[
            "timeout",
            "3",
            "/usr/bin/busybox",
            "wget",
            "-q",
            "-O",
            "-",
            url,
        ],
    )
}

/// `wget` from the host.
pub fn wget(url: &str) -> Result<String> {
    let out = run(&[
        "timeout",
        "3",
        "/usr/bin/busybox",
        "wget",
        "-q",
        "-O",
        "-",
        url,
    ]);
    if !out.status.success() {
        bail!("wget {url}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// JSON of `ip -j <args>` (optionally inside a netns).
pub fn ip_json(pin: Option<&Path>, args: &[&str]) -> serde_json::Value {
    let mut full: Vec<String> = Vec::new();
    if let Some(p) = pin {
        full.push("nsenter".into());
        full.push(format!("--net={}", p.display()));
    }
    full.push("ip".into());
    full.push("-j".into());
    full.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    let out = run(&refs);
    assert!(
        out.status.success(),
        "{full:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Array(vec![]))
}

/// IPv4 addresses of `dev` in `pin` as "a.b.c.d/len".
pub fn addrs(pin: Option<&Path>, dev: &str) -> Vec<String> {
    let v = ip_json(pin, &["-4", "addr", "show", "dev", dev]);
    v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
        .collect()
}

/// The `nft -j list table ip <t>` output, `None` if the table does not exist.
pub fn nft_table(t: &str) -> Option<serde_json::Value> {
    let out = run(&["nft", "-j", "list", "table", "ip", t]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("nft json"))
}

/// Nothing of this root is left: no interface, no nft table.
pub fn leak_check(nets: &Networks) -> Result<()> {
    let links = links_with_prefix(&nets.iface_prefix());
    if !links.is_empty() {
        bail!("leaked interfaces: {links:?}");
    }
    let tables = testkit::leaks::nft_tables(&nets.nft_table());
    if !tables.is_empty() {
        bail!("leaked nft tables: {tables:?}");
    }
    // The crate's own view agrees.
    let own = nets.leftovers()?;
    if !own.is_empty() {
        bail!("leftovers reported by the crate: {own:?}");
    }
    Ok(())
}

/// A "fake outside host": a netns joined to the host by a veth (`<prefix>o` on the host side,
/// `hostip/30`), never a real outside address. Removed when dropped.
pub struct Outside {
    pub pin: PathBuf,
    pub host_if: String,
    pub host_ip: Ipv4Addr,
    pub ip: Ipv4Addr,
}

impl Outside {
    /// `net` is a /30 like "10.213.250.0/30": .1 on the host, .2 outside.
    pub fn new(env: &mut Env, net: &str) -> Outside {
        let base: ipnet::Ipv4Net = net.parse().unwrap();
        let host_ip = Ipv4Addr::from(u32::from(base.network()) + 1);
        let ip = Ipv4Addr::from(u32::from(base.network()) + 2);
        let pin = env.netns("outside");
        let host_if = format!("{}o", env.nets.iface_prefix());
        let ns = format!("--net={}", pin.display());
        let steps: Vec<Vec<String>> = vec![
            vec![
                "ip".into(),
                "link".into(),
                "add".into(),
                host_if.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                "oeth0".into(),
                "netns".into(),
                pin.display().to_string(),
            ],
            vec![
                "ip".into(),
                "addr".into(),
                "add".into(),
                format!("{host_ip}/30"),
                "dev".into(),
                host_if.clone(),
            ],
            vec![
                "ip".into(),
                "link".into(),
                "set".into(),
                host_if.clone(),
                "up".into(),
            ],
            vec![
                "nsenter".into(),
                ns.clone(),
                "ip".into(),
                "addr".into(),
                "add".into(),
                format!("{ip}/30"),
                "dev".into(),
                "oeth0".into(),
            ],
            vec![
                "nsenter".into(),
                ns.clone(),
                "ip".into(),
                "link".into(),
                "set".into(),
                "oeth0".into(),
                "up".into(),
            ],
        ];
        for s in steps {
            let refs: Vec<&str> = s.iter().map(String::as_str).collect();
            let out = run(&refs);
            assert!(
                out.status.success(),
                "{s:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Outside {
            pin,
            host_if,
            host_ip,
            ip,
        }
    }

    /// Serves `/cgi-bin/ip` (the client address as seen here) and `/index.html` on port 80.
    pub fn serve_whoami(&self, env: &mut Env) {
        let dir = env.tmp.path().join("outside-www");
        std::fs::create_dir_all(dir.join("cgi-bin")).unwrap();
        std::fs::write(dir.join("index.html"), "outside\n").unwrap();
        let script = dir.join("cgi-bin/ip");
        std::fs::write(
            &script,
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$REMOTE_ADDR\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.to_string_lossy().into_owned();
        let pin = self.pin.clone();
        env.spawn_in(
            &pin,
            &["/usr/bin/busybox", "httpd", "-f", "-p", "80", "-h", &d],
        );
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = run(&["ip", "link", "del", &self.host_if]);
    }
}
