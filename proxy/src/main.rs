//! The `sluice` binary: parse the command line, then hand over to [`sluice::cli::main`].

fn main() -> std::process::ExitCode {
    sluice::cli::main()
}
