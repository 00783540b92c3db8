//! An AI job's specs checked at submission, as a circuit is (`circuits`): a `chimera-train` or
//! `chimera-infer` block that does not read as its spec, or whose settings contradict each other,
//! is refused with where it is in the document before it takes a place in a queue. What needs the
//! data or the model (a dataset this engine lacks, rows a model does not take) is found when the
//! job runs.

use chimera_ai_spec::{InferSpec, SpecError, TrainSpec};
use chimera_maml::{BlockKind, Job};
use tonic::{Code, Status};

use crate::refusal;

/// Reads each `chimera-train` and `chimera-infer` block of `job` as its spec; refuses the first
/// that is not one.
pub fn check(job: &Job) -> Result<(), Status> {
    for block in &job.code_blocks {
        let read = match block.kind {
            BlockKind::Train => TrainSpec::of_block(job, block).err(),
            BlockKind::Infer => InferSpec::from_yaml(&block.code).err(),
            _ => None,
        };
        if let Some(e) = read {
            return Err(refused(&block.language, block.line, &e));
        }
    }
    Ok(())
}

fn refused(language: &str, block_line: usize, e: &SpecError) -> Status {
    let place = match e.line() {
        Some(line) => format!(
            " (its line {line} is line {} of the document)",
            block_line + line
        ),
        None => String::new(),
    };
    refusal::status(
        Code::InvalidArgument,
        "BAD_SPEC",
        format!("the {language} block at line {block_line}{place}: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "dataset: digits\nmodel:\n  kind: mlp\n  hidden: [8]\n  dropout: 0.1\n";

    fn job(spec: &str) -> Job {
        let text = format!(
            "---\nmaml_version: \"2.0.0\"\nid: \"urn:uuid:spec\"\ntype: \"training\"\n\
             origin: \"agent://test\"\ncreated_at: 2026-11-20T10:00:00Z\n---\n\
             ## Code_Blocks\n```chimera-train\n{spec}```\n"
        );
        chimera_maml::parse(text.as_bytes(), chimera_maml::DEFAULT_MAX_BYTES)
            .unwrap()
            .job
    }

    #[test]
    fn a_spec_that_reads_passes() {
        check(&job(SPEC)).unwrap();
    }

    #[test]
    fn a_wrong_value_is_refused_at_its_line_in_the_document() {
        // The fence is line 9 of the document; `dropout` is line 5 of the spec.
        let refused = check(&job(&SPEC.replace("0.1", "lots"))).unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert_eq!(refusal::reason_of(&refused).unwrap(), "BAD_SPEC");
        let said = refused.message();
        assert!(
            said.contains("block at line 9 (its line 5 is line 14 of the document)")
                && said.contains("dropout"),
            "{said}"
        );
    }

    #[test]
    fn an_inference_spec_is_checked_too() {
        let mut job = job(SPEC);
        job.code_blocks[0].kind = BlockKind::Infer;
        job.code_blocks[0].language = "chimera-infer".into();
        job.code_blocks[0].code = "model: /etc\ninputs: [[1]]\n".into();
        let refused = check(&job).unwrap_err();
        assert_eq!(refusal::reason_of(&refused).unwrap(), "BAD_SPEC");
        assert!(
            refused
                .message()
                .starts_with("the chimera-infer block at line 9: `model` is `/etc`"),
            "{}",
            refused.message()
        );
    }

    #[test]
    fn settings_that_contradict_each_other_are_refused_naming_the_setting() {
        let refused = check(&job(&SPEC.replace("0.1", "1.5"))).unwrap_err();
        assert_eq!(refusal::reason_of(&refused).unwrap(), "BAD_SPEC");
        assert!(
            refused.message().contains("`model.dropout` must be"),
            "{}",
            refused.message()
        );
    }
}
