//! A training spec on arbitrary bytes, as the engine's front door reads each `chimera-train` block
//! at submission, and the same bytes as a hybrid model's circuit (an OpenQASM 3 program with
//! parameters): either may refuse, never panic, hang or exhaust memory.
#![no_main]

use chimera_quantum::qasm::parse_parameterised;
use chimera_train_spec::TrainSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = TrainSpec::from_yaml(text);
    let _ = parse_parameterised(text);
});
