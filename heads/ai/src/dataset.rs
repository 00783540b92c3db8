//! Labelled datasets for classification, held in memory as f32 features.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("unknown dataset `{0}`; the built-in datasets are: digits")]
    Unknown(String),
    #[error("dataset `{name}` is malformed: {detail}")]
    Malformed { name: String, detail: String },
    #[error(
        "dataset `{name}` has {samples} samples: too few to hold out a validation split of {split}"
    )]
    TooSmall {
        name: String,
        samples: usize,
        split: f64,
    },
}

/// Samples in rows: `features[i * feature_len..(i + 1) * feature_len]` has label `labels[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub name: String,
    pub features: Vec<f32>,
    pub labels: Vec<u32>,
    pub feature_len: usize,
    pub classes: usize,
}

/// `heads/ai/data/digits.npy`: see the README beside it for its source and licence.
const DIGITS: &[u8] = include_bytes!("../data/digits.npy");

impl Dataset {
    pub fn builtin(name: &str) -> Result<Self, DatasetError> {
        match name {
            "digits" => Self::digits(),
            _ => Err(DatasetError::Unknown(name.to_owned())),
        }
    }

    /// The 1,797 8x8 digits, pixels scaled from 0..16 to 0..1.
    fn digits() -> Result<Self, DatasetError> {
        let malformed = |detail: String| DatasetError::Malformed {
            name: "digits".into(),
            detail,
        };
        let array = npyz::NpyFile::new(DIGITS).map_err(|e| malformed(e.to_string()))?;
        let shape = array.shape().to_vec();
        if shape != [1797, 65] {
            return Err(malformed(format!("shape {shape:?}, expected [1797, 65]")));
        }
        let bytes: Vec<u8> = array.into_vec().map_err(|e| malformed(e.to_string()))?;
        let mut features = Vec::with_capacity(1797 * 64);
        let mut labels = Vec::with_capacity(1797);
        for row in bytes.chunks_exact(65) {
            features.extend(row[..64].iter().map(|&p| f32::from(p) / 16.0));
            labels.push(u32::from(row[64]));
        }
        let dataset = Self {
            name: "digits".into(),
            features,
            labels,
            feature_len: 64,
            classes: 10,
        };
        dataset.check()?;
        Ok(dataset)
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Shapes agree and every label names a class.
    fn check(&self) -> Result<(), DatasetError> {
        let malformed = |detail: String| DatasetError::Malformed {
            name: self.name.clone(),
            detail,
        };
        if self.features.len() != self.labels.len() * self.feature_len {
            return Err(malformed(format!(
                "{} feature values for {} samples of {}",
                self.features.len(),
                self.labels.len(),
                self.feature_len
            )));
        }
        if let Some(bad) = self.labels.iter().find(|&&l| l as usize >= self.classes) {
            return Err(malformed(format!(
                "label {bad} but only {} classes",
                self.classes
            )));
        }
        Ok(())
    }

    /// The samples at `indices`, in that order.
    fn select(&self, indices: &[usize]) -> Self {
        let mut features = Vec::with_capacity(indices.len() * self.feature_len);
        for &i in indices {
            features.extend_from_slice(&self.features[i * self.feature_len..][..self.feature_len]);
        }
        Self {
            name: self.name.clone(),
            features,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            feature_len: self.feature_len,
            classes: self.classes,
        }
    }

    /// A seeded shuffle split into (training, validation), `fraction` of the samples held out.
    pub fn split(&self, fraction: f64, seed: u64) -> Result<(Self, Self), DatasetError> {
        let held_out = (self.len() as f64 * fraction).round() as usize;
        if held_out == 0 || held_out >= self.len() {
            return Err(DatasetError::TooSmall {
                name: self.name.clone(),
                samples: self.len(),
                split: fraction,
            });
        }
        let order = shuffled(self.len(), &mut ChaCha8Rng::seed_from_u64(seed));
        let (validation, training) = order.split_at(held_out);
        Ok((self.select(training), self.select(validation)))
    }
}

/// 0..n in a random order (Fisher-Yates), the same for the same generator state.
pub fn shuffled(n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}
