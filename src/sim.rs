//! `chimera sim`: one circuit, from a file or the bundled example, on the chosen backend.

use anyhow::{Context, Result, bail};
use chimera_circuit::memory::Precision;
use chimera_circuit::pauli::PauliSum;
use chimera_circuit::qasm;
use chimera_quantum::backend::cpu::CpuBackend;
use chimera_quantum::backend::cuda::CudaBackend;
use chimera_quantum::backend::{Amplitudes, Backend};
use chimera_quantum::run::{RunOptions, RunOutput, ShotMode, run as run_circuit};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::Instant;

const EXAMPLE_NAME: &str = "examples/ghz.qasm (bundled)";
const EXAMPLE: &str = include_str!("../examples/ghz.qasm");

#[derive(Args)]
pub struct SimArgs {
    /// OpenQASM 2.0 file; '-' reads standard input; none runs the bundled GHZ example.
    file: Option<PathBuf>,
    /// Number of shots to sample.
    #[arg(long, default_value_t = 1024)]
    shots: usize,
    /// Seed of the sampler: the same seed gives the same counts. Random when not given.
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, value_enum, default_value_t = PrecisionArg::Single)]
    precision: PrecisionArg,
    /// Where to simulate: auto picks a usable GPU, else the CPU (and says why).
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// CPU worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// A Pauli sum whose expectation value to report, such as "Z0 Z1 + 0.5*X2". Repeatable.
    #[arg(long = "observable")]
    observables: Vec<String>,
    /// Write the final statevector as NumPy .npy (complex64 or complex128, as the precision).
    #[arg(long, value_name = "OUT.npy")]
    statevector: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum PrecisionArg {
    /// complex64
    Single,
    /// complex128
    Double,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub(crate) enum BackendArg {
    Auto,
    Cpu,
    Cuda,
}

pub fn run(args: SimArgs) -> Result<()> {
    let (name, source) = match &args.file {
        None => (EXAMPLE_NAME.to_string(), EXAMPLE.to_string()),
        Some(p) if p.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .context("cannot read standard input")?;
            ("<stdin>".to_string(), s)
        }
        Some(p) => (
            p.display().to_string(),
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        ),
    };
    let t = Instant::now();
    let circuit = qasm::parse(&source)
        .with_context(|| format!("{name} is not a circuit this simulator reads"))?;
    let parse_time = t.elapsed();
    let observables = args
        .observables
        .iter()
        .map(|o| PauliSum::parse(o))
        .collect::<Result<Vec<_>, _>>()?;
    let (backend, backend_note) = backend(args.backend, args.threads)?;
    let precision = match args.precision {
        PrecisionArg::Single => Precision::Single,
        PrecisionArg::Double => Precision::Double,
    };
    let seed = args.seed.unwrap_or_else(random_seed);
    let options = RunOptions {
        shots: args.shots,
        seed,
        precision,
        observables,
        keep_state: args.statevector.is_some(),
    };
    let out = run_circuit(&circuit, backend.as_ref(), &options)
        .with_context(|| format!("simulating {name}"))?;
    if let (Some(path), Some(state)) = (&args.statevector, &out.state) {
        write_npy(path, state)
            .with_context(|| format!("cannot write the statevector to {}", path.display()))?;
    }
    let report = Report {
        name: &name,
        num_qubits: circuit.num_qubits,
        gates: circuit.gate_count(),
        backend: backend.describe(),
        backend_note,
        precision,
        seed,
        shots: args.shots,
        parse_ms: parse_time.as_secs_f64() * 1e3,
        out: &out,
        observables: &args.observables,
        statevector: args.statevector.as_deref(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        report.print();
    }
    Ok(())
}

/// The backend to run on, and for `auto`, why the GPU was passed over when it was.
pub(crate) fn backend(
    choice: BackendArg,
    threads: Option<usize>,
) -> Result<(Box<dyn Backend>, Option<String>)> {
    if threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    let cpu = || -> Result<Box<dyn Backend>> { Ok(Box::new(CpuBackend::new(threads)?)) };
    match choice {
        BackendArg::Cpu => Ok((cpu()?, None)),
        BackendArg::Cuda => {
            let gpu = CudaBackend::new().context(
                "--backend cuda: no usable GPU; --backend cpu (or auto) runs on the CPU",
            )?;
            Ok((Box::new(gpu), None))
        }
        BackendArg::Auto => match CudaBackend::new() {
            Ok(gpu) => Ok((Box::new(gpu), None)),
            Err(why) => Ok((cpu()?, Some(format!("auto chose the CPU: {why}")))),
        },
    }
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (std::process::id() as u64).rotate_left(32)
}

fn write_npy(path: &Path, state: &Amplitudes) -> std::io::Result<()> {
    match state {
        Amplitudes::Single(v) => npyz::to_file_1d(path, v.iter().copied()),
        Amplitudes::Double(v) => npyz::to_file_1d(path, v.iter().copied()),
    }
}

struct Report<'a> {
    name: &'a str,
    num_qubits: usize,
    gates: usize,
    backend: String,
    backend_note: Option<String>,
    precision: Precision,
    seed: u64,
    shots: usize,
    parse_ms: f64,
    out: &'a RunOutput,
    observables: &'a [String],
    statevector: Option<&'a Path>,
}

impl Report<'_> {
    fn mode(&self) -> &'static str {
        match self.out.mode {
            ShotMode::Sampled => "sampled from the final state",
            ShotMode::Trajectories => {
                "one trajectory per shot (mid-circuit measurement, reset or if)"
            }
        }
    }

    fn json(&self) -> serde_json::Value {
        let t = &self.out.timings;
        serde_json::json!({
            "circuit": self.name,
            "num_qubits": self.num_qubits,
            "gates": self.gates,
            "backend": self.backend,
            "backend_note": self.backend_note,
            "precision": self.precision.name(),
            "shots": self.shots,
            "seed": self.seed,
            "shot_mode": match self.out.mode { ShotMode::Sampled => "sampled", ShotMode::Trajectories => "trajectories" },
            "measured": if self.out.measured_all_qubits { "all qubits (the circuit has no measure)" } else { "classical registers" },
            "counts": self.out.counts,
            "expectation_values": self.observables.iter().zip(&self.out.expectations)
                .map(|(o, v)| serde_json::json!({"observable": o, "value": v})).collect::<Vec<_>>(),
            "statevector": self.statevector.map(|p| p.display().to_string()),
            "timings_ms": {
                "parse": self.parse_ms,
                "simulate": t.simulate.as_secs_f64() * 1e3,
                "allocate": t.allocate.as_secs_f64() * 1e3,
                "sample": t.sample.as_secs_f64() * 1e3,
                "expectation": t.expectation.as_secs_f64() * 1e3,
            },
        })
    }

    fn print(&self) {
        let t = &self.out.timings;
        println!(
            "circuit   {} ({} qubits, {} gates)",
            self.name, self.num_qubits, self.gates
        );
        println!(
            "backend   {}, {} precision",
            self.backend,
            self.precision.name()
        );
        if let Some(note) = &self.backend_note {
            println!("          ({note})");
        }
        if self.shots > 0 {
            let what = if self.out.measured_all_qubits {
                "all qubits, q[n-1]..q[0]"
            } else {
                "classical registers"
            };
            println!(
                "shots     {} ({}), seed {}; counts of {what}:",
                self.shots,
                self.mode(),
                self.seed
            );
            let mut counts: Vec<_> = self.out.counts.iter().collect();
            counts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            const SHOWN: usize = 16;
            for (key, n) in counts.iter().take(SHOWN) {
                println!("  {key}  {n}");
            }
            if counts.len() > SHOWN {
                println!(
                    "  ... and {} more outcomes (--json lists all)",
                    counts.len() - SHOWN
                );
            }
        }
        for (o, v) in self.observables.iter().zip(&self.out.expectations) {
            println!("<{o}> = {v:.9}");
        }
        if let Some(p) = self.statevector {
            println!("statevector written to {}", p.display());
        }
        println!(
            "time      parse {:.2} ms, simulate {:.2} ms (of which allocation {:.2} ms), sample {:.2} ms, expectation {:.2} ms",
            self.parse_ms,
            t.simulate.as_secs_f64() * 1e3,
            t.allocate.as_secs_f64() * 1e3,
            t.sample.as_secs_f64() * 1e3,
            t.expectation.as_secs_f64() * 1e3
        );
    }
}
