//! A parameterised circuit as a differentiable layer: expectation values over a batch of inputs,
//! and their gradients with respect to the inputs and the shared weights by adjoint
//! differentiation (Jones and Gacon, arXiv:2009.02823), with parameter-shift as the reference.
//!
//! The layer maps (x, θ) to ⟨ψ(x, θ)|O_k|ψ(x, θ)⟩ for each observable O_k, with ψ = U_L…U_1|0…0⟩.
//! Backward is a vector-Jacobian product: given dL/d⟨O_k⟩ = g_k, one forward sweep makes ψ and
//! λ = Σ g_k O_k ψ, and one backward sweep undoes each gate on both; a rotation exp(-i s A/2)
//! about axis A with angle s adds Im⟨λ|A|φ⟩ to dL/ds, φ being the state just after it. Two
//! statevectors, and no third: A acts on φ inside the inner product.
//!
//! Double precision, on the CPU (samples of a batch in parallel) or on a GPU (the batch's
//! statevectors side by side in its memory: `backend::cuda`); [`Simulator`] picks.

use std::sync::Arc;

use num_complex::Complex;
use rayon::prelude::*;

use crate::backend::cuda::CudaBackend;

use crate::bits::{deposit, insert_zeros};
use crate::circuit::{C64, Gate};
use crate::gates;
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

/// Where a layer's batch is simulated.
#[derive(Clone, Default)]
pub enum Simulator {
    /// The CPU, samples in parallel.
    #[default]
    Cpu,
    /// A GPU, with CHIMERA's CUDA kernels.
    Cuda(Arc<CudaBackend>),
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(gpu) => f.write_str(&crate::backend::Backend::describe(gpu.as_ref())),
        }
    }
}

impl Simulator {
    /// [`QuantumLayer::forward`] here.
    pub fn forward(
        &self,
        layer: &QuantumLayer,
        inputs: &[f64],
        weights: &[f64],
    ) -> Result<Vec<f64>, LayerError> {
        match self {
            Self::Cpu => layer.forward(inputs, weights),
            Self::Cuda(gpu) => gpu.layer_forward(layer, inputs, weights),
        }
    }

    /// [`QuantumLayer::backward`] here.
    pub fn backward(
        &self,
        layer: &QuantumLayer,
        inputs: &[f64],
        weights: &[f64],
        upstream: &[f64],
    ) -> Result<(Vec<f64>, Gradients), LayerError> {
        match self {
            Self::Cpu => layer.backward(inputs, weights, upstream),
            Self::Cuda(gpu) => gpu.layer_backward(layer, inputs, weights, upstream),
        }
    }
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
pub(crate) struct SplitTerms {
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

    pub(crate) fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Each observable's Pauli terms.
    pub(crate) fn observable_terms(&self) -> &[Vec<(f64, PauliString)>] {
        &self.observables
    }

    /// The observables' terms as they are evaluated.
    pub(crate) fn split_terms(&self) -> SplitTerms {
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
    pub(crate) fn samples(&self, inputs: &[f64], weights: &[f64]) -> Result<usize, LayerError> {
        self.check("weights", self.weights, weights.len())?;
        // A layer with no inputs runs one sample.
        let samples = inputs.len().checked_div(self.inputs).unwrap_or(1);
        self.check("inputs", samples * self.inputs, inputs.len())?;
        Ok(samples)
    }

    /// ⟨O_k⟩ for each sample (samples × outputs).
    pub fn forward(&self, inputs: &[f64], weights: &[f64]) -> Result<Vec<f64>, LayerError> {
        let samples = self.samples(inputs, weights)?;
        Ok((0..samples)
            .into_par_iter()
            .flat_map_iter(|s| {
                let x = self.sample(inputs, s);
                self.expectations(&self.state(x, weights))
            })
            .collect())
    }

    /// The outputs, and the gradients of a loss whose gradient with respect to the outputs is
    /// `upstream` (samples × outputs): the adjoint method.
    pub fn backward(
        &self,
        inputs: &[f64],
        weights: &[f64],
        upstream: &[f64],
    ) -> Result<(Vec<f64>, Gradients), LayerError> {
        let samples = self.samples_with_upstream(inputs, weights, upstream)?;
        let per_sample: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = (0..samples)
            .into_par_iter()
            .map(|s| {
                let x = self.sample(inputs, s);
                let g = &upstream[s * self.outputs()..(s + 1) * self.outputs()];
                self.adjoint(x, weights, g)
            })
            .collect();
        let mut outputs = Vec::with_capacity(samples * self.outputs());
        let mut gradients = Gradients {
            inputs: Vec::with_capacity(inputs.len()),
            weights: vec![0.0; self.weights],
        };
        for (values, dx, dw) in per_sample {
            outputs.extend(values);
            gradients.inputs.extend(dx);
            for (total, d) in gradients.weights.iter_mut().zip(dw) {
                *total += d;
            }
        }
        Ok((outputs, gradients))
    }

    /// The same gradients by the parameter-shift rule: each rotation's angle shifted by ±π/2,
    /// two circuits per rotation. The reference the adjoint method is checked against.
    pub fn parameter_shift(
        &self,
        inputs: &[f64],
        weights: &[f64],
        upstream: &[f64],
    ) -> Result<Gradients, LayerError> {
        let samples = self.samples_with_upstream(inputs, weights, upstream)?;
        let mut gradients = Gradients {
            inputs: vec![0.0; inputs.len()],
            weights: vec![0.0; self.weights],
        };
        let shift = std::f64::consts::FRAC_PI_2;
        for s in 0..samples {
            let x = self.sample(inputs, s);
            let g = &upstream[s * self.outputs()..(s + 1) * self.outputs()];
            for (at, op) in self.ops.iter().enumerate() {
                let Op::Rotation { angle, .. } = op else {
                    continue;
                };
                let shifted = |by: f64| {
                    let state = self.state_shifted(x, weights, Some((at, by)));
                    let values = self.expectations(&state);
                    values.iter().zip(g).map(|(v, g)| v * g).sum::<f64>()
                };
                let d = (shifted(shift) - shifted(-shift)) / 2.0;
                match *angle {
                    Angle::Input(i) => gradients.inputs[s * self.inputs + i] += d,
                    Angle::Weight(w) => gradients.weights[w] += d,
                }
            }
        }
        Ok(gradients)
    }

    /// [`Self::samples`], with the upstream gradients checked to be one per output of each.
    pub(crate) fn samples_with_upstream(
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

    fn sample<'a>(&self, inputs: &'a [f64], s: usize) -> &'a [f64] {
        &inputs[s * self.inputs..(s + 1) * self.inputs]
    }

    fn angle(angle: Angle, x: &[f64], weights: &[f64]) -> f64 {
        match angle {
            Angle::Input(i) => x[i],
            Angle::Weight(w) => weights[w],
        }
    }

    fn state(&self, x: &[f64], weights: &[f64]) -> Vec<C64> {
        self.state_shifted(x, weights, None)
    }

    /// ψ, with the angle of the rotation at `shift.0` moved by `shift.1`.
    fn state_shifted(&self, x: &[f64], weights: &[f64], shift: Option<(usize, f64)>) -> Vec<C64> {
        let mut state = vec![C64::new(0.0, 0.0); 1 << self.qubits];
        state[0] = C64::new(1.0, 0.0);
        for (at, op) in self.ops.iter().enumerate() {
            let by = shift.filter(|(s, _)| *s == at).map_or(0.0, |(_, by)| by);
            apply(&mut state, op, x, weights, by, false);
        }
        state
    }

    /// Every observable's value, the diagonal terms (Z products) of all of them in one pass.
    fn expectations(&self, state: &[C64]) -> Vec<f64> {
        let mut values = vec![0.0; self.outputs()];
        let SplitTerms { diagonal, other } = self.split_terms();
        for (i, a) in state.iter().enumerate() {
            let p = a.norm_sqr();
            for &(k, c, sign) in &diagonal {
                let parity = (i as u64 & sign).count_ones() % 2;
                values[k] += if parity == 0 { c * p } else { -c * p };
            }
        }
        for (k, c, p) in other {
            values[k] += c * crate::state::expectation(state, &p);
        }
        values
    }

    /// One sample's outputs and its gradients (inputs, weights) for upstream gradients `g`.
    fn adjoint(&self, x: &[f64], weights: &[f64], g: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut phi = self.state(x, weights);
        let values = self.expectations(&phi);
        let mut lambda = vec![C64::new(0.0, 0.0); phi.len()];
        for (terms, g) in self.observables.iter().zip(g) {
            for (c, p) in terms {
                add_pauli(&mut lambda, &phi, p, g * c);
            }
        }
        let (mut dx, mut dw) = (vec![0.0; self.inputs], vec![0.0; self.weights]);
        for op in self.ops.iter().rev() {
            if let Op::Rotation { qubit, axis, angle } = *op {
                let theta = Self::angle(angle, x, weights);
                let d = undo_rotation(&mut phi, &mut lambda, qubit, axis, theta);
                match angle {
                    Angle::Input(i) => dx[i] += d,
                    Angle::Weight(w) => dw[w] += d,
                }
            } else {
                apply(&mut phi, op, x, weights, 0.0, true);
                apply(&mut lambda, op, x, weights, 0.0, true);
            }
        }
        (values, dx, dw)
    }
}

/// `out += coefficient · P · state`.
fn add_pauli(out: &mut [C64], state: &[C64], p: &PauliString, coefficient: f64) {
    let phase = p.phase() * coefficient;
    let (flip, sign) = (p.flip as usize, p.sign as usize);
    for (i, a) in state.iter().enumerate() {
        let term = phase * a;
        if (i & sign).count_ones() % 2 == 0 {
            out[i ^ flip] += term;
        } else {
            out[i ^ flip] -= term;
        }
    }
}

/// For the rotation exp(-iθA/2) about `axis` on `qubit`, just applied to φ: Im⟨λ|A|φ⟩, its
/// contribution to the gradient, and the rotation undone on φ and λ, in one pass over both
/// (the backward sweep's time is mostly these passes over memory).
fn undo_rotation(phi: &mut [C64], lambda: &mut [C64], qubit: usize, axis: Axis, theta: f64) -> f64 {
    let [m00, m01, m10, m11] = match rotation_matrix(axis, -theta)[..] {
        [a, b, c, d] => [a, b, c, d],
        _ => unreachable!("a one-qubit matrix has 4 entries"),
    };
    let i = C64::new(0.0, 1.0);
    let half = 1 << qubit;
    let mut overlap = C64::new(0.0, 0.0);
    for (phis, lambdas) in phi
        .chunks_exact_mut(2 * half)
        .zip(lambda.chunks_exact_mut(2 * half))
    {
        let (phi0, phi1) = phis.split_at_mut(half);
        let (lambda0, lambda1) = lambdas.split_at_mut(half);
        for (((p0, p1), l0), l1) in phi0.iter_mut().zip(phi1).zip(lambda0).zip(lambda1) {
            // (Aφ) on the pair: Z keeps the amplitudes with a sign, X swaps them, Y does both
            // with a factor i (Y|0⟩ = i|1⟩, Y|1⟩ = -i|0⟩).
            let (a0, a1) = match axis {
                Axis::Z => (*p0, -*p1),
                Axis::X => (*p1, *p0),
                Axis::Y => (-i * *p1, i * *p0),
            };
            overlap += l0.conj() * a0 + l1.conj() * a1;
            (*p0, *p1) = (m00 * *p0 + m01 * *p1, m10 * *p0 + m11 * *p1);
            (*l0, *l1) = (m00 * *l0 + m01 * *l1, m10 * *l0 + m11 * *l1);
        }
    }
    overlap.im
}

fn rotation_matrix(axis: Axis, theta: f64) -> Vec<C64> {
    match axis {
        Axis::X => gates::rx(theta),
        Axis::Y => gates::ry(theta),
        Axis::Z => gates::rz(theta),
    }
}

/// Applies `op` (its inverse when `inverse`) to `state`, a rotation's angle moved by `shift`.
fn apply(state: &mut [C64], op: &Op, x: &[f64], weights: &[f64], shift: f64, inverse: bool) {
    match op {
        Op::Rotation { qubit, axis, angle } => {
            let mut theta = QuantumLayer::angle(*angle, x, weights) + shift;
            if inverse {
                theta = -theta;
            }
            apply_matrix(state, &[*qubit], &rotation_matrix(*axis, theta));
        }
        Op::Fixed(gate) if inverse => {
            let inverse = gate.adjoint();
            apply_matrix(state, &inverse.qubits, &inverse.matrix);
        }
        Op::Fixed(gate) => apply_matrix(state, &gate.qubits, &gate.matrix),
    }
}

/// Applies the dense `matrix` on `qubits` (bit j of its index is `qubits[j]`).
fn apply_matrix(state: &mut [C64], qubits: &[usize], matrix: &[C64]) {
    if let [qubit] = *qubits {
        return apply_one_qubit(state, qubit, matrix);
    }
    match permutation(matrix, 1 << qubits.len()) {
        Some(images) => permute(state, qubits, &images),
        None => apply_dense(state, qubits, matrix),
    }
}

/// [`apply_matrix`] for any matrix: each group of amplitudes gathered and multiplied.
fn apply_dense(state: &mut [C64], qubits: &[usize], matrix: &[C64]) {
    let d = 1 << qubits.len();
    let mut sorted = qubits.to_vec();
    sorted.sort_unstable();
    let offsets: Vec<usize> = (0..d).map(|j| deposit(j, qubits)).collect();
    let mut group = vec![Complex::new(0.0, 0.0); d];
    for g in 0..state.len() >> qubits.len() {
        let base = insert_zeros(g, &sorted);
        for (j, o) in offsets.iter().enumerate() {
            group[j] = state[base | o];
        }
        for (r, o) in offsets.iter().enumerate() {
            let row = &matrix[r * d..(r + 1) * d];
            state[base | o] = row.iter().zip(&group).map(|(m, a)| m * a).sum();
        }
    }
}

/// A 2x2 `matrix` on `qubit`: amplitude pairs 2^qubit apart, block by block, with no index
/// arithmetic per pair (most of a layer's gates are rotations).
fn apply_one_qubit(state: &mut [C64], qubit: usize, matrix: &[C64]) {
    let half = 1 << qubit;
    let [m00, m01, m10, m11] = [matrix[0], matrix[1], matrix[2], matrix[3]];
    for block in state.chunks_exact_mut(2 * half) {
        let (zeros, ones) = block.split_at_mut(half);
        for (a0, a1) in zeros.iter_mut().zip(ones) {
            let (v0, v1) = (*a0, *a1);
            *a0 = m00 * v0 + m01 * v1;
            *a1 = m10 * v0 + m11 * v1;
        }
    }
}

/// For a permutation matrix (one 1 in each row, zeros elsewhere: CNOT, SWAP, Toffoli), the
/// column each row takes its amplitude from.
fn permutation(matrix: &[C64], d: usize) -> Option<Vec<usize>> {
    let one = C64::new(1.0, 0.0);
    (0..d)
        .map(|r| {
            let row = &matrix[r * d..(r + 1) * d];
            let c = row.iter().position(|&m| m == one)?;
            row.iter()
                .enumerate()
                .all(|(j, &m)| j == c || m == C64::new(0.0, 0.0))
                .then_some(c)
        })
        .collect()
}

/// Moves amplitudes as the permutation `images` on `qubits` does, touching only the groups'
/// amplitudes it moves.
fn permute(state: &mut [C64], qubits: &[usize], images: &[usize]) {
    let mut sorted = qubits.to_vec();
    sorted.sort_unstable();
    let moved: Vec<(usize, usize)> = (images.iter().enumerate())
        .filter(|&(r, &c)| r != c)
        .map(|(r, &c)| (deposit(r, qubits), deposit(c, qubits)))
        .collect();
    let mut group = vec![C64::new(0.0, 0.0); moved.len()];
    for g in 0..state.len() >> qubits.len() {
        let base = insert_zeros(g, &sorted);
        for (slot, &(_, from)) in group.iter_mut().zip(&moved) {
            *slot = state[base | from];
        }
        for (&value, &(to, _)) in group.iter().zip(&moved) {
            state[base | to] = value;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::{Rng, SeedableRng};

    fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
        (rng.next_u64() % n as u64) as usize
    }

    fn cnot(control: usize, target: usize) -> Op {
        Op::Fixed(Gate::new(
            vec![control, target],
            gates::controlled(&gates::x(), 1),
        ))
    }

    fn rotation(qubit: usize, axis: Axis, angle: Angle) -> Op {
        Op::Rotation { qubit, axis, angle }
    }

    #[test]
    fn ry_on_zero_gives_cos_and_its_derivative() {
        let layer = QuantumLayer::new(
            1,
            vec![rotation(0, Axis::Y, Angle::Weight(0))],
            &[Observable::Z(0)],
        )
        .unwrap();
        for t in [-2.0, -0.3, 0.0, 0.7, 1.9, 3.0] {
            let (values, gradients) = layer.backward(&[], &[t], &[1.0]).unwrap();
            assert!((values[0] - f64::cos(t)).abs() < 1e-12, "{t}");
            assert!((gradients.weights[0] + f64::sin(t)).abs() < 1e-12, "{t}");
        }
    }

    #[test]
    fn rx_rx_cnot_gives_the_textbook_values_and_gradients() {
        let layer = QuantumLayer::new(
            2,
            vec![
                rotation(0, Axis::X, Angle::Input(0)),
                rotation(1, Axis::X, Angle::Input(1)),
                cnot(0, 1),
            ],
            &[Observable::Z(0), Observable::Z(1)],
        )
        .unwrap();
        let (a, b) = (0.4, -1.3);
        let values = layer.forward(&[a, b], &[]).unwrap();
        assert!((values[0] - a.cos()).abs() < 1e-12);
        assert!((values[1] - a.cos() * b.cos()).abs() < 1e-12);
        // d<Z1>/da = -sin a cos b, d<Z1>/db = -cos a sin b.
        let (_, gradients) = layer.backward(&[a, b], &[], &[0.0, 1.0]).unwrap();
        assert!((gradients.inputs[0] + a.sin() * b.cos()).abs() < 1e-12);
        assert!((gradients.inputs[1] + a.cos() * b.sin()).abs() < 1e-12);
    }

    /// A random circuit of every kind of op, with inputs and weights used more than once.
    pub(crate) fn random_layer(rng: &mut ChaCha8Rng, qubits: usize) -> QuantumLayer {
        let mut ops = Vec::new();
        for _ in 0..6 * qubits {
            let qubit = below(rng, qubits);
            let axis = [Axis::X, Axis::Y, Axis::Z][below(rng, 3)];
            let op = match below(rng, 5) {
                0 => rotation(qubit, axis, Angle::Input(below(rng, 3))),
                1 | 2 => rotation(qubit, axis, Angle::Weight(below(rng, 4))),
                3 => Op::Fixed(Gate::new(vec![qubit], gates::h())),
                _ => {
                    let other = (qubit + 1 + below(rng, qubits - 1)) % qubits;
                    let two = [gates::controlled(&gates::x(), 1), gates::rzz(0.37)];
                    Op::Fixed(Gate::new(vec![qubit, other], two[below(rng, 2)].clone()))
                }
            };
            ops.push(op);
        }
        ops.push(rotation(0, Axis::Y, Angle::Input(2)));
        ops.push(rotation(1, Axis::Z, Angle::Weight(3)));
        let sum = PauliSum::parse("0.5*X0 Y1 - 0.25*Z1 + 0.75*Y0 X2").unwrap();
        let observables = [Observable::Z(0), Observable::ZZ(1, 2), Observable::Sum(sum)];
        QuantumLayer::new(qubits, ops, &observables).unwrap()
    }

    pub(crate) fn random_values(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 6.0 - 3.0)
            .collect()
    }

    #[test]
    fn adjoint_parameter_shift_and_finite_differences_agree_on_random_circuits() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for trial in 0..20 {
            let layer = random_layer(&mut rng, 3 + trial % 3);
            let samples = 3;
            let x = random_values(&mut rng, samples * layer.inputs());
            let w = random_values(&mut rng, layer.weights());
            let g = random_values(&mut rng, samples * layer.outputs());
            let (values, adjoint) = layer.backward(&x, &w, &g).unwrap();
            assert_eq!(values, layer.forward(&x, &w).unwrap());
            let shift = layer.parameter_shift(&x, &w, &g).unwrap();

            // Central differences of the loss Σ g·outputs.
            let loss = |x: &[f64], w: &[f64]| -> f64 {
                let out = layer.forward(x, w).unwrap();
                out.iter().zip(&g).map(|(o, g)| o * g).sum()
            };
            let h = 1e-6;
            let difference = |i: usize, of_weights: bool| {
                let (mut plus, mut minus) = ((x.clone(), w.clone()), (x.clone(), w.clone()));
                let (p, m) = if of_weights {
                    (&mut plus.1[i], &mut minus.1[i])
                } else {
                    (&mut plus.0[i], &mut minus.0[i])
                };
                *p += h;
                *m -= h;
                (loss(&plus.0, &plus.1) - loss(&minus.0, &minus.1)) / (2.0 * h)
            };
            let compared = [
                ("input", &adjoint.inputs, &shift.inputs, false),
                ("weight", &adjoint.weights, &shift.weights, true),
            ];
            for (what, adjoint, shift, of_weights) in compared {
                for (i, d) in adjoint.iter().enumerate() {
                    assert!((d - shift[i]).abs() < 1e-10, "trial {trial} {what} {i}");
                    let numeric = difference(i, of_weights);
                    assert!((d - numeric).abs() < 1e-6, "trial {trial} {what} {i}");
                }
            }
        }
    }

    #[test]
    fn a_batch_is_its_samples_one_by_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let layer = random_layer(&mut rng, 4);
        let samples = 5;
        let x = random_values(&mut rng, samples * layer.inputs());
        let w = random_values(&mut rng, layer.weights());
        let g = random_values(&mut rng, samples * layer.outputs());
        let (values, batch) = layer.backward(&x, &w, &g).unwrap();
        let mut weights = vec![0.0; layer.weights()];
        for s in 0..samples {
            let xs = &x[s * layer.inputs()..(s + 1) * layer.inputs()];
            let gs = &g[s * layer.outputs()..(s + 1) * layer.outputs()];
            let (v, one) = layer.backward(xs, &w, gs).unwrap();
            assert_eq!(v, values[s * layer.outputs()..(s + 1) * layer.outputs()]);
            assert_eq!(
                one.inputs,
                batch.inputs[s * layer.inputs()..(s + 1) * layer.inputs()]
            );
            for (total, d) in weights.iter_mut().zip(one.weights) {
                *total += d;
            }
        }
        for (a, b) in weights.iter().zip(&batch.weights) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn bad_shapes_and_qubits_are_refused_with_what_is_wrong() {
        let ops = vec![rotation(0, Axis::X, Angle::Input(1)), cnot(0, 1)];
        let layer = QuantumLayer::new(2, ops.clone(), &[Observable::Z(1)]).unwrap();
        assert_eq!((layer.inputs(), layer.weights()), (2, 0));
        let error = layer.forward(&[0.1, 0.2, 0.3], &[]).unwrap_err();
        assert_eq!(error.to_string(), "inputs: expected 2 values, got 3");
        let error = layer.backward(&[0.1, 0.2], &[], &[1.0, 2.0]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "upstream gradients: expected 1 values, got 2"
        );
        assert_eq!(
            QuantumLayer::new(1, ops.clone(), &[]).unwrap_err(),
            LayerError::QubitOutOfRange {
                op: 1,
                qubit: 1,
                qubits: 1
            }
        );
        assert_eq!(
            QuantumLayer::new(2, ops.clone(), &[Observable::ZZ(0, 2)]).unwrap_err(),
            LayerError::ObservableOutOfRange {
                index: 0,
                qubit: 2,
                qubits: 2
            }
        );
        assert_eq!(
            QuantumLayer::new(21, ops, &[]).unwrap_err(),
            LayerError::TooManyQubits(21)
        );
    }

    #[test]
    fn the_fast_paths_equal_the_dense_product() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut random = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
        let state: Vec<C64> = (0..32).map(|_| C64::new(random(), random())).collect();
        let cases: Vec<(Vec<usize>, Vec<C64>)> = vec![
            (vec![0], gates::u(0.3, 1.1, -0.7)),
            (vec![2], gates::ry(0.9)),
            (vec![4], gates::h()),
            (vec![3, 1], gates::controlled(&gates::x(), 1)),
            (vec![0, 4], gates::swap()),
            (vec![4, 0, 2], gates::controlled(&gates::x(), 2)),
            (vec![1, 3], gates::rzz(0.4)),
        ];
        for (qubits, matrix) in cases {
            let (mut fast, mut dense) = (state.clone(), state.clone());
            apply_matrix(&mut fast, &qubits, &matrix);
            apply_dense(&mut dense, &qubits, &matrix);
            let gap = fast
                .iter()
                .zip(&dense)
                .map(|(a, b)| (a - b).norm())
                .fold(0.0, f64::max);
            assert!(gap < 1e-15, "{qubits:?}: {gap}");
            assert_ne!(fast, state, "{qubits:?} changed nothing");
        }
    }

    /// The largest layer: RY(x_q) then RZ(w_q) on each of 20 qubits is a product state, whose
    /// ⟨Z_q⟩ = cos x_q and ⟨Z_0 Z_19⟩ = cos x_0 cos x_19 do not depend on the RZ weights.
    #[test]
    fn twenty_qubits_give_the_product_states_values_and_gradients() {
        let n = MAX_QUBITS;
        let rotation = |qubit, axis, angle| Op::Rotation { qubit, axis, angle };
        let ops = (0..n)
            .flat_map(|q| {
                [
                    rotation(q, Axis::Y, Angle::Input(q)),
                    rotation(q, Axis::Z, Angle::Weight(q)),
                ]
            })
            .collect();
        let mut observables: Vec<Observable> = (0..n).map(Observable::Z).collect();
        observables.push(Observable::ZZ(0, n - 1));
        let layer = QuantumLayer::new(n, ops, &observables).unwrap();
        let x: Vec<f64> = (0..n).map(|q| 0.1 + 0.13 * q as f64).collect();
        let (values, gradients) = layer.backward(&x, &[0.7; 20], &[1.0; 21]).unwrap();
        let mut expected_dx: Vec<f64> = x.iter().map(|a| -a.sin()).collect();
        expected_dx[0] -= x[0].sin() * x[n - 1].cos();
        expected_dx[n - 1] -= x[0].cos() * x[n - 1].sin();
        for q in 0..n {
            assert!(
                (values[q] - x[q].cos()).abs() < 1e-12,
                "<Z{q}> = {}",
                values[q]
            );
            assert!(
                (gradients.inputs[q] - expected_dx[q]).abs() < 1e-12,
                "d/dx{q}"
            );
            assert!(gradients.weights[q].abs() < 1e-12, "d/dw{q}");
        }
        assert!((values[n] - x[0].cos() * x[n - 1].cos()).abs() < 1e-12);
    }
}
