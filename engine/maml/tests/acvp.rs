//! NIST ACVP vectors for ML-DSA-65 (FIPS 204), through this crate's key and signature handling.
//! Sources and licences: `data/README.md`.

use chimera_maml::{PublicKey, SecretKey};
use serde_json::Value;

fn vectors(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("vector file")).expect("JSON")
}

fn bytes(test: &Value, field: &str) -> Vec<u8> {
    hex::decode(test[field].as_str().expect("hex field")).expect("hex")
}

#[test]
fn sig_ver_vectors_pass() {
    let file = vectors("acvp-mldsa65-sigver.json");
    let key = PublicKey::from_bytes(&bytes(&file, "pk")).expect("the vectors' key decodes");
    let tests = file["tests"].as_array().expect("tests");
    assert_eq!(tests.len(), 15);
    let mut rejected = 0;
    for test in tests {
        let expected = test["testPassed"].as_bool().expect("testPassed");
        let verified = key.verify_internal(&bytes(test, "message"), &bytes(test, "signature"));
        assert_eq!(
            verified, expected,
            "tcId {} ({:?})",
            test["tcId"], test["reason"]
        );
        rejected += usize::from(!verified);
    }
    // The set holds forged signatures of every kind the standard names, not only valid ones.
    assert!(rejected >= 10, "only {rejected} invalid cases");
}

#[test]
fn key_gen_vectors_pass() {
    let file = vectors("acvp-mldsa65-keygen.json");
    let tests = file["tests"].as_array().expect("tests");
    assert_eq!(tests.len(), 25);
    for test in tests {
        let seed: [u8; 32] = bytes(test, "seed").try_into().expect("32-byte seed");
        let public = SecretKey::from_seed(&seed).public_key();
        assert_eq!(
            public.to_bytes(),
            bytes(test, "pk"),
            "tcId {}",
            test["tcId"]
        );
        // The key id is the SHA3-256 of exactly these bytes.
        let again = PublicKey::from_bytes(&bytes(test, "pk")).expect("decodes");
        assert_eq!(again.id(), public.id());
    }
}
