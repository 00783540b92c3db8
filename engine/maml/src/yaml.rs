//! YAML mappings read with each key's line, so errors can point at it.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::error::{ParseError, Problem};

/// One `key: value` of a mapping, its line counted in the whole document.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub value: Value,
    pub line: usize,
}

/// Reads `text`, which starts at document line `first_line`, as a YAML mapping. An empty text is
/// an empty mapping; a key given twice is refused rather than silently overwritten.
pub(crate) fn mapping(
    text: &str,
    first_line: usize,
    part: &'static str,
) -> Result<Vec<Entry>, ParseError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    // Duplicates pass through to `Entries`, which the loop below refuses naming both lines.
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        with_snippet: false,
    };
    let entries: Entries = serde_saphyr::from_str_with_options(text, options).map_err(|error| {
        let line = error
            .location()
            .map_or(first_line, |at| first_line + at.line() as usize - 1);
        let detail = error.to_string();
        // The YAML's own line numbers would mislead; the error's line is the document's.
        let detail = detail.lines().next().unwrap_or_default();
        let detail = detail
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_owned();
        if detail.contains("expected mapping") || detail.contains("invalid type") {
            ParseError::at(line, Problem::NotAMapping { part })
        } else {
            ParseError::at(line, Problem::Yaml { part, detail })
        }
    })?;
    let mut out: Vec<Entry> = Vec::with_capacity(entries.0.len());
    for (key, value) in entries.0 {
        let line = first_line + key.referenced.line() as usize - 1;
        if let Some(first) = out.iter().find(|e| e.key == key.value) {
            return Err(ParseError::at(
                line,
                Problem::DuplicateKey {
                    part,
                    key: key.value,
                    first_line: first.line,
                },
            ));
        }
        out.push(Entry {
            key: key.value,
            value: value.value,
            line,
        });
    }
    Ok(out)
}

struct Entries(Vec<(Spanned<String>, Spanned<Value>)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}
