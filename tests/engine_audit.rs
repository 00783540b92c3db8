//! End-to-end tests of `chimera serve`'s audit log and data directory.

// Shared with the other tests, which use more of them.
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "common/engine_client.rs"]
mod engine_client;
#[allow(dead_code)]
#[path = "common/http_client.rs"]
mod http_client;
#[allow(dead_code)]
#[path = "common/served.rs"]
mod served;

use std::time::Duration;

use common::{chimera, ok, work_dir};
use engine_client::*;
use served::Served;

/// The commands that read an engine's data directory name a mistyped one as such (not as a file
/// missing inside it, nor as an empty list), and make nothing there.
#[test]
fn commands_on_a_mistyped_data_directory_say_so_and_make_nothing() {
    let dir = work_dir("engine-mistyped-data-dir");
    let mistyped = dir.join("dat");
    let data_arg = mistyped.to_str().unwrap();
    for args in [
        &["audit", "verify"][..],
        &["trust", "list"],
        &["trust", "revoke", "lab"],
    ] {
        let out = chimera(&[args, &["--data-dir", data_arg]].concat());
        assert!(!out.status.success(), "{args:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains(&format!("no data directory {data_arg}")),
            "{args:?}: {said}"
        );
        assert!(!mistyped.exists(), "{args:?} made {data_arg}");
    }
    // A data directory that trusts no key yet says so, and how to trust one.
    let out = ok(chimera(&[
        "trust",
        "list",
        "--data-dir",
        dir.to_str().unwrap(),
    ]));
    assert!(out.stdout.is_empty());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("no keys are trusted") && said.contains("chimera trust add"),
        "{said}"
    );
}

#[test]
fn the_audit_log_holds_what_the_engine_saw_signed_and_a_changed_record_is_found() {
    let dir = work_dir("engine-audit");
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    let lab = trusted_key(&data, &dir, "lab", "*");
    trusted_key(&data, &dir, "intern", "*");
    let served = Served::start(&data);
    let bell = document(
        "urn:uuid:audited",
        "quantum_circuit",
        "",
        "shots: 10",
        &[("qasm", BELL)],
    );
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        let job = submit(&mut client, signed(&bell, &lab)).await;
        finished(&mut client, &lab, &job.id).await;
        // The same document again is the same job, not a new record.
        submit(&mut client, signed(&bell, &lab)).await;
        assert_eq!(refusal(&mut client, b"hello".to_vec()).await.1, "MALFORMED");
        heads_until(&mut client, "every head with its first key", |h| {
            h.values().all(|h| h.key_epoch == 1)
        })
        .await;
        kill_and_rebuild(&mut client, &["q1"]).await;
        ok(chimera(&["admin", "rotate", "--server", &served.url]));
        ok(chimera(&[
            "trust",
            "revoke",
            "intern",
            "--data-dir",
            data_arg,
        ]));
    });
    // Stopped: the engine signs what it has not signed yet.
    drop(served);

    let out = ok(chimera(&["audit", "verify", "--data-dir", data_arg]));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("intact") && !said.contains("not yet signed"),
        "{said}"
    );
    let path = data.join("audit.log");
    let lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let records: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["record"].clone())
        .collect();
    let of = |event: &str| -> Vec<&serde_json::Value> {
        records.iter().filter(|r| r["event"] == event).collect()
    };
    let names = |event: &str, field: &str| -> Vec<String> {
        of(event)
            .iter()
            .map(|r| r[field].as_str().unwrap().to_owned())
            .collect()
    };
    // Trusted before the engine first started; revoked while it ran.
    assert_eq!(names("key_trusted", "name"), ["lab", "intern"]);
    assert_eq!(records[2]["event"], "engine_started");
    assert_eq!(names("key_revoked", "name"), ["intern"]);
    let submitted = of("submitted");
    assert_eq!(submitted.len(), 1, "{submitted:?}");
    assert_eq!(submitted[0]["job"], "urn:uuid:audited");
    assert_eq!(submitted[0]["key"], "lab");
    assert_eq!(names("refused", "reason"), ["MALFORMED"]);
    assert_eq!(names("head_down", "head"), ["q1"]);
    let rebuilt = of("head_rebuilt");
    assert_eq!(rebuilt.len(), 1, "{rebuilt:?}");
    assert_eq!(
        (&rebuilt[0]["head"], &rebuilt[0]["restored"]),
        (&"q1".into(), &true.into())
    );
    let mut keyed = names("head_keyed", "head");
    keyed.sort();
    keyed.dedup();
    assert_eq!(keyed, ["a0", "a1", "q0", "q1"]);
    let rotations = names("rotation_requested", "by");
    assert!(
        rotations.len() == 1 && rotations[0].starts_with("RotateKeys from 127.0.0.1:"),
        "{rotations:?}"
    );
    let n = records.len();
    assert_eq!(
        (&records[n - 2]["event"], &records[n - 1]["event"]),
        (&"engine_stopped".into(), &"checkpoint".into())
    );

    // Someone changes which key submitted the job.
    let at = records
        .iter()
        .position(|r| r["event"] == "submitted")
        .unwrap();
    let mut changed = lines.clone();
    changed[at] = changed[at].replace("\"key\":\"lab\"", "\"key\":\"intern\"");
    std::fs::write(&path, changed.join("\n") + "\n").unwrap();
    let out = chimera(&["audit", "verify", "--data-dir", data_arg]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("line {}: record {at} was changed", at + 1)),
        "{said}"
    );
}

#[test]
fn an_audit_log_past_its_size_goes_on_in_new_files_that_verify_as_one_chain() {
    let dir = work_dir("engine-audit-rotation");
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    let refused = chimera(&["serve", "--audit-rotate-mib=-1", "--data-dir", data_arg]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--audit-rotate-mib must be"),
        "{refused:?}"
    );
    let key = trusted_key(&data, &dir, "lab", "*");
    // 2 KiB: a few records to a file.
    let served = Served::start_with(&data, &["--audit-rotate-mib", "0.002"]);
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        // A file is renamed after a checkpoint, which the engine signs at most once a second.
        for i in 0..3 {
            let id = format!("urn:uuid:audited-{i}");
            let bell = document(&id, "quantum_circuit", "", "shots: 10", &[("qasm", BELL)]);
            submit(&mut client, signed(&bell, &key)).await;
            finished(&mut client, &key, &id).await;
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
    });
    drop(served);
    let renamed = std::fs::read_dir(&data)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_str().unwrap().starts_with("audit.log.")
        })
        .count();
    assert!(renamed >= 2, "{renamed} files renamed");
    let out = ok(chimera(&["audit", "verify", "--data-dir", data_arg]));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("intact") && said.contains(&format!("in {} files", renamed + 1)),
        "{said}"
    );
}
