//! The hybrid layer on the CPU: each sample's statevector on one thread (samples in parallel),
//! its gates applied by the CPU backend's kernel (`kernel.rs`).
//!
//! What a forward sweep applies alike to every sample (fixed gates, and rotations by a weight,
//! whose angle the batch shares) is fused and prepared once per batch; a rotation by the sample's
//! own input is prepared per sample. The backward sweep undoes each rotation together with its
//! gradient term in one pass over ψ and λ (`undo_rotation`: the adjoint method's own step, which
//! no kernel does), and the fixed gates between two rotations, fused, with the kernel.

use std::marker::PhantomData;

use chimera_circuit::circuit::{C64, Gate};
use chimera_circuit::gates;
use chimera_circuit::layer::{Angle, Axis, Gradients, LayerError, Op, QuantumLayer, SplitTerms};
use chimera_circuit::pauli::PauliString;
use rayon::prelude::*;

use super::kernel::Prepared;
use super::lanes::Lanes;
use super::{CpuReal, DIAGONAL_FUSE_QUBITS, INLINE_AMPLITUDES, Isa, WithLanes, apply_all};
use crate::fuse;

/// Widest fused gate in a layer's sweeps. A layer fuses and prepares its shared gates anew for
/// every batch (its weights change between batches), so wide fused matrices cost more to build
/// than small states save: on the 4-qubit moons model, 3-qubit fusion made training slower than
/// the layer's old loops, 2-qubit fusion did not (benches/RESULTS.md, issue 35).
const FUSE_QUBITS: usize = 2;

/// ⟨O_k⟩ for each sample (samples × outputs).
pub fn forward(
    layer: &QuantumLayer,
    inputs: &[f64],
    weights: &[f64],
) -> Result<Vec<f64>, LayerError> {
    sweeps(layer, Isa::detect()).forward(inputs, weights)
}

/// The outputs, and the gradients of a loss whose gradient with respect to the outputs is
/// `upstream` (samples × outputs): the adjoint method.
pub fn backward(
    layer: &QuantumLayer,
    inputs: &[f64],
    weights: &[f64],
    upstream: &[f64],
) -> Result<(Vec<f64>, Gradients), LayerError> {
    sweeps(layer, Isa::detect()).backward(inputs, weights, upstream)
}

/// The same gradients by the parameter-shift rule: each rotation's angle shifted by ±π/2, two
/// circuits per rotation. The reference the adjoint method is checked against.
pub fn parameter_shift(
    layer: &QuantumLayer,
    inputs: &[f64],
    weights: &[f64],
    upstream: &[f64],
) -> Result<Gradients, LayerError> {
    sweeps(layer, Isa::detect()).parameter_shift(inputs, weights, upstream)
}

/// The layer's evaluation with the kernel's lanes chosen, behind one interface.
trait Evaluate: Sync {
    fn forward(&self, inputs: &[f64], weights: &[f64]) -> Result<Vec<f64>, LayerError>;

    fn backward(
        &self,
        inputs: &[f64],
        weights: &[f64],
        upstream: &[f64],
    ) -> Result<(Vec<f64>, Gradients), LayerError>;

    fn parameter_shift(
        &self,
        inputs: &[f64],
        weights: &[f64],
        upstream: &[f64],
    ) -> Result<Gradients, LayerError>;
}

/// The layer's sweeps with the widest lanes that `isa` and the layer's states allow.
fn sweeps(layer: &QuantumLayer, isa: Isa) -> Box<dyn Evaluate + '_> {
    f64::with_lanes(isa, layer.qubits(), SweepsOf(layer))
}

/// The layer's [`Sweeps`] with the lanes [`CpuReal::with_lanes`] picks.
struct SweepsOf<'a>(&'a QuantumLayer);

impl<'a> WithLanes<f64> for SweepsOf<'a> {
    type Output = Box<dyn Evaluate + 'a>;

    fn run<S: Lanes<F = f64>>(self, isa: Isa) -> Self::Output {
        Box::new(Sweeps::<S> {
            layer: self.0,
            terms: self.0.split_terms(),
            isa,
            lanes: PhantomData,
        })
    }
}

struct Sweeps<'a, S> {
    layer: &'a QuantumLayer,
    /// The observables' terms as every sample's values are read.
    terms: SplitTerms,
    isa: Isa,
    lanes: PhantomData<S>,
}

/// A step of a forward sweep.
enum Step<S: Lanes> {
    /// Gates every sample of the batch applies alike, fused and prepared.
    Shared(Vec<Prepared<S>>),
    /// A rotation by the sample's input `input`.
    ByInput {
        qubit: usize,
        axis: Axis,
        input: usize,
    },
}

/// A step of a backward sweep, from the last operation.
enum Undo<S: Lanes> {
    /// The inverses of the fixed gates between two rotations, fused and prepared.
    Fixed(Vec<Prepared<S>>),
    Rotation {
        qubit: usize,
        axis: Axis,
        angle: Angle,
    },
}

fn rotation(qubit: usize, axis: Axis, theta: f64) -> Gate {
    let matrix = match axis {
        Axis::X => gates::rx(theta),
        Axis::Y => gates::ry(theta),
        Axis::Z => gates::rz(theta),
    };
    Gate::new(vec![qubit], matrix)
}

impl<S: Lanes<F = f64>> Sweeps<'_, S> {
    /// `gates` fused and prepared for the kernel (fused gates' qubits come out ascending, as the
    /// kernel needs).
    fn prepare(&self, gates: &[Gate]) -> Vec<Prepared<S>> {
        (fuse::fuse(gates, FUSE_QUBITS, DIAGONAL_FUSE_QUBITS).iter())
            .map(Prepared::new)
            .collect()
    }

    /// `each(s)` for every sample `s` of `samples`: in parallel, or on the calling thread when the
    /// whole batch is less work than handing it to other threads costs (no more than one gate's
    /// pass over `INLINE_AMPLITUDES` amplitudes, counting each operation as a pass over a state).
    fn each_sample<R: Send>(
        &self,
        samples: usize,
        each: impl Fn(usize) -> R + Sync + Send,
    ) -> Vec<R> {
        let passes = self.layer.ops().len().max(1);
        let work = (samples << self.layer.qubits()).saturating_mul(passes);
        if work <= INLINE_AMPLITUDES {
            (0..samples).map(each).collect()
        } else {
            (0..samples).into_par_iter().map(each).collect()
        }
    }

    /// Every observable's value, the diagonal terms (Z products) of all of them in one pass.
    fn expectations(&self, state: &[C64]) -> Vec<f64> {
        let mut values = vec![0.0; self.layer.outputs()];
        for (i, a) in state.iter().enumerate() {
            let p = a.norm_sqr();
            for &(k, c, sign) in &self.terms.diagonal {
                let parity = (i as u64 & sign).count_ones() % 2;
                values[k] += if parity == 0 { c * p } else { -c * p };
            }
        }
        for &(k, c, ref p) in &self.terms.other {
            values[k] += c * crate::state::expectation(state, p);
        }
        values
    }

    fn apply(&self, state: &mut [C64], gates: &[Prepared<S>]) {
        // SAFETY: the state is this thread's own, 2^qubits amplitudes with qubits at least the
        // lanes' bits (`with_lanes` chose them so), every gate's qubits are below the layer's, and
        // `isa` was detected here.
        unsafe { apply_all(self.isa, gates, state.as_mut_ptr(), state.len()) }
    }

    /// The forward sweep for `weights`: runs of shared gates between the rotations by an input.
    fn forward_steps(&self, weights: &[f64]) -> Vec<Step<S>> {
        let mut steps = Vec::new();
        let mut shared = Vec::new();
        for op in self.layer.ops() {
            match *op {
                Op::Fixed(ref gate) => shared.push(gate.clone()),
                Op::Rotation {
                    qubit,
                    axis,
                    angle: Angle::Weight(w),
                } => shared.push(rotation(qubit, axis, weights[w])),
                Op::Rotation {
                    qubit,
                    axis,
                    angle: Angle::Input(input),
                } => {
                    self.push_shared(&mut steps, &mut shared);
                    steps.push(Step::ByInput { qubit, axis, input });
                }
            }
        }
        self.push_shared(&mut steps, &mut shared);
        steps
    }

    /// The gates gathered in `shared`, fused and prepared as one step, if there are any.
    fn push_shared(&self, steps: &mut Vec<Step<S>>, shared: &mut Vec<Gate>) {
        if !shared.is_empty() {
            steps.push(Step::Shared(self.prepare(shared)));
            shared.clear();
        }
    }

    /// The backward sweep: each rotation, and the fixed gates between, from the last operation
    /// to the first rotation (the gates before it need not be undone: nothing is read after them).
    fn undo_steps(&self) -> Vec<Undo<S>> {
        let mut steps = Vec::new();
        let mut fixed = Vec::new();
        for op in self.layer.ops().iter().rev() {
            match *op {
                Op::Fixed(ref gate) => fixed.push(gate.adjoint()),
                Op::Rotation { qubit, axis, angle } => {
                    if !fixed.is_empty() {
                        steps.push(Undo::Fixed(self.prepare(&fixed)));
                        fixed.clear();
                    }
                    steps.push(Undo::Rotation { qubit, axis, angle });
                }
            }
        }
        steps
    }

    /// |0…0⟩.
    fn zero_state(&self) -> Vec<C64> {
        let mut state = vec![C64::new(0.0, 0.0); 1 << self.layer.qubits()];
        state[0] = C64::new(1.0, 0.0);
        state
    }

    /// ψ for the sample whose inputs are `x`.
    fn state(&self, steps: &[Step<S>], x: &[f64]) -> Vec<C64> {
        let mut state = self.zero_state();
        for step in steps {
            match *step {
                Step::Shared(ref gates) => self.apply(&mut state, gates),
                Step::ByInput { qubit, axis, input } => {
                    let gate = Prepared::new(&rotation(qubit, axis, x[input]));
                    self.apply(&mut state, std::slice::from_ref(&gate));
                }
            }
        }
        state
    }

    /// One sample's outputs and its gradients (inputs, weights) for upstream gradients `g`.
    fn adjoint(
        &self,
        (steps, undo): (&[Step<S>], &[Undo<S>]),
        x: &[f64],
        weights: &[f64],
        g: &[f64],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let layer = self.layer;
        let mut phi = self.state(steps, x);
        let values = self.expectations(&phi);
        let mut lambda = vec![C64::new(0.0, 0.0); phi.len()];
        for (terms, g) in layer.observable_terms().iter().zip(g) {
            for (c, p) in terms {
                add_pauli(&mut lambda, &phi, p, g * c);
            }
        }
        let (mut dx, mut dw) = (vec![0.0; layer.inputs()], vec![0.0; layer.weights()]);
        for step in undo {
            match *step {
                Undo::Fixed(ref gates) => {
                    self.apply(&mut phi, gates);
                    self.apply(&mut lambda, gates);
                }
                Undo::Rotation { qubit, axis, angle } => {
                    let theta = QuantumLayer::angle(angle, x, weights);
                    let d = undo_rotation(&mut phi, &mut lambda, qubit, axis, theta);
                    match angle {
                        Angle::Input(i) => dx[i] += d,
                        Angle::Weight(w) => dw[w] += d,
                    }
                }
            }
        }
        (values, dx, dw)
    }

    /// ψ with the angle of the rotation at `at` moved by `by`, every gate applied one by one.
    fn shifted_state(&self, x: &[f64], weights: &[f64], at: usize, by: f64) -> Vec<C64> {
        let gates: Vec<Gate> = (self.layer.ops().iter().enumerate())
            .map(|(i, op)| match *op {
                Op::Fixed(ref gate) => gate.clone(),
                Op::Rotation { qubit, axis, angle } => {
                    let moved = if i == at { by } else { 0.0 };
                    rotation(qubit, axis, QuantumLayer::angle(angle, x, weights) + moved)
                }
            })
            .collect();
        let prepared: Vec<Prepared<S>> = gates.iter().map(|g| Prepared::new(&g.sorted())).collect();
        let mut state = self.zero_state();
        self.apply(&mut state, &prepared);
        state
    }
}

impl<S: Lanes<F = f64>> Evaluate for Sweeps<'_, S> {
    fn forward(&self, inputs: &[f64], weights: &[f64]) -> Result<Vec<f64>, LayerError> {
        let layer = self.layer;
        let samples = layer.samples(inputs, weights)?;
        let steps = self.forward_steps(weights);
        let per_sample = self.each_sample(samples, |s| {
            self.expectations(&self.state(&steps, layer.sample(inputs, s)))
        });
        Ok(per_sample.concat())
    }

    fn backward(
        &self,
        inputs: &[f64],
        weights: &[f64],
        upstream: &[f64],
    ) -> Result<(Vec<f64>, Gradients), LayerError> {
        let layer = self.layer;
        let samples = layer.samples_with_upstream(inputs, weights, upstream)?;
        let (steps, undo) = (self.forward_steps(weights), self.undo_steps());
        let per_sample = self.each_sample(samples, |s| {
            let g = &upstream[s * layer.outputs()..(s + 1) * layer.outputs()];
            self.adjoint((&steps, &undo), layer.sample(inputs, s), weights, g)
        });
        let mut outputs = Vec::with_capacity(samples * layer.outputs());
        let mut gradients = Gradients {
            inputs: Vec::with_capacity(inputs.len()),
            weights: vec![0.0; layer.weights()],
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

    fn parameter_shift(
        &self,
        inputs: &[f64],
        weights: &[f64],
        upstream: &[f64],
    ) -> Result<Gradients, LayerError> {
        let layer = self.layer;
        let samples = layer.samples_with_upstream(inputs, weights, upstream)?;
        let mut gradients = Gradients {
            inputs: vec![0.0; inputs.len()],
            weights: vec![0.0; layer.weights()],
        };
        let shift = std::f64::consts::FRAC_PI_2;
        for s in 0..samples {
            let x = layer.sample(inputs, s);
            let g = &upstream[s * layer.outputs()..(s + 1) * layer.outputs()];
            for (at, op) in layer.ops().iter().enumerate() {
                let Op::Rotation { angle, .. } = *op else {
                    continue;
                };
                let shifted = |by: f64| {
                    let values = self.expectations(&self.shifted_state(x, weights, at, by));
                    values.iter().zip(g).map(|(v, g)| v * g).sum::<f64>()
                };
                let d = (shifted(shift) - shifted(-shift)) / 2.0;
                match angle {
                    Angle::Input(i) => gradients.inputs[s * layer.inputs() + i] += d,
                    Angle::Weight(w) => gradients.weights[w] += d,
                }
            }
        }
        Ok(gradients)
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
    let [m00, m01, m10, m11] = match rotation(qubit, axis, -theta).matrix[..] {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chimera_circuit::layer::{MAX_QUBITS, Observable};
    use chimera_circuit::pauli::PauliSum;
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
            let (values, gradients) = backward(&layer, &[], &[t], &[1.0]).unwrap();
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
        let values = forward(&layer, &[a, b], &[]).unwrap();
        assert!((values[0] - a.cos()).abs() < 1e-12);
        assert!((values[1] - a.cos() * b.cos()).abs() < 1e-12);
        // d<Z1>/da = -sin a cos b, d<Z1>/db = -cos a sin b.
        let (_, gradients) = backward(&layer, &[a, b], &[], &[0.0, 1.0]).unwrap();
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
            let (values, adjoint) = backward(&layer, &x, &w, &g).unwrap();
            assert_eq!(values, forward(&layer, &x, &w).unwrap());
            let shift = parameter_shift(&layer, &x, &w, &g).unwrap();

            // Central differences of the loss Σ g·outputs.
            let loss = |x: &[f64], w: &[f64]| -> f64 {
                let out = forward(&layer, x, w).unwrap();
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
        let (values, batch) = backward(&layer, &x, &w, &g).unwrap();
        let mut weights = vec![0.0; layer.weights()];
        for s in 0..samples {
            let xs = &x[s * layer.inputs()..(s + 1) * layer.inputs()];
            let gs = &g[s * layer.outputs()..(s + 1) * layer.outputs()];
            let (v, one) = backward(&layer, xs, &w, gs).unwrap();
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
        let error = forward(&layer, &[0.1, 0.2, 0.3], &[]).unwrap_err();
        assert_eq!(error.to_string(), "inputs: expected 2 values, got 3");
        let error = backward(&layer, &[0.1, 0.2], &[], &[1.0, 2.0]).unwrap_err();
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

    /// The layer runs with the widest lanes the processor has; every narrower instruction set
    /// (the portable one always) gives the same values and gradients, to rounding.
    #[test]
    fn every_instruction_set_gives_the_same_values_and_gradients() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for qubits in [1, 2, 3, 6] {
            let layer = if qubits < 3 {
                let ops = vec![
                    rotation(0, Axis::Y, Angle::Input(0)),
                    rotation(qubits - 1, Axis::X, Angle::Weight(0)),
                ];
                QuantumLayer::new(qubits, ops, &[Observable::Z(qubits - 1)]).unwrap()
            } else {
                random_layer(&mut rng, qubits)
            };
            let samples = 4;
            let x = random_values(&mut rng, samples * layer.inputs());
            let w = random_values(&mut rng, layer.weights());
            let g = random_values(&mut rng, samples * layer.outputs());
            let reference = sweeps(&layer, Isa::Portable).backward(&x, &w, &g).unwrap();
            for isa in Isa::available() {
                let (values, gradients) = sweeps(&layer, isa).backward(&x, &w, &g).unwrap();
                let gaps = [
                    (&values, &reference.0),
                    (&gradients.inputs, &reference.1.inputs),
                    (&gradients.weights, &reference.1.weights),
                ];
                for (ours, theirs) in gaps {
                    assert_eq!(ours.len(), theirs.len());
                    let gap = ours
                        .iter()
                        .zip(theirs)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max);
                    assert!(gap < 1e-12, "{} qubits, {}: {gap}", qubits, isa.name());
                }
            }
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
        let (values, gradients) = backward(&layer, &x, &[0.7; 20], &[1.0; 21]).unwrap();
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
