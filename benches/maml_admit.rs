//! Parse + verify throughput of signed MAML jobs on one core: `cargo bench --bench maml_admit`.
//!
//! A typical job (the bundled QFT example with its Intent grown until the signed bytes are
//! 4 KiB) is signed once; then every iteration runs the engine's full submission check,
//! `chimera_maml::admit` (parse, trust-store lookup, SHA3-512, ML-DSA-65 verify, policy), timed one
//! by one so the tail is seen. Parse alone and verify alone are timed too, to show where the time
//! goes. Goal (issue 4): at least 10,000 documents per second per core, p99 under 1 ms.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chimera_maml::{ANY_TYPE, Policy, SecretKey, TrustStore, admit, parse, sign_document};

const DOCUMENT: &str = include_str!("../examples/qft.maml.md");
const SIGNED_BYTES: usize = 4096;
const ITERATIONS: usize = 20_000;

fn main() {
    let key = SecretKey::from_seed(&[7; 32]);
    let now = jiff::Timestamp::now();
    let mut trust = TrustStore::new();
    trust
        .add("bench", key.public_key(), vec![ANY_TYPE.into()], now)
        .expect("trusted");
    let policy = Policy::default();

    let filler = "The same circuit, described at length for the people who read the job. ";
    let mut text = DOCUMENT.to_owned();
    let intent_end = text
        .find("\n\n## Context")
        .expect("the example has a Context section");
    while text.len() + filler.len() <= SIGNED_BYTES {
        text.insert_str(intent_end, filler);
    }
    let padding = SIGNED_BYTES - text.len();
    text.insert_str(intent_end, &"x".repeat(padding));
    let signed = sign_document(text.as_bytes(), &key, policy.max_bytes)
        .expect("signs")
        .text;
    let document = parse(signed.as_bytes(), policy.max_bytes).expect("parses");
    assert_eq!(document.signed_bytes.len(), SIGNED_BYTES);
    let block = document.signature.clone().expect("signed");
    let public = key.public_key();

    println!(
        "document: {} bytes signed, {} bytes in all (the signature block is the rest)",
        SIGNED_BYTES,
        signed.len()
    );
    report("admit (parse + verify + checks)", || {
        admit(black_box(signed.as_bytes()), &trust, &policy, now).expect("admitted");
    });
    report("parse only", || {
        parse(black_box(signed.as_bytes()), policy.max_bytes).expect("parses");
    });
    report("verify only (SHA3-512 + ML-DSA-65)", || {
        chimera_maml::verify(black_box(&document.signed_bytes), &block, &public).expect("valid");
    });
}

fn report(what: &str, mut run: impl FnMut()) {
    for _ in 0..ITERATIONS / 10 {
        run();
    }
    let mut times: Vec<Duration> = Vec::with_capacity(ITERATIONS);
    let started = Instant::now();
    for _ in 0..ITERATIONS {
        let t = Instant::now();
        run();
        times.push(t.elapsed());
    }
    let total = started.elapsed();
    times.sort();
    let at = |q: f64| times[((ITERATIONS as f64 * q) as usize).min(ITERATIONS - 1)];
    println!(
        "{what:<38} {:>8.0} docs/s   p50 {:>6.1} µs   p99 {:>6.1} µs   max {:>7.1} µs",
        ITERATIONS as f64 / total.as_secs_f64(),
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        times[ITERATIONS - 1].as_secs_f64() * 1e6,
    );
}
