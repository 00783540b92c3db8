//! The simulator's errors as Python exceptions: too large for memory is a `MemoryError`, bad input
//! a `ValueError`, a backend that cannot run a `RuntimeError`; each carries the Rust message.

use chimera_quantum::backend::BackendError;
use chimera_quantum::run::RunError;
use pyo3::PyErr;
use pyo3::exceptions::{PyMemoryError, PyRuntimeError, PyValueError};

pub fn backend(e: BackendError) -> PyErr {
    match e {
        BackendError::OutOfMemory { .. } => PyMemoryError::new_err(e.to_string()),
        BackendError::Unavailable(..) | BackendError::Threads(..) => {
            PyRuntimeError::new_err(e.to_string())
        }
    }
}

pub fn run(e: RunError) -> PyErr {
    match e {
        RunError::Backend(e) => backend(e),
        RunError::ObservableQubit { .. } => PyValueError::new_err(e.to_string()),
    }
}
