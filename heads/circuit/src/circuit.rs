//! The circuit IR: plain data that every front end produces and every backend consumes.

use crate::bits::{deposit, insert_zeros};
use num_complex::Complex;

pub type C64 = Complex<f64>;

/// A unitary on `qubits`, as a dense row-major matrix of dimension 2^k.
///
/// Bit j of a row or column index is the state of `qubits[j]` (Qiskit's little-endian convention),
/// so `cx q[0], q[1]` is the gate with `qubits == [0, 1]` that flips bit 1 when bit 0 is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub qubits: Vec<usize>,
    pub matrix: Vec<C64>,
}

impl Gate {
    pub fn new(qubits: Vec<usize>, matrix: Vec<C64>) -> Gate {
        debug_assert_eq!(matrix.len(), 1 << (2 * qubits.len()));
        Gate { qubits, matrix }
    }

    pub fn dim(&self) -> usize {
        1 << self.qubits.len()
    }

    /// The inverse of the (unitary) gate: its conjugate transpose, on the same qubits.
    pub fn adjoint(&self) -> Gate {
        let d = self.dim();
        let matrix = (0..d * d)
            .map(|rc| self.matrix[(rc % d) * d + rc / d].conj())
            .collect();
        Gate::new(self.qubits.clone(), matrix)
    }

    pub fn is_diagonal(&self) -> bool {
        let d = self.dim();
        self.matrix
            .iter()
            .enumerate()
            .all(|(i, m)| i / d == i % d || m.norm_sqr() == 0.0)
    }

    /// The gate as "apply a narrower gate where all of some control qubits are 1". A qubit is a
    /// control when the matrix is exactly the identity wherever that qubit is 0 (CX, CCX, a
    /// controlled unitary: the matrices are built from exact 0s and 1s there). One target always
    /// stays; the controls come out ascending.
    pub fn split_controls(&self) -> Controlled {
        let mut gate = self.clone();
        let mut controls = Vec::new();
        while gate.qubits.len() > 1 {
            let Some(j) = (0..gate.qubits.len()).find(|&j| gate.is_identity_where_zero(j)) else {
                break;
            };
            controls.push(gate.qubits[j]);
            gate = gate.where_one(j);
        }
        controls.sort_unstable();
        Controlled { controls, gate }
    }

    fn is_identity_where_zero(&self, j: usize) -> bool {
        let d = self.dim();
        let one = C64::new(1.0, 0.0);
        let zero = C64::new(0.0, 0.0);
        (0..d * d).all(|i| {
            let (r, c) = (i / d, i % d);
            (r >> j) & (c >> j) & 1 == 1 || self.matrix[i] == if r == c { one } else { zero }
        })
    }

    /// The gate on the other qubits that acts where qubit bit `j` is 1.
    fn where_one(&self, j: usize) -> Gate {
        let d = self.dim() / 2;
        let full = |x: usize| insert_zeros(x, &[j]) | (1 << j);
        let matrix = (0..d * d)
            .map(|i| self.matrix[full(i / d) * self.dim() + full(i % d)])
            .collect();
        let mut qubits = self.qubits.clone();
        qubits.remove(j);
        Gate::new(qubits, matrix)
    }

    /// For a gate that sends each basis state to one other times a phase (X, SWAP, CX, CCX and
    /// their products): for each row, the column it takes and the factor; `None` for other gates.
    pub fn phased_permutation(&self) -> Option<Vec<(usize, C64)>> {
        let d = self.dim();
        let rows: Option<Vec<(usize, C64)>> = (0..d)
            .map(|r| {
                let row = &self.matrix[r * d..(r + 1) * d];
                let mut nonzero = row.iter().enumerate().filter(|(_, m)| m.norm_sqr() != 0.0);
                match (nonzero.next(), nonzero.next()) {
                    (Some((c, &m)), None) => Some((c, m)),
                    _ => None,
                }
            })
            .collect();
        let rows = rows?;
        let mut taken = vec![false; d];
        rows.iter()
            .all(|&(c, _)| !std::mem::replace(&mut taken[c], true))
            .then_some(rows)
    }

    /// The same unitary with its qubits listed in ascending order (the matrix permuted to match).
    pub fn sorted(&self) -> Gate {
        let mut order: Vec<usize> = (0..self.qubits.len()).collect();
        order.sort_by_key(|&j| self.qubits[j]);
        if order.iter().enumerate().all(|(i, &j)| i == j) {
            return self.clone();
        }
        let d = self.dim();
        // New bit i is old bit order[i].
        let remap = |idx: usize| deposit(idx, &order);
        let mut matrix = vec![C64::new(0.0, 0.0); d * d];
        for r in 0..d {
            for c in 0..d {
                matrix[r * d + c] = self.matrix[remap(r) * d + remap(c)];
            }
        }
        Gate::new(order.iter().map(|&j| self.qubits[j]).collect(), matrix)
    }
}

/// A gate applied only where every control qubit is 1 (see [`Gate::split_controls`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Controlled {
    pub controls: Vec<usize>,
    pub gate: Gate,
}

/// Classical bits `start..start+size` read as an integer (bit `start` least significant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Condition {
    pub start: usize,
    pub size: usize,
    pub value: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Gate(Gate),
    Measure {
        qubit: usize,
        clbit: usize,
    },
    Reset {
        qubit: usize,
    },
    /// The operation runs only when the condition's bits hold its value.
    If {
        condition: Condition,
        op: Box<Op>,
    },
}

/// The unitary gates among `ops`, in order (measurements, resets and conditionals left out).
pub fn gates_in(ops: &[Op]) -> Vec<Gate> {
    ops.iter()
        .filter_map(|op| match op {
            Op::Gate(g) => Some(g.clone()),
            _ => None,
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    pub name: String,
    pub start: usize,
    pub size: usize,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Circuit {
    pub num_qubits: usize,
    pub num_clbits: usize,
    pub qregs: Vec<Register>,
    pub cregs: Vec<Register>,
    pub ops: Vec<Op>,
}

impl Circuit {
    /// True when the circuit is unitary up to measurements at the very end: every measurement is
    /// unconditional, no gate follows a measurement of the same qubit, no bit is written twice, and
    /// the only resets are of qubits still in |0> (a no-op). Such circuits are simulated once and
    /// their shots sampled from the final state.
    pub fn measurements_are_terminal(&self) -> bool {
        let mut measured = vec![false; self.num_qubits];
        let mut touched = vec![false; self.num_qubits];
        let mut written = vec![false; self.num_clbits];
        for op in &self.ops {
            match op {
                Op::Gate(g) if g.qubits.iter().any(|&q| measured[q]) => return false,
                Op::Gate(g) => g.qubits.iter().for_each(|&q| touched[q] = true),
                Op::Reset { qubit } if !touched[*qubit] => {}
                Op::Measure { qubit, clbit } => {
                    if written[*clbit] {
                        return false;
                    }
                    measured[*qubit] = true;
                    touched[*qubit] = true;
                    written[*clbit] = true;
                }
                Op::Reset { .. } | Op::If { .. } => return false,
            }
        }
        true
    }

    pub fn gate_count(&self) -> usize {
        self.ops
            .iter()
            .filter(|op| matches!(op, Op::Gate(_)))
            .count()
    }
}
