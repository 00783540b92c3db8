//! What the CLI tests share: running the binary and reading how a run ended.

use std::process::{Command, Output};

pub fn chimera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chimera"))
        .args(args)
        .output()
        .expect("run chimera")
}

/// `out`, after asserting that the run succeeded (its stderr shown otherwise).
pub fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The run's stderr, after asserting that it failed (its stdout shown otherwise).
pub fn failure(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure, got: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}
