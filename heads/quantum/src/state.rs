//! Reading results off a statevector held in host memory: measurement probabilities, collapse,
//! sampling and Pauli expectation values. Parallel over the state with rayon.

use crate::backend::cpu::lanes::Real;
use crate::pauli::PauliString;
use num_complex::Complex;
use rayon::prelude::*;

/// Amplitudes per parallel work item.
const CHUNK: usize = 1 << 14;

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
/// Uniforms past the total (rounding) land on the last state with non-zero probability.
pub fn sample<F: Real>(amps: &[Complex<F>], uniforms: &[f64]) -> Vec<u64> {
    debug_assert!(uniforms.windows(2).all(|w| w[0] <= w[1]));
    let chunk_sums: Vec<f64> = amps
        .par_chunks(CHUNK)
        .map(|c| c.iter().map(norm_sqr).sum())
        .collect();
    let total: f64 = chunk_sums.iter().sum();
    let mut out = Vec::with_capacity(uniforms.len());
    let mut acc = 0.0;
    for (c, &s) in chunk_sums.iter().enumerate() {
        let Some(&u) = uniforms.get(out.len()) else {
            break;
        };
        if u * total >= acc + s {
            acc += s;
            continue;
        }
        let base = c * CHUNK;
        for (i, a) in amps[base..].iter().take(CHUNK).enumerate() {
            // Strict comparison: a state of zero probability never receives a draw.
            acc += norm_sqr(a);
            while out.len() < uniforms.len() && uniforms[out.len()] * total < acc {
                out.push((base + i) as u64);
            }
        }
    }
    if out.len() < uniforms.len() {
        let last = chunk_sums.iter().rposition(|&s| s > 0.0).map_or(0, |c| {
            let chunk = &amps[c * CHUNK..];
            c * CHUNK
                + chunk
                    .iter()
                    .take(CHUNK)
                    .rposition(|a| norm_sqr(a) > 0.0)
                    .unwrap_or(0)
        });
        out.resize(uniforms.len(), last as u64);
    }
    out
}

/// <psi|P|psi> for a normalised state.
pub fn expectation<F: Real>(amps: &[Complex<F>], p: &PauliString) -> f64 {
    let flip = p.flip as usize;
    let sign = p.sign as usize;
    // i^y_count: the phase every term carries; the sum is real for a Hermitian P.
    let phase = [
        Complex::new(1.0, 0.0),
        Complex::new(0.0, 1.0),
        Complex::new(-1.0, 0.0),
        Complex::new(0.0, -1.0),
    ][(p.y_count % 4) as usize];
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
