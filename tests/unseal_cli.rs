//! The operator's unseal key from the command line: `chimera unseal-key`, `chimera serve`'s
//! `--unseal-key-*` and `chimera admin rewrap`.

use std::os::unix::fs::PermissionsExt;

// Shared with the other tests, which use more of them.
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "common/served.rs"]
mod served;
use common::{chimera, failure, files_under, ok, work_dir};
use served::Served;

/// `chimera unseal-key new`: a key file its owner's alone, named by its id, never overwritten.
#[test]
fn an_unseal_key_is_made_once_and_never_overwritten() {
    let dir = work_dir("unseal-key");
    let path = dir.join("unseal.key");
    let out = ok(chimera(&[
        "unseal-key",
        "new",
        "-o",
        path.to_str().unwrap(),
    ]));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("made the unseal key") && said.contains("(id "),
        "{said}"
    );
    let key = std::fs::read(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!((key.len(), mode & 0o777), (32, 0o600));
    let again = failure(&chimera(&[
        "unseal-key",
        "new",
        "-o",
        path.to_str().unwrap(),
    ]));
    assert!(again.contains("already exists"), "{again}");
    assert_eq!(std::fs::read(&path).unwrap(), key, "the first key is kept");
}

/// `chimera serve` seals a new data directory under the key it is given, refuses another key
/// (naming both) before changing anything, and after `chimera admin rewrap` starts with the new
/// key only, as the same engine (its identity key opens).
#[test]
fn an_engine_starts_with_its_unseal_key_only_and_a_rewrap_moves_it_to_a_new_one() {
    let dir = work_dir("unseal-rewrap");
    let data = dir.join("data");
    let (old, new) = (dir.join("old.key"), dir.join("new.key"));
    for key in [&old, &new] {
        ok(chimera(&["unseal-key", "new", "-o", key.to_str().unwrap()]));
    }
    let (old, new) = (old.to_str().unwrap(), new.to_str().unwrap());
    let served = Served::start_with(&data, &["--unseal-key-file", old]);
    let engine = std::fs::read(data.join("engine.pub")).unwrap();
    assert!(data.join("keyring.json").exists() && !data.join("engine.key").exists());
    served.stop();

    let serve_with = |flag: &str, key: &str| {
        chimera(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-addr",
            "off",
            flag,
            key,
            "--data-dir",
            data.to_str().unwrap(),
        ])
    };
    let before = files_under(&data);
    let refused = failure(&serve_with("--unseal-key-file", new));
    assert!(refused.contains("sealed under the unseal key"), "{refused}");
    let failing = failure(&serve_with(
        "--unseal-key-command",
        "echo 'kms: access denied' >&2; false",
    ));
    assert!(failing.contains("kms: access denied"), "{failing}");
    assert_eq!(files_under(&data), before, "refusals change nothing");

    let rewrapped = ok(chimera(&[
        "admin",
        "rewrap",
        "--data-dir",
        data.to_str().unwrap(),
        "--unseal-key-file",
        old,
        "--new-unseal-key-file",
        new,
    ]));
    let said = String::from_utf8_lossy(&rewrapped.stdout);
    assert!(said.contains("rewrapped under the unseal key"), "{said}");
    let refused = failure(&serve_with("--unseal-key-file", old));
    assert!(refused.contains("sealed under the unseal key"), "{refused}");
    let served = Served::start_with(&data, &["--unseal-key-file", new]);
    assert_eq!(std::fs::read(data.join("engine.pub")).unwrap(), engine);
    served.stop();
}
