//! CHIMERA's quantum head: OpenQASM 2.0 in, amplitudes, samples and expectation values out.
//!
//! `qasm` parses programs into the plain-data [`circuit::Circuit`]; `fuse` and `blocking` plan how
//! gates are grouped; a [`backend::Backend`] applies them to a statevector; `state` reads results
//! off a host-memory state; [`run::run`] ties it together with shots and classical control.

pub mod adjoint;
pub mod backend;
pub mod bits;
pub mod blocking;
pub mod circuit;
pub mod fuse;
pub mod gates;
pub mod pauli;
pub mod qasm;
pub mod run;
pub mod state;
