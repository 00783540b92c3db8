//! The JSON Schemas of a job's Input_Schema and Output_Schema sections (MAML.md: "Results are
//! JSON, checked against Output_Schema when present").

use jsonschema::{PatternOptions, Validator};
use serde_json::Value;

/// How many of a result's schema violations a mismatch names.
const PROBLEMS_NAMED: usize = 5;

/// A schema as the engine reads it: any draft `$schema` names (2020-12 by default), no remote
/// `$ref`, and `pattern` run by the linear-time `regex` engine so that no pattern a client writes
/// can keep a head busy.
pub(crate) fn compile(schema: &Value) -> Result<Validator, String> {
    jsonschema::options()
        .with_pattern_options(PatternOptions::regex())
        .build(schema)
        .map_err(|e| e.to_string())
}

/// A result that its job's Output_Schema does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the result does not match the job's Output_Schema: {}", .problems.join("; "))]
pub struct OutputMismatch {
    /// What is wrong, and where in the result (a JSON pointer), for the first few violations.
    pub problems: Vec<String>,
}

/// Checks a result against an Output_Schema that admission compiled once already; any result
/// passes `None`.
pub fn check_output(schema: Option<&Value>, result: &Value) -> Result<(), OutputMismatch> {
    let Some(schema) = schema else {
        return Ok(());
    };
    let validator = compile(schema).map_err(|e| OutputMismatch { problems: vec![e] })?;
    let problems: Vec<String> = validator
        .iter_errors(result)
        .take(PROBLEMS_NAMED)
        .map(|e| match e.instance_path().as_str() {
            "" => format!("{e}"),
            at => format!("{e} (at {at})"),
        })
        .collect();
    match problems.is_empty() {
        true => Ok(()),
        false => Err(OutputMismatch { problems }),
    }
}
