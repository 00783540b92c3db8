//! Parameterised circuits for hybrid models: an OpenQASM 3 subset whose `input` declarations are
//! the circuit's parameters.
//!
//! ```text
//! OPENQASM 3.0;
//! include "stdgates.inc";
//! input array[float[64], 2] x;       // fed by the layer before: the model names it
//! input array[float[64], 2] theta;   // every input the model does not name is a trained weight
//! qubit[2] q;
//! rx(x[0]) q[0];
//! rx(x[1]) q[1];
//! ry(theta[0]) q[0];
//! ry(theta[1]) q[1];
//! cx q[0], q[1];
//! ```
//!
//! An input is the angle of an `rx`, `ry` or `rz`, written bare (`ry(theta[2])`), so that its
//! derivative is exact; every other gate of `stdgates.inc` (the names of `qelib1.inc`) takes
//! constant expressions. Every declared input must be used. Measurement has no place here: the
//! layer is read out by the expectation values its model names.

use super::QasmError;
use super::expr::Expr;
use super::lexer::{self, Pos};
use super::lower::{Lowerer, check_arity, constant_params};
use super::parser::{GateCall, ParamStmt, Parser};
use super::qelib1;
use crate::circuit::Gate;
use crate::layer::{self, Angle, Axis, LayerError, Observable, Op};

/// One `input` declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    /// `None` for one value, `Some(n)` for `array[float[64], n]`.
    pub size: Option<usize>,
}

impl Parameter {
    fn len(&self) -> usize {
        self.size.unwrap_or(1)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// A rotation whose angle is the value in `slot` (inputs laid end to end, as declared).
    Rotation {
        qubit: usize,
        axis: Axis,
        slot: usize,
    },
    Fixed(Gate),
}

/// A circuit whose rotation angles are named inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterisedCircuit {
    pub qubits: usize,
    pub parameters: Vec<Parameter>,
    steps: Vec<Step>,
}

/// Why a circuit cannot become the layer a model asks for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CircuitLayerError {
    #[error(
        "the model names `{name}` as the circuit's input, but the circuit declares only {declared}"
    )]
    UnknownInput { name: String, declared: String },
    #[error("the model names `{0}` twice among the circuit's inputs")]
    RepeatedInput(String),
    #[error(transparent)]
    Layer(#[from] LayerError),
}

pub fn parse_parameterised(source: &str) -> Result<ParameterisedCircuit, QasmError> {
    let tokens = lexer::tokenize(source)?;
    let stmts = Parser::new(tokens).parameterised_program()?;
    let mut lowering = Lowering::default();
    for stmt in &stmts {
        lowering.statement(stmt)?;
    }
    lowering.finish()
}

#[derive(Default)]
struct Lowering {
    registers: Lowerer,
    parameters: Vec<(Parameter, Pos)>,
    /// Whether each slot is the angle of some rotation.
    used: Vec<bool>,
    steps: Vec<Step>,
}

impl Lowering {
    fn statement(&mut self, stmt: &ParamStmt) -> Result<(), QasmError> {
        match stmt {
            ParamStmt::Input { name, size, pos } => {
                if self.parameters.iter().any(|(p, _)| p.name == *name) {
                    return Err(pos.error(format!("input '{name}' is already declared")));
                }
                let size = match size {
                    Some(0) => return Err(pos.error(format!("input array '{name}' has length 0"))),
                    Some(n) if *n > super::MAX_DECLARED_BITS => {
                        return Err(pos.error(format!(
                            "input array '{name}' is longer than {}",
                            super::MAX_DECLARED_BITS
                        )));
                    }
                    other => other.map(|n| n as usize),
                };
                let parameter = Parameter {
                    name: name.clone(),
                    size,
                };
                self.used.resize(self.used.len() + parameter.len(), false);
                self.parameters.push((parameter, *pos));
                Ok(())
            }
            ParamStmt::Qubits { name, size, pos } => {
                self.registers.declare(name, *size, *pos, true)?;
                if self.registers.qubit_count() > layer::MAX_QUBITS {
                    return Err(pos.error(format!(
                        "register '{name}' brings the circuit to {} qubits; a quantum layer has \
                         at most {}",
                        self.registers.qubit_count(),
                        layer::MAX_QUBITS
                    )));
                }
                Ok(())
            }
            ParamStmt::Apply(call) => self.apply(call),
        }
    }

    fn apply(&mut self, call: &GateCall) -> Result<(), QasmError> {
        let builtin = qelib1::primitive(&call.name)
            .or_else(|| qelib1::qelib1(&call.name))
            .ok_or_else(|| {
                call.pos.error(format!(
                    "unknown gate '{}': a parameterised circuit uses the gates of stdgates.inc \
                     (rx, ry, rz, h, cx, cz, swap, ...)",
                    call.name
                ))
            })?;
        check_arity(call, builtin.params, builtin.qubits)?;
        let applications = self.registers.broadcast(&call.args, &call.name)?;
        let input = call.params.iter().find_map(first_input);
        if let Some((name, index, pos)) = input {
            let axis = match call.name.as_str() {
                "rx" => Axis::X,
                "ry" => Axis::Y,
                "rz" => Axis::Z,
                other => {
                    return Err(pos.error(format!(
                        "'{other}' takes the input '{name}': only rx, ry and rz may take an \
                         input, as their whole angle (ry(theta[0]) q[0];)"
                    )));
                }
            };
            // rx, ry and rz take one parameter (the arity was checked): it must be the input.
            if !matches!(call.params[0], Expr::Param(..) | Expr::Element(..)) {
                return Err(pos.error(format!(
                    "the angle of '{}' must be the input itself, not an expression of it: \
                     write {}({}) and scale in the layer before",
                    call.name,
                    call.name,
                    describe(name, index)
                )));
            }
            let slot = self.slot(name, index, pos)?;
            self.used[slot] = true;
            for qubits in applications {
                self.push(
                    Step::Rotation {
                        qubit: qubits[0],
                        axis,
                        slot,
                    },
                    call.pos,
                )?;
            }
            return Ok(());
        }
        let params = constant_params(call)?;
        for qubits in applications {
            self.push(
                Step::Fixed(Gate::new(qubits, (builtin.matrix)(&params))),
                call.pos,
            )?;
        }
        Ok(())
    }

    fn push(&mut self, step: Step, pos: Pos) -> Result<(), QasmError> {
        if self.steps.len() >= super::MAX_OPERATIONS {
            return Err(pos.error(format!(
                "the circuit expands to more than {} operations",
                super::MAX_OPERATIONS
            )));
        }
        self.steps.push(step);
        Ok(())
    }

    /// The slot of `name` or `name[index]`.
    fn slot(&self, name: &str, index: Option<u64>, pos: Pos) -> Result<usize, QasmError> {
        let mut start = 0;
        for (parameter, _) in &self.parameters {
            if parameter.name == name {
                return match (parameter.size, index) {
                    (None, None) => Ok(start),
                    (Some(n), Some(i)) if (i as usize) < n => Ok(start + i as usize),
                    (Some(n), Some(i)) => Err(pos.error(format!(
                        "index {i} is out of range for input '{name}' of length {n}"
                    ))),
                    (Some(n), None) => Err(pos.error(format!(
                        "'{name}' is an array of {n} inputs: name one of them, {name}[0] to \
                         {name}[{}]",
                        n - 1
                    ))),
                    (None, Some(_)) => Err(pos.error(format!(
                        "'{name}' is one input, not an array: write {name} without an index"
                    ))),
                };
            }
            start += parameter.len();
        }
        Err(pos.error(format!(
            "unknown parameter '{}': declare it with 'input float[64] {name};' or \
             'input array[float[64], N] {name};' before use",
            describe(name, index)
        )))
    }

    fn finish(self) -> Result<ParameterisedCircuit, QasmError> {
        if self.registers.qubit_count() == 0 {
            return Err(Pos { line: 1, column: 1 }
                .error("the circuit declares no qubits: add 'qubit[N] q;'"));
        }
        let mut slot = 0;
        for (parameter, pos) in &self.parameters {
            for i in 0..parameter.len() {
                if !self.used[slot + i] {
                    let index = parameter.size.map(|_| i as u64);
                    return Err(pos.error(format!(
                        "input '{}' is declared but never used as an angle; use it or remove it",
                        describe(&parameter.name, index)
                    )));
                }
            }
            slot += parameter.len();
        }
        Ok(ParameterisedCircuit {
            qubits: self.registers.qubit_count(),
            parameters: self.parameters.into_iter().map(|(p, _)| p).collect(),
            steps: self.steps,
        })
    }
}

/// The first input an expression refers to: its name, index and place.
fn first_input(expr: &Expr) -> Option<(&str, Option<u64>, Pos)> {
    match expr {
        Expr::Num(_) => None,
        Expr::Param(name, pos) => Some((name, None, *pos)),
        Expr::Element(name, index, pos) => Some((name, Some(*index), *pos)),
        Expr::Neg(e) | Expr::Call(_, e) => first_input(e),
        Expr::Binary(_, a, b) => first_input(a).or_else(|| first_input(b)),
    }
}

fn describe(name: &str, index: Option<u64>) -> String {
    match index {
        Some(i) => format!("{name}[{i}]"),
        None => name.to_owned(),
    }
}

impl ParameterisedCircuit {
    /// The circuit as a layer: the values of the inputs named in `inputs`, in that order, are
    /// the layer's inputs; every other input, in declaration order, is a weight.
    pub fn layer(
        &self,
        inputs: &[String],
        observables: &[Observable],
    ) -> Result<layer::QuantumLayer, CircuitLayerError> {
        for (i, name) in inputs.iter().enumerate() {
            if !self.parameters.iter().any(|p| p.name == *name) {
                let declared: Vec<String> = self
                    .parameters
                    .iter()
                    .map(|p| format!("`{}`", p.name))
                    .collect();
                return Err(CircuitLayerError::UnknownInput {
                    name: name.clone(),
                    declared: if declared.is_empty() {
                        "no inputs".into()
                    } else {
                        declared.join(", ")
                    },
                });
            }
            if inputs[..i].contains(name) {
                return Err(CircuitLayerError::RepeatedInput(name.clone()));
            }
        }
        // Each slot's angle in the layer.
        let mut angles = vec![Angle::Weight(0); self.parameters.iter().map(Parameter::len).sum()];
        let mut starts = Vec::with_capacity(self.parameters.len());
        let mut start = 0;
        for parameter in &self.parameters {
            starts.push(start);
            start += parameter.len();
        }
        let mut next_input = 0;
        for name in inputs {
            let k = self.parameters.iter().position(|p| p.name == *name);
            let k = k.expect("checked above");
            for i in 0..self.parameters[k].len() {
                angles[starts[k] + i] = Angle::Input(next_input);
                next_input += 1;
            }
        }
        let mut next_weight = 0;
        for (k, parameter) in self.parameters.iter().enumerate() {
            if !inputs.contains(&parameter.name) {
                for i in 0..parameter.len() {
                    angles[starts[k] + i] = Angle::Weight(next_weight);
                    next_weight += 1;
                }
            }
        }
        let ops = self
            .steps
            .iter()
            .map(|step| match step {
                Step::Rotation { qubit, axis, slot } => Op::Rotation {
                    qubit: *qubit,
                    axis: *axis,
                    angle: angles[*slot],
                },
                Step::Fixed(gate) => Op::Fixed(gate.clone()),
            })
            .collect();
        Ok(layer::QuantumLayer::new(self.qubits, ops, observables)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_QUBITS: &str = r#"OPENQASM 3.0;
include "stdgates.inc";
input array[float[64], 2] x;
input float[64] theta;
input float[64] phi;
qubit[2] q;
rx(x[0]) q[0];
rx(x[1]) q[1];
ry(theta) q[0];
h q[1];
cx q[0], q[1];
rz(phi) q;
"#;

    fn error(source: &str) -> QasmError {
        parse_parameterised(source).unwrap_err()
    }

    #[test]
    fn inputs_named_by_the_model_feed_it_and_the_others_are_weights() {
        let circuit = parse_parameterised(TWO_QUBITS).unwrap();
        assert_eq!(circuit.qubits, 2);
        let declared: Vec<_> = circuit
            .parameters
            .iter()
            .map(|p| (p.name.as_str(), p.size))
            .collect();
        assert_eq!(declared, [("x", Some(2)), ("theta", None), ("phi", None)]);
        let layer = circuit
            .layer(&["x".into()], &[Observable::Z(0), Observable::Z(1)])
            .unwrap();
        assert_eq!(
            (layer.inputs(), layer.weights(), layer.outputs()),
            (2, 2, 2)
        );
        // The same circuit built by hand: `rz(phi) q;` is one rotation per qubit.
        let cnot = crate::gates::controlled(&crate::gates::x(), 1);
        let rotation = |qubit, axis, angle| Op::Rotation { qubit, axis, angle };
        let by_hand = layer::QuantumLayer::new(
            2,
            vec![
                rotation(0, Axis::X, Angle::Input(0)),
                rotation(1, Axis::X, Angle::Input(1)),
                rotation(0, Axis::Y, Angle::Weight(0)),
                Op::Fixed(Gate::new(vec![1], crate::gates::h())),
                Op::Fixed(Gate::new(vec![0, 1], cnot)),
                rotation(0, Axis::Z, Angle::Weight(1)),
                rotation(1, Axis::Z, Angle::Weight(1)),
            ],
            &[Observable::Z(0), Observable::Z(1)],
        )
        .unwrap();
        assert_eq!(layer, by_hand);
        // Named the other way round, theta is the input and x the weights.
        let swapped = circuit
            .layer(&["theta".into()], &[Observable::Z(0)])
            .unwrap();
        assert_eq!((swapped.inputs(), swapped.weights()), (1, 3));
    }

    #[test]
    fn the_model_must_name_declared_inputs_once() {
        let circuit = parse_parameterised(TWO_QUBITS).unwrap();
        let e = circuit.layer(&["y".into()], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the model names `y` as the circuit's input, but the circuit declares only `x`, \
             `theta`, `phi`"
        );
        let e = circuit.layer(&["x".into(), "x".into()], &[]).unwrap_err();
        assert!(matches!(e, CircuitLayerError::RepeatedInput(_)), "{e}");
    }

    #[test]
    fn mistakes_are_refused_at_their_line_and_column() {
        let header = "OPENQASM 3.0;\ninput float[64] a;\nqubit[2] q;\n";
        let cases = [
            ("rx(b) q[0];", 4, 4, "unknown parameter 'b'"),
            ("rx(a[1]) q[0];", 4, 4, "'a' is one input, not an array"),
            ("rx(2*a) q[0];", 4, 6, "must be the input itself"),
            (
                "u(a, 0, 0) q[0];",
                4,
                3,
                "only rx, ry and rz may take an input",
            ),
            ("rx(a) q[2];", 4, 7, "out of range for register 'q'"),
            (
                "rx(a) q[0];\nmeasure q[0];",
                5,
                1,
                "'measure' is not part of",
            ),
            ("rx(a) q[0];\nfoo q[0];", 5, 1, "unknown gate 'foo'"),
            ("rx(a) q[0];\ncx q[0], q[0];", 5, 10, "used twice"),
            ("h q[0];", 2, 1, "input 'a' is declared but never used"),
        ];
        for (body, line, column, message) in cases {
            let e = error(&format!("{header}{body}"));
            assert!(e.message.contains(message), "{body}: {e}");
            assert_eq!((e.line, e.column), (line, column), "{body}: {e}");
        }
        let e = error("OPENQASM 3.0;\ninput array[float[64], 3] t;\nqubit q;\nry(t[3]) q;");
        assert!(
            e.message
                .contains("index 3 is out of range for input 't' of length 3"),
            "{e}"
        );
        let e = error("OPENQASM 3.0;\ninput array[float[64], 3] t;\nqubit q;\nry(t) q;");
        assert!(e.message.contains("name one of them, t[0] to t[2]"), "{e}");
        let e = error("OPENQASM 2.0;\nqreg q[1];");
        assert!(e.message.contains("OpenQASM 3"), "{e}");
        let e = error("OPENQASM 3.0;\nqubit[21] q;");
        assert!(e.message.contains("at most 20"), "{e}");
        let e = error("OPENQASM 3.0;\ninput float a;\ninput float a;\nqubit q;\nrx(a) q;");
        assert_eq!(
            (e.line, e.message.contains("already declared")),
            (3, true),
            "{e}"
        );
        let e = error("OPENQASM 3.0;\ninclude \"qelib1.inc\";");
        assert!(e.message.contains("stdgates.inc"), "{e}");
        let e = error("OPENQASM 3.0;\n");
        assert!(e.message.contains("no qubits"), "{e}");
    }

    #[test]
    fn constant_gates_and_openqasm_2_registers_are_read() {
        let circuit = parse_parameterised(
            "OPENQASM 3;\nqreg q[2];\ninput angle t;\nu(pi/2, 0, pi) q[0];\nrz(pi/4) q[1];\n\
             barrier q;\nrx(t) q[0];",
        )
        .unwrap();
        let layer = circuit.layer(&[], &[Observable::Z(0)]).unwrap();
        assert_eq!((layer.inputs(), layer.weights()), (0, 1));
        let [Op::Fixed(u), Op::Fixed(rz), rx] = layer.ops() else {
            panic!("three operations: {:?}", layer.ops());
        };
        // u(π/2, 0, π) is H; rz(π/4) is diagonal; the barrier is no operation.
        assert_eq!((&u.qubits, &rz.qubits), (&vec![0], &vec![1]));
        let h = crate::gates::h();
        assert!(
            u.matrix.iter().zip(&h).all(|(a, b)| (a - b).norm() < 1e-12),
            "{u:?}"
        );
        assert!(rz.is_diagonal(), "{rz:?}");
        let weight = Angle::Weight(0);
        assert_eq!(
            rx,
            &Op::Rotation {
                qubit: 0,
                axis: Axis::X,
                angle: weight
            }
        );
    }
}
