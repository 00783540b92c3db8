//! An AI job's specs: each `chimera-train` and `chimera-infer` block read as its spec (which
//! refuses settings that contradict each other, or a model past `chimera_ai_spec`'s bounds), and
//! each training's epochs within the limit. What needs the data or the model (a dataset this
//! engine lacks, rows a model does not take) is found when the job runs.

use chimera_ai_spec::{InferSpec, SpecError, TrainSpec};
use chimera_maml::{BlockKind, CodeBlock, Job};

use crate::{BlockRun, CheckedBlock, JobError, Limits};

/// The job's AI blocks, once each reads as its spec within `limits`.
pub(crate) fn check(job: &Job, limits: &Limits) -> Result<Vec<CheckedBlock>, JobError> {
    let mut checked = Vec::new();
    for (index, block) in job.code_blocks.iter().enumerate() {
        let run = match block.kind {
            BlockKind::Train => {
                let spec = TrainSpec::of_block(job, block).map_err(|e| refused(block, &e))?;
                if spec.epochs > limits.max_epochs {
                    return Err(JobError::OverLimit {
                        what: format!(
                            "`epochs` of the {} block at line {}",
                            block.language, block.line
                        ),
                        value: spec.epochs as u128,
                        limit: limits.max_epochs as u128,
                        flag: "--max-epochs",
                    });
                }
                BlockRun::Train(spec)
            }
            BlockKind::Infer => {
                BlockRun::Infer(InferSpec::from_yaml(&block.code).map_err(|e| refused(block, &e))?)
            }
            _ => continue,
        };
        checked.push(CheckedBlock {
            number: index + 1,
            line: block.line,
            run,
        });
    }
    Ok(checked)
}

fn refused(block: &CodeBlock, e: &SpecError) -> JobError {
    JobError::BadSpec {
        language: block.language.clone(),
        block_line: block.line,
        spec_line: e.line(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "dataset: digits\nmodel:\n  kind: mlp\n  hidden: [8]\n  dropout: 0.1\n";
    const LIMITS: Limits = Limits {
        max_qubits: 30,
        max_shots: 1000,
        max_epochs: 100,
    };

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
        assert_eq!(check(&job(SPEC), &LIMITS).unwrap().len(), 1);
    }

    #[test]
    fn a_wrong_value_is_refused_at_its_line_in_the_document() {
        // The fence is line 9 of the document; `dropout` is line 5 of the spec.
        let refused = check(&job(&SPEC.replace("0.1", "lots")), &LIMITS).unwrap_err();
        assert_eq!(refused.reason(), "BAD_SPEC");
        let said = refused.to_string();
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
        let refused = check(&job, &LIMITS).unwrap_err();
        assert_eq!(refused.reason(), "BAD_SPEC");
        assert!(
            refused
                .to_string()
                .starts_with("the chimera-infer block at line 9: `model` is `/etc`"),
            "{refused}"
        );
    }

    #[test]
    fn settings_that_contradict_each_other_are_refused_naming_the_setting() {
        let refused = check(&job(&SPEC.replace("0.1", "1.5")), &LIMITS).unwrap_err();
        assert_eq!(refused.reason(), "BAD_SPEC");
        assert!(
            refused.to_string().contains("`model.dropout` must be"),
            "{refused}"
        );
    }

    #[test]
    fn a_model_past_the_parameter_bound_is_refused_before_it_runs() {
        let wide = SPEC.replace("[8]", "[100000, 100000]");
        let refused = check(&job(&wide), &LIMITS).unwrap_err();
        assert_eq!(refused.reason(), "BAD_SPEC");
        assert!(
            refused.to_string().contains("100000000 trained parameters"),
            "{refused}"
        );
    }
}
