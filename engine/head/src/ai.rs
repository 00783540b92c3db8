//! An AI head: trains a job's `chimera-train` specs (a hybrid model's circuit layers with them)
//! and runs its `chimera-infer` specs, on a GPU when one answers, else on the CPU.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::Device;
use chimera_ai::checkpoint;
use chimera_ai::encoder::{SentenceEncoder, is_encoder_dir};
use chimera_ai::infer::{StoredModel, most_likely};
use chimera_ai::spec::{InferSpec, TrainSpec};
use chimera_ai::train::{RunOptions as TrainOptions, TrainError, TrainEvent, train};
use chimera_job::{
    BlockResult, BlockRun, CheckedBlock, CheckedJob, Checkpointed, Embeddings, InferenceResult,
    Progress, TrainingResult,
};

use crate::blocks::{BlockFailure, BlockRunner, kind_of, relative_to};
use crate::head_keys::HeadKeys;
use crate::models::ModelFiles;

pub(crate) struct AiHead {
    pub data_dir: PathBuf,
    /// Seal the checkpoints of its runs, under its state directory.
    pub keys: HeadKeys,
    pub device: Device,
    /// The sentence encoder last used, kept for the next job that names the same directory.
    pub encoder: Option<(PathBuf, SentenceEncoder)>,
}

/// DESIGN.md: an AI head computes on a GPU when chimera was built with `--features cuda` and one
/// answers, on the CPU otherwise.
pub(crate) fn ai_device() -> Device {
    Device::new_cuda(0).unwrap_or(Device::Cpu)
}

/// Checkpoint files sealed with the head's key.
#[derive(Debug)]
struct SealedFiles(HeadKeys);

impl checkpoint::Files for SealedFiles {
    fn write_directory(&self, dir: &Path, contents: &[(&str, Vec<u8>)]) -> std::io::Result<()> {
        Ok(self.0.write_directory(dir, contents)?)
    }

    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        Ok(self.0.read(path)?)
    }

    fn remove_directory(&self, dir: &Path) -> std::io::Result<()> {
        Ok(self.0.remove(dir)?)
    }
}

/// A job id as a directory name.
fn directory_name(job_id: &str) -> String {
    job_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl AiHead {
    fn train_block(
        &self,
        job: &CheckedJob,
        line: usize,
        spec: &TrainSpec,
        progress: &mut dyn FnMut(Progress),
        cancelled: &AtomicBool,
    ) -> Result<Option<BlockResult>, BlockFailure> {
        let run_dir = self
            .keys
            .state_dir()
            .join("runs")
            .join(directory_name(&job.id))
            .join(format!("block-{line}"));
        let trained = self.train_in(spec, &run_dir, progress, cancelled);
        // The block has ended (not with its head, which would not get here): its checkpoints are
        // of no more use, and a head's state is kept small, as every key change re-seals it.
        let _ = self.keys.remove(&run_dir);
        trained
    }

    /// The checkpoint a job run again after its head died continues from: the last one, which
    /// this head (the dead one's rebuild, holding its key) can open.
    fn resume_from(&self, run_dir: &Path, progress: &mut dyn FnMut(Progress)) -> Option<PathBuf> {
        let dir = checkpoint::latest(run_dir)?;
        let named = relative_to(&self.data_dir, &dir.display().to_string());
        match self.keys.read(&dir.join("progress.json")) {
            Ok(_) => {
                progress(Progress::Resumed {
                    resumed_from: named,
                });
                Some(dir)
            }
            Err(e) => {
                progress(Progress::CheckpointUnreadable {
                    checkpoint_unreadable: named,
                    reason: relative_to(&self.data_dir, &e.to_string()),
                    training: "from the start".into(),
                });
                None
            }
        }
    }

    fn train_in(
        &self,
        spec: &TrainSpec,
        run_dir: &Path,
        progress: &mut dyn FnMut(Progress),
        cancelled: &AtomicBool,
    ) -> Result<Option<BlockResult>, BlockFailure> {
        let resume_from = self.resume_from(run_dir, progress);
        let options = TrainOptions {
            run_dir: Some(run_dir.to_owned()),
            resume_from: resume_from.clone(),
            data_dir: Some(self.data_dir.join("data")),
            checkpoint_files: Some(Arc::new(SealedFiles(self.keys.clone()))),
            model_files: Some(Arc::new(self.model_files()?)),
        };
        // Asked at every step, so that a cancelled job stops within one batch.
        let trained = train(spec, &self.device, &options, |event| {
            match event {
                TrainEvent::Epoch(epoch) => progress(Progress::Epoch(epoch.clone())),
                // The engine keeps the job for this head's rebuild if it dies now.
                TrainEvent::Checkpoint { step, .. } => progress(Progress::Checkpoint {
                    checkpoint: Checkpointed { step },
                }),
                _ => {}
            }
            if cancelled.load(Ordering::Relaxed) {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        let report = match trained {
            Err(TrainError::Cancelled { .. }) => return Ok(None),
            other => other?,
        };
        let Some((model_dir, info)) = report.model.clone() else {
            return Err(BlockFailure::Model("training stored no model".into()));
        };
        self.store_model(&model_dir, &info.id)?;
        Ok(Some(BlockResult::Training(TrainingResult {
            model_id: info.id,
            val_accuracy: report.val_accuracy(),
            epochs: report.epochs.len(),
            train_samples: report.train_samples,
            val_samples: report.val_samples,
            parameters: report.parameters,
            seconds: report.seconds,
            resumed_from_checkpoint: resume_from.is_some(),
        })))
    }

    /// How stored models are written and read: sealed under the key the supervisor sent. A head
    /// without it stores no model rather than store one in plaintext.
    fn model_files(&self) -> Result<ModelFiles, BlockFailure> {
        let key = self.keys.models().ok_or_else(|| {
            BlockFailure::Model(
                "this head has no key for stored models (the engine sends it at the head's start)"
                    .into(),
            )
        })?;
        Ok(ModelFiles(key))
    }

    /// Moves a trained model into the data directory's models, by its id, unless it is there.
    fn store_model(&self, model_dir: &Path, id: &str) -> Result<(), BlockFailure> {
        let models = self.data_dir.join("models");
        let stored = models.join(id);
        if stored.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&models)
            .and_then(|()| chimera_files::rename_durably(model_dir, &stored))
            .map_err(|error| BlockFailure::StoreModel {
                place: stored.display().to_string(),
                error,
            })
    }

    /// Where the model a spec names is, and whether it is stored (sealed): a stored model by its
    /// id, else a directory under the data directory (the spec's check keeps the name inside
    /// it), which is as its owner put it there.
    fn model_dir(&self, model: &str) -> (PathBuf, bool) {
        let by_id = self.data_dir.join("models").join(model);
        if by_id.is_dir() {
            return (by_id, true);
        }
        (self.data_dir.join(model), false)
    }

    fn infer_block(&mut self, spec: &InferSpec) -> Result<Option<BlockResult>, BlockFailure> {
        let (dir, stored) = self.model_dir(&spec.model);
        if is_encoder_dir(&dir) {
            let embeddings = self.embed(dir, &spec.sentences)?;
            return Ok(Some(BlockResult::Embeddings(embeddings)));
        }
        if !dir.is_dir() {
            return Err(BlockFailure::Model(format!(
                "no model `{}`: neither a model id from a training job nor a directory under the \
                 engine's data directory",
                spec.model
            )));
        }
        if spec.inputs.is_empty() {
            let needs = "a trained model needs `inputs:`, a list of feature rows";
            return Err(BlockFailure::Model(needs.into()));
        }
        let model = match stored {
            true => StoredModel::open(&dir, &self.device, &self.model_files()?)?,
            false => StoredModel::open(&dir, &self.device, &checkpoint::PlainFiles)?,
        };
        let probabilities = model.predict(spec.inputs.concat())?;
        let classes = most_likely(&probabilities);
        Ok(Some(BlockResult::Inference(InferenceResult {
            model_id: model.info.id,
            classes,
            probabilities,
        })))
    }

    /// The embeddings of `sentences` by the sentence encoder in `dir`.
    fn embed(&mut self, dir: PathBuf, sentences: &[String]) -> Result<Embeddings, BlockFailure> {
        if sentences.is_empty() {
            let needs = "a sentence encoder needs `sentences:`, a list of texts";
            return Err(BlockFailure::Model(needs.into()));
        }
        if self.encoder.as_ref().is_none_or(|(kept, _)| *kept != dir) {
            self.encoder = None;
            let encoder = SentenceEncoder::open(&dir, &self.device)?;
            self.encoder = Some((dir, encoder));
        }
        let (_, encoder) = self.encoder.as_ref().expect("opened above");
        let sentences: Vec<&str> = sentences.iter().map(String::as_str).collect();
        let embeddings = encoder.embed(&sentences)?;
        let dimension = encoder.dimension;
        Ok(Embeddings {
            dimension,
            embeddings,
        })
    }
}

impl BlockRunner for AiHead {
    fn backend(&self) -> String {
        match self.device {
            Device::Cpu => "candle on cpu".into(),
            _ => "candle on cuda:0".into(),
        }
    }

    fn on_gpu(&self) -> bool {
        self.device.is_cuda()
    }

    fn run_block(
        &mut self,
        job: &CheckedJob,
        block: &CheckedBlock,
        progress: &mut dyn FnMut(Progress),
        cancelled: &AtomicBool,
    ) -> Result<Option<BlockResult>, BlockFailure> {
        match &block.run {
            BlockRun::Train(spec) => self.train_block(job, block.line, spec, progress, cancelled),
            BlockRun::Infer(spec) => self.infer_block(spec),
            other => Err(BlockFailure::NotThisRole {
                role: "ai",
                block: kind_of(other),
            }),
        }
    }
}
