//! `chimera._native`: the Rust side of CHIMERA's Python package (`chimera-engine`), a thin layer
//! over `chimera-circuit` (circuits), `chimera-quantum` (the simulator), `chimera-maml` (signing)
//! and `chimera-client` (the engine over gRPC). Everything a Qiskit
//! or PennyLane user sees is in the Python side, `python/chimera/`; this module takes plain
//! data (qubit lists, NumPy matrices, observable text) and releases the GIL while it simulates.

mod circuit;
mod client;
mod errors;
mod signing;
mod simulator;
mod sweep;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<circuit::Circuit>()?;
    m.add_class::<simulator::Simulator>()?;
    m.add_class::<client::Client>()?;
    m.add_class::<sweep::Template>()?;
    m.add("Refused", m.py().get_type::<client::Refused>())?;
    m.add_function(wrap_pyfunction!(signing::keygen, m)?)?;
    m.add_function(wrap_pyfunction!(signing::sign, m)?)?;
    m.add_function(wrap_pyfunction!(signing::verify, m)?)?;
    Ok(())
}
