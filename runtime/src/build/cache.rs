//! The build cache: `<store>/build-cache/<key>.json` maps a step's key to the layer it made
//! (or, for the final key, the image config). Keys chain: sha256(parent key, step text). An
//! entry whose layer the store no longer has (pruned) counts as a miss.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::image::store::LayerRecord;
use crate::image::{Digest, Store};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Entry {
    Layer(LayerRecord),
    Config(Digest),
}

/// The next key of a chain.
pub(crate) fn chain(parent: &str, step: &str) -> String {
    let mut h = Sha256::new();
    h.update(parent.as_bytes());
    h.update([0]);
    h.update(step.as_bytes());
    hex::encode(h.finalize())
}

fn path(store: &Store, key: &str) -> PathBuf {
    store.dir().join("build-cache").join(format!("{key}.json"))
}

/// The cached result of a step, when the store still has what it names.
pub(crate) fn get(store: &Store, key: &str) -> Option<Entry> {
    let bytes = fs::read(path(store, key)).ok()?;
    let e: Entry = serde_json::from_slice(&bytes).ok()?;
    let present = match &e {
        Entry::Layer(l) => store.has_layer(&l.diff_id) && store.has_blob(&l.blob),
        Entry::Config(d) => store.has_blob(d),
    };
    present.then_some(e)
}

pub(crate) fn put(store: &Store, key: &str, entry: &Entry) {
    let dir = store.dir().join("build-cache");
    if let Err(e) = fs::create_dir_all(&dir) {
        tracing::warn!(path = %dir.display(), %e, "build cache");
        return;
    }
    let bytes = serde_json::to_vec(entry).expect("cache entry serializes");
    // Written and renamed but not synced: an entry lost in a crash only costs a rebuild.
    let tmp = store.tmp_path("cache");
    if let Err(e) = fs::write(&tmp, &bytes).and_then(|_| fs::rename(&tmp, path(store, key))) {
        let _ = fs::remove_file(&tmp);
        tracing::warn!(%key, %e, "write build cache entry");
    }
}
