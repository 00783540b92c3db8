//! `chimera unseal-key`: the operator's unseal key made from the command line.

use std::os::unix::fs::PermissionsExt;

// Shared with the other tests, which use more of it.
#[allow(dead_code)]
mod common;
use common::{chimera, failure, ok, work_dir};

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
