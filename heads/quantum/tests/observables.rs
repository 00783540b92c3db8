//! Pauli sums: parsing, and expectation values against the reference simulator.

mod common;

use chimera_circuit::circuit::{C64, gates_in};
use chimera_circuit::memory::Precision;
use chimera_circuit::pauli::PauliSum;
use chimera_circuit::qasm;
use chimera_quantum::backend::Backend;
use chimera_quantum::run::{RunError, RunOptions, run};

#[test]
fn pauli_sums_parse_in_their_usual_spellings() {
    let p = PauliSum::parse("Z0 Z1 + 0.5*X2 - 1.5 * Y0*X3 + 2 + i").unwrap();
    assert_eq!(p.terms.len(), 5);
    assert_eq!(p.terms[0].0, 1.0);
    assert_eq!((p.terms[0].1.sign, p.terms[0].1.flip), (0b11, 0));
    assert_eq!((p.terms[1].0, p.terms[1].1.flip), (0.5, 0b100));
    assert_eq!(p.terms[2].0, -1.5);
    assert_eq!(
        (p.terms[2].1.flip, p.terms[2].1.sign, p.terms[2].1.y_count),
        (0b1001, 0b1, 1)
    );
    assert_eq!(
        (p.terms[3].0, p.terms[3].1.flip | p.terms[3].1.sign),
        (2.0, 0)
    );
    assert_eq!(p.max_qubit(), Some(3));
    assert_eq!(
        PauliSum::parse("-x10").unwrap().terms[0],
        (-1.0, PauliSum::parse("X10").unwrap().terms[0].1)
    );
}

#[test]
fn malformed_pauli_sums_say_where() {
    for (text, at, needle) in [
        ("Q1", 1, "expected a term"),
        ("X", 1, "needs a qubit number"),
        ("Z0 Z0", 4, "appears twice"),
        ("Z64", 2, "out of range"),
        ("Z0 +", 5, "expected a term"),
        ("Z0 ; X1", 4, "unexpected ';'"),
        ("1.2.3*Z0", 1, "not a number"),
    ] {
        let err = PauliSum::parse(text).unwrap_err();
        assert!(err.message.contains(needle), "{text}: {err}");
        assert_eq!(err.at, at, "{text}: {err}");
    }
}

fn reference_expectation(psi: &[C64], p: &PauliSum) -> f64 {
    let mut total = 0.0;
    for (coef, s) in &p.terms {
        let mut e = C64::new(0.0, 0.0);
        for (i, a) in psi.iter().enumerate() {
            // P|i> = phase |j>; accumulate <psi|j> phase a.
            let mut phase = C64::new(1.0, 0.0);
            for q in 0..64 {
                let (x, z) = ((s.flip >> q) & 1 == 1, (s.sign >> q) & 1 == 1);
                let bit = (i >> q) & 1 == 1;
                match (x, z) {
                    (true, true) => {
                        phase *= if bit {
                            C64::new(0.0, -1.0)
                        } else {
                            C64::new(0.0, 1.0)
                        }
                    }
                    (false, true) if bit => phase = -phase,
                    _ => {}
                }
            }
            let j = i ^ s.flip as usize;
            e += psi[j].conj() * phase * a;
        }
        total += coef * e.re;
    }
    total
}

#[test]
fn expectation_values_match_the_reference_on_a_random_circuit() {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/conformance/random_9_d12.qasm"
    ))
    .unwrap();
    let circuit = qasm::parse(&src).unwrap();
    let gates = gates_in(&circuit.ops);
    let psi = common::reference_state(circuit.num_qubits, &gates);
    let observables = [
        "Z0",
        "X3",
        "Y5",
        "Z0 Z1 + 0.5*X2 - 0.25*Y0 Y8",
        "X0 Y1 Z2 X3 Y4 Z5 X6 Y7 Z8",
        "1.5",
    ];
    for (name, backend) in common::cpu_backends() {
        for (precision, tolerance) in [(Precision::Double, 1e-10), (Precision::Single, 1e-5)] {
            let options = RunOptions {
                shots: 0,
                seed: 0,
                precision,
                observables: observables
                    .iter()
                    .map(|o| PauliSum::parse(o).unwrap())
                    .collect(),
                keep_state: false,
            };
            let out = run(&circuit, &backend, &options).unwrap();
            for (o, (got, p)) in observables
                .iter()
                .zip(out.expectations.iter().zip(&options.observables))
            {
                let want = reference_expectation(&psi, p);
                assert!(
                    (got - want).abs() < tolerance,
                    "<{o}> on {name} {precision:?}: {got} vs {want}"
                );
            }
        }
    }
}

#[test]
fn an_observable_beyond_the_circuit_is_refused() {
    let circuit = qasm::parse("OPENQASM 2.0;\nqreg q[2];").unwrap();
    let backend = chimera_quantum::backend::cpu::CpuBackend::new(Some(1)).unwrap();
    let options = RunOptions {
        shots: 1,
        seed: 0,
        precision: Precision::Single,
        observables: vec![PauliSum::parse("Z5").unwrap()],
        keep_state: false,
    };
    let err = run(&circuit, &backend, &options).unwrap_err();
    assert!(matches!(
        err,
        RunError::ObservableQubit {
            qubit: 5,
            num_qubits: 2,
            ..
        }
    ));
    assert!(
        err.to_string()
            .contains("names qubit 5, but the circuit has 2 qubits"),
        "{err}"
    );
    let _ = backend.describe();
}
