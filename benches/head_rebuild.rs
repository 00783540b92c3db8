//! Heads killed and rebuilt under work: `cargo bench --bench head_rebuild [-- ROUNDS PAUSE_S]`.
//!
//! Starts `chimera serve` (the release binary, four heads) in a temporary directory, submits a
//! long digits training job and keeps 20-qubit circuits queued, then ROUNDS times (default 20)
//! waits PAUSE_S seconds (default 3: each head then lives longer than the supervisor's 10 s
//! before it is killed again, so no crash-loop back-off applies) and SIGKILLs the next head in
//! turn (q0, a0, q1, a1). Reports the time from each kill to the head's next life serving with its
//! key (restored from two peers, state re-sealed), as `chimera heads` sees it. Then follows every
//! job to its end and checks that each finished once with the right result and that the training
//! went on from its checkpoints.
//!
//! Goal (issue 7) on the 2-core CI machine: p99 of kill-to-serving under 2 s.

use std::time::Duration;

// Shared with the engine's tests, which use more of them.
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
        // Long enough to be running through every round.
        let epochs = (rounds as f64 * pause * 60.0) as usize;
        kill_heads_in_turn(
            &mut client,
            &key,
            rounds,
            Duration::from_secs_f64(pause),
            epochs,
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
    println!(
        "all {} circuits finished once with the same counts ({} of them ran again after their \
         head died); training: {} attempts, resumed from a checkpoint: {}, val_accuracy {}",
        run.circuits,
        run.circuits_run_again,
        run.training_attempts,
        run.training["resumed_from_checkpoint"],
        run.training["val_accuracy"]
    );
    // The run is the point: a trained model from work that survived every kill.
    assert_eq!(run.training["resumed_from_checkpoint"], true);
}
