//! The binary starts, prints its version and its help.

use std::process::Command;

fn rcompose() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rcompose"))
}

#[test]
fn version_prints_the_package_version() {
    let out = rcompose().arg("version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim(),
        format!("rcompose version v{}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_lists_the_global_flags() {
    let out = rcompose().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in ["--file", "--project-name", "--profile", "--env-file"] {
        assert!(text.contains(flag), "help lacks {flag}");
    }
}
