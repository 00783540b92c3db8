//! OpenQASM 2.0 front end: `parse` turns program text into a [`Circuit`].
//!
//! Covers the language as real files use it: Qiskit's extended `qelib1.inc`, `gate` definitions
//! with parameter expressions, register broadcasting, `measure`, `reset`, `barrier` and `if`.
//! Everything else (`opaque`, other includes, OpenQASM 3) is refused with the line and column.
//!
//! [`parse_parameterised`] reads the circuits of hybrid models: an OpenQASM 3 subset whose
//! `input` declarations are rotation angles (see `parameterised`).

mod expr;
mod lexer;
mod lower;
mod parameterised;
mod parser;
mod qelib1;

use crate::circuit::Circuit;
pub use lower::{Checked, MAX_DECLARED_BITS, MAX_GATE_NESTING, MAX_OPERATIONS};
pub use parameterised::{CircuitLayerError, Parameter, ParameterisedCircuit, parse_parameterised};
pub use qelib1::{Builtin, qelib1};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct QasmError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

pub fn parse(source: &str) -> Result<Circuit, QasmError> {
    lower::lower(&statements(source)?)
}

/// Whether `source` parses, refused as [`parse`] would refuse it, without keeping its
/// operations: for an engine that checks circuits at submission and runs them elsewhere.
pub fn check(source: &str) -> Result<Checked, QasmError> {
    lower::check(&statements(source)?)
}

fn statements(source: &str) -> Result<Vec<parser::Stmt>, QasmError> {
    let tokens = lexer::tokenize(source)?;
    parser::Parser::new(tokens).program()
}
