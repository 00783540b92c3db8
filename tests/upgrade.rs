//! An engine started on a data directory that the previous release made (issue 35): the jobs it
//! had accepted and not finished, which its journal holds without a checked job, are checked at
//! start from their documents and run; the job it had finished keeps its result and receipt.
//! The data directory is `tests/fixtures/release-0.1.0` (its README says how it was made). Its
//! journal and identity key are sealed at that start (issue 36).

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "common/engine_client.rs"]
mod engine_client;
#[allow(dead_code)]
#[path = "common/served.rs"]
mod served;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use chimera_client::JobCall;
use chimera_maml::SecretKey;
use chimera_proto::v1::{GetRequest, JobState};
use common::{assert_no_plaintext, work_dir};
use engine_client::*;
use served::Served;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/release-0.1.0");

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
        // Git keeps no file's mode but its executable bit: secret keys are refused unless they
        // are their owner's alone.
        if target.extension().is_some_and(|e| e == "key") {
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

/// A Bell job's result: 64 shots of 00 and 11 only, with its Context's seed and `Z0 Z1` = 1.
fn assert_bell(result: &serde_json::Value) {
    let counts = result["counts"].as_object().unwrap();
    assert!(counts.keys().all(|k| k == "00" || k == "11"), "{result}");
    let shots: u64 = counts.values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!((shots, result["seed"].as_u64()), (64, Some(11)), "{result}");
    let zz = &result["expectation_values"][0];
    assert_eq!(zz["observable"], "Z0 Z1", "{result}");
    assert!(
        (zz["value"].as_f64().unwrap() - 1.0).abs() < 1e-6,
        "{result}"
    );
}

#[test]
fn the_jobs_a_data_directory_of_the_previous_release_holds_run_or_keep_their_results() {
    let dir = work_dir("upgrade");
    copy_dir(Path::new(FIXTURE), &dir);
    let lab = SecretKey::read_file(&dir.join("lab.key")).unwrap();
    let served = Served::start(&dir.join("data"));
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        for i in 1..=3 {
            let bell = finished(&mut client, &lab, &format!("urn:uuid:old-bell-{i}")).await;
            assert_eq!(bell.state(), JobState::Succeeded, "{}", bell.error);
            assert_bell(&result(&bell));
            let id = format!("urn:uuid:old-training-{i}");
            let training = finished(&mut client, &lab, &id).await;
            assert_eq!(training.state(), JobState::Succeeded, "{}", training.error);
            let trained = result(&training);
            assert_eq!(trained["epochs"], 1, "{trained}");
            assert!(
                trained["model_id"]
                    .as_str()
                    .is_some_and(|id| !id.is_empty())
            );
        }
        let id = "urn:uuid:old-finished";
        let get = GetRequest { job_id: id.into() };
        let old = client.get(proved(get, &lab, JobCall::Get, id)).await;
        let old = old.unwrap().into_inner();
        assert_eq!(old.state(), JobState::Succeeded);
        assert_bell(&result(&old));
        assert!(old.receipt.is_some(), "the finished job lost its receipt");
        let get = GetRequest { job_id: id.into() };
        let receipt = client.get_receipt_document(proved(get, &lab, JobCall::Receipt, id));
        let receipt = receipt.await.unwrap().into_inner().maml;
        assert!(receipt.contains("[RECEIPT]"), "{receipt}");
    });
    // A document that release accepted is the same job when sent again: not run twice.
    let resent = std::fs::read(dir.join("bell-1.signed.maml")).unwrap();
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        let again = submit(&mut client, resent).await;
        assert_eq!(again.state(), JobState::Succeeded);
        assert_eq!(
            again.attempts, 2,
            "killed under its first attempt, run in its second"
        );
    });
    served.stop();
    // Sealed at that first start (issue 36): the journal's documents, circuits, results and
    // receipts, and the engine's identity key, are nowhere in the data directory in plaintext.
    let data = dir.join("data");
    assert!(data.join("keyring.json").exists() && !data.join("engine.key").exists());
    assert_no_plaintext(
        &data,
        &[
            "A Bell pair, admitted by release",
            "OPENQASM 2.0;",
            "\"counts\"",
            "chimera-receipt: 1",
            "PRIVATE KEY",
        ],
    );
}
