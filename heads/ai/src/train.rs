//! Training a classifier from a spec: events after every step and epoch, checkpoints on the
//! spec's schedule, exact resumption from one, and the trained model stored with an id.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{D, DType, Device, Tensor};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::checkpoint::{self, Checkpoint, CheckpointError, ModelInfo, Progress};
use crate::dataset::{Dataset, DatasetError, default_data_dir, shuffled};
use crate::model::{Classifier, MAX_BATCH_ACTIVATIONS, device_for, predictions, simulator_for};
use crate::optim::Optimizer;
use crate::spec::{Loss, SpecError, TrainSpec};
use chimera_hybrid::Simulator;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// The model the spec describes cannot be built for this dataset (too large, say).
    #[error("{0}")]
    Model(String),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("the loss became {0} at epoch {1}; lower the learning rate")]
    Diverged(f32, usize),
    #[error("cancelled after step {step}")]
    Cancelled { step: usize },
}

pub use chimera_ai_spec::EpochProgress;

/// What a run reports as it goes. Answering `Break` to any of them cancels the run.
#[derive(Debug)]
pub enum TrainEvent<'a> {
    Step { step: usize },
    Checkpoint { step: usize, dir: &'a Path },
    Epoch(&'a EpochProgress),
}

/// Where a run keeps its checkpoints and model, and where it starts.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Checkpoints go to `run_dir/checkpoints/`, the trained model to `run_dir/model/`. Without
    /// it nothing is written.
    pub run_dir: Option<PathBuf>,
    /// A checkpoint directory to continue from.
    pub resume_from: Option<PathBuf>,
    /// Where datasets named by file are read: default `dataset::default_data_dir()`.
    pub data_dir: Option<PathBuf>,
    /// How checkpoints are written and read: [`checkpoint::PlainFiles`] when `None`.
    pub checkpoint_files: Option<Arc<dyn checkpoint::Files>>,
    /// How the trained model is written: [`checkpoint::PlainFiles`] when `None`.
    pub model_files: Option<Arc<dyn checkpoint::Files>>,
}

impl RunOptions {
    fn files(&self) -> &dyn checkpoint::Files {
        self.checkpoint_files
            .as_deref()
            .unwrap_or(&checkpoint::PlainFiles)
    }

    fn model_files(&self) -> &dyn checkpoint::Files {
        self.model_files
            .as_deref()
            .unwrap_or(&checkpoint::PlainFiles)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    pub epochs: Vec<EpochProgress>,
    pub train_samples: usize,
    pub val_samples: usize,
    pub parameters: usize,
    pub seconds: f64,
    /// The stored model, when the run had a directory.
    pub model: Option<(PathBuf, ModelInfo)>,
}

impl TrainReport {
    pub fn val_accuracy(&self) -> f64 {
        self.epochs.last().map_or(0.0, |e| e.val_accuracy)
    }
}

/// Batches of a dataset as (features [n, len], labels [n]) tensors on a device. On the CPU each
/// batch is gathered from the host arrays; on a GPU the whole split is uploaded once and each
/// batch gathered there, so that a step sends only its sample indices.
struct Batches<'a> {
    data: &'a Dataset,
    device: &'a Device,
    on_device: Option<(Tensor, Tensor)>,
}

impl<'a> Batches<'a> {
    fn new(data: &'a Dataset, device: &'a Device) -> candle_core::Result<Self> {
        let on_device = if device.is_cpu() {
            None
        } else {
            let all: Vec<usize> = (0..data.len()).collect();
            Some(gather(data, &all, device)?)
        };
        Ok(Self {
            data,
            device,
            on_device,
        })
    }

    fn get(&self, indices: &[usize]) -> candle_core::Result<(Tensor, Tensor)> {
        match &self.on_device {
            None => gather(self.data, indices, self.device),
            Some((features, labels)) => {
                let at: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
                let at = Tensor::from_vec(at, indices.len(), self.device)?;
                Ok((features.index_select(&at, 0)?, labels.index_select(&at, 0)?))
            }
        }
    }
}

/// The samples of `data` at `indices` as (features [n, len], labels [n]) on `device`.
fn gather(
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

/// An epoch's running sums (loss × samples, correct predictions), kept on the device and read only
/// at checkpoints and at the epoch's end: a GPU runs the steps between without waiting for the
/// host.
struct EpochSums {
    loss: Tensor,
    correct: Tensor,
}

impl EpochSums {
    /// The sums `progress` holds (not zero when resumed mid-epoch).
    fn new(progress: &Progress, device: &Device) -> candle_core::Result<Self> {
        Ok(Self {
            loss: Tensor::new(progress.loss_sum as f32, device)?,
            correct: Tensor::new(progress.correct as u32, device)?,
        })
    }

    fn add(
        &mut self,
        batch_loss: &Tensor,
        logits: &Tensor,
        labels: &Tensor,
    ) -> candle_core::Result<()> {
        // Detached: a sum that took the tracked loss in would hold every step's graph, and with
        // it every activation of the epoch, until the epoch's end.
        let samples = labels.dim(0)? as f64;
        self.loss = (&self.loss + batch_loss.detach().affine(samples, 0.0)?)?;
        let right = logits
            .detach()
            .argmax(D::Minus1)?
            .eq(labels)?
            .to_dtype(DType::U32)?;
        self.correct = (&self.correct + right.sum_all()?)?;
        Ok(())
    }

    /// Copies the sums into `progress`; a loss gone infinite or NaN stops the run.
    fn read_into(&self, progress: &mut Progress) -> Result<(), TrainError> {
        let loss = self.loss.to_scalar::<f32>()?;
        if !loss.is_finite() {
            return Err(TrainError::Diverged(loss, progress.epoch + 1));
        }
        progress.loss_sum = f64::from(loss);
        progress.correct = self.correct.to_scalar::<u32>()? as usize;
        Ok(())
    }
}

fn loss(kind: Loss, logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    match kind {
        Loss::CrossEntropy => candle_nn::loss::cross_entropy(logits, labels),
    }
}

/// Mean loss and accuracy of `model` on all of `data`.
fn evaluate(model: &Classifier, batches: &Batches, kind: Loss) -> candle_core::Result<(f32, f64)> {
    let data = batches.data;
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    let all: Vec<usize> = (0..data.len()).collect();
    for chunk in all.chunks(1024) {
        let (x, y) = batches.get(chunk)?;
        let logits = model.forward(&x, None)?;
        loss_sum += f64::from(loss(kind, &logits, &y)?.to_scalar::<f32>()?) * chunk.len() as f64;
        correct += chunk
            .iter()
            .zip(predictions(&logits)?)
            .filter(|&(&i, p)| data.labels[i] == p)
            .count();
    }
    Ok((
        (loss_sum / data.len() as f64) as f32,
        correct as f64 / data.len() as f64,
    ))
}

/// Trains the spec's model on the spec's dataset. The same spec and seed give the same result on
/// the CPU, and so does a run resumed from any of its checkpoints.
pub fn train(
    spec: &TrainSpec,
    device: &Device,
    options: &RunOptions,
    mut on_event: impl FnMut(TrainEvent) -> ControlFlow<()>,
) -> Result<TrainReport, TrainError> {
    let started = Instant::now();
    // A hybrid model's circuit is checked before any data is read (a spec file may still name
    // a job's block).
    spec.model.quantum_layer()?;
    let simulator = simulator_for(&spec.model, device)?;
    let device = &device_for(&spec.model, device);
    let data_dir = options.data_dir.clone().unwrap_or_else(default_data_dir);
    let dataset = Dataset::load(&spec.dataset, &data_dir)?;
    let (training, validation) = dataset.split(spec.validation_split, spec.seed)?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    if !device.is_cpu() {
        // The device's generator draws the dropout masks there (model::drop).
        device.set_seed(spec.seed)?;
    }
    let model = new_model(spec, &dataset, training.len(), &mut rng, device, &simulator)?;
    let mut optimizer = Optimizer::new(&spec.optimizer, model.vars());
    let mut progress = match &options.resume_from {
        Some(dir) => {
            let saved = checkpoint::load(dir, &spec.source, device, options.files())?;
            model.load(&saved.model)?;
            optimizer.restore(&saved.optimizer)?;
            rng.set_word_pos(saved.progress.rng_word_pos);
            saved.progress
        }
        None => Progress::start(shuffled(training.len(), &mut rng)),
    };
    let cancelled = |step| TrainError::Cancelled { step };
    let source = Batches::new(&training, device)?;
    let validation_batches = Batches::new(&validation, device)?;
    while progress.epoch < spec.epochs {
        let learning_rate = spec.schedule.learning_rate(
            spec.optimizer.learning_rate(),
            progress.epoch,
            spec.epochs,
        );
        optimizer.set_learning_rate(learning_rate);
        let batches: Vec<Vec<usize>> = progress
            .order
            .chunks(spec.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        let mut sums = EpochSums::new(&progress, device)?;
        // Training time: the steps, less checkpointing; read when the device has caught up.
        let mut since = Instant::now();
        while progress.batch < batches.len() {
            let (x, y) = source.get(&batches[progress.batch])?;
            let logits = model.forward(&x, Some(&mut rng))?;
            let batch_loss = loss(spec.loss, &logits, &y)?;
            optimizer.backward_step(&batch_loss)?;
            sums.add(&batch_loss, &logits, &y)?;
            progress.batch += 1;
            progress.step += 1;
            let step = progress.step;
            if let (Some(every), Some(run_dir)) = (spec.checkpoint_every, &options.run_dir)
                && step % every == 0
            {
                sums.read_into(&mut progress)?;
                progress.seconds += since.elapsed().as_secs_f64();
                progress.rng_word_pos = rng.get_word_pos();
                let saved = Checkpoint {
                    progress: progress.clone(),
                    model: model.named_tensors()?,
                    optimizer: optimizer.state()?,
                };
                let dir = checkpoint::save(run_dir, &spec.source, &saved, options.files())?;
                if on_event(TrainEvent::Checkpoint { step, dir: &dir }).is_break() {
                    return Err(cancelled(step));
                }
                since = Instant::now();
            }
            if on_event(TrainEvent::Step { step }).is_break() {
                return Err(cancelled(step));
            }
        }
        sums.read_into(&mut progress)?;
        progress.seconds += since.elapsed().as_secs_f64();
        let (val_loss, val_accuracy) = evaluate(&model, &validation_batches, spec.loss)?;
        let epoch = EpochProgress {
            epoch: progress.epoch + 1,
            epochs: spec.epochs,
            learning_rate,
            loss: (progress.loss_sum / training.len() as f64) as f32,
            train_accuracy: progress.correct as f64 / training.len() as f64,
            val_loss,
            val_accuracy,
            samples_per_second: training.len() as f64 / progress.seconds,
        };
        progress.history.push(epoch.clone());
        progress.epoch += 1;
        progress.batch = 0;
        (progress.loss_sum, progress.correct, progress.seconds) = (0.0, 0, 0.0);
        progress.order = shuffled(training.len(), &mut rng);
        if on_event(TrainEvent::Epoch(&epoch)).is_break() {
            return Err(cancelled(progress.step));
        }
    }
    let stored = match &options.run_dir {
        Some(run_dir) => Some(store(
            run_dir,
            spec,
            &dataset,
            &model,
            &progress.history,
            options,
        )?),
        None => None,
    };
    Ok(TrainReport {
        epochs: progress.history,
        train_samples: training.len(),
        val_samples: validation.len(),
        parameters: model.parameter_count(),
        seconds: started.elapsed().as_secs_f64(),
        model: stored,
    })
}

/// The spec's model for `dataset`, refused if a batch of it would be too large to hold.
fn new_model(
    spec: &TrainSpec,
    dataset: &Dataset,
    training_samples: usize,
    rng: &mut ChaCha8Rng,
    device: &Device,
    simulator: &Simulator,
) -> Result<Classifier, TrainError> {
    let model = Classifier::new(
        &spec.model,
        &dataset.sample_shape,
        dataset.classes,
        rng,
        device,
        simulator,
    )
    .map_err(|e| match e {
        candle_core::Error::Msg(message) => TrainError::Model(message),
        other => TrainError::Candle(other),
    })?;
    let batch = spec.batch_size.min(training_samples);
    if model.widest_layer().saturating_mul(batch) > MAX_BATCH_ACTIVATIONS {
        return Err(TrainError::Model(format!(
            "a batch of {batch} would hold {} values in the model's widest layer output, more \
             than {MAX_BATCH_ACTIVATIONS}: use a smaller batch_size or narrower layers",
            model.widest_layer() as u128 * batch as u128
        )));
    }
    Ok(model)
}

/// Stores the trained model under `run_dir`: its directory and what it is.
fn store(
    run_dir: &Path,
    spec: &TrainSpec,
    dataset: &Dataset,
    model: &Classifier,
    history: &[EpochProgress],
    options: &RunOptions,
) -> Result<(PathBuf, ModelInfo), TrainError> {
    let info = ModelInfo {
        id: String::new(),
        dataset: spec.dataset.clone(),
        sample_shape: dataset.sample_shape.clone(),
        feature_len: dataset.feature_len,
        classes: dataset.classes,
        val_accuracy: history.last().map_or(0.0, |e| e.val_accuracy),
    };
    let tensors = model.named_tensors()?;
    Ok(checkpoint::save_model(
        run_dir,
        &spec.source,
        &tensors,
        info,
        options.model_files(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The running sums must not keep each step's graph (a 1-epoch Fashion-MNIST CNN grew to
    /// 11 GB of memory when they did).
    #[test]
    fn the_epoch_sums_add_the_values_and_hold_no_graph() {
        let device = Device::Cpu;
        let weights = candle_core::Var::new(&[[1.0f32, -1.0], [0.5, 2.0]], &device).unwrap();
        let x = Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0]], &device).unwrap();
        let labels = Tensor::new(&[0u32, 1], &device).unwrap();
        let logits = x.matmul(weights.as_tensor()).unwrap();
        let batch_loss = loss(Loss::CrossEntropy, &logits, &labels).unwrap();
        assert!(batch_loss.track_op());

        let mut progress = Progress {
            step: 0,
            epoch: 0,
            batch: 0,
            order: Vec::new(),
            rng_word_pos: 0,
            loss_sum: 1.0,
            correct: 3,
            seconds: 0.0,
            history: Vec::new(),
        };
        let mut sums = EpochSums::new(&progress, &device).unwrap();
        sums.add(&batch_loss, &logits, &labels).unwrap();
        sums.add(&batch_loss, &logits, &labels).unwrap();
        assert!(!sums.loss.track_op() && !sums.correct.track_op());

        sums.read_into(&mut progress).unwrap();
        let mean = f64::from(batch_loss.to_scalar::<f32>().unwrap());
        assert!((progress.loss_sum - (1.0 + 4.0 * mean)).abs() < 1e-5);
        let right = predictions(&logits)
            .unwrap()
            .iter()
            .zip([0u32, 1])
            .filter(|(p, l)| **p == *l)
            .count();
        assert_eq!(progress.correct, 3 + 2 * right);
    }
}
