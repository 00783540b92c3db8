//! Heads killed and rebuilt under work: `cargo bench --bench head_rebuild [-- ROUNDS PAUSE_S]`.
//!
//! Starts `chimera serve` (the release binary, four heads) in a temporary directory, then ROUNDS
//! times (default 20) waits PAUSE_S seconds (default 3: each head then lives longer than the
//! supervisor's 10 s before it is killed again, so no crash-loop back-off applies), submits three
//! 20-qubit circuits (and in an AI head's turn two digits training jobs of 500 epochs, one for
//! each AI head) and SIGKILLs the next head in turn (q0, a0, q1, a1) once it has work under way:
//! a circuit running, or a training that has saved a checkpoint. Reports the time from each kill
//! to the head's rebuild serving with its key (restored from two peers, state re-sealed), as
//! `chimera heads` sees it. Then follows every job to its end and checks that each finished once
//! with the right result and that each training killed under way went on from its checkpoint.
//!
//! Goal (issue 7) on the 2-core CI machine: p99 of kill-to-serving under 2 s.

use std::time::Duration;

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

use engine_client::{client, kill_heads_in_turn, runtime, trusted_key};

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let rounds: usize = args.next().map_or(20, |a| a.parse().expect("ROUNDS"));
    let pause: f64 = args.next().map_or(3.0, |a| a.parse().expect("PAUSE_S"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = trusted_key(&data, dir.path(), "faults", "*");
    let engine = served::Served::start(&data);
    let run = runtime().block_on(async {
        let mut client = client(&engine.url).await;
        // About 3 s each in a release build on 2 cores: long enough to be killed under way,
        // short enough for two AI heads to keep up with two jobs every other round.
        kill_heads_in_turn(
            &mut client,
            &key,
            rounds,
            Duration::from_secs_f64(pause),
            500,
        )
        .await
    });
    let mut times: Vec<f64> = run
        .rebuilds
        .iter()
        .map(|(_, d)| d.as_secs_f64() * 1e3)
        .collect();
    for (head, took) in &run.rebuilds {
        println!(
            "{head}: SIGKILL to serving again {:.1} ms",
            took.as_secs_f64() * 1e3
        );
    }
    times.sort_by(f64::total_cmp);
    let at = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
    println!(
        "{} kills, {pause} s apart: SIGKILL to serving again p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        times.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
    let resumed = run
        .trainings
        .iter()
        .filter(|(trained, attempts)| *attempts > 1 && trained["resumed_from_checkpoint"] == true)
        .count();
    let accuracies: Vec<f64> = run
        .trainings
        .iter()
        .map(|(trained, _)| trained["val_accuracy"].as_f64().unwrap())
        .collect();
    println!(
        "all {} circuits finished once with the same counts ({} of them ran again after their \
         head died); {} training jobs finished, {resumed} of them killed under way went on from \
         their checkpoint; val_accuracy {:.3} to {:.3}",
        run.circuits,
        run.circuits_run_again,
        run.trainings.len(),
        accuracies.iter().copied().fold(f64::INFINITY, f64::min),
        accuracies.iter().copied().fold(0.0, f64::max),
    );
    // The run is the point: trained models from work that survived the kills, each AI kill
    // (every other round) under a training job.
    assert_eq!(resumed, rounds / 2, "{:?}", run.trainings);
}
