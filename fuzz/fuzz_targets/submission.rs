//! The submission path as a whole on arbitrary bytes: what parses is signed as a client would
//! sign it, admitted, and checked as a job (`chimera_job::check`). Nothing may panic, and a job
//! that passes hands its head only numbers within the engine's limits, read back by the head the
//! same way.
#![no_main]

use chimera_job::{CircuitSettings, Limits, Role, check_admitted};
use chimera_maml::{Policy, Work, admit, parse, sign_document};
use libfuzzer_sys::fuzz_target;

#[path = "trusted.rs"]
mod trusted;
use trusted::{KEY, TRUST};
const LIMITS: Limits = Limits { max_qubits: 20, max_shots: 10_000, max_epochs: 100 };

fuzz_target!(|data: &[u8]| {
    let policy = Policy::default();
    if parse(data, policy.max_bytes).is_err() {
        return;
    }
    let signed = sign_document(data, &KEY, policy.max_bytes).expect("a parsed document signs");
    let policy = Policy { max_bytes: usize::MAX, ..policy };
    let Ok(admitted) = admit(signed.text.as_bytes(), &TRUST, &policy, jiff::Timestamp::UNIX_EPOCH)
    else {
        return;
    };
    let job = &admitted.document.job;
    let Ok(checked) = check_admitted(&admitted, &LIMITS) else { return };
    assert_eq!(checked.work, admitted.work);
    assert_eq!(checked.role == Role::Quantum, checked.work.contains(&Work::QuantumCircuit));
    for circuit in checked.circuits() {
        assert!(circuit.num_qubits <= LIMITS.max_qubits, "{circuit:?}");
    }
    if let Some(settings) = &checked.settings {
        assert!(settings.shots <= LIMITS.max_shots, "{settings:?}");
        for qubit in settings.observables.iter().filter_map(|o| o.max_qubit()) {
            assert!(checked.circuits().all(|c| qubit < c.num_qubits), "{settings:?}");
        }
        let read_on_a_head = CircuitSettings::from_context(&job.context, &job.id).expect("checked at the door");
        assert_eq!(&read_on_a_head, settings);
    }
    for training in checked.trainings() {
        assert!((1..=LIMITS.max_epochs).contains(&training.epochs), "{}", training.epochs);
    }
});
