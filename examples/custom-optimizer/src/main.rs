//! `gradus-signum`: the `gradus` command line with the Signum plugin linked in.

// The one line a plugin user adds: without it the linker drops the plugin's registration.
use custom_optimizer as _;

fn main() -> std::process::ExitCode {
    gradus_runner::cli::main()
}
