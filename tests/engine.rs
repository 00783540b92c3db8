//! End-to-end tests of `chimera serve`: the real binary, its four head processes, and a gRPC
//! client talking to it as a gateway would.

mod common;
// Shared with the other tests, which use more of it.
#[allow(dead_code)]
#[path = "common/engine_client.rs"]
mod engine_client;
#[path = "common/http_client.rs"]
mod http_client;
#[path = "common/served.rs"]
mod served;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chimera_maml::{DEFAULT_MAX_BYTES, PublicKey, SecretKey};
use chimera_proto::v1::engine_client::EngineClient;
use chimera_proto::v1::{
    GetRequest, Head, HeadStatus, Job, JobState, SubmitRequest, WatchRequest, batch_reply,
    job_event,
};
use chimera_server::owners::JobCall;
use common::{chimera, failure, ok, repo, work_dir};
use engine_client::*;
use http_client::{exchange, http, http_door, json};
use served::{Served, signal};
use tonic::transport::Channel;

/// `text` with its `created_at` replaced.
fn created_at(text: &str, time: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.starts_with("created_at: "))
        .unwrap();
    text.replace(line, &format!("created_at: {time}"))
}

const BELL: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q -> c;";

/// The receipt is the engine's ML-DSA-65 signature over this job's result.
fn assert_receipt(job: &Job, engine_pub: &PublicKey) {
    let receipt = job.receipt.as_ref().expect("a finished job has a receipt");
    assert_eq!(receipt.engine_public_key, engine_pub.to_bytes());
    assert!(chimera_server::receipt::check(
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
    let job = document(id, "inference", "", "", &[("chimera-infer", spec)]);
    let id = submit(client, signed(&job, key)).await.id;
    result(&finished(client, key, &id).await)
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
        let spec = format!(
            "model: {model_id}\ninputs:\n  - [{}]",
            vec!["0.0"; 64].join(", ")
        );
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
    let total = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name) && l.contains("head=\"q"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    let passes = total("chimera_statevector_gate_passes_total{");
    assert!(passes >= 2.0, "{metrics}");
    let bytes = total("chimera_statevector_bytes_moved_total{");
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

/// The reason a refused submission carries.
async fn refusal(client: &mut EngineClient<Channel>, document: Vec<u8>) -> (tonic::Code, String) {
    let status = client
        .submit(SubmitRequest { document })
        .await
        .expect_err("the document is refused");
    let reason = chimera_server::refusal::reason_of(&status)
        .unwrap_or_else(|| panic!("no reason in {status:?}"));
    (status.code(), reason)
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
            chimera_server::refusal::reason_of(&missing).as_deref(),
            Some("NO_SUCH_JOB")
        );

        let fine = finished(&mut client, &key, "urn:uuid:once").await;
        assert_eq!(fine.state, JobState::Succeeded as i32);
        assert!(heads(&mut client).await.iter().all(|h| h.restarts == 0));
    });
}

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

/// Waits until the training job `id` has reported epoch `epoch`.
async fn trained_to(client: &mut EngineClient<Channel>, key: &SecretKey, id: &str, epoch: u64) {
    progress_until(client, key, id, &format!("epoch {epoch}"), |p| {
        p["epoch"].as_u64().is_some_and(|e| e >= epoch)
    })
    .await;
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

/// The value of the series of `name` whose labels include every one of `labels`.
fn series(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
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
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        let mut reference = None;
        for id in &acknowledged {
            let job = finished(&mut client, &key, id).await;
            let result = result(&job);
            if id == &training {
                // Its checkpoints are sealed under a key that lived only in the memory of the
                // heads that died with the engine (DESIGN.md, "Keys, shares and sealing"): it
                // trains again from the start, and still finishes once.
                assert_eq!(result["resumed_from_checkpoint"], false, "{result}");
                assert!(result["val_accuracy"].as_f64().unwrap() > 0.9, "{result}");
                assert!(job.attempts >= 2);
            } else {
                let counts = result["counts"].clone();
                assert_eq!(reference.get_or_insert(counts.clone()), &counts, "{id}");
            }
        }
    });
    drop(served);
    // Every head exited with the engine: none is left holding the data directory.
    let leftover = heads_of(&data);
    assert!(leftover.is_empty(), "heads left running: {leftover:?}");
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
        chimera_server::refusal::reason_of(&ended).as_deref(),
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
            chimera_server::refusal::reason_of(&refused).as_deref(),
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
            chimera_server::refusal::reason_of(&early).as_deref(),
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

#[test]
fn limits_refuse_a_large_request_a_fast_or_busy_client_and_too_many_streams() {
    let dir = work_dir("engine-limits");
    let data = dir.join("data");
    let busy = trusted_key(&data, &dir, "busy", "*");
    let other = trusted_key(&data, &dir, "other", "*");
    let flags = [
        "--client-rate",
        "2",
        "--client-burst",
        "3",
        "--max-jobs-per-client",
        "4",
        "--max-streams",
        "2",
        "--max-streams-per-source",
        "1",
        "--max-connections-per-source",
        "3",
        "--http-listen",
        "127.0.0.1:0",
        "--refusals-per-source",
        "1",
        "--request-memory",
        "0.5",
    ];
    let served = Served::start_with(&data, &flags);
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        let job = |i: usize| training_job(&format!("urn:uuid:limits-{i}"), 300);

        let (code, message) = match client
            .submit(SubmitRequest {
                document: vec![b'#'; 2 << 20],
            })
            .await
        {
            Err(status) => (status.code(), status.message().to_owned()),
            Ok(reply) => panic!("a 2 MiB request was taken: {reply:?}"),
        };
        assert_eq!(code, tonic::Code::OutOfRange, "{message}");
        assert!(message.contains("too large"), "{message}");
        // Within the size limit, but more than the half MiB that messages still arriving may
        // hold in this engine.
        let (code, reason) = refusal(&mut client, vec![b'#'; 600 << 10]).await;
        assert_eq!(
            (code, reason.as_str()),
            (tonic::Code::ResourceExhausted, "ENGINE_BUSY")
        );
        let door = http_door(&served, "http");
        let (code, body) = http(&door, "POST", "/execute", &vec![b'#'; 600 << 10]);
        assert_eq!(
            (code, &json(&body)["reason"]),
            (429, &"ENGINE_BUSY".into()),
            "{body}"
        );

        // A burst of three, then the bucket is empty (signed beforehand: a token comes every
        // half second).
        let documents: Vec<Vec<u8>> = (0..5).map(|i| signed(&job(i), &busy)).collect();
        let mut ids = Vec::new();
        for document in &documents[..3] {
            ids.push(submit(&mut client, document.clone()).await.id);
        }
        let (code, reason) = refusal(&mut client, documents[3].clone()).await;
        assert_eq!(
            (code, reason.as_str()),
            (tonic::Code::ResourceExhausted, "RATE_LIMITED")
        );
        // Another client has its own.
        let theirs = submit(&mut client, signed(&job(100), &other)).await;

        // Half a second later, one more token: a fourth unfinished job, the most.
        tokio::time::sleep(Duration::from_millis(600)).await;
        ids.push(submit(&mut client, documents[3].clone()).await.id);
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (code, reason) = refusal(&mut client, documents[4].clone()).await;
        assert_eq!(
            (code, reason.as_str()),
            (tonic::Code::ResourceExhausted, "TOO_MANY_JOBS")
        );
        // One ends: its place is free.
        cancel(&mut client, &busy, &ids[0]).await.unwrap();
        finished(&mut client, &busy, &ids[0]).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        submit(&mut client, documents[4].clone()).await;

        // One stream open from a source, its most; two in all, the most; a third is refused until
        // one closes.
        let watch = |id: &str| {
            proved(
                WatchRequest { job_id: id.into() },
                &busy,
                JobCall::Watch,
                id,
            )
        };
        let url = served.url.clone();
        let from = |last: u8| {
            let url = url.clone();
            async move {
                let endpoint = tonic::transport::Endpoint::from_shared(url).unwrap();
                let local = std::net::IpAddr::from([127, 0, 0, last]);
                let channel = endpoint.local_address(Some(local)).connect().await.unwrap();
                EngineClient::new(channel)
            }
        };
        let too_many = |refused: tonic::Status, says: &str| {
            assert_eq!(
                chimera_server::refusal::reason_of(&refused).as_deref(),
                Some("TOO_MANY_STREAMS"),
                "{refused:?}"
            );
            assert!(refused.message().contains(says), "{refused:?}");
        };
        let first = client.watch(watch(&ids[1])).await.unwrap().into_inner();
        too_many(
            client.watch(watch(&ids[2])).await.unwrap_err(),
            "127.0.0.1 has 1",
        );
        let (mut second, mut third) = (from(2).await, from(3).await);
        let _second = second.watch(watch(&ids[2])).await.unwrap().into_inner();
        too_many(
            third.watch(watch(&ids[3])).await.unwrap_err(),
            "the engine has 2",
        );
        drop(first);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let watch_theirs = WatchRequest {
                job_id: theirs.id.clone(),
            };
            match client
                .watch(proved(watch_theirs, &other, JobCall::Watch, &theirs.id))
                .await
            {
                Ok(_) => break,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(status) => panic!("the closed stream's place was not freed: {status:?}"),
            }
        }
    });

    // One source holds at most three connections at each door; its further ones are closed at
    // once (long before the 15 s a silent client is given), and another source is served.
    let grpc = served.url.trim_start_matches("http://").to_owned();
    for door in [grpc.as_str(), &http_door(&served, "http")] {
        let mut held = Vec::new();
        let refused = loop {
            let mut stream = std::net::TcpStream::connect(door).unwrap();
            if closed_by_server(&mut stream, Duration::from_secs(1)) {
                break held.len();
            }
            held.push(stream);
            assert!(
                held.len() <= 3,
                "{door} took a fourth connection from one source"
            );
        };
        // The engine may still hold the gRPC client's connection, closed above.
        assert!((2..=3).contains(&refused), "{door}: closed after {refused}");
        let mut other = connect_from([127, 0, 0, 2], door);
        assert!(
            !closed_by_server(&mut other, Duration::from_secs(1)),
            "{door}"
        );
    }
    let (code, _) = exchange(
        &mut connect_from([127, 0, 0, 3], &http_door(&served, "http")),
        "x",
        "GET",
        "/health",
        b"",
    )
    .unwrap();
    assert_eq!(code, 200);
    let metrics = served.scrape_metrics();
    for door in ["door=\"grpc\"", "door=\"http\""] {
        let closed = series(
            &metrics,
            "chimera_connections_over_source_limit_total",
            &[door],
        );
        assert!(closed.is_some_and(|n| n >= 1.0), "{door}: {closed:?}");
        let most = series(&metrics, "chimera_connections_max_per_source", &[door]);
        assert_eq!(most, Some(3.0), "{door}");
    }

    // Documents refused at admission: five seconds' worth from one source (at one a second), then
    // its submissions are refused unread, even a good one; another source is not held up.
    let good = |i: usize| signed(&training_job(&format!("urn:uuid:limits-{i}"), 300), &other);
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        for _ in 0..5 {
            let (_, reason) = refusal(&mut client, b"not a MAML document".to_vec()).await;
            assert_eq!(reason, "MALFORMED");
        }
        for document in [b"not a MAML document".to_vec(), good(200)] {
            let (code, reason) = refusal(&mut client, document).await;
            assert_eq!(
                (code, reason.as_str()),
                (tonic::Code::ResourceExhausted, "TOO_MANY_REFUSED")
            );
        }
    });
    let door = http_door(&served, "http");
    let mut elsewhere = connect_from([127, 0, 0, 3], &door);
    let (code, body) =
        exchange(&mut elsewhere, "x", "POST", "/execute?wait=0", &good(201)).unwrap();
    assert!([200, 202].contains(&code), "{code}: {body}");
}

/// A connection to `addr` from `from`, a loopback address other than the tests' 127.0.0.1.
fn connect_from(from: [u8; 4], addr: &str) -> std::net::TcpStream {
    runtime().block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind((std::net::IpAddr::from(from), 0).into())
            .unwrap();
        let stream = socket.connect(addr.parse().unwrap()).await.unwrap();
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
    })
}

/// A test CA and the PEM files it signs: `NAME.pem` and `NAME.key` in `dir`.
struct TestCa(rcgen::CertifiedIssuer<'static, rcgen::KeyPair>);

impl TestCa {
    fn new(dir: &Path) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "chimera test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Self(ca)
    }

    /// A certificate for `names` (its subject alternative names), for a server or a client.
    fn issue(&self, dir: &Path, file: &str, names: &[&str], client: bool) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![match client {
            true => rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            false => rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    }
}

async fn tls_client(
    url: &str,
    dir: &Path,
    client_cert: Option<&str>,
) -> Result<EngineClient<Channel>, tonic::transport::Error> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("ca.pem")));
    if let Some(name) = client_cert {
        tls = tls.identity(Identity::from_pem(
            read(&format!("{name}.pem")),
            read(&format!("{name}.key")),
        ));
    }
    let channel = Channel::from_shared(url.to_owned())
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(EngineClient::new(channel))
}

/// One HTTP/1.1 request over TLS to `addr`, trusting `dir`'s test CA, with the client
/// certificate `NAME.pem` if given: the status code and the body, or what failed.
fn https(
    addr: &str,
    dir: &Path,
    client_cert: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client_cert {
        None => builder.with_no_client_auth(),
        Some(name) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(dir.join(format!("{name}.pem"))).unwrap()],
                PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).unwrap(),
            )
            .unwrap(),
    };
    let connection = rustls::ClientConnection::new(
        std::sync::Arc::new(config),
        ServerName::try_from("localhost").unwrap(),
    )
    .map_err(std::io::Error::other)?;
    let mut stream =
        rustls::StreamOwned::new(connection, std::net::TcpStream::connect(addr).unwrap());
    exchange(&mut stream, "localhost", method, path, body)
}

/// What a server that requires a client certificate says to a TLS client that has none: the
/// handshake is read to its end and nothing is written, so the server's alert is read rather than
/// lost to a write into the connection it has closed.
fn alert_without_a_certificate(addr: &str, dir: &Path) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let mut connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    loop {
        match connection.complete_io(&mut tcp) {
            Err(error) => return error.to_string(),
            Ok((0, 0)) => return "the connection ended with no alert".into(),
            Ok(_) => {}
        }
    }
}

#[test]
fn mutual_tls_admits_only_clients_whose_certificate_names_a_trusted_key() {
    let dir = work_dir("engine-tls");
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    let lab = trusted_key(&data, &dir, "lab", "*");
    trusted_key(&data, &dir, "carol", "*");
    let ca = TestCa::new(&dir);
    ca.issue(&dir, "server", &["localhost", "127.0.0.1"], false);
    ca.issue(&dir, "lab", &["lab"], true);
    ca.issue(&dir, "carol", &["carol"], true);
    ca.issue(&dir, "stranger", &["stranger"], true);
    let file = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let (cert, key, client_ca) = (file("server.pem"), file("server.key"), file("ca.pem"));
    let served = Served::start_with(
        &data,
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &client_ca,
            "--http-listen",
            "127.0.0.1:0",
            "--refusals-per-source",
            "1",
        ],
    );
    let url = served.url.replace("http://", "https://");
    let door = http_door(&served, "https");
    runtime().block_on(async {
        let mut client = tls_client(&url, &dir, Some("lab")).await.unwrap();
        let bell = document(
            "urn:uuid:over-tls",
            "quantum_circuit",
            "",
            "shots: 10",
            &[("qasm", BELL)],
        );
        // A client known by its certificate is not held back by its address's refusals (a
        // gateway relays many users' documents): more than five seconds' worth at one a second.
        for _ in 0..8 {
            let (_, reason) = refusal(&mut client, b"not a MAML document".to_vec()).await;
            assert_eq!(reason, "MALFORMED");
        }
        let job = submit(&mut client, signed(&bell, &lab)).await;
        let job = finished(&mut client, &lab, &job.id).await;
        assert_eq!(job.state, JobState::Succeeded as i32, "{job:?}");
        // Its certificate proves who asks about its jobs; another trusted client's certificate
        // sees nothing of them (issue 34: carol's Get returned alice's result under mutual TLS).
        let get = GetRequest {
            job_id: job.id.clone(),
        };
        let watch = WatchRequest {
            job_id: job.id.clone(),
        };
        client.get(get.clone()).await.unwrap();
        client.watch(watch.clone()).await.unwrap();
        client.get_receipt_document(get.clone()).await.unwrap();
        let mut carol = tls_client(&url, &dir, Some("carol")).await.unwrap();
        let no_such_job = |refused: tonic::Status| {
            assert_eq!(
                chimera_server::refusal::reason_of(&refused).as_deref(),
                Some("NO_SUCH_JOB"),
                "{refused:?}"
            );
        };
        no_such_job(carol.get(get.clone()).await.unwrap_err());
        no_such_job(carol.watch(watch).await.unwrap_err());
        no_such_job(carol.get_receipt_document(get).await.unwrap_err());
        let cancel = chimera_proto::v1::CancelRequest { job_id: job.id };
        no_such_job(carol.cancel(cancel).await.unwrap_err());

        let call = |mut client: EngineClient<Channel>| async move {
            client
                .list_heads(chimera_proto::v1::ListHeadsRequest {})
                .await
                .map(|_| ())
        };
        // A certificate from the CA, but for no trusted key.
        let stranger = tls_client(&url, &dir, Some("stranger")).await.unwrap();
        let refused = call(stranger).await.unwrap_err();
        assert_eq!(
            chimera_server::refusal::reason_of(&refused).as_deref(),
            Some("UNKNOWN_CLIENT"),
            "{refused:?}"
        );
        // No certificate: no call gets through, and why is the TLS alert the port sends, which
        // tonic's client does not pass on (a plain TLS client reads it). No TLS: no answer.
        if let Ok(anonymous) = tls_client(&url, &dir, None).await {
            call(anonymous).await.unwrap_err();
        }
        let grpc_port = served.url.trim_start_matches("http://");
        let alert = alert_without_a_certificate(grpc_port, &dir);
        assert!(alert.contains("CertificateRequired"), "{alert}");
        let plain = Channel::from_shared(served.url.clone())
            .unwrap()
            .connect()
            .await;
        let plain = match plain {
            Ok(channel) => call(EngineClient::new(channel)).await.unwrap_err(),
            Err(e) => tonic::Status::from_error(Box::new(e)),
        };
        // The connection fails under the call: the TLS alert read as HTTP/2, or the port closing
        // it first. No answer of the engine's.
        let failed = ["h2 protocol error", "transport error"];
        assert!(
            chimera_server::refusal::reason_of(&plain).is_none()
                && failed.iter().any(|f| plain.message().contains(f)),
            "a plaintext call was answered: {plain:?}"
        );
        // The CLI, with the client's certificate.
        let out = ok(chimera(&[
            "heads",
            "--server",
            &url,
            "--tls-ca",
            &client_ca,
            "--tls-cert",
            &file("lab.pem"),
            "--tls-key",
            &file("lab.key"),
        ]));
        assert!(String::from_utf8_lossy(&out.stdout).contains("q0"));

        // The HTTP door: the same certificate, and the same client certificate check.
        let bell_http = document(
            "urn:uuid:over-https",
            "quantum_circuit",
            "",
            "shots: 10",
            &[("qasm", BELL)],
        );
        let signed_http = signed(&bell_http, &lab);
        let door_call = |cert, method, path, body| https(&door, &dir, cert, method, path, body);
        let (code, body) = door_call(Some("lab"), "POST", "/execute", &signed_http).unwrap();
        assert_eq!(
            (code, &json(&body)["status"]),
            (200, &"succeeded".into()),
            "{body}"
        );
        let (code, body) = door_call(Some("stranger"), "POST", "/execute", &signed_http).unwrap();
        assert_eq!(
            (code, &json(&body)["reason"]),
            (403, &"UNKNOWN_CLIENT".into()),
            "{body}"
        );
        let (code, body) = door_call(Some("stranger"), "GET", "/", b"").unwrap();
        assert_eq!(
            (code, &json(&body)["reason"]),
            (403, &"UNKNOWN_CLIENT".into()),
            "{body}"
        );
        let (code, _) = door_call(Some("stranger"), "GET", "/health", b"").unwrap();
        assert_eq!(code, 200);
        // No certificate: the handshake fails, so no request is read. Plaintext: no HTTP answer.
        door_call(None, "GET", "/health", b"").unwrap_err();
        let alert = alert_without_a_certificate(&door, &dir);
        assert!(alert.contains("CertificateRequired"), "{alert}");
        let mut plain = std::net::TcpStream::connect(&door).unwrap();
        std::io::Write::write_all(&mut plain, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        let _ = std::io::Read::read_to_end(&mut plain, &mut answer);
        assert!(!answer.starts_with(b"HTTP/"), "the door answered plaintext");

        // Revoked: its certificate no longer opens the door.
        ok(chimera(&["trust", "revoke", "lab", "--data-dir", data_arg]));
        let (code, body) = door_call(Some("lab"), "GET", "/", b"").unwrap();
        assert_eq!(
            (code, &json(&body)["reason"]),
            (403, &"REVOKED_CLIENT".into()),
            "{body}"
        );
        let refused = call(client).await.unwrap_err();
        assert_eq!(
            chimera_server::refusal::reason_of(&refused).as_deref(),
            Some("REVOKED_CLIENT"),
            "{refused:?}"
        );
    });
}

#[test]
fn plaintext_is_served_on_loopback_only_unless_allowed() {
    let dir = work_dir("engine-plaintext");
    let out = chimera(&[
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--metrics-addr",
        "off",
        "--data-dir",
        dir.join("data").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let said = failure(&out);
    assert!(
        said.contains("not a loopback address") && said.contains("--tls-cert"),
        "{said}"
    );
}

/// The JSON array of a Dockerfile instruction (`CMD [...]`, `HEALTHCHECK ... CMD [...]`), its
/// continuation lines joined.
fn dockerfile_array(dockerfile: &str, instruction: &str) -> Vec<String> {
    let joined = dockerfile.replace("\\\n", " ");
    let line = joined
        .lines()
        .find(|l| l.starts_with(instruction))
        .unwrap_or_else(|| panic!("no {instruction} in Dockerfile.cuda"));
    let array = &line[line.find('[').unwrap()..];
    serde_json::from_str(array).unwrap()
}

/// The image's command and health check are this binary's: the engine they start answers the
/// health check (the image itself is built and run by tests/docker/check-dockerfile-cuda.sh,
/// which needs a Docker daemon).
#[test]
fn the_cuda_images_command_and_health_check_work_with_this_binary() {
    let dir = work_dir("engine-docker-cmd");
    let dockerfile = std::fs::read_to_string(repo("Dockerfile.cuda")).unwrap();
    let data = dir.join("data");
    let command: Vec<String> = dockerfile_array(&dockerfile, "CMD")
        .into_iter()
        .map(|arg| match arg.as_str() {
            "0.0.0.0:50051" => "0.0.0.0:0".into(),
            "0.0.0.0:9090" => "127.0.0.1:0".into(),
            "/var/lib/chimera" => data.to_str().unwrap().into(),
            _ => arg,
        })
        .collect();
    let served = Served::run(&command, "127.0.0.1:0".into());
    let port = served.url.rsplit(':').next().unwrap().to_owned();
    let health = dockerfile_array(&dockerfile, "HEALTHCHECK");
    assert_eq!(health[0], "chimera");
    let args: Vec<String> = health[1..]
        .iter()
        .map(|a| a.replace(":50051", &format!(":{port}")))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = chimera(&args);
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(served);
    ok(out);
}

#[test]
fn the_http_door_executes_signed_jobs_through_the_same_checks_and_journal() {
    let dir = work_dir("engine-http");
    let data = dir.join("data");
    let lab = trusted_key(&data, &dir, "lab", "*");
    let served = Served::start_with(&data, &["--http-listen", "127.0.0.1:0"]);
    let door = http_door(&served, "http");

    let bell = document(
        "urn:uuid:over-http",
        "quantum_circuit",
        "",
        "shots: 64\nseed: 3\nobservables: [\"Z0 Z1\"]",
        &[("qasm", BELL)],
    );
    let (code, body) = http(&door, "POST", "/execute", &signed(&bell, &lab));
    let answer = json(&body);
    assert_eq!(
        (code, &answer["status"]),
        (200, &"succeeded".into()),
        "{body}"
    );
    let counts = answer["result"]["counts"].as_object().expect("counts");
    assert_eq!(
        counts.values().map(|c| c.as_u64().unwrap()).sum::<u64>(),
        64
    );
    assert!(counts.keys().all(|k| k == "00" || k == "11"), "{body}");
    // Each observable the Context names, by its text, with its value in the state.
    let expectation = &answer["result"]["expectation_values"][0];
    assert_eq!(expectation["observable"], "Z0 Z1", "{body}");
    assert!(
        (expectation["value"].as_f64().unwrap() - 1.0).abs() < 1e-6,
        "{body}"
    );
    assert!(
        answer["receipt"]["statement"]
            .as_str()
            .unwrap()
            .contains("urn:uuid:over-http")
    );

    // The same journal as gRPC: the job is there, and the same document again is that job.
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        let job = finished(&mut client, &lab, "urn:uuid:over-http").await;
        assert_eq!(job.state, JobState::Succeeded as i32);
    });
    let (code, body) = http(&door, "POST", "/maml/execute", &signed(&bell, &lab));
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["job_id"], "urn:uuid:over-http");

    // Refusals: the same reasons as gRPC's, with the nearest HTTP status.
    let (code, body) = http(&door, "POST", "/execute", b"hello");
    assert_eq!(
        (code, &json(&body)["reason"]),
        (400, &"MALFORMED".into()),
        "{body}"
    );
    let unsigned = document("urn:uuid:h2", "quantum_circuit", "", "", &[("qasm", BELL)]);
    let (code, body) = http(&door, "POST", "/execute", unsigned.as_bytes());
    assert_eq!(
        (code, &json(&body)["reason"]),
        (401, &"UNSIGNED".into()),
        "{body}"
    );

    // What the door does not take is answered in the same JSON, saying what it does take.
    for (method, path, code, reason, says) in [
        (
            "POST",
            "/execute?wait=soon",
            400,
            "BAD_WAIT",
            "?wait=soon: give seconds from 0 to 600",
        ),
        (
            "POST",
            "/execute?wait=-1",
            400,
            "BAD_WAIT",
            "?wait=-1: give seconds",
        ),
        (
            "POST",
            "/execute?wait=1&wait=2",
            400,
            "BAD_QUERY",
            "takes ?wait=SECONDS",
        ),
        (
            "GET",
            "/jobs",
            404,
            "NOT_FOUND",
            "no GET /jobs: this door serves POST /execute",
        ),
        (
            "DELETE",
            "/execute",
            405,
            "METHOD_NOT_ALLOWED",
            "no DELETE /execute",
        ),
    ] {
        let (got, body) = http(&door, method, path, &signed(&bell, &lab));
        let answer = json(&body);
        assert_eq!((got, &answer["reason"]), (code, &reason.into()), "{body}");
        assert_eq!(answer["status"], "refused", "{body}");
        assert!(answer["message"].as_str().unwrap().contains(says), "{body}");
    }

    // Not waiting: accepted, not yet ended.
    let training = training_job("urn:uuid:http-training", 300);
    let (code, body) = http(&door, "POST", "/execute?wait=0", &signed(&training, &lab));
    let answer = json(&body);
    assert_eq!(code, 202, "{body}");
    assert!(
        ["queued", "running"].contains(&answer["status"].as_str().unwrap()),
        "{body}"
    );

    let (code, body) = http(&door, "GET", "/health", b"");
    assert_eq!(
        (code, json(&body)["status"].as_str()),
        (200, Some("serving"))
    );
    let (code, body) = http(&door, "GET", "/", b"");
    let status = json(&body);
    assert_eq!(code, 200);
    assert_eq!(status["heads"].as_array().unwrap().len(), 4, "{body}");
}

/// Whether the server closed `stream` within `within`: what it sends before is read and let go.
fn closed_by_server(stream: &mut std::net::TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 1024];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
    false
}

#[test]
fn the_doors_bound_their_connections_and_drop_clients_who_say_nothing() {
    let dir = work_dir("engine-connections");
    let data = dir.join("data");
    let lab = trusted_key(&data, &dir, "lab", "*");
    let served = Served::start_with(
        &data,
        &[
            "--http-listen",
            "127.0.0.1:0",
            "--max-connections",
            "2",
            "--read-timeout",
            "1",
        ],
    );
    let door = http_door(&served, "http");
    let connect = || std::net::TcpStream::connect(&door).unwrap();

    // Two clients take both places at the door and say nothing; a third waits in the listen
    // queue, and is answered once the door has closed the two silent ones.
    let mut silent = [connect(), connect()];
    let started = Instant::now();
    let (code, _) = http(&door, "GET", "/health", b"");
    assert_eq!(code, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "answered after {:?}, while both places were held",
        started.elapsed()
    );
    for stream in &mut silent {
        assert!(closed_by_server(stream, Duration::from_secs(5)));
    }

    // Headers sent a byte at a time never finish in time: the connection is closed.
    let mut slow = connect();
    let trickle_until = Instant::now() + Duration::from_secs(3);
    let mut closed = false;
    for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: "
        .iter()
        .cycle()
    {
        if Instant::now() > trickle_until || slow.write_all(&[*byte]).is_err() {
            closed = closed_by_server(&mut slow, Duration::from_secs(2));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(closed, "a client trickling its headers kept its connection");

    // A body that does not arrive in time is refused, saying so.
    let mut stalled = connect();
    write!(
        stalled,
        "POST /execute HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part"
    )
    .unwrap();
    let mut answer = String::new();
    stalled.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("BODY_TIMEOUT"), "{answer}");

    // Too large a request is refused in the door's JSON, with the same reason as gRPC's.
    let (code, body) = http(
        &door,
        "POST",
        "/execute",
        &vec![b'x'; DEFAULT_MAX_BYTES + 4096],
    );
    assert_eq!(
        (code, &json(&body)["reason"]),
        (413, &"TOO_LARGE".into()),
        "{body}"
    );
    let bell = document("urn:uuid:c1", "quantum_circuit", "", "", &[("qasm", BELL)]);
    let (code, body) = http(&door, "POST", "/execute", &signed(&bell, &lab));
    assert_eq!(code, 200, "{body}");

    // The gRPC port is bounded too. A client that says nothing is dropped; with both places held
    // by clients that began HTTP/2 and went quiet, a call waits until they are free.
    let grpc = served.url.trim_start_matches("http://").to_owned();
    let mut silent = std::net::TcpStream::connect(&grpc).unwrap();
    assert!(closed_by_server(&mut silent, Duration::from_secs(5)));
    let quiet = || {
        let mut stream = std::net::TcpStream::connect(&grpc).unwrap();
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .unwrap();
        stream
    };
    let held = [quiet(), quiet()];
    runtime().block_on(async {
        let call = async { heads(&mut client(&served.url).await).await.len() };
        assert!(
            tokio::time::timeout(Duration::from_secs(2), call)
                .await
                .is_err(),
            "a gRPC call was served while both places were held"
        );
        drop(held);
        let call = async { heads(&mut client(&served.url).await).await.len() };
        let heads = tokio::time::timeout(Duration::from_secs(10), call).await;
        assert_eq!(heads.expect("served once the places were free"), 4);
    });

    // What the doors hold, and whom they dropped for silence, is on the metrics page.
    let metrics = served.scrape_metrics();
    for door in ["door=\"grpc\"", "door=\"http\""] {
        let at_most = series(&metrics, "chimera_connections_max", &[door]);
        assert_eq!(at_most, Some(2.0), "{door}");
        let open = series(&metrics, "chimera_connections_open", &[door]);
        assert!(
            open.is_some_and(|n| (0.0..=2.0).contains(&n)),
            "{door}: {open:?}"
        );
    }
    let silent = series(
        &metrics,
        "chimera_connections_silent_total",
        &["door=\"grpc\""],
    );
    assert!(silent.is_some_and(|n| n >= 1.0), "{silent:?}");
}
