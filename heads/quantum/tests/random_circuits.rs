//! Random circuits of random dense gates (1 to 5 qubits, any qubit order) on every backend
//! configuration, against the naive reference simulator: the fused, blocked, vectorised paths must
//! compute the same linear map.

mod common;

use chimera_circuit::circuit::{C64, Gate};
use chimera_circuit::memory::Precision;
use chimera_quantum::backend::Backend;
use common::{XorShift, random_gate};

fn relative_error(a: &[C64], b: &[C64]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y).norm_sqr()).sum();
    let norm: f64 = b.iter().map(|y| y.norm_sqr()).sum();
    (diff / norm).sqrt()
}

#[test]
fn random_dense_circuits_match_the_reference() {
    let backends = common::cpu_backends();
    let mut rng = XorShift(0x9E3779B97F4A7C15);
    for case in 0..60 {
        let n = 1 + rng.below(11);
        let gates: Vec<Gate> = (0..1 + rng.below(40))
            .map(|_| random_gate(&mut rng, n))
            .collect();
        let reference = common::reference_state(n, &gates);
        for (name, backend) in &backends {
            for (precision, tolerance) in [(Precision::Double, 1e-10), (Precision::Single, 2e-5)] {
                let mut state = backend.allocate(n, precision).unwrap();
                state.apply(&gates);
                let psi = common::to_c64(&state.amplitudes());
                let err = relative_error(&psi, &reference);
                assert!(
                    err < tolerance * gates.len() as f64,
                    "case {case}: {n} qubits, {} gates, on {name} in {precision:?}: relative error {err}",
                    gates.len()
                );
            }
        }
    }
}

#[test]
fn parallel_slices_match_the_reference_at_16_qubits() {
    // At 16 qubits and up the backend splits the state among threads.
    let mut rng = XorShift(42);
    let n = 16;
    let gates: Vec<Gate> = (0..30).map(|_| random_gate(&mut rng, n)).collect();
    let reference = common::reference_state(n, &gates);
    for (name, backend) in common::cpu_backends() {
        let mut state = backend.allocate(n, Precision::Double).unwrap();
        state.apply(&gates);
        let err = relative_error(&common::to_c64(&state.amplitudes()), &reference);
        assert!(err < 1e-9, "{name}: relative error {err}");
    }
}
