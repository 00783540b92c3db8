//! A MAML document read into a typed job (MAML.md: "Shape" and "Rules").

use std::borrow::Cow;
use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::body::{self, RawSection};
use crate::error::{ParseError, Problem};
use crate::keys::{KeyId, SecretKey};
use crate::schema::{self, OutputMismatch};
use crate::signature::{self, SignatureBlock, digest};
use crate::yaml::{self, Entry};

/// Documents larger than this are refused unless the caller sets another limit.
pub const DEFAULT_MAX_BYTES: usize = 1 << 20;
/// The longest `id`, in characters: an id travels in every answer, log line and trailer about its
/// job (a `urn:uuid:` id is 45).
pub const MAX_ID_CHARS: usize = 256;
/// A UTF-8 byte-order mark. MAML.md signs the bytes as they are: a document that starts with one
/// is read past it, and it stays part of the signed bytes.
const BOM: char = '\u{feff}';

/// A parsed MAML document: the job it describes, the bytes its signature covers, and the
/// signature block if it has one.
#[derive(Debug, Clone)]
pub struct Document {
    pub job: Job,
    /// The document up to its signature block, CRLF turned into LF (and a byte-order mark it
    /// starts with kept).
    pub signed_bytes: Vec<u8>,
    pub signature: Option<SignatureBlock>,
}

/// What a MAML document asks the engine to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub maml_version: MamlVersion,
    /// The idempotency key.
    pub id: String,
    /// `quantum_circuit`, `training`, `inference`, `hybrid_workflow`, `workflow` or any other.
    pub job_type: String,
    pub origin: String,
    /// `requires.resources`, such as `cuda`.
    pub resources: Vec<String>,
    pub permissions: BTreeMap<String, Vec<String>>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    /// Front matter keys this engine does not use, kept as written.
    pub other_keys: Map<String, Value>,
    pub intent: Option<String>,
    pub context: Map<String, Value>,
    pub code_blocks: Vec<CodeBlock>,
    pub input_schema: Option<Value>,
    pub output_schema: Option<Value>,
    pub history: Vec<String>,
    /// Sections this engine does not use, kept as written.
    pub other_sections: Vec<Section>,
}

impl Job {
    /// Whether the job asked for a GPU (`requires: resources: [cuda]`).
    pub fn requires_cuda(&self) -> bool {
        self.resources
            .iter()
            .any(|r| r.eq_ignore_ascii_case("cuda"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MamlVersion {
    pub major: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeBlock {
    /// The language tag as written.
    pub language: String,
    pub kind: BlockKind,
    pub code: String,
    /// Line of the opening fence.
    pub line: usize,
}

/// What a code block's language tag asks for (MAML.md: code blocks route by language tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// `qasm`, `qasm2`, `openqasm`.
    OpenQasm2,
    /// `qasm3`.
    OpenQasm3,
    /// `chimera-train`.
    Train,
    /// `chimera-infer`.
    Infer,
    /// `python`, `qiskit`: never executed.
    Python,
    /// Anything else: data or illustration, not run.
    Other,
}

impl BlockKind {
    fn of(language: &str) -> Self {
        match language.to_ascii_lowercase().as_str() {
            "qasm" | "qasm2" | "openqasm" => Self::OpenQasm2,
            "qasm3" => Self::OpenQasm3,
            "chimera-train" => Self::Train,
            "chimera-infer" => Self::Infer,
            "python" | "py" | "python3" | "qiskit" => Self::Python,
            _ => Self::Other,
        }
    }

    pub fn is_runnable(self) -> bool {
        !matches!(self, Self::Python | Self::Other)
    }
}

/// Parses a MAML document of at most `max_bytes` bytes.
pub fn parse(bytes: &[u8], max_bytes: usize) -> Result<Document, ParseError> {
    if bytes.len() > max_bytes {
        return Err(ParseError::whole(Problem::TooLarge {
            size: bytes.len(),
            limit: max_bytes,
        }));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ParseError::whole(Problem::NotUtf8 {
            offset: e.valid_up_to(),
        })
    })?;
    let text: Cow<str> = if text.contains('\r') {
        refuse_bare_carriage_returns(text)?;
        Cow::Owned(text.replace("\r\n", "\n"))
    } else {
        Cow::Borrowed(text)
    };
    let split = signature::split(&text)?;
    let signature = split
        .block
        .map(|(fields, line)| signature::parse_fields(fields, line))
        .transpose()?;
    let (front_matter, body, body_line) = cut_front_matter(without_bom(split.signed))?;
    let mut job = front_matter_job(&yaml::mapping(front_matter, 2, "the front matter")?)?;
    read_sections(&mut job, body::sections(body, body_line)?)?;
    Ok(Document {
        job,
        signed_bytes: split.signed.as_bytes().to_vec(),
        signature,
    })
}

impl Document {
    /// The document's signed part with `entries` added to its History section as `- ` lines, or
    /// in a History section of their own at its end when it has none (MAML.md: a receipt can be
    /// rendered as the job's MAML with History lines appended). Unsigned: the caller signs it.
    /// Fails only for a `Document` not made by [`parse`].
    pub fn with_history(&self, entries: &[String]) -> Result<String, ParseError> {
        let text = std::str::from_utf8(&self.signed_bytes).map_err(|e| {
            ParseError::whole(Problem::NotUtf8 {
                offset: e.valid_up_to(),
            })
        })?;
        let mut lines: String = entries.iter().map(|e| format!("- {e}\n")).collect();
        let (_, body, body_line) = cut_front_matter(without_bom(text))?;
        let sections = body::sections(body, body_line)?;
        let Some(history) = sections.iter().find(|s| canonical(s.name) == "history") else {
            let separator = if text.ends_with('\n') { "\n" } else { "\n\n" };
            return Ok(format!("{text}{separator}## History\n{lines}"));
        };
        // After the section's last non-blank line, so that blank lines before the next heading
        // stay where they were.
        let section_start = history.text.as_ptr() as usize - text.as_ptr() as usize;
        let kept = history.text.trim_end();
        let at = section_start + kept.len();
        let mut out = String::with_capacity(text.len() + lines.len() + 1);
        out.push_str(&text[..at]);
        if !kept.is_empty() {
            out.push('\n');
        }
        let rest = &text[at..];
        if rest.starts_with('\n') {
            lines.pop();
        }
        out.push_str(&lines);
        out.push_str(rest);
        Ok(out)
    }
}

/// A CR that does not end a line is refused: it is no line ending MAML knows, and turning CRLF
/// into LF must leave no CR behind, or the signed bytes of a signed copy would change again.
fn refuse_bare_carriage_returns(text: &str) -> Result<(), ParseError> {
    let bytes = text.as_bytes();
    match (0..bytes.len()).find(|&i| bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
        Some(at) => Err(ParseError::at(
            1 + bytes[..at].iter().filter(|&&b| b == b'\n').count(),
            Problem::BareCarriageReturn,
        )),
        None => Ok(()),
    }
}

fn without_bom(text: &str) -> &str {
    text.strip_prefix(BOM).unwrap_or(text)
}

/// (front matter YAML, body, first line of the body).
fn cut_front_matter(text: &str) -> Result<(&str, &str, usize), ParseError> {
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().unwrap_or_default();
    if first.trim_end() != "---" {
        return Err(ParseError::at(1, Problem::NoFrontMatter));
    }
    let yaml_start = first.len();
    let mut offset = yaml_start;
    for (index, line) in lines.enumerate() {
        if matches!(line.trim_end(), "---" | "...") {
            return Ok((
                &text[yaml_start..offset],
                &text[offset + line.len()..],
                index + 3,
            ));
        }
        offset += line.len();
    }
    Err(ParseError::at(1, Problem::UnclosedFrontMatter))
}

const REQUIRED: [(&str, &str); 5] = [
    ("maml_version", "for example \"2.0.0\""),
    (
        "id",
        "a unique id such as urn:uuid:…; it makes submission idempotent",
    ),
    (
        "type",
        "quantum_circuit, training, inference, hybrid_workflow or workflow",
    ),
    ("origin", "who asks, for example agent://my-gateway"),
    (
        "created_at",
        "an RFC 3339 time such as 2026-11-20T10:00:00Z",
    ),
];

fn front_matter_job(entries: &[Entry]) -> Result<Job, ParseError> {
    let find = |key| entries.iter().find(|e| e.key == key);
    for (key, hint) in REQUIRED {
        if find(key).is_none() {
            return Err(ParseError::at(1, Problem::MissingKey { key, hint }));
        }
    }
    let required = |key| find(key).expect("checked above");
    let text = |entry: &Entry| match &entry.value {
        Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        _ => Err(wrong_type(entry, "a non-empty string")),
    };
    let created_at = time(required("created_at"), "created_at")?;
    let expires_at = find("expires_at")
        .map(|e| time(e, "expires_at"))
        .transpose()?;
    if let Some(expires_at) = expires_at
        && expires_at <= created_at
    {
        let line = find("expires_at").expect("just read").line;
        return Err(ParseError::at(line, Problem::ExpiresBeforeCreated));
    }
    let known = [
        "maml_version",
        "id",
        "type",
        "origin",
        "requires",
        "permissions",
        "created_at",
        "expires_at",
    ];
    Ok(Job {
        maml_version: version(required("maml_version"))?,
        id: id(required("id"))?,
        job_type: text(required("type"))?,
        origin: text(required("origin"))?,
        resources: find("requires")
            .map(resources)
            .transpose()?
            .unwrap_or_default(),
        permissions: find("permissions")
            .map(permissions)
            .transpose()?
            .unwrap_or_default(),
        created_at,
        expires_at,
        other_keys: entries
            .iter()
            .filter(|e| !known.contains(&e.key.as_str()))
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect(),
        intent: None,
        context: Map::new(),
        code_blocks: Vec::new(),
        input_schema: None,
        output_schema: None,
        history: Vec::new(),
        other_sections: Vec::new(),
    })
}

/// The id: a string of at most [`MAX_ID_CHARS`] characters, none of them a control character.
fn id(entry: &Entry) -> Result<String, ParseError> {
    let expected = "a string of at most 256 characters, none of them a control character, such \
                    as urn:uuid:123e4567-e89b-12d3-a456-426614174000";
    match &entry.value {
        Value::String(s) if !s.trim().is_empty() => {
            let id = s.trim();
            if id.chars().count() > MAX_ID_CHARS || id.chars().any(char::is_control) {
                return Err(wrong_type(entry, expected));
            }
            Ok(id.to_owned())
        }
        _ => Err(wrong_type(entry, expected)),
    }
}

fn wrong_type(entry: &Entry, expected: &'static str) -> ParseError {
    ParseError::at(
        entry.line,
        Problem::WrongType {
            key: entry.key.clone(),
            expected,
        },
    )
}

/// `maml_version` as a string ("2.0.0") or, as often in the wild, a number (2.0).
fn version(entry: &Entry) -> Result<MamlVersion, ParseError> {
    let written = match &entry.value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return Err(wrong_type(entry, "a version such as \"2.0.0\"")),
    };
    let major = written
        .trim_start_matches(['v', 'V'])
        .split('.')
        .next()
        .and_then(|m| m.parse::<u64>().ok());
    match major {
        Some(major @ (1 | 2)) => Ok(MamlVersion { major }),
        _ => Err(ParseError::at(
            entry.line,
            Problem::UnsupportedVersion { found: written },
        )),
    }
}

fn time(entry: &Entry, key: &'static str) -> Result<Timestamp, ParseError> {
    let Value::String(written) = &entry.value else {
        return Err(wrong_type(
            entry,
            "an RFC 3339 time such as 2026-11-20T10:00:00Z",
        ));
    };
    written.trim().parse::<Timestamp>().map_err(|e| {
        ParseError::at(
            entry.line,
            Problem::BadTime {
                key,
                detail: e.to_string(),
            },
        )
    })
}

/// A string or a list of strings, the two shapes MAML files in the wild use.
fn strings(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

fn resources(entry: &Entry) -> Result<Vec<String>, ParseError> {
    let expected = "a mapping with `resources`: a string or a list of strings";
    let Value::Object(requires) = &entry.value else {
        return Err(wrong_type(entry, expected));
    };
    requires
        .get("resources")
        .map_or(Some(Vec::new()), strings)
        .ok_or_else(|| wrong_type(entry, expected))
}

fn permissions(entry: &Entry) -> Result<BTreeMap<String, Vec<String>>, ParseError> {
    let expected = "a mapping from an action to a string or a list of strings";
    let Value::Object(map) = &entry.value else {
        return Err(wrong_type(entry, expected));
    };
    map.iter()
        .map(|(action, who)| Some((action.clone(), strings(who)?)))
        .collect::<Option<_>>()
        .ok_or_else(|| wrong_type(entry, expected))
}

/// `Code_Blocks`, `code blocks` and `Code-Blocks` all name one section.
fn canonical(name: &str) -> String {
    name.to_ascii_lowercase().replace([' ', '-'], "_")
}

fn read_sections(job: &mut Job, sections: Vec<RawSection>) -> Result<(), ParseError> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for section in sections {
        let name = canonical(section.name);
        if let Some((_, first_line)) = seen.iter().find(|(n, _)| *n == name) {
            return Err(ParseError::at(
                section.heading_line,
                Problem::DuplicateSection {
                    name: section.name.to_owned(),
                    first_line: *first_line,
                },
            ));
        }
        seen.push((name.clone(), section.heading_line));
        match name.as_str() {
            "intent" => job.intent = Some(section.text.trim().to_owned()),
            "context" => job.context = context(&section)?,
            "code_blocks" => {
                job.code_blocks = section
                    .code_blocks
                    .iter()
                    .map(|b| CodeBlock {
                        language: b.language.to_owned(),
                        kind: BlockKind::of(b.language),
                        code: b.code.to_owned(),
                        line: b.line,
                    })
                    .collect()
            }
            "input_schema" => job.input_schema = Some(schema(&section, "Input_Schema")?),
            "output_schema" => job.output_schema = Some(schema(&section, "Output_Schema")?),
            "history" => {
                job.history = section
                    .text
                    .lines()
                    .map(|l| l.trim().trim_start_matches("- ").to_owned())
                    .filter(|l| !l.is_empty())
                    .collect()
            }
            _ => job.other_sections.push(Section {
                name: section.name.to_owned(),
                line: section.heading_line,
                text: section.text.to_owned(),
            }),
        }
    }
    Ok(())
}

/// A section's content: its first fenced block if it has one, else its text.
fn content<'a>(section: &RawSection<'a>) -> (&'a str, usize) {
    match section.code_blocks.first() {
        Some(block) => (block.code, block.line + 1),
        None => (section.text, section.text_line),
    }
}

fn context(section: &RawSection) -> Result<Map<String, Value>, ParseError> {
    let (text, line) = content(section);
    let entries = yaml::mapping(text, line, "the Context section")?;
    for entry in &entries {
        let valid = match entry.key.as_str() {
            "shots" => entry.value.as_u64().is_some_and(|n| n > 0),
            "seed" => entry.value.is_u64(),
            "precision" => matches!(entry.value.as_str(), Some("single" | "double")),
            _ => true,
        };
        if !valid {
            let expected = match entry.key.as_str() {
                "shots" => "a positive whole number",
                "seed" => "a whole number, 0 or more",
                _ => "`single` (complex64) or `double` (complex128)",
            };
            return Err(wrong_type(entry, expected));
        }
    }
    Ok(entries.into_iter().map(|e| (e.key, e.value)).collect())
}

fn schema(section: &RawSection, name: &'static str) -> Result<Value, ParseError> {
    let (text, line) = content(section);
    let schema = serde_json::from_str(text).map_err(|e| {
        ParseError::at(
            line + e.line().saturating_sub(1),
            Problem::BadJson {
                section: name,
                detail: e.to_string(),
            },
        )
    })?;
    // Refused here rather than when the result is checked, after the job has run.
    schema::compile(&schema).map_err(|detail| {
        ParseError::at(
            line,
            Problem::BadSchema {
                section: name,
                detail,
            },
        )
    })?;
    Ok(schema)
}

impl Job {
    /// Checks a result against the job's Output_Schema; any result passes when it has none.
    pub fn check_output(&self, result: &Value) -> Result<(), OutputMismatch> {
        schema::check_output(self.output_schema.as_ref(), result)
    }
}

/// A document signed by [`sign_document`].
pub struct SignedDocument {
    pub text: String,
    /// The key of the signature this one replaced, if the document was signed before.
    pub replaced: Option<KeyId>,
}

/// Signs a MAML document: checks that it parses, drops any old signature block, ends the signed
/// text with a newline and appends a block signed by `key`. The output's lines end in LF.
pub fn sign_document(
    bytes: &[u8],
    key: &SecretKey,
    max_bytes: usize,
) -> Result<SignedDocument, ParseError> {
    let document = parse(bytes, max_bytes)?;
    let mut text = String::from_utf8(document.signed_bytes).expect("parsed from UTF-8");
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let sha3_512 = digest(text.as_bytes());
    let block = SignatureBlock {
        key_id: key.public_key().id(),
        signature: key.sign(&sha3_512),
        sha3_512,
        line: text.lines().count() + 1,
    };
    text.push_str(&block.render());
    Ok(SignedDocument {
        text,
        replaced: document.signature.map(|s| s.key_id),
    })
}
