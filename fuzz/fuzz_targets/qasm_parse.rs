//! The OpenQASM front end on arbitrary bytes: it may refuse, never panic, hang or exhaust memory;
//! the check without operations agrees with the parse. What it accepts and is small, the CPU
//! backend simulates.
#![no_main]

use chimera_circuit::memory::Precision;
use chimera_quantum::backend::cpu::CpuBackend;
use chimera_circuit::qasm;
use chimera_quantum::run::{RunOptions, run};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The engine's admission check refuses exactly what the heads' parse refuses.
    let checked = qasm::check(text);
    let parsed = qasm::parse(text);
    match (&checked, &parsed) {
        (Ok(c), Ok(p)) => assert_eq!((c.num_qubits, c.operations), (p.num_qubits, p.ops.len())),
        (Err(c), Err(p)) => assert_eq!(c, p),
        _ => panic!("check {checked:?} but parse {:?}", parsed.as_ref().map(|p| p.ops.len())),
    }
    let Ok(circuit) = parsed else { return };
    if circuit.num_qubits <= 8 && circuit.ops.len() <= 10_000 {
        let options = RunOptions { shots: 2, seed: 0, precision: Precision::Single, observables: vec![], keep_state: false };
        run(&circuit, &CpuBackend::new(Some(1)).unwrap(), &options).expect("a parsed small circuit runs");
    }
});
