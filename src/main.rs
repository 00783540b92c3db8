//! `chimera`: the CHIMERA engine's command line.

mod bandwidth;
mod sim;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "chimera",
    version,
    about = "CHIMERA: a GPU-accelerated quantum/AI execution engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate an OpenQASM 2.0 circuit (a bundled 5-qubit GHZ circuit when no file is given).
    Sim(sim::SimArgs),
    /// Measure one gate pass on the GPU against the device's copy bandwidth, for every target qubit.
    Bandwidth(bandwidth::BandwidthArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => sim::run(args),
        Command::Bandwidth(args) => bandwidth::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
