//! The soak test (issue 9): clients submitting at once, good jobs, bad ones (issue 34's hostile
//! ones among them) and resubmissions mixed, while heads are SIGKILLed at random, bounded in time and count. Every accepted job
//! finishes once with a right result, every bad one is refused with its reason, a resubmission
//! is the job already accepted, the audit log records each job once, and the engine's memory
//! stays flat.

// Shared with the other tests, which use more of them.
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "common/engine_client.rs"]
mod engine_client;
#[allow(dead_code)]
#[path = "common/served.rs"]
mod served;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chimera_maml::SecretKey;
use chimera_proto::v1::SubmitRequest;
use common::work_dir;
use engine_client::{
    client, document, finished, kill_and_rebuild, long_training, result, runtime, signed,
    signed_as_is, trusted_key,
};
use served::Served;

/// How long clients submit, how many clients, and at most how many documents each sends.
const SOAK: Duration = Duration::from_secs(40);
const CLIENTS: usize = 4;
const MAX_DOCUMENTS: usize = 120;
/// Between head kills (each waits for the head's rebuild first).
const KILL_EVERY: Duration = Duration::from_secs(2);
const HEADS: [&str; 4] = ["q0", "q1", "a0", "a1"];

const GHZ: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[12];\ncreg c[12];\nh q[0];\n\
cx q[0],q[1];\ncx q[1],q[2];\ncx q[2],q[3];\ncx q[3],q[4];\ncx q[4],q[5];\ncx q[5],q[6];\n\
cx q[6],q[7];\ncx q[7],q[8];\ncx q[8],q[9];\ncx q[9],q[10];\ncx q[10],q[11];\nmeasure q -> c;";

/// What one client saw.
#[derive(Default)]
struct Seen {
    accepted: Vec<String>,
    refused: HashMap<String, usize>,
    resubmitted: usize,
}

/// The engine's resident memory, from /proc.
fn resident_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn submit_all(
    url: String,
    who: usize,
    key: Arc<SecretKey>,
    stranger: Arc<SecretKey>,
) -> Seen {
    let mut client = client(&url).await;
    let deadline = Instant::now() + SOAK;
    let mut seen = Seen::default();
    let mut last_accepted: Option<(String, Vec<u8>)> = None;
    for i in 0..MAX_DOCUMENTS {
        if Instant::now() > deadline {
            break;
        }
        // Spread over the soak, so that submissions meet heads dying and coming back.
        tokio::time::sleep(SOAK / MAX_DOCUMENTS as u32).await;
        let id = format!("urn:uuid:soak-{who}-{i}");
        let context = format!("shots: 100\nseed: {i}");
        let good = || document(&id, "quantum_circuit", "", &context, &[("qasm", GHZ)]);
        // Of every six: three good jobs, one resubmission, two bad documents in turn.
        let (bytes, expected) = match i % 6 {
            0..=2 => (signed(&good(), &key), None),
            3 => match &last_accepted {
                Some((_, bytes)) => (bytes.clone(), None),
                None => continue,
            },
            4 => match (i / 6) % 8 {
                0 => (b"not a MAML document".to_vec(), Some("MALFORMED")),
                1 => (good().into_bytes(), Some("UNSIGNED")),
                2 => (signed(&good(), &stranger), Some("UNKNOWN_KEY")),
                3 => {
                    let broken = GHZ.replace("h q[0];", "hh q[0];");
                    let doc = document(&id, "quantum_circuit", "", &context, &[("qasm", &broken)]);
                    (signed(&doc, &key), Some("BAD_CIRCUIT"))
                }
                // Issue 34's: a model under a circuit's type, a number no head can run, an
                // observable on a qubit the circuit lacks, an id too long to echo.
                4 => {
                    let training = long_training(1);
                    let doc = document(
                        &id,
                        "quantum_circuit",
                        "",
                        "",
                        &[("chimera-train", &training)],
                    );
                    (signed(&doc, &key), Some("TYPE_MISMATCH"))
                }
                5 => {
                    let poison = format!("shots: 9223372036854775807\nseed: {i}");
                    let doc = document(&id, "quantum_circuit", "", &poison, &[("qasm", GHZ)]);
                    (signed(&doc, &key), Some("OVER_LIMIT"))
                }
                6 => {
                    let elsewhere = format!("{context}\nobservables: [\"Z12\"]");
                    let doc = document(&id, "quantum_circuit", "", &elsewhere, &[("qasm", GHZ)]);
                    (signed(&doc, &key), Some("BAD_CONTEXT"))
                }
                _ => {
                    let long_id = format!("{id}-{}", "x".repeat(10_000));
                    let doc = document(&long_id, "quantum_circuit", "", &context, &[("qasm", GHZ)]);
                    (signed_as_is(&doc, &key), Some("MALFORMED"))
                }
            },
            _ => continue,
        };
        let reply = client
            .submit(SubmitRequest {
                document: bytes.clone(),
            })
            .await;
        match (reply, expected) {
            (Ok(reply), None) => {
                let job = reply.into_inner().job.unwrap();
                if i % 6 == 3 {
                    let (earlier, _) = last_accepted.as_ref().unwrap();
                    assert_eq!(
                        &job.id, earlier,
                        "a resubmission is the job already accepted"
                    );
                    seen.resubmitted += 1;
                } else {
                    assert_eq!(job.id, id);
                    seen.accepted.push(id.clone());
                    last_accepted = Some((id, bytes));
                }
            }
            (Err(status), Some(reason)) => {
                let got = chimera_client::reason_of(&status);
                assert_eq!(got.as_deref(), Some(reason), "{id}: {status:?}");
                *seen.refused.entry(reason.to_owned()).or_default() += 1;
            }
            (Ok(_), Some(reason)) => panic!("{id} was accepted; expected {reason}"),
            (Err(status), None) => panic!("{id} was refused: {status:?}"),
        }
    }
    seen
}

#[test]
fn a_soak_with_random_head_kills_and_bad_inputs_loses_and_duplicates_nothing() {
    let dir = work_dir("soak");
    let data = dir.join("data");
    let key = Arc::new(trusted_key(&data, &dir, "lab", "*"));
    let stranger = Arc::new(SecretKey::generate().unwrap());
    let served = Served::start(&data);
    let pid = served.pid();
    let (seen, kills, warm, end) = runtime().block_on(async {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|who| {
                tokio::spawn(submit_all(
                    served.url.clone(),
                    who,
                    key.clone(),
                    stranger.clone(),
                ))
            })
            .collect();
        // Heads killed in a seeded random order while the clients submit.
        let mut control = client(&served.url).await;
        let started = Instant::now();
        let (mut kills, mut warm, mut state) = (Vec::new(), None, 0x2545_f491_4f6c_dd1du64);
        while started.elapsed() < SOAK {
            tokio::time::sleep(KILL_EVERY).await;
            if warm.is_none() && started.elapsed() >= SOAK / 4 {
                warm = Some(resident_kib(pid));
            }
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let victim = HEADS[(state % HEADS.len() as u64) as usize];
            kill_and_rebuild(&mut control, &[victim]).await;
            kills.push(victim);
        }
        let mut seen = Vec::new();
        for task in clients {
            seen.push(task.await.unwrap());
        }
        // Every accepted job to its end: once, succeeded, a GHZ state's counts.
        for id in seen.iter().flat_map(|s| &s.accepted) {
            let job = finished(&mut control, &key, id).await;
            let counts = result(&job)["counts"].as_object().unwrap().clone();
            let total: u64 = counts.values().map(|v| v.as_u64().unwrap()).sum();
            assert_eq!(total, 100, "{id}: {counts:?}");
            for outcome in counts.keys() {
                assert!(
                    outcome.chars().all(|c| c == '0') || outcome.chars().all(|c| c == '1'),
                    "{id}: {outcome}"
                );
            }
        }
        (
            seen,
            kills,
            warm.expect("a quarter of the soak passed"),
            resident_kib(pid),
        )
    });
    drop(served);

    let accepted: Vec<&String> = seen.iter().flat_map(|s| &s.accepted).collect();
    let unique: BTreeSet<&String> = accepted.iter().copied().collect();
    assert_eq!(unique.len(), accepted.len(), "a job id accepted twice");
    let resubmitted: usize = seen.iter().map(|s| s.resubmitted).sum();
    let mut refused: HashMap<String, usize> = HashMap::new();
    for (reason, n) in seen.iter().flat_map(|s| &s.refused) {
        *refused.entry(reason.clone()).or_default() += n;
    }
    eprintln!(
        "soak: {} accepted, {resubmitted} resubmissions, refused {refused:?}, heads killed {kills:?}, \
         engine resident memory {warm} KiB after a quarter, {end} KiB at the end",
        accepted.len()
    );
    assert!(accepted.len() >= 40, "too few jobs for a soak");
    assert!(kills.len() >= 4, "too few kills: {kills:?}");
    assert_eq!(
        refused.len(),
        7,
        "every kind of bad document was sent: {refused:?}"
    );
    // The audit log holds each accepted job once: a resubmission made no second job.
    let log = std::fs::read_to_string(data.join("audit.log")).unwrap();
    let submitted: Vec<String> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["record"].clone())
        .filter(|r| r["event"] == "submitted")
        .map(|r| r["job"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        submitted.len(),
        accepted.len(),
        "submitted records vs jobs accepted"
    );
    assert_eq!(submitted.iter().collect::<BTreeSet<_>>(), unique);
    // Flat: the jobs' records grow the engine a little; a leak per job or per head life grows it
    // by far more over a few hundred jobs and a score of rebuilds.
    assert!(
        end <= warm + warm / 4 + 16 * 1024,
        "the engine grew from {warm} KiB to {end} KiB"
    );
}
