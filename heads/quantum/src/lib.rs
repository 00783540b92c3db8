//! CHIMERA's quantum head: circuits (read by `chimera-circuit`) simulated into amplitudes, samples
//! and expectation values.
//!
//! `fuse` and `blocking` plan how gates are grouped; a [`backend::Backend`] applies them to a
//! statevector; `state` reads results off a host-memory state; [`run::run`] ties it together with
//! shots and classical control; `adjoint` evaluates a hybrid model's quantum layer and its
//! gradients on a backend.

pub mod adjoint;
pub mod backend;
pub mod blocking;
pub mod fuse;
pub mod run;
pub mod state;
