//! Every way the OpenQASM front end refuses a program: the message names what is wrong, and the
//! line and column point at it.

use std::path::Path;

use chimera_circuit::qasm;

const H: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\n";

/// (program, line, column, part of the message)
fn cases() -> Vec<(String, usize, usize, &'static str)> {
    let p = |body: &str| format!("{H}{body}");
    vec![
        // Lexical errors.
        (
            p("qreg q[1];\n/* never closed"),
            4,
            1,
            "unterminated comment",
        ),
        (
            "OPENQASM 2.0;\ninclude \"qelib1.inc;\n".into(),
            2,
            9,
            "unterminated string",
        ),
        (p("qreg q[1];\nh q[0] @;"), 4, 8, "unexpected character '@'"),
        (p("qreg q[99999999999999999999999];"), 3, 8, "too large"),
        // The header.
        (
            "OPENQASM 3.0;\nqubit q;".into(),
            1,
            10,
            "OpenQASM 3 is not supported by this front end: it reads OpenQASM 2.0 circuits, and \
             OpenQASM 3 only as the parameterised circuit of a hybrid model",
        ),
        ("OPENQASM;".into(), 1, 9, "expected a version number"),
        (
            "OPENQASM 2.0\nqreg q[1];".into(),
            2,
            1,
            "expected ';' after the OPENQASM version",
        ),
        // Statements.
        (p("[;"), 3, 1, "expected a statement"),
        (p("include qelib1;"), 3, 9, "expected a file name in quotes"),
        (p("qreg q;"), 3, 7, "expected '['"),
        (p("qreg q[1.5];"), 3, 8, "expected a register size"),
        (
            p("qreg q[2];\nopaque magic q;"),
            4,
            1,
            "opaque gates are not supported",
        ),
        (
            p("qreg q[1];\ncreg c[1];\nmeasure q[0] c[0];"),
            5,
            14,
            "expected '->'",
        ),
        (
            p("qreg q[1];\ncreg c[1];\nif c == 1) x q[0];"),
            5,
            4,
            "expected '(' after if",
        ),
        (
            p("qreg q[1];\ncreg c[1];\nif (c = 1) x q[0];"),
            5,
            7,
            "unexpected character '='",
        ),
        (
            p("qreg q[1];\ncreg c[1];\nif (c == x) x q[0];"),
            5,
            10,
            "expected the value to compare with",
        ),
        (
            p("qreg q[1];\ncreg c[1];\nif (c == 1) barrier q;"),
            5,
            13,
            "only a gate, measure or reset may follow",
        ),
        (
            p("qreg q[1];\nx q[0]"),
            4,
            7,
            "expected ';' after the arguments of 'x'",
        ),
        // Gate definitions.
        (p("gate (a) q { }"), 3, 6, "expected a gate name"),
        (p("gate g(a q { }"), 3, 10, "expected ')'"),
        (p("gate g q { x q;"), 3, 16, "body is not closed"),
        (
            p("gate g q { measure q -> c; }"),
            3,
            12,
            "not allowed inside a gate body",
        ),
        (p("gate g q { x q[0]; }"), 3, 14, "plain names"),
        (p("gate g(a, a) q { }"), 3, 1, "names parameter 'a' twice"),
        (p("gate g q, q { }"), 3, 1, "names qubit argument 'q' twice"),
        (
            p("gate g q { }\ngate g q { }"),
            4,
            1,
            "gate 'g' is already defined",
        ),
        (
            p("gate U(a, b, c) q { }"),
            3,
            1,
            "gate 'U' is already defined",
        ),
        (p("gate g q { frob q; }"), 3, 12, "unknown gate 'frob'"),
        (
            p("gate g q { rx q; }"),
            3,
            12,
            "takes 1 parameter(s), 0 given",
        ),
        (
            p("gate g(a) q { rx(b) q; }"),
            3,
            18,
            "unknown parameter 'b'",
        ),
        (
            p("gate g q { x r; }"),
            3,
            14,
            "'r' is not a qubit argument of gate 'g'",
        ),
        (
            p("gate g a, b { cx a, a; }"),
            3,
            15,
            "qubit 'a' is used twice",
        ),
        // Expressions.
        (
            p("qreg q[1];\nrx(foo(1)) q[0];"),
            4,
            4,
            "unknown function 'foo'",
        ),
        (
            p("qreg q[1];\nrx(*) q[0];"),
            4,
            4,
            "expected a number, 'pi', a parameter or '('",
        ),
        (p("qreg q[1];\nrx((1) q[0];"), 4, 8, "expected ')'"),
        (
            p("qreg q[1];\nrx(theta) q[0];"),
            4,
            4,
            "unknown parameter 'theta'",
        ),
        (
            p("qreg q[1];\nrx(ln(0)) q[0];"),
            4,
            1,
            "not a finite number",
        ),
        (p("qreg q[1];\nrx(1/0) q[0];"), 4, 1, "not a finite number"),
        (
            p(&format!(
                "qreg q[1];\nrx({}1{}) q[0];",
                "(".repeat(300),
                ")".repeat(300)
            )),
            4,
            204,
            "nested more than",
        ),
        // Names and operands.
        (
            p("include \"other.inc\";"),
            3,
            1,
            "only \"qelib1.inc\" is built in",
        ),
        (
            p("qreg q[1];\nqreg q[2];"),
            4,
            1,
            "register 'q' is already declared",
        ),
        (p("qreg q[0];"), 3, 1, "has size 0"),
        (p("qreg q[5000];"), 3, 1, "more than 4096 qubits"),
        (
            "OPENQASM 2.0;\nqreg q[1];\nh q[0];".into(),
            3,
            1,
            "add 'include \"qelib1.inc\";'",
        ),
        (p("qreg q[1];\nfrob q[0];"), 4, 1, "unknown gate 'frob'"),
        (
            p("qreg q[2];\ncx q[0];"),
            4,
            1,
            "acts on 2 qubit(s), 1 given",
        ),
        (
            p("qreg q[1];\nrx(1, 2) q[0];"),
            4,
            1,
            "takes 1 parameter(s), 2 given",
        ),
        (p("qreg q[1];\nx r[0];"), 4, 3, "unknown register 'r'"),
        (
            p("qreg q[1];\ncreg c[1];\nx c[0];"),
            5,
            3,
            "'c' is not a quantum register",
        ),
        (
            p("qreg q[1];\ncreg c[1];\nmeasure q[0] -> q[0];"),
            5,
            17,
            "'q' is not a classical register",
        ),
        (
            p("qreg q[2];\nx q[2];"),
            4,
            3,
            "index 2 is out of range for register 'q' of size 2",
        ),
        (
            p("qreg a[2];\nqreg b[3];\ncx a, b;"),
            5,
            7,
            "registers of different sizes",
        ),
        (
            p("qreg q[2];\ncx q[1], q[1];"),
            4,
            10,
            "qubit q[1] is used twice in 'cx'",
        ),
        (
            p("qreg q[2];\ncreg c[1];\nmeasure q -> c;"),
            5,
            1,
            "two registers of the same size",
        ),
        (
            p("qreg q[2];\ncreg c[2];\nmeasure q[0] -> c;"),
            5,
            1,
            "a qubit and a bit",
        ),
        (p("qreg q[1];\nif (q == 1) x q[0];"), 4, 1, "'q' is not one"),
    ]
}

#[test]
fn every_error_names_its_line_column_and_cause() {
    for (source, line, column, needle) in cases() {
        let err = qasm::parse(&source).expect_err(&format!("accepted:\n{source}"));
        assert!(
            err.message.contains(needle),
            "for\n{source}\nexpected a message with {needle:?}, got: {err}"
        );
        assert_eq!(
            (err.line, err.column),
            (line, column),
            "position of {needle:?} in\n{source}\n({err})"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("line {line}, column {column}: "))
        );
    }
}

#[test]
fn expansion_past_the_operation_limit_is_refused() {
    // Each level doubles the count: 2^26 gates is over the limit.
    let mut src = format!("{H}qreg q[1];\ngate g0 a {{ x a; x a; }}\n");
    for i in 1..=25 {
        src.push_str(&format!("gate g{i} a {{ g{} a; g{} a; }}\n", i - 1, i - 1));
    }
    src.push_str("g25 q[0];\n");
    let err = qasm::parse(&src).unwrap_err();
    assert!(err.message.contains("more than"), "{err}");
    assert_eq!(err.line, 30);
}

/// A chain of gate definitions, each calling the one before: `g{n-1}` is `n` levels deep.
fn gate_chain(n: usize) -> String {
    let mut src = format!("{H}qreg q[1];\ngate g0 a {{ x a; }}\n");
    for i in 1..n {
        src.push_str(&format!("gate g{i} a {{ g{} a; }}\n", i - 1));
    }
    src.push_str(&format!("g{} q[0];\n", n - 1));
    src
}

#[test]
fn definitions_nested_past_the_limit_are_refused_before_the_stack_runs_out() {
    // A thread with a small stack: 20,000 levels (500 KB of source) used to overflow even the
    // main thread's 8 MiB and abort the process.
    let limit = qasm::MAX_GATE_NESTING;
    std::thread::Builder::new()
        .stack_size(512 << 10)
        .spawn(move || {
            let deep = 20_000;
            let err = qasm::parse(&gate_chain(deep)).unwrap_err();
            assert!(err.message.contains("nested more than"), "{err}");
            // The call one level too many: in the body of g{deep - limit}, on its line.
            assert_eq!(err.line, 4 + deep - limit, "{err}");
            let circuit = qasm::parse(&gate_chain(limit)).expect("the limit itself is taken");
            assert_eq!(circuit.ops.len(), 1);
        })
        .unwrap()
        .join()
        .unwrap();
}

/// A gate of 2^60 operations in 65 lines: refused at its call before anything is expanded (the
/// limit was once met only after 4 million operations had been built), by the parse and by the
/// check the engine makes at submission alike.
#[test]
fn a_gate_of_billions_of_operations_is_refused_at_its_call() {
    let mut src = format!("{H}qreg q[2];\ngate g0 a {{ x a; x a; }}\n");
    for i in 1..60 {
        src.push_str(&format!("gate g{i} a {{ g{} a; g{} a; }}\n", i - 1, i - 1));
    }
    src.push_str("x q[0];\ng59 q;\n");
    for err in [
        qasm::parse(&src).map(|_| ()).unwrap_err(),
        qasm::check(&src).map(|_| ()).unwrap_err(),
    ] {
        assert!(
            err.message
                .contains(&format!("more than {} operations", qasm::MAX_OPERATIONS)),
            "{err}"
        );
        assert_eq!((err.line, err.column), (65, 1), "{err}");
    }
}

/// The engine checks circuits at submission with `check`, which keeps no operations, and its
/// heads run them with `parse`: both must take and refuse the same programs.
#[test]
fn the_check_takes_and_refuses_what_the_parse_does() {
    let dirs = [
        "../quantum/tests/data/conformance",
        "../../benches/circuits",
        "../../fuzz/seeds",
    ];
    let mut programs: Vec<String> = dirs
        .iter()
        .flat_map(|dir| std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)).unwrap())
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "qasm"))
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
    assert!(programs.len() > 20, "{} programs", programs.len());
    programs.extend(cases().into_iter().map(|(source, ..)| source));
    for source in programs {
        match (qasm::check(&source), qasm::parse(&source)) {
            (Ok(checked), Ok(circuit)) => assert_eq!(
                (checked.num_qubits, checked.operations),
                (circuit.num_qubits, circuit.ops.len()),
                "{source}"
            ),
            (Err(a), Err(b)) => assert_eq!(a, b),
            (checked, parsed) => panic!("{checked:?} against {:?}:\n{source}", parsed.map(|_| ())),
        }
    }
}
