//! Records the commit `chimera` is built from (`CHIMERA_COMMIT`, for `chimera bench`'s report):
//! `git rev-parse --short HEAD`, with "-modified" when the working tree differs from it, or
//! "unknown" outside a git checkout.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    let commit = match git(&["rev-parse", "--short", "HEAD"]) {
        Some(hash)
            if git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty()) =>
        {
            format!("{hash}-modified")
        }
        Some(hash) => hash,
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=CHIMERA_COMMIT={commit}");
    // A new commit, a checkout, and edits to tracked files change what is recorded.
    for path in [".git/HEAD", ".git/index", ".git/refs", ".git/packed-refs"] {
        println!("cargo:rerun-if-changed={path}");
    }
}
