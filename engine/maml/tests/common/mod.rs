//! Keys, documents and a clock shared by the MAML tests.
#![allow(dead_code)] // each test file uses part of it

use chimera_maml::{ANY_TYPE, Policy, SecretKey, TrustStore, sign_document};
use jiff::Timestamp;

/// A fixed key, so that failures reproduce; `n` picks one of several.
pub fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

/// The tests' clock: a day after the documents were created.
pub fn now() -> Timestamp {
    "2026-11-21T10:00:00Z".parse().unwrap()
}

pub const BELL: &str = include_str!("../../../../examples/bell.maml.md");
pub const QFT: &str = include_str!("../../../../examples/qft.maml.md");

/// A document with front matter `front` (after the required keys) and body `body`.
pub fn document(front: &str, body: &str) -> String {
    format!(
        "---\nmaml_version: \"2.0.0\"\nid: \"urn:uuid:test\"\ntype: quantum_circuit\norigin: \"agent://test\"\ncreated_at: 2026-11-20T10:00:00Z\n{front}---\n{body}"
    )
}

pub const QASM_BODY: &str =
    "## Code_Blocks\n```qasm\nOPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\nh q[0];\n```\n";

pub fn signed(text: &str, key: &SecretKey) -> String {
    sign_document(text.as_bytes(), key, chimera_maml::DEFAULT_MAX_BYTES)
        .expect("the document signs")
        .text
}

/// A trust store holding `key(n)` for each `n`, named `k<n>`, allowed every type.
pub fn trusting(keys: &[u8]) -> TrustStore {
    let mut store = TrustStore::new();
    for &n in keys {
        store
            .add(
                &format!("k{n}"),
                key(n).public_key(),
                vec![ANY_TYPE.into()],
                now(),
            )
            .unwrap();
    }
    store
}

pub fn policy() -> Policy {
    Policy::default()
}
