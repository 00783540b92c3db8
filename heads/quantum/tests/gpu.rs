//! The CUDA backend on a real GPU: conformance in both precisions, agreement with the CPU backend,
//! random circuits, measurement, sampling and expectation values on the device, memory refusal.
//! On a machine without a usable GPU every test prints SKIPPED and the reason.

mod common;

use chimera_circuit::circuit::{C64, Gate, gates_in};
use chimera_circuit::gates;
use chimera_circuit::memory::Precision;
use chimera_circuit::pauli::PauliSum;
use chimera_circuit::qasm;
use chimera_quantum::backend::cpu::CpuBackend;
use chimera_quantum::backend::cuda::CudaBackend;
use chimera_quantum::backend::{Backend, BackendError};
use chimera_quantum::run::{RunOptions, run};

fn gpu(test: &str) -> Option<CudaBackend> {
    match CudaBackend::new() {
        Ok(b) => Some(b),
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

fn options(precision: Precision, shots: usize, observables: &[&str]) -> RunOptions {
    RunOptions {
        shots,
        seed: 5,
        precision,
        observables: observables
            .iter()
            .map(|o| PauliSum::parse(o).unwrap())
            .collect(),
        keep_state: true,
    }
}

#[test]
fn conformance_circuits_agree_with_the_references_and_the_cpu() {
    let Some(gpu) = gpu("conformance_circuits_agree_with_the_references_and_the_cpu") else {
        return;
    };
    let cpu = CpuBackend::new(None).unwrap();
    let observables = ["Z0", "X1 Y2 + 0.5*Z0 Z3", "Y0"];
    for (name, source, reference) in common::conformance_circuits() {
        let circuit = qasm::parse(&source).unwrap();
        for (precision, threshold) in [(Precision::Double, 1e-6), (Precision::Single, 1e-4)] {
            let on_gpu = run(&circuit, &gpu, &options(precision, 0, &observables)).unwrap();
            let on_cpu = run(&circuit, &cpu, &options(precision, 0, &observables)).unwrap();
            let g = common::to_c64(on_gpu.state.as_ref().unwrap());
            let c = common::to_c64(on_cpu.state.as_ref().unwrap());
            let f = common::fidelity(&reference, &g);
            assert!(
                f >= 1.0 - threshold,
                "{name} {precision:?}: fidelity {f} on {}",
                gpu.describe()
            );
            assert!(
                common::fidelity(&c, &g) >= 1.0 - threshold,
                "{name} {precision:?}: GPU and CPU differ"
            );
            for (a, b) in on_gpu.expectations.iter().zip(&on_cpu.expectations) {
                assert!(
                    (a - b).abs() < 1e-3,
                    "{name} {precision:?}: <obs> {a} on the GPU, {b} on the CPU"
                );
            }
        }
    }
}

#[test]
fn random_wide_gates_match_the_reference() {
    let Some(gpu) = gpu("random_wide_gates_match_the_reference") else {
        return;
    };
    // Gates on 1 to 5 qubits and wide diagonals, through the fusion of the GPU backend.
    let src = std::fs::read_to_string(common::conformance_dir().join("random_12_d8.qasm")).unwrap();
    let circuit = qasm::parse(&src).unwrap();
    let gates = gates_in(&circuit.ops);
    let reference = common::reference_state(circuit.num_qubits, &gates);
    let mut state = gpu.allocate(circuit.num_qubits, Precision::Double).unwrap();
    for chunk in gates.chunks(7) {
        state.apply(chunk);
    }
    assert!(common::fidelity(&reference, &common::to_c64(&state.amplitudes())) > 1.0 - 1e-10);
}

#[test]
fn random_gates_on_low_and_high_qubits_match_the_reference() {
    let Some(gpu) = gpu("random_gates_on_low_and_high_qubits_match_the_reference") else {
        return;
    };
    let mut rng = common::XorShift(0xC0FFEE);
    for n in [5, 9, 14] {
        let gates: Vec<_> = (0..60).map(|_| common::random_gate(&mut rng, n)).collect();
        assert_gpu_matches_reference(&gpu, n, &gates, &format!("{n} qubits"));
    }
}

/// Every gate kernel: widths 1 to 5, with 0 to all of the qubits among the low 5, those either
/// qubits 0, 1, 2, ... (from 3 of them, the shuffle kernel) or scattered; each gate dense, a phased
/// permutation (the permutation kernel) or a controlled dense gate whose first qubit is the control
/// (the dense kernel with controls), with its qubits in random order.
#[test]
fn every_gate_kernel_width_and_low_qubit_split_matches_the_reference() {
    let Some(gpu) = gpu("every_gate_kernel_width_and_low_qubit_split_matches_the_reference") else {
        return;
    };
    let mut rng = common::XorShift(0xD15EA5E);
    let n = 12;
    for k in 1..=5 {
        for low in 0..=k {
            for contiguous in [true, false] {
                let mut qubits: Vec<usize> = if contiguous {
                    (0..low).collect()
                } else {
                    Vec::new()
                };
                while qubits.len() < k {
                    let q = if qubits.len() < low {
                        rng.below(5)
                    } else {
                        5 + rng.below(n - 5)
                    };
                    if !qubits.contains(&q) {
                        qubits.push(q);
                    }
                }
                qubits.reverse();
                let d = 1usize << k;
                let mut dense = |d: usize| -> Vec<C64> {
                    let scale = 1.0 / (d as f64).sqrt();
                    (0..d * d)
                        .map(|_| C64::new(rng.normal(), rng.normal()) * scale)
                        .collect()
                };
                let mut kinds = vec![("dense", dense(d))];
                if k > 1 {
                    kinds.push(("controlled", gates::controlled(&dense(d / 2), 1)));
                }
                let sources: Vec<usize> = (0..d).map(|r| (r * 5 + 3) % d).collect();
                let mut permutation = vec![C64::new(0.0, 0.0); d * d];
                for (r, &c) in sources.iter().enumerate() {
                    permutation[r * d + c] = C64::from_polar(1.0, 0.7 * r as f64);
                }
                kinds.push(("permutation", permutation));
                for (kind, matrix) in kinds {
                    let gates = [Gate::new(qubits.clone(), matrix)];
                    assert_gpu_matches_reference(
                        &gpu,
                        n,
                        &gates,
                        &format!("{kind} gate on {qubits:?}"),
                    );
                }
            }
        }
    }
}

/// Runs `gates` from |0..0> on the GPU in both precisions against the exact reference state.
fn assert_gpu_matches_reference(gpu: &CudaBackend, n: usize, gates: &[Gate], what: &str) {
    // A start where every amplitude differs, so that a kernel mixing the wrong ones shows; applied
    // on its own so that it is not fused into the gates under test.
    let start: Vec<Gate> = (0..n)
        .map(|q| Gate::new(vec![q], gates::u(0.3 + 0.2 * q as f64, 0.1 * q as f64, 0.7)))
        .collect();
    let all: Vec<Gate> = start.iter().chain(gates).cloned().collect();
    let reference = common::reference_state(n, &all);
    for (precision, tolerance) in [(Precision::Double, 1e-10), (Precision::Single, 1e-3)] {
        let mut state = gpu.allocate(n, precision).unwrap();
        state.apply(&start);
        state.apply(gates);
        let psi = common::to_c64(&state.amplitudes());
        let err: f64 = psi
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).norm_sqr())
            .sum::<f64>()
            .sqrt()
            / reference.iter().map(|b| b.norm_sqr()).sum::<f64>().sqrt();
        assert!(
            err < tolerance,
            "{what}, {precision:?}: relative error {err}"
        );
    }
}

#[test]
fn measurement_and_sampling_on_the_device() {
    let Some(gpu) = gpu("measurement_and_sampling_on_the_device") else {
        return;
    };
    // 20 qubits: sampling covers many chunks. GHZ outcomes only.
    let ghz = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[20];\ncreg c[20];\nh q[0];\n"
        .to_string()
        + &(1..20)
            .map(|i| format!("cx q[{}], q[{i}];\n", i - 1))
            .collect::<String>()
        + "measure q -> c;\n";
    let out = run(
        &qasm::parse(&ghz).unwrap(),
        &gpu,
        &options(Precision::Single, 4000, &["Z0 Z19", "X0"]),
    )
    .unwrap();
    assert_eq!(
        out.counts.len(),
        2,
        "{:?}",
        out.counts.keys().collect::<Vec<_>>()
    );
    let ones = out.counts["11111111111111111111"] as f64;
    assert!((ones - 2000.0).abs() < 5.0 * 1000f64.sqrt(), "{ones}");
    assert!((out.expectations[0] - 1.0).abs() < 1e-5 && out.expectations[1].abs() < 1e-5);
    // Mid-circuit measurement, reset and if: trajectories on the device.
    let dynamic = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[1];\ncreg d[1];\nh q[0];\n\
                   measure q[0] -> c[0];\nif (c == 1) x q[1];\nreset q[0];\nmeasure q[0] -> d[0];\nmeasure q[1] -> c[0];";
    let out = run(
        &qasm::parse(dynamic).unwrap(),
        &gpu,
        &options(Precision::Double, 300, &[]),
    )
    .unwrap();
    assert!(
        out.counts.keys().all(|k| k.starts_with('0')),
        "reset leaves 0: {:?}",
        out.counts
    );
    assert_eq!(out.counts.values().sum::<u64>(), 300);
    assert!(
        out.counts.len() == 2,
        "both branches of the if: {:?}",
        out.counts
    );
}

#[test]
fn states_too_large_for_the_gpu_are_refused_before_allocating() {
    let Some(gpu) = gpu("states_too_large_for_the_gpu_are_refused_before_allocating") else {
        return;
    };
    let err = gpu
        .allocate(40, Precision::Double)
        .err()
        .expect("40 qubits do not fit");
    assert!(
        matches!(
            err,
            BackendError::OutOfMemory {
                where_: "the GPU",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("40 qubits"), "{err}");
}

#[test]
fn thirty_three_qubits_fit_in_complex64_on_an_80_gb_card() {
    let Some(gpu) = gpu("thirty_three_qubits_fit_in_complex64_on_an_80_gb_card") else {
        return;
    };
    let mut state = match gpu.allocate(33, Precision::Single) {
        Ok(s) => s,
        Err(BackendError::OutOfMemory { available, .. }) if available < 70 << 30 => {
            eprintln!(
                "SKIPPED thirty_three_qubits_fit_in_complex64_on_an_80_gb_card: this GPU has {available} bytes free"
            );
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let h = qasm::parse(
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[33];\nh q[32];\ncx q[32], q[0];",
    )
    .unwrap();
    state.apply(&gates_in(&h.ops));
    assert!((state.probability_of_one(0) - 0.5).abs() < 1e-6);
    assert_eq!(state.sample(&[0.25, 0.75]), vec![0, (1u64 << 32) | 1]);
}
