//! Training a classifier from a spec, reporting progress after every epoch.

use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::dataset::{Dataset, DatasetError, shuffled};
use crate::model::{Mlp, predictions};
use crate::sgd::{Sgd, SgdParams};
use crate::spec::{Loss, OptimizerSpec, TrainSpec};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("the loss became {0} at epoch {1}; lower the learning rate")]
    Diverged(f32, usize),
}

/// What one epoch achieved.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochProgress {
    /// 1-based.
    pub epoch: usize,
    pub epochs: usize,
    pub learning_rate: f64,
    /// Mean training loss over the epoch's batches.
    pub loss: f32,
    pub train_accuracy: f64,
    pub val_loss: f32,
    pub val_accuracy: f64,
    /// Training samples per second in this epoch (forward, backward and update).
    pub samples_per_second: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    pub epochs: Vec<EpochProgress>,
    pub train_samples: usize,
    pub val_samples: usize,
    pub parameters: usize,
    pub seconds: f64,
}

impl TrainReport {
    pub fn val_accuracy(&self) -> f64 {
        self.epochs.last().map_or(0.0, |e| e.val_accuracy)
    }
}

enum AnyOptimizer {
    AdamW(AdamW),
    Sgd(Sgd),
}

impl AnyOptimizer {
    fn new(spec: &OptimizerSpec, model: &Mlp) -> candle_core::Result<Self> {
        let vars = model.vars().to_vec();
        Ok(match *spec {
            OptimizerSpec::Adamw {
                learning_rate,
                weight_decay,
                beta1,
                beta2,
            } => Self::AdamW(AdamW::new(
                vars,
                ParamsAdamW {
                    lr: learning_rate,
                    beta1,
                    beta2,
                    eps: 1e-8,
                    weight_decay,
                },
            )?),
            OptimizerSpec::Sgd {
                learning_rate,
                momentum,
                weight_decay,
            } => Self::Sgd(Sgd::new(
                vars,
                SgdParams {
                    learning_rate,
                    momentum,
                    weight_decay,
                },
            )?),
        })
    }

    fn backward_step(&mut self, loss: &Tensor) -> candle_core::Result<()> {
        match self {
            Self::AdamW(o) => o.backward_step(loss),
            Self::Sgd(o) => o.backward_step(loss),
        }
    }

    fn set_learning_rate(&mut self, rate: f64) {
        match self {
            Self::AdamW(o) => o.set_learning_rate(rate),
            Self::Sgd(o) => o.set_learning_rate(rate),
        }
    }
}

/// A batch of `data` at `indices` as (features [n, len], labels [n]).
fn batch(
    data: &Dataset,
    indices: &[usize],
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let mut features = Vec::with_capacity(indices.len() * data.feature_len);
    for &i in indices {
        features.extend_from_slice(&data.features[i * data.feature_len..][..data.feature_len]);
    }
    let labels: Vec<u32> = indices.iter().map(|&i| data.labels[i]).collect();
    Ok((
        Tensor::from_vec(features, (indices.len(), data.feature_len), device)?,
        Tensor::from_vec(labels, indices.len(), device)?,
    ))
}

fn loss(kind: Loss, logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    match kind {
        Loss::CrossEntropy => candle_nn::loss::cross_entropy(logits, labels),
    }
}

/// Mean loss and accuracy of `model` on all of `data`.
fn evaluate(
    model: &Mlp,
    data: &Dataset,
    kind: Loss,
    device: &Device,
) -> candle_core::Result<(f32, f64)> {
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    let all: Vec<usize> = (0..data.len()).collect();
    for chunk in all.chunks(1024) {
        let (x, y) = batch(data, chunk, device)?;
        let logits = model.forward(&x, None)?;
        loss_sum += f64::from(loss(kind, &logits, &y)?.to_scalar::<f32>()?) * chunk.len() as f64;
        let predicted = predictions(&logits)?;
        correct += chunk
            .iter()
            .zip(predicted)
            .filter(|&(&i, p)| data.labels[i] == p)
            .count();
    }
    Ok((
        (loss_sum / data.len() as f64) as f32,
        correct as f64 / data.len() as f64,
    ))
}

/// Trains the spec's model on the spec's dataset; `on_epoch` sees each epoch's progress.
/// The same spec and seed give the same result on the CPU.
pub fn train(
    spec: &TrainSpec,
    device: &Device,
    mut on_epoch: impl FnMut(&EpochProgress),
) -> Result<TrainReport, TrainError> {
    let started = Instant::now();
    let dataset = Dataset::builtin(&spec.dataset)?;
    let (training, validation) = dataset.split(spec.validation_split, spec.seed)?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let model = Mlp::new(
        &spec.model,
        dataset.feature_len,
        dataset.classes,
        &mut rng,
        device,
    )?;
    let mut optimizer = AnyOptimizer::new(&spec.optimizer, &model)?;
    let base_rate = spec.optimizer.learning_rate();
    let mut epochs = Vec::with_capacity(spec.epochs);
    for epoch in 0..spec.epochs {
        let learning_rate = spec.schedule.learning_rate(base_rate, epoch, spec.epochs);
        optimizer.set_learning_rate(learning_rate);
        let epoch_started = Instant::now();
        let order = shuffled(training.len(), &mut rng);
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        for indices in order.chunks(spec.batch_size) {
            let (x, y) = batch(&training, indices, device)?;
            let logits = model.forward(&x, Some(&mut rng))?;
            let batch_loss = loss(spec.loss, &logits, &y)?;
            optimizer.backward_step(&batch_loss)?;
            let value = batch_loss.to_scalar::<f32>()?;
            if !value.is_finite() {
                return Err(TrainError::Diverged(value, epoch + 1));
            }
            loss_sum += f64::from(value) * indices.len() as f64;
            correct += indices
                .iter()
                .zip(predictions(&logits)?)
                .filter(|&(&i, p)| training.labels[i] == p)
                .count();
        }
        let seconds = epoch_started.elapsed().as_secs_f64();
        let (val_loss, val_accuracy) = evaluate(&model, &validation, spec.loss, device)?;
        let progress = EpochProgress {
            epoch: epoch + 1,
            epochs: spec.epochs,
            learning_rate,
            loss: (loss_sum / training.len() as f64) as f32,
            train_accuracy: correct as f64 / training.len() as f64,
            val_loss,
            val_accuracy,
            samples_per_second: training.len() as f64 / seconds,
        };
        on_epoch(&progress);
        epochs.push(progress);
    }
    Ok(TrainReport {
        epochs,
        train_samples: training.len(),
        val_samples: validation.len(),
        parameters: model.vars().iter().map(|v| v.elem_count()).sum(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
