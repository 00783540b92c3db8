//! Shots, seeds, counts keys, and circuits with mid-circuit measurement, reset and `if`.

use chimera_circuit::memory::Precision;
use chimera_circuit::pauli::PauliSum;
use chimera_circuit::qasm;
use chimera_quantum::backend::cpu::CpuBackend;
use chimera_quantum::run::{RunOptions, RunOutput, ShotMode, run};

const H: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\n";

fn sim(src: &str, shots: usize, seed: u64) -> RunOutput {
    sim_observing(src, shots, seed, &[])
}

fn sim_observing(src: &str, shots: usize, seed: u64, observables: &[&str]) -> RunOutput {
    let circuit = qasm::parse(&format!("{H}{src}")).unwrap();
    let options = RunOptions {
        shots,
        seed,
        precision: Precision::Double,
        observables: observables
            .iter()
            .map(|o| PauliSum::parse(o).unwrap())
            .collect(),
        keep_state: false,
    };
    run(&circuit, &CpuBackend::new(Some(2)).unwrap(), &options).unwrap()
}

fn count(out: &RunOutput, key: &str) -> u64 {
    out.counts.get(key).copied().unwrap_or(0)
}

#[test]
fn the_same_seed_gives_the_same_counts_and_another_seed_other_counts() {
    let src = "qreg q[10];\ncreg c[10];\nh q;\nmeasure q -> c;";
    let a = sim(src, 2000, 7);
    assert_eq!(a.counts, sim(src, 2000, 7).counts);
    assert_ne!(a.counts, sim(src, 2000, 8).counts);
    assert_eq!(a.counts.values().sum::<u64>(), 2000);
    assert_eq!(a.mode, ShotMode::Sampled);
}

#[test]
fn sampled_frequencies_follow_the_born_rule() {
    // P(1) = sin^2(theta/2) = 0.3 for theta = 2 asin(sqrt(0.3)).
    let theta = 2.0 * 0.3f64.sqrt().asin();
    let shots = 40_000;
    let out = sim(
        &format!("qreg q[1];\ncreg c[1];\nry({theta}) q[0];\nmeasure q -> c;"),
        shots,
        3,
    );
    let ones = count(&out, "1") as f64;
    let sigma = (shots as f64 * 0.3 * 0.7).sqrt();
    assert!(
        (ones - 0.3 * shots as f64).abs() < 5.0 * sigma,
        "{ones} ones in {shots}"
    );
}

#[test]
fn counts_keys_read_registers_last_declared_first_each_most_significant_bit_first() {
    let out = sim(
        "qreg q[3];\ncreg a[2];\ncreg b[1];\nx q[0];\nx q[2];\nmeasure q[0] -> a[1];\nmeasure q[2] -> b[0];",
        10,
        1,
    );
    assert_eq!(out.counts.len(), 1);
    assert_eq!(count(&out, "1 10"), 10);
}

#[test]
fn a_circuit_without_measure_is_sampled_on_every_qubit() {
    let out = sim("qreg q[3];\nx q[1];", 5, 1);
    assert!(out.measured_all_qubits);
    assert_eq!(count(&out, "010"), 5);
}

#[test]
fn zero_probability_outcomes_never_appear() {
    let out = sim(
        "qreg q[4];\ncreg c[4];\nh q[0];\ncx q[0], q[3];\nmeasure q -> c;",
        5000,
        11,
    );
    assert_eq!(
        out.counts.keys().cloned().collect::<Vec<_>>(),
        vec!["0000", "1001"]
    );
}

#[test]
fn reset_returns_a_qubit_to_zero() {
    let out = sim(
        "qreg q[1];\ncreg c[1];\nh q[0];\nreset q[0];\nmeasure q[0] -> c[0];",
        500,
        5,
    );
    assert_eq!(out.mode, ShotMode::Trajectories);
    assert_eq!(count(&out, "0"), 500);
}

#[test]
fn if_acts_on_the_measured_value() {
    // Whatever the first measurement gives, the correction brings the qubit back to 0.
    let out = sim(
        "qreg q[1];\ncreg c[1];\nh q[0];\nmeasure q[0] -> c[0];\nif (c == 1) x q[0];\nmeasure q[0] -> c[0];",
        400,
        9,
    );
    assert_eq!(count(&out, "0"), 400);
    // And a condition that never holds changes nothing.
    let out = sim(
        "qreg q[1];\ncreg c[2];\nif (c == 3) x q[0];\nmeasure q[0] -> c[0];",
        50,
        9,
    );
    assert_eq!(count(&out, "00"), 50);
}

#[test]
fn measurement_collapses_the_state_mid_circuit() {
    // After measuring, each qubit of a Bell pair is a definite value: the two results always agree,
    // although a later Hadamard on each makes the final results independent.
    let out = sim(
        "qreg q[2];\ncreg m[2];\ncreg f[2];\nh q[0];\ncx q[0], q[1];\nmeasure q -> m;\nh q;\nmeasure q -> f;",
        4000,
        2,
    );
    for key in out.counts.keys() {
        let (f, m) = key.split_once(' ').unwrap();
        assert!(m == "00" || m == "11", "{key}");
        assert!(f.len() == 2);
    }
    let final_one_one: u64 = out
        .counts
        .iter()
        .filter(|(k, _)| k.starts_with("11"))
        .map(|(_, n)| n)
        .sum();
    assert!(
        (final_one_one as f64 - 1000.0).abs() < 150.0,
        "{final_one_one}"
    );
}

#[test]
fn teleportation_moves_the_state() {
    let src = "qreg q[3];\ncreg m0[1];\ncreg m1[1];\ncreg out[1];\nry(1.1) q[0];\nh q[1];\ncx q[1], q[2];\n\
               cx q[0], q[1];\nh q[0];\nmeasure q[0] -> m0[0];\nmeasure q[1] -> m1[0];\nif (m1 == 1) x q[2];\n\
               if (m0 == 1) z q[2];\nmeasure q[2] -> out[0];";
    let shots = 6000;
    let out = sim_observing(src, shots, 4, &["Z2"]);
    let ones: u64 = out
        .counts
        .iter()
        .filter(|(k, _)| k.starts_with('1'))
        .map(|(_, n)| n)
        .sum();
    let p = (0.55f64).sin().powi(2);
    let sigma = (shots as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (ones as f64 - p * shots as f64).abs() < 5.0 * sigma,
        "{ones}"
    );
    // <Z2> averaged over trajectories estimates cos(1.1).
    assert!((out.expectations[0] - 1.1f64.cos()).abs() < 5.0 * 2.0 * sigma / shots as f64);
}

#[test]
fn a_run_counts_its_gate_passes_and_the_bytes_they_moved() {
    // Double precision: 16 bytes per amplitude; a pass reads and writes the whole state.
    let state_bytes = 16u64 << 12;
    let none = sim("qreg q[12];", 10, 1);
    assert_eq!(none.work.gate_passes, 0);
    assert_eq!(none.work.bytes_moved, 0);

    let sampled = sim("qreg q[12];\nh q;\ncx q[0], q[11];", 10, 1);
    assert!(sampled.work.gate_passes >= 1, "{:?}", sampled.work);
    assert_eq!(
        sampled.work.bytes_moved,
        sampled.work.gate_passes * 2 * state_bytes
    );

    // Shot by shot, every trajectory makes its own passes.
    let one_shot = sim(
        "qreg q[12];\ncreg c[1];\nh q;\nmeasure q[0] -> c[0];\nh q;",
        1,
        1,
    );
    let ten_shots = sim(
        "qreg q[12];\ncreg c[1];\nh q;\nmeasure q[0] -> c[0];\nh q;",
        10,
        1,
    );
    assert_eq!(ten_shots.mode, ShotMode::Trajectories);
    assert!(
        ten_shots.work.gate_passes > one_shot.work.gate_passes,
        "{:?} {:?}",
        one_shot.work,
        ten_shots.work
    );
}
