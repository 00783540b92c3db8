//! Reading results off a statevector held in host memory: measurement probabilities, collapse,
//! sampling and Pauli expectation values. Parallel over the state with rayon.

use crate::backend::cpu::lanes::Real;
use chimera_circuit::pauli::PauliString;
use num_complex::Complex;
use rayon::prelude::*;

/// Amplitudes per parallel work item.
pub const CHUNK: usize = 1 << 14;

fn norm_sqr<F: Real>(a: &Complex<F>) -> f64 {
    let (re, im) = (a.re.to_f64(), a.im.to_f64());
    re * re + im * im
}

pub fn probability_of_one<F: Real>(amps: &[Complex<F>], qubit: usize) -> f64 {
    amps.par_chunks(CHUNK)
        .enumerate()
        .map(|(c, chunk)| {
            let base = c * CHUNK;
            chunk
                .iter()
                .enumerate()
                .filter(|(i, _)| (base + i) >> qubit & 1 == 1)
                .map(|(_, a)| norm_sqr(a))
                .sum::<f64>()
        })
        .sum()
}

/// Keeps the amplitudes where `qubit` equals `outcome`, scaled by 1/sqrt(probability).
pub fn collapse<F: Real>(amps: &mut [Complex<F>], qubit: usize, outcome: bool, probability: f64)
where
    Complex<F>: std::ops::MulAssign<F>,
{
    let scale = F::from_f64(1.0 / probability.sqrt());
    let keep = outcome as usize;
    amps.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            let base = c * CHUNK;
            for (i, a) in chunk.iter_mut().enumerate() {
                if (base + i) >> qubit & 1 == keep {
                    *a *= scale;
                } else {
                    *a = Complex::new(F::default(), F::default());
                }
            }
        });
}

/// The basis state each of `uniforms` (ascending, in [0, 1)) falls in, by cumulative probability.
/// One parallel pass sums each chunk; the draws are shared out among chunks by those sums, and the
/// chunks that received any are scanned in parallel.
pub fn sample<F: Real>(amps: &[Complex<F>], uniforms: &[f64]) -> Vec<u64> {
    let chunk_sums: Vec<f64> = amps
        .par_chunks(CHUNK)
        .map(|c| c.iter().map(norm_sqr).sum())
        .collect();
    let total: f64 = chunk_sums.iter().sum();
    let parts: Vec<Vec<u64>> = assign_draws(&chunk_sums, uniforms)
        .into_par_iter()
        .map(|d| {
            let start = d.chunk * CHUNK;
            scan_chunk(
                &amps[start..(start + CHUNK).min(amps.len())],
                start,
                &d,
                total,
                uniforms,
            )
        })
        .collect();
    let mut out = parts.concat();
    // Only an all-zero state leaves draws unassigned.
    out.resize(uniforms.len(), 0);
    out
}

/// The draws that fall in one chunk of a state.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkDraws {
    pub chunk: usize,
    /// Probability of all earlier chunks.
    pub before: f64,
    /// Which of the (ascending) uniforms fall here.
    pub draws: std::ops::Range<usize>,
}

/// Shares ascending `uniforms` out among chunks whose probabilities are `chunk_sums`. A chunk of zero
/// probability gets none; draws past the total by rounding go to the last chunk with any.
pub fn assign_draws(chunk_sums: &[f64], uniforms: &[f64]) -> Vec<ChunkDraws> {
    debug_assert!(uniforms.windows(2).all(|w| w[0] <= w[1]));
    let total: f64 = chunk_sums.iter().sum();
    let mut work: Vec<ChunkDraws> = Vec::new();
    let mut before = 0.0;
    let mut next = 0;
    for (chunk, &s) in chunk_sums.iter().enumerate() {
        let end = uniforms[next..]
            .iter()
            .position(|&u| u * total >= before + s)
            .map_or(uniforms.len(), |p| next + p);
        if end > next && s > 0.0 {
            work.push(ChunkDraws {
                chunk,
                before,
                draws: next..end,
            });
            next = end;
        }
        before += s;
    }
    if let Some(last) = work.last_mut() {
        last.draws.end = uniforms.len();
    } else if let Some(chunk) = chunk_sums.iter().rposition(|&s| s > 0.0) {
        work.push(ChunkDraws {
            chunk,
            before: 0.0,
            draws: 0..uniforms.len(),
        });
    }
    work
}

/// The basis states (indices from `first_index`) that the chunk's draws select. A state of zero
/// probability never receives a draw; a draw lost to rounding at the chunk's end goes to its last
/// state with any probability.
pub fn scan_chunk<F: Real>(
    chunk: &[Complex<F>],
    first_index: usize,
    d: &ChunkDraws,
    total: f64,
    uniforms: &[f64],
) -> Vec<u64> {
    let draws = &uniforms[d.draws.clone()];
    let mut out = Vec::with_capacity(draws.len());
    let mut acc = d.before;
    for (i, a) in chunk.iter().enumerate() {
        acc += norm_sqr(a);
        while out.len() < draws.len() && draws[out.len()] * total < acc {
            out.push((first_index + i) as u64);
        }
    }
    let last = chunk.iter().rposition(|a| norm_sqr(a) > 0.0).unwrap_or(0);
    out.resize(draws.len(), (first_index + last) as u64);
    out
}

/// <psi|P|psi> for a normalised state.
pub fn expectation<F: Real>(amps: &[Complex<F>], p: &PauliString) -> f64 {
    let flip = p.flip as usize;
    let sign = p.sign as usize;
    // The sum times P's phase is real for a Hermitian P.
    let phase = p.phase();
    let sum: Complex<f64> = amps
        .par_chunks(CHUNK)
        .enumerate()
        .map(|(c, chunk)| {
            let base = c * CHUNK;
            let mut s = Complex::new(0.0, 0.0);
            for (j, a) in chunk.iter().enumerate() {
                let i = base + j;
                let b = amps[i ^ flip];
                let term = Complex::new(b.re.to_f64(), -b.im.to_f64())
                    * Complex::new(a.re.to_f64(), a.im.to_f64());
                if (i & sign).count_ones() % 2 == 1 {
                    s -= term;
                } else {
                    s += term;
                }
            }
            s
        })
        .sum();
    (phase * sum).re
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_lost_to_rounding_land_on_the_last_state_with_probability() {
        let mut amps = vec![Complex::new(0.0f64, 0.0); 3 * CHUNK];
        amps[5] = Complex::new(0.6, 0.0);
        amps[CHUNK + 7] = Complex::new(0.0, 0.8);
        assert_eq!(
            sample(&amps, &[0.0, 0.35, 0.37, 0.999, 1.0, 1.5]),
            vec![
                5,
                5,
                7 + CHUNK as u64,
                7 + CHUNK as u64,
                7 + CHUNK as u64,
                7 + CHUNK as u64
            ]
        );
    }

    #[test]
    fn an_unnormalised_state_is_sampled_by_its_relative_weights() {
        let amps = vec![
            Complex::new(2.0f32, 0.0),
            Complex::new(0.0, 0.0),
            Complex::new(0.0, 2.0),
            Complex::new(0.0, 0.0),
        ];
        assert_eq!(sample(&amps, &[0.1, 0.49, 0.51, 0.9]), vec![0, 0, 2, 2]);
    }
}
