//! Runs the shared conformance suite (`../shared/conformance/check.py`, real compose files with
//! Docker Compose v2's `config --format json` output) against the built binary, when that
//! folder is beside the clone (it is in CI). Every case must pass.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn conformance_suite_passes() {
    let suite = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance");
    if !suite.join("check.py").exists() {
        eprintln!(
            "conformance: {} not present, nothing to check",
            suite.display()
        );
        return;
    }
    let out = Command::new("python3")
        .arg(suite.join("check.py"))
        .arg("--bin")
        .arg(env!("CARGO_BIN_EXE_rcompose"))
        .output()
        .expect("python3 runs (apt package python3)");
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    let last = text.lines().last().unwrap_or_default();
    assert!(
        out.status.success() && last.ends_with(" 0 failed"),
        "conformance failures:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
