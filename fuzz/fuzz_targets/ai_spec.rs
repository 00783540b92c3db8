//! The AI heads' job specs on arbitrary bytes, as the engine's front door reads each
//! `chimera-train` and `chimera-infer` block at submission, and the same bytes as a hybrid model's
//! circuit (an OpenQASM 3 program with parameters): each may refuse, never panic, hang or exhaust
//! memory.
#![no_main]

use chimera_ai_spec::{InferSpec, TrainSpec};
use chimera_circuit::qasm::parse_parameterised;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = TrainSpec::from_yaml(text);
    let _ = InferSpec::from_yaml(text);
    let _ = parse_parameterised(text);
});
