//! Statevector backends behind one interface. A new backend is a new module here.

pub mod cpu;
pub mod cuda;

use chimera_circuit::circuit::Gate;
use chimera_circuit::memory::Precision;
use chimera_circuit::pauli::PauliString;
use num_complex::Complex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A state copied out of a backend, in its own precision.
#[derive(Debug, Clone, PartialEq)]
pub enum Amplitudes {
    Single(Vec<Complex<f32>>),
    Double(Vec<Complex<f64>>),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    #[error(
        "the circuit has {qubits} qubits: its {precision}-precision statevector needs {} but {where_} has {} available{hint}",
        human_bytes(*.needed),
        human_bytes(*.available)
    )]
    OutOfMemory {
        qubits: usize,
        precision: &'static str,
        needed: u128,
        available: u128,
        where_: &'static str,
        hint: &'static str,
    },
    #[error("backend '{0}' is not available: {1}")]
    Unavailable(String, String),
    #[error("could not start {0} worker threads: {1}")]
    Threads(usize, String),
}

pub fn human_bytes(b: u128) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A statevector living in some backend's memory, starting in |0...0>.
pub trait StateVector: Send {
    fn num_qubits(&self) -> usize;
    /// Applies `gates` in order.
    fn apply(&mut self, gates: &[Gate]);
    /// Probability that measuring `qubit` now gives 1.
    fn probability_of_one(&self, qubit: usize) -> f64;
    /// Projects `qubit` onto `outcome`, whose probability is `probability` (> 0), and renormalises.
    fn collapse(&mut self, qubit: usize, outcome: bool, probability: f64);
    /// The basis state each of `uniforms` (ascending, in [0, 1)) selects.
    fn sample(&self, uniforms: &[f64]) -> Vec<u64>;
    fn expectation(&self, pauli: &PauliString) -> f64;
    fn duplicate(&self) -> Box<dyn StateVector>;
    /// Returns once all work queued on the state is done, so that a clock stopped next is honest.
    fn wait(&self) {}
    fn amplitudes(&self) -> Amplitudes;
}

pub trait Backend: Send + Sync {
    /// What ran, for reports: "cpu (avx2+fma, 2 threads)".
    fn describe(&self) -> String;
    /// Whether its states live on a GPU.
    fn is_gpu(&self) -> bool;
    /// The gate passes its states have had since it was made, and the bytes they moved.
    fn work(&self) -> Work;
    /// A fresh |0...0> state, refused before allocating when it cannot fit.
    fn allocate(
        &self,
        num_qubits: usize,
        precision: Precision,
    ) -> Result<Box<dyn StateVector>, BackendError>;
}

/// Gate passes over statevectors: each reads and writes the whole state once (PERFORMANCE.md),
/// so `bytes_moved` is twice the state's size per pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    pub gate_passes: u64,
    pub bytes_moved: u64,
}

impl std::ops::Sub for Work {
    type Output = Work;
    fn sub(self, earlier: Work) -> Work {
        Work {
            gate_passes: self.gate_passes - earlier.gate_passes,
            bytes_moved: self.bytes_moved - earlier.bytes_moved,
        }
    }
}

/// A backend's running [`Work`] total, shared by its states.
#[derive(Debug, Default)]
pub(crate) struct WorkCounter {
    gate_passes: AtomicU64,
    bytes_moved: AtomicU64,
}

impl WorkCounter {
    pub(crate) fn passes(&self, passes: usize, state_bytes: usize) {
        let passes = passes as u64;
        self.gate_passes.fetch_add(passes, Ordering::Relaxed);
        self.bytes_moved
            .fetch_add(passes * 2 * state_bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn total(&self) -> Work {
        Work {
            gate_passes: self.gate_passes.load(Ordering::Relaxed),
            bytes_moved: self.bytes_moved.load(Ordering::Relaxed),
        }
    }
}
