//! End-to-end tests of `chimera serve`'s heads: killed under their jobs and rebuilt with their
//! keys and state, the engine itself killed and restarted, and stopping.

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

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chimera_client::JobCall;
use chimera_maml::SecretKey;
use chimera_proto::v1::engine_client::EngineClient;
use chimera_proto::v1::{GetRequest, Head, HeadStatus, JobState, WatchRequest, job_event};
use common::{chimera, ok, work_dir};
use engine_client::*;
use http_client::{http, http_door, json};
use served::{Served, signal};
use tonic::transport::Channel;

/// The pid of the head running `job_id`, once one is.
async fn head_running(client: &mut EngineClient<Channel>, job_id: &str) -> Head {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(head) = heads(client).await.into_iter().find(|h| h.job_id == job_id) {
            return head;
        }
        assert!(Instant::now() < deadline, "{job_id} never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A quantum head running one of `circuits`, and which, once one is.
async fn circuit_running(
    client: &mut EngineClient<Channel>,
    circuits: &[String],
) -> (Head, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let running = heads(client)
            .await
            .into_iter()
            .find(|h| circuits.contains(&h.job_id));
        if let Some(head) = running {
            let job = head.job_id.clone();
            return (head, job);
        }
        assert!(Instant::now() < deadline, "no circuit ever ran");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every file under `dir` but those of a checkpoint being written, with the key epoch it is
/// sealed under (`None`: not sealed).
fn sealed_files(dir: &Path) -> Vec<(std::path::PathBuf, Option<u32>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue; // Removed meanwhile.
        };
        for path in entries.filter_map(|e| Some(e.ok()?.path())) {
            if path
                .extension()
                .is_some_and(|e| e == "partial" || e == "sealing")
            {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                let epoch = bytes
                    .strip_prefix(b"CHS1")
                    .map(|rest| u32::from_be_bytes(rest[..4].try_into().unwrap()));
                files.push((path, epoch));
            }
        }
    }
    files
}

/// The command lines of the head processes running on `data`, from /proc.
fn heads_of(data: &Path) -> Vec<String> {
    let data = data.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| std::fs::read(entry.ok()?.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(" head --id ") && cmdline.contains(&data))
        .collect()
}

#[test]
fn heads_killed_while_running_jobs_are_replaced_and_every_job_finishes_once() {
    let dir = work_dir("engine-head-kill");
    let data = dir.join("data");
    let key = trusted_key(&data, &dir, "lab", "*");
    let served = Served::start(&data);
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        let training = training_job("urn:uuid:long-training", 300);
        let training = submit(&mut client, signed(&training, &key)).await.id;
        let circuit = slow_circuit();
        let mut circuits = Vec::new();
        for i in 0..12 {
            let doc = document(
                &format!("urn:uuid:circuit-{i}"),
                "quantum_circuit",
                "",
                "shots: 64\nseed: 5",
                &[("qasm", &circuit)],
            );
            circuits.push(submit(&mut client, signed(&doc, &key)).await.id);
        }

        // SIGKILL a quantum head in the middle of a circuit (whichever runs first: on a fast
        // machine they are all done before the training is far along), and the AI head in the
        // middle of training. The AI head's directory is lost with it (stopped first, so that
        // it writes no more): its rebuild takes its state back from the replicas its peers
        // hold.
        let (victim, killed_circuit) = circuit_running(&mut client, &circuits).await;
        signal(victim.pid as i32, libc::SIGKILL);
        trained_to(&mut client, &key, &training, 20).await;
        let ai = head_running(&mut client, &training).await;
        let state = data.join("heads").join(&ai.id);
        signal(ai.pid as i32, libc::SIGSTOP);
        std::fs::remove_dir_all(&state).unwrap();
        signal(ai.pid as i32, libc::SIGKILL);

        // Resumed by the AI head's rebuild: every file of its state is sealed under its new
        // key (epoch 2), re-sealed or written since.
        trained_to(&mut client, &key, &training, 40).await;
        let files = sealed_files(&state);
        assert!(files.len() >= 4, "{files:?}");
        for (path, epoch) in files {
            assert_eq!(epoch, Some(2), "{}", path.display());
        }
        // And so are the replicas its peers hold of it.
        for peer in ["q0", "q1", "a0", "a1"].iter().filter(|p| **p != ai.id) {
            let held = sealed_files(&data.join("replicas").join(peer).join(&ai.id));
            assert!(!held.is_empty(), "{peer} holds nothing of {}", ai.id);
            for (path, epoch) in held {
                assert_eq!(epoch, Some(2), "{}", path.display());
            }
        }

        let mut by_id = HashMap::new();
        for id in circuits.iter().chain([&training]) {
            by_id.insert(id.clone(), finished(&mut client, &key, id).await);
        }
        let reference = result(&by_id[&circuits[0]])["counts"].clone();
        for id in &circuits {
            let job = &by_id[id];
            // Same circuit, same seed: the same counts, whether or not it ran twice.
            assert_eq!(result(job)["counts"], reference, "{id}");
            assert!(
                job.attempts >= 1 && job.attempts <= 2,
                "{id}: {} attempts",
                job.attempts
            );
        }
        assert_eq!(
            by_id[&killed_circuit].attempts, 2,
            "the killed circuit ran again"
        );
        let trained = &by_id[&training];
        // The whole job in the message: this failed once in a parallel run, unexplained.
        assert_eq!(trained.attempts, 2, "{trained:?}");
        // Its checkpoint is sealed under the dead head's key: the job waited for that head's
        // rebuild, which restored the key from two peers and went on from the checkpoint.
        assert_eq!(trained.head, ai.id);
        let report = result(trained);
        assert_eq!(report["resumed_from_checkpoint"], true, "{report}");
        assert!(report["val_accuracy"].as_f64().unwrap() > 0.9, "{report}");
        // Its checkpoints went with it, here and at its peers (which hear of it a moment later).
        assert!(sealed_files(&state).is_empty());
        for peer in ["q0", "q1", "a0", "a1"].iter().filter(|p| **p != ai.id) {
            let held = data.join("replicas").join(peer).join(&ai.id);
            let deadline = Instant::now() + Duration::from_secs(10);
            while !sealed_files(&held).is_empty() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(sealed_files(&held).is_empty(), "{peer}");
        }
        let recovered = series(
            &served.scrape_metrics(),
            "chimera_head_recovered_files_total",
            &[&format!("head=\"{}\"", ai.id)],
        );
        assert!(recovered.is_some_and(|n| n >= 4.0), "{recovered:?}");

        let after = heads(&mut client).await;
        for killed in [&ai.id, &victim.id] {
            let head = after.iter().find(|h| &h.id == killed).unwrap();
            assert_eq!(head.restarts, 1, "{killed}");
            assert_eq!(head.status, HeadStatus::Up as i32, "{killed}");
        }

        // A head that stops answering (SIGSTOP: alive, but no heartbeats) is replaced too.
        let quiet = after.iter().find(|h| h.id == "q1").unwrap().clone();
        signal(quiet.pid as i32, libc::SIGSTOP);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let q1 = heads(&mut client)
                .await
                .into_iter()
                .find(|h| h.id == "q1")
                .unwrap();
            if q1.status == HeadStatus::Up as i32 && q1.pid != quiet.pid {
                assert_eq!(q1.restarts, quiet.restarts + 1);
                break;
            }
            assert!(Instant::now() < deadline, "q1 was not replaced: {q1:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

#[test]
fn a_killed_head_restores_its_key_from_two_peers_and_one_peer_alone_is_not_enough() {
    let dir = work_dir("engine-key-rebuild");
    let served = Served::start(&dir.join("data"));
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        heads_until(&mut client, "every head with its first key", |h| {
            h.values().all(|h| h.key_epoch == 1)
        })
        .await;

        let took = kill_and_rebuild(&mut client, &["q0"]).await;
        eprintln!("q0 restored its key and rotated {took:?} after SIGKILL");
        // Two at once: each still has two live peers holding its shares (q0's new life among
        // them, which its peers dealt to again).
        let took = kill_and_rebuild(&mut client, &["q1", "a1"]).await;
        eprintln!("q1 and a1 restored theirs {took:?} after SIGKILL");
        let metrics = served.scrape_metrics();
        for head in ["q0", "q1", "a1"] {
            let rebuilds = series(
                &metrics,
                "chimera_head_rebuilds_total",
                &[&format!("head=\"{head}\""), "outcome=\"restored\""],
            );
            assert_eq!(rebuilds, Some(1.0), "{head}:\n{metrics}");
            assert_eq!(
                series(
                    &metrics,
                    "chimera_head_key_epoch",
                    &[&format!("head=\"{head}\"")]
                ),
                Some(2.0),
                "{metrics}"
            );
        }
        assert_eq!(
            series(
                &metrics,
                "chimera_head_rebuild_seconds_count",
                &["outcome=\"restored\""]
            ),
            Some(3.0),
            "{metrics}"
        );

        // Three at once: each has one live peer left, and one share opens nothing. They give up
        // on their dead heads' keys and go on with new ones.
        kill_and_rebuild(&mut client, &["q0", "q1", "a0"]).await;
        let metrics = served.scrape_metrics();
        for head in ["q0", "q1", "a0"] {
            let lost = series(
                &metrics,
                "chimera_head_rebuilds_total",
                &[&format!("head=\"{head}\""), "outcome=\"new_key\""],
            );
            assert_eq!(lost, Some(1.0), "{head}:\n{metrics}");
        }
        let after = heads_until(&mut client, "every head up", |h| {
            h.values().all(|h| h.status == HeadStatus::Up as i32)
        })
        .await;
        assert_eq!(after["q0"].key_epoch, 3);
        assert_eq!(after["a0"].key_epoch, 2);
        // Each new key is dealt to the three peers again, and `chimera heads` says so.
        heads_until(&mut client, "every new key shared with three peers", |h| {
            h.values().all(|h| h.key_shares == 3)
        })
        .await;
        let out = ok(chimera(&["heads", "--server", &served.url, "--json"]));
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for head in listed.as_array().unwrap() {
            assert_eq!(head["key_shares"], 3, "{listed}");
        }
        // And so does the metric an operator alerts on (set as the supervisor reports it).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let metrics = served.scrape_metrics();
            let shares: Vec<_> = ["a0", "a1", "q0", "q1"]
                .map(|head| {
                    series(
                        &metrics,
                        "chimera_head_key_shares",
                        &[&format!("head=\"{head}\"")],
                    )
                })
                .into();
            if shares.iter().all(|s| *s == Some(3.0)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "key shares {shares:?}:\n{metrics}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // A rotation on demand: every head moves to its next epoch.
        let out = ok(chimera(&[
            "admin",
            "rotate",
            "--server",
            &served.url,
            "--json",
        ]));
        let rotated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for head in rotated.as_array().unwrap() {
            let id = head["id"].as_str().unwrap();
            assert_eq!(
                head["key_epoch"].as_u64().unwrap(),
                u64::from(after[id].key_epoch) + 1,
                "{rotated}"
            );
        }
    });
}

#[test]
fn heads_rotate_their_keys_on_schedule_and_a_rebuild_restores_the_latest() {
    let dir = work_dir("engine-key-rotation");
    // Every 1.8 s.
    let served = Served::start_with(&dir.join("data"), &["--rotate-keys-every", "0.0005"]);
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        heads_until(&mut client, "two rotations of every head", |h| {
            h.values().all(|h| h.key_epoch >= 3)
        })
        .await;
        kill_and_rebuild(&mut client, &["a0"]).await;
        let metrics = served.scrape_metrics();
        assert_eq!(
            series(
                &metrics,
                "chimera_head_rebuilds_total",
                &["head=\"a0\"", "outcome=\"restored\""]
            ),
            Some(1.0),
            "{metrics}"
        );
    });
}

/// The fault-injection run with one kill of each head (`benches/head_rebuild.rs` makes 20).
#[test]
fn every_head_killed_in_turn_with_jobs_in_flight_loses_nothing_and_training_goes_on() {
    let dir = work_dir("engine-faults");
    let data = dir.join("data");
    let key = trusted_key(&data, &dir, "lab", "*");
    let served = Served::start(&data);
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        let run = kill_heads_in_turn(&mut client, &key, 4, Duration::from_millis(700), 300).await;
        for (head, took) in &run.rebuilds {
            eprintln!("{head}: serving again {took:?} after SIGKILL");
        }
        assert_eq!(run.rebuilds.len(), 4);
        // Each AI head was killed training, after a checkpoint: that job went on from it.
        assert_eq!(run.trainings.len(), 4);
        let killed: Vec<_> = run
            .trainings
            .iter()
            .filter(|(_, attempts)| *attempts > 1)
            .collect();
        assert_eq!(killed.len(), 2, "{:?}", run.trainings);
        for (trained, _) in killed {
            assert_eq!(trained["resumed_from_checkpoint"], true, "{trained}");
        }
        for (trained, _) in &run.trainings {
            assert!(trained["val_accuracy"].as_f64().unwrap() > 0.9, "{trained}");
        }
        assert_eq!(run.circuits, 12);
        // Each quantum head was killed running a circuit, which either ran again or had ended
        // before the kill (`kill_heads_in_turn` checks which by the times).
        assert_eq!(run.circuits_killed.len(), 2, "{:?}", run.circuits_killed);
        eprintln!("circuits killed running: {:?}", run.circuits_killed);
        let metrics = served.scrape_metrics();
        assert_eq!(
            series(
                &metrics,
                "chimera_head_rebuild_seconds_count",
                &["outcome=\"restored\""]
            ),
            Some(4.0),
            "{metrics}"
        );
    });
}

/// A job that brings its head down (here: its head is killed each time it runs it) is not run
/// again and again, taking every head down in turn: after `MAX_HEAD_DEATHS` deaths it fails,
/// saying why, and the engine goes on with other work.
#[test]
fn a_job_whose_head_dies_three_times_fails_instead_of_running_again() {
    let dir = work_dir("engine-poison");
    let data = dir.join("data");
    let key = trusted_key(&data, &dir, "lab", "*");
    let served = Served::start(&data);
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        let training = training_job("urn:uuid:brings-heads-down", 300);
        let id = submit(&mut client, signed(&training, &key)).await.id;
        let mut killed = Vec::new();
        for _ in 0..chimera_server::dispatch::MAX_HEAD_DEATHS {
            // A living head running it: not one already killed, whose death the engine may not
            // have seen yet.
            let deadline = Instant::now() + Duration::from_secs(60);
            let head = loop {
                let running = heads(&mut client)
                    .await
                    .into_iter()
                    .find(|h| h.job_id == id && !killed.contains(&h.pid));
                if let Some(head) = running {
                    break head;
                }
                assert!(Instant::now() < deadline, "{id} was not run again");
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            signal(head.pid as i32, libc::SIGKILL);
            killed.push(head.pid);
        }
        let job = finished(&mut client, &key, &id).await;
        assert_eq!(job.state, JobState::Failed as i32, "{job:?}");
        assert!(
            job.error.contains("died 3 times") && job.error.contains("not run again"),
            "{}",
            job.error
        );
        // The heads are rebuilt and take other work.
        let bell = document(
            "urn:uuid:after-the-poison",
            "quantum_circuit",
            "",
            "shots: 10",
            &[("qasm", BELL)],
        );
        let after = submit(&mut client, signed(&bell, &key)).await;
        let after = finished(&mut client, &key, &after.id).await;
        assert_eq!(after.state, JobState::Succeeded as i32, "{after:?}");
    });
}

#[test]
fn an_engine_killed_and_restarted_finishes_every_acknowledged_job() {
    let dir = work_dir("engine-restart");
    let data = dir.join("data");
    let key = trusted_key(&data, &dir, "lab", "*");
    let served = Served::start(&data);
    let circuit = slow_circuit();
    let mut acknowledged = Vec::new();
    let training = "urn:uuid:training-across-restart".to_owned();
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        let doc = training_job(&training, 300);
        acknowledged.push(submit(&mut client, signed(&doc, &key)).await.id);
        for i in 0..16 {
            let doc = document(
                &format!("urn:uuid:r-{i}"),
                "quantum_circuit",
                "",
                "shots: 32\nseed: 9",
                &[("qasm", &circuit)],
            );
            acknowledged.push(submit(&mut client, signed(&doc, &key)).await.id);
        }
        trained_to(&mut client, &key, &training, 10).await;
    });
    served.kill_hard();

    let served = Served::start(&data);
    let engine_pub = chimera_maml::PublicKey::read_file(&data.join("engine.pub")).unwrap();
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        let mut reference = None;
        let mut model_id = None;
        for id in &acknowledged {
            let job = finished(&mut client, &key, id).await;
            let result = result(&job);
            // Each receipt, signed under the identity key the data directory keeps sealed,
            // verifies after the restart.
            let receipt = job.receipt.as_ref().expect("a finished job has a receipt");
            assert!(chimera_client::receipt::check(
                receipt,
                &engine_pub,
                &job.result_json
            ));
            if id == &training {
                // Its checkpoints are sealed under its head's key, which the data directory
                // keeps wrapped under the operator's unseal key (issue 36): the restarted head
                // takes it back, and the training goes on from its last checkpoint.
                assert_eq!(result["resumed_from_checkpoint"], true, "{result}");
                assert!(result["val_accuracy"].as_f64().unwrap() > 0.9, "{result}");
                assert!(job.attempts >= 2);
                model_id = result["model_id"].as_str().map(str::to_owned);
            } else {
                let counts = result["counts"].clone();
                assert_eq!(reference.get_or_insert(counts.clone()), &counts, "{id}");
            }
        }
        // The model it stored (sealed) answers an inference job.
        let model_id = model_id.expect("the training stored a model");
        let spec = digits_inference(&model_id);
        let inferred = infer_job(&mut client, &key, "urn:uuid:after-restart", &spec).await;
        assert_eq!(inferred.state(), JobState::Succeeded, "{}", inferred.error);
        assert_eq!(result(&inferred)["model_id"], model_id.as_str());
    });
    drop(served);
    // Every head exited with the engine: none is left holding the data directory.
    let leftover = heads_of(&data);
    assert!(leftover.is_empty(), "heads left running: {leftover:?}");
}

#[test]
fn a_stopping_engine_ends_its_watches_and_waits_at_once_and_keeps_the_job() {
    let dir = work_dir("engine-stop");
    let data = dir.join("data");
    let key = trusted_key(&data, &dir, "lab", "*");
    let served = Served::start_with(&data, &["--http-listen", "127.0.0.1:0"]);
    let door = http_door(&served, "http");
    // Minutes of training: the engine must not wait for it to stop.
    let id = "urn:uuid:training-while-stopping";
    let document = signed(&training_job(id, 5000), &key);
    let main_runtime = runtime();
    let stuck_watch = main_runtime.block_on(async {
        let mut client = client(&served.url).await;
        submit(&mut client, document.clone()).await;
        trained_to(&mut client, &key, id, 2).await;
        // A client that stops reading: this runtime is not run while the engine stops.
        let watch = proved(WatchRequest { job_id: id.into() }, &key, JobCall::Watch, id);
        client.watch(watch).await.unwrap().into_inner()
    });
    // A client that reads its watch to the end, on a thread of its own.
    let (url, (watching, watch_open)) = (served.url.clone(), std::sync::mpsc::channel());
    let reader_key = SecretKey::read_file(&dir.join("lab.key")).unwrap();
    let reader = std::thread::spawn(move || {
        runtime().block_on(async move {
            let mut client = client(&url).await;
            let watch = WatchRequest { job_id: id.into() };
            let watch = proved(watch, &reader_key, JobCall::Watch, id);
            let mut events = client.watch(watch).await.unwrap().into_inner();
            watching.send(()).unwrap();
            loop {
                match events.message().await {
                    Ok(Some(event)) => assert!(
                        !matches!(event.detail, Some(job_event::Detail::Finished(_))),
                        "the job finished"
                    ),
                    Ok(None) => panic!("the watch ended without saying why"),
                    Err(status) => return status,
                }
            }
        })
    });
    watch_open.recv().unwrap();
    // A curl user waiting for the same job (the same bytes again: the job already taken).
    let waiting = std::thread::spawn(move || http(&door, "POST", "/execute?wait=600", &document));
    std::thread::sleep(Duration::from_millis(500));

    let took = served.stop();
    assert!(
        took < Duration::from_secs(10),
        "the engine took {took:?} to stop"
    );
    drop(stuck_watch);
    let (code, body) = waiting.join().unwrap();
    assert_eq!(code, 202, "{body}");
    assert_eq!(json(&body)["status"], "running", "{body}");
    let ended = reader.join().unwrap();
    assert_eq!(
        chimera_client::reason_of(&ended).as_deref(),
        Some("ENGINE_STOPPING"),
        "{ended:?}"
    );
    assert!(ended.message().contains(id), "{ended:?}");

    // Started again, the engine still has the job, to run again.
    let served = Served::start(&data);
    main_runtime.block_on(async {
        let mut client = client(&served.url).await;
        let job = client
            .get(proved(
                GetRequest { job_id: id.into() },
                &key,
                JobCall::Get,
                id,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(
            [JobState::Queued, JobState::Running].contains(&job.state()),
            "{job:?}"
        );
    });
    // Its connection closed, so that the engine's stop need not wait for it.
    drop(main_runtime);
}

#[test]
fn submit_wait_follows_its_job_across_an_engine_restart() {
    let dir = work_dir("engine-follow-restart");
    let data = dir.join("data");
    let key = trusted_key(&data, &dir, "lab", "*");
    let listen = format!("127.0.0.1:{}", served::free_port());
    let served = Served::start_with(&data, &["--listen", &listen]);
    let job = dir.join("job.md");
    let id = "urn:uuid:followed-across-a-restart";
    std::fs::write(&job, signed(&training_job(id, 200), &key)).unwrap();
    let url = format!("http://{listen}");
    let follower = Command::new(common::exe())
        .args(["submit", "--wait", "--server", &url, job.to_str().unwrap()])
        .arg("--key")
        .arg(dir.join("lab.key"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    runtime().block_on(async {
        let mut client = client(&url).await;
        // Submitted by the follower, then trained a little.
        let get = || proved(GetRequest { job_id: id.into() }, &key, JobCall::Get, id);
        while client.get(get()).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        trained_to(&mut client, &key, id, 2).await
    });
    served.stop();
    std::thread::sleep(Duration::from_secs(2));
    let _served = Served::start_with(&data, &["--listen", &listen]);

    let out = follower.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("{id} succeeded")), "{stdout}");
    assert!(stderr.contains("ENGINE_STOPPING"), "{stderr}");
    assert!(stderr.contains("the engine is back"), "{stderr}");
}

#[test]
fn heads_are_stopped_by_the_engine_alone_not_by_signals_meant_for_it() {
    let dir = work_dir("engine-head-signals");
    let served = Served::start(&dir.join("data"));
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        let serving = |heads: &HashMap<String, Head>| {
            heads.len() == 4 && heads.values().all(|h| h.status() == HeadStatus::Up)
        };
        let before = heads_until(&mut client, "four heads up", serving).await;
        // SAFETY: getpgid reads the process group of a process this test started.
        let group = |pid: i32| unsafe { libc::getpgid(pid) };
        for head in before.values() {
            // Away from the terminal's Ctrl-C, which goes to the engine's group.
            assert_ne!(group(head.pid as i32), group(served.pid()), "{}", head.id);
            // A service manager's SIGTERM to every process, or a Ctrl-C sent to all of them.
            signal(head.pid as i32, libc::SIGTERM);
            signal(head.pid as i32, libc::SIGINT);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = heads_until(&mut client, "four heads up", serving).await;
        for (id, head) in &after {
            assert_eq!((head.pid, head.restarts), (before[id].pid, 0), "{id}");
        }
    });
    // The engine still stops them when it stops.
    assert!(served.stop() < Duration::from_secs(10));
}
