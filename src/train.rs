//! `chimera train` and `chimera infer`: training specs and stored models, on the CPU or a CUDA GPU.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::Device;
use chimera_ai::checkpoint::{self, PlainFiles};
use chimera_ai::encoder::{SentenceEncoder, is_encoder_dir};
use chimera_ai::infer::{StoredModel, most_likely};
use chimera_ai::model::device_for;
use chimera_ai::spec::TrainSpec;
use chimera_ai::train::{RunOptions, TrainEvent, train};
use chimera_maml::{BlockKind, CodeBlock, DEFAULT_MAX_BYTES};
use clap::{Args, ValueEnum};

/// Where a model trains or runs.
#[derive(Clone, Copy, Default, ValueEnum)]
pub enum DeviceArg {
    #[default]
    Cpu,
    /// The first CUDA GPU; needs a chimera built with `--features cuda`.
    Cuda,
}

impl DeviceArg {
    fn open(self) -> Result<Device> {
        match self {
            DeviceArg::Cpu => Ok(Device::Cpu),
            DeviceArg::Cuda => Device::new_cuda(0).context(
                "cannot use CUDA GPU 0 (a chimera built with `cargo build --release --features \
                 cuda` on a machine with a GPU and its driver is needed; `--device cpu` runs anywhere)",
            ),
        }
    }
}

#[derive(Args)]
pub struct TrainArgs {
    /// The training spec: the YAML of a `chimera-train` block (see examples/train-digits.yaml),
    /// or a MAML job (`.md`) holding one, whose `qasm3` blocks a hybrid model may name as its
    /// circuit (see examples/hybrid-moons.maml.md).
    spec: PathBuf,
    /// The run's directory: checkpoints in DIR/checkpoints, the trained model in DIR/model.
    /// Default: runs/<the spec's file name>.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue from a checkpoint directory, or from the latest checkpoint of the run's directory
    /// when given as `latest`.
    #[arg(long, value_name = "CHECKPOINT|latest")]
    resume: Option<PathBuf>,
    /// Where datasets named by file (`dataset: mine.csv`) are read. Default: $CHIMERA_DATA_DIR,
    /// else ./data.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Print progress and the result as JSON lines, the last one ending with `val_accuracy`.
    #[arg(long)]
    json: bool,
    #[arg(long, value_enum, default_value_t)]
    device: DeviceArg,
}

pub fn run(args: TrainArgs) -> Result<()> {
    chimera_ai::keep_freed_memory();
    let text = std::fs::read_to_string(&args.spec)
        .with_context(|| format!("cannot read {}", args.spec.display()))?;
    let spec = if args.spec.extension().is_some_and(|e| e == "md") {
        spec_in_job(&text)
    } else {
        Ok(TrainSpec::from_yaml(&text)?)
    }
    .with_context(|| format!("{}", args.spec.display()))?;
    let run_dir = args.out.clone().unwrap_or_else(|| {
        let stem = args.spec.file_stem().unwrap_or_default();
        Path::new("runs").join(stem)
    });
    let resume_from = match args.resume {
        Some(path) if path == Path::new("latest") => Some(
            checkpoint::latest(&run_dir)
                .with_context(|| format!("{} has no checkpoint to resume", run_dir.display()))?,
        ),
        other => other,
    };
    if let Some(dir) = &resume_from {
        eprintln!("resuming from {}", dir.display());
    }
    let options = RunOptions {
        run_dir: Some(run_dir),
        resume_from,
        data_dir: args.data_dir,
        checkpoint_files: None,
        model_files: None,
    };
    let json = args.json;
    let device = args.device.open()?;
    let report = train(&spec, &device, &options, |event| {
        match event {
            TrainEvent::Epoch(p) if json => println!("{}", serde_json::to_string(p).unwrap()),
            TrainEvent::Epoch(p) => println!(
                "epoch {:>3}/{}  loss {:.4}  train acc {:.3}  val loss {:.4}  val acc {:.3}  {:>8.0} samples/s",
                p.epoch, p.epochs, p.loss, p.train_accuracy, p.val_loss, p.val_accuracy,
                p.samples_per_second
            ),
            TrainEvent::Checkpoint { step, dir } if !json => {
                println!("checkpoint at step {step}: {}", dir.display())
            }
            _ => {}
        }
        ControlFlow::Continue(())
    })
    .with_context(|| format!("training {} failed", args.spec.display()))?;
    let (model_dir, info) = report
        .model
        .clone()
        .expect("a run with a directory stores its model");
    // A hybrid model keeps its tensors on the CPU whatever `--device` says; its circuit runs there.
    let tensors_on = device_name(&device_for(&spec.model, &device));
    let circuit_on = spec.model.is_hybrid().then(|| device_name(&device));
    if json {
        let mut result = serde_json::json!({
            "dataset": spec.dataset, "device": tensors_on, "parameters": report.parameters,
            "train_samples": report.train_samples, "val_samples": report.val_samples,
            "seconds": report.seconds, "model_id": info.id, "model_dir": model_dir,
            "val_accuracy": report.val_accuracy(),
        });
        if let Some(circuit_on) = circuit_on {
            result["circuit_device"] = circuit_on.into();
        }
        println!("{result}");
    } else {
        let circuit = circuit_on.map_or(String::new(), |d| format!(", its circuit on {d}"));
        println!(
            "trained {} parameters on {} samples of {} in {:.2} s on {tensors_on}{circuit}; \
             validation accuracy {:.4} on {} samples",
            report.parameters,
            report.train_samples,
            spec.dataset,
            report.seconds,
            report.val_accuracy(),
            report.val_samples
        );
        println!("model {} stored in {}", info.id, model_dir.display());
    }
    Ok(())
}

/// The spec of the one `chimera-train` block of a MAML job (unsigned is fine: nothing is
/// submitted).
fn spec_in_job(text: &str) -> Result<TrainSpec> {
    let document = chimera_maml::parse(text.as_bytes(), DEFAULT_MAX_BYTES)?;
    let job = &document.job;
    let blocks: Vec<&CodeBlock> = job
        .code_blocks
        .iter()
        .filter(|b| b.kind == BlockKind::Train)
        .collect();
    match blocks[..] {
        [block] => TrainSpec::of_block(job, block)
            .with_context(|| format!("the chimera-train block at line {}", block.line)),
        _ => bail!(
            "the job holds {} chimera-train blocks; `chimera train` runs a job with exactly one",
            blocks.len()
        ),
    }
}

#[derive(Args)]
pub struct InferArgs {
    /// A model directory written by `chimera train` (RUN_DIR/model), or a sentence encoder's
    /// (config.json, tokenizer.json, model.safetensors: see heads/ai/fetch-minilm.sh).
    model: PathBuf,
    /// Inputs: for a trained model, a .npy array [n, features] (float32, float64 or uint8) or a
    /// CSV file of n rows; for a sentence encoder, a text file of one sentence per line.
    input: PathBuf,
    /// Print the predictions as JSON.
    #[arg(long)]
    json: bool,
    #[arg(long, value_enum, default_value_t)]
    device: DeviceArg,
    /// Compute N times and report each run's seconds (`seconds` in the JSON), for timing: the
    /// first run on a GPU includes loading its kernels.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
}

/// `compute` run `repeat` (at least 1) times: the last run's result, and each run's seconds.
fn timed<T>(repeat: u32, mut compute: impl FnMut() -> Result<T>) -> Result<(T, Vec<f64>)> {
    let mut seconds = Vec::new();
    loop {
        let started = std::time::Instant::now();
        let result = compute()?;
        seconds.push(started.elapsed().as_secs_f64());
        if seconds.len() >= repeat as usize {
            return Ok((result, seconds));
        }
    }
}

pub fn infer(args: InferArgs) -> Result<()> {
    chimera_ai::keep_freed_memory();
    if is_encoder_dir(&args.model) {
        return embed(args);
    }
    let model = StoredModel::open(&args.model, &args.device.open()?, &PlainFiles)
        .with_context(|| format!("cannot open the model in {}", args.model.display()))?;
    let (_, features) = read_inputs(&args.input, model.info.feature_len)?;
    let (probabilities, seconds) = timed(args.repeat, || Ok(model.predict(features.clone())?))?;
    let classes = most_likely(&probabilities);
    if args.json {
        println!(
            "{}",
            serde_json::json!({"model_id": model.info.id, "classes": classes, "probabilities": probabilities, "seconds": seconds})
        );
    } else {
        for (row, (class, p)) in classes.iter().zip(&probabilities).enumerate() {
            println!("{row:>6}  class {class}  p {:.4}", p[*class]);
        }
    }
    Ok(())
}

/// Sentence embeddings, one per non-empty line of the input.
fn embed(args: InferArgs) -> Result<()> {
    let encoder = SentenceEncoder::open(&args.model, &args.device.open()?).with_context(|| {
        format!(
            "cannot open the sentence encoder in {}",
            args.model.display()
        )
    })?;
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("cannot read sentences from {}", args.input.display()))?;
    let sentences: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if sentences.is_empty() {
        bail!(
            "{} holds no sentence: write one per line",
            args.input.display()
        );
    }
    let (embeddings, seconds) = timed(args.repeat, || Ok(encoder.embed(&sentences)?))?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"dimension": encoder.dimension, "sentences": sentences, "embeddings": embeddings, "seconds": seconds})
        );
    } else {
        for (sentence, e) in sentences.iter().zip(&embeddings) {
            let head: Vec<String> = e.iter().take(4).map(|v| format!("{v:+.4}")).collect();
            println!("[{}, ...]  {sentence}", head.join(", "));
        }
        println!(
            "{} sentences embedded in {} dimensions in {:.1} ms (--json prints the vectors)",
            sentences.len(),
            encoder.dimension,
            seconds[seconds.len() - 1] * 1e3
        );
    }
    Ok(())
}

/// Rows of `feature_len` values from a .npy or CSV file.
fn read_inputs(path: &Path, feature_len: usize) -> Result<(usize, Vec<f32>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let values: Vec<f32> = if path.extension().is_some_and(|e| e == "npy") {
        let array = npyz::NpyFile::new(&bytes[..])
            .with_context(|| format!("{} is not a .npy file", path.display()))?;
        match array.dtype() {
            npyz::DType::Plain(t)
                if t.type_char() == npyz::TypeChar::Float && t.size_field() == 4 =>
            {
                array.into_vec::<f32>()?
            }
            npyz::DType::Plain(t)
                if t.type_char() == npyz::TypeChar::Float && t.size_field() == 8 =>
            {
                array
                    .into_vec::<f64>()?
                    .into_iter()
                    .map(|v| v as f32)
                    .collect()
            }
            npyz::DType::Plain(t)
                if t.type_char() == npyz::TypeChar::Uint && t.size_field() == 1 =>
            {
                array.into_vec::<u8>()?.into_iter().map(f32::from).collect()
            }
            other => bail!(
                "{}: dtype {other:?}; give float32, float64 or uint8",
                path.display()
            ),
        }
    } else {
        let text =
            String::from_utf8(bytes).with_context(|| format!("{} is not text", path.display()))?;
        let mut values = Vec::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            for field in line.split(',') {
                values.push(field.trim().parse::<f32>().with_context(|| {
                    format!(
                        "{} line {}: `{}` is not a number",
                        path.display(),
                        n + 1,
                        field.trim()
                    )
                })?);
            }
        }
        values
    };
    if values.is_empty() || !values.len().is_multiple_of(feature_len) {
        bail!(
            "{} holds {} values: not rows of the model's {feature_len} features",
            path.display(),
            values.len()
        );
    }
    Ok((values.len() / feature_len, values))
}

fn device_name(device: &Device) -> &'static str {
    if device.is_cpu() { "cpu" } else { "cuda" }
}
