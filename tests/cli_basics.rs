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

#[test]
fn completions_are_generated_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = rcompose().args(["completion", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("rcompose"), "{shell}");
        for verb in ["up", "down", "exec", "logs"] {
            assert!(text.contains(verb), "{shell} completion lacks {verb}");
        }
        assert!(
            !text.contains("__supervise"),
            "{shell} completion shows the hidden verb"
        );
    }
}

#[test]
fn every_docker_compose_verb_has_help() {
    for verb in [
        "up", "down", "ps", "logs", "exec", "run", "start", "stop", "restart", "kill", "pause",
        "unpause", "rm", "create", "top", "port", "wait", "attach", "cp", "stats", "events", "ls",
        "images", "version", "pull", "config",
    ] {
        let out = rcompose().args([verb, "--help"]).output().unwrap();
        assert!(out.status.success(), "{verb} --help");
    }
}
