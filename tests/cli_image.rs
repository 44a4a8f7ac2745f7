//! `rcompose image …` end to end: the real binary on a fresh state root.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn rcompose(root: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rcompose"))
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
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

fn busybox_rootfs() -> Vec<u8> {
    let bb = std::fs::read("/usr/bin/busybox")
        .expect("/usr/bin/busybox is missing: install Debian's busybox-static package");
    let mut t = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(bb.len() as u64);
    h.set_mode(0o755);
    h.set_cksum();
    t.append_data(&mut h, "bin/busybox", &bb[..]).unwrap();
    t.into_inner().unwrap()
}

#[test]
fn import_ls_inspect_save_load_rm_prune() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let id = ok(rcompose(
        r,
        &[
            "image",
            "import",
            "-c",
            r#"CMD ["/bin/busybox", "sh"]"#,
            "-",
            "demo/bb:1",
        ],
        Some(&busybox_rootfs()),
    ));
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let ls = ok(rcompose(r, &["image", "ls"], None));
    assert!(ls.lines().next().unwrap().starts_with("REPOSITORY"));
    assert!(
        ls.contains("demo/bb") && ls.contains(&id.trim()[7..19]),
        "{ls}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(rcompose(r, &["image", "inspect", "demo/bb:1"], None))).unwrap();
    assert_eq!(inspect[0]["Id"], id.trim());
    assert_eq!(
        inspect[0]["Config"]["Cmd"],
        serde_json::json!(["/bin/busybox", "sh"])
    );
    let lower = inspect[0]["GraphDriver"]["Data"]["LowerDirs"][0]
        .as_str()
        .unwrap();
    assert!(Path::new(lower).join("bin/busybox").is_file());

    let archive = r.join("out.tar");
    ok(rcompose(
        r,
        &[
            "image",
            "save",
            "-o",
            archive.to_str().unwrap(),
            "demo/bb:1",
        ],
        None,
    ));
    let other = tempfile::tempdir().unwrap();
    let loaded = ok(rcompose(
        other.path(),
        &["image", "load", "-i", archive.to_str().unwrap()],
        None,
    ));
    assert_eq!(loaded.trim(), "Loaded image: demo/bb:1");

    let rm = ok(rcompose(r, &["image", "rm", "demo/bb:1"], None));
    assert_eq!(rm.trim(), "Untagged: demo/bb:1");
    assert!(
        !Path::new(lower).exists(),
        "unused layer removed with the image"
    );
    let q = ok(rcompose(r, &["image", "ls", "-q"], None));
    assert_eq!(q, "");
    ok(rcompose(r, &["image", "prune", "--force"], None));

    let missing = rcompose(r, &["image", "inspect", "nope"], None);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such image: nope"));
}

#[test]
fn pull_policy_never_fails_clearly_when_absent() {
    let root = tempfile::tempdir().unwrap();
    let o = rcompose(
        root.path(),
        &["image", "pull", "--policy", "never", "busybox"],
        None,
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("busybox:latest") && err.contains("not present"),
        "{err}"
    );
}
