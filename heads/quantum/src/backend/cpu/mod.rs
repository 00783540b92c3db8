//! The multithreaded CPU backend.
//!
//! Gates are planned into cache blocks (`blocking`): each block touches at most `block_qubits`
//! qubits, so the state splits into independent slices of 2^block_qubits amplitudes. Each worker
//! thread copies a slice into an L2-sized buffer, applies every gate of the block to it (fused into
//! small dense unitaries, `fuse`), and copies it back: one trip through main memory per block
//! rather than per gate. The low `contiguous_qubits` qubits are in every block so that a slice is
//! made of runs of consecutive amplitudes.

pub mod gradient;
pub mod kernel;
pub mod lanes;
pub mod layer;

use super::{Amplitudes, Backend, BackendError, Precision, StateVector, Work, WorkCounter};
use crate::blocking;
use crate::fuse;
use crate::state;
use chimera_circuit::bits::deposit;
use chimera_circuit::circuit::Gate;
use chimera_circuit::memory::available_memory;
use chimera_circuit::pauli::PauliString;
use kernel::Prepared;
use lanes::{Lanes, Real, Scalar};
use num_complex::Complex;
use rayon::prelude::*;
use std::sync::Arc;

/// States of at most this many amplitudes run on the calling thread: handing a few microseconds
/// of work to the pool's threads and waking the caller again costs more than the work (a head
/// running thousands of small circuits a second spent more time in those hand-offs than in its
/// circuits).
const INLINE_AMPLITUDES: usize = 1 << 14;

thread_local! {
    /// A pool whose one thread is the calling thread itself: rayon code installed in it runs here,
    /// splits into nothing and wakes no one. `None` on a thread that is already a pool's worker.
    static CALLER_POOL: Option<rayon::ThreadPool> = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .use_current_thread()
        .build()
        .ok();
}

/// Widest fused diagonal gate: its table of 2^8 entries stays in L1.
const DIAGONAL_FUSE_QUBITS: usize = 8;

/// The instruction set the kernels use, chosen at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// 512-bit vectors (AVX-512F), twice the amplitudes per instruction of AVX2.
    Avx512,
    Avx2Fma,
    Portable,
}

impl Isa {
    /// The widest instruction set this processor runs.
    pub fn detect() -> Isa {
        Isa::available()[0]
    }

    /// Every instruction set this processor runs, widest first (the portable one always).
    pub fn available() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2Fma, Isa::Portable]
            .into_iter()
            .filter(|isa| isa.runs_here())
            .collect()
    }

    fn runs_here(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        let (avx2, avx512) = {
            let avx2 = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma");
            (avx2, avx2 && std::arch::is_x86_feature_detected!("avx512f"))
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (avx2, avx512) = (false, false);
        match self {
            Isa::Avx512 => avx512,
            Isa::Avx2Fma => avx2,
            Isa::Portable => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512f",
            Isa::Avx2Fma => "avx2+fma",
            Isa::Portable => "portable",
        }
    }
}

/// The knobs of the block plan, measured against qsim on the benchmark circuits
/// (`benches/compare.py`, 2 threads) for each instruction set, on the machine that had it
/// (benches/RESULTS.md):
/// - AVX2 on a 2-core Zen 3 (512 KiB of L2 per core, 32 MiB of L3): slices of 2 MiB (L3-resident)
///   gathered in runs of 256 amplitudes beat L2-sized slices gathered in shorter runs, because
///   scattered short runs cost more than the L3 traffic.
/// - AVX-512 on a 2-core Intel Xeon (2 MiB of L2 per core): 1 MiB slices (L2-resident) in runs of
///   1,024 amplitudes and gates fused to 3 qubits; the Zen 3's plan was slower there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Qubits per cache block in single precision (double uses one fewer: same bytes).
    pub block_qubits: usize,
    /// Widest fused gate applied inside a block.
    pub fuse_qubits: usize,
    /// Low qubits every block includes.
    pub contiguous_qubits: usize,
}

impl Tuning {
    /// The measured plan for `isa` (the portable kernels take AVX2's).
    pub fn for_isa(isa: Isa) -> Tuning {
        match isa {
            Isa::Avx512 => Tuning {
                block_qubits: 17,
                fuse_qubits: 3,
                contiguous_qubits: 10,
            },
            Isa::Avx2Fma | Isa::Portable => Tuning {
                block_qubits: 18,
                fuse_qubits: 4,
                contiguous_qubits: 8,
            },
        }
    }
}

struct Shared {
    /// The worker threads, for states larger than `INLINE_AMPLITUDES`.
    pool: rayon::ThreadPool,
    work: WorkCounter,
    threads: usize,
    isa: Isa,
    tuning: Tuning,
}

impl Shared {
    /// Runs `work` on a state of `amplitudes` amplitudes: in the pool, or on the calling thread
    /// when the state is small.
    fn install<R: Send>(&self, amplitudes: usize, work: impl FnOnce() -> R + Send) -> R {
        if amplitudes <= INLINE_AMPLITUDES {
            let mut work = Some(work);
            let inline = CALLER_POOL.with(|caller| {
                caller
                    .as_ref()
                    .map(|pool| pool.install(|| work.take().expect("not run yet")()))
            });
            if let Some(result) = inline {
                return result;
            }
            return self.pool.install(work.expect("not run inline"));
        }
        self.pool.install(work)
    }
}

pub struct CpuBackend {
    shared: Arc<Shared>,
}

impl CpuBackend {
    /// `threads`: worker threads, all cores when `None`.
    pub fn new(threads: Option<usize>) -> Result<CpuBackend, BackendError> {
        let isa = Isa::detect();
        Self::with(threads, isa, Tuning::for_isa(isa))
    }

    pub fn with(
        threads: Option<usize>,
        isa: Isa,
        tuning: Tuning,
    ) -> Result<CpuBackend, BackendError> {
        if !isa.runs_here() {
            return Err(BackendError::Unavailable(
                format!("cpu {}", isa.name()),
                "this processor lacks those instructions".into(),
            ));
        }
        let threads =
            threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("chimera-cpu-{i}"))
            .build()
            .map_err(|e| BackendError::Threads(threads, e.to_string()))?;
        Ok(CpuBackend {
            shared: Arc::new(Shared {
                pool,
                work: WorkCounter::default(),
                threads,
                isa,
                tuning,
            }),
        })
    }
}

impl Backend for CpuBackend {
    fn describe(&self) -> String {
        format!(
            "cpu ({}, {} threads)",
            self.shared.isa.name(),
            self.shared.threads
        )
    }

    fn is_gpu(&self) -> bool {
        false
    }

    fn work(&self) -> Work {
        self.shared.work.total()
    }

    fn allocate(
        &self,
        num_qubits: usize,
        precision: Precision,
    ) -> Result<Box<dyn StateVector>, BackendError> {
        let refuse = || refusal(num_qubits, precision, 1);
        if !fits(num_qubits, precision, 1) {
            return Err(refuse());
        }
        let shared = self.shared.clone();
        Ok(match precision {
            Precision::Single => {
                Box::new(CpuState::<f32>::new(num_qubits, shared).ok_or_else(refuse)?)
            }
            Precision::Double => {
                Box::new(CpuState::<f64>::new(num_qubits, shared).ok_or_else(refuse)?)
            }
        })
    }
}

/// Whether `states` statevectors of `num_qubits` qubits fit in this machine's memory, with room
/// left for the process itself and the per-thread block buffers.
fn fits(num_qubits: usize, precision: Precision, states: u128) -> bool {
    let needed = precision.state_bytes(num_qubits).saturating_mul(states);
    let available = available_memory().unwrap_or(u128::MAX);
    num_qubits < usize::BITS as usize - 5 && needed.saturating_add(needed / 16) <= available
}

/// Why `states` statevectors of `num_qubits` qubits are refused.
fn refusal(num_qubits: usize, precision: Precision, states: u128) -> BackendError {
    let needed = precision.state_bytes(num_qubits).saturating_mul(states);
    let available = available_memory().unwrap_or(u128::MAX);
    BackendError::OutOfMemory {
        qubits: num_qubits,
        precision: precision.name(),
        needed,
        available: available.min(needed.saturating_sub(1)),
        where_: "this machine",
        hint: if precision == Precision::Double {
            "; --precision single halves it"
        } else {
            ""
        },
    }
}

/// The float types the CPU backend simulates in, each with its vectors under each instruction set.
trait CpuReal: Real + std::ops::Mul<Output = Self> + std::ops::Add<Output = Self>
where
    Complex<Self>: std::ops::MulAssign<Self>,
{
    #[cfg(target_arch = "x86_64")]
    type Avx512: Lanes<F = Self>;
    #[cfg(target_arch = "x86_64")]
    type Avx2: Lanes<F = Self>;
    /// Qubits fewer per cache block than in single precision, so that a block holds the same bytes.
    const FEWER_BLOCK_QUBITS: usize;

    fn into_amplitudes(amps: Vec<Complex<Self>>) -> Amplitudes;

    /// Runs `work` with the widest vectors that `isa` and a state of `n` qubits allow.
    fn with_lanes<W: WithLanes<Self>>(isa: Isa, n: usize, work: W) -> W::Output {
        #[cfg(target_arch = "x86_64")]
        match isa {
            Isa::Avx512 if n >= Self::Avx512::LANE_BITS => return work.run::<Self::Avx512>(isa),
            Isa::Avx512 | Isa::Avx2Fma if n >= Self::Avx2::LANE_BITS => {
                return work.run::<Self::Avx2>(isa);
            }
            _ => {}
        }
        work.run::<Scalar<Self>>(isa)
    }
}

/// Work written over the kernel's lanes, for [`CpuReal::with_lanes`] to pick them (a closure cannot
/// be generic).
trait WithLanes<F: Real> {
    type Output;
    fn run<S: Lanes<F = F>>(self, isa: Isa) -> Self::Output;
}

/// Gates applied to a whole state, cache block by cache block.
struct ApplyGates<'a, F: Real> {
    amps: &'a mut [Complex<F>],
    n: usize,
    gates: &'a [Gate],
    shared: &'a Shared,
    block_qubits: usize,
}

impl<F: Real> WithLanes<F> for ApplyGates<'_, F> {
    type Output = ();

    fn run<S: Lanes<F = F>>(self, _isa: Isa) {
        apply_gates::<S>(
            self.amps,
            self.n,
            self.gates,
            self.shared,
            self.block_qubits,
        );
    }
}

impl CpuReal for f32 {
    #[cfg(target_arch = "x86_64")]
    type Avx512 = lanes::Avx512F32;
    #[cfg(target_arch = "x86_64")]
    type Avx2 = lanes::Avx2F32;
    const FEWER_BLOCK_QUBITS: usize = 0;

    fn into_amplitudes(amps: Vec<Complex<f32>>) -> Amplitudes {
        Amplitudes::Single(amps)
    }
}

impl CpuReal for f64 {
    #[cfg(target_arch = "x86_64")]
    type Avx512 = lanes::Avx512F64;
    #[cfg(target_arch = "x86_64")]
    type Avx2 = lanes::Avx2F64;
    const FEWER_BLOCK_QUBITS: usize = 1;

    fn into_amplitudes(amps: Vec<Complex<f64>>) -> Amplitudes {
        Amplitudes::Double(amps)
    }
}

struct CpuState<F: Real> {
    amps: Vec<Complex<F>>,
    num_qubits: usize,
    shared: Arc<Shared>,
}

impl<F: Real> CpuState<F> {
    /// |0...0>, or `None` when the allocation fails.
    fn new(num_qubits: usize, shared: Arc<Shared>) -> Option<Self> {
        let len = 1usize << num_qubits;
        let mut amps = Vec::new();
        amps.try_reserve_exact(len).ok()?;
        // Filled in parallel so that each thread first touches (and so places) the pages it will use.
        shared.install(len, || {
            amps.par_extend(rayon::iter::repeat_n(
                Complex::new(F::default(), F::default()),
                len,
            ));
        });
        amps[0] = Complex::new(F::from_f64(1.0), F::default());
        Some(CpuState {
            amps,
            num_qubits,
            shared,
        })
    }
}

impl<F: CpuReal> StateVector for CpuState<F>
where
    Complex<F>: std::ops::MulAssign<F>,
{
    fn num_qubits(&self) -> usize {
        self.num_qubits
    }

    fn apply(&mut self, gates: &[Gate]) {
        let shared = &self.shared;
        let apply = ApplyGates {
            amps: &mut self.amps,
            n: self.num_qubits,
            gates,
            shared,
            block_qubits: shared.tuning.block_qubits - F::FEWER_BLOCK_QUBITS,
        };
        F::with_lanes(shared.isa, self.num_qubits, apply);
    }

    fn probability_of_one(&self, qubit: usize) -> f64 {
        self.shared.install(self.amps.len(), || {
            state::probability_of_one(&self.amps, qubit)
        })
    }

    fn collapse(&mut self, qubit: usize, outcome: bool, probability: f64) {
        let len = self.amps.len();
        let amps = &mut self.amps;
        self.shared
            .install(len, || state::collapse(amps, qubit, outcome, probability));
    }

    fn sample(&self, uniforms: &[f64]) -> Vec<u64> {
        self.shared
            .install(self.amps.len(), || state::sample(&self.amps, uniforms))
    }

    fn expectation(&self, pauli: &PauliString) -> f64 {
        self.shared
            .install(self.amps.len(), || state::expectation(&self.amps, pauli))
    }

    fn duplicate(&self) -> Box<dyn StateVector> {
        Box::new(CpuState {
            amps: self.amps.clone(),
            num_qubits: self.num_qubits,
            shared: self.shared.clone(),
        })
    }

    fn amplitudes(&self) -> Amplitudes {
        F::into_amplitudes(self.amps.clone())
    }
}

fn apply_gates<S: Lanes>(
    amps: &mut [Complex<S::F>],
    n: usize,
    gates: &[Gate],
    shared: &Shared,
    block_qubits: usize,
) {
    // Enough slices to keep every thread busy, unless the state is small enough for one core.
    let parallel_bits = if n >= 16 {
        (shared.threads * 8).next_power_of_two().trailing_zeros() as usize
    } else {
        0
    };
    let max_block = block_qubits
        .min(n.saturating_sub(parallel_bits))
        .max(S::LANE_BITS.min(n));
    let always: Vec<usize> = (0..shared.tuning.contiguous_qubits.min(max_block)).collect();
    for mut block in blocking::plan(gates, max_block, &always) {
        // Widen the block with the lowest free qubits: slices of a full cache buffer, in long runs,
        // whatever the gates needed.
        for q in 0..n {
            if block.qubits.len() >= max_block {
                break;
            }
            if let Err(at) = block.qubits.binary_search(&q) {
                block.qubits.insert(at, q);
            }
        }
        let local: Vec<Gate> = block
            .gates
            .iter()
            .map(|g| {
                let qubits = g
                    .qubits
                    .iter()
                    .map(|q| {
                        block
                            .qubits
                            .binary_search(q)
                            .expect("gate inside its block")
                    })
                    .collect();
                Gate::new(qubits, g.matrix.clone())
            })
            .collect();
        let prepared: Vec<Prepared<S>> =
            fuse::fuse(&local, shared.tuning.fuse_qubits, DIAGONAL_FUSE_QUBITS)
                .iter()
                .map(Prepared::new)
                .collect();
        run_block(amps, n, &block.qubits, &prepared, shared);
        shared.work.passes(1, std::mem::size_of_val(amps));
    }
}

#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: every task writes a disjoint set of amplitudes (its own slice of the state).
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// Through a method, so that closures capture the whole (Send) wrapper, not the bare pointer.
    fn at(self, offset: usize) -> *mut T {
        // SAFETY: callers pass offsets inside the allocation the pointer came from.
        unsafe { self.0.add(offset) }
    }
}

fn run_block<S: Lanes>(
    amps: &mut [Complex<S::F>],
    n: usize,
    qubits: &[usize],
    gates: &[Prepared<S>],
    shared: &Shared,
) {
    let m = qubits.len();
    let contiguous = qubits
        .iter()
        .enumerate()
        .take_while(|&(i, &q)| q == i)
        .count();
    let outside: Vec<usize> = (0..n)
        .filter(|q| qubits.binary_search(q).is_err())
        .collect();
    let inside_high = &qubits[contiguous..];
    let state = SendPtr(amps.as_mut_ptr());
    let run = &|buf: *mut Complex<S::F>, len: usize| {
        // SAFETY: `buf` holds `len` amplitudes that only this task touches; targets are below log2(len).
        unsafe { apply_all(shared.isa, gates, buf, len) }
    };
    shared.install(amps.len(), || {
        let slices = 1usize << (n - m);
        let buffer_len = if contiguous == m { 0 } else { 1 << m };
        (0..slices).into_par_iter().for_each_init(
            || vec![Complex::new(S::F::default(), S::F::default()); buffer_len],
            |buf, slice| {
                let base = deposit(slice, &outside);
                if contiguous == m {
                    // SAFETY: the block is qubits 0..m: slice `slice` is the run base..base + 2^m.
                    run(state.at(base), 1 << m);
                    return;
                }
                let run_len = 1usize << contiguous;
                for r in 0..1usize << (m - contiguous) {
                    let at = base + deposit(r, inside_high);
                    // SAFETY: `at..at + run_len` is inside the state and belongs to this slice alone.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            state.at(at),
                            buf.as_mut_ptr().add(r * run_len),
                            run_len,
                        )
                    };
                }
                run(buf.as_mut_ptr(), 1 << m);
                for r in 0..1usize << (m - contiguous) {
                    let at = base + deposit(r, inside_high);
                    // SAFETY: as for the gather above.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            buf.as_ptr().add(r * run_len),
                            state.at(at),
                            run_len,
                        )
                    };
                }
            },
        );
    });
}

/// # Safety
/// `buf` holds `len` amplitudes, no other thread touches them, every target is below log2(len), and
/// `isa` was detected on this machine.
unsafe fn apply_all<S: Lanes>(
    isa: Isa,
    gates: &[Prepared<S>],
    buf: *mut Complex<S::F>,
    len: usize,
) {
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: AVX-512F was detected (the caller's contract).
        Isa::Avx512 => return unsafe { apply_all_avx512(gates, buf, len) },
        // SAFETY: AVX2 and FMA were detected (the caller's contract).
        Isa::Avx2Fma => return unsafe { apply_all_avx2(gates, buf, len) },
        Isa::Portable => {}
    }
    let _ = isa;
    // SAFETY: the caller's contract.
    unsafe { apply_all_portable(gates, buf, len) }
}

/// Instantiating the kernel inside a function compiled for AVX2 and FMA lets the compiler inline the
/// intrinsics of the `Lanes` implementation into it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn apply_all_avx2<S: Lanes>(gates: &[Prepared<S>], buf: *mut Complex<S::F>, len: usize) {
    // SAFETY: the caller's contract.
    unsafe { apply_each(gates, buf, len) }
}

/// As [`apply_all_avx2`], for AVX-512F (which the processors that have it pair with AVX2 and FMA).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn apply_all_avx512<S: Lanes>(gates: &[Prepared<S>], buf: *mut Complex<S::F>, len: usize) {
    // SAFETY: the caller's contract.
    unsafe { apply_each(gates, buf, len) }
}

unsafe fn apply_all_portable<S: Lanes>(gates: &[Prepared<S>], buf: *mut Complex<S::F>, len: usize) {
    // SAFETY: the caller's contract.
    unsafe { apply_each(gates, buf, len) }
}

#[inline(always)]
unsafe fn apply_each<S: Lanes>(gates: &[Prepared<S>], buf: *mut Complex<S::F>, len: usize) {
    for g in gates {
        // SAFETY: the caller's contract.
        unsafe { g.apply(buf, len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_states_run_on_the_calling_thread_and_large_ones_in_the_pool() {
        let backend = CpuBackend::new(Some(2)).unwrap();
        let caller = std::thread::current().id();
        let small = backend
            .shared
            .install(INLINE_AMPLITUDES, || std::thread::current().id());
        assert_eq!(small, caller);
        let large = backend
            .shared
            .install(INLINE_AMPLITUDES + 1, || std::thread::current().id());
        assert_ne!(large, caller);
        // From inside another pool, where the caller cannot have a pool of its own, small work
        // still runs (in the backend's pool).
        let other = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let inside = other.install(|| backend.shared.install(4, rayon::current_thread_index));
        assert!(inside.is_some());
    }
}
