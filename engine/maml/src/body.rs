//! The Markdown body cut into `## ` sections and fenced code blocks, line by line.
//!
//! MAML needs only these two structures, each with exact line numbers and a refusal of a fence
//! left open (which CommonMark silently runs to the end of the file, swallowing every section
//! after it); a line scanner that follows CommonMark's rules for both is all it takes.

use crate::error::{ParseError, Problem};

/// A `## ` section: its heading and everything up to the next one.
#[derive(Debug)]
pub(crate) struct RawSection<'a> {
    pub name: &'a str,
    pub heading_line: usize,
    /// The text after the heading line.
    pub text: &'a str,
    pub text_line: usize,
    pub code_blocks: Vec<RawCodeBlock<'a>>,
}

#[derive(Debug)]
pub(crate) struct RawCodeBlock<'a> {
    /// The first word of the info string, as written.
    pub language: &'a str,
    pub code: &'a str,
    /// The line of the opening fence.
    pub line: usize,
}

struct OpenFence<'a> {
    marker: u8,
    width: usize,
    language: &'a str,
    line: usize,
    code_start: usize,
}

/// Splits `body`, whose first line is document line `first_line`, into sections. Text before the
/// first section (a title, say) is not part of any.
pub(crate) fn sections(body: &str, first_line: usize) -> Result<Vec<RawSection<'_>>, ParseError> {
    let mut sections: Vec<RawSection> = Vec::new();
    let mut fence: Option<OpenFence> = None;
    let mut offset = 0;
    let mut text_start = 0;
    for (index, line) in body.split_inclusive('\n').enumerate() {
        let line_number = first_line + index;
        let start = offset;
        offset += line.len();
        let content = line.trim_end_matches(['\n', '\r']);
        if let Some(open) = &fence {
            if closes(content, open) {
                let block = RawCodeBlock {
                    language: open.language,
                    code: &body[open.code_start..start],
                    line: open.line,
                };
                if let Some(section) = sections.last_mut() {
                    section.code_blocks.push(block);
                }
                fence = None;
            }
        } else if let Some((marker, width, info)) = opening_fence(content) {
            fence = Some(OpenFence {
                marker,
                width,
                language: info.split_whitespace().next().unwrap_or(""),
                line: line_number,
                code_start: offset,
            });
        } else if let Some(name) = section_heading(content) {
            if let Some(previous) = sections.last_mut() {
                previous.text = &body[text_start..start];
            }
            text_start = offset;
            sections.push(RawSection {
                name,
                heading_line: line_number,
                text: &body[offset..],
                text_line: line_number + 1,
                code_blocks: Vec::new(),
            });
        }
    }
    if let Some(open) = fence {
        return Err(ParseError::at(
            open.line,
            Problem::UnclosedCodeBlock {
                fence: String::from_utf8(vec![open.marker; open.width]).expect("ASCII fence"),
            },
        ));
    }
    Ok(sections)
}

/// Up to three spaces of indent, then a run of at least three of one marker character.
fn fence_run(line: &str) -> Option<(u8, usize, &str)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let marker = *rest.as_bytes().first()?;
    if marker != b'`' && marker != b'~' {
        return None;
    }
    let width = rest.bytes().take_while(|&b| b == marker).count();
    (width >= 3).then(|| (marker, width, &rest[width..]))
}

fn opening_fence(line: &str) -> Option<(u8, usize, &str)> {
    let (marker, width, info) = fence_run(line)?;
    // A backtick fence's info string may not contain a backtick (CommonMark 4.5).
    (marker == b'~' || !info.contains('`')).then(|| (marker, width, info.trim()))
}

fn closes(line: &str, open: &OpenFence) -> bool {
    fence_run(line).is_some_and(|(marker, width, rest)| {
        marker == open.marker && width >= open.width && rest.trim().is_empty()
    })
}

/// `## Name`, with up to three spaces of indent and an optional closing run of `#`.
fn section_heading(line: &str) -> Option<&str> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = line[indent..].strip_prefix("##")?;
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    Some(rest.trim().trim_end_matches('#').trim_end())
}
