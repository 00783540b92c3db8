//! Parameter sweeps bound in Rust: a circuit handed over once with its parameterised gates named
//! (Qiskit's names, which the engine's OpenQASM front end knows: `rx`, `u`, `cp`, `rzz`…) and
//! each angle a column of a table, one row per point of the sweep; measurements kept. No Python
//! runs per point.

use chimera_circuit::circuit::{Circuit as Ir, Gate, Op, Register};
use chimera_circuit::qasm::{Builtin, qelib1};
use numpy::{PyReadonlyArray2, PyUntypedArrayMethods};

use crate::circuit::{Shape, at, invalid};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// A circuit whose parameterised gates are bound point by point.
#[pyclass(frozen, module = "chimera._native")]
pub struct Template {
    num_qubits: usize,
    num_clbits: usize,
    cregs: Vec<Register>,
    ops: Vec<Step>,
    /// Angle columns each point must have.
    columns: usize,
}

enum Step {
    Measure {
        qubit: usize,
        clbit: usize,
    },
    Fixed(Gate),
    Named {
        qubits: Vec<usize>,
        gate: Builtin,
        columns: Vec<usize>,
    },
}

#[pymethods]
impl Template {
    /// `ops`: for each gate, (qubits, matrix) or (qubits, (name, [angle column for each of its
    /// parameters])); for each measurement, ([qubit], clbit). `columns`: the table's width;
    /// `cregs`: (name, first clbit, size) for each classical register.
    #[new]
    #[pyo3(signature = (num_qubits, ops, columns, num_clbits=0, cregs=Vec::new()))]
    fn new(
        num_qubits: usize,
        ops: Vec<(Vec<usize>, Bound<'_, PyAny>)>,
        columns: usize,
        num_clbits: usize,
        cregs: Vec<(String, usize, usize)>,
    ) -> PyResult<Self> {
        let shape = Shape {
            num_qubits,
            num_clbits,
        };
        let ops = (ops.into_iter().enumerate())
            .map(|(i, (qubits, what))| step(&shape, columns, qubits, &what).map_err(|e| at(i, e)))
            .collect::<PyResult<Vec<_>>>()?;
        let cregs = shape.registers(cregs)?;
        Ok(Template {
            num_qubits,
            num_clbits,
            cregs,
            ops,
            columns,
        })
    }
}

fn step(
    shape: &Shape,
    columns: usize,
    qubits: Vec<usize>,
    what: &Bound<'_, PyAny>,
) -> PyResult<Step> {
    if let Ok(clbit) = what.extract::<usize>() {
        return Ok(Step::Measure {
            qubit: shape.one_qubit(&qubits)?,
            clbit: shape.clbit(clbit)?,
        });
    }
    if let Ok((name, cols)) = what.extract::<(String, Vec<usize>)>() {
        shape.distinct_qubits(&qubits)?;
        let gate =
            qelib1(&name).ok_or_else(|| invalid(format!("no native gate named {name:?}")))?;
        if gate.params != cols.len()
            || gate.qubits != qubits.len()
            || cols.iter().any(|&c| c >= columns)
        {
            return Err(invalid(format!(
                "{name} takes {} angles on {} qubits",
                gate.params, gate.qubits
            )));
        }
        return Ok(Step::Named {
            qubits,
            gate,
            columns: cols,
        });
    }
    Ok(Step::Fixed(shape.gate(qubits, &what.extract()?)?))
}

impl Template {
    /// The circuit at one row of angles.
    pub fn bind(&self, angles: &[f64]) -> Ir {
        let ops = (self.ops.iter())
            .map(|step| match step {
                Step::Measure { qubit, clbit } => Op::Measure {
                    qubit: *qubit,
                    clbit: *clbit,
                },
                Step::Fixed(gate) => Op::Gate(gate.clone()),
                Step::Named {
                    qubits,
                    gate,
                    columns,
                } => {
                    let params: Vec<f64> = columns.iter().map(|&c| angles[c]).collect();
                    Op::Gate(Gate::new(qubits.clone(), (gate.matrix)(&params)))
                }
            })
            .collect();
        Ir {
            num_qubits: self.num_qubits,
            num_clbits: self.num_clbits,
            qregs: vec![Register {
                name: "q".into(),
                start: 0,
                size: self.num_qubits,
            }],
            cregs: self.cregs.clone(),
            ops,
        }
    }

    /// The table's rows, checked against the template's columns.
    pub fn rows<'a>(&self, angles: &'a PyReadonlyArray2<'_, f64>) -> PyResult<Vec<&'a [f64]>> {
        let shape = angles.shape();
        if self.columns == 0 {
            return Ok(vec![&[]; shape[0]]);
        }
        if shape[1] != self.columns {
            return Err(PyValueError::new_err(format!(
                "the angle table has {} columns; the circuit has {}",
                shape[1], self.columns
            )));
        }
        let flat = angles.as_slice().map_err(|_| {
            PyValueError::new_err("the angle table must be a C-contiguous float64 array")
        })?;
        Ok(flat.chunks(self.columns).collect())
    }
}
