//! Two interleaved half circles, as scikit-learn's `make_moons`: a seeded, generated dataset for
//! hybrid classifiers.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

/// `samples` points (x, y) and their labels (0: the upper moon, 1: the lower), each coordinate
/// with Gaussian noise of standard deviation `noise`, shuffled; the same seed gives the same set.
pub fn make_moons(samples: usize, noise: f64, seed: u64) -> (Vec<[f64; 2]>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let upper = samples / 2;
    let mut points: Vec<([f64; 2], u32)> = (0..samples)
        .map(|i| {
            let (n, j, label) = if i < upper {
                (upper, i, 0)
            } else {
                (samples - upper, i - upper, 1)
            };
            let t = std::f64::consts::PI * j as f64 / (n.max(2) - 1) as f64;
            let (x, y) = if label == 0 {
                (t.cos(), t.sin())
            } else {
                (1.0 - t.cos(), 0.5 - t.sin())
            };
            (
                [x + noise * normal(&mut rng), y + noise * normal(&mut rng)],
                label,
            )
        })
        .collect();
    // Fisher-Yates.
    for i in (1..points.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        points.swap(i, j);
    }
    points.into_iter().unzip()
}

fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u = 1.0 - uniform(rng);
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * uniform(rng)).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moons_are_balanced_seeded_and_where_they_should_be() {
        let (points, labels) = make_moons(200, 0.0, 3);
        assert_eq!(labels.iter().filter(|&&l| l == 1).count(), 100);
        for (p, l) in points.iter().zip(&labels) {
            // Without noise each point lies on its unit circle.
            let centre = if *l == 0 { (0.0, 0.0) } else { (1.0, 0.5) };
            let r = ((p[0] - centre.0).powi(2) + (p[1] - centre.1).powi(2)).sqrt();
            assert!((r - 1.0).abs() < 1e-12);
        }
        assert_eq!(make_moons(50, 0.1, 9), make_moons(50, 0.1, 9));
        assert_ne!(make_moons(50, 0.1, 9), make_moons(50, 0.1, 10));
    }
}
