//! Hybrid models (issue 8): the bundled MAML examples train a classifier whose middle layer is a
//! parameterised circuit; the circuit is read from the job's `qasm3` block; mistakes are refused
//! by the setting they are in.

use std::ops::ControlFlow;

use candle_core::Device;
use chimera_ai::checkpoint::PlainFiles;
use chimera_ai::dataset::Dataset;
use chimera_ai::infer::{StoredModel, most_likely};
use chimera_ai::spec::{SpecError, TrainSpec};
use chimera_ai::train::{RunOptions, TrainReport, train};
use chimera_maml::{BlockKind, DEFAULT_MAX_BYTES};
use common::curve;

mod common;

const MOONS: &str = include_str!("../../../examples/hybrid-moons.maml.md");
const IRIS: &str = include_str!("../../../examples/hybrid-iris.maml.md");

/// The job's chimera-train block and its qasm3 blocks.
fn blocks(job: &str) -> (String, Vec<String>) {
    let document = chimera_maml::parse(job.as_bytes(), DEFAULT_MAX_BYTES).unwrap();
    let code = |kind| {
        document
            .job
            .code_blocks
            .iter()
            .filter(|b| b.kind == kind)
            .map(|b| b.code.clone())
            .collect::<Vec<_>>()
    };
    (code(BlockKind::Train).remove(0), code(BlockKind::OpenQasm3))
}

fn spec_of(job: &str) -> TrainSpec {
    let (train_block, circuits) = blocks(job);
    let circuits: Vec<&str> = circuits.iter().map(String::as_str).collect();
    TrainSpec::from_yaml(&train_block)
        .unwrap()
        .with_circuit_from(&circuits)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn run(spec: &TrainSpec, options: &RunOptions) -> TrainReport {
    train(spec, &Device::Cpu, options, |_| ControlFlow::Continue(())).unwrap()
}

#[test]
fn the_moons_example_learns_to_09_and_a_seed_repeats_it_exactly() {
    let spec = spec_of(MOONS);
    let report = run(&spec, &RunOptions::default());
    assert!(
        report.val_accuracy() >= 0.9,
        "validation accuracy {}",
        report.val_accuracy()
    );
    assert!(report.epochs.last().unwrap().loss < report.epochs[0].loss / 4.0);
    // Linear(2, 4) + 36 circuit weights + Linear(4, 2).
    assert_eq!(report.parameters, 12 + 36 + 10);
    assert_eq!(curve(&run(&spec, &RunOptions::default())), curve(&report));
    let mut other = spec.clone();
    other.seed += 1;
    assert_ne!(curve(&run(&other, &RunOptions::default())), curve(&report));
}

#[test]
fn the_iris_example_learns_to_09() {
    let report = run(&spec_of(IRIS), &RunOptions::default());
    assert!(
        report.val_accuracy() >= 0.9,
        "validation accuracy {}",
        report.val_accuracy()
    );
    assert_eq!((report.train_samples, report.val_samples), (120, 30));
}

#[test]
fn a_resolved_spec_holds_its_circuit_and_reads_back_as_itself() {
    let spec = spec_of(MOONS);
    let (_, circuits) = blocks(MOONS);
    assert!(spec.source.contains("input array[float[64], 36] theta;"));
    let reread = TrainSpec::from_yaml(&spec.source).unwrap();
    assert_eq!(reread, spec);
    assert!(
        spec.model.quantum_layer().unwrap().is_some(),
        "{:?}",
        spec.model
    );
    // A spec whose circuit is its own text needs no job.
    let (train_block, _) = blocks(MOONS);
    let indented: String = circuits[0].lines().map(|l| format!("    {l}\n")).collect();
    let inline = train_block.replace(
        "  circuit: 1            # the job's first qasm3 block\n",
        &format!("  circuit: |\n{indented}"),
    );
    assert_ne!(inline, train_block);
    let inline = TrainSpec::from_yaml(&inline).unwrap();
    assert_eq!(inline.model, spec.model);
}

#[test]
fn a_stored_hybrid_model_classifies_as_it_was_trained() {
    let dir = tempfile::Builder::new()
        .prefix("chimera-ai-hybrid-")
        .tempdir()
        .unwrap();
    let options = RunOptions {
        run_dir: Some(dir.path().to_owned()),
        ..RunOptions::default()
    };
    let report = run(&spec_of(MOONS), &options);
    let (model_dir, _) = report.model.unwrap();
    let model = StoredModel::open(&model_dir, &Device::Cpu, &PlainFiles).unwrap();
    let moons = Dataset::load("moons", dir.path()).unwrap();
    let predicted = most_likely(&model.predict(moons.features.clone()).unwrap());
    let correct = predicted
        .iter()
        .zip(&moons.labels)
        .filter(|&(&p, &l)| p == l as usize)
        .count();
    assert!(correct >= 180, "{correct} of 200 right");
}

/// The setting a refusal names, and its message.
fn refusal(result: Result<TrainSpec, SpecError>) -> (&'static str, String) {
    match result {
        Err(SpecError::Invalid { key, problem }) => (key, problem),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn hybrid_mistakes_are_refused_naming_the_setting() {
    let (train_block, circuits) = blocks(MOONS);
    let circuits: Vec<&str> = circuits.iter().map(String::as_str).collect();
    let with = |from: &str, to: &str| {
        assert!(train_block.contains(from), "{from}");
        TrainSpec::from_yaml(&train_block.replace(from, to))
            .and_then(|spec| spec.with_circuit_from(&circuits))
    };
    let cases = [
        (
            "inputs: [x]",
            "inputs: [phi]",
            "model.inputs",
            "names `phi`",
        ),
        ("inputs: [x]", "inputs: []", "model.inputs", "must name"),
        (
            "observables: [Z0, Z1, Z2, Z3]",
            "observables: [Z0, Q1]",
            "model.observables",
            "observable \"Q1\"",
        ),
        (
            "observables: [Z0, Z1, Z2, Z3]",
            "observables: [Z0, Z4]",
            "model.observables",
            "qubit 4",
        ),
        (
            "circuit: 1 ",
            "circuit: 2 ",
            "model.circuit",
            "1 qasm3 block",
        ),
        ("circuit: 1 ", "circuit: 0 ", "model.circuit", "from 1"),
    ];
    for (from, to, key, message) in cases {
        let (named, problem) = refusal(with(from, to));
        assert_eq!(named, key, "{to}: {problem}");
        assert!(problem.contains(message), "{to}: {problem}");
    }
    // YAML reads `y` as a boolean: the refusal says to quote it, and quoted it is a name.
    let Err(SpecError::Yaml { message, .. }) = with("inputs: [x]", "inputs: [y]") else {
        panic!("`inputs: [y]` is not refused as YAML");
    };
    assert!(
        message.contains("quote it") && message.contains("inputs"),
        "{message}"
    );
    let (key, problem) = refusal(with("inputs: [x]", "inputs: ['y']"));
    assert_eq!(key, "model.inputs");
    assert!(problem.contains("names `y`"), "{problem}");
    // A circuit with a mistake is refused at its line.
    let broken = circuits[0].replace("ry(theta[13]) q[0];", "ry(theta[13]) q[4];");
    let (key, problem) = refusal(
        TrainSpec::from_yaml(&train_block)
            .unwrap()
            .with_circuit_from(&[&broken]),
    );
    assert_eq!(key, "model.circuit");
    assert!(
        problem.contains("line 17, column 35") && problem.contains("out of range"),
        "{problem}"
    );
    // A block number means nothing outside a job.
    let spec = TrainSpec::from_yaml(&train_block).unwrap();
    let error = train(&spec, &Device::Cpu, &RunOptions::default(), |_| {
        ControlFlow::Continue(())
    })
    .unwrap_err();
    assert!(
        error.to_string().contains("model.circuit") && error.to_string().contains("(`circuit: |`)"),
        "{error}"
    );
}
