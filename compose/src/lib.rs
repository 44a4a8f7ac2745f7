//! The compose loader: compose files on disk → a validated, typed `Project` → its dependency
//! graph. Pure: no tokio, no Linux, no I/O except reading files.
//!
//! Phases, in order (one module each): [`yaml`] (text → tree with positions; anchors, merge
//! keys, tags), [`interpolate`] (`${VAR}`), [`validate`] (the Compose Specification schema),
//! [`normalize`] (short syntax → long), include / extends / [`merge`] (in [`load`]), profiles,
//! [`finish`] (defaults, names, consistency), [`de`] (typing into [`model`]), [`graph`].
//!
//! ```no_run
//! let opts = compose::LoadOptions::from_process();
//! let project = compose::load(&opts)?;
//! for wave in project.graph()?.start_waves() {
//!     println!("{wave:?}");
//! }
//! # Ok::<(), compose::Error>(())
//! ```

pub mod de;
pub mod dotenv;
pub mod error;
pub mod finish;
pub mod graph;
pub mod interpolate;
pub mod load;
pub mod merge;
pub mod model;
pub mod normalize;
pub mod units;
pub mod validate;
pub mod yaml;

pub use error::Error;
pub use graph::Graph;
pub use load::{load, LoadOptions};
pub use model::*;
pub use units::{Bytes, Duration, FileMode};
