//! The store without a registry: `import_rootfs` (as `docker import`), names and IDs,
//! removal and pruning with shared layers, save/load round trips (read by skopeo too),
//! recovery from a killed pull, and a full disk.

mod support;

use std::path::Path;
use std::process::Command;

use runtime::image::{ImageConfig, ImageError, RegistryOptions, Store};
use support::*;

fn open(root: &Path) -> Store {
    Store::open_with(root, RegistryOptions::default()).unwrap()
}

fn count(store: &Store, sub: &str) -> usize {
    std::fs::read_dir(store.dir().join(sub)).unwrap().count()
}

#[test]
fn import_rootfs_makes_a_named_image_with_its_config() {
    let root = state_root();
    let store = open(root.path());
    let tar = busybox_layer();
    let cfg = ImageConfig {
        cmd: Some(vec!["/bin/sh".into()]),
        env: vec!["PATH=/bin".into()],
        ..Default::default()
    };
    let img = store
        .import_rootfs_with_config(&tar[..], "demo/busybox", &cfg)
        .unwrap();
    assert_eq!(img.reference.to_string(), "docker.io/demo/busybox:latest");
    assert_eq!(img.config, cfg);
    assert_eq!(img.layers.len(), 1);
    assert_eq!(img.diff_ids[0].as_str(), sha256(&tar));
    assert!(img.layers[0].join("bin/busybox").is_file());
    assert_eq!(
        store.get("demo/busybox:latest").unwrap().unwrap().id,
        img.id
    );
    assert_eq!(store.get(img.id.as_str()).unwrap().unwrap().id, img.id);
    assert!(store.get("demo/other").unwrap().is_none());
    // gzip input, same content: the unpacked layer is shared.
    let gz = compress(&tar, Compression::Gzip);
    let img2 = store.import_rootfs(&gz[..], "localhost/bb:gz").unwrap();
    assert_eq!(img2.diff_ids, img.diff_ids);
    assert_eq!(count(&store, "layers/sha256"), 1);
    let names: Vec<String> = store
        .list()
        .unwrap()
        .iter()
        .map(|i| i.reference.familiar())
        .collect();
    assert_eq!(names, vec!["demo/busybox:latest", "localhost/bb:gz"]);
}

#[test]
fn remove_keeps_shared_layers_until_the_last_user_goes() {
    let root = state_root();
    let store = open(root.path());
    let tar = busybox_layer();
    let a = store.import_rootfs(&tar[..], "a:1").unwrap();
    store.import_rootfs(&tar[..], "b:1").unwrap();
    store.tag("a:1", "a:2").unwrap();
    assert_eq!(store.remove("a:1").unwrap(), vec!["docker.io/library/a:1"]);
    assert!(store.get("a:1").unwrap().is_none());
    assert!(store.get("a:2").unwrap().is_some());
    assert!(a.layers[0].is_dir());
    // Removing by ID removes every name of it.
    assert_eq!(
        store.remove(a.id.as_str()).unwrap(),
        vec!["docker.io/library/a:2"]
    );
    assert!(a.layers[0].is_dir(), "b:1 still uses the layer");
    store.remove("b:1").unwrap();
    assert!(!a.layers[0].exists());
    assert_eq!(count(&store, "layers/sha256"), 0);
    assert_eq!(count(&store, "blobs/sha256"), 0);
    assert_eq!(count(&store, "records/sha256"), 0);
    let err = store.remove("b:1").unwrap_err();
    assert!(matches!(err, ImageError::NoSuchImage(_)), "{err}");
}

#[test]
fn save_then_load_round_trips_and_skopeo_reads_the_archive() {
    let root = state_root();
    let store = open(root.path());
    let cfg = ImageConfig {
        entrypoint: Some(vec!["/bin/busybox".into()]),
        ..Default::default()
    };
    let img = store
        .import_rootfs_with_config(&busybox_layer()[..], "saved/app:1", &cfg)
        .unwrap();
    let out = root.path().join("saved.tar");
    store
        .save(&["saved/app:1"], std::fs::File::create(&out).unwrap())
        .unwrap();
    for transport in ["docker-archive", "oci-archive"] {
        let o = Command::new("skopeo")
            .args(["inspect", "--raw", "--config"])
            .arg(format!("{transport}:{}", out.display()))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "skopeo {transport}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            sha256(&o.stdout),
            img.id.as_str(),
            "{transport} sees the same config"
        );
    }
    let other = state_root();
    let store2 = open(other.path());
    let loaded = store2.load_path(&out).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id, img.id);
    assert_eq!(loaded[0].reference.familiar(), "saved/app:1");
    assert_eq!(loaded[0].config, cfg);
    assert!(loaded[0].layers[0].join("bin/busybox").is_file());
}

#[test]
fn loads_a_docker_save_archive_and_an_oci_layout_folder() {
    // Legacy `docker save` layout: <id>/layer.tar + config + manifest.json.
    let dir = tempfile::tempdir().unwrap();
    let tar = busybox_layer();
    let cfg = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]},
    }))
    .unwrap();
    let cfg_name = format!("{}.json", &sha256(&cfg)[7..]);
    std::fs::create_dir(dir.path().join("abc")).unwrap();
    std::fs::write(dir.path().join("abc/layer.tar"), &tar).unwrap();
    std::fs::write(dir.path().join(&cfg_name), &cfg).unwrap();
    std::fs::write(
        dir.path().join("manifest.json"),
        serde_json::to_vec(&serde_json::json!([
            {"Config": cfg_name, "RepoTags": ["legacy:1"], "Layers": ["abc/layer.tar"]}
        ]))
        .unwrap(),
    )
    .unwrap();
    let archive = dir.path().join("legacy.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .arg("-cf")
        .arg(&archive)
        .args(["manifest.json", &cfg_name, "abc"])
        .status()
        .unwrap();
    assert!(st.success());
    let root = state_root();
    let store = open(root.path());
    let loaded = store.load(std::fs::File::open(&archive).unwrap()).unwrap();
    assert_eq!(loaded[0].reference.familiar(), "legacy:1");
    assert_eq!(loaded[0].id.as_str(), sha256(&cfg));
    assert_eq!(loaded[0].config.cmd, Some(vec!["sh".to_string()]));

    // An OCI layout folder with a zstd layer, named by its annotation.
    let layout = tempfile::tempdir().unwrap();
    let built = write_layout(
        layout.path(),
        "docker.io/library/ocilayout:2",
        &[ImageSpec::new(vec![(tar.clone(), Compression::Zstd)])],
    );
    let loaded = store.load_path(layout.path()).unwrap();
    assert_eq!(loaded[0].reference.familiar(), "ocilayout:2");
    assert_eq!(loaded[0].id.as_str(), built.images[0].2);
}

#[test]
fn a_corrupt_archive_is_refused_and_leaves_the_store_as_it_was() {
    let layout = tempfile::tempdir().unwrap();
    let built = write_layout(
        layout.path(),
        "bad:1",
        &[ImageSpec::new(vec![(busybox_layer(), Compression::Gzip)])],
    );
    let blob = layout
        .path()
        .join("blobs/sha256")
        .join(&built.images[0].3[0][7..]);
    let mut b = std::fs::read(&blob).unwrap();
    let n = b.len();
    b.truncate(n - 100);
    std::fs::write(&blob, b).unwrap();
    let root = state_root();
    let store = open(root.path());
    let err = store.load_path(layout.path()).unwrap_err();
    assert!(
        err.to_string().contains(&built.images[0].3[0]),
        "names the digest: {err}"
    );
    assert!(store.list().unwrap().is_empty());
    for sub in ["layers/sha256", "records/sha256", "tmp"] {
        assert_eq!(count(&store, sub), 0, "{sub}");
    }
    // Not an archive at all.
    let junk = root.path().join("junk.tar");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    let err = store.load_path(&junk).unwrap_err();
    assert!(matches!(err, ImageError::Archive { .. }), "{err}");
}

#[test]
fn leftovers_of_a_killed_pull_are_cleaned_and_do_not_count_as_images() {
    let root = state_root();
    let store = open(root.path());
    let img = store.import_rootfs(&busybox_layer()[..], "keep:1").unwrap();
    // What a pull killed mid-way leaves: staging of a dead pid, an unpacked layer without
    // a record, a record whose layer is missing.
    let stale = store.dir().join("tmp/999999999-1-0-layer");
    std::fs::create_dir_all(stale.join("half")).unwrap();
    let orphan = store.dir().join("layers/sha256").join("ab".repeat(32));
    std::fs::create_dir_all(&orphan).unwrap();
    drop(store);
    let store = open(root.path());
    assert!(!stale.exists(), "stale staging removed on open");
    assert_eq!(store.list().unwrap().len(), 1);
    let report = store.prune().unwrap();
    assert_eq!(report.layers, 1);
    assert!(!orphan.exists());
    assert!(img.layers[0].is_dir());
    // A name whose layer vanished is not served as an image.
    std::fs::rename(&img.layers[0], root.path().join("moved")).unwrap();
    assert!(store.get("keep:1").unwrap().is_none());
}

struct Tmpfs(std::path::PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_a_clear_error_and_leaves_the_store_as_it_was() {
    let root = state_root();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(root.path())
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs (needs root)");
    let _guard = Tmpfs(root.path().to_path_buf());
    let store = open(root.path());
    let big: Vec<u8> = (0..6_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    let mut l = LayerBuilder::new();
    l.file("big", 0o644, &big);
    let err = store.import_rootfs(&l.finish()[..], "big:1").unwrap_err();
    assert!(err.to_string().contains("no space left"), "{err}");
    assert!(store.list().unwrap().is_empty());
    for sub in ["layers/sha256", "records/sha256", "tmp", "blobs/sha256"] {
        assert_eq!(count(&store, sub), 0, "{sub}");
    }
}

#[test]
fn the_host_busybox_becomes_a_runnable_image() {
    let root = state_root();
    let store = open(root.path());
    let tar =
        runtime::image::rootfs::busybox_rootfs_tar(Path::new(runtime::image::rootfs::HOST_BUSYBOX))
            .unwrap();
    let img = store
        .import_rootfs_with_config(
            &tar[..],
            "busybox:offline",
            &ImageConfig {
                cmd: Some(vec!["sh".into()]),
                ..Default::default()
            },
        )
        .unwrap();
    let l = &img.layers[0];
    assert_eq!(
        std::fs::read_link(l.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    // The layer's busybox runs: it is the host's static binary.
    let out = Command::new(l.join("bin/busybox"))
        .arg("true")
        .status()
        .unwrap();
    assert!(out.success());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(l.join("tmp"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );
}
