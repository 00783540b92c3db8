//! A job's blocks, run in order by the runner of the head's role, and how a job fails.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use chimera_job::{BlockResult, BlockRun, CheckedBlock, CheckedJob, JobResult, Progress};
use chimera_maml::OutputMismatch;
use chimera_quantum::backend::Work;
use chimera_supervisor::{Outcome, StatevectorWork};

use crate::worker::{Executor, JobReport};

/// Why a job failed on its head, in the words its client reads.
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    #[error(
        "the job requires `cuda` (front matter `requires: resources`), but this head runs on \
         {backend}; it was not run on the CPU instead. Submit it to an engine with a GPU, or drop \
         the requirement to let it run here"
    )]
    NeedsCuda { backend: String },
    #[error("code block at line {line}")]
    Block {
        line: usize,
        #[source]
        failure: BlockFailure,
    },
    #[error(transparent)]
    Output(#[from] OutputMismatch),
}

/// Why one block failed.
#[derive(Debug, thiserror::Error)]
pub enum BlockFailure {
    #[error(transparent)]
    Circuit(#[from] chimera_circuit::qasm::QasmError),
    #[error(transparent)]
    Simulation(#[from] chimera_quantum::run::RunError),
    #[error(transparent)]
    Training(#[from] chimera_ai::train::TrainError),
    #[error(transparent)]
    Encoder(#[from] chimera_ai::encoder::EncoderError),
    #[error("cannot store the model in {place}")]
    StoreModel {
        place: String,
        #[source]
        error: std::io::Error,
    },
    /// What a job asks of a model that it cannot give.
    #[error("{0}")]
    Model(String),
    #[error(
        "a {role} head does not run {block} blocks; the engine sent this job to the wrong head"
    )]
    NotThisRole {
        role: &'static str,
        block: &'static str,
    },
}

/// `error` and each error under it, joined by `: `, leaving out a cause whose words the one
/// above it already said.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut before = String::new();
    let mut cause = Some(error);
    while let Some(error) = cause {
        let message = error.to_string();
        if !before.contains(&message) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&message);
        }
        before = message;
        cause = error.source();
    }
    text
}

/// `said` with the data directory's path left out of the paths under it, which a client sends
/// relative to it and needs to hear no other way.
pub(crate) fn relative_to(data_dir: &Path, said: &str) -> String {
    said.replace(&format!("{}/", data_dir.display()), "")
}

/// What a head of one role does with one code block.
pub(crate) trait BlockRunner: Send + 'static {
    /// What it computes on, in words.
    fn backend(&self) -> String;
    fn on_gpu(&self) -> bool;
    /// The statevector work done since the head started.
    fn work(&self) -> Work {
        Work::default()
    }
    /// `Ok(None)`: stopped because the job was cancelled.
    fn run_block(
        &mut self,
        job: &CheckedJob,
        block: &CheckedBlock,
        progress: &mut dyn FnMut(Progress),
        cancelled: &AtomicBool,
    ) -> Result<Option<BlockResult>, BlockFailure>;
}

/// The name of what a block runs, for a head that was sent one it does not run.
pub(crate) fn kind_of(run: &BlockRun) -> &'static str {
    match run {
        BlockRun::Circuit(_) => "circuit",
        BlockRun::Train(_) => "chimera-train",
        BlockRun::Infer(_) => "chimera-infer",
    }
}

/// An executor that runs a job's blocks in order with a [`BlockRunner`].
pub(crate) struct Blocks<R> {
    pub runner: R,
    /// The engine's data directory, absolute: what a client is told names files under it as the
    /// job named them, relative to it.
    pub data_dir: PathBuf,
}

impl<R: BlockRunner> Blocks<R> {
    fn run_job(
        &mut self,
        job: &CheckedJob,
        progress: &mut dyn FnMut(Progress),
        cancelled: &AtomicBool,
    ) -> Result<Option<JobResult>, JobFailure> {
        if job.requires_cuda && !self.runner.on_gpu() {
            let backend = self.runner.backend();
            return Err(JobFailure::NeedsCuda { backend });
        }
        let mut results = Vec::with_capacity(job.blocks.len());
        for (i, block) in job.blocks.iter().enumerate() {
            if cancelled.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let result = self
                .runner
                .run_block(job, block, progress, cancelled)
                .map_err(|failure| JobFailure::Block {
                    line: block.line,
                    failure,
                })?;
            let Some(result) = result else {
                return Ok(None);
            };
            progress(Progress::BlockDone {
                block: i + 1,
                of: job.blocks.len(),
                line: block.line,
                done: true,
            });
            results.push(result);
        }
        let result = JobResult::of_blocks(results);
        // Only a job with a schema pays for its result as a JSON value twice.
        if let Some(schema) = &job.output_schema {
            chimera_maml::check_output(Some(schema), &result.to_value())?;
        }
        Ok(Some(result))
    }
}

impl<R: BlockRunner> Executor for Blocks<R> {
    fn backend(&self) -> String {
        self.runner.backend()
    }

    fn run(
        &mut self,
        job: &CheckedJob,
        progress: &mut dyn FnMut(Progress),
        cancelled: &AtomicBool,
    ) -> JobReport {
        let before = self.runner.work();
        let outcome = match self.run_job(job, progress, cancelled) {
            Ok(Some(result)) => Outcome::Succeeded(result.to_json()),
            Ok(None) => Outcome::Cancelled,
            Err(failure) => Outcome::Failed(relative_to(&self.data_dir, &error_chain(&failure))),
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
