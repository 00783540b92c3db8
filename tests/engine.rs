//! End-to-end tests of `chimera serve`'s jobs: the real binary, its four head processes, and a
//! gRPC client talking to it as a gateway would. The heads' deaths and rebuilds are in
//! `engine_heads.rs`, the audit log in `engine_audit.rs`, the doors (limits, TLS, HTTP) in
//! `engine_doors.rs`.

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
use std::time::{Duration, Instant};

use chimera_client::JobCall;
use chimera_maml::{DEFAULT_MAX_BYTES, PublicKey, SecretKey};
use chimera_proto::v1::engine_client::EngineClient;
use chimera_proto::v1::{GetRequest, HeadStatus, Job, JobState, SubmitRequest, batch_reply};
use common::{chimera, failure, ok, repo, work_dir};
use engine_client::*;
use served::Served;
use tonic::transport::Channel;

/// `text` with its `created_at` replaced.
fn created_at(text: &str, time: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.starts_with("created_at: "))
        .unwrap();
    text.replace(line, &format!("created_at: {time}"))
}

/// The receipt is the engine's ML-DSA-65 signature over this job's result.
fn assert_receipt(job: &Job, engine_pub: &PublicKey) {
    let receipt = job.receipt.as_ref().expect("a finished job has a receipt");
    assert_eq!(receipt.engine_public_key, engine_pub.to_bytes());
    assert!(chimera_client::receipt::check(
        receipt,
        engine_pub,
        &job.result_json
    ));
    assert!(receipt.statement.contains(&format!("job_id: {}\n", job.id)));
    assert!(receipt.statement.contains(&format!("head: {}\n", job.head)));
}

fn example(name: &str) -> String {
    std::fs::read_to_string(repo(&format!("examples/{name}"))).unwrap()
}

/// The result of an inference job of one `chimera-infer` block, submitted and waited for.
async fn infer(
    client: &mut EngineClient<Channel>,
    key: &SecretKey,
    id: &str,
    spec: &str,
) -> serde_json::Value {
    result(&infer_job(client, key, id, spec).await)
}

/// A circuit whose gate `g{levels - 1}`, called once, expands to 2^levels gates.
fn doubling_gates(levels: usize) -> String {
    let mut qasm =
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\ngate g0 a { x a; x a; }\n".to_owned();
    for i in 1..levels {
        qasm.push_str(&format!("gate g{i} a {{ g{} a; g{} a; }}\n", i - 1, i - 1));
    }
    qasm + &format!("g{} q[0];\n", levels - 1)
}

#[test]
fn the_example_jobs_return_correct_signed_results() {
    let dir = work_dir("engine-examples");
    let data = dir.join("data");
    let key = trusted_key(&data, &dir, "lab", "*");
    let served = Served::start(&data);
    let engine_pub = PublicKey::read_file(&data.join("engine.pub")).unwrap();
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        let bell = signed(&example("bell.maml.md"), &key);
        let submitted = client
            .submit(SubmitRequest {
                document: bell.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(submitted.created);
        let qft = submit(&mut client, signed(&example("qft.maml.md"), &key)).await;
        let digits = submit(&mut client, signed(&example("train-digits.maml.md"), &key)).await;
        let moons = submit(&mut client, signed(&example("hybrid-moons.maml.md"), &key)).await;

        let bell_job = finished(&mut client, &key, &submitted.job.unwrap().id).await;
        let counts = result(&bell_job)["counts"].clone();
        let counts: HashMap<String, u64> = serde_json::from_value(counts).unwrap();
        assert_eq!(counts.values().sum::<u64>(), 4096);
        assert!(counts.keys().all(|k| k == "00" || k == "11"), "{counts:?}");
        assert!(counts["00"] > 1800 && counts["11"] > 1800, "{counts:?}");
        assert_eq!(bell_job.role, "quantum");
        assert!(bell_job.head.starts_with('q'));
        assert_eq!(bell_job.submitted_by, "lab");
        assert_receipt(&bell_job, &engine_pub);

        // The inverse transform of the Fourier state of 22: 10110 on every shot, which only its
        // controlled phases make (without them the shots spread over eight outcomes).
        let qft_job = finished(&mut client, &key, &qft.id).await;
        assert_eq!(
            result(&qft_job)["counts"],
            serde_json::json!({"10110": 1024})
        );
        assert_receipt(&qft_job, &engine_pub);

        let digits_job = finished(&mut client, &key, &digits.id).await;
        let trained = result(&digits_job);
        assert!(
            trained["val_accuracy"].as_f64().unwrap() >= 0.95,
            "{trained}"
        );
        assert!(digits_job.head.starts_with('a'));
        assert_receipt(&digits_job, &engine_pub);
        let model_id = trained["model_id"].as_str().unwrap();
        assert!(
            data.join("models")
                .join(model_id)
                .join("model.safetensors")
                .is_file()
        );

        // A stored model answers a chimera-infer job by its id.
        let spec = digits_inference(model_id);
        let inferred = infer(&mut client, &key, "urn:uuid:infer-1", &spec).await;
        assert_eq!(inferred["model_id"], model_id);
        assert_eq!(inferred["classes"].as_array().unwrap().len(), 1);

        // The hybrid job trains on an AI head, its circuit the job's qasm3 block.
        let moons_job = finished(&mut client, &key, &moons.id).await;
        let trained = result(&moons_job);
        assert!(
            trained["val_accuracy"].as_f64().unwrap() >= 0.9,
            "{trained}"
        );
        assert_eq!(moons_job.role, "ai");
        assert!(moons_job.head.starts_with('a'));
        assert_receipt(&moons_job, &engine_pub);
        let spec = format!(
            "model: {}\ninputs: [[0.0, 1.0], [1.0, -0.5]]",
            trained["model_id"]
        );
        let inferred = infer(&mut client, &key, "urn:uuid:infer-moons", &spec).await;
        assert_eq!(inferred["classes"], serde_json::json!([0, 1]), "{inferred}");

        // Idempotent by id: the same bytes again return the same job, done.
        let again = client
            .submit(SubmitRequest { document: bell })
            .await
            .unwrap()
            .into_inner();
        assert!(!again.created);
        assert_eq!(again.job.unwrap().result_json, bell_job.result_json);

        let get = GetRequest {
            job_id: qft.id.clone(),
        };
        let got = client
            .get(proved(get, &key, JobCall::Get, &qft.id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.result_json, qft_job.result_json);

        let heads = heads(&mut client).await;
        assert_eq!(
            heads.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            ["q0", "q1", "a0", "a1"]
        );
        assert!(
            heads
                .iter()
                .all(|h| h.status == HeadStatus::Up as i32 && h.pid > 0)
        );
        assert_eq!(heads.iter().map(|h| h.jobs_done).sum::<u64>(), 6);
    });

    // The CLI is a client too.
    let bell_file = dir.join("bell.signed.md");
    std::fs::write(&bell_file, signed(&example("bell.maml.md"), &key)).unwrap();
    let key_file = dir.join("lab.key");
    let key_file = key_file.to_str().unwrap();
    let out = ok(chimera(&[
        "submit",
        "--server",
        &served.url,
        "--wait",
        "--key",
        key_file,
        "--json",
        bell_file.to_str().unwrap(),
    ]));
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(line["state"], "succeeded");
    assert_eq!(line["receipt_valid"], true);
    // The receipt as MAML: the job's document with what ran in its History, signed by the engine.
    let bell_id = line["id"].as_str().unwrap();
    let receipt_file = dir.join("bell.receipt.md");
    ok(chimera(&[
        "receipt",
        bell_id,
        "--server",
        &served.url,
        "--key",
        key_file,
        "-o",
        receipt_file.to_str().unwrap(),
    ]));
    let engine_pub_file = data.join("engine.pub");
    ok(chimera(&[
        "verify",
        receipt_file.to_str().unwrap(),
        "--pub",
        engine_pub_file.to_str().unwrap(),
    ]));
    let rendered =
        chimera_maml::parse(&std::fs::read(&receipt_file).unwrap(), DEFAULT_MAX_BYTES).unwrap();
    let history = &rendered.job.history;
    assert_eq!(history.len(), 3, "{history:?}");
    assert!(history[0].contains("[CREATE]"), "{history:?}");
    assert!(
        history[1].contains("[EXECUTE] Code block 1 run by head q")
            && history[1].ends_with("of gateway://chimera. Status: Success."),
        "{history:?}"
    );
    let signed_bell = chimera_maml::parse(&std::fs::read(&bell_file).unwrap(), DEFAULT_MAX_BYTES);
    let job_digest: String = signed_bell.unwrap().signature.unwrap().sha3_512[..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        history[2].contains(&format!("[RECEIPT] Job SHA3-512 {job_digest}")),
        "{history:?}"
    );
    let out = ok(chimera(&["heads", "--server", &served.url, "--json"]));
    let heads: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(heads.as_array().unwrap().len(), 4);

    // One engine per data directory.
    let said = failure(&chimera(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics-addr",
        "off",
        "--data-dir",
        data.to_str().unwrap(),
    ]));
    assert!(said.contains("another `chimera serve`"), "{said}");

    let metrics = served.scrape_metrics();
    for head in ["q0", "q1", "a0", "a1"] {
        let up = metrics.lines().any(|l| {
            l.starts_with("chimera_head_status{")
                && l.contains(&format!("head=\"{head}\""))
                && l.ends_with(" 1")
        });
        assert!(up, "{head} is not reported up:\n{metrics}");
    }
    assert!(metrics.contains("chimera_jobs_total{"), "{metrics}");
    // Bell and QFT ran on quantum heads: their gate passes are counted, 2 x 2^n x 8 bytes each.
    let total = |name: &str| series_total(&metrics, name, &["head=\"q"]);
    let passes = total("chimera_statevector_gate_passes_total");
    assert!(passes >= 2.0, "{metrics}");
    let bytes = total("chimera_statevector_bytes_moved_total");
    assert!(bytes >= passes * 2.0 * 4.0 * 8.0, "{metrics}");
    let has_gpu = std::process::Command::new("nvidia-smi")
        .output()
        .is_ok_and(|o| o.status.success());
    if has_gpu {
        // Sampled once a second from the engine's start.
        std::thread::sleep(Duration::from_millis(1100));
        let metrics = served.scrape_metrics();
        for name in ["chimera_cuda_utilization", "chimera_gpu_memory_total_bytes"] {
            assert!(
                metrics.contains(&format!("{name}{{device_id=\"0\"}}")),
                "{metrics}"
            );
        }
    } else {
        eprintln!("SKIPPED: the GPU metrics (no nvidia-smi answers on this machine)");
        assert!(!metrics.contains("chimera_cuda_utilization{"), "{metrics}");
    }
    assert!(
        metrics.contains("chimera_submit_ack_seconds_bucket"),
        "{metrics}"
    );
}

#[test]
fn every_refusal_comes_back_as_its_reason() {
    let dir = work_dir("engine-refusals");
    let data = dir.join("data");
    let key = trusted_key(&data, &dir, "circuits-only", "quantum_circuit");
    let doomed = trusted_key(&data, &dir, "doomed", "*");
    let stranger = SecretKey::generate().unwrap();
    let served = Served::start(&data);
    let bell = |id: &str| document(id, "quantum_circuit", "", "shots: 10", &[("qasm", BELL)]);
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        use tonic::Code::*;
        let mut cases: Vec<(&str, Vec<u8>, tonic::Code, &str)> = vec![
            ("not MAML", b"hello".to_vec(), InvalidArgument, "MALFORMED"),
            (
                "unsigned",
                bell("urn:uuid:r1").into_bytes(),
                Unauthenticated,
                "UNSIGNED",
            ),
            (
                "unknown key",
                signed(&bell("urn:uuid:r2"), &stranger),
                Unauthenticated,
                "UNKNOWN_KEY",
            ),
            (
                "type not allowed",
                signed(&training_job("urn:uuid:r3", 1), &key),
                PermissionDenied,
                "TYPE_NOT_ALLOWED",
            ),
            (
                "python",
                signed(
                    &document(
                        "urn:uuid:r5",
                        "quantum_circuit",
                        "",
                        "",
                        &[("python", "print(1)"), ("qasm", BELL)],
                    ),
                    &key,
                ),
                InvalidArgument,
                "PYTHON_BLOCK",
            ),
            (
                "nothing to run",
                signed(
                    &document("urn:uuid:r6", "quantum_circuit", "", "", &[("json", "{}")]),
                    &key,
                ),
                InvalidArgument,
                "NOTHING_TO_RUN",
            ),
            (
                "hybrid",
                signed(
                    &document(
                        "urn:uuid:r7",
                        "workflow",
                        "",
                        "",
                        &[("qasm", BELL), ("chimera-train", &long_training(1))],
                    ),
                    &doomed,
                ),
                Unimplemented,
                "HYBRID_NOT_SUPPORTED",
            ),
            (
                "hybrid workflow with an OpenQASM 2 circuit",
                signed(
                    &document(
                        "urn:uuid:r7b",
                        "hybrid_workflow",
                        "",
                        "",
                        &[("qasm", BELL), ("chimera-train", &long_training(1))],
                    ),
                    // A key that may run any type, so that the blocks are what is refused.
                    &doomed,
                ),
                Unimplemented,
                "HYBRID_NOT_SUPPORTED",
            ),
            (
                "too large",
                vec![b'x'; DEFAULT_MAX_BYTES + 1],
                InvalidArgument,
                "TOO_LARGE",
            ),
            (
                "a gate no one defined",
                signed(
                    &document(
                        "urn:uuid:r-gate",
                        "quantum_circuit",
                        "",
                        "",
                        &[("qasm", &BELL.replace("h q[0];", "hh q[0];"))],
                    ),
                    &key,
                ),
                InvalidArgument,
                "BAD_CIRCUIT",
            ),
            (
                "a few lines that expand to 2^40 gates",
                signed(
                    &document(
                        "urn:uuid:r-expands",
                        "quantum_circuit",
                        "",
                        "",
                        &[("qasm", &doubling_gates(40))],
                    ),
                    &key,
                ),
                InvalidArgument,
                "BAD_CIRCUIT",
            ),
            (
                "a training spec with a wrong value",
                signed(
                    &document(
                        "urn:uuid:r-spec",
                        "training",
                        "",
                        "",
                        &[(
                            "chimera-train",
                            &long_training(1).replace("[64]", "[64, wide]"),
                        )],
                    ),
                    &doomed,
                ),
                InvalidArgument,
                "BAD_SPEC",
            ),
            (
                "an inference job reading a model outside the data directory",
                signed(
                    &document(
                        "urn:uuid:r-infer",
                        "inference",
                        "",
                        "",
                        &[("chimera-infer", "model: /etc\ninputs: [[1.0]]")],
                    ),
                    &doomed,
                ),
                InvalidArgument,
                "BAD_SPEC",
            ),
            (
                // 2^45 amplitudes: 256 TiB in single precision.
                "too many qubits for any device here",
                signed(
                    &document(
                        "urn:uuid:r-wide",
                        "quantum_circuit",
                        "",
                        "",
                        &[("qasm", &BELL.replace("[2]", "[45]"))],
                    ),
                    &key,
                ),
                OutOfRange,
                "TOO_MANY_QUBITS",
            ),
        ];
        let future = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
        cases.push((
            "created in the future",
            signed(&created_at(&bell("urn:uuid:r8"), &future.to_string()), &key),
            FailedPrecondition,
            "CREATED_IN_FUTURE",
        ));
        let expired = document(
            "urn:uuid:r4",
            "quantum_circuit",
            "expires_at: 2026-01-01T00:00:00Z\n",
            "",
            &[("qasm", BELL)],
        );
        cases.push((
            "expired",
            signed(&created_at(&expired, "2025-12-01T00:00:00Z"), &key),
            FailedPrecondition,
            "EXPIRED",
        ));
        let mut tampered = signed(&bell("urn:uuid:r9"), &key);
        let at = tampered.windows(5).position(|w| w == b"h q[0").unwrap();
        tampered[at] = b'x';
        cases.push(("tampered", tampered, Unauthenticated, "DIGEST_MISMATCH"));
        let mut trailer = signed(&bell("urn:uuid:r10"), &key);
        trailer.extend_from_slice(b"\nextra\n");
        cases.push((
            "trailer",
            trailer,
            InvalidArgument,
            "TRAILER_AFTER_SIGNATURE",
        ));

        for (what, document, code, reason) in cases {
            assert_eq!(
                refusal(&mut client, document).await,
                (code, reason.to_owned()),
                "{what}"
            );
        }

        // The same id with other bytes is a replay.
        submit(&mut client, signed(&bell("urn:uuid:once"), &key)).await;
        let other = bell("urn:uuid:once").replace("shots: 10", "shots: 11");
        assert_eq!(
            refusal(&mut client, signed(&other, &key)).await,
            (AlreadyExists, "REPLAYED_ID".to_owned())
        );

        // Revocation takes effect at the next submission, without a restart.
        submit(
            &mut client,
            signed(&bell("urn:uuid:before-revoke"), &doomed),
        )
        .await;
        ok(chimera(&[
            "trust",
            "revoke",
            "doomed",
            "--data-dir",
            data.to_str().unwrap(),
        ]));
        assert_eq!(
            refusal(&mut client, signed(&bell("urn:uuid:after-revoke"), &doomed)).await,
            (PermissionDenied, "REVOKED_KEY".to_owned())
        );

        // The CLI says the same.
        let unsigned = dir.join("unsigned.maml.md");
        std::fs::write(&unsigned, bell("urn:uuid:cli")).unwrap();
        let said = failure(&chimera(&[
            "submit",
            "--server",
            &served.url,
            unsigned.to_str().unwrap(),
        ]));
        assert!(said.contains("refused (UNSIGNED)"), "{said}");

        let nope = GetRequest {
            job_id: "urn:uuid:nope".into(),
        };
        let missing = client
            .get(proved(nope, &key, JobCall::Get, "urn:uuid:nope"))
            .await
            .unwrap_err();
        assert_eq!(missing.code(), NotFound);
        assert_eq!(
            chimera_client::reason_of(&missing).as_deref(),
            Some("NO_SUCH_JOB")
        );

        let fine = finished(&mut client, &key, "urn:uuid:once").await;
        assert_eq!(fine.state, JobState::Succeeded as i32);
        assert!(heads(&mut client).await.iter().all(|h| h.restarts == 0));
    });
}

#[test]
fn finished_jobs_lose_their_bodies_after_the_days_kept_and_keep_their_ids() {
    let dir = work_dir("engine-prune");
    let data = dir.join("data");
    let key = trusted_key(&data, &dir, "lab", "*");
    // Kept about 2.6 s.
    let served = Served::start_with(&data, &["--keep-finished-days", "0.00003"]);
    let bell = document(
        "urn:uuid:pruned",
        "quantum_circuit",
        "",
        "",
        &[("qasm", BELL)],
    );
    let signed_bell = signed(&bell, &key);
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        let id = submit(&mut client, signed_bell.clone()).await.id;
        let done = finished(&mut client, &key, &id).await;
        assert!(!done.result_json.is_empty() && done.pruned_at.is_empty());
        let get = GetRequest { job_id: id.clone() };
        let deadline = Instant::now() + Duration::from_secs(20);
        let pruned = loop {
            let request = proved(get.clone(), &key, JobCall::Get, &id);
            let job = client.get(request).await.unwrap().into_inner();
            if !job.pruned_at.is_empty() {
                break job;
            }
            assert!(Instant::now() < deadline, "not pruned: {job:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(pruned.state(), JobState::Succeeded);
        assert!(pruned.result_json.is_empty() && pruned.receipt.is_none());
        let request = proved(get, &key, JobCall::Receipt, &id);
        let refused = client.get_receipt_document(request).await.unwrap_err();
        assert_eq!(
            chimera_client::reason_of(&refused).as_deref(),
            Some("PRUNED"),
            "{refused:?}"
        );
        assert!(
            refused.message().contains("--keep-finished-days"),
            "{refused:?}"
        );
        // The id is still known: the same bytes are the same job, other bytes a replay.
        let again = client
            .submit(SubmitRequest {
                document: signed_bell.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!again.created);
        let other = bell.replace("h q[0];", "x q[0];");
        let (_, reason) = refusal(&mut client, signed(&other, &key)).await;
        assert_eq!(reason, "REPLAYED_ID");
    });
    let metrics = served.scrape_metrics();
    let pruned = series(&metrics, "chimera_jobs_pruned_total", &[]);
    assert_eq!(pruned, Some(1.0), "{pruned:?}");
}

#[test]
fn a_queued_job_whose_key_is_revoked_does_not_run() {
    let dir = work_dir("engine-revoke");
    let data = dir.join("data");
    let lab = trusted_key(&data, &dir, "lab", "*");
    let intern = trusted_key(&data, &dir, "intern", "training");
    // A revoked key proves nothing any more: an operator reads what became of its job.
    let ops = trusted_key(&data, &dir, "ops", "admin");
    let served = Served::start(&data);
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        // Both AI heads busy, the intern's job waits in the queue.
        let mut busy = Vec::new();
        for i in 0..2 {
            let doc = training_job(&format!("urn:uuid:busy-{i}"), 300);
            busy.push(submit(&mut client, signed(&doc, &lab)).await.id);
        }
        let waiting = submit(
            &mut client,
            signed(&training_job("urn:uuid:intern-job", 5), &intern),
        )
        .await;
        assert_eq!(waiting.state, JobState::Queued as i32);
        ok(chimera(&[
            "trust",
            "revoke",
            "intern",
            "--data-dir",
            data.to_str().unwrap(),
        ]));
        for id in &busy {
            cancel(&mut client, &lab, id).await.unwrap();
        }
        let job = finished(&mut client, &ops, &waiting.id).await;
        assert_eq!(job.state, JobState::Failed as i32, "{job:?}");
        assert!(
            job.error.contains("`intern`") && job.error.contains("revoked"),
            "{}",
            job.error
        );
        assert_eq!(job.attempts, 0, "it never started");
    });
}

#[test]
fn jobs_are_cancelled_whether_queued_or_running() {
    let dir = work_dir("engine-cancel");
    let data = dir.join("data");
    let key = trusted_key(&data, &dir, "lab", "*");
    let served = Served::start(&data);
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        // Two AI heads: the third training job waits in the queue.
        let mut ids = Vec::new();
        for i in 0..3 {
            let doc = training_job(&format!("urn:uuid:cancel-{i}"), 300);
            ids.push(submit(&mut client, signed(&doc, &key)).await.id);
        }
        let queued = cancel(&mut client, &key, &ids[2]).await.unwrap();
        assert_eq!(
            queued.state,
            JobState::Cancelled as i32,
            "a queued job is cancelled at once"
        );

        trained_to(&mut client, &key, &ids[0], 2).await;
        let get = GetRequest {
            job_id: ids[0].clone(),
        };
        let early = client
            .get_receipt_document(proved(get, &key, JobCall::Receipt, &ids[0]))
            .await
            .unwrap_err();
        assert_eq!(early.code(), tonic::Code::FailedPrecondition);
        assert_eq!(
            chimera_client::reason_of(&early).as_deref(),
            Some("NOT_FINISHED")
        );
        cancel(&mut client, &key, &ids[0]).await.unwrap();
        let stopped = finished(&mut client, &key, &ids[0]).await;
        assert_eq!(stopped.state, JobState::Cancelled as i32);
        assert!(stopped.result_json.is_empty());
        // The other ran on, and its head is free for more.
        let other = finished(&mut client, &key, &ids[1]).await;
        assert!(result(&other)["val_accuracy"].as_f64().unwrap() > 0.9);
        let missing = cancel(&mut client, &key, "urn:uuid:none")
            .await
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);
    });
}

#[test]
fn a_batch_stream_answers_each_submission_in_order_and_health_says_serving() {
    let dir = work_dir("engine-batch");
    let data = dir.join("data");
    let key = trusted_key(&data, &dir, "lab", "quantum_circuit");
    let served = Served::start(&data);
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        let bell = |id: &str| document(id, "quantum_circuit", "", "shots: 8", &[("qasm", BELL)]);
        let mut documents: Vec<Vec<u8>> = (0..40)
            .map(|i| signed(&bell(&format!("urn:uuid:batch-{i}")), &key))
            .collect();
        // A refusal in the middle of the stream is answered in its place; the stream goes on.
        documents[17] = bell("urn:uuid:batch-unsigned").into_bytes();
        documents[30] = documents[3].clone();
        let requests = tokio_stream::iter(
            documents
                .into_iter()
                .map(|document| SubmitRequest { document }),
        );
        let mut replies = client.submit_batch(requests).await.unwrap().into_inner();
        let mut answered = Vec::new();
        while let Some(reply) = replies.message().await.unwrap() {
            answered.push(reply);
        }
        assert_eq!(answered.len(), 40);
        for (i, reply) in answered.iter().enumerate() {
            assert_eq!(reply.index, i as u64);
            match (i, &reply.outcome) {
                (17, Some(batch_reply::Outcome::Refused(refusal))) => {
                    assert_eq!(refusal.reason, "UNSIGNED");
                    assert_eq!(refusal.code, tonic::Code::Unauthenticated as i32);
                }
                (30, Some(batch_reply::Outcome::Accepted(again))) => assert!(!again.created),
                (_, Some(batch_reply::Outcome::Accepted(accepted))) => assert!(accepted.created),
                other => panic!("unexpected answer {other:?}"),
            }
        }
        let last = finished(&mut client, &key, "urn:uuid:batch-39").await;
        assert_eq!(last.state, JobState::Succeeded as i32);
        // Jobs that end together share a signature (receipts are signed in batches): each
        // receipt still checks on its own, and the signer saw every one of the 38 jobs (17 was
        // refused, 30 is 3 again).
        let engine_pub = PublicKey::read_file(&data.join("engine.pub")).unwrap();
        for i in (0..40).filter(|&i| i != 17 && i != 30) {
            let job = finished(&mut client, &key, &format!("urn:uuid:batch-{i}")).await;
            assert_receipt(&job, &engine_pub);
        }
        let metrics = served.scrape_metrics();
        assert!(
            metrics.contains("chimera_receipt_batch_size_sum 38\n"),
            "{metrics}"
        );

        // The standard gRPC health check, as a container's health check asks it.
        let out = ok(chimera(&["health", "--server", &served.url]));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "SERVING\n");
    });
}

#[test]
fn a_result_outside_its_output_schema_or_a_gpu_job_without_a_gpu_fails_saying_why() {
    let dir = work_dir("engine-checks");
    let data = dir.join("data");
    let key = trusted_key(&data, &dir, "lab", "*");
    let served = Served::start(&data);
    let bell = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\nh q[0];\ncx q[0], q[1];";
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        let with_schema = |id: &str, schema: &str| {
            let text = document(id, "quantum_circuit", "", "shots: 10", &[("qasm", bell)]);
            signed(&format!("{text}\n## Output_Schema\n{schema}\n"), &key)
        };
        let fits = submit(
            &mut client,
            with_schema(
                "urn:uuid:schema-ok",
                r#"{"required": ["counts", "gate_passes"]}"#,
            ),
        )
        .await;
        let misfit = submit(
            &mut client,
            with_schema(
                "urn:uuid:schema-misfit",
                r#"{"required": ["energy"], "properties": {"shots": {"maximum": 5}}}"#,
            ),
        )
        .await;
        let fits = finished(&mut client, &key, &fits.id).await;
        assert!(result(&fits)["gate_passes"].as_u64().unwrap() >= 1);
        let misfit = finished(&mut client, &key, &misfit.id).await;
        assert_eq!(misfit.state, JobState::Failed as i32);
        assert!(
            misfit
                .error
                .contains("the result does not match the job's Output_Schema")
                && misfit.error.contains("\"energy\" is a required property")
                && misfit.error.contains("(at /shots)"),
            "{}",
            misfit.error
        );
        assert!(!misfit.result_json.contains("counts"));

        // MAML.md: `cuda` means a GPU or fail, never silently the CPU.
        let on_gpu = heads(&mut client)
            .await
            .iter()
            .any(|h| h.role == "quantum" && h.backend.starts_with("cuda"));
        let gpu_job = document(
            "urn:uuid:needs-cuda",
            "quantum_circuit",
            "requires:\n  resources: [cuda]\n",
            "shots: 10",
            &[("qasm", bell)],
        );
        let gpu_job = submit(&mut client, signed(&gpu_job, &key)).await;
        let gpu_job = finished(&mut client, &key, &gpu_job.id).await;
        if on_gpu {
            result(&gpu_job);
        } else {
            assert_eq!(gpu_job.state, JobState::Failed as i32);
            assert!(
                gpu_job.error.contains("requires `cuda`")
                    && gpu_job.error.contains("not run on the CPU"),
                "{}",
                gpu_job.error
            );
        }
    });
}
