//! Training on the built-in digits: it learns, it reproduces, and bad specs are refused by name.

use std::ops::ControlFlow;

use candle_core::{Device, Var};
use chimera_ai::checkpoint::{self, PlainFiles};
use chimera_ai::infer::StoredModel;
use chimera_ai::optim::Optimizer;
use chimera_ai::spec::{OptimizerSpec, Schedule, TrainSpec};
use chimera_ai::train::{RunOptions, TrainError, TrainEvent, TrainReport, train};
use common::curve;

mod common;

const EXAMPLE: &str = include_str!("../../../examples/train-digits.yaml");

fn run(spec: &str) -> TrainReport {
    let spec = TrainSpec::from_yaml(spec).unwrap_or_else(|e| panic!("{e}"));
    train(&spec, &Device::Cpu, &RunOptions::default(), |_| {
        ControlFlow::Continue(())
    })
    .unwrap()
}

/// A fresh directory for a run, removed when the test ends.
fn run_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("chimera-ai-{name}-"))
        .tempdir()
        .unwrap()
}

#[test]
fn the_digits_example_learns_to_095_and_the_loss_falls() {
    let mut seen = Vec::new();
    let spec = TrainSpec::from_yaml(EXAMPLE).unwrap();
    let report = train(&spec, &Device::Cpu, &RunOptions::default(), |event| {
        if let TrainEvent::Epoch(p) = event {
            seen.push(p.epoch);
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(
        seen,
        (1..=40).collect::<Vec<_>>(),
        "progress after every epoch"
    );
    assert!(
        report.val_accuracy() >= 0.95,
        "validation accuracy {}",
        report.val_accuracy()
    );
    let (first, last) = (&report.epochs[0], report.epochs.last().unwrap());
    assert!(
        last.loss < first.loss / 10.0,
        "loss {} -> {}",
        first.loss,
        last.loss
    );
    assert_eq!((report.train_samples, report.val_samples), (1438, 359));
    assert_eq!(
        report.parameters,
        64 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    );
    assert!(last.samples_per_second > 0.0);
}

#[test]
fn the_same_seed_gives_the_same_run_and_another_seed_another() {
    let short = EXAMPLE.replace("epochs: 40", "epochs: 5");
    let (a, b) = (run(&short), run(&short));
    assert_eq!(curve(&a), curve(&b));
    let other = run(&short.replace("seed: 7", "seed: 8"));
    assert_ne!(curve(&a), curve(&other));
}

#[test]
fn sgd_with_momentum_trains_too() {
    let spec = "dataset: digits\nmodel: {kind: mlp, hidden: [64]}\noptimizer: {name: sgd, learning_rate: 0.1, momentum: 0.9}\nepochs: 15\nbatch_size: 32\nseed: 3\n";
    let report = run(spec);
    assert!(
        report.val_accuracy() >= 0.93,
        "validation accuracy {}",
        report.val_accuracy()
    );
}

#[test]
fn sgd_follows_pytorchs_update_rule() {
    // p = 1, gradient of p² is 2p; lr 0.1, momentum 0.5, weight decay 0.1.
    let p = Var::new(&[1.0f32], &Device::Cpu).unwrap();
    let kind = OptimizerSpec::Sgd {
        learning_rate: 0.1,
        momentum: 0.5,
        weight_decay: 0.1,
    };
    let mut sgd = Optimizer::new(&kind, vec![p.clone()]);
    let (mut value, mut velocity) = (1.0f64, 0.0f64);
    for step in 0..3 {
        let loss = p.as_tensor().sqr().unwrap().sum_all().unwrap();
        sgd.backward_step(&loss).unwrap();
        let grad = 2.0 * value + 0.1 * value;
        velocity = if step == 0 {
            grad
        } else {
            0.5 * velocity + grad
        };
        value -= 0.1 * velocity;
        let got = p.as_tensor().to_vec1::<f32>().unwrap()[0];
        assert!(
            (f64::from(got) - value).abs() < 1e-6,
            "step {step}: {got} vs {value}"
        );
    }
}

#[test]
fn schedules() {
    assert_eq!(Schedule::Constant.learning_rate(0.1, 7, 10), 0.1);
    assert_eq!(Schedule::Cosine.learning_rate(0.1, 0, 10), 0.1);
    assert!((Schedule::Cosine.learning_rate(0.1, 5, 10) - 0.05).abs() < 1e-12);
    let step = Schedule::Step {
        every: 3,
        gamma: 0.5,
    };
    assert_eq!(step.learning_rate(0.1, 2, 10), 0.1);
    assert_eq!(step.learning_rate(0.1, 3, 10), 0.05);
    assert_eq!(step.learning_rate(0.1, 6, 10), 0.025);
}

#[test]
fn bad_specs_are_refused_naming_the_setting() {
    assert_eq!(EXAMPLE.lines().nth(7), Some("  dropout: 0.1"));
    // (spec, what its refusal says)
    let cases = [
        (
            EXAMPLE.replace("seed: 7", "seed: 7\nepochz: 3"),
            &["epochz", "did you mean `epochs`?"][..],
        ),
        (EXAMPLE.replace("name: adamw", "name: lion"), &["lion"]),
        (
            EXAMPLE.replace("kind: mlp", "kind: transformer"),
            &["transformer"],
        ),
        (EXAMPLE.replace("epochs: 40", "epochs: many"), &["epochs"]),
        (EXAMPLE.replace("epochs: 40", "epochs: 0"), &["epochs"]),
        (
            EXAMPLE.replace("validation_split: 0.2", "validation_split: 1.5"),
            &["validation_split"],
        ),
        (
            EXAMPLE.replace("dropout: 0.1", "dropout: 1.0"),
            &["model.dropout"],
        ),
        (
            EXAMPLE.replace("learning_rate: 0.003", "learning_rate: -1"),
            &["optimizer.learning_rate"],
        ),
        (
            EXAMPLE.replace("weight_decay: 0.0001", "momentum: 0.9"),
            &["momentum"],
        ),
        (
            EXAMPLE.replace("kind: cosine", "kind: step\n  every: 0\n  gamma: 0.5"),
            &["schedule.every"],
        ),
        (
            EXAMPLE.replace("hidden: [128, 64]", "hidden: [128, 0]"),
            &["model.hidden"],
        ),
        (EXAMPLE.replace("dataset: digits\n", ""), &["dataset"]),
        // Inside `model`, `optimizer` and `schedule` (each a kind and its settings), a wrong value
        // is refused at its own line and named, not at the section's first line.
        (
            EXAMPLE.replace("dropout: 0.1", "dropout: lots"),
            &["line 8", "dropout"],
        ),
        (
            EXAMPLE.replace("hidden: [128, 64]", "hidden: [128, x]"),
            &["line 6", "hidden"],
        ),
        (
            EXAMPLE.replace("activation: relu", "activation: swish"),
            &["line 7", "swish"],
        ),
        (
            EXAMPLE.replace("learning_rate: 0.003", "learning_rate: fast"),
            &["line 12", "learning_rate"],
        ),
        (
            EXAMPLE.replace("kind: cosine", "kind: step\n  every: 2\n  gamma: half"),
            &["line 17", "gamma"],
        ),
        (
            EXAMPLE.replace("dropout: 0.1", "dropout: 0.1\n  widths: [3]"),
            &["line 9", "widths"],
        ),
        (
            EXAMPLE.replace("dropout: 0.1", "dropout: 0.1\n  hiden: [3]"),
            &["line 9", "hiden", "did you mean `hidden`?"],
        ),
        // A setting of another kind, and a missing one, are named with their section.
        (
            EXAMPLE.replace("dropout: 0.1", "dropout: 0.1\n  channels: [3]"),
            &[
                "is not a setting of `mlp`, which takes hidden, activation, dropout",
                "model.channels",
            ],
        ),
        (
            EXAMPLE.replace("kind: cosine", "kind: step\n  gamma: 0.5"),
            &["is missing: `step` needs it", "schedule.every"],
        ),
        (
            EXAMPLE.replace("  name: adamw\n", ""),
            &["is missing: it is one of adamw, sgd", "optimizer.name"],
        ),
    ];
    for (spec, said) in cases {
        let error = TrainSpec::from_yaml(&spec).expect_err(said[0]).to_string();
        for part in said {
            assert!(error.contains(part), "`{part}` not in: {error}");
        }
    }
    let spec =
        TrainSpec::from_yaml(&EXAMPLE.replace("dataset: digits", "dataset: imagenet")).unwrap();
    let error = train(&spec, &Device::Cpu, &RunOptions::default(), |_| {
        ControlFlow::Continue(())
    })
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("unknown dataset `imagenet`") && error.contains("digits"),
        "{error}"
    );
}

#[test]
fn adamw_follows_pytorchs_update_rule() {
    // p = 1, gradient of p² is 2p; lr 0.1, β 0.9/0.999, weight decay 0.01.
    let p = Var::new(&[1.0f32], &Device::Cpu).unwrap();
    let kind = OptimizerSpec::Adamw {
        learning_rate: 0.1,
        weight_decay: 0.01,
        beta1: 0.9,
        beta2: 0.999,
    };
    let mut adamw = Optimizer::new(&kind, vec![p.clone()]);
    let (mut value, mut m, mut v) = (1.0f64, 0.0f64, 0.0f64);
    for t in 1..=3 {
        let loss = p.as_tensor().sqr().unwrap().sum_all().unwrap();
        adamw.backward_step(&loss).unwrap();
        let g = 2.0 * value;
        m = 0.9 * m + 0.1 * g;
        v = 0.999 * v + 0.001 * g * g;
        let (m_hat, v_hat) = (m / (1.0 - 0.9f64.powi(t)), v / (1.0 - 0.999f64.powi(t)));
        value = value * (1.0 - 0.1 * 0.01) - 0.1 * m_hat / (v_hat.sqrt() + 1e-8);
        let got = p.as_tensor().to_vec1::<f32>().unwrap()[0];
        assert!(
            (f64::from(got) - value).abs() < 1e-6,
            "step {t}: {got} vs {value}"
        );
    }
}

/// A short run that checkpoints every 10 steps.
const CHECKPOINTED: &str = "dataset: digits\nmodel: {kind: mlp, hidden: [32], dropout: 0.2}\noptimizer: {name: adamw, learning_rate: 0.01}\nschedule: {kind: cosine}\nepochs: 3\nbatch_size: 64\nseed: 5\ncheckpoint_every: 10\n";

#[test]
fn a_resumed_run_ends_exactly_as_an_uninterrupted_one() {
    resumed_equals_uninterrupted(CHECKPOINTED, "mlp");
}

/// A model too large for a head is refused, saying what to change, before it is allocated:
/// too many parameters, or a batch whose widest layer output would not fit.
#[test]
fn a_model_too_large_for_a_head_is_refused_saying_what_to_change() {
    let cnn = |channels: &str| {
        EXAMPLE.replace(
            "  kind: mlp\n  hidden: [128, 64]",
            &format!("  kind: cnn\n  channels: [{channels}]\n  hidden: [8]"),
        )
    };
    let cases = [
        (
            EXAMPLE.replace("hidden: [128, 64]", "hidden: [2000000000]"),
            "trained parameters",
        ),
        (cnn("300000"), "batch_size"),
    ];
    for (yaml, named) in cases {
        let spec = TrainSpec::from_yaml(&yaml).unwrap();
        let error = train(&spec, &Device::Cpu, &RunOptions::default(), |_| {
            ControlFlow::Continue(())
        })
        .unwrap_err();
        assert!(matches!(error, TrainError::Model(_)), "{error:?}");
        assert!(error.to_string().contains(named), "{error}");
    }
    // Layers whose sizes the spec gives alone are past the bound before any data is read: the
    // spec itself is refused, as the engine refuses it at submission.
    let wide = EXAMPLE.replace("hidden: [128, 64]", "hidden: [20000, 20000]");
    let refused = TrainSpec::from_yaml(&wide).unwrap_err().to_string();
    assert!(refused.contains("trained parameters"), "{refused}");
}

/// The CNN's batch-norm running statistics are saved and restored with its weights.
#[test]
fn a_resumed_cnn_with_batch_norm_ends_exactly_as_an_uninterrupted_one() {
    let cnn = CHECKPOINTED.replace(
        "{kind: mlp, hidden: [32], dropout: 0.2}",
        "{kind: cnn, channels: [4, 8], hidden: [16], dropout: 0.2}",
    );
    resumed_equals_uninterrupted(&cnn, "cnn");
}

/// A hybrid model's circuit weights and their optimizer state are saved and restored too.
#[test]
fn a_resumed_hybrid_model_ends_exactly_as_an_uninterrupted_one() {
    let hybrid = CHECKPOINTED.replace(
        "{kind: mlp, hidden: [32], dropout: 0.2}",
        "{kind: hybrid, inputs: [x], circuit: 'OPENQASM 3.0; input array[float[64], 2] x; \
         input array[float[64], 4] t; qubit[2] q; rx(x[0]) q[0]; rx(x[1]) q[1]; \
         ry(t[0]) q[0]; ry(t[1]) q[1]; cx q[0], q[1]; ry(t[2]) q[0]; ry(t[3]) q[1];'}",
    );
    assert!(TrainSpec::from_yaml(&hybrid).unwrap().model.is_hybrid());
    resumed_equals_uninterrupted(&hybrid, "hybrid");
}

fn resumed_equals_uninterrupted(yaml: &str, name: &str) {
    let spec = TrainSpec::from_yaml(yaml).unwrap();
    let whole_temp = run_dir(&format!("{name}-whole"));
    let whole_dir = whole_temp.path();
    let options = RunOptions {
        run_dir: Some(whole_dir.to_owned()),
        resume_from: None,
        data_dir: None,
        checkpoint_files: None,
        model_files: None,
    };
    let whole = train(&spec, &Device::Cpu, &options, |_| ControlFlow::Continue(())).unwrap();
    let kept = std::fs::read_dir(whole_dir.join("checkpoints"))
        .unwrap()
        .count();
    assert_eq!(
        kept,
        checkpoint::KEPT_CHECKPOINTS,
        "older checkpoints are removed"
    );

    // Interrupted at step 25 (mid-epoch: 23 batches an epoch); the last checkpoint is step 20.
    let broken_temp = run_dir(&format!("{name}-broken"));
    let broken_dir = broken_temp.path();
    let options = RunOptions {
        run_dir: Some(broken_dir.to_owned()),
        resume_from: None,
        data_dir: None,
        checkpoint_files: None,
        model_files: None,
    };
    let stopped = train(&spec, &Device::Cpu, &options, |event| match event {
        TrainEvent::Step { step: 25 } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    assert!(matches!(stopped, Err(TrainError::Cancelled { step: 25 })));
    let latest = checkpoint::latest(broken_dir).unwrap();
    assert!(latest.ends_with("step-00000020"), "{}", latest.display());
    assert!(
        !broken_dir.join("model").exists(),
        "no model from a cancelled run"
    );

    let options = RunOptions {
        run_dir: Some(broken_dir.to_owned()),
        resume_from: Some(latest),
        data_dir: None,
        checkpoint_files: None,
        model_files: None,
    };
    let resumed = train(&spec, &Device::Cpu, &options, |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(curve(&resumed), curve(&whole));
    let (whole_model, resumed_model) = (whole.model.unwrap(), resumed.model.unwrap());
    assert_eq!(
        whole_model.1.id, resumed_model.1.id,
        "the same weights, bit for bit"
    );
    assert_eq!(
        std::fs::read(whole_model.0.join("model.safetensors")).unwrap(),
        std::fs::read(resumed_model.0.join("model.safetensors")).unwrap()
    );

    // A checkpoint only resumes the spec it was taken with.
    let other = TrainSpec::from_yaml(&yaml.replace("seed: 5", "seed: 6")).unwrap();
    let options = RunOptions {
        run_dir: Some(broken_dir.to_owned()),
        resume_from: checkpoint::latest(broken_dir),
        data_dir: None,
        checkpoint_files: None,
        model_files: None,
    };
    let refused = train(
        &other,
        &Device::Cpu,
        &options,
        |_| ControlFlow::Continue(()),
    )
    .unwrap_err();
    assert!(
        refused.to_string().contains("another training spec"),
        "{refused}"
    );
}

#[test]
fn a_stored_model_predicts_and_refuses_tampering() {
    let spec = TrainSpec::from_yaml(&EXAMPLE.replace("epochs: 40", "epochs: 10")).unwrap();
    let dir = run_dir("stored");
    let options = RunOptions {
        run_dir: Some(dir.path().to_owned()),
        resume_from: None,
        data_dir: None,
        checkpoint_files: None,
        model_files: None,
    };
    let report = train(&spec, &Device::Cpu, &options, |_| ControlFlow::Continue(())).unwrap();
    let (model_dir, info) = report.model.unwrap();
    assert_eq!(info.id.len(), 64);
    let model = StoredModel::open(&model_dir, &Device::Cpu, &PlainFiles).unwrap();
    assert_eq!(model.info, info);

    let digits =
        chimera_ai::dataset::Dataset::load("digits", std::path::Path::new("data")).unwrap();
    let probabilities = model.predict(digits.features.clone()).unwrap();
    let correct = probabilities
        .iter()
        .zip(&digits.labels)
        .filter(|(p, label)| {
            (0..10).max_by(|&a, &b| p[a].total_cmp(&p[b])) == Some(**label as usize)
        })
        .count();
    assert!(
        correct as f64 / digits.len() as f64 > 0.95,
        "{correct} of {}",
        digits.len()
    );
    for p in &probabilities {
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }

    let weights = model_dir.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    let error = StoredModel::open(&model_dir, &Device::Cpu, &PlainFiles)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("do not match its id"), "{error}");
}
