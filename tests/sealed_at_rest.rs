//! Issue 36: what the engine keeps at rest is sealed under the operator's unseal key. A copy of
//! the data directory reveals no job's document, circuit, result or receipt, no stored model and
//! no key; the directory opens with its key alone, and refusals change nothing in it.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "common/engine_client.rs"]
mod engine_client;
#[allow(dead_code)]
#[path = "common/served.rs"]
mod served;

use std::path::Path;

use chimera_client::JobCall;
use chimera_maml::PublicKey;
use chimera_proto::v1::{GetRequest, JobState};
use common::{assert_no_plaintext, chimera, failure, files_under, ok, repo, work_dir};
use engine_client::*;
use served::Served;

/// `chimera serve` on `data` with `flags`, which must refuse to start: what it said.
fn refused_start(data: &Path, flags: &[&str]) -> String {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--metrics-addr", "off"];
    args.extend(flags);
    args.extend(["--data-dir", data.to_str().unwrap()]);
    failure(&chimera(&args))
}

#[test]
fn a_stolen_data_directory_reveals_nothing_and_opens_with_its_key_alone() {
    let dir = work_dir("sealed-at-rest");
    let data = dir.join("data");
    let key_file = dir.join("unseal.key");
    ok(chimera(&[
        "unseal-key",
        "new",
        "-o",
        key_file.to_str().unwrap(),
    ]));
    let with_key = ["--unseal-key-file", key_file.to_str().unwrap()];
    let lab = trusted_key(&data, &dir, "lab", "*");
    let served = Served::start_with(&data, &with_key);
    let bell_text = std::fs::read_to_string(repo("examples/bell.maml.md")).unwrap();
    let (bell, model_id) = runtime().block_on(async {
        let mut client = client(&served.url).await;
        let bell = submit(&mut client, signed(&bell_text, &lab)).await;
        let training = "urn:uuid:sealed-training";
        submit(&mut client, signed(&training_job(training, 2), &lab)).await;
        let bell = finished(&mut client, &lab, &bell.id).await;
        let trained = finished(&mut client, &lab, training).await;
        assert_eq!(trained.state(), JobState::Succeeded, "{}", trained.error);
        let model_id = result(&trained)["model_id"].as_str().unwrap().to_owned();
        (bell, model_id)
    });
    assert_eq!(bell.state(), JobState::Succeeded, "{}", bell.error);
    served.stop();

    // What a thief of the volume would look for: the document's words, its circuit, the
    // result, the receipt, a stored model's weights, spec and description, a key.
    let intent = "Prepare a Bell pair and measure both qubits";
    let known = [
        intent,
        "OPENQASM 2.0;",
        "\"counts\"",
        "chimera-receipt: 1",
        "\"dtype\"",
        "val_accuracy",
        "learning_rate",
        "PRIVATE KEY",
    ];
    let before = files_under(&data);
    assert!(
        before
            .keys()
            .any(|p| p.starts_with(data.join("models").join(&model_id)))
    );
    assert_no_plaintext(&data, &known);

    // Refused, each with what to do, and the directory byte for byte as it was.
    let other_key = dir.join("other.key");
    ok(chimera(&[
        "unseal-key",
        "new",
        "-o",
        other_key.to_str().unwrap(),
    ]));
    let wrong = refused_start(&data, &["--unseal-key-file", other_key.to_str().unwrap()]);
    assert!(wrong.contains("is sealed under the unseal key"), "{wrong}");
    let none = refused_start(&data, &[]);
    assert!(none.contains("no key was given"), "{none}");
    let failing = "echo 'kms: the key is disabled' >&2; exit 1";
    let said = refused_start(&data, &["--unseal-key-command", failing]);
    assert!(said.contains("kms: the key is disabled"), "{said}");
    assert!(
        files_under(&data) == before,
        "a refusal changed the data directory"
    );

    // With its key, everything comes back: the result and its receipt, and the stored model.
    let served = Served::start_with(&data, &with_key);
    let engine_pub = PublicKey::read_file(&data.join("engine.pub")).unwrap();
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        let get = GetRequest {
            job_id: bell.id.clone(),
        };
        let again = client.get(proved(get, &lab, JobCall::Get, &bell.id)).await;
        let again = again.unwrap().into_inner();
        assert_eq!(again.result_json, bell.result_json);
        let receipt = again.receipt.as_ref().expect("its receipt is kept");
        assert!(chimera_client::receipt::check(
            receipt,
            &engine_pub,
            &again.result_json
        ));
        let spec = digits_inference(&model_id);
        let inferred = infer_job(&mut client, &lab, "urn:uuid:sealed-infer", &spec).await;
        assert_eq!(inferred.state(), JobState::Succeeded, "{}", inferred.error);
        assert_eq!(result(&inferred)["model_id"], model_id.as_str());
    });
}
