//! The AI heads' job specs: the YAML of a `chimera-train` block ([`TrainSpec`]) and of a
//! `chimera-infer` block ([`InferSpec`]), read and checked with errors that say where and name the
//! setting. The engine checks both when a job is submitted; the heads read them to run it.

mod infer;
mod progress;
mod train;

pub use infer::InferSpec;
pub use progress::EpochProgress;
pub use train::*;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Not YAML, or not the spec's shape; `spec`: which (training, inference); `at`: (line,
    /// column) in the spec, where known.
    #[error("the {spec} spec is not valid: {}{message}", place(.at))]
    Yaml {
        spec: &'static str,
        at: Option<(usize, usize)>,
        message: String,
    },
    #[error("`{key}` {problem}")]
    Invalid { key: &'static str, problem: String },
}

fn place(at: &Option<(usize, usize)>) -> String {
    at.map(|(line, column)| format!("line {line} column {column}: "))
        .unwrap_or_default()
}

impl SpecError {
    /// The line of the spec the error is at, where known.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Yaml { at, .. } => at.map(|(line, _)| line),
            Self::Invalid { .. } => None,
        }
    }
}

fn invalid(key: &'static str, problem: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        key,
        problem: problem.into(),
    }
}

/// A YAML error reading `text` as a `spec` spec, at its place, naming the setting at the error's
/// line where the YAML error alone may not.
fn yaml_error(spec: &'static str, text: &str, e: serde_saphyr::Error) -> SpecError {
    let at = e
        .location()
        .map(|at| (at.line() as usize, at.column() as usize));
    let message = e.to_string();
    let message = message.lines().next().unwrap_or_default();
    let message = message.trim_start_matches("error: ");
    let message = at
        .and_then(|at| message.strip_prefix(&place(&Some(at))))
        .unwrap_or(message);
    let message = in_our_words(message);
    let message = message.as_str();
    // The tagged settings' own refusals (`train::settings`) start with the key they are about.
    let key = at
        .and_then(|(line, _)| text.lines().nth(line.checked_sub(1)?))
        .and_then(|line| line.split_once(':'))
        .map(|(key, _)| key.trim().trim_start_matches("- "))
        .filter(|key| !key.is_empty() && !message.starts_with('`'));
    let message = match key {
        Some(key) => format!("{message} (setting `{key}`)"),
        None => message.to_owned(),
    };
    let message = match likely_meant(&message) {
        Some(meant) => format!("{message}; did you mean `{meant}`?"),
        None => message,
    };
    SpecError::Yaml { spec, at, message }
}

/// serde-saphyr's message in words that name the spec's setting, not the library's options: it
/// answers a key given twice with how to accept that ("set DuplicateKeyPolicy in Options").
fn in_our_words(message: &str) -> String {
    let twice = message
        .strip_prefix("duplicate mapping key: ")
        .and_then(|rest| rest.split_once(','));
    match twice {
        Some((key, _)) => format!("`{key}` is given twice: a setting is given once"),
        None => message.to_owned(),
    }
}

/// For serde's "unknown field `X`, expected one of a, b, …": the expected key closest to `X`, when
/// one is close enough to be a misspelling of it.
fn likely_meant(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest.strip_prefix(", expected one of ")?;
    let expected = expected
        .split_once(" (setting")
        .map_or(expected, |(list, _)| list);
    expected
        .split(", ")
        .map(|key| key.trim_matches('`'))
        .map(|key| (strsim::jaro_winkler(unknown, key), key))
        .filter(|(similarity, _)| *similarity >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, key)| key)
}

#[cfg(test)]
mod tests {
    use super::likely_meant;

    #[test]
    fn a_key_given_twice_is_said_so_without_the_yaml_librarys_options() {
        let said = crate::TrainSpec::from_yaml("dataset: digits\ndataset: moons\n")
            .unwrap_err()
            .to_string();
        assert!(
            said.contains("line 2 column 1: `dataset` is given twice"),
            "{said}"
        );
        assert!(!said.contains("Options"), "{said}");
    }

    #[test]
    fn a_misspelt_key_is_matched_to_the_one_meant() {
        let said = |unknown: &str| {
            format!(
                "unknown field `{unknown}`, expected one of kind, hidden, activation, dropout, \
                 channels, kernel_size (setting `{unknown}`)"
            )
        };
        assert_eq!(likely_meant(&said("hiden")), Some("hidden"));
        assert_eq!(likely_meant(&said("kernelsize")), Some("kernel_size"));
        assert_eq!(likely_meant(&said("activaton")), Some("activation"));
        // Nothing close: no guess.
        assert_eq!(likely_meant(&said("frobnicate")), None);
        assert_eq!(likely_meant("invalid floating point"), None);
    }
}
