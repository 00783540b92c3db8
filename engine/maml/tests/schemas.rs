//! Input_Schema and Output_Schema: a schema the engine cannot use is refused at parse time, with
//! its line; a result is checked against Output_Schema and a mismatch says what and where.

mod common;

use chimera_maml::{Problem, parse};
use common::*;
use serde_json::json;

fn job_with(schema_section: &str) -> Result<chimera_maml::Job, chimera_maml::ParseError> {
    parse(
        document("", &format!("{QASM_BODY}{schema_section}")).as_bytes(),
        1 << 20,
    )
    .map(|d| d.job)
}

#[test]
fn a_schema_the_engine_cannot_use_is_refused_with_its_line() {
    // The body's line 8 holds `## Code_Blocks`; the schema section's heading is line 15.
    for (schema, says) in [
        (r#"{"type": "objekt"}"#, "objekt"),
        (r#"{"properties": {"a": {"pattern": "("}}}"#, "("),
        (r#"{"$ref": "https://example.com/s.json"}"#, "example.com"),
    ] {
        for section in ["Output_Schema", "Input_Schema"] {
            let error = job_with(&format!("## {section}\n{schema}\n")).expect_err(schema);
            assert_eq!(error.line, Some(16), "{error}");
            match &error.problem {
                Problem::BadSchema { section: s, detail } => {
                    assert_eq!(*s, section);
                    assert!(detail.contains(says), "{detail}");
                }
                other => panic!("{schema}: {other}"),
            }
        }
    }
}

#[test]
fn results_are_checked_against_output_schema() {
    let job = parse(BELL.as_bytes(), 1 << 20).unwrap().job;
    assert!(job.check_output(&json!({"counts": {"00": 1}})).is_ok());
    let mismatch = job.check_output(&json!({"count": 1})).unwrap_err();
    assert_eq!(mismatch.problems.len(), 1);
    assert!(mismatch.problems[0].contains("\"counts\""), "{mismatch}");
    assert!(
        mismatch
            .to_string()
            .starts_with("the result does not match the job's Output_Schema")
    );

    let typed = job_with(
        "## Output_Schema\n```json\n{\"type\": \"object\", \"properties\": {\"counts\": {\"type\": \"object\"}, \"shots\": {\"minimum\": 1}}}\n```\n",
    )
    .unwrap();
    let mismatch = typed
        .check_output(&json!({"counts": 3, "shots": 0}))
        .unwrap_err();
    assert_eq!(mismatch.problems.len(), 2, "{mismatch}");
    assert!(
        mismatch
            .problems
            .iter()
            .any(|p| p.ends_with("(at /counts)")),
        "{mismatch}"
    );
    assert!(
        mismatch.problems.iter().any(|p| p.ends_with("(at /shots)")),
        "{mismatch}"
    );
}

#[test]
fn without_output_schema_any_result_passes() {
    let job = job_with("").unwrap();
    assert_eq!(job.output_schema, None);
    assert!(job.check_output(&json!([1, "two"])).is_ok());
}
