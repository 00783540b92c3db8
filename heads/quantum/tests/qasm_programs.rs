//! What programs mean: register numbering, broadcasting, definitions, expressions.

mod common;

use chimera_circuit::circuit::{C64, Op, gates_in};
use chimera_circuit::{gates, qasm};

fn state_of(src: &str) -> Vec<C64> {
    let c = qasm::parse(src).unwrap_or_else(|e| panic!("{e}\n{src}"));
    let gates = gates_in(&c.ops);
    common::reference_state(c.num_qubits, &gates)
}

fn assert_basis(psi: &[C64], index: usize) {
    for (i, a) in psi.iter().enumerate() {
        let want = if i == index { 1.0 } else { 0.0 };
        assert!(
            (a.norm() - want).abs() < 1e-12,
            "amplitude {i} is {a}, expected basis state {index}"
        );
    }
}

const H: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\n";

#[test]
fn qubits_number_across_registers_in_declaration_order() {
    // a[0] is qubit 0 (least significant), b[1] is qubit 3.
    assert_basis(
        &state_of(&format!("{H}qreg a[2];\nqreg b[2];\nx b[1];\nx a[0];")),
        0b1001,
    );
}

#[test]
fn registers_broadcast() {
    let c = qasm::parse(&format!(
        "{H}qreg a[3];\nqreg b[3];\nh a;\ncx a, b;\ncx a[0], b;"
    ))
    .unwrap();
    let qubits: Vec<Vec<usize>> = c
        .ops
        .iter()
        .map(|op| {
            if let Op::Gate(g) = op {
                g.qubits.clone()
            } else {
                panic!()
            }
        })
        .collect();
    assert_eq!(
        qubits,
        vec![
            vec![0],
            vec![1],
            vec![2],
            vec![0, 3],
            vec![1, 4],
            vec![2, 5],
            vec![0, 3],
            vec![0, 4],
            vec![0, 5]
        ]
    );
}

#[test]
fn nested_parameterised_definitions_expand() {
    let src = format!(
        "{H}gate inner(t) a {{ rx(t/2) a; }}\n\
         gate outer(t, u) a, b {{ inner(2*t) a; cx a, b; inner(u) b; }}\n\
         qreg q[2];\nouter(0.3, -0.8) q[1], q[0];"
    );
    let direct = format!("{H}qreg q[2];\nrx(0.3) q[1];\ncx q[1], q[0];\nrx(-0.4) q[0];");
    assert!(common::fidelity(&state_of(&src), &state_of(&direct)) > 1.0 - 1e-12);
}

#[test]
fn a_file_definition_takes_precedence_over_qelib1() {
    assert_basis(
        &state_of(&format!("{H}gate h a {{ x a; }}\nqreg q[1];\nh q[0];")),
        1,
    );
}

/// A body calls the gate its name meant when the body was read: `g` keeps qelib1's one-qubit `x`
/// after the file shadows `x` with a two-qubit gate (which once indexed past `g`'s one qubit and
/// panicked; found by the qasm_parse fuzz target).
#[test]
fn a_later_definition_does_not_change_an_earlier_body() {
    assert_basis(
        &state_of(&format!(
            "{H}gate g a {{ x a; }}\ngate x a, b {{ cx a, b; }}\nqreg q[2];\ng q[0];\nx q[0], q[1];"
        )),
        0b11,
    );
}

#[test]
fn language_primitives_need_no_include() {
    assert_basis(
        &state_of("OPENQASM 2.0;\nqreg q[2];\nU(pi, 0, pi) q[0];\nCX q[0], q[1];"),
        0b11,
    );
}

#[test]
fn comments_barriers_and_integer_version_are_accepted() {
    let src = "OPENQASM 2;\n// comment\ninclude \"qelib1.inc\"; /* block\ncomment */\nqreg q[2];\nx q[0];\nbarrier q;\nbarrier q[0], q[1];\n";
    assert_basis(&state_of(src), 1);
}

#[test]
fn parameter_expressions_follow_the_usual_precedence() {
    let cases = [
        ("-pi/2^1", -std::f64::consts::FRAC_PI_2),
        ("-2^2", -4.0),
        ("2^-1", 0.5),
        ("2^3^2", 512.0),
        ("1+2*3-4/2", 5.0),
        ("(1+2)*3", 9.0),
        ("sqrt(4)+exp(ln(2))", 4.0),
        ("sin(0)+cos(0)+tan(0)", 1.0),
        ("asin(1)*2-acos(-1)+atan(0)", 0.0),
        ("1.5e-1+.25+1E1", 10.4),
        ("+0.5", 0.5),
    ];
    for (text, value) in cases {
        let c = qasm::parse(&format!("{H}qreg q[1];\nrx({text}) q[0];")).unwrap();
        let Op::Gate(g) = &c.ops[0] else { panic!() };
        let want = gates::rx(value);
        for (a, b) in g.matrix.iter().zip(&want) {
            assert!((a - b).norm() < 1e-12, "rx({text}) is not rx({value})");
        }
    }
}

#[test]
fn measure_reset_and_if_are_kept_in_order() {
    let c = qasm::parse(&format!(
        "{H}qreg q[2];\ncreg c[2];\nh q[0];\nmeasure q -> c;\nreset q[1];\nif (c == 1) x q[1];"
    ))
    .unwrap();
    assert!(matches!(c.ops[1], Op::Measure { qubit: 0, clbit: 0 }));
    assert!(matches!(c.ops[2], Op::Measure { qubit: 1, clbit: 1 }));
    assert!(matches!(c.ops[3], Op::Reset { qubit: 1 }));
    let Op::If { condition, op } = &c.ops[4] else {
        panic!("{:?}", c.ops[4])
    };
    assert_eq!(
        (condition.start, condition.size, condition.value),
        (0, 2, 1)
    );
    assert!(matches!(op.as_ref(), Op::Gate(g) if g.qubits == vec![1]));
    assert!(!c.measurements_are_terminal());
}

/// Issue 35: published benchmark files leave the `OPENQASM 2.0;` line out, and Qiskit reads them
/// as OpenQASM 2.0; so does this front end, with errors at the file's own lines.
#[test]
fn a_program_without_its_version_line_is_openqasm_2() {
    let body = "include \"qelib1.inc\";\nqreg q[3];\nx q[0];\ncx q[0], q[2];\n";
    let with = qasm::parse(&format!("OPENQASM 2.0;\n{body}")).unwrap();
    let without = qasm::parse(body).unwrap();
    assert_eq!(without.num_qubits, 3);
    assert_eq!(format!("{:?}", without.ops), format!("{:?}", with.ops));
    assert_basis(&state_of(body), 0b101);
    let error = qasm::parse(&format!("{body}foo q[0];")).unwrap_err();
    assert_eq!((error.line, error.column), (5, 1), "{error}");
    assert_eq!(qasm::check(body).unwrap().num_qubits, 3);
}
