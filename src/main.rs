//! `chimera`: the CHIMERA engine's command line.

mod audit;
mod bandwidth;
mod bench;
mod client;
mod demo;
mod head;
mod journal;
mod maml;
mod report;
mod serve;
mod sim;
mod train;
mod unseal;

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
    /// Start an engine in a temporary directory, submit the bundled example jobs to it, show their
    /// progress, results and the heads, and stop: the whole engine in one command.
    Demo(demo::DemoArgs),
    /// Run the engine: the gRPC front door and its four supervised heads.
    Serve(serve::ServeArgs),
    /// Submit signed MAML jobs to a running engine.
    Submit(client::SubmitArgs),
    /// Follow a job to its end.
    Watch(client::WatchArgs),
    /// Cancel a job: a queued one at once, a running one stopped on its head within a second.
    Cancel(client::CancelArgs),
    /// A finished job's receipt as a MAML document signed by the engine: the job with History
    /// lines of what ran (check it with `chimera verify FILE --pub DATA_DIR/engine.pub`).
    Receipt(client::ReceiptArgs),
    /// The engine's heads: role, status, process, backend, restarts.
    Heads(client::HeadsArgs),
    /// Whether the engine serves jobs (the standard gRPC health check): exit 0 only if so.
    Health(client::HealthArgs),
    /// The client keys an engine trusts.
    #[command(subcommand)]
    Trust(client::TrustCommand),
    /// The engine's audit log: submissions, refusals, head deaths and rebuilds, key rotations,
    /// trusted and revoked keys, hash-chained and signed.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The engine's job journal: check it, or repair a damaged one (with the engine stopped).
    #[command(subcommand)]
    Journal(journal::JournalCommand),
    /// Operate a running engine: rotate the heads' keys.
    #[command(subcommand)]
    Admin(client::AdminCommand),
    /// The operator's unseal key, which will wrap every key the engine keeps at rest (issue 36:
    /// `chimera serve` does not use it yet): make one.
    #[command(subcommand)]
    UnsealKey(unseal::UnsealKeyCommand),
    /// One worker head; started by `chimera serve`, not by hand.
    #[command(hide = true)]
    Head(head::HeadArgs),
    /// Simulate an OpenQASM 2.0 circuit (a bundled 5-qubit GHZ circuit when no file is given).
    Sim(sim::SimArgs),
    /// Measure one gate pass on the GPU against the device's copy bandwidth, for every target qubit.
    Bandwidth(bandwidth::BandwidthArgs),
    /// The researchers' report: the standard circuits at growing qubit counts on each backend
    /// here (and on qsim, Qiskit Aer and, with a GPU, cuStateVec when installed), as a Markdown
    /// table, raw JSON and SVG plots in a directory.
    Bench(bench::BenchArgs),
    /// Train a model from a training spec (the YAML of a `chimera-train` block), on the CPU unless
    /// `--device cuda`.
    Train(train::TrainArgs),
    /// Run a model stored by `chimera train` on inputs from a .npy or CSV file, or a sentence
    /// encoder (MiniLM-L6) on a text file of sentences.
    Infer(train::InferArgs),
    /// Make an ML-DSA-65 key pair for signing MAML jobs: PREFIX.key and PREFIX.pub.
    Keygen(maml::KeygenArgs),
    /// Sign a MAML job with a secret key.
    Sign(maml::SignArgs),
    /// Check a signed MAML job as the engine would at submission; exit 0 only when it is valid.
    Verify(maml::VerifyArgs),
}

impl Command {
    /// Whether it prints an answer and ends, as a command in a pipeline might; not the engine,
    /// its heads, the demo that runs them, nor the bench that feeds other simulators.
    fn prints_and_ends(&self) -> bool {
        !matches!(
            self,
            Command::Serve(_) | Command::Head(_) | Command::Demo(_) | Command::Bench(_)
        )
    }
}

/// Lets `chimera … | head` end quietly once `head` has read enough, as Unix tools do, rather
/// than panic on the closed pipe. Rust ignores SIGPIPE, which the engine and its heads rely on:
/// for them a peer gone is an error to handle, not a reason to die.
fn end_quietly_on_a_closed_pipe() {
    // SAFETY: restores the default disposition of one signal, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// redb panics on some damaged pages; the journal turns each such panic into an error that says
/// which file is damaged, so the default report of the panic (a backtrace's worth, in the
/// engine's log) is left out.
fn quiet_about_journal_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info
            .location()
            .is_some_and(|at| at.file().contains("/redb-"))
        {
            default(info);
        }
    }));
}

/// A command that answers whether everything it checked was good: exit non-zero when not, having
/// said why itself.
fn succeeded(outcome: anyhow::Result<bool>) -> anyhow::Result<()> {
    match outcome? {
        true => Ok(()),
        false => std::process::exit(1),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    quiet_about_journal_panics();
    if cli.command.prints_and_ends() {
        end_quietly_on_a_closed_pipe();
    }
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Submit(args) => succeeded(client::submit(args)),
        Command::Watch(args) => succeeded(client::watch(args)),
        Command::Cancel(args) => client::cancel(args),
        Command::Receipt(args) => client::receipt(args),
        Command::Heads(args) => client::heads(args),
        Command::Health(args) => succeeded(client::health(args)),
        Command::Trust(command) => client::trust(command),
        Command::Audit(command) => succeeded(audit::run(command)),
        Command::Journal(command) => succeeded(journal::run(command)),
        Command::Admin(command) => client::admin(command),
        Command::UnsealKey(command) => unseal::run(command),
        Command::Head(args) => head::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Bandwidth(args) => bandwidth::run(args),
        Command::Bench(args) => bench::run_bench(args),
        Command::Train(args) => train::run(args),
        Command::Infer(args) => train::infer(args),
        Command::Keygen(args) => maml::keygen(args),
        Command::Sign(args) => maml::sign(args),
        Command::Verify(args) => succeeded(maml::verify(args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", report::error_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
