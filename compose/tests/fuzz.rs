//! Property run of the whole loader on generated input: random compose-like documents built
//! from the spec's keys (with anchors, merge keys, tags, interpolation) and random mutations of
//! a real file. The loader must answer (a project or an error) without panicking or hanging.
//! `PROPTEST_CASES=N` makes the run longer.

use proptest::prelude::*;

const SEED: &str = r#"x-common: &common
  restart: always
  environment: {A: "1"}
services:
  web:
    <<: *common
    image: nginx:${TAG:-latest}
    ports: ["8080:80", "127.0.0.1:9000-9001:9000-9001/udp"]
    volumes: ["./html:/usr/share/nginx/html:ro", "data:/data"]
    depends_on: {db: {condition: service_healthy}}
    networks: {front: {aliases: [w]}}
    healthcheck: {test: "curl -f http://x", interval: 1m30s}
    deploy: {replicas: 2, resources: {limits: {memory: 512m, cpus: "0.5"}}}
  db:
    image: postgres
    command: !reset null
    ulimits: {nofile: {soft: 1, hard: 2}}
volumes: {data: {}}
networks: {front: {}}
"#;

const KEYS: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "ports",
    "volumes",
    "environment",
    "depends_on",
    "networks",
    "healthcheck",
    "deploy",
    "extends",
    "profiles",
    "env_file",
    "secrets",
    "configs",
    "ulimits",
    "devices",
    "tmpfs",
    "build",
    "labels",
    "network_mode",
    "restart",
    "mem_limit",
    "expose",
    "extra_hosts",
    "links",
    "volumes_from",
    "x-ext",
    "bogus",
];

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("80:80".to_string()),
        Just("${X:-1}".to_string()),
        Just("$$".to_string()),
        Just("${".to_string()),
        Just("a:b:c:d".to_string()),
        Just("./x:/y:ro".to_string()),
        Just("service:web".to_string()),
        Just("web".to_string()),
        Just("db".to_string()),
        Just("1m".to_string()),
        Just("-1".to_string()),
        Just("~".to_string()),
        Just("true".to_string()),
        "[a-z0-9:/._-]{0,12}",
    ]
}

fn value(depth: u32) -> BoxedStrategy<String> {
    let leaf = scalar().prop_map(|s| format!("{s:?}")).boxed();
    if depth == 0 {
        return leaf;
    }
    prop_oneof![
        leaf,
        prop::collection::vec(value(depth - 1), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
        prop::collection::vec((prop::sample::select(KEYS), value(depth - 1)), 0..4).prop_map(
            |kv| {
                let mut seen = std::collections::HashSet::new();
                let items: Vec<String> = kv
                    .into_iter()
                    .filter(|(k, _)| seen.insert(*k))
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                format!("{{{}}}", items.join(", "))
            }
        ),
    ]
    .boxed()
}

fn document() -> impl Strategy<Value = String> {
    let service = prop::collection::vec((prop::sample::select(KEYS), value(2)), 0..6);
    prop::collection::vec(("[a-d]", service), 0..5).prop_map(|svcs| {
        let mut out = String::from("services:\n");
        let mut names = std::collections::HashSet::new();
        for (name, attrs) in svcs {
            if !names.insert(name.clone()) {
                continue;
            }
            out.push_str(&format!("  {name}:\n"));
            let mut seen = std::collections::HashSet::new();
            for (k, v) in attrs {
                if seen.insert(k) {
                    out.push_str(&format!("    {k}: {v}\n"));
                }
            }
        }
        out.push_str("networks: {front: {}}\nvolumes: {data: {}}\n");
        out
    })
}

fn run(text: String) {
    let dir = tempfile::tempdir().unwrap();
    let opts = compose::LoadOptions {
        files: vec!["-".into()],
        stdin: Some(text),
        cwd: dir.path().to_path_buf(),
        ..Default::default()
    };
    let t = std::time::Instant::now();
    if let Ok(p) = compose::load(&opts) {
        // A loaded project always has a usable graph and serializes.
        let g = p.graph().unwrap();
        let _ = g.start_waves();
        serde_json::to_string(&p).unwrap();
    }
    assert!(
        t.elapsed() < std::time::Duration::from_secs(2),
        "slow input"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn generated_documents_never_panic(
        doc in document(),
        more in prop::sample::select(vec![
            "",
            "--- !reset\n{}\n",
            "---\nservices: !reset {}\n",
            "--- !override\nservices: {}\n",
            "---\n~\n",
            "---\nservices: {a: {image: !reset null, ports: !override [80]}}\n",
            "---\n- a\n",
        ]),
    ) {
        run(format!("{doc}{more}"));
    }

    #[test]
    fn mutated_seed_never_panics(
        edits in prop::collection::vec((0usize..SEED.len(), 0usize..4, "[ -~\n]{0,3}"), 1..6)
    ) {
        let mut text = SEED.as_bytes().to_vec();
        for (pos, del, ins) in edits {
            let pos = pos.min(text.len());
            let end = (pos + del).min(text.len());
            text.splice(pos..end, ins.bytes());
        }
        run(String::from_utf8_lossy(&text).into_owned());
    }
}

#[test]
fn seed_loads() {
    let dir = tempfile::tempdir().unwrap();
    let opts = compose::LoadOptions {
        files: vec!["-".into()],
        stdin: Some(SEED.to_string()),
        cwd: dir.path().to_path_buf(),
        ..Default::default()
    };
    let p = compose::load(&opts).unwrap();
    assert_eq!(p.services.len(), 2);
}
