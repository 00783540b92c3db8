//! The inference job spec: the YAML of a `chimera-infer` code block.
//!
//! ```yaml
//! model: 8f5a754c…      # a model id from a training job, or a directory under the data directory
//! inputs:                # feature rows, for a trained classifier
//!   - [0.0, 1.0]
//! sentences: [a text]    # or texts, for a sentence encoder
//! ```

use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use crate::{SpecError, invalid, yaml_error};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InferSpec {
    /// A model id from a training job, or a model directory relative to the data directory.
    pub model: String,
    /// Rows of features, for a trained classifier.
    #[serde(default)]
    pub inputs: Vec<Vec<f32>>,
    /// Sentences, for a sentence encoder.
    #[serde(default)]
    pub sentences: Vec<String>,
}

impl InferSpec {
    /// Reads and checks a spec: a model named within the data directory (no absolute path, no
    /// `..`: a job reads no file of the host's but its models), and either rows of one length or
    /// sentences. Whether the model takes those is known only where it is.
    pub fn from_yaml(text: &str) -> Result<Self, SpecError> {
        let spec: Self =
            serde_saphyr::from_str(text).map_err(|e| yaml_error("inference", text, e))?;
        let path = Path::new(&spec.model);
        if spec.model.trim().is_empty()
            || !path.components().all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(invalid(
                "model",
                format!(
                    "is `{}`: it must be a model id or a directory under the engine's data \
                     directory, named without `..` or a leading `/`",
                    spec.model
                ),
            ));
        }
        match (spec.inputs.is_empty(), spec.sentences.is_empty()) {
            (true, true) => Err(invalid(
                "inputs",
                "or `sentences` is needed: feature rows for a trained model, texts for a \
                 sentence encoder",
            )),
            (false, false) => Err(invalid(
                "inputs",
                "and `sentences` are both given: a model takes one or the other",
            )),
            _ => match spec
                .inputs
                .iter()
                .position(|row| row.len() != spec.inputs[0].len())
            {
                Some(row) => Err(invalid(
                    "inputs",
                    format!(
                        "rows differ in length: row 1 has {} values, row {} has {}",
                        spec.inputs[0].len(),
                        row + 1,
                        spec.inputs[row].len()
                    ),
                )),
                None => Ok(spec),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(yaml: &str) -> String {
        InferSpec::from_yaml(yaml).expect_err(yaml).to_string()
    }

    #[test]
    fn rows_or_sentences_for_a_model_in_the_data_directory_are_read() {
        let rows = InferSpec::from_yaml("model: abc123\ninputs: [[1, 2], [3, 4.5]]\n").unwrap();
        assert_eq!(rows.inputs, [[1.0, 2.0], [3.0, 4.5]]);
        let texts = InferSpec::from_yaml("model: minilm/v2\nsentences: [a, b]\n").unwrap();
        assert_eq!(texts.sentences, ["a", "b"]);
    }

    #[test]
    fn a_model_outside_the_data_directory_is_refused() {
        for model in ["/etc", "../models/x", "models/../../x", "./x", "\"\""] {
            let said = refused(&format!("model: {model}\ninputs: [[1]]\n"));
            assert!(said.contains("`model` is"), "{model}: {said}");
        }
    }

    #[test]
    fn mistakes_are_refused_naming_the_setting_and_its_line() {
        let said = refused("model: m\ninputs:\n  - [1, 2]\n  - [3, x]\n");
        assert!(
            said.contains("line 4") && said.contains("inference spec"),
            "{said}"
        );
        let said = refused("model: m\ninput: [[1]]\n");
        assert!(said.contains("unknown field `input`"), "{said}");
        assert!(refused("model: m\n").contains("`inputs` or `sentences` is needed"));
        assert!(refused("model: m\ninputs: [[1]]\nsentences: [a]\n").contains("both given"));
        let said = refused("model: m\ninputs: [[1, 2], [3]]\n");
        assert!(said.contains("row 2 has 1"), "{said}");
    }
}
