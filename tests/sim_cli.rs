//! `chimera sim` end to end: the binary as a user runs it, its output, its files and its errors.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

// Shared with the other tests, which use more of it.
#[allow(dead_code)]
mod common;
use common::{chimera, failure, ok, repo, work_dir};

fn stdout_json(out: Output) -> serde_json::Value {
    serde_json::from_slice(&ok(out).stdout).expect("JSON on stdout")
}

#[test]
fn with_no_file_it_runs_the_bundled_ghz_example() {
    let out = chimera(&["sim", "--seed", "3"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("examples/ghz.qasm (bundled) (5 qubits"),
        "{text}"
    );
    assert!(text.contains("11111") && text.contains("00000"), "{text}");
    // `auto`: the GPU where one is usable, else the CPU with the reason.
    assert!(
        text.contains("backend   cuda (")
            || text.contains("backend   cpu (") && text.contains("auto chose the CPU: "),
        "{text}"
    );
}

#[test]
fn output_to_a_pipe_closed_early_ends_it_without_a_panic() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chimera"))
        .args(["sim", "--seed", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // As `chimera sim | head -0` would: the reader is gone before anything is printed.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Ended by the closed pipe's SIGPIPE, as Unix tools end: not a panic's exit status 101, nor
    // an error's 1.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        out.status
    );
}

#[test]
fn json_reports_counts_expectations_backend_and_timings() {
    let bell = repo("examples/bell.qasm");
    let args = [
        "sim",
        bell.to_str().unwrap(),
        "--json",
        "--backend",
        "cpu",
        "--seed",
        "5",
        "--shots",
        "300",
        "--observable",
        "Z0 Z1",
        "--observable",
        "X0",
    ];
    let j = stdout_json(chimera(&args));
    let counts = j["counts"].as_object().unwrap();
    assert!(counts.keys().all(|k| k == "00" || k == "11"), "{counts:?}");
    assert_eq!(
        counts.values().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        300
    );
    assert!((j["expectation_values"][0]["value"].as_f64().unwrap() - 1.0).abs() < 1e-6);
    assert!(j["expectation_values"][1]["value"].as_f64().unwrap().abs() < 1e-6);
    assert_eq!(j["expectation_values"][0]["observable"], "Z0 Z1");
    assert!(j["backend"].as_str().unwrap().starts_with("cpu"));
    assert_eq!(j["precision"], "single");
    assert_eq!(j["seed"], 5);
    // Each timing is reported, and they nest: allocating the state is part of simulating it, and
    // simulating took some time.
    let ms = |t: &str| {
        j["timings_ms"][t]
            .as_f64()
            .unwrap_or_else(|| panic!("no {t}: {j}"))
    };
    for t in ["parse", "sample", "expectation"] {
        assert!(ms(t).is_finite(), "{t}: {j}");
    }
    assert!(
        ms("simulate") > 0.0 && ms("allocate") <= ms("simulate"),
        "{j}"
    );
    assert_eq!(
        j["counts"],
        stdout_json(chimera(&args))["counts"],
        "same seed, same counts"
    );
}

#[test]
fn statevector_files_are_numpy_in_the_chosen_precision() {
    let qft = repo("heads/quantum/tests/data/conformance/qft_8.qasm");
    let reference: Vec<C64> = read(&repo("heads/quantum/tests/data/conformance/qft_8.sv.npy"));
    let dir = work_dir("statevectors");
    for (precision, dtype) in [("double", "<c16"), ("single", "<c8")] {
        let path = dir.join(format!("qft8-{precision}.npy"));
        let out = chimera(&[
            "sim",
            qft.to_str().unwrap(),
            "--precision",
            precision,
            "--statevector",
            path.to_str().unwrap(),
            "--shots",
            "0",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::read(&path).unwrap();
        let header = String::from_utf8_lossy(&bytes[..128]);
        assert!(
            header.contains(dtype) && header.contains("(256,)"),
            "{header}"
        );
        let psi: Vec<C64> = if precision == "double" {
            read(&path)
        } else {
            let v: Vec<num_complex::Complex<f32>> =
                npyz::NpyFile::new(&bytes[..]).unwrap().into_vec().unwrap();
            v.iter()
                .map(|c| C64::new(c.re as f64, c.im as f64))
                .collect()
        };
        let inner: C64 = reference.iter().zip(&psi).map(|(a, b)| a.conj() * b).sum();
        assert!(
            inner.norm_sqr() > 1.0 - 1e-4,
            "{precision}: fidelity {}",
            inner.norm_sqr()
        );
    }
}

type C64 = num_complex::Complex<f64>;

fn read(path: &Path) -> Vec<C64> {
    npyz::NpyFile::new(&std::fs::read(path).unwrap()[..])
        .unwrap()
        .into_vec()
        .unwrap()
}

#[test]
fn standard_input_is_read_with_a_dash() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chimera"))
        .args(["sim", "-", "--json", "--shots", "10"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"OPENQASM 2.0;\nqreg q[2];\nU(pi,0,pi) q[1];")
        .unwrap();
    let j = stdout_json(child.wait_with_output().unwrap());
    assert_eq!(j["counts"]["10"], 10);
    assert_eq!(j["circuit"], "<stdin>");
}

#[test]
fn mistakes_are_reported_with_what_where_and_what_to_do() {
    let e = failure(&chimera(&["sim", "/no/such/file.qasm"]));
    assert!(e.contains("cannot read /no/such/file.qasm"), "{e}");

    let dir = work_dir("errors");
    let bad = dir.join("bad.qasm");
    std::fs::write(
        &bad,
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\nfrob q[0];\n",
    )
    .unwrap();
    let e = failure(&chimera(&["sim", bad.to_str().unwrap()]));
    assert!(e.contains("line 4, column 1: unknown gate 'frob'"), "{e}");

    // Without a usable GPU, `--backend cuda` fails and says why and what to do instead.
    let out = chimera(&["sim", "--backend", "cuda"]);
    if out.status.success() {
        assert!(String::from_utf8_lossy(&out.stdout).contains("backend   cuda ("));
    } else {
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            e.contains("--backend cuda: no usable GPU; --backend cpu (or auto) runs on the CPU: "),
            "{e}"
        );
        assert!(e.contains("backend 'cuda' is not available: "), "{e}");
    }

    let e = failure(&chimera(&["sim", "--observable", "Q1"]));
    assert!(e.contains("observable \"Q1\", at character 1"), "{e}");

    let e = failure(&chimera(&["sim", "--observable", "Z9"]));
    assert!(
        e.contains("names qubit 9, but the circuit has 5 qubits"),
        "{e}"
    );

    let e = failure(&chimera(&["sim", "--threads", "0"]));
    assert!(e.contains("--threads must be at least 1"), "{e}");

    let big = dir.join("big.qasm");
    std::fs::write(&big, "OPENQASM 2.0;\nqreg q[50];\n").unwrap();
    let e = failure(&chimera(&[
        "sim",
        big.to_str().unwrap(),
        "--precision",
        "double",
    ]));
    assert!(e.contains("50 qubits") && e.contains("16.0 PiB"), "{e}");
}

/// `chimera bench` writes its report: the table, the raw numbers, two well-formed SVG plots with a
/// line per circuit kind and simulator, the circuits, and what did not run and why.
#[test]
fn bench_writes_a_report_with_tables_json_and_plots() {
    let dir = work_dir("bench");
    let out_dir = dir.join("report");
    let out = ok(chimera(&[
        "bench",
        "--qubits",
        "8,4",
        "--backends",
        "cpu",
        "--threads",
        "2",
        "--repeat",
        "1",
        "--python",
        "none",
        "--out",
        out_dir.to_str().unwrap(),
    ]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("report.md (6 timings"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap())
            .unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "3 kinds × 2 widths on one backend: {rows:?}");
    for row in rows {
        assert_eq!(row["simulator"], "chimera cpu");
        assert!(row["seconds"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["gb_per_s"].as_f64().unwrap() > 0.0, "{row}");
    }
    let label = &json["label"];
    assert!(label["commit"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(label["devices"][0].as_str().unwrap().starts_with("cpu ("));
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    for expected in [
        "| circuit | qubits | gates | chimera cpu |",
        "| qft | 4 |",
        "| random | 8 |",
        "![time per circuit](time.svg)",
    ] {
        assert!(report.contains(expected), "{expected} not in\n{report}");
    }
    for plot in ["time.svg", "bandwidth.svg"] {
        let svg = std::fs::read_to_string(out_dir.join(plot)).unwrap();
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 3, "{plot}");
        for kind in [
            "ghz · chimera cpu",
            "qft · chimera cpu",
            "random · chimera cpu",
        ] {
            assert!(svg.contains(kind), "{plot} has no line {kind}");
        }
    }
    let ghz = std::fs::read_to_string(out_dir.join("circuits/ghz_8.qasm")).unwrap();
    assert!(ghz.contains("cx q[6],q[7];"), "{ghz}");

    // chimera's CPU backend at 4 qubits with the anchors of `python`: the report.
    let report_with = |python: &str| {
        let out = ok(chimera(&[
            "bench",
            "--qubits",
            "4",
            "--backends",
            "cpu",
            "--repeat",
            "1",
            "--python",
            python,
            "--out",
            out_dir.to_str().unwrap(),
        ]));
        assert!(out.status.success());
        std::fs::read_to_string(out_dir.join("report.md")).unwrap()
    };
    // Each of qsim, Aer and cuStateVec is timed (a column of its own) or the report says why not
    // (in CI, whose Python has none of them, every one says why).
    let python = std::env::var("CHIMERA_PYTHON").unwrap_or_else(|_| "python3".into());
    let report = report_with(&python);
    assert!(!report.contains("the anchor script failed"), "{report}");
    for anchor in ["qsim", "Aer", "cuStateVec"] {
        let timed = report.contains(&format!(" | {anchor} |"));
        let said = report.contains(&format!("{anchor}: cannot run with {python} ("));
        assert!(timed != said, "{anchor}: timed or why not, once\n{report}");
    }
    // A Python that is not there: chimera's numbers still come, and the report says so.
    let report = report_with("/nonexistent/python3");
    assert!(
        report.contains("qsim, Aer and cuStateVec: cannot run /nonexistent/python3"),
        "{report}"
    );
    let err = failure(&chimera(&[
        "bench",
        "--qubits",
        "40",
        "--out",
        out_dir.to_str().unwrap(),
    ]));
    assert!(
        err.contains("--qubits 40: each count must be 2 to 34"),
        "{err}"
    );
}
