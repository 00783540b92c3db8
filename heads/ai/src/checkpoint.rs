//! Checkpoints and trained models on disk.
//!
//! A checkpoint is a directory `step-NNNNNNNN` holding `model.safetensors`, `optimizer.safetensors`,
//! `spec.yaml` and `progress.json` (where in the run it was taken, the generator's position, the
//! epochs so far): all a run needs to go on exactly as if it had not stopped. A run keeps its
//! [`KEPT_CHECKPOINTS`] latest ones. A trained model is a
//! directory holding `model.safetensors`, `spec.yaml` and `model.json` (its id and what it was
//! trained on). Both are written to a temporary directory renamed into place, so a crash never
//! leaves half of one.
//!
//! A checkpoint's files go through [`Files`]: as they are by default, sealed with its head's key in
//! the engine (`chimera head`), so that what a head leaves on disk mid-run is readable by that
//! head and its rebuilt rebuild only. A trained model is the job's product, read by any AI head
//! and by `chimera infer`: it is written as it is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use sha3::{Digest, Sha3_256};

use crate::spec::EpochProgress;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Malformed { path: PathBuf, detail: String },
    #[error(
        "{path} was taken with another training spec; resume with the spec it holds (spec.yaml)"
    )]
    OtherSpec { path: PathBuf },
}

/// How checkpoint files reach the disk and come back.
pub trait Files: std::fmt::Debug + Send + Sync {
    /// Writes the new directory `dir` holding the files `contents` (name, bytes), whole or not
    /// at all: through a temporary sibling renamed into place.
    fn write_directory(&self, dir: &Path, contents: &[(&str, Vec<u8>)]) -> std::io::Result<()>;
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>>;
    fn remove_directory(&self, dir: &Path) -> std::io::Result<()>;
}

/// Files as they are.
#[derive(Debug)]
pub struct PlainFiles;

impl Files for PlainFiles {
    fn write_directory(&self, dir: &Path, contents: &[(&str, Vec<u8>)]) -> std::io::Result<()> {
        chimera_files::replace_directory_via(&dir.with_extension("partial"), dir, contents)
    }

    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn remove_directory(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::remove_dir_all(dir)
    }
}

/// Where a run stood when a checkpoint was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Optimizer steps taken.
    pub step: usize,
    /// 0-based epoch, and the next batch of it.
    pub epoch: usize,
    pub batch: usize,
    /// This epoch's sample order.
    pub order: Vec<usize>,
    /// Position of the run's random generator.
    pub rng_word_pos: u128,
    /// This epoch's sums so far: loss × samples, correct predictions, training seconds.
    pub loss_sum: f64,
    pub correct: usize,
    pub seconds: f64,
    pub history: Vec<EpochProgress>,
}

impl Progress {
    /// A run's progress before its first step: the first epoch's sample order.
    pub fn start(order: Vec<usize>) -> Self {
        Self {
            step: 0,
            epoch: 0,
            batch: 0,
            order,
            rng_word_pos: 0,
            loss_sum: 0.0,
            correct: 0,
            seconds: 0.0,
            history: Vec::new(),
        }
    }
}

pub struct Checkpoint {
    pub progress: Progress,
    pub model: HashMap<String, Tensor>,
    pub optimizer: HashMap<String, Tensor>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |error| CheckpointError::Io {
        path: path.into(),
        error,
    }
}

fn malformed(path: &Path, detail: impl ToString) -> CheckpointError {
    CheckpointError::Malformed {
        path: path.into(),
        detail: detail.to_string(),
    }
}

/// Writes `contents` and `tensors` (as safetensors) into a new directory `dir` through `files`.
fn write_directory(
    dir: &Path,
    files: &dyn Files,
    contents: &[(&str, &[u8])],
    tensors: &[(&str, &HashMap<String, Tensor>)],
) -> Result<(), CheckpointError> {
    let mut all: Vec<(&str, Vec<u8>)> = contents.iter().map(|(n, b)| (*n, b.to_vec())).collect();
    for (name, map) in tensors {
        let bytes =
            safetensors::serialize(map.iter(), None).map_err(|e| malformed(&dir.join(name), e))?;
        all.push((name, bytes));
    }
    files.write_directory(dir, &all).map_err(io(dir))
}

/// How many checkpoints a run keeps: the latest, and the one before in case the latest was cut
/// short by a crash.
pub const KEPT_CHECKPOINTS: usize = 2;

/// Saves a checkpoint under `run_dir/checkpoints/`, removes those older than the
/// [`KEPT_CHECKPOINTS`] latest, and returns its directory.
pub fn save(
    run_dir: &Path,
    spec: &str,
    checkpoint: &Checkpoint,
    files: &dyn Files,
) -> Result<PathBuf, CheckpointError> {
    let dir = run_dir
        .join("checkpoints")
        .join(format!("step-{:08}", checkpoint.progress.step));
    let progress = serde_json::to_vec_pretty(&checkpoint.progress).expect("progress serialises");
    write_directory(
        &dir,
        files,
        &[("spec.yaml", spec.as_bytes()), ("progress.json", &progress)],
        &[
            ("model.safetensors", &checkpoint.model),
            ("optimizer.safetensors", &checkpoint.optimizer),
        ],
    )?;
    let mut taken = checkpoints(run_dir);
    taken.sort();
    for old in taken.iter().rev().skip(KEPT_CHECKPOINTS) {
        let _ = files.remove_directory(old);
    }
    Ok(dir)
}

/// The complete checkpoints of a run directory (a `.partial` one was cut short).
fn checkpoints(run_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(run_dir.join("checkpoints")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.extension().is_none())
        .collect()
}

/// Loads the checkpoint at `dir`, refusing one taken with another spec than `spec`.
pub fn load(
    dir: &Path,
    spec: &str,
    device: &Device,
    files: &dyn Files,
) -> Result<Checkpoint, CheckpointError> {
    let spec_path = dir.join("spec.yaml");
    if files.read(&spec_path).map_err(io(&spec_path))? != spec.as_bytes() {
        return Err(CheckpointError::OtherSpec { path: dir.into() });
    }
    let progress_path = dir.join("progress.json");
    let progress = files.read(&progress_path).map_err(io(&progress_path))?;
    let tensors = |name: &str| {
        let path = dir.join(name);
        let bytes = files.read(&path).map_err(io(&path))?;
        candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| malformed(&path, e))
    };
    Ok(Checkpoint {
        progress: serde_json::from_slice(&progress).map_err(|e| malformed(&progress_path, e))?,
        model: tensors("model.safetensors")?,
        optimizer: tensors("optimizer.safetensors")?,
    })
}

/// The latest checkpoint of a run directory, if it has any.
pub fn latest(run_dir: &Path) -> Option<PathBuf> {
    checkpoints(run_dir).into_iter().max()
}

/// What `model.json` says of a trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// SHA3-256 of `model.safetensors` then `spec.yaml`, hex: the same model has the same id.
    pub id: String,
    pub dataset: String,
    /// One input's shape: `[features]`, or `[channels, height, width]` for images.
    pub sample_shape: Vec<usize>,
    pub feature_len: usize,
    pub classes: usize,
    pub val_accuracy: f64,
}

/// Stores a trained model in `run_dir/model`, its files written by `files`.
pub fn save_model(
    run_dir: &Path,
    spec: &str,
    weights: &HashMap<String, Tensor>,
    mut info: ModelInfo,
    files: &dyn Files,
) -> Result<(PathBuf, ModelInfo), CheckpointError> {
    let dir = run_dir.join("model");
    std::fs::create_dir_all(run_dir).map_err(io(run_dir))?;
    // The id is over the weights' bytes as written, so it is computed from the written file.
    let scratch = run_dir.join("model.safetensors.partial");
    candle_core::safetensors::save(weights, &scratch).map_err(|e| malformed(&scratch, e))?;
    let bytes = std::fs::read(&scratch).map_err(io(&scratch))?;
    let _ = std::fs::remove_file(&scratch);
    info.id = hex(&Sha3_256::new()
        .chain_update(&bytes)
        .chain_update(spec)
        .finalize());
    let json = serde_json::to_vec_pretty(&info).expect("model info serialises");
    write_directory(
        &dir,
        files,
        &[
            ("model.safetensors", &bytes),
            ("spec.yaml", spec.as_bytes()),
            ("model.json", &json),
        ],
        &[],
    )?;
    Ok((dir, info))
}

/// Reads a model directory written by [`save_model`], its files read by `files`.
pub fn load_model(
    dir: &Path,
    device: &Device,
    files: &dyn Files,
) -> Result<(ModelInfo, String, HashMap<String, Tensor>), CheckpointError> {
    let read = |name: &str| {
        let path = dir.join(name);
        files.read(&path).map_err(io(&path)).map(|b| (path, b))
    };
    let (info_path, info) = read("model.json")?;
    let info: ModelInfo = serde_json::from_slice(&info).map_err(|e| malformed(&info_path, e))?;
    let (spec_path, spec) = read("spec.yaml")?;
    let spec = String::from_utf8(spec).map_err(|e| malformed(&spec_path, e))?;
    let (weights_path, bytes) = read("model.safetensors")?;
    let id = hex(&Sha3_256::new()
        .chain_update(&bytes)
        .chain_update(&spec)
        .finalize());
    if id != info.id {
        return Err(malformed(
            dir,
            format!("its files do not match its id {} (they give {id})", info.id),
        ));
    }
    let weights = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| malformed(&weights_path, e))?;
    Ok((info, spec, weights))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
