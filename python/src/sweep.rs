//! Parameter sweeps bound in Rust: a circuit handed over once with its parameterised gates named
//! (Qiskit's names, which the engine's OpenQASM front end knows: `rx`, `u`, `cp`, `rzz`…) and
//! each angle a column of a table, one row per point of the sweep. No Python runs per point.

use chimera_circuit::circuit::{C64, Circuit as Ir, Gate, Op, Register};
use chimera_circuit::qasm::{Builtin, qelib1};
use numpy::{PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// A circuit whose parameterised gates are bound point by point.
#[pyclass(frozen, module = "chimera._native")]
pub struct Template {
    num_qubits: usize,
    ops: Vec<Step>,
    /// Angle columns each point must have.
    columns: usize,
}

enum Step {
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
    /// parameters])); `columns`: the table's width.
    #[new]
    fn new(
        num_qubits: usize,
        ops: Vec<(Vec<usize>, Bound<'_, PyAny>)>,
        columns: usize,
    ) -> PyResult<Self> {
        let ops = (ops.into_iter().enumerate())
            .map(|(at, (qubits, what))| {
                step(num_qubits, columns, qubits, &what)
                    .map_err(|e| PyValueError::new_err(format!("gate {at}: {e}")))
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Template {
            num_qubits,
            ops,
            columns,
        })
    }
}

fn step(
    num_qubits: usize,
    columns: usize,
    qubits: Vec<usize>,
    what: &Bound<'_, PyAny>,
) -> Result<Step, String> {
    if qubits.is_empty() || qubits.iter().any(|&q| q >= num_qubits) {
        return Err(format!("qubits {qubits:?} of {num_qubits}"));
    }
    if let Ok((name, cols)) = what.extract::<(String, Vec<usize>)>() {
        let gate = qelib1(&name).ok_or_else(|| format!("no native gate named {name:?}"))?;
        if gate.params != cols.len()
            || gate.qubits != qubits.len()
            || cols.iter().any(|&c| c >= columns)
        {
            return Err(format!(
                "{name} takes {} angles on {} qubits",
                gate.params, gate.qubits
            ));
        }
        return Ok(Step::Named {
            qubits,
            gate,
            columns: cols,
        });
    }
    let matrix: PyReadonlyArray2<'_, C64> = what.extract().map_err(|e: PyErr| e.to_string())?;
    let dim = 1usize << qubits.len();
    if matrix.shape() != [dim, dim] {
        return Err(format!(
            "a {:?} matrix on {} qubits",
            matrix.shape(),
            qubits.len()
        ));
    }
    Ok(Step::Fixed(Gate::new(
        qubits,
        matrix.as_array().iter().copied().collect(),
    )))
}

impl Template {
    /// The circuit at one row of angles.
    pub fn bind(&self, angles: &[f64]) -> Ir {
        let ops = (self.ops.iter())
            .map(|step| {
                Op::Gate(match step {
                    Step::Fixed(gate) => gate.clone(),
                    Step::Named {
                        qubits,
                        gate,
                        columns,
                    } => {
                        let params: Vec<f64> = columns.iter().map(|&c| angles[c]).collect();
                        Gate::new(qubits.clone(), (gate.matrix)(&params))
                    }
                })
            })
            .collect();
        Ir {
            num_qubits: self.num_qubits,
            num_clbits: 0,
            qregs: vec![Register {
                name: "q".into(),
                start: 0,
                size: self.num_qubits,
            }],
            cregs: Vec::new(),
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
