//! The Python package (`python/`, `chimera-engine`): built into `$CHIMERA_PYTHON`'s virtual
//! environment with maturin, then its own tests (pytest, `python/tests`: its client against a
//! `chimera serve` of this build) and PennyLane's device test suite, unmodified, analytic and
//! with 10,000 shots.
//!
//! Needs a virtual environment's Python with maturin, pytest, pytest-mock, flaky, qiskit,
//! qiskit-aer and pennylane (`.ci/run` makes one). Without it each test prints SKIPPED and why,
//! unless `CHIMERA_REQUIRE_PYTHON_PACKAGE=1` (as in CI), where it fails instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const MODULES: &str = "maturin, pytest, pytest_mock, flaky, qiskit, qiskit_aer, pennylane";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The virtual environment's Python with the package built into it, or why there is none.
fn python() -> Result<&'static Path, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let python = std::env::var("CHIMERA_PYTHON").map_err(|_| {
            format!("no $CHIMERA_PYTHON (a virtual environment's python with {MODULES})")
        })?;
        let probe = Command::new(&python)
            .args(["-c", &format!("import sys, {MODULES}; print(sys.prefix)")])
            .output()
            .map_err(|e| format!("cannot run {python}: {e}"))?;
        if !probe.status.success() {
            return Err(format!(
                "{python} lacks one of {MODULES}: {}",
                String::from_utf8_lossy(&probe.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ));
        }
        let prefix = String::from_utf8_lossy(&probe.stdout).trim().to_string();
        // Its own target directory: `cargo test` holds the workspace's while tests run.
        let out = Command::new(Path::new(&prefix).join("bin/maturin"))
            .args(["develop", "--quiet"])
            .current_dir(repo().join("python"))
            .env("VIRTUAL_ENV", &prefix)
            .env("CARGO_TARGET_DIR", repo().join("target/python"))
            .output()
            .expect("run maturin");
        assert!(
            out.status.success(),
            "maturin develop failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(PathBuf::from(python))
    });
    built.as_deref().map_err(Clone::clone)
}

/// Runs `args` with the built package's Python first on PATH, or says why not.
fn run_python_tool(args: &[&str]) {
    let python = match python() {
        Ok(python) => python,
        Err(why) if std::env::var_os("CHIMERA_REQUIRE_PYTHON_PACKAGE").is_some() => {
            panic!("CHIMERA_REQUIRE_PYTHON_PACKAGE is set but {why}")
        }
        Err(why) => {
            println!("SKIPPED: {why}");
            return;
        }
    };
    let bin = python.parent().expect("python lives in a bin directory");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(bin.join(args[0]))
        .args(&args[1..])
        .current_dir(repo().join("python"))
        .env("PATH", path)
        // The engine python/tests/test_client.py serves: the one these tests run (README).
        .env(
            "CHIMERA_BINARY",
            std::env::var_os("CHIMERA_TEST_BINARY")
                .unwrap_or_else(|| env!("CARGO_BIN_EXE_chimera").into()),
        )
        .output()
        .expect("run the Python tool");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // pytest's summary line, kept in the test's output.
    println!("{}", stdout.lines().last().unwrap_or(""));
}

#[test]
fn the_python_package_passes_its_own_tests() {
    run_python_tool(&[
        "python",
        "-m",
        "pytest",
        "tests",
        "-q",
        "-p",
        "no:cacheprovider",
    ]);
}

#[test]
fn pennylanes_device_tests_pass_analytic() {
    run_python_tool(&[
        "pl-device-test",
        "--device",
        "chimera.qubit",
        "--shots=None",
        "--skip-ops",
        "-q",
        "-p",
        "no:cacheprovider",
    ]);
}

#[test]
fn pennylanes_device_tests_pass_with_shots() {
    run_python_tool(&[
        "pl-device-test",
        "--device",
        "chimera.qubit",
        "--shots=10000",
        "--skip-ops",
        "-q",
        "-p",
        "no:cacheprovider",
    ]);
}
