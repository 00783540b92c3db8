//! `chimera train` and `chimera infer` end to end: the digits example trained from its spec as the
//! README shows, its stored model predicting digits, and the refusals a user can meet.

// Shared with the other tests, which use more of it.
#[allow(dead_code)]
mod common;
use common::{chimera, failure, ok, repo, work_dir};

#[test]
fn the_digits_example_trains_and_its_stored_model_predicts_digits() {
    let run = work_dir("digits");
    let spec = repo("examples/train-digits.yaml");
    let out = ok(chimera(&[
        "train",
        spec.to_str().unwrap(),
        "--json",
        "--out",
        run.to_str().unwrap(),
    ]));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let (epochs, last) = lines.split_at(lines.len() - 1);
    assert!(
        !epochs.is_empty()
            && epochs
                .iter()
                .all(|e| e["samples_per_second"].as_f64() > Some(0.0))
    );
    let result = &last[0];
    assert_eq!(result["device"], "cpu");
    assert_eq!(result.get("circuit_device"), None, "{result}");
    assert!(result["val_accuracy"].as_f64().unwrap() >= 0.95, "{result}");
    let model_dir = result["model_dir"].as_str().unwrap();

    // The first 200 digits, scaled to 0..1 as the model was trained, one CSV row each.
    let bytes = std::fs::read(repo("heads/ai/data/digits.npy")).unwrap();
    let digits: Vec<u8> = npyz::NpyFile::new(&bytes[..]).unwrap().into_vec().unwrap();
    let rows: Vec<&[u8]> = digits.chunks(65).take(200).collect();
    let csv: String = rows
        .iter()
        .map(|r| {
            let pixels: Vec<String> = r[..64]
                .iter()
                .map(|&p| (f32::from(p) / 16.0).to_string())
                .collect();
            pixels.join(",") + "\n"
        })
        .collect();
    let input = run.join("digits.csv");
    std::fs::write(&input, csv).unwrap();
    let out = ok(chimera(&[
        "infer",
        model_dir,
        input.to_str().unwrap(),
        "--json",
        "--repeat",
        "3",
    ]));
    let predicted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(predicted["model_id"], result["model_id"]);
    // One time per run, for benchmarks.
    let seconds = predicted["seconds"].as_array().unwrap();
    assert!(
        seconds.len() == 3 && seconds.iter().all(|s| s.as_f64() > Some(0.0)),
        "{seconds:?}"
    );
    let err = failure(&chimera(&[
        "infer",
        model_dir,
        input.to_str().unwrap(),
        "--repeat",
        "0",
    ]));
    assert!(err.contains("--repeat"), "{err}");
    let classes = predicted["classes"].as_array().unwrap();
    assert_eq!(classes.len(), rows.len());
    let right = classes
        .iter()
        .zip(&rows)
        .filter(|(c, r)| c.as_u64() == Some(u64::from(r[64])))
        .count();
    assert!(right >= 190, "{right} of 200 digits recognised");
}

/// A hybrid model keeps its tensors on the CPU whatever `--device` asks for, and the result says
/// where its circuit ran apart (on the GPU with `--device cuda`, a build with the `cuda` feature).
#[test]
fn a_hybrid_model_says_where_its_tensors_and_its_circuit_ran() {
    let run = work_dir("hybrid-moons");
    let spec = repo("examples/hybrid-moons.maml.md");
    let out = ok(chimera(&[
        "train",
        spec.to_str().unwrap(),
        "--json",
        "--out",
        run.to_str().unwrap(),
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        (&result["device"], &result["circuit_device"]),
        (&"cpu".into(), &"cpu".into()),
        "{result}"
    );
    assert_eq!(result["dataset"], "moons");
}

#[test]
fn a_spec_that_is_not_there_or_is_wrong_is_refused_by_name() {
    let err = failure(&chimera(&["train", "/nonexistent/spec.yaml"]));
    assert!(err.contains("cannot read /nonexistent/spec.yaml"), "{err}");
    let dir = work_dir("bad");
    let spec = dir.join("bad.yaml");
    std::fs::write(
        &spec,
        "dataset: digits\nmodel:\n  kind: mlp\n  hidden: [8]\nepochz: 3\n",
    )
    .unwrap();
    let err = failure(&chimera(&["train", spec.to_str().unwrap()]));
    assert!(err.contains("epochz"), "{err}");

    // A dataset that is not there: the file and the system's reason, said once.
    std::fs::write(
        &spec,
        "dataset: absent.csv
model:
  kind: mlp
  hidden: [8]
",
    )
    .unwrap();
    let err = failure(&chimera(&["train", spec.to_str().unwrap()]));
    assert!(err.contains("cannot read dataset `absent.csv`"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

#[cfg(not(feature = "cuda"))]
#[test]
fn asking_for_cuda_without_the_feature_says_how_to_build_it() {
    let spec = repo("examples/train-digits.yaml");
    let err = failure(&chimera(&[
        "train",
        spec.to_str().unwrap(),
        "--device",
        "cuda",
    ]));
    assert!(
        err.contains("--features cuda") && err.contains("--device cpu"),
        "{err}"
    );
}
