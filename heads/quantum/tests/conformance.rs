//! The shared conformance circuits: every backend configuration, both precisions, against the exact
//! reference states, at the thresholds of `shared/conformance/README.md`.
//!
//! Reads `$CHIMERA_CONFORMANCE_DIR` when set, else the project's `../shared/conformance/qasm` when
//! present (it may hold more circuits than were copied), else the copy in `tests/data/conformance`.

mod common;

use chimera_quantum::backend::Precision;
use chimera_quantum::qasm;
use chimera_quantum::run::{RunOptions, run};
use std::path::PathBuf;

fn conformance_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CHIMERA_CONFORMANCE_DIR") {
        return PathBuf::from(dir);
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shared = manifest.join("../../../shared/conformance/qasm");
    if shared.join("index.json").exists() {
        return shared;
    }
    manifest.join("tests/data/conformance")
}

#[test]
fn every_conformance_circuit_in_both_precisions() {
    let dir = conformance_dir();
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    let entries = index.as_array().unwrap();
    assert!(!entries.is_empty());
    let backends = common::cpu_backends();
    let mut checked = 0;
    for entry in entries {
        let name = entry["name"].as_str().unwrap();
        let source = std::fs::read_to_string(dir.join(format!("{name}.qasm"))).unwrap();
        let circuit = qasm::parse(&source).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            circuit.num_qubits as u64,
            entry["qubits"].as_u64().unwrap(),
            "{name}"
        );
        let reference = common::read_npy(&dir.join(format!("{name}.sv.npy")));
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
                let f = common::fidelity(&reference, &psi);
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
        dir.display()
    );
}
