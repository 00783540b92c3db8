//! `chimera bandwidth`: how close one gate pass on the GPU comes to the device's copy bandwidth.
//!
//! A pass of a 1-qubit gate reads and writes the whole state, 2^(n+4) bytes in complex64: the same
//! traffic as a device-to-device copy of the state, whose bandwidth (measured in the same run) is
//! the floor. Reports effective GB/s for the gate on every target qubit.

use anyhow::{Context, Result};
use chimera_circuit::circuit::Gate;
use chimera_circuit::gates;
use chimera_circuit::memory::Precision;
use chimera_quantum::backend::Backend;
use chimera_quantum::backend::cuda::CudaBackend;
use clap::Args;
use std::time::Instant;

#[derive(Args)]
pub struct BandwidthArgs {
    /// State size in qubits (complex64).
    #[arg(long, default_value_t = 30)]
    qubits: usize,
    /// Timed passes per measurement.
    #[arg(long, default_value_t = 20)]
    repeat: usize,
    /// Print the table as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: BandwidthArgs) -> Result<()> {
    let gpu = CudaBackend::new().context("chimera bandwidth measures a GPU")?;
    let n = args.qubits;
    let bytes = (1usize << n) * Precision::Single.bytes_per_amplitude() as usize;
    let copy = gpu.copy_bandwidth(bytes, args.repeat)?;
    let mut state = gpu.allocate(n, Precision::Single)?;
    let mut rows = Vec::new();
    for target in 0..n {
        let h = [Gate::new(vec![target], gates::h())];
        state.apply(&h);
        state.wait();
        let start = Instant::now();
        for _ in 0..args.repeat {
            state.apply(&h);
        }
        state.wait();
        let seconds = start.elapsed().as_secs_f64() / args.repeat as f64;
        rows.push((target, seconds, 2.0 * bytes as f64 / seconds));
    }
    if args.json {
        let table: Vec<_> = rows
            .iter()
            .map(|(t, s, bw)| serde_json::json!({"target": t, "ms": s * 1e3, "gb_per_s": bw / 1e9, "of_copy": bw / copy}))
            .collect();
        let report = serde_json::json!({"device": gpu.describe(), "qubits": n, "copy_gb_per_s": copy / 1e9, "passes": table});
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "device {}: {n}-qubit complex64 state, {:.2} GB",
        gpu.describe(),
        bytes as f64 / 1e9
    );
    println!(
        "device-to-device copy: {:.1} GB/s (read + write), mean of {} copies",
        copy / 1e9,
        args.repeat
    );
    println!("| target | ms per pass | GB/s | of copy |");
    println!("| ---: | ---: | ---: | ---: |");
    for (t, s, bw) in &rows {
        println!(
            "| {t} | {:.3} | {:.1} | {:.0}% |",
            s * 1e3,
            bw / 1e9,
            100.0 * bw / copy
        );
    }
    let worst = rows.iter().map(|r| r.2).fold(f64::MAX, f64::min);
    println!(
        "worst target: {:.0}% of copy bandwidth",
        100.0 * worst / copy
    );
    Ok(())
}
