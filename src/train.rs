//! `chimera train`: a training spec run here, with progress per epoch.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chimera_ai::spec::TrainSpec;
use chimera_ai::train::{EpochProgress, train};
use clap::Args;

#[derive(Args)]
pub struct TrainArgs {
    /// The training spec: the YAML of a `chimera-train` block (see examples/train-digits.yaml).
    spec: PathBuf,
    /// Print progress and the result as JSON lines, the last one ending with `val_accuracy`.
    #[arg(long)]
    json: bool,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.spec)
        .with_context(|| format!("cannot read {}", args.spec.display()))?;
    let spec = TrainSpec::from_yaml(&text).with_context(|| format!("{}", args.spec.display()))?;
    let device = candle_core::Device::Cpu;
    let json = args.json;
    let report = train(&spec, &device, |p: &EpochProgress| {
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "epoch": p.epoch, "epochs": p.epochs, "learning_rate": p.learning_rate,
                    "loss": p.loss, "train_accuracy": p.train_accuracy, "val_loss": p.val_loss,
                    "val_accuracy": p.val_accuracy, "samples_per_second": p.samples_per_second,
                })
            );
        } else {
            println!(
                "epoch {:>3}/{}  loss {:.4}  train acc {:.3}  val loss {:.4}  val acc {:.3}  {:>8.0} samples/s",
                p.epoch, p.epochs, p.loss, p.train_accuracy, p.val_loss, p.val_accuracy,
                p.samples_per_second
            );
        }
    })
    .with_context(|| format!("training {} failed", args.spec.display()))?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "dataset": spec.dataset, "device": "cpu", "parameters": report.parameters,
                "train_samples": report.train_samples, "val_samples": report.val_samples,
                "seconds": report.seconds, "val_accuracy": report.val_accuracy(),
            })
        );
    } else {
        println!(
            "trained {} parameters on {} samples of {} in {:.2} s; validation accuracy {:.4} on {} samples",
            report.parameters,
            report.train_samples,
            spec.dataset,
            report.seconds,
            report.val_accuracy(),
            report.val_samples
        );
    }
    Ok(())
}
