//! `chimera head`: one worker head, started by `chimera serve`. A quantum head runs the circuits
//! of a job's `qasm` blocks; an AI head its `chimera-train` and `chimera-infer` blocks, and the
//! `qasm3` blocks of a `hybrid_workflow` as the circuit layers of its models.
//!
//! A job's result is the JSON of its one runnable block, or `{"blocks": [...]}` when it has
//! several. Blocks read their settings from the job's `Context` section:
//! `shots` (1024), `seed` (derived from the job id, so that a job run again after its head died
//! gives the same counts), `precision` (`single` or `double`), `observables` (Pauli sums).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use candle_core::Device;
use chimera_ai::checkpoint;
use chimera_ai::encoder::{SentenceEncoder, is_encoder_dir};
use chimera_ai::infer::{StoredModel, most_likely};
use chimera_ai::spec::{InferSpec, TrainSpec};
use chimera_ai::train::{RunOptions as TrainOptions, TrainError, TrainEvent, train};
use chimera_job::CircuitSettings;
use chimera_maml::{BlockKind, CodeBlock, DEFAULT_MAX_BYTES, Job};
use chimera_quantum::backend::{Backend, Work};
use chimera_quantum::run::{RunOptions, run as run_circuit};
use chimera_supervisor::{Executor, HeadKeys, JobOrder, JobReport, Outcome, StatevectorWork};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

#[derive(Clone, Copy, ValueEnum)]
pub enum Role {
    Quantum,
    Ai,
}

#[derive(Args)]
pub struct HeadArgs {
    /// The head's id (q0, q1, a0, a1).
    #[arg(long)]
    id: String,
    #[arg(long, value_enum)]
    role: Role,
    /// The supervisor's socket for this head.
    #[arg(long)]
    socket: PathBuf,
    /// The engine's data directory: the head's sealed state (training runs and their
    /// checkpoints) in DIR/heads/ID, the replicas it holds of its peers' in DIR/replicas/ID,
    /// models in DIR/models, datasets named by file in DIR/data.
    #[arg(long)]
    data_dir: PathBuf,
}

/// A head ends when the engine closes its socket (or kills it). A Ctrl-C, or a service manager's
/// SIGTERM to every process of the engine, reached the heads as well: one could die before the
/// engine began to stop, which counted as a head dying under its job (three such deaths fail a
/// job). The engine also starts heads in a process group of their own, away from the terminal's
/// signals; this covers the signals sent to all its processes.
fn only_the_engine_stops_this_head() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sets the disposition of a signal to "ignore", before any thread is started.
        unsafe {
            libc::signal(signal, libc::SIG_IGN);
        }
    }
}

pub fn run(args: HeadArgs) -> Result<()> {
    // First, so that every thread of the head (the simulator's pool among them) inherits it.
    chimera_supervisor::lower_priority(chimera_supervisor::HEAD_NICENESS);
    only_the_engine_stops_this_head();
    let keys = HeadKeys::new(&args.id, &args.data_dir);
    let data_dir = std::path::absolute(&args.data_dir)?;
    match args.role {
        Role::Quantum => {
            let (backend, _) = crate::sim::backend(crate::sim::BackendArg::Auto, None)?;
            let executor = Blocks {
                runner: QuantumHead { backend },
                data_dir,
            };
            chimera_supervisor::worker::serve(&args.id, &args.socket, keys, executor)?
        }
        Role::Ai => {
            crate::train::keep_freed_memory();
            let runner = AiHead {
                data_dir: data_dir.clone(),
                keys: keys.clone(),
                device: ai_device(),
                encoder: None,
            };
            let executor = Blocks { runner, data_dir };
            chimera_supervisor::worker::serve(&args.id, &args.socket, keys, executor)?
        }
    }
    Ok(())
}

/// What a head of one role does with one code block.
trait BlockRunner: Send + 'static {
    fn backend(&self) -> String;
    fn on_gpu(&self) -> bool;
    /// The statevector work done since the head started.
    fn work(&self) -> Work {
        Work::default()
    }
    fn runs(&self, kind: BlockKind) -> bool;
    /// `Ok(None)`: stopped because the job was cancelled.
    fn run_block(
        &mut self,
        job: &Job,
        block: &CodeBlock,
        progress: &mut dyn FnMut(Value),
        cancelled: &AtomicBool,
    ) -> Result<Option<Value>>;
}

/// An executor that runs a job's blocks in order with a [`BlockRunner`].
struct Blocks<R> {
    runner: R,
    /// The engine's data directory, absolute: what a client is told names files under it as the
    /// job named them, relative to it.
    data_dir: PathBuf,
}

impl<R: BlockRunner> Blocks<R> {
    fn run_job(
        &mut self,
        order: &JobOrder,
        progress: &mut dyn FnMut(Value),
        cancelled: &AtomicBool,
    ) -> Result<Option<Value>> {
        let document = chimera_maml::parse(order.document.as_bytes(), DEFAULT_MAX_BYTES)
            .context("the admitted document no longer parses")?;
        let job = &document.job;
        // MAML.md: `cuda` means run on a GPU or fail, never silently on the CPU.
        if job.requires_cuda() && !self.runner.on_gpu() {
            bail!(
                "the job requires `cuda` (front matter `requires: resources`), but this head runs \
                 on {}; it was not run on the CPU instead. Submit it to an engine with a GPU, or \
                 drop the requirement to let it run here",
                self.runner.backend()
            );
        }
        let blocks: Vec<&CodeBlock> = job
            .code_blocks
            .iter()
            .filter(|b| self.runner.runs(b.kind))
            .collect();
        let mut results = Vec::with_capacity(blocks.len());
        for (i, block) in blocks.iter().enumerate() {
            if cancelled.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let result = self
                .runner
                .run_block(job, block, progress, cancelled)
                .with_context(|| format!("code block at line {}", block.line))?;
            let Some(result) = result else {
                return Ok(None);
            };
            progress(json!({"block": i + 1, "of": blocks.len(), "line": block.line, "done": true}));
            results.push(result);
        }
        let result = match results.len() {
            1 => results.pop().expect("one"),
            _ => json!({ "blocks": results }),
        };
        job.check_output(&result)?;
        Ok(Some(result))
    }
}

impl<R: BlockRunner> Executor for Blocks<R> {
    fn backend(&self) -> String {
        self.runner.backend()
    }

    fn run(
        &mut self,
        order: &JobOrder,
        progress: &mut dyn FnMut(Value),
        cancelled: &AtomicBool,
    ) -> JobReport {
        let before = self.runner.work();
        let outcome = match self.run_job(order, progress, cancelled) {
            Ok(Some(result)) => Outcome::Succeeded(result.to_string()),
            Ok(None) => Outcome::Cancelled,
            Err(e) => Outcome::Failed(relative_to(&self.data_dir, &crate::report::error_chain(&e))),
        };
        let work = self.runner.work() - before;
        JobReport {
            outcome,
            work: StatevectorWork {
                gate_passes: work.gate_passes,
                bytes_moved: work.bytes_moved,
            },
        }
    }
}

struct QuantumHead {
    backend: Box<dyn Backend>,
}

/// A seed for a job that names none: the same job gets the same one on every attempt.
fn seed_of(job_id: &str) -> u64 {
    let digest = chimera_maml::digest(job_id.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

impl BlockRunner for QuantumHead {
    fn backend(&self) -> String {
        self.backend.describe()
    }

    fn on_gpu(&self) -> bool {
        self.backend.is_gpu()
    }

    fn work(&self) -> Work {
        self.backend.work()
    }

    fn runs(&self, kind: BlockKind) -> bool {
        matches!(kind, BlockKind::OpenQasm2 | BlockKind::OpenQasm3)
    }

    fn run_block(
        &mut self,
        job: &Job,
        block: &CodeBlock,
        _: &mut dyn FnMut(Value),
        _: &AtomicBool,
    ) -> Result<Option<Value>> {
        let circuit = chimera_quantum::qasm::parse(&block.code)?;
        // Checked at the door; read again here from the document.
        let settings = CircuitSettings::from_context(&job.context)?;
        let shots = usize::try_from(settings.shots)?;
        let seed = settings.seed.unwrap_or_else(|| seed_of(&job.id));
        let precision = settings.precision;
        let options = RunOptions {
            shots,
            seed,
            precision,
            observables: settings.observables,
            keep_state: false,
        };
        let out = run_circuit(&circuit, self.backend.as_ref(), &options)?;
        Ok(Some(json!({
            "num_qubits": circuit.num_qubits,
            "gates": circuit.gate_count(),
            "shots": shots,
            "seed": seed,
            "precision": precision.name(),
            "backend": self.backend.describe(),
            "counts": out.counts,
            "expectation_values": options.observables.iter().zip(&out.expectations)
                .map(|(o, v)| json!({"observable": o.text, "value": v})).collect::<Vec<_>>(),
            "simulate_ms": out.timings.simulate.as_secs_f64() * 1e3,
            "gate_passes": out.work.gate_passes,
        })))
    }
}

struct AiHead {
    data_dir: PathBuf,
    /// Seal the checkpoints of its runs, under its state directory.
    keys: HeadKeys,
    device: Device,
    /// The sentence encoder last used, kept for the next job that names the same directory.
    encoder: Option<(PathBuf, SentenceEncoder)>,
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

/// `said` with the data directory's path left out of the paths under it, which a client sends
/// relative to it and needs to hear no other way.
fn relative_to(data_dir: &Path, said: &str) -> String {
    said.replace(&format!("{}/", data_dir.display()), "")
}

/// DESIGN.md: an AI head computes on a GPU when chimera was built with `--features cuda` and one
/// answers, on the CPU otherwise.
fn ai_device() -> Device {
    Device::new_cuda(0).unwrap_or(Device::Cpu)
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
        job: &Job,
        block: &CodeBlock,
        progress: &mut dyn FnMut(Value),
        cancelled: &AtomicBool,
    ) -> Result<Option<Value>> {
        let run_dir = self
            .keys
            .state_dir()
            .join("runs")
            .join(directory_name(&job.id))
            .join(format!("block-{}", block.line));
        let trained = self.train_in(job, block, &run_dir, progress, cancelled);
        // The block has ended (not with its head, which would not get here): its checkpoints are
        // of no more use, and a head's state is kept small, as every key change re-seals it.
        let _ = self.keys.remove(&run_dir);
        trained
    }

    fn train_in(
        &self,
        job: &Job,
        block: &CodeBlock,
        run_dir: &Path,
        progress: &mut dyn FnMut(Value),
        cancelled: &AtomicBool,
    ) -> Result<Option<Value>> {
        let spec = TrainSpec::of_block(job, block)?;
        let files = SealedFiles(self.keys.clone());
        // A job run again after its head died continues from its last checkpoint, which this
        // head (the dead one's successor, holding its key) can open.
        let resume_from = checkpoint::latest(run_dir).and_then(|dir| {
            match self.keys.read(&dir.join("progress.json")) {
                Ok(_) => Some(dir),
                Err(e) => {
                    let dir = relative_to(&self.data_dir, &dir.display().to_string());
                    let reason = relative_to(&self.data_dir, &e.to_string());
                    progress(json!({"checkpoint_unreadable": dir, "reason": reason,
                        "training": "from the start"}));
                    None
                }
            }
        });
        if let Some(dir) = &resume_from {
            let dir = relative_to(&self.data_dir, &dir.display().to_string());
            progress(json!({ "resumed_from": dir }));
        }
        let options = TrainOptions {
            run_dir: Some(run_dir.to_owned()),
            resume_from: resume_from.clone(),
            data_dir: Some(self.data_dir.join("data")),
            checkpoint_files: Some(Arc::new(files)),
        };
        // Asked at every step, so that a cancelled job stops within one batch.
        let trained = train(&spec, &self.device, &options, |event| {
            match event {
                TrainEvent::Epoch(p) => progress(serde_json::to_value(p).unwrap_or_default()),
                // The engine keeps the job for this head's next life if it dies now.
                TrainEvent::Checkpoint { step, .. } => {
                    progress(json!({"checkpoint": {"step": step}}))
                }
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
        let (model_dir, info) = report
            .model
            .clone()
            .ok_or_else(|| anyhow!("training stored no model"))?;
        let stored = self.data_dir.join("models").join(&info.id);
        if !stored.exists() {
            std::fs::create_dir_all(self.data_dir.join("models"))?;
            std::fs::rename(&model_dir, &stored)
                .with_context(|| format!("cannot store the model in {}", stored.display()))?;
        }
        Ok(Some(json!({
            "model_id": info.id,
            "val_accuracy": report.val_accuracy(),
            "epochs": report.epochs.len(),
            "train_samples": report.train_samples,
            "val_samples": report.val_samples,
            "parameters": report.parameters,
            "seconds": report.seconds,
            "resumed_from_checkpoint": resume_from.is_some(),
        })))
    }

    /// Where the model a spec names is: a stored model by its id, else a directory under the
    /// data directory (the spec's check keeps the name inside it).
    fn model_dir(&self, model: &str) -> PathBuf {
        let by_id = self.data_dir.join("models").join(model);
        if by_id.is_dir() {
            return by_id;
        }
        self.data_dir.join(model)
    }

    fn infer_block(&mut self, block: &CodeBlock) -> Result<Option<Value>> {
        let spec = InferSpec::from_yaml(&block.code)?;
        let dir = self.model_dir(&spec.model);
        if is_encoder_dir(&dir) {
            if spec.sentences.is_empty() {
                bail!("a sentence encoder needs `sentences:`, a list of texts");
            }
            if self.encoder.as_ref().is_none_or(|(kept, _)| *kept != dir) {
                self.encoder = None;
                self.encoder = Some((dir.clone(), SentenceEncoder::open(&dir, &self.device)?));
            }
            let (_, encoder) = self.encoder.as_ref().expect("opened above");
            let sentences: Vec<&str> = spec.sentences.iter().map(String::as_str).collect();
            let embeddings = encoder.embed(&sentences)?;
            return Ok(Some(
                json!({"dimension": encoder.dimension, "embeddings": embeddings}),
            ));
        }
        if !dir.is_dir() {
            bail!(
                "no model `{}`: neither a model id from a training job nor a directory under the \
                 engine's data directory",
                spec.model
            );
        }
        if spec.inputs.is_empty() {
            bail!("a trained model needs `inputs:`, a list of feature rows");
        }
        let model = StoredModel::open(&dir, &self.device)?;
        let probabilities = model.predict(spec.inputs.concat())?;
        let classes = most_likely(&probabilities);
        Ok(Some(json!({
            "model_id": model.info.id,
            "classes": classes,
            "probabilities": probabilities,
        })))
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

    fn runs(&self, kind: BlockKind) -> bool {
        matches!(kind, BlockKind::Train | BlockKind::Infer)
    }

    fn run_block(
        &mut self,
        job: &Job,
        block: &CodeBlock,
        progress: &mut dyn FnMut(Value),
        cancelled: &AtomicBool,
    ) -> Result<Option<Value>> {
        match block.kind {
            BlockKind::Train => self.train_block(job, block, progress, cancelled),
            _ => self.infer_block(block),
        }
    }
}
