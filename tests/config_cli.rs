//! `rcompose config` on the fixture folders in `tests/fixtures/compose/`: canonical output in
//! JSON and YAML, the listing flags, `-q`, and rendered errors.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/compose")
        .join(name)
}

fn rcompose(dir: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rcompose"));
    c.current_dir(fixture(dir))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/home/test");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("rcompose runs")
}

fn json(dir: &str, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let out = rcompose(dir, args, env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn config_json_prints_the_canonical_form() {
    let v = json("basic", &["config", "--format", "json"], &[]);
    let dir = fixture("basic");
    assert_eq!(v["name"], "basic");
    let web = &v["services"]["web"];
    assert_eq!(web["image"], "nginx:1.27");
    assert_eq!(
        web["ports"][0],
        serde_json::json!({"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"})
    );
    assert_eq!(web["volumes"][0]["type"], "bind");
    assert_eq!(
        web["volumes"][0]["source"],
        dir.join("html").to_str().unwrap()
    );
    assert_eq!(web["volumes"][0]["read_only"], true);
    assert_eq!(web["volumes"][1]["source"], "logs");
    assert_eq!(web["environment"]["MODE"], "dev");
    assert_eq!(web["depends_on"]["api"]["condition"], "service_healthy");
    assert_eq!(web["depends_on"]["api"]["required"], true);
    assert_eq!(web["networks"], serde_json::json!({"default": null}));
    let api = &v["services"]["api"];
    assert_eq!(
        api["command"],
        serde_json::json!(["serve", "--port", "9000"])
    );
    assert_eq!(api["healthcheck"]["interval"], "1m30s");
    assert_eq!(
        api["healthcheck"]["test"],
        serde_json::json!(["CMD-SHELL", "wget -qO- http://localhost:9000/health"])
    );
    assert_eq!(v["volumes"]["logs"]["name"], "basic_logs");
    assert_eq!(v["networks"]["default"]["name"], "basic_default");
}

#[test]
fn config_yaml_is_the_default_and_loads_back() {
    let out = rcompose("basic", &["config"], &[]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.starts_with("name: basic\n"), "{text}");
    assert!(text.contains("      published: \"8080\"\n"), "{text}");
    // The printed YAML is itself a valid compose file giving the same project.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), &text).unwrap();
    let again = Command::new(env!("CARGO_BIN_EXE_rcompose"))
        .current_dir(dir.path())
        .args(["-p", "basic", "config", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let a = json("basic", &["config", "--format", "json"], &[]);
    let b: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(a["services"], b["services"]);
}

#[test]
fn interpolation_from_env_and_dotenv_with_escapes() {
    let v = json(
        "interpolation",
        &["config", "--format", "json"],
        &[("CURRENCY", "EUR")],
    );
    let app = &v["services"]["app"];
    assert_eq!(app["image"], "docker.io/app:latest");
    // `$$` stays escaped in the output, as Docker Compose prints it.
    assert_eq!(app["environment"]["GREETING"], "cost: $$5 (in EUR)");
    assert_eq!(app["environment"]["FROM_DOTENV"], "dotenv-app");
    let raw = json(
        "interpolation",
        &["config", "--format", "json", "--no-interpolate"],
        &[],
    );
    assert_eq!(
        raw["services"]["app"]["image"],
        "$${REGISTRY:-docker.io}/$${IMAGE?IMAGE must be set}:$${TAG:-latest}"
    );
}

#[test]
fn listing_flags() {
    let out = rcompose("profiles", &["config", "--services"], &[]);
    assert_eq!(stdout(&out), "web\n");
    let out = rcompose(
        "profiles",
        &["--profile", "debug", "config", "--services"],
        &[],
    );
    assert_eq!(stdout(&out), "debug\ntools\nweb\n");
    let out = rcompose(
        "profiles",
        &["config", "--services"],
        &[("COMPOSE_PROFILES", "tools")],
    );
    assert_eq!(stdout(&out), "tools\nweb\n");
    let out = rcompose("profiles", &["config", "--profiles"], &[]);
    assert_eq!(stdout(&out), "debug\ntools\n");
    let out = rcompose("profiles", &["config", "--images"], &[]);
    assert_eq!(stdout(&out), "web\n");
    let out = rcompose("basic", &["config", "--volumes"], &[]);
    assert_eq!(stdout(&out), "logs\n");
    let out = rcompose("basic", &["config", "--hash", "*"], &[]);
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].starts_with("api ") && lines[0].len() == 4 + 64,
        "{lines:?}"
    );
}

#[test]
fn quiet_validates_only_and_the_exit_status_says() {
    let out = rcompose("basic", &["config", "-q"], &[]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let out = rcompose("invalid-port", &["config", "-q"], &[]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
}

#[test]
fn errors_are_rendered_with_file_line_and_column() {
    let out = rcompose("invalid-port", &["config"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let file = fixture("invalid-port").join("compose.yaml");
    assert!(
        err.contains(&format!(
            "{}:5:9: services.web.ports[0]: invalid port \"80:80:80:80\"",
            file.display()
        )),
        "{err}"
    );
    let out = rcompose("cycle", &["config"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dependency cycle: a -> b -> a"), "{err}");
    let out = rcompose("interpolation", &["config"], &[("IMAGE", "")]);
    assert!(out.status.success(), "IMAGE set but empty satisfies `?`");
}

#[test]
fn missing_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rcompose"))
        .current_dir(dir.path())
        .args(["config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no configuration file provided"));
}
