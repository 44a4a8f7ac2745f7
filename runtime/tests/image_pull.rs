//! Pulls from a real registry (`docker-registry` on 127.0.0.1) into a fresh store: layer
//! formats, unpacked content, the image config, platforms, auth, errors, concurrency.

mod support;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use runtime::image::{ImageError, Platform, PullEvent, PullPolicy, RegistryOptions, Store};
use support::*;

fn no_progress(_: PullEvent) {}

fn open(root: &Path) -> Store {
    Store::open_with(root, RegistryOptions::default()).unwrap()
}

/// A layer with the metadata an unpacker must keep.
fn rich_layer() -> Vec<u8> {
    let mut l = LayerBuilder::new();
    l.dir("srv", 0o750)
        .file_owned("srv/owned", 0o640, 1234, 5678, b"owned")
        .file("srv/setuid", 0o4755, b"#!/bin/sh\n")
        .file_with_xattr("srv/xattr", 0o644, b"x", "user.rcompose", "hello")
        .hardlink("srv/hardlink", "srv/owned")
        .symlink("srv/symlink", "/etc/passwd")
        .char_device("srv/null", 1, 3)
        .dir("data", 0o755)
        .file("data/keep", 0o644, b"lower");
    l.finish()
}

/// A top layer with a whiteout and an opaque directory.
fn whiteout_layer() -> Vec<u8> {
    let mut l = LayerBuilder::new();
    l.dir("etc", 0o755)
        .file("etc/.wh.passwd", 0o644, b"")
        .dir("data", 0o755)
        .file("data/.wh..wh..opq", 0o644, b"")
        .file("data/new", 0o644, b"upper");
    l.finish()
}

#[test]
fn pulls_gzip_zstd_and_plain_layers_with_metadata_and_whiteouts() {
    let reg = Registry::start();
    let mut spec = ImageSpec::new(vec![
        (busybox_layer(), Compression::Gzip),
        (rich_layer(), Compression::Zstd),
        (whiteout_layer(), Compression::None),
    ]);
    spec.config = serde_json::json!({
        "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"], "Env": ["PATH=/bin", "A=b"],
        "WorkingDir": "/srv", "User": "1000:1000", "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
        "Volumes": {"/data": {}}, "StopSignal": "SIGINT", "Labels": {"org.example": "yes"},
        "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 2000000000, "Retries": 4},
    });
    let built = build_and_push(&reg, "app/rich:1", &[spec]);
    let root = state_root();
    let store = open(root.path());
    let reference = format!("{}/app/rich:1", reg.host());
    let events = Mutex::new(Vec::new());
    let img = store
        .ensure(&reference, PullPolicy::Missing, None, &|e| {
            events.lock().unwrap().push(e)
        })
        .unwrap();

    assert_eq!(img.id.as_str(), built.images[0].2);
    assert_eq!(img.manifest_digest.as_ref().unwrap().as_str(), built.top);
    assert_eq!(img.layers.len(), 3);
    let c = &img.config;
    assert_eq!(
        c.entrypoint.as_deref(),
        Some(&["/bin/sh".to_string(), "-c".into()][..])
    );
    assert_eq!(c.cmd.as_deref(), Some(&["echo hi".to_string()][..]));
    assert_eq!(c.env, vec!["PATH=/bin", "A=b"]);
    assert_eq!(c.working_dir.as_deref(), Some("/srv"));
    assert_eq!(c.user.as_deref(), Some("1000:1000"));
    assert_eq!(c.exposed_ports, vec!["53/udp", "8080/tcp"]);
    assert_eq!(c.volumes, vec!["/data"]);
    assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
    assert_eq!(c.labels["org.example"], "yes");
    let h = c.healthcheck.as_ref().unwrap();
    assert_eq!(h.test, vec!["CMD-SHELL", "true"]);
    assert_eq!(h.interval, Some(Duration::from_secs(2)));
    assert_eq!(h.retries, Some(4));

    // Lowest layer: busybox.
    let bb = std::fs::read(img.layers[0].join("bin/busybox")).unwrap();
    assert_eq!(bb, std::fs::read(BUSYBOX).unwrap());
    assert_eq!(
        std::fs::read_link(img.layers[0].join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    // Middle layer (zstd): metadata kept.
    let l1 = &img.layers[1];
    let owned = std::fs::metadata(l1.join("srv/owned")).unwrap();
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o7777),
        (1234, 5678, 0o640)
    );
    let setuid = std::fs::metadata(l1.join("srv/setuid")).unwrap();
    assert_eq!(setuid.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(
        std::fs::metadata(l1.join("srv")).unwrap().mode() & 0o7777,
        0o750
    );
    let linked = std::fs::metadata(l1.join("srv/hardlink")).unwrap();
    assert_eq!(linked.ino(), owned.ino(), "hardlink shares the inode");
    assert_eq!(
        std::fs::read_link(l1.join("srv/symlink")).unwrap(),
        Path::new("/etc/passwd")
    );
    let dev = std::fs::symlink_metadata(l1.join("srv/null")).unwrap();
    assert!(dev.file_type().is_char_device());
    assert_eq!(dev.rdev(), rustix::fs::makedev(1, 3));
    let x = xattr(&l1.join("srv/xattr"), "user.rcompose");
    assert_eq!(x.as_deref(), Some(&b"hello"[..]));
    // Top layer (plain): whiteout is a 0/0 char device, opaque dir has the xattr.
    let l2 = &img.layers[2];
    let wh = std::fs::symlink_metadata(l2.join("etc/passwd")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!l2.join("etc/.wh.passwd").exists());
    assert_eq!(
        xattr(&l2.join("data"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!l2.join("data/.wh..wh..opq").exists());

    let events = events.into_inner().unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, PullEvent::LayerDone { .. }))
            .count(),
        3
    );
    assert!(matches!(events.last(), Some(PullEvent::Pulled { .. })));
    // Present now: `get` finds it by name and by short ID.
    assert_eq!(store.get(&reference).unwrap().unwrap().id, img.id);
    assert_eq!(store.get(img.id.short()).unwrap().unwrap().id, img.id);
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(path, name, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[test]
fn second_pull_of_a_present_image_costs_one_manifest_request() {
    let reg = Registry::start();
    build_and_push(
        &reg,
        "app/twice:1",
        &[ImageSpec::new(vec![(busybox_layer(), Compression::Gzip)])],
    );
    let root = state_root();
    let reference = format!("{}/app/twice:1", reg.host());
    open(root.path())
        .ensure(&reference, PullPolicy::Always, None, &no_progress)
        .unwrap();
    let manifests = eventually("first pull logged", Duration::from_secs(5), || {
        let n = reg.count_requests("/manifests/");
        (n >= 1).then_some(n)
    });
    let blobs = reg.count_requests("/blobs/");
    assert_eq!(blobs, 2, "config and one layer:\n{}", reg.log());
    // A new process-like store handle, as a second `rcompose pull` would have.
    let events = Mutex::new(Vec::new());
    open(root.path())
        .ensure(&reference, PullPolicy::Always, None, &|e| {
            events.lock().unwrap().push(e)
        })
        .unwrap();
    eventually("second pull logged", Duration::from_secs(5), || {
        (reg.count_requests("/manifests/") == manifests + 1).then_some(())
    });
    assert_eq!(
        reg.count_requests("/blobs/"),
        blobs,
        "no blob fetched again"
    );
    assert!(events
        .into_inner()
        .unwrap()
        .iter()
        .any(|e| matches!(e, PullEvent::UpToDate { .. })));
    // Missing policy: no request at all.
    open(root.path())
        .ensure(&reference, PullPolicy::Missing, None, &no_progress)
        .unwrap();
    // daily: pulled a moment ago, so no request either.
    open(root.path())
        .ensure(&reference, PullPolicy::DAILY, None, &no_progress)
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(reg.count_requests("/manifests/"), manifests + 1);
    // A zero interval is due at once: one manifest request again.
    open(root.path())
        .ensure(
            &reference,
            PullPolicy::Every(Duration::ZERO),
            None,
            &no_progress,
        )
        .unwrap();
    eventually("timed pull logged", Duration::from_secs(5), || {
        (reg.count_requests("/manifests/") == manifests + 2).then_some(())
    });
}

#[test]
fn the_store_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
    assert_send_sync::<runtime::image::Image>();
}

#[test]
fn index_with_two_platforms_picks_this_machine_or_the_requested_one() {
    let reg = Registry::start();
    let mut amd = ImageSpec::new(vec![(busybox_layer(), Compression::Gzip)]);
    amd.architecture = "amd64".into();
    let mut arm = ImageSpec::new(vec![(rich_layer(), Compression::Gzip)]);
    arm.architecture = "arm64".into();
    let built = build_and_push(&reg, "app/multi:1", &[amd, arm]);
    let root = state_root();
    let store = open(root.path());
    let reference = format!("{}/app/multi:1", reg.host());
    let host = store
        .ensure(&reference, PullPolicy::Always, None, &no_progress)
        .unwrap();
    let want = if Platform::host().architecture == "arm64" {
        1
    } else {
        0
    };
    assert_eq!(host.id.as_str(), built.images[want].2);
    let arm = store
        .pull(
            &reference,
            Some(&Platform::parse("linux/arm64").unwrap()),
            &no_progress,
        )
        .unwrap();
    assert_eq!(arm.id.as_str(), built.images[1].2);
    assert_eq!(arm.architecture, "arm64");
    let err = store
        .pull(
            &reference,
            Some(&Platform::parse("linux/s390x").unwrap()),
            &no_progress,
        )
        .unwrap_err();
    assert!(
        matches!(err, ImageError::NoMatchingPlatform { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("linux/amd64, linux/arm64"),
        "{err}"
    );
    // By digest of the index.
    let by_digest = format!("{}/app/multi@{}", reg.host(), built.top);
    let img = store.pull(&by_digest, None, &no_progress).unwrap();
    assert_eq!(img.id.as_str(), built.images[want].2);
}

#[test]
fn unknown_image_is_a_clear_error_and_leaves_the_store_as_it_was() {
    let reg = Registry::start();
    let root = state_root();
    let store = open(root.path());
    let err = store
        .ensure(
            &format!("{}/nope/nothing:1", reg.host()),
            PullPolicy::Missing,
            None,
            &no_progress,
        )
        .unwrap_err();
    assert!(matches!(err, ImageError::ManifestUnknown { .. }), "{err}");
    assert!(err.to_string().contains("nope/nothing:1"), "{err}");
    assert!(store.list().unwrap().is_empty());
    assert_store_empty(&store);
}

#[test]
fn unreachable_registry_is_a_clear_error() {
    let port = free_port();
    let root = state_root();
    let store = open(root.path());
    let err = store
        .ensure(
            &format!("127.0.0.1:{port}/x:1"),
            PullPolicy::Always,
            None,
            &no_progress,
        )
        .unwrap_err();
    assert!(matches!(err, ImageError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn never_and_build_policies_do_not_pull() {
    let root = state_root();
    let store = open(root.path());
    let err = store
        .ensure("127.0.0.1:9/x:1", PullPolicy::Never, None, &no_progress)
        .unwrap_err();
    assert!(matches!(err, ImageError::NotPresent(_)), "{err}");
    let err = store
        .ensure("127.0.0.1:9/x:1", PullPolicy::Build, None, &no_progress)
        .unwrap_err();
    assert!(matches!(err, ImageError::NeedsBuild(_)), "{err}");
}

fn assert_store_empty(store: &Store) {
    for sub in ["layers/sha256", "records/sha256", "tmp"] {
        let n = std::fs::read_dir(store.dir().join(sub)).unwrap().count();
        assert_eq!(n, 0, "{sub} should be empty");
    }
}

#[test]
fn corrupted_blob_is_rejected_naming_the_digest_and_nothing_is_kept() {
    let reg = Registry::start();
    let built = build_and_push(
        &reg,
        "app/corrupt:1",
        &[ImageSpec::new(vec![(busybox_layer(), Compression::Gzip)])],
    );
    let layer = &built.images[0].3[0];
    let data = reg.blob_data_path(layer);
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let root = state_root();
    let store = open(root.path());
    let err = store
        .ensure(
            &format!("{}/app/corrupt:1", reg.host()),
            PullPolicy::Always,
            None,
            &no_progress,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains(layer.as_str()),
        "error names the digest: {err}"
    );
    assert!(store.list().unwrap().is_empty());
    assert_store_empty(&store);
    assert!(!store.dir().join("blobs/sha256").join(&layer[7..]).exists());
}

#[test]
fn basic_auth_uses_docker_config_credentials_and_rejects_wrong_ones() {
    let reg = Registry::start_with_auth("alice", "correct-horse");
    build_and_push(
        &reg,
        "private/app:1",
        &[ImageSpec::new(vec![(busybox_layer(), Compression::Gzip)])],
    );
    let reference = format!("{}/private/app:1", reg.host());
    let root = state_root();
    let cfg = tempfile::tempdir().unwrap();
    let with = |user: &str, pass: &str| {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        std::fs::write(
            cfg.path().join("config.json"),
            format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
        )
        .unwrap();
        Store::open_with(
            root.path(),
            RegistryOptions {
                docker_config: Some(cfg.path().to_path_buf()),
                ..Default::default()
            },
        )
        .unwrap()
    };
    // No credentials at all.
    let anon = Store::open_with(
        root.path(),
        RegistryOptions {
            docker_config: Some(root.path().join("no-such-dir")),
            ..Default::default()
        },
    )
    .unwrap();
    let err = anon
        .ensure(&reference, PullPolicy::Always, None, &no_progress)
        .unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    let err = with("alice", "wrong")
        .ensure(&reference, PullPolicy::Always, None, &no_progress)
        .unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    assert!(anon.list().unwrap().is_empty());
    let img = with("alice", "correct-horse")
        .ensure(&reference, PullPolicy::Always, None, &no_progress)
        .unwrap();
    assert!(img.layers[0].join("bin/busybox").is_file());
}

#[test]
fn concurrent_pulls_of_one_image_do_the_work_once() {
    let reg = Registry::start();
    let big: Vec<u8> = (0..4_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut l = LayerBuilder::new();
    l.file("big", 0o644, &big);
    build_and_push(
        &reg,
        "app/race:1",
        &[ImageSpec::new(vec![
            (busybox_layer(), Compression::Gzip),
            (l.finish(), Compression::Gzip),
        ])],
    );
    let root = state_root();
    let reference = format!("{}/app/race:1", reg.host());
    let ids: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    open(root.path())
                        .ensure(&reference, PullPolicy::Missing, None, &no_progress)
                        .unwrap()
                        .id
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
    eventually("pulls logged", Duration::from_secs(5), || {
        (reg.count_requests("/manifests/") >= 1).then_some(())
    });
    std::thread::sleep(Duration::from_millis(200));
    // Config + two layers, each fetched once.
    assert_eq!(reg.count_requests("/blobs/"), 3, "{}", reg.log());
    let store = open(root.path());
    assert_eq!(
        std::fs::read_dir(store.dir().join("layers/sha256"))
            .unwrap()
            .count(),
        2
    );
}

/// Child half of `a_pull_killed_mid_layer_leaves_no_half_image`: when run with
/// `RCOMPOSE_TEST_KILLED_PULL=<root> <reference>` it pulls, announces the first progress
/// on stdout and then stalls inside the download until it is killed. Otherwise it does
/// nothing.
#[test]
fn killed_pull_child() {
    let Ok(spec) = std::env::var("RCOMPOSE_TEST_KILLED_PULL") else {
        return;
    };
    let (root, reference) = spec.split_once(' ').unwrap();
    let store = open(Path::new(root));
    let _ = store.ensure(reference, PullPolicy::Always, None, &|e| {
        if let PullEvent::LayerProgress { .. } = e {
            println!("MID-LAYER");
            use std::io::Write;
            std::io::stdout().flush().unwrap();
            std::thread::sleep(Duration::from_secs(60));
        }
    });
}

#[test]
fn a_pull_killed_mid_layer_leaves_no_half_image() {
    use std::io::BufRead;
    let reg = Registry::start();
    let big: Vec<u8> = (0..8_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 9) as u8)
        .collect();
    let mut l = LayerBuilder::new();
    l.file("big", 0o644, &big);
    build_and_push(
        &reg,
        "app/killed:1",
        &[ImageSpec::new(vec![(l.finish(), Compression::Gzip)])],
    );
    let root = state_root();
    let reference = format!("{}/app/killed:1", reg.host());
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "killed_pull_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "RCOMPOSE_TEST_KILLED_PULL",
            format!("{} {reference}", root.path().display()),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let mut guard = Kill(child);
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mid = lines.any(|l| l.map(|l| l.contains("MID-LAYER")).unwrap_or(false));
    assert!(mid, "child reached the middle of the layer");
    let staging = root.path().join("images/tmp");
    assert!(
        std::fs::read_dir(&staging).unwrap().count() > 0,
        "staging in use"
    );
    guard.0.kill().unwrap();
    guard.0.wait().unwrap();

    let store = open(root.path());
    assert!(store.list().unwrap().is_empty(), "no half image");
    assert!(store.get(&reference).unwrap().is_none());
    assert_eq!(
        std::fs::read_dir(&staging).unwrap().count(),
        0,
        "staging cleaned"
    );
    let img = store
        .ensure(&reference, PullPolicy::Missing, None, &no_progress)
        .unwrap();
    assert_eq!(std::fs::read(img.layers[0].join("big")).unwrap(), big);
}

#[test]
fn docker_schema2_manifest_and_manifest_list_are_pulled() {
    let reg = Registry::start();
    let mut amd = ImageSpec::new(vec![(busybox_layer(), Compression::Gzip)]);
    amd.architecture = "amd64".into();
    let mut arm = ImageSpec::new(vec![(rich_layer(), Compression::Gzip)]);
    arm.architecture = "arm64".into();
    let layout = tempfile::tempdir().unwrap();
    let built = write_layout(layout.path(), "t", &[amd, arm]);
    reg.push_with(layout.path(), "t", "app/docker:1", &["--format", "v2s2"]);
    // What the registry now serves is a Docker manifest list of Docker manifests.
    let o = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/app/docker:1", reg.host()))
        .output()
        .unwrap();
    let raw: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        raw["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    let root = state_root();
    let store = open(root.path());
    let reference = format!("{}/app/docker:1", reg.host());
    let img = store
        .pull(
            &reference,
            Some(&Platform::parse("linux/arm64").unwrap()),
            &no_progress,
        )
        .unwrap();
    assert_eq!(img.architecture, "arm64");
    // The config is carried over unchanged, so the image ID is the same.
    assert_eq!(img.id.as_str(), built.images[1].2);
    assert!(img.layers[0].join("srv/owned").is_file());
    let amd = store
        .pull(
            &reference,
            Some(&Platform::parse("linux/amd64").unwrap()),
            &no_progress,
        )
        .unwrap();
    assert!(amd.layers[0].join("bin/busybox").is_file());
}
