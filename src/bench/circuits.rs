//! The standard circuit set of `chimera bench`, at any width, as OpenQASM 2.0 that every simulator
//! in the report reads (ours, qsim through Cirq's importer, Aer): GHZ (a chain of CNOTs), QFT
//! (Hadamards, controlled phases and the final swaps) and a seeded random circuit (layers of
//! general one-qubit gates and a brick of CNOTs), each measured at the end.

/// The kinds, in report order.
pub const KINDS: [&str; 3] = ["ghz", "qft", "random"];

/// A circuit of the set: its OpenQASM text and its gate count (measurements aside).
pub struct BenchCircuit {
    pub kind: &'static str,
    pub qubits: usize,
    pub gates: usize,
    pub qasm: String,
}

/// Angles for the random circuit: xorshift64*, so that the circuit is the same on every machine.
struct Angles(u64);

impl Angles {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        bits as f64 / (1u64 << 53) as f64 * std::f64::consts::TAU
    }
}

pub fn circuit(kind: &'static str, n: usize) -> BenchCircuit {
    let mut gates: Vec<String> = Vec::new();
    match kind {
        "ghz" => {
            gates.push("h q[0];".into());
            gates.extend((1..n).map(|i| format!("cx q[{}],q[{i}];", i - 1)));
        }
        "qft" => {
            for i in (0..n).rev() {
                gates.push(format!("h q[{i}];"));
                for j in (0..i).rev() {
                    let angle = std::f64::consts::PI / f64::from(1u32 << (i - j).min(31));
                    gates.push(format!("cp({angle:.17}) q[{j}],q[{i}];"));
                }
            }
            gates.extend((0..n / 2).map(|i| format!("swap q[{i}],q[{}];", n - 1 - i)));
        }
        "random" => {
            let mut angles = Angles(0x9e37_79b9_7f4a_7c15 ^ n as u64);
            for layer in 0..n {
                for q in 0..n {
                    let (t, p, l) = (angles.next(), angles.next(), angles.next());
                    gates.push(format!("u({t:.17},{p:.17},{l:.17}) q[{q}];"));
                }
                gates.extend(
                    (layer % 2..n.saturating_sub(1))
                        .step_by(2)
                        .map(|q| format!("cx q[{q}],q[{}];", q + 1)),
                );
            }
        }
        other => unreachable!("no circuit kind {other}"),
    }
    let qasm = format!(
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{n}];\ncreg c[{n}];\n{}\nmeasure q -> c;\n",
        gates.join("\n")
    );
    BenchCircuit {
        kind,
        qubits: n,
        gates: gates.len(),
        qasm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_and_does_what_its_name_says() {
        for kind in KINDS {
            for n in [2, 5, 8] {
                let c = circuit(kind, n);
                let parsed = chimera_circuit::qasm::parse(&c.qasm).unwrap();
                assert_eq!(parsed.num_qubits, n, "{kind} {n}");
                assert_eq!(parsed.gate_count(), c.gates, "{kind} {n}");
            }
        }
        // QFT of |0…0⟩ is the uniform superposition; GHZ is two outcomes; the random circuit is
        // the same text every time.
        let backend = chimera_quantum::backend::cpu::CpuBackend::new(Some(1)).unwrap();
        let options = chimera_quantum::run::RunOptions {
            shots: 4000,
            seed: 3,
            precision: chimera_circuit::memory::Precision::Double,
            observables: Vec::new(),
            keep_state: false,
        };
        let counts = |kind| {
            let c = chimera_circuit::qasm::parse(&circuit(kind, 4).qasm).unwrap();
            chimera_quantum::run::run(&c, &backend, &options)
                .unwrap()
                .counts
        };
        assert_eq!(counts("qft").len(), 16);
        let ghz = counts("ghz");
        assert_eq!(ghz.keys().collect::<Vec<_>>(), ["0000", "1111"]);
        assert_eq!(circuit("random", 6).qasm, circuit("random", 6).qasm);
    }
}
