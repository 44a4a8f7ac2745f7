//! Entry point: parse arguments, initialise tracing, dispatch to a verb.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Hidden helper mode, before clap and before any thread exists: the container runtime
    // re-executes this binary (from a sealed copy) to create containers single-threaded.
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(runtime::container::HELPER_ARG))
    {
        runtime::container::helper_main();
    }
    rcompose::cli::main()
}
