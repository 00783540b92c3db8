//! The shared conformance circuits: every CPU backend configuration, both precisions, against the
//! exact reference states, at the thresholds of `shared/conformance/README.md`. Where the circuits
//! are read from: `common::conformance_dir`.

mod common;

use chimera_circuit::memory::Precision;
use chimera_circuit::qasm;
use chimera_quantum::run::{RunOptions, run};

#[test]
fn every_conformance_circuit_in_both_precisions() {
    let circuits = common::conformance_circuits();
    assert!(!circuits.is_empty());
    let backends = common::cpu_backends();
    let mut checked = 0;
    for (name, source, reference) in &circuits {
        let circuit = qasm::parse(source).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(1usize << circuit.num_qubits, reference.len(), "{name}");
        for (backend_name, backend) in &backends {
            for (precision, threshold) in [(Precision::Double, 1e-6), (Precision::Single, 1e-4)] {
                let options = RunOptions {
                    shots: 0,
                    seed: 1,
                    precision,
                    observables: vec![],
                    keep_state: true,
                };
                let out = run(&circuit, backend, &options).unwrap();
                let psi = common::to_c64(out.state.as_ref().unwrap());
                let f = common::fidelity(reference, &psi);
                assert!(
                    f >= 1.0 - threshold,
                    "{name} on {backend_name} in {precision:?}: fidelity {f} below 1 - {threshold}"
                );
                checked += 1;
            }
        }
    }
    eprintln!(
        "{checked} (circuit, backend, precision) combinations conform, from {}",
        common::conformance_dir().display()
    );
}
