//! `chimera keygen`, `sign` and `verify` end to end: the bundled example jobs sign and verify with
//! a key made in the test, and every failure exits non-zero saying what failed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

// Shared with the other tests, which use more of it.
#[allow(dead_code)]
mod common;
use common::{chimera, failure, ok, repo, work_dir};

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn sign(source: &str, secret: &Path, out: &Path) -> Output {
    chimera(&["sign", source, "--key", s(secret), "-o", s(out)])
}

fn keygen(dir: &Path, name: &str) -> PathBuf {
    let prefix = dir.join(name);
    let out = ok(chimera(&["keygen", "--out", s(&prefix)]));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("key id  "));
    prefix
}

#[test]
fn the_examples_sign_and_verify_with_a_fresh_key() {
    let dir = work_dir("examples");
    let prefix = keygen(&dir, "alice");
    let (secret, public) = (prefix.with_extension("key"), prefix.with_extension("pub"));
    for example in ["bell", "qft"] {
        let source = repo(&format!("examples/{example}.maml.md"));
        let signed = dir.join(format!("{example}.signed.md"));
        ok(sign(s(&source), &secret, &signed));
        let out = ok(chimera(&["verify", s(&signed), "--pub", s(&public)]));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("valid, signed by ML-DSA-65 key"), "{said}");
        assert!(said.contains("(quantum_circuit), blocks: qasm"), "{said}");

        let out = ok(chimera(&[
            "verify",
            s(&signed),
            "--pub",
            s(&public),
            "--json",
        ]));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["valid"], true);
        assert_eq!(json["type"], "quantum_circuit");
    }
}

#[test]
fn failures_exit_non_zero_and_say_what_failed() {
    let dir = work_dir("failures");
    let alice = keygen(&dir, "alice");
    let mallory = keygen(&dir, "mallory");
    let source = repo("examples/bell.maml.md");
    let signed = dir.join("bell.signed.md");
    ok(sign(s(&source), &alice.with_extension("key"), &signed));
    let alice_pub = alice.with_extension("pub");

    // Signed by another key than the one given.
    let said = failure(&chimera(&[
        "verify",
        s(&signed),
        "--pub",
        s(&mallory.with_extension("pub")),
    ]));
    assert!(said.contains("INVALID (UNKNOWN_KEY)"), "{said}");

    // Changed after signing.
    let text = std::fs::read_to_string(&signed).unwrap();
    let tampered = dir.join("tampered.md");
    std::fs::write(&tampered, text.replace("shots: 4096", "shots: 4097")).unwrap();
    let said = failure(&chimera(&["verify", s(&tampered), "--pub", s(&alice_pub)]));
    assert!(
        said.contains("INVALID (DIGEST_MISMATCH): the document changed after it was signed"),
        "{said}"
    );
    let out = chimera(&["verify", s(&tampered), "--pub", s(&alice_pub), "--json"]);
    assert!(!out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (json["valid"].as_bool(), json["reason"].as_str()),
        (Some(false), Some("DIGEST_MISMATCH"))
    );

    // Not signed at all.
    let said = failure(&chimera(&["verify", s(&source), "--pub", s(&alice_pub)]));
    assert!(said.contains("INVALID (UNSIGNED)"), "{said}");

    // Keys given the wrong way round, and a key pair that exists already.
    let said = failure(&chimera(&["sign", s(&source), "--key", s(&alice_pub)]));
    assert!(said.contains("holds a public key"), "{said}");
    let said = failure(&chimera(&["keygen", "--out", s(&alice)]));
    assert!(
        said.contains("already exists") && said.contains("--force"),
        "{said}"
    );

    // A malformed document cannot be signed, and the error names its line.
    let broken = dir.join("broken.md");
    std::fs::write(&broken, "---\nid: x\n---\n").unwrap();
    let said = failure(&chimera(&[
        "sign",
        s(&broken),
        "--key",
        s(&alice.with_extension("key")),
    ]));
    assert!(
        said.contains("cannot be signed")
            && said.contains("line 1:")
            && said.contains("maml_version"),
        "{said}"
    );
}

#[test]
fn sign_reads_standard_input_and_writes_standard_output() {
    let dir = work_dir("pipes");
    let alice = keygen(&dir, "alice");
    let source = std::fs::read(repo("examples/qft.maml.md")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chimera"))
        .args(["sign", "-", "--key", s(&alice.with_extension("key"))])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&source).unwrap();
    let out = ok(child.wait_with_output().unwrap());
    assert!(out.stdout.starts_with(&source));
    let signed = dir.join("qft.signed.md");
    std::fs::write(&signed, &out.stdout).unwrap();
    ok(chimera(&[
        "verify",
        s(&signed),
        "--pub",
        s(&alice.with_extension("pub")),
    ]));
}

/// The Python interpreter for the gateway example: `$CHIMERA_PYTHON` (then it must work), else
/// `python3` if it has dilithium-py.
fn python_with_dilithium() -> Result<String, String> {
    if let Ok(python) = std::env::var("CHIMERA_PYTHON") {
        return Ok(python);
    }
    let probe = Command::new("python3")
        .args(["-c", "import dilithium_py"])
        .output();
    match probe {
        Ok(out) if out.status.success() => Ok("python3".into()),
        _ => Err("python3 with dilithium-py not found (pip install dilithium-py==1.5.1, or set CHIMERA_PYTHON)".into()),
    }
}

#[test]
fn a_python_gateway_and_chimera_accept_each_others_signatures() {
    let python = match python_with_dilithium() {
        Ok(python) => python,
        Err(why) => {
            println!("SKIPPED: {why}");
            return;
        }
    };
    let gateway = repo("tests/interop/dilithium_gateway.py");
    let run_python = |args: &[&str]| {
        Command::new(&python)
            .arg(&gateway)
            .args(args)
            .output()
            .expect("run python")
    };
    let dir = work_dir("python");
    let alice = keygen(&dir, "alice");
    let (secret, public) = (alice.with_extension("key"), alice.with_extension("pub"));
    let source = repo("examples/qft.maml.md");

    // Signed in Python (hedged, so unlike chimera's own signature), verified by chimera.
    let by_python = dir.join("qft.python.md");
    ok(run_python(&[
        "sign",
        s(&source),
        "--key",
        s(&secret),
        "-o",
        s(&by_python),
    ]));
    ok(chimera(&["verify", s(&by_python), "--pub", s(&public)]));
    let by_chimera = dir.join("qft.chimera.md");
    ok(sign(s(&source), &secret, &by_chimera));
    assert_ne!(
        std::fs::read(&by_python).unwrap(),
        std::fs::read(&by_chimera).unwrap()
    );

    // Signed by chimera, verified in Python; and a tampered copy refused there too.
    ok(run_python(&["verify", s(&by_chimera), "--pub", s(&public)]));
    let tampered = dir.join("tampered.md");
    let text = std::fs::read_to_string(&by_chimera).unwrap();
    std::fs::write(&tampered, text.replace("shots: 1024", "shots: 1025")).unwrap();
    assert!(
        !run_python(&["verify", s(&tampered), "--pub", s(&public)])
            .status
            .success()
    );

    // Issue 34: a document that starts with a byte-order mark is signed as it is, by both: each
    // accepts the other's signature, and the mark stays in the signed copy.
    let with_mark = dir.join("qft.bom.md");
    let source_text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&with_mark, format!("\u{feff}{source_text}")).unwrap();
    let (bom_python, bom_chimera) = (dir.join("bom.python.md"), dir.join("bom.chimera.md"));
    ok(run_python(&[
        "sign",
        s(&with_mark),
        "--key",
        s(&secret),
        "-o",
        s(&bom_python),
    ]));
    ok(sign(s(&with_mark), &secret, &bom_chimera));
    for signed in [&bom_python, &bom_chimera] {
        assert!(
            std::fs::read(signed).unwrap().starts_with(b"\xef\xbb\xbf"),
            "{signed:?}"
        );
        ok(chimera(&["verify", s(signed), "--pub", s(&public)]));
        ok(run_python(&["verify", s(signed), "--pub", s(&public)]));
    }

    // A request proof made in Python proves the request to the engine's check.
    let out = ok(run_python(&[
        "proof",
        "Get",
        "urn:uuid:theirs",
        "--key",
        s(&secret),
    ]));
    let said = String::from_utf8(out.stdout).unwrap();
    let header = |name: &str| {
        said.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(str::to_owned)
    };
    let values = chimera_maml::PROOF_HEADERS.map(header);
    let proof =
        chimera_maml::RequestProof::from_header_values(values.each_ref().map(Option::as_deref))
            .unwrap()
            .expect("three headers");
    let mut trust = chimera_maml::TrustStore::new();
    let key = chimera_maml::PublicKey::read_file(&public).unwrap();
    trust
        .add("alice", key, vec!["*".into()], jiff::Timestamp::now())
        .unwrap();
    let now = jiff::Timestamp::now();
    let proved = proof.check(&trust, "Get", "urn:uuid:theirs", now).unwrap();
    assert_eq!(proved.name, "alice");
    assert!(
        proof
            .check(&trust, "Cancel", "urn:uuid:theirs", now)
            .is_err()
    );
}
