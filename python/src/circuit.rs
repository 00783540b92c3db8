//! A circuit handed over from Python: the IR built directly from operation tuples (Qiskit and
//! PennyLane circuits never go through text), or read from OpenQASM 2.

use chimera_circuit::circuit::{C64, Circuit as Ir, Condition, Gate, Op, Register};
use numpy::PyReadonlyArray2;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Widest gate a circuit may hand over: a dense matrix of 2^k × 2^k entries.
const MAX_GATE_QUBITS: usize = 12;

/// One operation as the Python side writes it: (kind, qubits, matrix, clbit, condition), kind
/// being "gate" (qubits, matrix), "measure" (one qubit, clbit) or "reset" (one qubit); the
/// condition, if any, is (first clbit, number of clbits, value).
pub type OpTuple<'py> = (
    String,
    Vec<usize>,
    Option<PyReadonlyArray2<'py, C64>>,
    Option<usize>,
    Option<(usize, usize, u64)>,
);

/// A checked circuit, ready to simulate any number of times.
#[pyclass(frozen, module = "chimera._native")]
pub struct Circuit {
    pub(crate) ir: Ir,
}

#[pymethods]
impl Circuit {
    /// `cregs`: (name, first clbit, size) for each classical register, in declaration order.
    #[new]
    #[pyo3(signature = (num_qubits, num_clbits, ops, cregs=Vec::new()))]
    fn new(
        num_qubits: usize,
        num_clbits: usize,
        ops: Vec<OpTuple<'_>>,
        cregs: Vec<(String, usize, usize)>,
    ) -> PyResult<Self> {
        let shape = Shape {
            num_qubits,
            num_clbits,
        };
        let ops = (ops.into_iter().enumerate())
            .map(|(i, op)| shape.op(op).map_err(|e| at(i, e)))
            .collect::<PyResult<Vec<Op>>>()?;
        let cregs = shape.registers(cregs)?;
        let qregs = vec![Register {
            name: "q".into(),
            start: 0,
            size: num_qubits,
        }];
        Ok(Circuit {
            ir: Ir {
                num_qubits,
                num_clbits,
                qregs,
                cregs,
                ops,
            },
        })
    }

    /// An OpenQASM 2.0 program, read by the engine's own front end.
    #[staticmethod]
    fn from_qasm(source: &str) -> PyResult<Self> {
        chimera_circuit::qasm::parse(source)
            .map(|ir| Circuit { ir })
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    #[getter]
    fn num_qubits(&self) -> usize {
        self.ir.num_qubits
    }

    #[getter]
    fn num_clbits(&self) -> usize {
        self.ir.num_clbits
    }

    /// (name, first clbit, size) for each classical register, in declaration order.
    #[getter]
    fn cregs(&self) -> Vec<(String, usize, usize)> {
        (self.ir.cregs.iter())
            .map(|r| (r.name.clone(), r.start, r.size))
            .collect()
    }

    fn __len__(&self) -> usize {
        self.ir.ops.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "Circuit({} qubits, {} clbits, {} operations)",
            self.ir.num_qubits,
            self.ir.num_clbits,
            self.ir.ops.len()
        )
    }
}

/// `e` said of the operation at `index`.
pub(crate) fn at(index: usize, e: PyErr) -> PyErr {
    Python::attach(|py| PyValueError::new_err(format!("operation {index}: {}", e.value(py))))
}

/// The sizes every operation is checked against (circuits, sweeps' templates and gates to
/// differentiate alike).
pub(crate) struct Shape {
    pub(crate) num_qubits: usize,
    pub(crate) num_clbits: usize,
}

impl Shape {
    fn op(&self, (kind, qubits, matrix, clbit, condition): OpTuple<'_>) -> PyResult<Op> {
        let op = match kind.as_str() {
            "gate" => {
                let matrix = matrix.ok_or_else(|| invalid("a gate needs its matrix"))?;
                Op::Gate(self.gate(qubits, &matrix)?)
            }
            "measure" => Op::Measure {
                qubit: self.one_qubit(&qubits)?,
                clbit: self
                    .clbit(clbit.ok_or_else(|| invalid("a measurement needs its clbit"))?)?,
            },
            "reset" => Op::Reset {
                qubit: self.one_qubit(&qubits)?,
            },
            other => {
                return Err(invalid(format!(
                    "unknown kind {other:?} (expected \"gate\", \"measure\" or \"reset\")"
                )));
            }
        };
        Ok(match condition {
            None => op,
            Some((start, size, value)) => {
                self.clbits(start, size)?;
                Op::If {
                    condition: Condition { start, size, value },
                    op: Box::new(op),
                }
            }
        })
    }

    /// (name, first clbit, size) for each classical register, checked.
    pub(crate) fn registers(&self, cregs: Vec<(String, usize, usize)>) -> PyResult<Vec<Register>> {
        (cregs.into_iter())
            .map(|(name, start, size)| {
                self.clbits(start, size)?;
                Ok(Register { name, start, size })
            })
            .collect()
    }

    pub(crate) fn gate(
        &self,
        qubits: Vec<usize>,
        matrix: &PyReadonlyArray2<'_, C64>,
    ) -> PyResult<Gate> {
        let k = qubits.len();
        if k == 0 || k > MAX_GATE_QUBITS {
            return Err(invalid(format!(
                "a gate acts on 1 to {MAX_GATE_QUBITS} qubits, not {k}"
            )));
        }
        self.distinct_qubits(&qubits)?;
        let matrix = matrix.as_array();
        let dim = 1usize << k;
        if matrix.shape() != [dim, dim] {
            return Err(invalid(format!(
                "a gate on {k} qubits needs a {dim}x{dim} matrix, not {:?}",
                matrix.shape()
            )));
        }
        if let Some(bad) = matrix
            .iter()
            .find(|m| !(m.re.is_finite() && m.im.is_finite()))
        {
            return Err(invalid(format!(
                "the matrix holds {bad}, not a finite number"
            )));
        }
        Ok(Gate::new(qubits, matrix.iter().copied().collect()))
    }

    pub(crate) fn distinct_qubits(&self, qubits: &[usize]) -> PyResult<()> {
        for (i, &q) in qubits.iter().enumerate() {
            if q >= self.num_qubits {
                return Err(invalid(format!(
                    "qubit {q} is outside the circuit's {} qubits",
                    self.num_qubits
                )));
            }
            if qubits[..i].contains(&q) {
                return Err(invalid(format!("qubit {q} is named twice")));
            }
        }
        Ok(())
    }

    pub(crate) fn one_qubit(&self, qubits: &[usize]) -> PyResult<usize> {
        match qubits {
            [q] => self.distinct_qubits(qubits).map(|()| *q),
            _ => Err(invalid(format!("expected one qubit, got {qubits:?}"))),
        }
    }

    pub(crate) fn clbit(&self, clbit: usize) -> PyResult<usize> {
        self.clbits(clbit, 1).map(|()| clbit)
    }

    pub(crate) fn clbits(&self, start: usize, size: usize) -> PyResult<()> {
        if size == 0 || start.saturating_add(size) > self.num_clbits || size > 64 {
            return Err(invalid(format!(
                "clbits {start}..{} are outside the circuit's {} clbits (or wider than 64)",
                start.saturating_add(size),
                self.num_clbits
            )));
        }
        Ok(())
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> PyErr {
    PyValueError::new_err(message.into())
}
