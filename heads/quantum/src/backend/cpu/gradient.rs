//! The adjoint gradient of one circuit's expectation value with respect to its gate parameters
//! (Jones and Gacon, arXiv:2009.02823), on the CPU backend's multithreaded states: what the
//! Python package's PennyLane device and `Simulator.gradient` compute.
//!
//! Unlike a hybrid layer's rotations (`layer.rs`), a parameter here may sit in any gate. The
//! method reads 2 Re⟨λ|dU/dθ|φ⟩, with φ the state just before the gate and
//! λ = U_{i+1}^†…U_L^† O ψ. A gate U = exp(iθG) whose generator G is a Pauli sum (every rotation,
//! controlled or not) gives dU/dθ φ = iG U φ: the term is -2 Im⟨λ|G|φ'⟩ with φ' the state just
//! after the gate, one read of both states and no copy. Any other gate comes with dU/dθ as a
//! matrix, applied to a copy of φ (a third state).

use super::{CpuBackend, CpuState, Isa, fits, refusal};
use crate::backend::StateVector;
use crate::run::RunError;
use chimera_circuit::circuit::{C64, Gate};
use chimera_circuit::memory::Precision;
use chimera_circuit::pauli::{PauliString, PauliSum};
use rayon::prelude::*;

/// A gate of a circuit being differentiated, with its derivative by each parameter it depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct DifferentiableGate {
    pub gate: Gate,
    /// (parameter index, the gate's derivative by it).
    pub derivatives: Vec<(usize, Derivative)>,
}

/// dU/dθ of a gate.
#[derive(Debug, Clone, PartialEq)]
pub enum Derivative {
    /// As a matrix on the gate's qubits.
    Matrix(Gate),
    /// As the generator G of U = exp(iθG), a Hermitian Pauli sum: dU/dθ = iGU.
    Generator(PauliSum),
}

/// ⟨ψ|O|ψ⟩ and its gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradient {
    pub value: f64,
    /// d⟨O⟩/dθ_p for each parameter p (a parameter in several gates sums their terms).
    pub parameters: Vec<f64>,
}

impl CpuBackend {
    /// The adjoint method over `gates` (applied to |0…0⟩ in double precision), for `observable`
    /// and `parameters` parameters.
    pub fn adjoint_gradient(
        &self,
        num_qubits: usize,
        gates: &[DifferentiableGate],
        observable: &PauliSum,
        parameters: usize,
    ) -> Result<Gradient, RunError> {
        let generators = gates
            .iter()
            .flat_map(|g| &g.derivatives)
            .filter_map(|(_, d)| match d {
                Derivative::Generator(g) => Some(g),
                Derivative::Matrix(_) => None,
            });
        for sum in std::iter::once(observable).chain(generators) {
            if let Some(q) = sum.max_qubit().filter(|&q| q >= num_qubits) {
                return Err(RunError::ObservableQubit {
                    observable: sum.text.clone(),
                    qubit: q,
                    num_qubits,
                });
            }
        }
        let refuse = || RunError::Backend(refusal(num_qubits, Precision::Double, 3));
        if !fits(num_qubits, Precision::Double, 3) {
            return Err(refuse());
        }
        let mut phi = CpuState::<f64>::new(num_qubits, self.shared.clone()).ok_or_else(refuse)?;
        let plain: Vec<Gate> = gates.iter().map(|g| g.gate.clone()).collect();
        phi.apply(&plain);
        let value = observable
            .terms
            .iter()
            .map(|(c, p)| c * phi.expectation(p))
            .sum();
        let mut lambda = self.observable_times(&phi, observable).ok_or_else(refuse)?;
        let mut gradient = vec![0.0; parameters];
        let lowest = (gates.iter())
            .position(|g| !g.derivatives.is_empty())
            .unwrap_or(gates.len());
        let block_qubits = BLOCK_QUBITS.min(num_qubits);
        // Each gate's one-qubit generators, if it has them (see `one_qubit_generators`).
        let generators: Vec<Option<Vec<[C64; 4]>>> =
            gates.iter().map(one_qubit_generators).collect();
        let in_block =
            |at: usize| generators[at].is_some() && gates[at].gate.qubits[0] < block_qubits;
        let pass = |at: usize| {
            let g = generators[at]
                .as_deref()
                .expect("a one-qubit pass has its generators");
            Pass::new(&plain[at], g, self.shared.isa)
        };
        // The gradient terms of gate `at`'s parameters from the products a pass read.
        let read = |gradient: &mut [f64], at: usize, products: [C64; 4]| {
            let g = generators[at]
                .as_deref()
                .expect("a one-qubit pass has its generators");
            for ((parameter, _), g) in gates[at].derivatives.iter().zip(g) {
                let overlap: C64 = g.iter().zip(&products).map(|(g, s)| g * s).sum();
                gradient[*parameter] -= 2.0 * overlap.im;
            }
        };
        let mut undone = gates.len();
        // From the last gate back to the first parameterised one: gates with no parameter are
        // undone together (the backend fuses them) up to the next that has one.
        while undone > lowest {
            let mut at = undone - 1;
            if in_block(at) {
                // One-qubit gates below the block's qubits, read and undone block by block: a
                // single pass over φ and λ for the whole run.
                while at > lowest && in_block(at - 1) {
                    at -= 1;
                }
                let passes: Vec<Pass> = (at..undone).map(pass).collect();
                let products = undo_in_blocks(
                    &mut phi,
                    &mut lambda,
                    &plain[at..undone],
                    &passes,
                    block_qubits,
                );
                for (gate, products) in (at..undone).zip(products) {
                    read(&mut gradient, gate, products);
                }
                undone = at;
                continue;
            }
            if gates[at].derivatives.is_empty() {
                while at > lowest && gates[at - 1].derivatives.is_empty() && !in_block(at - 1) {
                    at -= 1;
                }
                let inverses: Vec<Gate> =
                    plain[at..undone].iter().rev().map(Gate::adjoint).collect();
                phi.apply(&inverses);
                lambda.apply(&inverses);
                undone = at;
                continue;
            }
            if generators[at].is_some() {
                // A one-qubit gate above the block: read and undone in one pass of its own.
                let products = undo_one_qubit(&mut phi, &mut lambda, &plain[at], pass(at));
                read(&mut gradient, at, products);
                undone = at;
                continue;
            }
            for (parameter, derivative) in &gates[at].derivatives {
                if let Derivative::Generator(g) = derivative {
                    gradient[*parameter] -= 2.0 * self.overlap_with(&lambda, g, &phi).im;
                }
            }
            let inverse = [plain[at].adjoint()];
            phi.apply(&inverse);
            for (parameter, derivative) in &gates[at].derivatives {
                if let Derivative::Matrix(d) = derivative {
                    let mut moved = phi.duplicate_typed().ok_or_else(refuse)?;
                    moved.apply(std::slice::from_ref(d));
                    gradient[*parameter] += 2.0 * self.overlap(&lambda, &moved).re;
                }
            }
            lambda.apply(&inverse);
            undone = at;
        }
        Ok(Gradient {
            value,
            parameters: gradient,
        })
    }

    /// O|φ⟩ as a new state, or `None` when it cannot be allocated.
    fn observable_times(
        &self,
        phi: &CpuState<f64>,
        observable: &PauliSum,
    ) -> Option<CpuState<f64>> {
        let mut out = CpuState::<f64>::new(phi.num_qubits, self.shared.clone())?;
        out.amps[0] = C64::new(0.0, 0.0);
        let len = out.amps.len();
        let (amps, from) = (&mut out.amps, &phi.amps);
        self.shared.install(len, || {
            amps.par_iter_mut().enumerate().for_each(|(j, a)| {
                *a = observable
                    .terms
                    .iter()
                    .map(|(c, p)| pauli_row(p, *c, from, j))
                    .sum();
            });
        });
        Some(out)
    }

    /// ⟨a|G|b⟩, G a Pauli sum, in one read of both states: chunk by chunk, each term's
    /// constants taken out of the loop over amplitudes.
    fn overlap_with(&self, a: &CpuState<f64>, g: &PauliSum, b: &CpuState<f64>) -> C64 {
        const CHUNK: usize = 1 << 12;
        let terms: Vec<(C64, usize, u64)> = (g.terms.iter())
            .map(|(c, p)| (p.phase() * c, p.flip as usize, p.sign))
            .collect();
        let b = &b.amps;
        self.shared.install(a.amps.len(), || {
            (a.amps.par_chunks(CHUNK).enumerate())
                .map(|(k, chunk)| {
                    let base = k * CHUNK;
                    let mut total = C64::new(0.0, 0.0);
                    for &(factor, flip, sign) in &terms {
                        let mut sum = C64::new(0.0, 0.0);
                        for (offset, x) in chunk.iter().enumerate() {
                            let i = (base + offset) ^ flip;
                            let odd = ((i as u64 & sign).count_ones() & 1) as f64;
                            sum += x.conj() * b[i] * (1.0 - 2.0 * odd);
                        }
                        total += factor * sum;
                    }
                    total
                })
                .sum()
        })
    }

    /// ⟨a|b⟩.
    fn overlap(&self, a: &CpuState<f64>, b: &CpuState<f64>) -> C64 {
        self.shared.install(a.amps.len(), || {
            (a.amps.par_iter().zip(&b.amps))
                .map(|(x, y)| x.conj() * y)
                .sum()
        })
    }
}

/// For a one-qubit gate all of whose derivatives are generators acting on its qubit alone: each
/// generator as a 2×2 matrix (row-major) on that qubit.
fn one_qubit_generators(gate: &DifferentiableGate) -> Option<Vec<[C64; 4]>> {
    let [q] = gate.gate.qubits[..] else {
        return None;
    };
    let bit = 1u64 << q;
    (gate.derivatives.iter())
        .map(|(_, d)| match d {
            Derivative::Generator(g) => {
                g.terms
                    .iter()
                    .try_fold([C64::new(0.0, 0.0); 4], |mut m, (c, p)| {
                        if p.flip & !bit != 0 || p.sign & !bit != 0 {
                            return None;
                        }
                        for column in 0..2usize {
                            let row = column ^ usize::from(p.flip & bit != 0);
                            let negated = column == 1 && p.sign & bit != 0;
                            m[row * 2 + column] += p.phase() * if negated { -c } else { *c };
                        }
                        Some(m)
                    })
            }
            Derivative::Matrix(_) => None,
        })
        .collect()
}

/// The four products conj(λ_r) φ_c summed over the amplitude pairs that differ in `gate`'s
/// qubit (φ the state just after it), and `gate` undone on φ and λ: one pass over both states.
/// ⟨λ|G|φ⟩ for a generator G on that qubit is Σ_rc G_rc times them, whatever the generators.
fn undo_one_qubit(
    phi: &mut CpuState<f64>,
    lambda: &mut CpuState<f64>,
    gate: &Gate,
    pass: Pass,
) -> [C64; 4] {
    /// Amplitude pairs one task takes.
    const SPAN: usize = 1 << 11;
    let half = 1usize << gate.qubits[0];
    let shared = phi.shared.clone();
    let (phis, lambdas) = (&mut phi.amps, &mut lambda.amps);
    shared.install(phis.len(), || {
        if half >= SPAN {
            // Few groups of 2·half amplitudes: each group's halves taken span by span.
            (phis
                .par_chunks_mut(2 * half)
                .zip(lambdas.par_chunks_mut(2 * half)))
            .flat_map(|(p, l)| {
                let (p0, p1) = p.split_at_mut(half);
                let (l0, l1) = l.split_at_mut(half);
                (p0.par_chunks_mut(SPAN).zip(p1.par_chunks_mut(SPAN)))
                    .zip(l0.par_chunks_mut(SPAN).zip(l1.par_chunks_mut(SPAN)))
            })
            .map(|((p0, p1), (l0, l1))| pass.halves([p0, p1], [l0, l1]))
            .reduce(|| [C64::new(0.0, 0.0); 4], add)
        } else {
            // Many small groups: blocks of them.
            (phis
                .par_chunks_mut(2 * SPAN)
                .zip(lambdas.par_chunks_mut(2 * SPAN)))
            .map(|(p, l)| pass.groups(p, l, half))
            .reduce(|| [C64::new(0.0, 0.0); 4], add)
        }
    })
}

/// Blocks of 2^this amplitudes of φ and λ (256 KiB together) stay in a core's L2 cache while a
/// run of one-qubit gates below their top qubit is read and undone on them.
const BLOCK_QUBITS: usize = 13;

/// For each gate of `run` (one-qubit gates below `block_qubits`, in circuit order, with their
/// `passes`), the four products [`undo_one_qubit`] reads, each taken just after its gate, and
/// the run undone on φ and λ: block by block, the last gate first, so that each amplitude is
/// loaded once.
fn undo_in_blocks(
    phi: &mut CpuState<f64>,
    lambda: &mut CpuState<f64>,
    run: &[Gate],
    passes: &[Pass],
    block_qubits: usize,
) -> Vec<[C64; 4]> {
    let steps: Vec<(usize, Pass)> = (run.iter().zip(passes).rev())
        .map(|(gate, &pass)| (1usize << gate.qubits[0], pass))
        .collect();
    let shared = phi.shared.clone();
    let (phis, lambdas) = (&mut phi.amps, &mut lambda.amps);
    let zero = || vec![[C64::new(0.0, 0.0); 4]; steps.len()];
    let mut products = shared.install(phis.len(), || {
        (phis
            .par_chunks_mut(1 << block_qubits)
            .zip(lambdas.par_chunks_mut(1 << block_qubits)))
        .map(|(p, l)| {
            (steps.iter())
                .map(|&(half, pass)| pass.groups(p, l, half))
                .collect::<Vec<_>>()
        })
        .reduce(zero, |a, b| {
            a.iter().zip(&b).map(|(x, y)| add(*x, *y)).collect()
        })
    });
    products.reverse();
    products
}

fn add(a: [C64; 4], b: [C64; 4]) -> [C64; 4] {
    std::array::from_fn(|i| a[i] + b[i])
}

/// [`undo_one_qubit`]'s loops, compiled for the widest instructions the processor has (the pass
/// is arithmetic-bound on states that fit in cache).
#[derive(Clone, Copy)]
struct Pass {
    /// The gate's inverse, row-major.
    undo: [C64; 4],
    /// [`kind`]'s answer for it.
    kind: u8,
    isa: Isa,
}

impl Pass {
    /// The pass that undoes the one-qubit `gate` and reads for `generators`.
    fn new(gate: &Gate, generators: &[[C64; 4]], isa: Isa) -> Pass {
        let undo: [C64; 4] = gate.adjoint().matrix[..]
            .try_into()
            .expect("a one-qubit gate has a 2x2 matrix");
        Pass {
            undo,
            kind: kind(&undo, generators),
            isa,
        }
    }

    /// The products of two halves and the gate undone on them.
    fn halves(self, p: [&mut [C64]; 2], l: [&mut [C64]; 2]) -> [C64; 4] {
        #[cfg(target_arch = "x86_64")]
        match self.isa {
            // SAFETY: AVX-512F was detected.
            Isa::Avx512 => return unsafe { halves_avx512(self, p, l) },
            // SAFETY: AVX2 and FMA were detected.
            Isa::Avx2Fma => return unsafe { halves_avx2(self, p, l) },
            Isa::Portable => {}
        }
        halves(self, p, l)
    }

    /// The same over consecutive groups of 2·`half` amplitudes.
    fn groups(self, p: &mut [C64], l: &mut [C64], half: usize) -> [C64; 4] {
        #[cfg(target_arch = "x86_64")]
        match self.isa {
            // SAFETY: AVX-512F was detected.
            Isa::Avx512 => return unsafe { groups_avx512(self, p, l, half) },
            // SAFETY: AVX2 and FMA were detected.
            Isa::Avx2Fma => return unsafe { groups_avx2(self, p, l, half) },
            Isa::Portable => {}
        }
        groups(self, p, l, half)
    }
}

#[inline(always)]
fn halves(pass: Pass, p: [&mut [C64]; 2], l: [&mut [C64]; 2]) -> [C64; 4] {
    let mut products = Products::default();
    match pass.kind {
        DIAGONAL => products.undo_from::<DIAGONAL>(0, pass.undo, p, l),
        REAL => products.undo_from::<REAL>(0, pass.undo, p, l),
        _ => products.undo_from::<GENERAL>(0, pass.undo, p, l),
    }
    products.total()
}

#[inline(always)]
fn groups(pass: Pass, p: &mut [C64], l: &mut [C64], half: usize) -> [C64; 4] {
    match pass.kind {
        DIAGONAL => groups_of::<DIAGONAL>(pass.undo, p, l, half),
        REAL => groups_of::<REAL>(pass.undo, p, l, half),
        _ => groups_of::<GENERAL>(pass.undo, p, l, half),
    }
}

#[inline(always)]
fn groups_of<const KIND: u8>(
    undo: [C64; 4],
    p: &mut [C64],
    l: &mut [C64],
    half: usize,
) -> [C64; 4] {
    let mut products = Products::default();
    let groups = p.chunks_mut(2 * half).zip(l.chunks_mut(2 * half));
    for (group, (p, l)) in groups.enumerate() {
        let (p0, p1) = p.split_at_mut(half);
        let (l0, l1) = l.split_at_mut(half);
        products.undo_from::<KIND>(group % LANES, undo, [p0, p1], [l0, l1]);
    }
    products.total()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn halves_avx512(pass: Pass, p: [&mut [C64]; 2], l: [&mut [C64]; 2]) -> [C64; 4] {
    halves(pass, p, l)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn halves_avx2(pass: Pass, p: [&mut [C64]; 2], l: [&mut [C64]; 2]) -> [C64; 4] {
    halves(pass, p, l)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn groups_avx512(pass: Pass, p: &mut [C64], l: &mut [C64], half: usize) -> [C64; 4] {
    groups(pass, p, l, half)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn groups_avx2(pass: Pass, p: &mut [C64], l: &mut [C64], half: usize) -> [C64; 4] {
    groups(pass, p, l, half)
}

/// Gates whose inverse and generators are diagonal (RZ, phase): two products, two multiplies.
const DIAGONAL: u8 = 0;
/// Gates whose inverse is real and generators off-diagonal (RY): two products, real arithmetic.
const REAL: u8 = 1;
/// Any other one-qubit gate.
const GENERAL: u8 = 2;

/// The cheapest kind of arithmetic that undoing `undo` and reading `generators` needs.
fn kind(undo: &[C64; 4], generators: &[[C64; 4]]) -> u8 {
    let zero = C64::new(0.0, 0.0);
    if undo[1] == zero && undo[2] == zero && generators.iter().all(|g| g[1] == zero && g[2] == zero)
    {
        DIAGONAL
    } else if undo.iter().all(|u| u.im == 0.0)
        && generators.iter().all(|g| g[0] == zero && g[3] == zero)
    {
        REAL
    } else {
        GENERAL
    }
}

/// Independent partial sums per lane, so that the additions need not wait on each other.
const LANES: usize = 4;

/// conj(λ_r) φ_c summed, for (r, c) = 00, 01, 10, 11: real and imaginary parts by lane.
#[derive(Default)]
struct Products {
    re: [[f64; LANES]; 4],
    im: [[f64; LANES]; 4],
}

impl Products {
    /// Adds the products of two halves' amplitudes (φ's `p`, λ's `l`) and undoes the gate
    /// (`undo`, its inverse) on both, pair by pair, with only the arithmetic gates of `KIND`
    /// need. Halves shorter than the lanes add into lanes from `lane` on, so that groups of a
    /// few pairs in turn keep every lane busy.
    #[inline(always)]
    fn undo_from<const KIND: u8>(
        &mut self,
        lane: usize,
        undo: [C64; 4],
        p: [&mut [C64]; 2],
        l: [&mut [C64]; 2],
    ) {
        let [p0, p1] = p;
        let [l0, l1] = l;
        let n = p0.len();
        let lanes = n / LANES * LANES;
        let (r00, r01, r10, r11) = (undo[0].re, undo[1].re, undo[2].re, undo[3].re);
        let pair = |x0: &mut C64, x1: &mut C64| {
            let (v0, v1) = (*x0, *x1);
            match KIND {
                DIAGONAL => {
                    *x0 = undo[0] * v0;
                    *x1 = undo[3] * v1;
                }
                REAL => {
                    *x0 = v0 * r00 + v1 * r01;
                    *x1 = v0 * r10 + v1 * r11;
                }
                _ => {
                    *x0 = undo[0] * v0 + undo[1] * v1;
                    *x1 = undo[2] * v0 + undo[3] * v1;
                }
            }
        };
        for k in (0..lanes).step_by(LANES) {
            for w in 0..LANES {
                self.add::<KIND>(w, [l0[k + w], l1[k + w]], [p0[k + w], p1[k + w]]);
                pair(&mut p0[k + w], &mut p1[k + w]);
                pair(&mut l0[k + w], &mut l1[k + w]);
            }
        }
        for k in lanes..n {
            self.add::<KIND>((lane + k) % LANES, [l0[k], l1[k]], [p0[k], p1[k]]);
            pair(&mut p0[k], &mut p1[k]);
            pair(&mut l0[k], &mut l1[k]);
        }
    }

    /// Adds conj(λ_r) φ_c for the (r, c) that generators of gates of `KIND` read.
    #[inline(always)]
    fn add<const KIND: u8>(&mut self, lane: usize, l: [C64; 2], p: [C64; 2]) {
        for (rc, (x, y)) in [(l[0], p[0]), (l[0], p[1]), (l[1], p[0]), (l[1], p[1])]
            .into_iter()
            .enumerate()
        {
            let read = match KIND {
                DIAGONAL => rc == 0 || rc == 3,
                REAL => rc == 1 || rc == 2,
                _ => true,
            };
            if read {
                self.re[rc][lane] += x.re * y.re + x.im * y.im;
                self.im[rc][lane] += x.re * y.im - x.im * y.re;
            }
        }
    }

    fn total(&self) -> [C64; 4] {
        std::array::from_fn(|rc| C64::new(self.re[rc].iter().sum(), self.im[rc].iter().sum()))
    }
}

/// Amplitude `j` of c·P|φ⟩: P sends |i⟩ to phase·(-1)^popcount(i & sign)|i ^ flip⟩, so row j
/// reads column j ^ flip.
fn pauli_row(p: &PauliString, c: f64, phi: &[C64], j: usize) -> C64 {
    let i = j ^ p.flip as usize;
    let sign = if (i as u64 & p.sign).count_ones().is_multiple_of(2) {
        c
    } else {
        -c
    };
    p.phase() * phi[i] * sign
}

impl CpuState<f64> {
    /// A copy, or `None` when it cannot be allocated.
    fn duplicate_typed(&self) -> Option<CpuState<f64>> {
        let mut amps = Vec::new();
        amps.try_reserve_exact(self.amps.len()).ok()?;
        let len = self.amps.len();
        self.shared
            .install(len, || amps.par_extend(self.amps.par_iter().copied()));
        Some(CpuState {
            amps,
            num_qubits: self.num_qubits,
            shared: self.shared.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chimera_circuit::gates;

    fn rotation_y(qubit: usize, theta: f64, parameter: usize) -> DifferentiableGate {
        // d/dθ RY(θ) = RY(θ + π) / 2.
        let derivative = gates::ry(theta + std::f64::consts::PI)
            .into_iter()
            .map(|m| m * 0.5)
            .collect();
        DifferentiableGate {
            gate: Gate::new(vec![qubit], gates::ry(theta)),
            derivatives: vec![(
                parameter,
                Derivative::Matrix(Gate::new(vec![qubit], derivative)),
            )],
        }
    }

    /// RX(θ) = exp(iθ(-X/2)), by its generator.
    fn rotation_x(qubit: usize, theta: f64, parameter: usize) -> DifferentiableGate {
        rotation_by_generator(qubit, 'X', gates::rx(theta), parameter)
    }

    /// R_axis(θ) = exp(iθ(-P/2)) with its matrix `matrix`, by its generator.
    fn rotation_by_generator(
        qubit: usize,
        axis: char,
        matrix: Vec<C64>,
        parameter: usize,
    ) -> DifferentiableGate {
        let generator = PauliSum::parse(&format!("-0.5*{axis}{qubit}")).unwrap();
        DifferentiableGate {
            gate: Gate::new(vec![qubit], matrix),
            derivatives: vec![(parameter, Derivative::Generator(generator))],
        }
    }

    /// CRZ(θ) on (control, target) = exp(iθ G), G = -(I - Z_c) Z_t / 4.
    fn controlled_rz(
        control: usize,
        target: usize,
        theta: f64,
        parameter: usize,
    ) -> DifferentiableGate {
        let g = format!("-0.25*Z{target} + 0.25*Z{control} Z{target}");
        DifferentiableGate {
            gate: Gate::new(
                vec![control, target],
                gates::controlled(&gates::rz(theta), 1),
            ),
            derivatives: vec![(
                parameter,
                Derivative::Generator(PauliSum::parse(&g).unwrap()),
            )],
        }
    }

    fn fixed(qubits: Vec<usize>, matrix: Vec<C64>) -> DifferentiableGate {
        DifferentiableGate {
            gate: Gate::new(qubits, matrix),
            derivatives: vec![],
        }
    }

    /// ⟨O⟩ of the circuit with every RY angle as given, by a plain simulation.
    fn value(backend: &CpuBackend, n: usize, gates: &[DifferentiableGate], o: &PauliSum) -> f64 {
        let mut state = CpuState::<f64>::new(n, backend.shared.clone()).unwrap();
        state.apply(&gates.iter().map(|g| g.gate.clone()).collect::<Vec<_>>());
        o.terms.iter().map(|(c, p)| c * state.expectation(p)).sum()
    }

    #[test]
    fn the_adjoint_gradient_matches_finite_differences_with_a_shared_parameter() {
        let backend = CpuBackend::new(Some(2)).unwrap();
        let observable = PauliSum::parse("Z0 Z1 + 0.5*X2 - 0.3*Y1").unwrap();
        let circuit = |t: [f64; 2]| {
            vec![
                fixed(vec![2], gates::h()),
                rotation_y(0, t[0], 0),
                fixed(vec![0, 1], gates::controlled(&gates::x(), 1)),
                rotation_y(1, t[1], 1),
                fixed(vec![1, 2], gates::rzz(0.4)),
                rotation_y(2, t[0], 0),
                fixed(vec![2], gates::sx()),
                rotation_x(1, t[1], 1),
                controlled_rz(2, 0, t[0], 0),
            ]
        };
        let theta = [0.7, -1.1];
        let got = backend
            .adjoint_gradient(3, &circuit(theta), &observable, 2)
            .unwrap();
        assert!((got.value - value(&backend, 3, &circuit(theta), &observable)).abs() < 1e-12);
        for p in 0..2 {
            let h = 1e-6;
            let (mut up, mut down) = (theta, theta);
            up[p] += h;
            down[p] -= h;
            let expected = (value(&backend, 3, &circuit(up), &observable)
                - value(&backend, 3, &circuit(down), &observable))
                / (2.0 * h);
            assert!(
                (got.parameters[p] - expected).abs() < 1e-7,
                "parameter {p}: adjoint {} finite differences {expected}",
                got.parameters[p]
            );
        }
    }

    #[test]
    fn gates_below_and_above_the_block_qubits_give_the_finite_differences() {
        let backend = CpuBackend::new(Some(2)).unwrap();
        let n = BLOCK_QUBITS + 2;
        let observable =
            PauliSum::parse(&format!("Z0 Z{} + 0.5*X{}", n - 1, BLOCK_QUBITS)).unwrap();
        let circuit = |t: [f64; 2]| {
            let mut gates: Vec<DifferentiableGate> =
                (0..n).map(|q| fixed(vec![q], gates::h())).collect();
            for (i, &q) in [0, 7, BLOCK_QUBITS, n - 1].iter().enumerate() {
                // Each kind of one-qubit pass: complex (RX), real (RY), diagonal (RZ).
                gates.push(rotation_x(q, t[i % 2], i % 2));
                gates.push(rotation_by_generator(
                    q,
                    'Y',
                    gates::ry(t[1 - i % 2]),
                    1 - i % 2,
                ));
                gates.push(rotation_by_generator(q, 'Z', gates::rz(t[i % 2]), i % 2));
                gates.push(fixed(
                    vec![q, (q + 1) % n],
                    gates::controlled(&gates::x(), 1),
                ));
                gates.push(fixed(vec![q], gates::sx()));
            }
            gates
        };
        let theta = [0.4, -0.9];
        let got = backend
            .adjoint_gradient(n, &circuit(theta), &observable, 2)
            .unwrap();
        for p in 0..2 {
            let h = 1e-6;
            let (mut up, mut down) = (theta, theta);
            up[p] += h;
            down[p] -= h;
            let expected = (value(&backend, n, &circuit(up), &observable)
                - value(&backend, n, &circuit(down), &observable))
                / (2.0 * h);
            assert!(
                (got.parameters[p] - expected).abs() < 1e-7,
                "parameter {p}: adjoint {} finite differences {expected}",
                got.parameters[p]
            );
        }
        assert!((got.value - value(&backend, n, &circuit(theta), &observable)).abs() < 1e-12);
    }

    #[test]
    fn an_observable_beyond_the_circuit_is_refused_by_name() {
        let backend = CpuBackend::new(Some(1)).unwrap();
        let observable = PauliSum::parse("Z5").unwrap();
        let err = backend
            .adjoint_gradient(2, &[rotation_y(0, 0.1, 0)], &observable, 1)
            .unwrap_err();
        assert!(err.to_string().contains("qubit 5"), "{err}");
    }
}
