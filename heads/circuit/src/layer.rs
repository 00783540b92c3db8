//! A parameterised circuit as a layer of a model: its operations (rotations whose angles are the
//! sample's inputs or shared weights, and fixed gates), the observables it is read out with, and
//! the checks on its shape. Simulating it is a backend's work (`chimera-quantum`'s `adjoint`).

use crate::circuit::Gate;
use crate::pauli::{PauliString, PauliSum};

/// The most qubits a layer may have: a sample's states are 2 × 16 MiB at 20.
pub const MAX_QUBITS: usize = 20;

/// Where a rotation's angle comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Angle {
    /// The sample's input feature.
    Input(usize),
    /// A weight, shared by every sample.
    Weight(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    X,
    Y,
    Z,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// exp(-i angle A / 2) on `qubit`: RX, RY or RZ.
    Rotation {
        qubit: usize,
        axis: Axis,
        angle: Angle,
    },
    /// A gate with no parameter (CNOT, H, …).
    Fixed(Gate),
}

/// What the layer measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Observable {
    /// Pauli-Z of one qubit.
    Z(usize),
    /// Z_i Z_j.
    ZZ(usize, usize),
    /// A weighted Pauli sum.
    Sum(PauliSum),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    #[error("a quantum layer of {0} qubits: at most {MAX_QUBITS} are allowed")]
    TooManyQubits(usize),
    #[error("operation {op} acts on qubit {qubit}, but the layer has {qubits} qubits (0 to {})", qubits - 1)]
    QubitOutOfRange {
        op: usize,
        qubit: usize,
        qubits: usize,
    },
    #[error("observable {index} names qubit {qubit}, but the layer has {qubits} qubits")]
    ObservableOutOfRange {
        index: usize,
        qubit: usize,
        qubits: usize,
    },
    #[error("{what}: expected {expected} values, got {got}")]
    Shape {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("the quantum layer's GPU simulation failed: {0}")]
    Device(String),
}

/// A circuit with inputs and weights, and the observables it is read out with.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantumLayer {
    qubits: usize,
    ops: Vec<Op>,
    /// Each observable's Pauli terms.
    observables: Vec<Vec<(f64, PauliString)>>,
    inputs: usize,
    weights: usize,
}

/// A layer's observable terms: the diagonal ones (Z products) as (observable, coefficient, sign
/// mask), which one pass over a state reads together, and the others (with X or Y factors) as
/// (observable, coefficient, string), a pass each.
pub struct SplitTerms {
    pub diagonal: Vec<(usize, f64, u64)>,
    pub other: Vec<(usize, f64, PauliString)>,
}

/// Gradients of a loss with respect to a batch's inputs (samples × inputs) and the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    pub inputs: Vec<f64>,
    pub weights: Vec<f64>,
}

fn terms(observable: &Observable) -> Vec<(f64, PauliString)> {
    let z = |qubits: &[usize]| PauliString {
        flip: 0,
        sign: qubits.iter().fold(0, |m, q| m | 1 << q),
        y_count: 0,
    };
    match observable {
        Observable::Z(q) => vec![(1.0, z(&[*q]))],
        Observable::ZZ(a, b) => vec![(1.0, z(&[*a, *b]))],
        Observable::Sum(sum) => sum.terms.clone(),
    }
}

fn highest_qubit(mask: u64) -> Option<usize> {
    (mask != 0).then(|| 63 - mask.leading_zeros() as usize)
}

impl QuantumLayer {
    /// A layer of `qubits` qubits; inputs and weights are as many as the highest index the
    /// rotations name, plus one.
    pub fn new(
        qubits: usize,
        ops: Vec<Op>,
        observables: &[Observable],
    ) -> Result<Self, LayerError> {
        if qubits > MAX_QUBITS || qubits == 0 {
            return Err(LayerError::TooManyQubits(qubits));
        }
        let (mut inputs, mut weights) = (0, 0);
        for (op, operation) in ops.iter().enumerate() {
            let acted: Vec<usize> = match operation {
                Op::Rotation { qubit, angle, .. } => {
                    match *angle {
                        Angle::Input(i) => inputs = inputs.max(i + 1),
                        Angle::Weight(w) => weights = weights.max(w + 1),
                    }
                    vec![*qubit]
                }
                Op::Fixed(gate) => gate.qubits.clone(),
            };
            if let Some(&qubit) = acted.iter().find(|&&q| q >= qubits) {
                return Err(LayerError::QubitOutOfRange { op, qubit, qubits });
            }
        }
        let observables: Vec<_> = observables.iter().map(terms).collect();
        for (index, terms) in observables.iter().enumerate() {
            let mask = terms.iter().fold(0, |m, (_, p)| m | p.flip | p.sign);
            if let Some(qubit) = highest_qubit(mask).filter(|&q| q >= qubits) {
                return Err(LayerError::ObservableOutOfRange {
                    index,
                    qubit,
                    qubits,
                });
            }
        }
        Ok(Self {
            qubits,
            ops,
            observables,
            inputs,
            weights,
        })
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }

    pub fn weights(&self) -> usize {
        self.weights
    }

    pub fn outputs(&self) -> usize {
        self.observables.len()
    }

    pub fn qubits(&self) -> usize {
        self.qubits
    }

    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Each observable's Pauli terms.
    pub fn observable_terms(&self) -> &[Vec<(f64, PauliString)>] {
        &self.observables
    }

    /// The observables' terms as they are evaluated.
    pub fn split_terms(&self) -> SplitTerms {
        let all = (self.observables.iter().enumerate())
            .flat_map(|(k, terms)| terms.iter().map(move |&(c, p)| (k, c, p)));
        let (diagonal, other): (Vec<_>, Vec<_>) = all.partition(|(_, _, p)| p.flip == 0);
        SplitTerms {
            diagonal: (diagonal.into_iter())
                .map(|(k, c, p)| (k, c, p.sign))
                .collect(),
            other,
        }
    }

    fn check(&self, what: &'static str, expected: usize, got: usize) -> Result<(), LayerError> {
        if expected == got {
            Ok(())
        } else {
            Err(LayerError::Shape {
                what,
                expected,
                got,
            })
        }
    }

    /// The number of samples in `inputs` (samples × inputs), once the shapes are checked.
    pub fn samples(&self, inputs: &[f64], weights: &[f64]) -> Result<usize, LayerError> {
        self.check("weights", self.weights, weights.len())?;
        // A layer with no inputs runs one sample.
        let samples = inputs.len().checked_div(self.inputs).unwrap_or(1);
        self.check("inputs", samples * self.inputs, inputs.len())?;
        Ok(samples)
    }

    /// [`Self::samples`], with the upstream gradients checked to be one per output of each.
    pub fn samples_with_upstream(
        &self,
        inputs: &[f64],
        weights: &[f64],
        upstream: &[f64],
    ) -> Result<usize, LayerError> {
        let samples = self.samples(inputs, weights)?;
        let expected = samples * self.outputs();
        self.check("upstream gradients", expected, upstream.len())?;
        Ok(samples)
    }

    /// Sample `s`'s inputs.
    pub fn sample<'a>(&self, inputs: &'a [f64], s: usize) -> &'a [f64] {
        &inputs[s * self.inputs..(s + 1) * self.inputs]
    }

    /// A rotation's angle for the sample whose inputs are `x`.
    pub fn angle(angle: Angle, x: &[f64], weights: &[f64]) -> f64 {
        match angle {
            Angle::Input(i) => x[i],
            Angle::Weight(w) => weights[w],
        }
    }
}
