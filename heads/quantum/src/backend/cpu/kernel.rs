//! Applying one k-qubit unitary to a buffer of amplitudes, a vector of 2^LANE_BITS amplitudes at a time.
//!
//! Targets split in two: *lane* targets (below LANE_BITS) live inside one vector, *high* targets
//! select among 2^h vectors of a group. For a group we load the 2^h vectors once; output vector r is
//!
//!   y[r] = sum over (c, cl) of  Re-part[r][c][cl] * P_cl(x[c])  +  Im-part[r][c][cl] * S_cl(x[c])
//!
//! where P_cl moves, in every lane, the amplitude whose lane-target bits equal `cl` into place, and
//! S_cl does the same with real and imaginary parts swapped. The coefficient vectors carry, per lane,
//! the matrix entry that lane needs (the row depends on the lane's own target bits), so one code path
//! serves low and high targets alike. Zero blocks are dropped when the gate is prepared: diagonal and
//! permutation gates cost one term per output vector.

use super::lanes::{Lanes, Real};
use chimera_circuit::bits::{deposit, extract, insert_zeros};
use chimera_circuit::circuit::Gate;
use num_complex::Complex;
use std::mem::MaybeUninit;

/// Widest gate the kernel takes: its stack buffers hold 2^MAX_QUBITS vectors.
pub const MAX_QUBITS: usize = 6;
/// Groups processed together (see `apply_some`).
const GROUPS_AT_ONCE: usize = 4;

/// Most floats in one vector of any lanes: 8 single-precision amplitudes (AVX-512).
const MAX_VECTOR_FLOATS: usize = 16;

/// The lane permutation whose float `i` comes from float `source(i)`, built on the stack (gates
/// are prepared often: a hybrid layer prepares its rotations for every batch).
fn permutation<S: Lanes>(source: impl Fn(usize) -> usize) -> S::Perm {
    let floats = 2 << S::LANE_BITS;
    let mut src = [0; MAX_VECTOR_FLOATS];
    for (i, slot) in src[..floats].iter_mut().enumerate() {
        *slot = source(i);
    }
    S::perm(&src[..floats])
}

/// The two coefficient vectors that give each lane of a vector the matrix entry `entry(lane)`:
/// (re, re) and (-im, im) per amplitude (see the module documentation); and whether any entry is
/// non-zero.
fn coefficients<S: Lanes>(entry: impl Fn(usize) -> Complex<f64>) -> (S::V, S::V, bool) {
    let mut re = [S::F::default(); MAX_VECTOR_FLOATS];
    let mut im = [S::F::default(); MAX_VECTOR_FLOATS];
    let mut nonzero = false;
    for lane in 0..1usize << S::LANE_BITS {
        let m = entry(lane);
        nonzero |= m.norm_sqr() != 0.0;
        re[2 * lane] = S::F::from_f64(m.re);
        re[2 * lane + 1] = S::F::from_f64(m.re);
        im[2 * lane] = S::F::from_f64(-m.im);
        im[2 * lane + 1] = S::F::from_f64(m.im);
    }
    let floats = 2 << S::LANE_BITS;
    (
        S::from_floats(&re[..floats]),
        S::from_floats(&im[..floats]),
        nonzero,
    )
}

struct Term<S: Lanes> {
    /// Index into the permuted copies of the group: c * 2^l + cl.
    src: usize,
    re: S::V,
    im: S::V,
}

/// A gate ready to apply with lanes `S`, on qubit positions local to the buffer it is applied to.
pub enum Prepared<S: Lanes> {
    Dense(Dense<S>),
    Diagonal(Diagonal<S>),
}

impl<S: Lanes> Prepared<S> {
    /// `gate.qubits` must be ascending (see [`Gate::sorted`]).
    pub fn new(gate: &Gate) -> Self {
        if gate.is_diagonal() {
            Prepared::Diagonal(Diagonal::new(gate))
        } else {
            Prepared::Dense(Dense::new(gate))
        }
    }

    /// Applies the gate to the whole buffer.
    ///
    /// # Safety
    /// `buf` must point to `len` amplitudes that no other thread touches, `len` a power of two no
    /// smaller than 2^LANE_BITS, and every target below log2(len).
    #[inline(always)]
    pub unsafe fn apply(&self, buf: *mut Complex<S::F>, len: usize) {
        match self {
            // SAFETY: the caller's contract.
            Prepared::Dense(d) => unsafe { d.apply_groups(buf, 0..d.groups(len)) },
            Prepared::Diagonal(d) => unsafe { d.apply(buf, len) },
        }
    }
}

/// A diagonal gate: every amplitude is multiplied by the entry its target bits select. The entry is
/// the same for all vectors between two changes of the lowest high target bit, so it is looked up
/// once per run of vectors.
pub struct Diagonal<S: Lanes> {
    high: Vec<usize>,
    /// Per value of the high target bits: the entries for each lane, as (re, re) and (-im, im).
    table: Vec<(S::V, S::V)>,
    swap: S::Perm,
}

// SAFETY: the vectors inside are plain floats.
unsafe impl<S: Lanes> Send for Diagonal<S> {}
unsafe impl<S: Lanes> Sync for Diagonal<S> {}

impl<S: Lanes> Diagonal<S> {
    fn new(gate: &Gate) -> Self {
        let targets = &gate.qubits;
        let lb = S::LANE_BITS;
        let l = targets.iter().take_while(|&&t| t < lb).count();
        let high: Vec<usize> = targets[l..].iter().map(|t| t - lb).collect();
        let d = gate.dim();
        let table = (0..1usize << high.len())
            .map(|hi| {
                let (re, im, _) = coefficients::<S>(|lane| {
                    let rl = extract(lane, &targets[..l]);
                    gate.matrix[(rl | hi << l) * (d + 1)]
                });
                (re, im)
            })
            .collect();
        Diagonal {
            high,
            table,
            swap: permutation::<S>(|f| f ^ 1),
        }
    }

    /// # Safety
    /// As for [`Prepared::apply`].
    #[inline(always)]
    unsafe fn apply(&self, buf: *mut Complex<S::F>, len: usize) {
        let lb = S::LANE_BITS;
        let vectors = len >> lb;
        let run = self.high.first().map_or(vectors, |&p| 1usize << p);
        for start in (0..vectors).step_by(run) {
            let entry = extract(start, &self.high);
            // SAFETY: `entry` has one bit per high target, and the table one entry per combination.
            let (re, im) = unsafe { *self.table.get_unchecked(entry) };
            for v in start..start + run {
                // SAFETY: v < vectors, so the vector lies inside the buffer.
                unsafe {
                    let p = buf.add(v << lb);
                    let x = S::load(p);
                    S::store(
                        p,
                        S::fma(re, x, S::fma(im, S::permute(x, self.swap), S::zero())),
                    );
                }
            }
        }
    }
}

/// A gate with off-diagonal entries, in lane-expanded form (see the module documentation).
pub struct Dense<S: Lanes> {
    /// High targets as bit positions of the vector index, ascending.
    high: Vec<usize>,
    /// Vector offsets of the 2^h members of a group, relative to the group's base.
    offsets: Vec<usize>,
    lane_targets: usize,
    /// For each cl: the plain and the re/im-swapped lane permutation.
    perms: Vec<(S::Perm, S::Perm)>,
    terms: Vec<Term<S>>,
    /// Terms of output vector r are `terms[row_start[r]..row_start[r + 1]]`.
    row_start: Vec<usize>,
}

// SAFETY: the vectors inside are plain floats.
unsafe impl<S: Lanes> Send for Dense<S> {}
unsafe impl<S: Lanes> Sync for Dense<S> {}

impl<S: Lanes> Dense<S> {
    fn new(gate: &Gate) -> Self {
        let targets = &gate.qubits;
        let k = targets.len();
        assert!(
            k <= MAX_QUBITS,
            "kernel takes at most {MAX_QUBITS} qubits, gate has {k}"
        );
        debug_assert!(targets.windows(2).all(|w| w[0] < w[1]));
        let lb = S::LANE_BITS;
        let l = targets.iter().take_while(|&&t| t < lb).count();
        let h = k - l;
        let high: Vec<usize> = targets[l..].iter().map(|t| t - lb).collect();
        let offsets = (0..1usize << h).map(|c| deposit(c, &high)).collect();
        let lane_mask: usize = targets[..l].iter().map(|t| 1 << t).sum();

        let perms = (0..1usize << l)
            .map(|cl| {
                let source = |lane: usize| (lane & !lane_mask) | deposit(cl, &targets[..l]);
                let plain = permutation::<S>(|f| 2 * source(f / 2) + f % 2);
                let swapped = permutation::<S>(|f| 2 * source(f / 2) + 1 - f % 2);
                (plain, swapped)
            })
            .collect();
        let d = 1usize << k;
        let mut terms = Vec::with_capacity(1 << (2 * h + l));
        let mut row_start = Vec::with_capacity((1 << h) + 1);
        row_start.push(0);
        for r in 0..1usize << h {
            for c in 0..1usize << h {
                for cl in 0..1usize << l {
                    let (re, im, nonzero) = coefficients::<S>(|lane| {
                        let rl = extract(lane, &targets[..l]);
                        gate.matrix[(rl | r << l) * d + (cl | c << l)]
                    });
                    if nonzero {
                        let src = c << l | cl;
                        terms.push(Term { src, re, im });
                    }
                }
            }
            row_start.push(terms.len());
        }
        Dense {
            high,
            offsets,
            lane_targets: l,
            perms,
            terms,
            row_start,
        }
    }

    /// Number of groups in a buffer of `len` amplitudes.
    fn groups(&self, len: usize) -> usize {
        (len >> S::LANE_BITS) >> self.high.len()
    }

    /// Applies the gate to groups `range` of the buffer at `buf`.
    ///
    /// # Safety
    /// `buf` must point to `len` amplitudes, `len >= 2^(LANE_BITS)`, every target below log2(len),
    /// `range` within `0..self.groups(len)`, and no other thread may touch the groups in `range`.
    #[inline(always)]
    unsafe fn apply_groups(&self, buf: *mut Complex<S::F>, range: std::ops::Range<usize>) {
        let (h, l) = (self.high.len(), self.lane_targets);
        if self.terms.len() == 1 << (2 * h + l) {
            // SAFETY: the caller's contract, and the gate is dense.
            unsafe {
                match (h, l) {
                    (0, 1) => return self.apply_dense::<0, 1, 4>(buf, range),
                    (0, 2) => return self.apply_dense::<0, 2, 4>(buf, range),
                    (0, 3) => return self.apply_dense::<0, 3, 4>(buf, range),
                    (1, 0) => return self.apply_dense::<1, 0, 2>(buf, range),
                    (1, 1) => return self.apply_dense::<1, 1, 2>(buf, range),
                    (1, 2) => return self.apply_dense::<1, 2, 2>(buf, range),
                    (1, 3) => return self.apply_dense::<1, 3, 2>(buf, range),
                    (2, 0) => return self.apply_dense::<2, 0, 1>(buf, range),
                    (2, 1) => return self.apply_dense::<2, 1, 1>(buf, range),
                    (2, 2) => return self.apply_dense::<2, 2, 1>(buf, range),
                    (2, 3) => return self.apply_dense::<2, 3, 1>(buf, range),
                    (3, 0) => return self.apply_dense::<3, 0, 1>(buf, range),
                    (3, 1) => return self.apply_dense::<3, 1, 1>(buf, range),
                    (3, 2) => return self.apply_dense::<3, 2, 1>(buf, range),
                    (3, 3) => return self.apply_dense::<3, 3, 1>(buf, range),
                    (4, 0) => return self.apply_dense::<4, 0, 1>(buf, range),
                    (4, 1) => return self.apply_dense::<4, 1, 1>(buf, range),
                    (4, 2) => return self.apply_dense::<4, 2, 1>(buf, range),
                    (5, 0) => return self.apply_dense::<5, 0, 1>(buf, range),
                    (5, 1) => return self.apply_dense::<5, 1, 1>(buf, range),
                    (6, 0) => return self.apply_dense::<6, 0, 1>(buf, range),
                    _ => {}
                }
            }
        }
        let mut g = range.start;
        while g + GROUPS_AT_ONCE <= range.end {
            // SAFETY: the caller's contract covers groups g..g + GROUPS_AT_ONCE.
            unsafe { self.apply_some::<GROUPS_AT_ONCE>(buf, g) };
            g += GROUPS_AT_ONCE;
        }
        for g in g..range.end {
            // SAFETY: as above.
            unsafe { self.apply_some::<1>(buf, g) };
        }
    }

    /// The common case, a fully dense gate, with H high and L lane targets known at compile time.
    /// Each of the 2^(H+L) sources (a vector, lane-permuted for each value of the lane targets) is
    /// formed once; its re/im-swapped twin is made in a register when needed. Output rows go four at
    /// a time with two accumulators each, and G groups at once when there are fewer rows, so that
    /// eight independent FMA chains are in flight and each coefficient load feeds one FMA.
    // Indexed loops with constant bounds are what the compiler unrolls into register code here.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    unsafe fn apply_dense<const H: usize, const L: usize, const G: usize>(
        &self,
        buf: *mut Complex<S::F>,
        range: std::ops::Range<usize>,
    ) {
        let lb = S::LANE_BITS;
        let rows = 1usize << H;
        let sources = 1usize << (H + L);
        let rows_at_once = rows.min(4);
        let mut src = [[MaybeUninit::<S::V>::uninit(); 1 << MAX_QUBITS]; G];
        let mut g = range.start;
        while g < range.end {
            let count = G.min(range.end - g);
            let bases: [usize; G] =
                std::array::from_fn(|j| insert_zeros(g + j.min(count - 1), &self.high));
            for j in 0..G {
                for c in 0..rows {
                    // SAFETY: base + offset is a vector of this group (caller's contract).
                    let x = unsafe { S::load(buf.add((bases[j] + self.offsets[c]) << lb)) };
                    for cl in 0..1usize << L {
                        let v = if L == 0 {
                            x
                        } else {
                            S::permute(x, self.perms[cl].0)
                        };
                        src[j][c << L | cl].write(v);
                    }
                }
            }
            for r0 in (0..rows).step_by(rows_at_once) {
                let mut a = [[S::zero(); G]; 4];
                let mut b = [[S::zero(); G]; 4];
                for s in 0..sources {
                    for j in 0..G {
                        // SAFETY: every src[j][s] for s < sources was written above.
                        let v = unsafe { src[j][s].assume_init() };
                        let vs = S::swap_re_im(v);
                        for r in 0..rows_at_once {
                            // SAFETY: a dense gate has rows * sources terms, ordered by (row, source).
                            let t = unsafe { self.terms.get_unchecked((r0 + r) * sources + s) };
                            a[r][j] = S::fma(t.re, v, a[r][j]);
                            b[r][j] = S::fma(t.im, vs, b[r][j]);
                        }
                    }
                }
                for r in 0..rows_at_once {
                    for j in 0..count {
                        // SAFETY: as for the loads; inputs were copied out before any store.
                        unsafe {
                            S::store(
                                buf.add((bases[j] + self.offsets[r0 + r]) << lb),
                                S::add(a[r][j], b[r][j]),
                            )
                        };
                    }
                }
            }
            g += count;
        }
    }

    /// Groups `first..first + G` together: each coefficient is loaded once for G groups, and the
    /// 2G accumulators are independent, so the FMAs overlap instead of waiting on each other.
    #[inline(always)]
    unsafe fn apply_some<const G: usize>(&self, buf: *mut Complex<S::F>, first: usize) {
        let lb = S::LANE_BITS;
        let mut plain = [[MaybeUninit::<S::V>::uninit(); 1 << MAX_QUBITS]; G];
        let mut swapped = [[MaybeUninit::<S::V>::uninit(); 1 << MAX_QUBITS]; G];
        // Insert a zero bit at every high target position (ascending) to get a group's base.
        let bases: [usize; G] = std::array::from_fn(|j| insert_zeros(first + j, &self.high));
        for j in 0..G {
            for (c, &off) in self.offsets.iter().enumerate() {
                // SAFETY: base + off is a vector index inside the buffer (caller's contract).
                let x = unsafe { S::load(buf.add((bases[j] + off) << lb)) };
                for (cl, &(p, s)) in self.perms.iter().enumerate() {
                    let i = c << self.lane_targets | cl;
                    plain[j][i].write(S::permute(x, p));
                    swapped[j][i].write(S::permute(x, s));
                }
            }
        }
        for (r, &off) in self.offsets.iter().enumerate() {
            let mut a = [S::zero(); G];
            let mut b = [S::zero(); G];
            // SAFETY: row_start has 2^h + 1 entries, all within `terms`.
            let terms = unsafe {
                self.terms.get_unchecked(
                    *self.row_start.get_unchecked(r)..*self.row_start.get_unchecked(r + 1),
                )
            };
            for t in terms {
                for j in 0..G {
                    // SAFETY: t.src < 2^k, and every such entry was written above.
                    let (p, s) = unsafe {
                        (
                            plain[j].get_unchecked(t.src).assume_init(),
                            swapped[j].get_unchecked(t.src).assume_init(),
                        )
                    };
                    a[j] = S::fma(t.re, p, a[j]);
                    b[j] = S::fma(t.im, s, b[j]);
                }
            }
            for j in 0..G {
                // SAFETY: as for the loads above.
                unsafe { S::store(buf.add((bases[j] + off) << lb), S::add(a[j], b[j])) };
            }
        }
    }
}
