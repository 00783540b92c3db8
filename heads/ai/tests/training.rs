//! Training on the built-in digits: it learns, it reproduces, and bad specs are refused by name.

use candle_core::{Device, Var};
use candle_nn::Optimizer;
use chimera_ai::sgd::{Sgd, SgdParams};
use chimera_ai::spec::{Schedule, TrainSpec};
use chimera_ai::train::{TrainReport, train};

const EXAMPLE: &str = include_str!("../../../examples/train-digits.yaml");

fn run(spec: &str) -> TrainReport {
    let spec = TrainSpec::from_yaml(spec).unwrap_or_else(|e| panic!("{e}"));
    train(&spec, &Device::Cpu, |_| {}).unwrap()
}

/// The learning curve without the timings.
fn curve(report: &TrainReport) -> Vec<(f32, f64, f32, f64)> {
    report
        .epochs
        .iter()
        .map(|e| (e.loss, e.train_accuracy, e.val_loss, e.val_accuracy))
        .collect()
}

#[test]
fn the_digits_example_learns_to_095_and_the_loss_falls() {
    let mut seen = Vec::new();
    let spec = TrainSpec::from_yaml(EXAMPLE).unwrap();
    let report = train(&spec, &Device::Cpu, |p| seen.push(p.epoch)).unwrap();
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
    let params = SgdParams {
        learning_rate: 0.1,
        momentum: 0.5,
        weight_decay: 0.1,
    };
    let mut sgd = Sgd::new(vec![p.clone()], params).unwrap();
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
    let cases = [
        (EXAMPLE.replace("seed: 7", "seed: 7\nepochz: 3"), "epochz"),
        (
            EXAMPLE.replace("dropout: 0.1", "dropout: 0.1\n  widths: [3]"),
            "widths",
        ),
        (EXAMPLE.replace("name: adamw", "name: lion"), "lion"),
        (
            EXAMPLE.replace("kind: mlp", "kind: transformer"),
            "transformer",
        ),
        (EXAMPLE.replace("epochs: 40", "epochs: many"), "epochs"),
        (EXAMPLE.replace("epochs: 40", "epochs: 0"), "epochs"),
        (
            EXAMPLE.replace("validation_split: 0.2", "validation_split: 1.5"),
            "validation_split",
        ),
        (
            EXAMPLE.replace("dropout: 0.1", "dropout: 1.0"),
            "model.dropout",
        ),
        (
            EXAMPLE.replace("learning_rate: 0.003", "learning_rate: -1"),
            "optimizer.learning_rate",
        ),
        (
            EXAMPLE.replace("weight_decay: 0.0001", "momentum: 0.9"),
            "momentum",
        ),
        (
            EXAMPLE.replace("kind: cosine", "kind: step\n  every: 0\n  gamma: 0.5"),
            "schedule.every",
        ),
        (
            EXAMPLE.replace("hidden: [128, 64]", "hidden: [128, 0]"),
            "model.hidden",
        ),
        (EXAMPLE.replace("dataset: digits\n", ""), "dataset"),
    ];
    for (spec, named) in cases {
        let error = TrainSpec::from_yaml(&spec).expect_err(named).to_string();
        assert!(error.contains(named), "`{named}` not named in: {error}");
    }
    let spec =
        TrainSpec::from_yaml(&EXAMPLE.replace("dataset: digits", "dataset: imagenet")).unwrap();
    let error = train(&spec, &Device::Cpu, |_| {}).unwrap_err().to_string();
    assert!(
        error.contains("unknown dataset `imagenet`") && error.contains("digits"),
        "{error}"
    );
}
