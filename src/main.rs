//! `chimera`: the CHIMERA engine's command line.

mod bandwidth;
mod maml;
mod sim;
mod train;

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
    /// Train a model from a training spec (the YAML of a `chimera-train` block), on the CPU unless
    /// `--device cuda`.
    Train(train::TrainArgs),
    /// Run a model stored by `chimera train` on inputs from a .npy or CSV file.
    Infer(train::InferArgs),
    /// Make an ML-DSA-65 key pair for signing MAML jobs: PREFIX.key and PREFIX.pub.
    Keygen(maml::KeygenArgs),
    /// Sign a MAML job with a secret key.
    Sign(maml::SignArgs),
    /// Check a signed MAML job as the engine would at submission; exit 0 only when it is valid.
    Verify(maml::VerifyArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => sim::run(args),
        Command::Bandwidth(args) => bandwidth::run(args),
        Command::Train(args) => train::run(args),
        Command::Infer(args) => train::infer(args),
        Command::Keygen(args) => maml::keygen(args),
        Command::Sign(args) => maml::sign(args),
        Command::Verify(args) => match maml::verify(args) {
            Ok(false) => return std::process::ExitCode::FAILURE,
            other => other.map(|_| ()),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
