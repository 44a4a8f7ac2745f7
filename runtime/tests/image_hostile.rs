//! Hostile layers: entries that try to write outside the layer folder are refused or kept
//! inside it. Each test builds its layer byte by byte (tar-rs refuses to write such names),
//! unpacks it into a folder inside a sandbox folder, and checks that nothing appeared
//! outside the layer folder.

mod support;

use runtime::image::unpack::{unpack_layer, UnpackError};
use runtime::image::{ImageError, RegistryOptions, Store};
use support::*;
use tar::EntryType;

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("rcompose-hostile-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("layer")).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/victim"), b"original").unwrap();
        Sandbox { dir }
    }
    fn layer(&self) -> std::path::PathBuf {
        self.dir.path().join("layer")
    }
    fn outside(&self) -> std::path::PathBuf {
        self.dir.path().join("outside")
    }
    fn unpack(&self, tar: &[u8]) -> Result<(), UnpackError> {
        unpack_layer(tar, &self.layer()).map(|_| ())
    }
    /// The outside folder holds exactly what it held before.
    fn assert_outside_untouched(&self) {
        let entries: Vec<_> = std::fs::read_dir(self.outside())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(entries, vec!["victim"], "nothing new outside the layer");
        assert_eq!(
            std::fs::read(self.outside().join("victim")).unwrap(),
            b"original"
        );
        let top: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(top.len(), 2, "nothing new beside the layer: {top:?}");
    }
}

#[test]
fn absolute_paths_are_contained_in_the_layer() {
    let sb = Sandbox::new();
    let target = sb.outside().join("abs-created");
    let mut l = LayerBuilder::new();
    l.raw(
        target.to_str().unwrap(),
        EntryType::Regular,
        None,
        0o644,
        b"x",
    );
    sb.unpack(&l.finish()).unwrap();
    let inside = sb.layer().join(target.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read(inside).unwrap(), b"x");
    sb.assert_outside_untouched();
}

#[test]
fn dot_dot_escapes_are_refused() {
    let sb = Sandbox::new();
    let mut l = LayerBuilder::new();
    l.raw(
        "../outside/victim",
        EntryType::Regular,
        None,
        0o644,
        b"pwned",
    );
    let err = sb.unpack(&l.finish()).unwrap_err();
    assert!(matches!(err, UnpackError::Escapes(_)), "{err}");
    let mut l = LayerBuilder::new();
    l.raw(
        "a/../../outside/new",
        EntryType::Regular,
        None,
        0o644,
        b"pwned",
    );
    assert!(matches!(
        sb.unpack(&l.finish()).unwrap_err(),
        UnpackError::Escapes(_)
    ));
    sb.assert_outside_untouched();
}

#[test]
fn writing_through_a_symlink_to_the_outside_is_refused() {
    let sb = Sandbox::new();
    let mut l = LayerBuilder::new();
    l.symlink("link", sb.outside().to_str().unwrap()).raw(
        "link/victim",
        EntryType::Regular,
        None,
        0o644,
        b"pwned",
    );
    let err = sb.unpack(&l.finish()).unwrap_err();
    assert!(
        matches!(err, UnpackError::ThroughNonDirectory { .. }),
        "{err}"
    );
    sb.assert_outside_untouched();
}

#[test]
fn relative_symlink_climbing_out_is_not_followed() {
    let sb = Sandbox::new();
    let mut l = LayerBuilder::new();
    l.dir("d", 0o755).symlink("d/up", "../../outside").raw(
        "d/up/new",
        EntryType::Regular,
        None,
        0o644,
        b"pwned",
    );
    assert!(matches!(
        sb.unpack(&l.finish()).unwrap_err(),
        UnpackError::ThroughNonDirectory { .. }
    ));
    // A directory entry and a hardlink through it are refused as well.
    let mut l = LayerBuilder::new();
    l.symlink("up2", "../outside").dir("up2/sub", 0o755);
    assert!(sb.unpack(&l.finish()).is_err());
    sb.assert_outside_untouched();
}

#[test]
fn replacing_a_symlink_with_a_file_does_not_write_through_it() {
    let sb = Sandbox::new();
    let victim = sb.outside().join("victim");
    let mut l = LayerBuilder::new();
    l.symlink("f", victim.to_str().unwrap())
        .file("f", 0o644, b"pwned");
    sb.unpack(&l.finish()).unwrap();
    assert_eq!(std::fs::read(sb.layer().join("f")).unwrap(), b"pwned");
    assert!(!std::fs::symlink_metadata(sb.layer().join("f"))
        .unwrap()
        .file_type()
        .is_symlink());
    sb.assert_outside_untouched();
}

#[test]
fn hardlinks_to_files_outside_the_layer_are_refused() {
    let sb = Sandbox::new();
    let victim = sb.outside().join("victim");
    // Absolute target: taken inside the layer, where it does not exist.
    let mut l = LayerBuilder::new();
    l.hardlink("h", victim.to_str().unwrap());
    assert!(matches!(
        sb.unpack(&l.finish()).unwrap_err(),
        UnpackError::BadHardlink { .. }
    ));
    // `..` target.
    let mut l = LayerBuilder::new();
    l.raw("h2", EntryType::Link, Some("../outside/victim"), 0o644, b"");
    assert!(sb.unpack(&l.finish()).is_err());
    // Through a symlinked directory.
    let mut l = LayerBuilder::new();
    l.symlink("out", sb.outside().to_str().unwrap())
        .hardlink("h3", "out/victim");
    assert!(matches!(
        sb.unpack(&l.finish()).unwrap_err(),
        UnpackError::BadHardlink { .. }
    ));
    let n = std::fs::metadata(&victim).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(n.nlink(), 1, "no new link to the outside file");
    sb.assert_outside_untouched();
}

#[test]
fn whiteout_names_cannot_escape_either() {
    let sb = Sandbox::new();
    let mut l = LayerBuilder::new();
    l.raw(
        "../outside/.wh.victim",
        EntryType::Regular,
        None,
        0o644,
        b"",
    );
    assert!(sb.unpack(&l.finish()).is_err());
    let mut l = LayerBuilder::new();
    l.symlink("s", sb.outside().to_str().unwrap()).raw(
        "s/.wh.victim",
        EntryType::Regular,
        None,
        0o644,
        b"",
    );
    assert!(sb.unpack(&l.finish()).is_err());
    sb.assert_outside_untouched();
}

#[test]
fn a_hostile_image_import_leaves_the_store_as_it_was() {
    let sb = Sandbox::new();
    let root = state_root();
    let store = Store::open_with(root.path(), RegistryOptions::default()).unwrap();
    let mut l = LayerBuilder::new();
    l.symlink("link", sb.outside().to_str().unwrap()).raw(
        "link/victim",
        EntryType::Regular,
        None,
        0o644,
        b"pwned",
    );
    let err = store.import_rootfs(&l.finish()[..], "evil:1").unwrap_err();
    assert!(matches!(err, ImageError::Unpack { .. }), "{err}");
    assert!(store.get("evil:1").unwrap().is_none());
    for sub in ["layers/sha256", "records/sha256", "tmp", "blobs/sha256"] {
        assert_eq!(
            std::fs::read_dir(store.dir().join(sub)).unwrap().count(),
            0,
            "{sub} is empty"
        );
    }
    sb.assert_outside_untouched();
}

#[test]
fn a_directory_replaced_by_a_symlink_does_not_get_times_set_through_it() {
    let sb = Sandbox::new();
    let victim = sb.outside().join("victim");
    let before = std::fs::metadata(&victim).unwrap().modified().unwrap();
    let mut l = LayerBuilder::new();
    // `d/victim` is a directory whose mtime is applied at the end; meanwhile its parent `d`
    // became a symlink to the outside folder, where `victim` is a file.
    l.dir("d", 0o755)
        .dir("d/victim", 0o755)
        .symlink("d", sb.outside().to_str().unwrap());
    sb.unpack(&l.finish()).unwrap();
    assert!(std::fs::symlink_metadata(sb.layer().join("d"))
        .unwrap()
        .file_type()
        .is_symlink());
    let after = std::fs::metadata(&victim).unwrap().modified().unwrap();
    assert_eq!(before, after, "outside file's mtime untouched");
    sb.assert_outside_untouched();
}
