//! Every qelib1.inc gate, read through our front end, has exactly the unitary Qiskit's reader gives it
//! (global phase included). Reference matrices: `data/make_qelib1_reference.py`.

use chimera_circuit::circuit::{C64, Op};
use chimera_circuit::qasm;

#[test]
fn every_qelib1_gate_matches_qiskit() {
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("data/qelib1_reference.json")).unwrap();
    let entries = reference.as_array().unwrap();
    assert!(
        entries.len() >= 40,
        "reference holds {} gates",
        entries.len()
    );
    for entry in entries {
        let name = entry["name"].as_str().unwrap();
        let nq = entry["qubits"].as_u64().unwrap() as usize;
        let params: Vec<String> = entry["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| format!("{:?}", p.as_f64().unwrap()))
            .collect();
        let ps = if params.is_empty() {
            String::new()
        } else {
            format!("({})", params.join(","))
        };
        let args: Vec<String> = (0..nq).map(|i| format!("q[{i}]")).collect();
        let src = format!(
            "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{nq}];\n{name}{ps} {};\n",
            args.join(",")
        );
        let circuit = qasm::parse(&src).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(circuit.ops.len(), 1, "{name}");
        let Op::Gate(gate) = &circuit.ops[0] else {
            panic!("{name} is not a gate")
        };
        assert_eq!(gate.qubits, (0..nq).collect::<Vec<_>>(), "{name}");
        let re = entry["re"].as_array().unwrap();
        let im = entry["im"].as_array().unwrap();
        assert_eq!(gate.matrix.len(), re.len(), "{name}");
        for (i, m) in gate.matrix.iter().enumerate() {
            let want = C64::new(re[i].as_f64().unwrap(), im[i].as_f64().unwrap());
            assert!(
                (m - want).norm() < 1e-12,
                "{name}: entry {i} is {m}, Qiskit has {want}"
            );
        }
    }
}

#[test]
fn u0_is_the_identity() {
    let c = qasm::parse("OPENQASM 2.0; include \"qelib1.inc\"; qreg q[1]; u0(0.3) q[0];").unwrap();
    let Op::Gate(g) = &c.ops[0] else { panic!() };
    assert_eq!(g.matrix, chimera_circuit::gates::identity(1));
}
