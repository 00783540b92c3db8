//! Every submission check of MAML.md refuses with its own reason, and the trust store keeps what
//! it is told across a save and a load.

mod common;

use chimera_maml::{
    ANY_TYPE, PublicKey, Refusal, SecretKey, TrustError, TrustStore, Work, admit, write_key_pair,
};
use common::*;
use jiff::{SignedDuration, Timestamp};

fn reason(text: &str, trust: &TrustStore, now: Timestamp) -> &'static str {
    match admit(text.as_bytes(), trust, &policy(), now) {
        Ok(_) => "ADMITTED",
        Err(refusal) => {
            // Every refusal explains itself in words too.
            assert!(refusal.to_string().len() > 20, "{refusal}");
            refusal.reason()
        }
    }
}

fn signed_with(front: &str, body: &str) -> String {
    signed(&document(front, body), &key(1))
}

#[test]
fn each_check_refuses_with_its_reason() {
    let trust = trusting(&[1]);
    let ok = signed_with("", QASM_BODY);
    assert_eq!(reason(&ok, &trust, now()), "ADMITTED");
    assert_eq!(reason(&document("", QASM_BODY), &trust, now()), "UNSIGNED");
    assert_eq!(
        reason(&signed(&document("", QASM_BODY), &key(2)), &trust, now()),
        "UNKNOWN_KEY"
    );
    assert_eq!(reason("not maml", &trust, now()), "MALFORMED");

    let mut revoked = trusting(&[1]);
    revoked.revoke("k1", now()).unwrap();
    assert_eq!(reason(&ok, &revoked, now()), "REVOKED_KEY");

    let mut narrow = TrustStore::new();
    narrow
        .add(
            "trainer",
            key(1).public_key(),
            vec!["training".into()],
            now(),
        )
        .unwrap();
    assert_eq!(reason(&ok, &narrow, now()), "TYPE_NOT_ALLOWED");
    let training = signed_with("", QASM_BODY).replace("type: quantum_circuit", "type: training");
    // (Changing the type after signing is caught by the signature, not the type check.)
    assert_eq!(reason(&training, &narrow, now()), "DIGEST_MISMATCH");
}

const TRAIN_BODY: &str =
    "## Code_Blocks\n```chimera-train\ndataset: digits\nmodel:\n  kind: mlp\n  hidden: [8]\n```\n";
const INFER_BODY: &str =
    "## Code_Blocks\n```chimera-infer\nmodel: someone-elses\ninputs: [[1]]\n```\n";

/// Issue 34: a key allowed only circuits submitted `type: quantum_circuit` with a training (or
/// inference) block, and it ran. What the blocks run is what the key must be allowed, and a type
/// that disagrees with them is refused.
#[test]
fn the_allow_list_holds_what_the_blocks_run_whatever_the_type_says() {
    let mut circuits_only = TrustStore::new();
    let allow = vec!["quantum_circuit".into()];
    circuits_only
        .add("carol", key(1).public_key(), allow, now())
        .unwrap();
    for body in [TRAIN_BODY, INFER_BODY] {
        let claimed = signed_with("", body);
        assert_eq!(reason(&claimed, &circuits_only, now()), "TYPE_MISMATCH");
        let refused = admit(claimed.as_bytes(), &circuits_only, &policy(), now()).unwrap_err();
        assert!(refused.to_string().contains("its blocks run"), "{refused}");
        let workflow = signed(
            &document("", body).replace("quantum_circuit", "workflow"),
            &key(1),
        );
        let refused = admit(workflow.as_bytes(), &circuits_only, &policy(), now()).unwrap_err();
        assert_eq!(refused.reason(), "TYPE_NOT_ALLOWED", "{refused}");
        assert!(refused.to_string().contains("block at line 9"), "{refused}");
    }
    // Its own circuits, under whatever type routes them, still run; what ran is recorded.
    let workflow = signed(
        &document("", QASM_BODY).replace("quantum_circuit", "workflow"),
        &key(1),
    );
    let admitted = admit(workflow.as_bytes(), &circuits_only, &policy(), now()).unwrap();
    assert_eq!(
        admitted.work.into_iter().collect::<Vec<_>>(),
        [Work::QuantumCircuit]
    );
    // A job that trains and infers needs both.
    let mut trainer = TrustStore::new();
    let allow = vec!["training".into()];
    trainer.add("t", key(1).public_key(), allow, now()).unwrap();
    let both = format!("{TRAIN_BODY}```chimera-infer\nmodel: m\ninputs: [[1]]\n```\n");
    let both = signed(
        &document("", &both).replace("quantum_circuit", "workflow"),
        &key(1),
    );
    assert_eq!(reason(&both, &trainer, now()), "TYPE_NOT_ALLOWED");
    // A qasm3 block runs only as a hybrid_workflow's layer.
    let qasm3 = QASM_BODY.replace("```qasm", "```qasm3");
    let alone = signed(
        &document("", &qasm3).replace("quantum_circuit", "workflow"),
        &key(1),
    );
    assert_eq!(reason(&alone, &trusting(&[1]), now()), "TYPE_MISMATCH");
}

#[test]
fn created_at_may_be_at_most_five_minutes_ahead() {
    let trust = trusting(&[1]);
    let ok = signed_with("", QASM_BODY);
    let created: Timestamp = "2026-11-20T10:00:00Z".parse().unwrap();
    let at = |offset: i64| created + SignedDuration::from_secs(offset);
    assert_eq!(reason(&ok, &trust, at(-300)), "ADMITTED");
    assert_eq!(reason(&ok, &trust, at(-301)), "CREATED_IN_FUTURE");
}

#[test]
fn expired_jobs_are_refused() {
    let trust = trusting(&[1]);
    let doc = signed_with("expires_at: 2026-11-20T11:00:00Z\n", QASM_BODY);
    let expiry: Timestamp = "2026-11-20T11:00:00Z".parse().unwrap();
    assert_eq!(
        reason(&doc, &trust, expiry - SignedDuration::from_secs(1)),
        "ADMITTED"
    );
    assert_eq!(reason(&doc, &trust, expiry), "EXPIRED");
}

#[test]
fn python_blocks_are_refused_with_the_export_hint() {
    let trust = trusting(&[1]);
    let body = "## Code_Blocks\n```python\nfrom qiskit import QuantumCircuit\n```\n```qasm\nqreg q[1];\n```\n";
    let refusal = admit(signed_with("", body).as_bytes(), &trust, &policy(), now()).unwrap_err();
    assert_eq!(refusal.reason(), "PYTHON_BLOCK");
    let message = refusal.to_string();
    assert!(message.starts_with("line 9: a `python` block"), "{message}");
    assert!(message.contains("qiskit.qasm2.dumps"), "{message}");
    let qiskit = body.replace("```python", "```qiskit");
    assert_eq!(
        reason(&signed_with("", &qiskit), &trust, now()),
        "PYTHON_BLOCK"
    );
}

#[test]
fn a_job_with_nothing_to_run_names_what_it_found() {
    let trust = trusting(&[1]);
    let body = "## Code_Blocks\n```json\n{}\n```\n```\nplain\n```\n";
    let refusal = admit(signed_with("", body).as_bytes(), &trust, &policy(), now()).unwrap_err();
    assert_eq!(refusal.reason(), "NOTHING_TO_RUN");
    let message = refusal.to_string();
    assert!(message.contains("`json` at line 9"), "{message}");
    assert!(
        message.contains("an untagged block at line 12"),
        "{message}"
    );
    let empty = signed_with("", "## Intent\nnothing\n");
    assert_eq!(reason(&empty, &trust, now()), "NOTHING_TO_RUN");
}

#[test]
fn oversized_documents_are_refused_before_parsing() {
    let trust = trusting(&[1]);
    let text = document(
        "",
        &format!("## Intent\n{}\n{QASM_BODY}", "a".repeat(1 << 20)),
    );
    let big = chimera_maml::sign_document(text.as_bytes(), &key(1), 4 << 20)
        .unwrap()
        .text;
    assert_eq!(reason(&big, &trust, now()), "TOO_LARGE");
}

#[test]
fn the_trust_store_survives_a_save_and_a_load() {
    let dir = tempdir("store");
    let path = dir.path().join("trust.json");
    assert!(
        TrustStore::load(&path).unwrap().keys().is_empty(),
        "absent file: empty store"
    );

    let mut store = TrustStore::new();
    store
        .add(
            "alice",
            key(1).public_key(),
            vec!["quantum_circuit".into()],
            now(),
        )
        .unwrap();
    store
        .add("bob", key(2).public_key(), vec![ANY_TYPE.into()], now())
        .unwrap();
    store.revoke("bob", now()).unwrap();
    store.save(&path).unwrap();

    let loaded = TrustStore::load(&path).unwrap();
    let alice = loaded.get(key(1).public_key().id()).unwrap();
    assert_eq!(alice.name, "alice");
    assert!(alice.allows(Work::QuantumCircuit) && !alice.allows(Work::Training));
    assert!(!alice.is_admin());
    assert_eq!(alice.revoked_at, None);
    let bob = loaded.get(key(2).public_key().id()).unwrap();
    assert_eq!(bob.revoked_at, Some(now()));
    assert_eq!(
        reason(&signed(BELL, &key(2)), &loaded, now()),
        "REVOKED_KEY"
    );
    assert_eq!(reason(&signed(BELL, &key(1)), &loaded, now()), "ADMITTED");

    // A key id that does not match its key means the file was edited: refused, not trusted.
    let text = std::fs::read_to_string(&path).unwrap();
    let alice_id = key(1).public_key().id().to_string();
    let bob_id = key(2).public_key().id().to_string();
    std::fs::write(&path, text.replace(&alice_id, &bob_id)).unwrap();
    let error = TrustStore::load(&path).unwrap_err();
    assert!(matches!(error, TrustError::Malformed { .. }), "{error}");
}

#[test]
fn the_trust_store_refuses_ambiguity() {
    let mut store = trusting(&[1]);
    let taken = store
        .add("k1", key(2).public_key(), vec![ANY_TYPE.into()], now())
        .unwrap_err();
    assert!(matches!(taken, TrustError::NameTaken(_)), "{taken}");
    let twice = store
        .add("other", key(1).public_key(), vec![ANY_TYPE.into()], now())
        .unwrap_err();
    assert!(matches!(twice, TrustError::KeyTaken { .. }), "{twice}");
    let unnamed = store
        .add("a b", key(3).public_key(), vec![ANY_TYPE.into()], now())
        .unwrap_err();
    assert!(matches!(unnamed, TrustError::BadName), "{unnamed}");
    let nothing = store
        .add("c", key(3).public_key(), vec![], now())
        .unwrap_err();
    assert!(matches!(nothing, TrustError::NothingAllowed), "{nothing}");
    let unknown = store
        .add("c", key(3).public_key(), vec!["workflow".into()], now())
        .unwrap_err();
    assert!(
        matches!(unknown, TrustError::UnknownPermission(_)),
        "{unknown}"
    );
    let admin = store
        .add("op", key(3).public_key(), vec!["admin".into()], now())
        .unwrap();
    assert!(admin.is_admin() && !admin.allows(Work::QuantumCircuit));
    let missing = store.revoke("nobody", now()).unwrap_err();
    assert!(matches!(missing, TrustError::NoSuchKey(_)), "{missing}");
    // Revocation by id works as by name.
    let id = key(1).public_key().id().to_string();
    assert!(store.revoke(&id, now()).unwrap().revoked_at.is_some());
}

#[test]
fn key_files_round_trip_and_protect_the_secret() {
    let dir = tempdir("keys");
    let prefix = dir.path().join("alice");
    let secret = SecretKey::generate().unwrap();
    let files = write_key_pair(&secret, &prefix, false).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files.secret)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let read = SecretKey::read_file(&files.secret).unwrap();
    let public = PublicKey::read_file(&files.public).unwrap();
    assert_eq!(read.public_key(), secret.public_key());
    assert_eq!(public, secret.public_key());
    assert!(
        std::fs::read_to_string(&files.secret)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    assert!(
        std::fs::read_to_string(&files.public)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );

    // An existing pair is kept unless replacing is asked for.
    let exists = write_key_pair(&SecretKey::generate().unwrap(), &prefix, false);
    assert!(matches!(exists, Err(chimera_maml::KeyError::Exists { .. })));
    assert_eq!(
        PublicKey::read_file(&files.public).unwrap(),
        secret.public_key()
    );

    // The two files cannot be mistaken for each other.
    assert!(matches!(
        SecretKey::read_file(&files.public),
        Err(chimera_maml::KeyError::PublicNotSecret { .. })
    ));
    assert!(matches!(
        PublicKey::read_file(&files.secret),
        Err(chimera_maml::KeyError::SecretNotPublic { .. })
    ));
    // A prefix in a directory that does not exist is refused by naming the directory.
    let absent = dir.path().join("absent");
    let refused = write_key_pair(&secret, &absent.join("k"), false).unwrap_err();
    assert!(
        matches!(&refused, chimera_maml::KeyError::NoDirectory { dir, .. } if *dir == absent),
        "{refused}"
    );
    assert!(refused.to_string().contains("mkdir -p"), "{refused}");
    // A file that is not there is named, for either kind of key.
    let missing = dir.path().join("missing.key");
    for refused in [
        SecretKey::read_file(&missing).map(|_| ()),
        PublicKey::read_file(&missing).map(|_| ()),
    ] {
        let refused = refused.unwrap_err();
        assert!(
            matches!(&refused, chimera_maml::KeyError::Read { path, .. } if *path == missing),
            "{refused}"
        );
        assert!(refused.to_string().starts_with("cannot read "), "{refused}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&files.secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            SecretKey::read_file(&files.secret),
            Err(chimera_maml::KeyError::Exposed { mode: 0o644, .. })
        ));
    }
}

/// A fresh directory, removed when the test ends.
fn tempdir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("chimera-maml-{name}-"))
        .tempdir()
        .unwrap()
}

#[test]
fn refusals_carry_the_key_that_signed() {
    let refusal = admit(
        signed(BELL, &key(2)).as_bytes(),
        &trusting(&[1]),
        &policy(),
        now(),
    )
    .unwrap_err();
    assert_eq!(refusal, Refusal::UnknownKey(key(2).public_key().id()));
    assert!(
        refusal
            .to_string()
            .contains(&key(2).public_key().id().to_string())
    );
}
