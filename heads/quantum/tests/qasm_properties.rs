//! The front end never panics, whatever it is given: random token soup, and real programs with
//! bytes flipped, cut or dropped. What it accepts, the simulator runs without panicking either.

use chimera_circuit::memory::Precision;
use chimera_circuit::qasm;
use chimera_quantum::backend::cpu::CpuBackend;
use chimera_quantum::run::{RunOptions, run};
use proptest::prelude::*;

const SEEDS: [&str; 3] = [
    include_str!("data/conformance/qelib1_all_gates_4.qasm"),
    include_str!("data/conformance/random_6_d10.qasm"),
    include_str!("data/conformance/ghz_10.qasm"),
];

const TOKENS: [&str; 40] = [
    "OPENQASM 2.0;",
    "include \"qelib1.inc\";",
    "qreg",
    "creg",
    "gate",
    "opaque",
    "measure",
    "reset",
    "barrier",
    "if",
    "q",
    "c",
    "a",
    "pi",
    "theta",
    "[",
    "]",
    "(",
    ")",
    "{",
    "}",
    ";",
    ",",
    "->",
    "==",
    "+",
    "-",
    "*",
    "/",
    "^",
    "0",
    "1",
    "2",
    "3.5",
    "1e-3",
    "h",
    "cx",
    "rx",
    "sin",
    "u3",
];

fn run_small(src: &str) {
    if let Ok(circuit) = qasm::parse(src)
        && circuit.num_qubits <= 10
    {
        let options = RunOptions {
            shots: 3,
            seed: 1,
            precision: Precision::Single,
            observables: vec![],
            keep_state: false,
        };
        run(&circuit, &CpuBackend::new(Some(1)).unwrap(), &options)
            .expect("a parsed small circuit runs");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(prop::sample::select(&TOKENS[..]), 0..60)) {
        run_small(&tokens.join(" "));
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = qasm::parse(&text);
    }

    #[test]
    fn mutated_programs_never_panic(
        which in 0..SEEDS.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6),
    ) {
        let mut bytes = SEEDS[which].as_bytes().to_vec();
        for (at, byte, kind) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.truncate(i),
            }
        }
        run_small(&String::from_utf8_lossy(&bytes));
    }
}
