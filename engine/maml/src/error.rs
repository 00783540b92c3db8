//! Why a document is not well-formed MAML, and where.

use std::fmt;

/// A malformed document: what is wrong, at which line (when it is one line's fault), and what to
/// do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// 1-based line of the document; `None` for a fault of the whole file.
    pub line: Option<usize>,
    pub problem: Problem,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.problem),
            None => write!(f, "{}", self.problem),
        }
    }
}

impl ParseError {
    pub(crate) fn at(line: usize, problem: Problem) -> Self {
        Self {
            line: Some(line),
            problem,
        }
    }

    pub(crate) fn whole(problem: Problem) -> Self {
        Self {
            line: None,
            problem,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("the document is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("the document is not UTF-8 text (byte {offset} is not valid UTF-8)")]
    NotUtf8 { offset: usize },
    #[error(
        "a carriage return (CR) that does not end a line; save the file with LF or CRLF line endings"
    )]
    BareCarriageReturn,
    #[error("a MAML document starts with a `---` line that opens its YAML front matter")]
    NoFrontMatter,
    #[error("the front matter opened here is never closed: add a `---` line after its last key")]
    UnclosedFrontMatter,
    #[error("{part} is not valid YAML: {detail}")]
    Yaml { part: &'static str, detail: String },
    #[error("{part} must be YAML `key: value` lines")]
    NotAMapping { part: &'static str },
    #[error("`{key}` appears twice in {part} (first at line {first_line})")]
    DuplicateKey {
        part: &'static str,
        key: String,
        first_line: usize,
    },
    #[error("the front matter has no `{key}`; it is required ({hint})")]
    MissingKey {
        key: &'static str,
        hint: &'static str,
    },
    #[error("`{key}` must be {expected}")]
    WrongType { key: String, expected: &'static str },
    #[error("`maml_version` {found} is not supported; this engine reads MAML 1.x and 2.x")]
    UnsupportedVersion { found: String },
    #[error(
        "`{key}` is not an RFC 3339 time ({detail}); write it with a time zone, like 2026-11-20T10:00:00Z"
    )]
    BadTime { key: &'static str, detail: String },
    #[error("`expires_at` must be later than `created_at`")]
    ExpiresBeforeCreated,
    #[error("section `{name}` appears twice (first at line {first_line}); merge them into one")]
    DuplicateSection { name: String, first_line: usize },
    #[error("the code block opened here is never closed: end it with a line of {fence}")]
    UnclosedCodeBlock { fence: String },
    #[error("{section} is not valid JSON: {detail}")]
    BadJson {
        section: &'static str,
        detail: String,
    },
    #[error("{section} is not a JSON Schema this engine can use: {detail}")]
    BadSchema {
        section: &'static str,
        detail: String,
    },
    #[error(
        "the signature block opened here is never closed by `{}`",
        crate::markers::END
    )]
    UnclosedSignature,
    #[error("`{}` without a signature block before it", crate::markers::END)]
    StraySignatureEnd,
    #[error(
        "text after the signature block; nothing may follow `{}`, since it would not be signed",
        crate::markers::END
    )]
    TrailerAfterSignature,
    #[error("the signature block has no `{field}` line")]
    MissingSignatureField { field: &'static str },
    #[error(
        "the signature block has an unknown line; it holds only `algorithm`, `key_id`, `sha3_512` and `signature`"
    )]
    UnknownSignatureField,
    #[error("`{field}` appears twice in the signature block")]
    DuplicateSignatureField { field: &'static str },
    #[error("signature `{field}` is malformed: {expected}")]
    BadSignatureField {
        field: &'static str,
        expected: &'static str,
    },
}
