//! A circuit checked at submission, as DESIGN.md asks of every error a client can cause: one that
//! does not parse is refused with its line in the document, one larger than any device here can
//! hold with how much it needs, before either takes a place in a queue.

use chimera_maml::{BlockKind, CodeBlock};
use chimera_quantum::backend::Precision;
use tonic::{Code, Status};

use crate::refusal;

/// What a state needs beside its amplitudes (the CPU backend's per-thread buffers).
fn with_room(bytes: u128) -> u128 {
    bytes.saturating_add(bytes / 16)
}

/// The most qubits whose single-precision state fits the larger of this machine's available
/// memory and its largest GPU's memory.
pub fn device_max_qubits() -> usize {
    let cpu = chimera_quantum::backend::cpu::available_memory().unwrap_or(0);
    let gpu = crate::gpu_metrics::largest_gpu_memory().map_or(0, u128::from);
    let memory = cpu.max(gpu);
    (0..64)
        .take_while(|&n| with_room(Precision::Single.state_bytes(n)) <= memory)
        .last()
        .unwrap_or(0)
}

/// Parses each OpenQASM 2 block of a quantum job; refuses one that does not parse, or that has
/// more than `max_qubits` qubits.
pub fn check(blocks: &[CodeBlock], max_qubits: usize) -> Result<(), Status> {
    for block in blocks.iter().filter(|b| b.kind == BlockKind::OpenQasm2) {
        // Checked without keeping its operations: a few lines can expand to millions of them,
        // hundreds of MB that the head will hold when it runs the circuit, not the front door.
        let circuit = chimera_quantum::qasm::check(&block.code).map_err(|e| {
            refusal::status(
                Code::InvalidArgument,
                "BAD_CIRCUIT",
                format!(
                    "the circuit at line {} of the document, line {} column {} of the circuit \
                     (line {} of the document): {}",
                    block.line,
                    e.line,
                    e.column,
                    block.line + e.line,
                    e.message
                ),
            )
        })?;
        let n = circuit.num_qubits;
        if n > max_qubits {
            let gib = |bytes: u128| bytes as f64 / f64::from(1u32 << 30);
            return Err(refusal::status(
                Code::ResourceExhausted,
                "TOO_MANY_QUBITS",
                format!(
                    "the circuit at line {} has {n} qubits: its state needs {:.1} GiB in single \
                     precision, and the largest this engine's devices hold is {max_qubits} qubits \
                     ({:.1} GiB)",
                    block.line,
                    gib(Precision::Single.state_bytes(n)),
                    gib(Precision::Single.state_bytes(max_qubits)),
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(code: &str) -> CodeBlock {
        CodeBlock {
            language: "qasm".into(),
            kind: BlockKind::OpenQasm2,
            code: code.into(),
            line: 10,
        }
    }

    const HEADER: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\n";

    #[test]
    fn a_circuit_within_the_limit_passes_and_a_wider_one_is_refused_with_its_size() {
        let wide = block(&format!("{HEADER}qreg q[30];\nh q;"));
        check(std::slice::from_ref(&wide), 30).unwrap();
        let refused = check(&[wide], 29).unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted);
        assert_eq!(refusal::reason_of(&refused).unwrap(), "TOO_MANY_QUBITS");
        assert!(
            refused
                .message()
                .contains("30 qubits: its state needs 8.0 GiB"),
            "{refused:?}"
        );
    }

    #[test]
    fn a_circuit_that_does_not_parse_is_refused_at_its_document_line() {
        let bad = block(&format!("{HEADER}qreg q[2];\nfoo q[0];"));
        let refused = check(&[bad], 30).unwrap_err();
        assert_eq!(refusal::reason_of(&refused).unwrap(), "BAD_CIRCUIT");
        assert!(
            refused.message().contains("(line 14 of the document)"),
            "{refused:?}"
        );
    }

    #[test]
    fn this_machine_holds_some_qubits_and_not_absurdly_many() {
        let n = device_max_qubits();
        assert!((10..50).contains(&n), "{n}");
    }
}
