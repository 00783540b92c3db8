//! Load on the engine's front door: `cargo bench --bench engine_load [-- JOBS CLIENTS]`.
//!
//! Starts `chimera serve` (the release binary, four heads) in a temporary directory, trusts a
//! key, signs JOBS trivial Bell-pair circuits with it beforehand (signing is the gateway's cost,
//! not the engine's), then submits them from CLIENTS concurrent clients over unary `Submit`, each
//! timing its own calls. Reports accepted submissions per second and the acknowledgement latency
//! (the time until the engine answered, i.e. until the job was committed to its journal) and the
//! CPU time the engine used per job meanwhile (steadier than the rate on a VM with neighbours), then
//! follows every job to its end and checks that each one succeeded exactly once (one attempt, one
//! result). The same again through `SubmitBatch` streams.
//!
//! Goal (issue 6) on the 2-core CI machine: at least 2,000 accepted submissions per second with
//! p99 acknowledgement under 20 ms, and no job lost. Client and engine share the machine.

use std::time::{Duration, Instant};

use chimera_client::JobCall;
use chimera_maml::{DEFAULT_MAX_BYTES, SecretKey, sign_document};
use chimera_proto::v1::engine_client::EngineClient;
use chimera_proto::v1::{GetRequest, JobState, SubmitRequest, batch_reply};
use rayon::prelude::*;
use tonic::transport::Channel;

// Shared with the engine's tests, which use more of them.
#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../tests/common/engine_client.rs"]
mod engine_client;
#[allow(dead_code)]
#[path = "../tests/common/served.rs"]
mod served;

const BELL: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q -> c;";

fn document(id: &str) -> String {
    let created = jiff::Timestamp::now();
    format!(
        "---\nmaml_version: \"2.0.0\"\nid: \"{id}\"\ntype: \"quantum_circuit\"\norigin: \"agent://load\"\ncreated_at: {created}\n---\n## Intent\nA Bell pair.\n\n## Context\nshots: 16\n\n## Code_Blocks\n```qasm\n{BELL}\n```\n"
    )
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

fn report(what: &str, jobs: usize, clients: usize, wall: Duration, mut latencies: Vec<Duration>) {
    latencies.sort();
    println!(
        "{what}: {jobs} jobs from {clients} clients in {:.2} s: {:.0} accepted/s; ack latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        wall.as_secs_f64(),
        jobs as f64 / wall.as_secs_f64(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
    );
}

/// CPU seconds (user and system) used so far by the process `pid` and, apart, by its living
/// children (the heads), from /proc.
fn cpu_seconds(pid: i32) -> (f64, f64) {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // The fields after the command name (which may hold spaces) close with ')'.
    let fields = |stat: &str| -> Vec<String> {
        let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        rest.split_whitespace().map(str::to_owned).collect()
    };
    // Counted from the state field (`fields[0]`): ppid is fields[1], utime and stime 11 and 12.
    let busy =
        |f: &[String]| (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / ticks;
    let own = busy(&fields(
        &std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap(),
    ));
    let mut children = 0.0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let f = fields(&stat);
        if f.len() > 12 && f[1] == pid.to_string() {
            children += busy(&f);
        }
    }
    (own, children)
}

/// Waits for every job to end: each must have succeeded on its first and only attempt.
async fn check_all_finished(client: &mut EngineClient<Channel>, key: &SecretKey, ids: &[String]) {
    let started = Instant::now();
    let mut pending: Vec<&String> = ids.iter().collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for id in pending {
            let job = client
                .get(engine_client::proved(
                    GetRequest { job_id: id.clone() },
                    key,
                    JobCall::Get,
                    id,
                ))
                .await
                .expect("every acknowledged job is known")
                .into_inner();
            if job.state == JobState::Succeeded as i32 {
                assert_eq!(job.attempts, 1, "{id} ran {} times", job.attempts);
            } else {
                assert!(
                    job.state == JobState::Queued as i32 || job.state == JobState::Running as i32,
                    "{id} ended {:?}: {}",
                    job.state,
                    job.error
                );
                still.push(id);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    println!(
        "  all {} jobs succeeded, each once ({:.1} s after the last submission was acknowledged)",
        ids.len(),
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let jobs: usize = args.next().map_or(10_000, |a| a.parse().expect("JOBS"));
    let clients: usize = args.next().map_or(32, |a| a.parse().expect("CLIENTS"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = engine_client::trusted_key(&data, dir.path(), "load", "quantum_circuit");

    let signing = Instant::now();
    let sign = |prefix: &str| -> Vec<(String, Vec<u8>)> {
        (0..jobs)
            .into_par_iter()
            .map(|i| {
                let id = format!("urn:uuid:{prefix}-{i}");
                let text = sign_document(document(&id).as_bytes(), &key, DEFAULT_MAX_BYTES)
                    .unwrap()
                    .text;
                (id, text.into_bytes())
            })
            .collect()
    };
    let unary_docs = sign("unary");
    let batch_docs = sign("batch");
    println!(
        "signed {} documents of {} bytes in {:.1} s (not timed below)",
        2 * jobs,
        unary_docs[0].1.len(),
        signing.elapsed().as_secs_f64()
    );

    // One key submits everything, as fast as it can: the per-client limits would refuse most of it.
    let engine = served::Served::start_with(
        &data,
        &["--client-rate", "0", "--max-jobs-per-client", "100000000"],
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let channel = Channel::from_shared(engine.url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = EngineClient::new(channel.clone());

        // Unary Submit from many clients.
        let shares: Vec<Vec<(String, Vec<u8>)>> = (0..clients)
            .map(|c| {
                unary_docs
                    .iter()
                    .skip(c)
                    .step_by(clients)
                    .cloned()
                    .collect()
            })
            .collect();
        let started = Instant::now();
        let cpu_before = cpu_seconds(engine.pid());
        // Gateways come on connections of their own: one per eight clients.
        let mut connections = Vec::new();
        for _ in 0..clients.div_ceil(8) {
            connections.push(
                Channel::from_shared(engine.url.clone())
                    .unwrap()
                    .connect()
                    .await
                    .unwrap(),
            );
        }
        let tasks: Vec<_> = shares
            .into_iter()
            .enumerate()
            .map(|(c, share)| {
                let mut client = EngineClient::new(connections[c / 8].clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(share.len());
                    for (_, document) in share {
                        let sent = Instant::now();
                        let reply = client.submit(SubmitRequest { document }).await;
                        latencies.push(sent.elapsed());
                        assert!(reply.expect("accepted").into_inner().created);
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies = Vec::with_capacity(jobs);
        for task in tasks {
            latencies.extend(task.await.unwrap());
        }
        let wall = started.elapsed();
        let cpu_after = cpu_seconds(engine.pid());
        report("unary Submit", jobs, clients, wall, latencies);
        let per_job = |before: f64, after: f64| (after - before) * 1e3 / jobs as f64;
        println!(
            "  engine CPU while submitting: {:.3} ms per job in the front door, {:.3} ms in the heads ({:.2} cores of the machine's {})",
            per_job(cpu_before.0, cpu_after.0),
            per_job(cpu_before.1, cpu_after.1),
            (cpu_after.0 + cpu_after.1 - cpu_before.0 - cpu_before.1) / wall.as_secs_f64(),
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        );
        // What else the engine did meanwhile: jobs run to their end take the front door's time
        // too (results, receipts, the next dispatch), so a faster head lowers the rate above.
        println!(
            "  by then {} of them had succeeded",
            engine_client::series_total(
                &engine.scrape_metrics(),
                "chimera_jobs_total",
                &["outcome=\"succeeded\""]
            )
        );
        let ids: Vec<String> = unary_docs.iter().map(|(id, _)| id.clone()).collect();
        check_all_finished(&mut client, &key, &ids).await;

        // SubmitBatch: a few streams, each with many submissions in flight.
        let streams = 4;
        let shares: Vec<Vec<(String, Vec<u8>)>> = (0..streams)
            .map(|c| {
                batch_docs
                    .iter()
                    .skip(c)
                    .step_by(streams)
                    .cloned()
                    .collect()
            })
            .collect();
        let started = Instant::now();
        let tasks: Vec<_> = shares
            .into_iter()
            .map(|share| {
                let mut client = EngineClient::new(channel.clone());
                tokio::spawn(async move {
                    let count = share.len();
                    let requests = tokio_stream::iter(
                        share
                            .into_iter()
                            .map(|(_, document)| SubmitRequest { document }),
                    );
                    let mut replies = client.submit_batch(requests).await.unwrap().into_inner();
                    let mut accepted = 0;
                    while let Some(reply) = replies.message().await.unwrap() {
                        match reply.outcome {
                            Some(batch_reply::Outcome::Accepted(_)) => accepted += 1,
                            other => panic!("refused: {other:?}"),
                        }
                    }
                    assert_eq!(accepted, count);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let wall = started.elapsed();
        println!(
            "SubmitBatch: {jobs} jobs on {streams} streams in {:.2} s: {:.0} accepted/s",
            wall.as_secs_f64(),
            jobs as f64 / wall.as_secs_f64()
        );
        let ids: Vec<String> = batch_docs.iter().map(|(id, _)| id.clone()).collect();
        check_all_finished(&mut client, &key, &ids).await;
    });
    // The engine's own count agrees: every submission created a job, none was refused.
    let metrics = engine.scrape_metrics();
    let created = engine_client::series(
        &metrics,
        "chimera_submissions_total",
        &["outcome=\"created\""],
    );
    assert_eq!(created, Some((2 * jobs) as f64), "{metrics}");
    println!(
        "  the engine's chimera_submissions_total{{outcome=\"created\"}}: {}",
        2 * jobs
    );
}
