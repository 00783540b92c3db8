//! A training spec checked at submission, as a circuit is (`circuits`): a `chimera-train` block
//! that does not read as a spec, or whose settings contradict each other, is refused with where
//! it is in the document before it takes a place in a queue. What needs the data (a dataset this
//! engine lacks, a model that does not fit it) is found when the job runs.

use chimera_maml::{BlockKind, Job};
use chimera_train_spec::TrainSpec;
use tonic::{Code, Status};

use crate::refusal;

/// Reads each `chimera-train` block of `job` as a spec; refuses the first that is not one.
pub fn check(job: &Job) -> Result<(), Status> {
    for block in job
        .code_blocks
        .iter()
        .filter(|b| b.kind == BlockKind::Train)
    {
        TrainSpec::of_block(job, block).map_err(|e| {
            let place = match e.line() {
                Some(line) => format!(
                    " (its line {line} is line {} of the document)",
                    block.line + line
                ),
                None => String::new(),
            };
            refusal::status(
                Code::InvalidArgument,
                "BAD_SPEC",
                format!("the chimera-train block at line {}{place}: {e}", block.line),
            )
        })?;
    }
    Ok(())
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
