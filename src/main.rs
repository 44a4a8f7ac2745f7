//! Entry point: parse arguments, initialise tracing, dispatch to a verb.

use std::process::ExitCode;

fn main() -> ExitCode {
    rcompose::cli::main()
}
