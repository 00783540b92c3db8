//! A state that cannot fit is refused before anything is allocated, with the numbers.

use chimera_circuit::memory::Precision;
use chimera_quantum::backend::cpu::CpuBackend;
use chimera_quantum::backend::{Backend, BackendError};

/// The most memory this process has held resident, in KiB (Linux's VmHWM).
fn peak_resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_state_larger_than_memory_is_refused_up_front() {
    let backend = CpuBackend::new(Some(1)).unwrap();
    let before = peak_resident_kib();
    let err = backend
        .allocate(45, Precision::Double)
        .err()
        .expect("45 qubits fit?");
    // Refused before anything was allocated: not even a part of the state was touched.
    let grew = peak_resident_kib() - before;
    assert!(grew < 64 << 10, "the refusal touched {grew} KiB");
    let BackendError::OutOfMemory { qubits, needed, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!((*qubits, *needed), (45, 16u128 << 45));
    let text = err.to_string();
    assert!(
        text.contains("45 qubits")
            && text.contains("512.0 TiB")
            && text.contains("--precision single"),
        "{text}"
    );
    // Absurd sizes too: no overflow, no panic.
    assert!(backend.allocate(4000, Precision::Single).is_err());
}

#[test]
fn a_small_state_starts_in_zero() {
    let backend = CpuBackend::new(Some(1)).unwrap();
    let state = backend.allocate(3, Precision::Single).unwrap();
    assert_eq!(state.sample(&[0.0, 0.5, 0.999]), vec![0, 0, 0]);
}
