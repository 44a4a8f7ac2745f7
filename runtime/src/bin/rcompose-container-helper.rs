//! The container helper as its own small binary, for the runtime crate's tests and benchmark
//! (`rcompose` itself dispatches the same entry point from `src/main.rs`).

fn main() {
    if std::env::args().nth(1).as_deref() == Some(runtime::container::HELPER_ARG) {
        runtime::container::helper_main();
    }
    eprintln!("rcompose-container-helper: internal helper of rcompose, not for direct use");
    std::process::exit(2);
}
