//! An error as a user reads it: the message and each cause, "a: b: c".

/// `error` and its causes joined by ": ", as anyhow's `{:#}` does, less each cause whose message
/// the one before it already quotes: thiserror messages often end with their source's, and
/// anyhow's chain would say it twice ("cannot read dataset `x.csv` (data/x.csv): No such file or
/// directory (os error 2): No such file or directory (os error 2)").
pub fn error_chain(error: &anyhow::Error) -> String {
    // The words a head reports a job's failure in: one way of saying an error, everywhere.
    chimera_head::error_chain(error.as_ref())
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct Unreadable {
        path: &'static str,
        source: std::io::Error,
    }

    fn missing() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")
    }

    #[test]
    fn a_cause_its_parent_quotes_is_said_once() {
        let error = anyhow::Error::new(Unreadable {
            path: "x.csv",
            source: missing(),
        })
        .context("training spec.yaml failed");
        assert_eq!(
            error_chain(&error),
            "training spec.yaml failed: cannot read x.csv: no such file"
        );
    }

    #[test]
    fn causes_the_parent_does_not_quote_are_all_said() {
        let error = anyhow::Error::new(missing())
            .context("cannot open the model")
            .context("infer failed");
        assert_eq!(
            error_chain(&error),
            "infer failed: cannot open the model: no such file"
        );
    }
}
