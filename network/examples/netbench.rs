//! Network benchmark (run by `benches/net.sh`, needs root): attach latency, DNS answer
//! latency for a service name, and a 100 MB HTTP download through a port published on
//! 127.0.0.1 compared with the container's own address. Prints one line per figure.
//!
//! Uses its own state root under a temp dir and the pool 10.213.240.0/22, and removes
//! everything it made.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use network::{
    DnsServer, EndpointSpec, NameTable, Netns, NetworkSpec, Networks, Pool, PortSpec, Proto,
};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn http_get(addr: SocketAddr) -> (usize, Duration) {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"GET /big HTTP/1.0\r\nHost: bench\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    (total, start.elapsed())
}

/// `netbench get RUNS ADDR...`: median time of `GET /big` from each address (used for the
/// Podman comparison in `benches/net.sh`).
fn get_mode(args: &[String]) {
    let runs: usize = args[0].parse().expect("runs");
    let addrs: Vec<SocketAddr> = args[1..].iter().map(|a| a.parse().expect("addr")).collect();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); addrs.len()];
    for _ in 0..runs {
        for (i, a) in addrs.iter().enumerate() {
            let (n, t) = http_get(*a);
            assert!(n > 100 * 1024 * 1024, "short download from {a}");
            times[i].push(t);
        }
    }
    for (a, t) in addrs.iter().zip(times) {
        let m = median(t);
        println!(
            "http 100MB from {a}: median {} ({:.0} MB/s, runs={runs})",
            ms(m),
            104.8576 / m.as_secs_f64()
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("get") {
        return get_mode(&args[1..]);
    }
    let n_attach: usize = std::env::var("ATTACH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let n_dns: usize = std::env::var("DNS_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let runs: usize = std::env::var("HTTP_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);

    let tmp = tempfile::tempdir().unwrap();
    let nets = Networks::new(&tmp.path().join("root")).with_pool(Pool {
        bases: vec!["10.213.240.0/22".parse().unwrap()],
        size: 24,
    });
    let mut pins: Vec<PathBuf> = Vec::new();
    let mut children: Vec<Child> = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let net = nets
            .ensure_network(&NetworkSpec {
                name: "bench_default".into(),
                ..Default::default()
            })
            .unwrap();

        // 1. Attach latency (netns creation timed separately).
        let mut create = Vec::new();
        let mut attach = Vec::new();
        for i in 0..n_attach {
            let pin = tmp.path().join(format!("run/netns/c{i}"));
            let t = Instant::now();
            Netns::create(&pin).unwrap();
            create.push(t.elapsed());
            pins.push(pin.clone());
            let spec = EndpointSpec {
                container: format!("bench-web-{i}"),
                ifname: "eth0".into(),
                names: vec!["web".into(), format!("bench-web-{i}")],
                default_route: true,
                ..Default::default()
            };
            let t = Instant::now();
            nets.connect("bench_default", &pin, &spec).unwrap();
            attach.push(t.elapsed());
        }
        println!("netns create: median {} (n={n_attach})", ms(median(create)));
        println!(
            "attach (veth+addr+route): median {} (n={n_attach})",
            ms(median(attach))
        );

        // 2. DNS answer latency for a service name with n_attach replicas, asked from a
        // container.
        let cfg = nets.dns_config("bench_default", vec![]).unwrap();
        let server = DnsServer::start(cfg, NameTable::default()).unwrap();
        let sock = Netns::run_in(&pins[0], || UdpSocket::bind("0.0.0.0:0").unwrap()).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        sock.connect(SocketAddr::new(net.gateway.into(), 53))
            .unwrap();
        let mut lat = Vec::new();
        let mut buf = [0u8; 4096];
        for i in 0..n_dns {
            let mut q = Message::query();
            q.metadata.id = i as u16;
            q.metadata.recursion_desired = true;
            q.add_query(Query::query(
                Name::from_ascii("web.").unwrap(),
                RecordType::A,
            ));
            let bytes = q.to_vec().unwrap();
            let t = Instant::now();
            sock.send(&bytes).unwrap();
            let n = sock.recv(&mut buf).unwrap();
            lat.push(t.elapsed());
            if i == 0 {
                let m = Message::from_vec(&buf[..n]).unwrap();
                assert_eq!(m.answers.len(), n_attach, "all replicas answered");
            }
        }
        println!(
            "dns answer (service name, {n_attach} replicas): median {} (n={n_dns})",
            ms(median(lat))
        );
        server.stop();

        // 3. 100 MB download: published port on 127.0.0.1 vs the container address.
        let www = tmp.path().join("www");
        std::fs::create_dir_all(&www).unwrap();
        let big = vec![0x5au8; 100 * 1024 * 1024];
        std::fs::write(www.join("big"), &big).unwrap();
        drop(big);
        let web_ip: Ipv4Addr = nets.inspect("bench_default").unwrap().endpoints["bench-web-0"].ip;
        children.push(
            Command::new("nsenter")
                .arg(format!("--net={}", pins[0].display()))
                .args(["/usr/bin/busybox", "httpd", "-f", "-p", "80", "-h"])
                .arg(&www)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let published = nets
            .publish(
                "bench-web-0",
                web_ip,
                &[PortSpec {
                    host_ip: Some(Ipv4Addr::LOCALHOST),
                    host_ports: None,
                    container_ports: (80, 80),
                    proto: Proto::Tcp,
                }],
            )
            .unwrap();
        let via_port = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), published[0].host_port);
        let direct = SocketAddr::new(web_ip.into(), 80);
        // Wait for httpd.
        let t0 = Instant::now();
        while TcpStream::connect(direct).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(5), "httpd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut d_direct = Vec::new();
        let mut d_port = Vec::new();
        for _ in 0..runs {
            let (n1, t1) = http_get(direct);
            let (n2, t2) = http_get(via_port);
            assert!(
                n1 > 100 * 1024 * 1024 && n2 > 100 * 1024 * 1024,
                "short download"
            );
            d_direct.push(t1);
            d_port.push(t2);
        }
        let mb = 100.0 * 1024.0 * 1024.0 / 1e6;
        let (md, mp) = (median(d_direct), median(d_port));
        let (rd, rp) = (mb / md.as_secs_f64(), mb / mp.as_secs_f64());
        println!(
            "http 100MB direct to container: median {} ({rd:.0} MB/s, runs={runs})",
            ms(md)
        );
        println!(
            "http 100MB via 127.0.0.1:{} (published): median {} ({rp:.0} MB/s)",
            published[0].host_port,
            ms(mp)
        );
        println!("published/direct throughput: {:.1}%", 100.0 * rp / rd);
    }));
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    if let Err(e) = nets.remove_all() {
        eprintln!("cleanup: {e}");
    }
    for p in pins {
        let _ = Netns::remove(&p);
    }
    if result.is_err() {
        std::process::exit(1);
    }
}
