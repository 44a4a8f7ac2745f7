//! The compose loader: compose files on disk → a validated, typed `Project` → its dependency
//! graph. Pure: no tokio, no Linux, no I/O except reading files.
