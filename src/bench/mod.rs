//! `chimera bench`: the researchers' report. Runs the standard circuit set ([`circuits`]) at
//! growing qubit counts on each backend here (the CPU; the first GPU when one answers), and on qsim,
//! Qiskit Aer and cuStateVec when the given Python can run them (`benches/anchor_times.py`, timing
//! as `benches/compare.py` and `benches/custatevec_compare.py` do), and writes a report
//! directory: `report.md` (the tables), `results.json` (the raw numbers), `time.svg` and
//! `bandwidth.svg` (time per circuit and effective GB/s against qubits), the circuits themselves,
//! all labelled with the device, driver and commit.
//!
//! Every simulator does the same work: the circuit in single precision, then `--shots` samples.
//! chimera's time is its simulation (state allocation included) and sampling, parsing aside; the
//! median of `--repeat` runs after a warm-up. Effective GB/s counts each gate as one pass that
//! reads and writes the whole state (2 × 8 × 2^n bytes), whatever a simulator fuses: a figure to
//! compare simulators and widths by, against the memory's bandwidth.

mod circuits;
mod plot;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use chimera_circuit::memory::Precision;
use chimera_quantum::backend::cpu::CpuBackend;
use chimera_quantum::backend::cuda::CudaBackend;
use chimera_quantum::backend::{Backend, BackendError};
use chimera_quantum::run::{RunError, RunOptions, run};
use clap::{Args, ValueEnum};
use serde::Serialize;

use circuits::{BenchCircuit, KINDS};
use plot::{Scale, Series, line_chart};

const ANCHOR_SCRIPT: &str = include_str!("../../benches/anchor_times.py");
/// The anchor script times with the functions of these two.
const COMPARE_SCRIPT: &str = include_str!("../../benches/compare.py");
const CUSTATEVEC_SCRIPT: &str = include_str!("../../benches/custatevec_compare.py");
/// Every simulator in the report runs in this precision.
const PRECISION: Precision = Precision::Single;
/// The largest state the report goes to: 2^34 complex64 amplitudes are 128 GiB.
const MAX_QUBITS: usize = 34;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendName {
    Cpu,
    Cuda,
}

#[derive(Args)]
pub struct BenchArgs {
    /// The report's directory: report.md, results.json, time.svg, bandwidth.svg, circuits/.
    #[arg(long, value_name = "DIR", default_value = "bench-report")]
    out: PathBuf,
    /// Qubit counts, comma-separated (on a large GPU, 24,26,28,30 say more).
    #[arg(long, value_delimiter = ',', default_value = "10,14,18,22")]
    qubits: Vec<usize>,
    /// Backends, comma-separated. Default: the CPU, and the first GPU when one answers.
    #[arg(long, value_enum, value_delimiter = ',')]
    backends: Vec<BackendName>,
    /// CPU threads for chimera's CPU backend and the anchors. Default: every core.
    #[arg(long)]
    threads: Option<usize>,
    /// Timed runs of each circuit after a warm-up; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Samples drawn in each run.
    #[arg(long, default_value_t = 1024)]
    shots: usize,
    /// The Python whose qsim, Aer and cuStateVec (qsimcirq, qiskit-aer; custatevec-cu13 with
    /// CuPy and a GPU), those it can run, are timed beside chimera; `none` times chimera alone.
    #[arg(long, default_value = "python3")]
    python: String,
}

#[derive(Serialize)]
struct Row {
    circuit: &'static str,
    qubits: usize,
    gates: usize,
    simulator: String,
    seconds: f64,
    gb_per_s: f64,
}

#[derive(Serialize)]
struct Label {
    date: String,
    commit: &'static str,
    host: String,
    devices: Vec<String>,
    driver: Option<String>,
    threads: usize,
    shots: usize,
    repeat: u32,
    precision: &'static str,
}

#[derive(Serialize)]
struct Report {
    label: Label,
    rows: Vec<Row>,
    /// What did not run, and why.
    not_run: Vec<String>,
}

impl Row {
    fn new(c: &BenchCircuit, simulator: String, seconds: f64) -> Self {
        let state_bytes = PRECISION.bytes_per_amplitude() << c.qubits;
        let pass_bytes = 2.0 * state_bytes as f64;
        Row {
            circuit: c.kind,
            qubits: c.qubits,
            gates: c.gates,
            simulator,
            seconds,
            gb_per_s: c.gates as f64 * pass_bytes / seconds / 1e9,
        }
    }
}

fn cpu_model(cores: usize) -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    format!("{model}, {cores} cores")
}

/// The backends asked for, opened; those not asked for explicitly that cannot open go to `not_run`.
fn open_backends(
    args: &BenchArgs,
    threads: usize,
    not_run: &mut Vec<String>,
) -> Result<Vec<(String, Box<dyn Backend>)>> {
    let explicit = !args.backends.is_empty();
    let names = if explicit {
        args.backends.clone()
    } else {
        vec![BackendName::Cpu, BackendName::Cuda]
    };
    let mut backends: Vec<(String, Box<dyn Backend>)> = Vec::new();
    for name in names {
        let opened: Result<Box<dyn Backend>, BackendError> = match name {
            BackendName::Cpu => CpuBackend::new(Some(threads)).map(|b| Box::new(b) as _),
            BackendName::Cuda => CudaBackend::new().map(|b| Box::new(b) as _),
        };
        let label = match name {
            BackendName::Cpu => "chimera cpu",
            BackendName::Cuda => "chimera cuda",
        };
        match opened {
            Ok(backend) => backends.push((label.to_owned(), backend)),
            Err(e) if explicit => return Err(e).context(format!("cannot run {label}")),
            Err(e) => not_run.push(format!("{label}: {e}")),
        }
    }
    Ok(backends)
}

/// chimera's median time for `c` on `backend`: simulation and sampling, after a warm-up.
fn time_chimera(
    c: &BenchCircuit,
    backend: &dyn Backend,
    shots: usize,
    repeat: u32,
) -> Result<f64, RunError> {
    let circuit = chimera_circuit::qasm::parse(&c.qasm).expect("the bench's circuits parse");
    let options = RunOptions {
        shots,
        seed: 1,
        precision: PRECISION,
        observables: Vec::new(),
        keep_state: false,
    };
    let mut times = Vec::new();
    for _ in 0..=repeat {
        let t = run(&circuit, backend, &options)?.timings;
        times.push((t.simulate + t.sample).as_secs_f64());
    }
    times.remove(0);
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// qsim's, Aer's and cuStateVec's times through the anchor script, by circuit file; what could not
/// run goes to `not_run`.
fn time_anchors(
    args: &BenchArgs,
    threads: usize,
    files: &[PathBuf],
    not_run: &mut Vec<String>,
) -> Result<Vec<(String, PathBuf, f64)>> {
    let dir = args.out.join("anchors");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("anchor_times.py"), ANCHOR_SCRIPT)?;
    std::fs::write(dir.join("compare.py"), COMPARE_SCRIPT)?;
    std::fs::write(dir.join("custatevec_compare.py"), CUSTATEVEC_SCRIPT)?;
    eprintln!(
        "timing the anchors with {} (qsim, Aer, cuStateVec, those it can run)",
        args.python
    );
    let output = Command::new(&args.python)
        .arg(dir.join("anchor_times.py"))
        .args(["--threads", &threads.to_string()])
        .args(["--shots", &args.shots.to_string()])
        .args(["--repeat", &args.repeat.to_string()])
        .args(files)
        .stderr(std::process::Stdio::inherit())
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            not_run.push(format!(
                "qsim, Aer and cuStateVec: cannot run {}: {e}",
                args.python
            ));
            return Ok(Vec::new());
        }
    };
    let mut times = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let simulator = value["simulator"].as_str().unwrap_or("?").to_owned();
        let why = value["missing"].as_str().unwrap_or("no time given");
        match (value["file"].as_str(), value["seconds"].as_f64()) {
            (Some(file), Some(seconds)) => times.push((simulator, PathBuf::from(file), seconds)),
            (Some(file), None) => {
                let circuit = Path::new(file).file_stem().unwrap_or_default().display();
                not_run.push(format!("{simulator}, {circuit}: {why}"));
            }
            (None, _) => not_run.push(format!(
                "{simulator}: cannot run with {} ({why})",
                args.python
            )),
        }
    }
    if !output.status.success() {
        not_run.push(format!(
            "the anchor script failed ({}); the times it gave before are kept",
            output.status
        ));
    }
    Ok(times)
}

pub fn run_bench(args: BenchArgs) -> Result<()> {
    let mut qubits = args.qubits.clone();
    qubits.sort_unstable();
    qubits.dedup();
    if let Some(&n) = qubits.iter().find(|&&n| !(2..=MAX_QUBITS).contains(&n)) {
        bail!("--qubits {n}: each count must be 2 to {MAX_QUBITS}");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.threads.unwrap_or(cores);
    let circuit_dir = args.out.join("circuits");
    std::fs::create_dir_all(&circuit_dir)
        .with_context(|| format!("cannot create {}", circuit_dir.display()))?;
    let mut set = Vec::new();
    for kind in KINDS {
        for &n in &qubits {
            let c = circuits::circuit(kind, n);
            let path = circuit_dir.join(format!("{kind}_{n}.qasm"));
            std::fs::write(&path, &c.qasm)?;
            set.push((c, path));
        }
    }

    let mut not_run = Vec::new();
    let backends = open_backends(&args, threads, &mut not_run)?;
    let mut rows = Vec::new();
    for (name, backend) in &backends {
        for kind in KINDS {
            for (c, _) in set.iter().filter(|(c, _)| c.kind == kind) {
                match time_chimera(c, backend.as_ref(), args.shots, args.repeat) {
                    Ok(seconds) => {
                        eprintln!(
                            "{name}: {kind} {} qubits: {:.3} ms",
                            c.qubits,
                            seconds * 1e3
                        );
                        rows.push(Row::new(c, name.clone(), seconds));
                    }
                    Err(RunError::Backend(e @ BackendError::OutOfMemory { .. })) => {
                        not_run.push(format!("{name}, {kind} from {} qubits: {e}", c.qubits));
                        break;
                    }
                    Err(e) => return Err(e).context(format!("{name}: {kind} {}", c.qubits)),
                }
            }
        }
    }
    if args.python != "none" {
        let files: Vec<PathBuf> = set.iter().map(|(_, p)| p.clone()).collect();
        let by_file: HashMap<&Path, &BenchCircuit> =
            set.iter().map(|(c, p)| (p.as_path(), c)).collect();
        for (simulator, file, seconds) in time_anchors(&args, threads, &files, &mut not_run)? {
            if let Some(c) = by_file.get(file.as_path()) {
                rows.push(Row::new(c, simulator, seconds));
            }
        }
    }

    let devices = backends.iter().map(|(_, b)| b.describe()).collect();
    let report = Report {
        label: Label {
            date: jiff::Timestamp::now().to_string(),
            commit: env!("CHIMERA_COMMIT"),
            host: cpu_model(cores),
            devices,
            driver: chimera_server::gpu_metrics::driver_version(),
            threads,
            shots: args.shots,
            repeat: args.repeat,
            precision: "single (complex64)",
        },
        rows,
        not_run,
    };
    write_report(&args.out, &report)?;
    println!(
        "report: {} ({} timings; results.json, time.svg, bandwidth.svg beside it)",
        args.out.join("report.md").display(),
        report.rows.len()
    );
    Ok(())
}

/// The simulators in the order their columns and lines appear: chimera's backends, then the anchors.
fn simulators(rows: &[Row]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for row in rows {
        if !names.contains(&row.simulator.as_str()) {
            names.push(&row.simulator);
        }
    }
    names
}

fn write_report(dir: &Path, report: &Report) -> Result<()> {
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(report)? + "\n",
    )?;
    let names = simulators(&report.rows);
    let series = |value: fn(&Row) -> f64| -> Vec<Series> {
        let mut all = Vec::new();
        for (color, name) in names.iter().enumerate() {
            for (dash, kind) in KINDS.iter().enumerate() {
                let points: Vec<(f64, f64)> = (report.rows.iter())
                    .filter(|r| r.simulator == *name && r.circuit == *kind)
                    .map(|r| (r.qubits as f64, value(r)))
                    .collect();
                if !points.is_empty() {
                    all.push(Series {
                        label: format!("{kind} · {name}"),
                        points,
                        color,
                        dash,
                    });
                }
            }
        }
        all
    };
    let label = &report.label;
    let caption = format!(
        "{} · {} · commit {}",
        label.devices.join(" · "),
        label.date.get(..10).unwrap_or(&label.date),
        label.commit
    );
    std::fs::write(
        dir.join("time.svg"),
        line_chart(
            "Time per circuit",
            &caption,
            "milliseconds",
            Scale::Log,
            &series(|r| r.seconds * 1e3),
        ),
    )?;
    std::fs::write(
        dir.join("bandwidth.svg"),
        line_chart(
            "Effective bandwidth",
            &caption,
            "GB/s (each gate a pass over the state)",
            Scale::Linear,
            &series(|r| r.gb_per_s),
        ),
    )?;

    let mut md = format!(
        "# chimera bench\n\n- date: {}\n- commit: {}\n- host: {}\n- devices: {}\n- NVIDIA driver: {}\n- threads: {}, shots: {}, median of {} runs after a warm-up, {}\n\n",
        label.date,
        label.commit,
        label.host,
        label.devices.join("; "),
        label.driver.as_deref().unwrap_or("none found"),
        label.threads,
        label.shots,
        label.repeat,
        label.precision
    );
    md += "Milliseconds per circuit (simulation and sampling), and effective GB/s (each gate counted as one pass that reads and writes the whole state).\n\n";
    md += &format!("| circuit | qubits | gates | {} |\n", names.join(" | "));
    md += &format!("| --- | ---: | ---: |{}\n", " ---: |".repeat(names.len()));
    let mut keys: Vec<(&str, usize, usize)> = (report.rows.iter())
        .map(|r| (r.circuit, r.qubits, r.gates))
        .collect();
    keys.sort_by_key(|&(kind, n, _)| (KINDS.iter().position(|k| *k == kind), n));
    keys.dedup();
    for (kind, n, gates) in keys {
        let cells: Vec<String> = (names.iter())
            .map(|name| {
                report
                    .rows
                    .iter()
                    .find(|r| r.circuit == kind && r.qubits == n && r.simulator == *name)
                    .map_or("–".into(), |r| {
                        format!("{:.3} ms ({:.1} GB/s)", r.seconds * 1e3, r.gb_per_s)
                    })
            })
            .collect();
        md += &format!("| {kind} | {n} | {gates} | {} |\n", cells.join(" | "));
    }
    if !report.not_run.is_empty() {
        md += "\nNot run:\n\n";
        for why in &report.not_run {
            md += &format!("- {why}\n");
        }
    }
    md += "\n![time per circuit](time.svg)\n\n![effective bandwidth](bandwidth.svg)\n\nThe circuits: `circuits/`. The raw numbers: `results.json`.\n";
    std::fs::write(dir.join("report.md"), md)?;
    Ok(())
}
