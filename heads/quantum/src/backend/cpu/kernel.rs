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
use crate::circuit::Gate;
use num_complex::Complex;

/// Widest gate the kernel takes: its stack buffers hold 2^MAX_QUBITS vectors.
pub const MAX_QUBITS: usize = 6;

struct Term<S: Lanes> {
    /// Index into the permuted copies of the group: c * 2^l + cl.
    src: usize,
    re: S::V,
    im: S::V,
}

/// A gate ready to apply with lanes `S`, on qubit positions local to the buffer it is applied to.
pub struct Prepared<S: Lanes> {
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
unsafe impl<S: Lanes> Send for Prepared<S> {}
unsafe impl<S: Lanes> Sync for Prepared<S> {}

impl<S: Lanes> Prepared<S> {
    /// `gate.qubits` must be ascending (see [`Gate::sorted`]) and fit the buffers it will meet.
    pub fn new(gate: &Gate) -> Self {
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
        let offsets = (0..1usize << h)
            .map(|c| (0..h).fold(0, |acc, j| acc | (((c >> j) & 1) << high[j])))
            .collect();
        let lane_mask: usize = targets[..l].iter().map(|t| 1 << t).sum();
        let deposit = |cl: usize| (0..l).fold(0, |acc, j| acc | (((cl >> j) & 1) << targets[j]));
        let lanes = 1usize << lb;
        let perms = (0..1usize << l)
            .map(|cl| {
                let source = |lane: usize| (lane & !lane_mask) | deposit(cl);
                let plain: Vec<usize> = (0..2 * lanes).map(|f| 2 * source(f / 2) + f % 2).collect();
                let swapped: Vec<usize> = (0..2 * lanes)
                    .map(|f| 2 * source(f / 2) + 1 - f % 2)
                    .collect();
                (S::perm(&plain), S::perm(&swapped))
            })
            .collect();
        let d = 1usize << k;
        let mut terms = Vec::new();
        let mut row_start = vec![0];
        for r in 0..1usize << h {
            for c in 0..1usize << h {
                for cl in 0..1usize << l {
                    let mut re = vec![S::F::default(); 2 * lanes];
                    let mut im = vec![S::F::default(); 2 * lanes];
                    let mut nonzero = false;
                    for lane in 0..lanes {
                        let rl = (0..l).fold(0, |acc, j| acc | (((lane >> targets[j]) & 1) << j));
                        let m = gate.matrix[(rl | r << l) * d + (cl | c << l)];
                        nonzero |= m.norm_sqr() != 0.0;
                        re[2 * lane] = S::F::from_f64(m.re);
                        re[2 * lane + 1] = S::F::from_f64(m.re);
                        im[2 * lane] = S::F::from_f64(-m.im);
                        im[2 * lane + 1] = S::F::from_f64(m.im);
                    }
                    if nonzero {
                        terms.push(Term {
                            src: c << l | cl,
                            re: S::from_floats(&re),
                            im: S::from_floats(&im),
                        });
                    }
                }
            }
            row_start.push(terms.len());
        }
        Prepared {
            high,
            offsets,
            lane_targets: l,
            perms,
            terms,
            row_start,
        }
    }

    /// Number of groups in a buffer of `len` amplitudes.
    pub fn groups(&self, len: usize) -> usize {
        (len >> S::LANE_BITS) >> self.high.len()
    }

    /// Applies the gate to groups `range` of the buffer at `buf`.
    ///
    /// # Safety
    /// `buf` must point to `len` amplitudes, `len >= 2^(LANE_BITS)`, every target below log2(len),
    /// `range` within `0..self.groups(len)`, and no other thread may touch the groups in `range`.
    #[inline(always)]
    pub unsafe fn apply_groups(&self, buf: *mut Complex<S::F>, range: std::ops::Range<usize>) {
        let lb = S::LANE_BITS;
        let nx = 1usize << (self.high.len() + self.lane_targets);
        let mut plain = [S::zero(); 1 << MAX_QUBITS];
        let mut swapped = [S::zero(); 1 << MAX_QUBITS];
        for g in range {
            // Insert a zero bit at every high target position (ascending) to get the group's base.
            let base = self
                .high
                .iter()
                .fold(g, |b, &p| ((b >> p) << (p + 1)) | (b & ((1 << p) - 1)));
            for (c, &off) in self.offsets.iter().enumerate() {
                // SAFETY: base + off is a vector index inside the buffer (caller's contract).
                let x = unsafe { S::load(buf.add((base + off) << lb)) };
                for (cl, &(p, s)) in self.perms.iter().enumerate() {
                    let i = c << self.lane_targets | cl;
                    plain[i] = S::permute(x, p);
                    swapped[i] = S::permute(x, s);
                }
            }
            debug_assert!(nx <= plain.len());
            for (r, &off) in self.offsets.iter().enumerate() {
                let mut acc = S::zero();
                for t in &self.terms[self.row_start[r]..self.row_start[r + 1]] {
                    acc = S::fma(t.re, plain[t.src], acc);
                    acc = S::fma(t.im, swapped[t.src], acc);
                }
                // SAFETY: as for the load above.
                unsafe { S::store(buf.add((base + off) << lb), acc) };
            }
        }
    }
}
