//! `gradus`: list components, replay optimizer trajectories (and, as they land, run pipelines).

fn main() -> std::process::ExitCode {
    gradus_runner::cli::main()
}
