//! Inference with a model stored by a training run.

use std::path::Path;

use candle_core::{Device, Tensor};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::checkpoint::{self, Files, ModelInfo};
use crate::model::{Classifier, device_for, simulator_for};
use crate::spec::TrainSpec;
use crate::train::TrainError;

pub struct StoredModel {
    pub info: ModelInfo,
    model: Classifier,
    device: Device,
}

impl StoredModel {
    /// Opens a model directory, its files read by `files`, checking them against its id.
    pub fn open(dir: &Path, device: &Device, files: &dyn Files) -> Result<Self, TrainError> {
        let (info, spec, weights) = checkpoint::load_model(dir, device, files)?;
        let spec = TrainSpec::from_yaml(&spec)
            .map_err(|e| candle_core::Error::Msg(format!("{}/spec.yaml: {e}", dir.display())))?;
        let simulator = simulator_for(&spec.model, device)?;
        let device = &device_for(&spec.model, device);
        // The initial values are overwritten by the stored weights; any seed does.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let model = Classifier::new(
            &spec.model,
            &info.sample_shape,
            info.classes,
            &mut rng,
            device,
            &simulator,
        )?;
        model.load(&weights)?;
        Ok(Self {
            info,
            model,
            device: device.clone(),
        })
    }

    /// Class probabilities for rows of `features` (`rows × info.feature_len` values).
    pub fn predict(&self, features: Vec<f32>) -> Result<Vec<Vec<f32>>, TrainError> {
        let width = self.info.feature_len;
        if !features.len().is_multiple_of(width) {
            return Err(candle_core::Error::Msg(format!(
                "{} input values are not rows of the model's {width} features",
                features.len()
            ))
            .into());
        }
        let rows = features.len() / width;
        let x = Tensor::from_vec(features, (rows, self.info.feature_len), &self.device)?;
        let logits = self.model.forward(&x, None)?;
        Ok(candle_nn::ops::softmax_last_dim(&logits)?.to_vec2()?)
    }
}

/// The most likely class of each row of probabilities.
pub fn most_likely(probabilities: &[Vec<f32>]) -> Vec<usize> {
    probabilities
        .iter()
        .map(|p| {
            (0..p.len())
                .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                .unwrap_or(0)
        })
        .collect()
}
