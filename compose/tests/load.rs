//! The loader end to end on small projects written to temporary folders: discovery, `.env`,
//! interpolation, include, extends, merge, profiles, normalization, errors with positions,
//! the dependency graph and the config hash.

use std::fs;
use std::path::Path;

use compose::{load, LoadOptions};

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
}

fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, LoadOptions) {
    let dir = tempfile::Builder::new().prefix("proj").tempdir().unwrap();
    write(dir.path(), files);
    let opts = LoadOptions {
        cwd: dir.path().to_path_buf(),
        ..Default::default()
    };
    (dir, opts)
}

fn err(files: &[(&str, &str)]) -> String {
    let (_d, opts) = project(files);
    load(&opts).unwrap_err().to_string()
}

#[test]
fn discovery_finds_compose_yaml_and_its_override_from_a_subfolder() {
    let (dir, mut opts) = project(&[
        ("compose.yaml", "services:\n  web:\n    image: a\n"),
        ("compose.override.yaml", "services:\n  web:\n    image: b\n"),
        ("sub/deeper/.keep", ""),
    ]);
    opts.cwd = dir.path().join("sub/deeper");
    let p = load(&opts).unwrap();
    assert_eq!(p.services["web"].image.as_deref(), Some("b"));
    assert_eq!(p.compose_files.len(), 2);
    assert_eq!(p.working_dir, dir.path());
}

#[test]
fn project_name_from_folder_is_normalized() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("My.App_1");
    write(
        &folder,
        &[("compose.yaml", "services:\n  web:\n    image: a\n")],
    );
    let opts = LoadOptions {
        cwd: folder.clone(),
        ..Default::default()
    };
    assert_eq!(load(&opts).unwrap().name, "myapp_1");
}

#[test]
fn project_name_precedence() {
    let (_d, mut opts) = project(&[(
        "compose.yaml",
        "name: fromfile\nservices:\n  web:\n    image: a\n",
    )]);
    assert_eq!(load(&opts).unwrap().name, "fromfile");
    opts.environment
        .insert("COMPOSE_PROJECT_NAME".into(), "fromenv".into());
    assert_eq!(load(&opts).unwrap().name, "fromenv");
    opts.project_name = Some("fromflag".into());
    assert_eq!(load(&opts).unwrap().name, "fromflag");
}

#[test]
fn dotenv_interpolates_and_sets_compose_file_and_profiles() {
    let (_d, mut opts) = project(&[
        (".env", "COMPOSE_FILE=a.yaml:b.yaml\nTAG=${BASE:-1}.2\nCOMPOSE_PROFILES=dbg\n"),
        ("a.yaml", "services:\n  web:\n    image: app:${TAG}\n"),
        (
            "b.yaml",
            "services:\n  dbg:\n    image: x\n    profiles: [dbg]\n  off:\n    image: y\n    profiles: [other]\n",
        ),
    ]);
    opts.environment.insert("BASE".into(), "7".into());
    let p = load(&opts).unwrap();
    assert_eq!(p.services["web"].image.as_deref(), Some("app:7.2"));
    assert!(p.services.contains_key("dbg"));
    assert!(!p.services.contains_key("off"));
    assert!(p.disabled_services.contains_key("off"));
}

#[test]
fn process_environment_wins_over_dotenv_and_env_files_stack() {
    let (dir, mut opts) = project(&[
        (
            "compose.yaml",
            "services:\n  web:\n    image: ${A}-${B}-${C}\n",
        ),
        ("one.env", "A=1\nB=1\n"),
        ("two.env", "B=2\nC=${B}\n"),
    ]);
    opts.env_files = vec![dir.path().join("one.env"), "two.env".into()];
    opts.environment.insert("A".into(), "env".into());
    let p = load(&opts).unwrap();
    // Earlier sources keep their value: process env, then the first --env-file.
    assert_eq!(p.services["web"].image.as_deref(), Some("env-1-1"));
}

#[test]
fn a_service_named_on_the_command_line_enables_its_profile() {
    let (_d, mut opts) = project(&[(
        "compose.yaml",
        "services:\n  tool:\n    image: t\n    profiles: [tools]\n  web:\n    image: w\n",
    )]);
    assert!(!load(&opts).unwrap().services.contains_key("tool"));
    opts.services = vec!["tool".into()];
    assert!(load(&opts).unwrap().services.contains_key("tool"));
    opts.services = vec![];
    opts.profiles = vec!["*".into()];
    assert!(load(&opts).unwrap().services.contains_key("tool"));
}

#[test]
fn short_syntax_is_normalized() {
    let (dir, opts) = project(&[(
        "compose.yaml",
        r#"
services:
  web:
    image: nginx
    command: sh -c "echo 'hi there'"
    ports: ["127.0.0.1:8000-8001:80-81/udp", "9000"]
    volumes: ["./data:/data:ro,z", "cache:/cache:nocopy"]
    environment: [A=1, B]
    depends_on: [db]
    healthcheck:
      test: curl -f http://localhost
      interval: 1m30s
    mem_limit: 512m
    ulimits:
      nofile: {soft: 1024, hard: 2048}
      nproc: 65535
    devices: ["/dev/fuse"]
    extra_hosts: ["a:10.0.0.1"]
  db:
    image: postgres
volumes:
  cache:
"#,
    )]);
    let p = load(&opts).unwrap();
    let web = &p.services["web"];
    assert_eq!(
        web.command.as_deref().unwrap(),
        ["sh", "-c", "echo 'hi there'"]
    );
    let ports = web.ports.as_ref().unwrap();
    assert_eq!(ports.len(), 3);
    assert_eq!(ports[1].target, 81);
    assert_eq!(ports[1].published.as_deref(), Some("8001"));
    assert_eq!(ports[1].host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(ports[1].protocol.as_deref(), Some("udp"));
    assert_eq!(ports[2].published, None);
    let vols = web.volumes.as_ref().unwrap();
    assert_eq!(vols[0].kind, "bind");
    assert_eq!(
        vols[0].source.as_deref(),
        Some(dir.path().join("data").to_str().unwrap())
    );
    assert_eq!(vols[0].read_only, Some(true));
    assert_eq!(vols[1].kind, "volume");
    assert_eq!(vols[1].volume.as_ref().unwrap().nocopy, Some(true));
    let env = web.environment.as_ref().unwrap();
    assert_eq!(env["A"].as_deref(), Some("1"));
    assert_eq!(env["B"], None);
    let dep = &web.depends_on.as_ref().unwrap()["db"];
    assert_eq!(dep.condition, compose::DependencyCondition::ServiceStarted);
    assert!(dep.required);
    let hc = web.healthcheck.as_ref().unwrap();
    assert_eq!(
        hc.test.as_deref().unwrap(),
        ["CMD-SHELL", "curl -f http://localhost"]
    );
    assert_eq!(hc.interval.unwrap().0.as_secs(), 90);
    assert_eq!(web.mem_limit.unwrap().0, 512 * 1024 * 1024);
    let ul = web.ulimits.as_ref().unwrap();
    assert_eq!(ul["nofile"].limits(), (Some(1024), Some(2048)));
    assert_eq!(ul["nproc"].limits(), (Some(65535), Some(65535)));
    let dev = &web.devices.as_ref().unwrap()[0];
    assert_eq!(dev.target.as_deref(), Some("/dev/fuse"));
    assert_eq!(web.extra_hosts.as_deref().unwrap(), ["a=10.0.0.1"]);
    assert_eq!(
        p.volumes["cache"].name.as_deref(),
        Some(&*format!("{}_cache", p.name))
    );
    assert_eq!(
        p.networks["default"].name.as_deref(),
        Some(&*format!("{}_default", p.name))
    );
}

#[test]
fn anchors_merge_keys_and_extensions() {
    let (_d, opts) = project(&[(
        "compose.yaml",
        "x-base: &base\n  image: busybox\n  environment: {A: '1'}\nx-more: &more\n  restart: always\nservices:\n  a:\n    <<: [*base, *more]\n    environment: {B: '2'}\n",
    )]);
    let p = load(&opts).unwrap();
    let a = &p.services["a"];
    assert_eq!(a.image.as_deref(), Some("busybox"));
    assert_eq!(a.restart.as_deref(), Some("always"));
    // An explicit key replaces the merged one entirely (YAML merge keys are shallow).
    assert_eq!(a.environment.as_ref().unwrap().len(), 1);
    assert!(p.extensions.contains_key("x-base"));
}

#[test]
fn extends_same_file_other_file_and_chains_with_reset() {
    let (_d, opts) = project(&[
        (
            "compose.yaml",
            "services:\n  base:\n    image: b\n    command: [x]\n    environment: {A: '1'}\n  mid:\n    extends: base\n    environment: {B: '2'}\n  top:\n    extends: {service: mid}\n    command: !reset null\n  other:\n    extends: {file: common/c.yaml, service: web}\n",
        ),
        ("common/c.yaml", "services:\n  web:\n    image: w\n    volumes: ['./here:/x']\n"),
    ]);
    let p = load(&opts).unwrap();
    let top = &p.services["top"];
    assert_eq!(top.image.as_deref(), Some("b"));
    assert_eq!(top.command, None);
    assert_eq!(top.environment.as_ref().unwrap().len(), 2);
    let other = &p.services["other"];
    let src = other.volumes.as_ref().unwrap()[0].source.clone().unwrap();
    assert!(src.ends_with("/common/here"), "{src}");
}

#[test]
fn extends_cycle_is_rejected() {
    let e = err(&[(
        "compose.yaml",
        "services:\n  a:\n    extends: b\n    image: x\n  b:\n    extends: a\n",
    )]);
    assert!(e.contains("extends cycle: a -> b -> a"), "{e}");
}

#[test]
fn include_with_env_file_and_cycle() {
    let (_d, opts) = project(&[
        (
            "compose.yaml",
            "include:\n  - path: sub/inc.yaml\n    env_file: sub/inc.env\nservices:\n  web:\n    image: w\n    depends_on: [db]\n",
        ),
        ("sub/inc.yaml", "services:\n  db:\n    image: ${DB_IMAGE}\n    volumes: [./d:/d]\n"),
        ("sub/inc.env", "DB_IMAGE=postgres\n"),
    ]);
    let p = load(&opts).unwrap();
    assert_eq!(p.services["db"].image.as_deref(), Some("postgres"));
    let src = p.services["db"].volumes.as_ref().unwrap()[0]
        .source
        .clone()
        .unwrap();
    assert!(src.ends_with("/sub/d"), "{src}");

    let e = err(&[
        (
            "compose.yaml",
            "include: [a.yaml]\nservices:\n  x:\n    image: x\n",
        ),
        ("a.yaml", "include: [b.yaml]\n"),
        ("b.yaml", "include: [a.yaml]\n"),
    ]);
    assert!(e.contains("include cycle"), "{e}");
}

#[test]
fn merge_of_several_files_follows_the_spec() {
    let (dir, mut opts) = project(&[
        (
            "a.yaml",
            "services:\n  web:\n    image: a\n    ports: ['80:80']\n    volumes: ['v:/data']\n    environment: {A: '1'}\n    command: [one, two]\nvolumes: {v: {}, w: {}}\n",
        ),
        (
            "b.yaml",
            "services:\n  web:\n    ports: ['81:81']\n    volumes: ['w:/data']\n    environment: {B: '2'}\n    command: [three]\n",
        ),
    ]);
    opts.files = vec![dir.path().join("a.yaml"), dir.path().join("b.yaml")];
    let p = load(&opts).unwrap();
    let web = &p.services["web"];
    assert_eq!(web.ports.as_ref().unwrap().len(), 2);
    let vols = web.volumes.as_ref().unwrap();
    assert_eq!(vols.len(), 1);
    assert_eq!(vols[0].source.as_deref(), Some("w"));
    assert_eq!(web.environment.as_ref().unwrap().len(), 2);
    assert_eq!(web.command.as_deref().unwrap(), ["three"]);
}

#[test]
fn stdin_file() {
    let (_d, mut opts) = project(&[]);
    opts.files = vec!["-".into()];
    opts.stdin = Some("services:\n  s:\n    image: x\n".into());
    assert_eq!(
        load(&opts).unwrap().services["s"].image.as_deref(),
        Some("x")
    );
}

#[test]
fn errors_name_file_line_column_and_path() {
    let e = err(&[(
        "compose.yaml",
        "services:\n  web:\n    image: x\n    ports:\n      - \"80:80:80:80\"\n",
    )]);
    assert!(
        e.contains("compose.yaml:5:9: services.web.ports[0]: invalid port \"80:80:80:80\""),
        "{e}"
    );
    let e = err(&[(
        "compose.yaml",
        "services:\n  web:\n    image: x\n    volumes: ['::/x']\n",
    )]);
    assert!(
        e.contains("compose.yaml:4:15: services.web.volumes[0]: invalid volume"),
        "{e}"
    );
    let e = err(&[(
        "compose.yaml",
        "services:\n  web:\n    image: x\n    networks: [nope]\n",
    )]);
    assert!(e.contains("compose.yaml:4:16: services.web.networks: service \"web\" refers to undefined network \"nope\""), "{e}");
    let e = err(&[(
        "compose.yaml",
        "services:\n  web:\n    image: x\n    bogus: 1\n",
    )]);
    assert!(
        e.contains("compose.yaml:4:12: services.web: unknown key \"bogus\""),
        "{e}"
    );
    let e = err(&[(
        "compose.yaml",
        "services:\n  web:\n    image: x\n    restart: [3]\n",
    )]);
    assert!(
        e.contains("compose.yaml:4:14: services.web.restart: expected a string, found a list"),
        "{e}"
    );
    let e = err(&[(
        "compose.yaml",
        "services:\n  web:\n    image: x\n    secrets: [s]\n",
    )]);
    assert!(e.contains("undefined secret \"s\""), "{e}");
    let e = err(&[(
        "compose.yaml",
        "services:\n  web:\n    image: ${NOPE:?set NOPE please}\n",
    )]);
    assert!(e.contains("compose.yaml:3:12: services.web.image: required variable NOPE is missing a value: set NOPE please"), "{e}");
    let e = err(&[(
        "compose.yaml",
        "services:\n  web:\n    image: x\n    image: y\n",
    )]);
    assert!(
        e.contains("compose.yaml:4:5: duplicate key \"image\""),
        "{e}"
    );
    let e = err(&[(
        "compose.yaml",
        "services:\n  web:\n    image: x\n    network_mode: host\n    networks: [default]\n",
    )]);
    assert!(e.contains("mutually exclusive"), "{e}");
}

#[test]
fn depends_on_cycle_is_named_deterministically() {
    let e = err(&[(
        "compose.yaml",
        "services:\n  c:\n    image: x\n    depends_on: [a]\n  b:\n    image: x\n    depends_on: [c]\n  a:\n    image: x\n    depends_on: [b]\n",
    )]);
    assert!(e.contains("dependency cycle: a -> b -> c -> a"), "{e}");
}

#[test]
fn graph_waves_selection_and_no_deps() {
    let (_d, opts) = project(&[(
        "compose.yaml",
        "services:\n  db:\n    image: x\n  cache:\n    image: x\n  api:\n    image: x\n    depends_on: [db, cache]\n  web:\n    image: x\n    depends_on: [api]\n  lone:\n    image: x\n",
    )]);
    let p = load(&opts).unwrap();
    let g = p.graph().unwrap();
    assert_eq!(
        g.start_waves(),
        vec![vec!["cache", "db", "lone"], vec!["api"], vec!["web"]]
    );
    assert_eq!(g.stop_waves()[0], vec!["web"]);
    assert_eq!(
        g.select(&["web".into()], false).unwrap(),
        vec!["api", "cache", "db", "web"]
    );
    assert_eq!(g.select(&["web".into()], true).unwrap(), vec!["web"]);
    let sel = g.select(&["api".into()], false).unwrap();
    assert_eq!(g.waves_for(&sel), vec![vec!["cache", "db"], vec!["api"]]);
    assert!(g.select(&["nope".into()], false).is_err());
}

#[test]
fn config_hash_ignores_what_does_not_change_the_container() {
    let (dir, mut opts) = project(&[
        ("a.yaml", "services:\n  w:\n    image: x\n  d:\n    image: x\n"),
        (
            "b.yaml",
            "services:\n  w:\n    image: x\n    deploy: {replicas: 3}\n    depends_on: [d]\n    pull_policy: always\n    build: .\n  d:\n    image: x\n",
        ),
        ("c.yaml", "services:\n  w:\n    image: y\n  d:\n    image: x\n"),
    ]);
    let hash = |f: &str, opts: &mut LoadOptions| {
        opts.files = vec![dir.path().join(f)];
        load(opts).unwrap().services["w"].config_hash()
    };
    let a = hash("a.yaml", &mut opts);
    assert_eq!(a, hash("b.yaml", &mut opts));
    assert_ne!(a, hash("c.yaml", &mut opts));
}

#[test]
fn env_file_short_and_long_forms() {
    let (_d, opts) = project(&[
        (
            "compose.yaml",
            "services:\n  w:\n    image: x\n    env_file:\n      - a.env\n      - path: missing.env\n        required: false\n    environment: {B: over}\n",
        ),
        ("a.env", "A=1\nB=2\n"),
    ]);
    let p = load(&opts).unwrap();
    let env = p.services["w"].environment.as_ref().unwrap();
    assert_eq!(env["A"].as_deref(), Some("1"));
    assert_eq!(env["B"].as_deref(), Some("over"));
    let e = err(&[(
        "compose.yaml",
        "services:\n  w:\n    image: x\n    env_file: nope.env\n",
    )]);
    assert!(e.contains("env file") && e.contains("nope.env"), "{e}");
}

#[test]
fn billion_laughs_file_fails_fast() {
    let mut s = String::from("x-a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        s.push_str(&format!("x-a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    s.push_str("services:\n  w:\n    image: x\n");
    let t = std::time::Instant::now();
    let e = err(&[("compose.yaml", &s)]);
    assert!(e.contains("alias expansion"), "{e}");
    assert!(t.elapsed().as_secs() < 5);
}

#[test]
fn conflicting_attributes_are_rejected() {
    let e = err(&[(
        "compose.yaml",
        "services:\n  w:\n    image: x\n    scale: 2\n    deploy: {replicas: 3}\n",
    )]);
    assert!(
        e.contains("compose.yaml:4:12: services.w.scale: can't set distinct values"),
        "{e}"
    );
    let e = err(&[(
        "compose.yaml",
        "services:\n  w:\n    image: x\n    container_name: c\n    deploy: {replicas: 3}\n",
    )]);
    assert!(e.contains("services.w.container_name"), "{e}");
    let e = err(&[(
        "compose.yaml",
        "services:\n  w:\n    image: x\nvolumes:\n  v:\n    external: true\n    driver: local\n",
    )]);
    assert!(
        e.contains("volumes.v: conflicting parameters \"external\" and \"driver\""),
        "{e}"
    );
}

#[test]
fn depends_on_cycle_points_into_the_file() {
    let e = err(&[(
        "compose.yaml",
        "services:\n  b:\n    image: x\n    depends_on: [a]\n  a:\n    image: x\n    depends_on: [b]\n",
    )]);
    assert!(
        e.contains("compose.yaml:7:17: services.a.depends_on: dependency cycle: a -> b -> a"),
        "{e}"
    );
}

#[test]
fn env_file_raw_format_keeps_values_verbatim() {
    let (_d, opts) = project(&[
        (
            "compose.yaml",
            "services:\n  w:\n    image: x\n    env_file:\n      - path: raw.env\n        format: raw\n",
        ),
        ("raw.env", "A=\"quoted ${X}\"\n"),
    ]);
    let p = load(&opts).unwrap();
    assert_eq!(
        p.services["w"].environment.as_ref().unwrap()["A"].as_deref(),
        Some("\"quoted ${X}\"")
    );
}

#[test]
fn typing_errors_name_position_and_path() {
    let e = err(&[(
        "compose.yaml",
        "services:\n  w:\n    image: x\n    mem_limit: lots\n",
    )]);
    assert!(
        e.contains("compose.yaml:4:16: services.w.mem_limit: invalid size \"lots\""),
        "{e}"
    );
    let e = err(&[(
        "compose.yaml",
        "services:\n  w:\n    image: x\n    healthcheck:\n      interval: 10 parsecs\n",
    )]);
    assert!(
        e.contains("compose.yaml:5:17: services.w.healthcheck.interval: invalid duration"),
        "{e}"
    );
}

#[test]
fn extends_may_name_its_own_file_and_cross_files_without_false_cycles() {
    let (_d, opts) = project(&[
        (
            "compose.yaml",
            "services:\n  base:\n    image: b\n  web:\n    extends: {file: compose.yaml, service: base}\n  api:\n    extends: {file: other.yaml, service: mid}\n",
        ),
        (
            "other.yaml",
            "services:\n  mid:\n    extends: {file: compose.yaml, service: base}\n    restart: always\n",
        ),
    ]);
    let p = load(&opts).unwrap();
    assert_eq!(p.services["web"].image.as_deref(), Some("b"));
    assert_eq!(p.services["api"].image.as_deref(), Some("b"));
    assert_eq!(p.services["api"].restart.as_deref(), Some("always"));
    let e = err(&[
        (
            "compose.yaml",
            "services:\n  a:\n    extends: {file: x.yaml, service: b}\n",
        ),
        (
            "x.yaml",
            "services:\n  b:\n    extends: {file: compose.yaml, service: a}\n",
        ),
    ]);
    assert!(e.contains("extends cycle: a -> b -> a"), "{e}");
}

#[test]
fn compose_file_with_custom_separator_and_project_directory() {
    let (dir, mut opts) = project(&[
        (
            "conf/a.yaml",
            "services:\n  w:\n    image: a\n    volumes: [./data:/data]\n",
        ),
        ("conf/b.yaml", "services:\n  w:\n    image: b\n"),
        (
            "proj/.env",
            "COMPOSE_FILE=../conf/a.yaml;../conf/b.yaml\nCOMPOSE_PATH_SEPARATOR=;\n",
        ),
    ]);
    opts.project_directory = Some(dir.path().join("proj"));
    let p = load(&opts).unwrap();
    assert_eq!(p.services["w"].image.as_deref(), Some("b"));
    assert_eq!(p.name, "proj");
    // Relative paths resolve against the project directory.
    let src = p.services["w"].volumes.as_ref().unwrap()[0]
        .source
        .clone()
        .unwrap();
    assert_eq!(src, dir.path().join("proj/data").to_str().unwrap());
}

#[test]
fn a_document_reset_to_nothing_is_an_empty_project_not_a_crash() {
    let (_d, mut opts) = project(&[]);
    opts.files = vec!["-".into()];
    opts.stdin = Some("services: {a: {image: x}}\n--- !reset\n{}\n".into());
    let p = load(&opts).unwrap();
    assert!(p.services.is_empty());
}
