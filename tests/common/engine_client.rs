//! What the engine's tests and benches do as a client: keys, documents, submissions, following
//! jobs and heads.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chimera_client::{JobCall, prove};
use chimera_maml::{DEFAULT_MAX_BYTES, SecretKey, sign_document, write_key_pair};
use chimera_proto::v1::engine_client::EngineClient;
use chimera_proto::v1::{
    CancelRequest, Head, Job, JobState, ListHeadsRequest, SubmitRequest, WatchRequest, job_event,
};
use tonic::transport::Channel;

use crate::served::signal;

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub async fn client(url: &str) -> EngineClient<Channel> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match EngineClient::connect(url.to_owned()).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("cannot reach {url}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A client key, written as `dir/NAME.key` and `.pub`, trusted through the CLI.
pub fn trusted_key(data_dir: &Path, dir: &Path, name: &str, allow: &str) -> SecretKey {
    let key = SecretKey::generate().unwrap();
    let prefix = dir.join(name);
    write_key_pair(&key, &prefix, false).unwrap();
    let public = prefix.with_extension("pub");
    let out = Command::new(crate::common::exe())
        .args(["trust", "add"])
        .arg(&public)
        .args(["--name", name, "--allow", allow, "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run chimera trust add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    key
}

pub fn signed(text: &str, key: &SecretKey) -> Vec<u8> {
    sign_document(text.as_bytes(), key, DEFAULT_MAX_BYTES)
        .unwrap()
        .text
        .into_bytes()
}

/// `text` signed as a client that checks nothing it signs would sign it (`signed` parses first).
pub fn signed_as_is(text: &str, key: &SecretKey) -> Vec<u8> {
    let digest = chimera_maml::digest(text.as_bytes());
    let block = chimera_maml::SignatureBlock {
        key_id: key.public_key().id(),
        sha3_512: digest,
        signature: key.sign(&digest),
        line: 0,
    };
    (text.to_owned() + &block.render()).into_bytes()
}

/// A MAML document with the given front matter additions, Context and code blocks.
pub fn document(
    id: &str,
    job_type: &str,
    extra: &str,
    context: &str,
    blocks: &[(&str, &str)],
) -> String {
    let created = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(1);
    let mut text = format!(
        "---\nmaml_version: \"2.0.0\"\nid: \"{id}\"\ntype: \"{job_type}\"\norigin: \"agent://tests\"\ncreated_at: {created}\n{extra}---\n## Intent\nA test.\n\n## Context\n{context}\n\n## Code_Blocks\n"
    );
    for (language, code) in blocks {
        text += &format!("```{language}\n{code}\n```\n");
    }
    text
}

/// A 20-qubit circuit that takes a noticeable fraction of a second on two cores.
pub fn slow_circuit() -> String {
    let n = 20;
    let mut lines = vec![
        "OPENQASM 2.0;".to_owned(),
        "include \"qelib1.inc\";".to_owned(),
        format!("qreg q[{n}];"),
        format!("creg c[{n}];"),
    ];
    for round in 0..12 {
        for i in 0..n {
            lines.push(format!(
                "rx({}) q[{i}];",
                0.1 * (round + 1) as f64 + 0.01 * i as f64
            ));
        }
        for i in 0..n - 1 {
            lines.push(format!("cx q[{i}],q[{}];", i + 1));
        }
    }
    lines.push("measure q -> c;".into());
    lines.join("\n")
}

/// A digits training spec that runs for some seconds, with a checkpoint every epoch.
pub fn long_training(epochs: usize) -> String {
    format!(
        "dataset: digits\nmodel:\n  kind: mlp\n  hidden: [64]\n  activation: relu\noptimizer:\n  name: adamw\n  learning_rate: 0.003\nepochs: {epochs}\nbatch_size: 64\nvalidation_split: 0.2\nseed: 3\ncheckpoint_every: 23"
    )
}

/// A training job of the digits MLP for `epochs` epochs.
pub fn training_job(id: &str, epochs: usize) -> String {
    document(
        id,
        "training",
        "",
        "",
        &[("chimera-train", &long_training(epochs))],
    )
}

pub async fn submit(client: &mut EngineClient<Channel>, document: Vec<u8>) -> Job {
    client
        .submit(SubmitRequest { document })
        .await
        .unwrap_or_else(|s| panic!("refused: {s:?}"))
        .into_inner()
        .job
        .unwrap()
}

/// `message` as a call about job `id`, with `key`'s proof that it asks: a job answers only its
/// owner (or an admin key).
pub fn proved<T>(message: T, key: &SecretKey, call: JobCall, id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    prove(&mut request, key, call, id);
    request
}

/// Asks the engine, as `key`, to cancel job `id`.
pub async fn cancel(
    client: &mut EngineClient<Channel>,
    key: &SecretKey,
    id: &str,
) -> Result<Job, tonic::Status> {
    let request = CancelRequest { job_id: id.into() };
    let reply = client
        .cancel(proved(request, key, JobCall::Cancel, id))
        .await;
    reply.map(tonic::Response::into_inner)
}

pub async fn finished(client: &mut EngineClient<Channel>, key: &SecretKey, id: &str) -> Job {
    let watch = proved(WatchRequest { job_id: id.into() }, key, JobCall::Watch, id);
    let mut events = client.watch(watch).await.unwrap().into_inner();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(120), events.message())
        .await
        .expect("a job finishes within two minutes")
        .unwrap()
    {
        if let Some(job_event::Detail::Finished(job)) = event.detail {
            return job;
        }
    }
    panic!("the watch of {id} ended before the job finished");
}

pub async fn heads(client: &mut EngineClient<Channel>) -> Vec<Head> {
    client
        .list_heads(ListHeadsRequest {})
        .await
        .unwrap()
        .into_inner()
        .heads
}

pub fn result(job: &Job) -> serde_json::Value {
    assert_eq!(
        job.state,
        JobState::Succeeded as i32,
        "job {} did not succeed: {}",
        job.id,
        job.error
    );
    serde_json::from_str(&job.result_json).unwrap()
}

/// Polls the heads until `done` holds of them.
pub async fn heads_until(
    client: &mut EngineClient<Channel>,
    what: &str,
    done: impl Fn(&HashMap<String, Head>) -> bool,
) -> HashMap<String, Head> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let by_id: HashMap<String, Head> = heads(client)
            .await
            .into_iter()
            .map(|h| (h.id.clone(), h))
            .collect();
        if done(&by_id) {
            return by_id;
        }
        assert!(Instant::now() < deadline, "{what}: {by_id:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGKILLs `victims` at once, once every head's key is shared with its three peers, and waits
/// until each has a new life sealing with a key newer than its last; returns how long that took.
/// (A head says it has a key before its shares reach the peers that came up after it: killed at
/// once, it could not be rebuilt with its key.)
pub async fn kill_and_rebuild(client: &mut EngineClient<Channel>, victims: &[&str]) -> Duration {
    killed_and_rebuilt(client, victims).await.0
}

/// [`kill_and_rebuild`], and when the SIGKILLs had been sent, by the clock jobs' times use.
async fn killed_and_rebuilt(
    client: &mut EngineClient<Channel>,
    victims: &[&str],
) -> (Duration, jiff::Timestamp) {
    let before = heads_until(
        client,
        "every head's key shared with its three peers",
        |h| h.values().all(|h| h.key_shares == 3),
    )
    .await;
    let killed = Instant::now();
    for id in victims {
        signal(before[*id].pid as i32, libc::SIGKILL);
    }
    let sent = jiff::Timestamp::now();
    heads_until(client, "killed heads keyed again", |now| {
        victims
            .iter()
            .all(|id| now[*id].pid != before[*id].pid && now[*id].key_epoch > before[*id].key_epoch)
    })
    .await;
    (killed.elapsed(), sent)
}

/// What [`kill_heads_in_turn`] saw.
pub struct FaultRun {
    /// Per kill: the head, and the time from its SIGKILL to its rebuild serving with its key.
    pub rebuilds: Vec<(String, Duration)>,
    /// Each training job's result, and how many times it was started.
    pub trainings: Vec<(serde_json::Value, u32)>,
    /// Circuits run, and how many of them ran more than once.
    pub circuits: usize,
    pub circuits_run_again: usize,
    /// Per kill of a quantum head: the circuit it was running when it was last seen, and whether
    /// that circuit ran again (else it had finished before the SIGKILL).
    pub circuits_killed: Vec<(String, bool)>,
}

/// The order in which heads are killed: a quantum head, then an AI head, and so on.
const KILL_ORDER: [&str; 4] = ["q0", "a0", "q1", "a1"];

/// Follows job `id` until it reports a progress that is `reached` (`what`, for the message if
/// the job ends first or reports nothing for 30 s).
pub async fn progress_until(
    client: &mut EngineClient<Channel>,
    key: &SecretKey,
    id: &str,
    what: &str,
    reached: impl Fn(&serde_json::Value) -> bool,
) {
    let watch = proved(WatchRequest { job_id: id.into() }, key, JobCall::Watch, id);
    let mut events = client.watch(watch).await.unwrap().into_inner();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), events.message())
            .await
            .unwrap_or_else(|_| panic!("{id}: no progress for 30 s before {what}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the watch of {id} ended before {what}"));
        match &event.detail {
            Some(job_event::Detail::ProgressJson(progress))
                if reached(&serde_json::from_str(progress).unwrap()) =>
            {
                return;
            }
            Some(job_event::Detail::Finished(_)) => panic!("{id} finished before {what}"),
            _ => {}
        }
    }
}

/// The fault-injection run of issue 7: SIGKILLs each head in turn `rounds` times, `pause` apart,
/// each with work in flight: three circuits are submitted each round, and in an AI head's round
/// two training jobs of `training_epochs` (one for each AI head); a quantum head is killed once
/// it runs a circuit, an AI head once its training has saved a checkpoint. Each time it waits
/// for the head's rebuild to serve with its key. Then follows every job to its end and checks
/// that each finished once with the right result (a circuit's counts are those of the same circuit
/// and seed on any head). A training job is killed once at most (a job whose head dies three
/// times fails), so `training_epochs` must outlast a kill, not the run.
pub async fn kill_heads_in_turn(
    client: &mut EngineClient<Channel>,
    key: &SecretKey,
    rounds: usize,
    pause: Duration,
    training_epochs: usize,
) -> FaultRun {
    let circuit = slow_circuit();
    let mut circuits = Vec::new();
    let mut trainings = Vec::new();
    let mut rebuilds = Vec::new();
    let mut killed_running = Vec::new();
    for round in 0..rounds {
        tokio::time::sleep(pause).await;
        let victim = KILL_ORDER[round % KILL_ORDER.len()];
        for i in 0..3 {
            let id = format!("urn:uuid:fault-circuit-{round}-{i}");
            let doc = document(
                &id,
                "quantum_circuit",
                "",
                "shots: 64\nseed: 5",
                &[("qasm", &circuit)],
            );
            submit(client, signed(&doc, key)).await;
            circuits.push(id);
        }
        if victim.starts_with('a') {
            for i in 0..2 {
                let id = format!("urn:uuid:fault-training-{round}-{i}");
                submit(client, signed(&training_job(&id, training_epochs), key)).await;
                trainings.push(id);
            }
        }
        // Shares first, so that the kill comes as soon after the job is seen as it can.
        heads_until(client, "every key shared", |h| {
            h.values().all(|h| h.key_shares == 3)
        })
        .await;
        let running = heads_until(client, "the victim running a job", |h| {
            !h[victim].job_id.is_empty()
        })
        .await;
        if victim.starts_with('a') {
            progress_until(client, key, &running[victim].job_id, "a checkpoint", |p| {
                p["checkpoint"].is_object()
            })
            .await;
        }
        let (took, sent) = killed_and_rebuilt(client, &[victim]).await;
        rebuilds.push((victim.to_owned(), took));
        if victim.starts_with('q') {
            killed_running.push((running[victim].job_id.clone(), sent));
        }
    }
    let mut reference = None;
    let mut circuits_run_again = 0;
    for id in &circuits {
        let job = finished(client, key, id).await;
        let counts = result(&job)["counts"].clone();
        assert_eq!(reference.get_or_insert(counts.clone()), &counts, "{id}");
        assert!(job.attempts >= 1, "{id}");
        circuits_run_again += usize::from(job.attempts > 1);
    }
    let mut trained = Vec::new();
    for id in &trainings {
        let job = finished(client, key, id).await;
        trained.push((result(&job), job.attempts));
    }
    // A circuit its head was killed under ran again; one that did not had finished before the
    // SIGKILL. Which it was is the race between the kill and the circuit's end, told apart here
    // rather than guessed.
    let mut circuits_killed = Vec::new();
    for (id, sent) in killed_running {
        let job = finished(client, key, &id).await;
        let ran_again = job.attempts > 1;
        let finished_at: jiff::Timestamp = job.finished_at.parse().unwrap();
        assert!(
            ran_again || finished_at <= sent,
            "{id} was running when its head was killed, yet it ran once and finished after"
        );
        circuits_killed.push((id, ran_again));
    }
    FaultRun {
        rebuilds,
        trainings: trained,
        circuits: circuits.len(),
        circuits_run_again,
        circuits_killed,
    }
}

pub const BELL: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q -> c;";

/// The reason a refused submission carries.
pub async fn refusal(
    client: &mut EngineClient<Channel>,
    document: Vec<u8>,
) -> (tonic::Code, String) {
    let status = client
        .submit(SubmitRequest { document })
        .await
        .expect_err("the document is refused");
    let reason =
        chimera_client::reason_of(&status).unwrap_or_else(|| panic!("no reason in {status:?}"));
    (status.code(), reason)
}

/// Waits until the training job `id` has reported epoch `epoch`.
pub async fn trained_to(client: &mut EngineClient<Channel>, key: &SecretKey, id: &str, epoch: u64) {
    progress_until(client, key, id, &format!("epoch {epoch}"), |p| {
        p["epoch"].as_u64().is_some_and(|e| e >= epoch)
    })
    .await;
}

/// The value of the series of `name` whose labels include every one of `labels`.
pub fn series(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    matching(metrics, name, labels).next()
}

/// The sum of every series of `name` whose labels include every one of `labels`.
pub fn series_total(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    matching(metrics, name, labels).sum()
}

fn matching<'a>(
    metrics: &'a str,
    name: &'a str,
    labels: &'a [&str],
) -> impl Iterator<Item = f64> + 'a {
    metrics
        .lines()
        .filter(move |l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
}

/// An inference job of one `chimera-infer` block, submitted and followed to its end.
pub async fn infer_job(
    client: &mut EngineClient<Channel>,
    key: &SecretKey,
    id: &str,
    spec: &str,
) -> Job {
    let job = document(id, "inference", "", "", &[("chimera-infer", spec)]);
    let id = submit(client, signed(&job, key)).await.id;
    finished(client, key, &id).await
}

/// A `chimera-infer` spec asking the digits model `model_id` for one row of 64 zeros.
pub fn digits_inference(model_id: &str) -> String {
    format!(
        "model: {model_id}\ninputs:\n  - [{}]",
        vec!["0.0"; 64].join(", ")
    )
}
