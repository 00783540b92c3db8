//! CHIMERA's circuits as the door and the heads both read them, with no simulator.
//!
//! `qasm` parses OpenQASM 2 programs into the plain-data [`circuit::Circuit`] (and checks them
//! without keeping their operations, as the door does), and the OpenQASM 3 subset of hybrid
//! models into a [`layer::QuantumLayer`]; `gates` holds the standard gates' matrices, `pauli`
//! the observables, `memory` what a state costs. Simulating any of it is `chimera-quantum`'s work.

pub mod bits;
pub mod circuit;
pub mod gates;
pub mod layer;
pub mod memory;
pub mod pauli;
pub mod qasm;
