//! The signature block of MAML.md and signing a document.
//!
//! Signed bytes: the document up to the line that opens the signature block, with CRLF turned
//! into LF. The block holds their SHA3-512 digest and an ML-DSA-65 signature over that digest
//! (FIPS 204 pure mode, context string `MAML`), made by the key whose id it names.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha3::{Digest, Sha3_512};

use crate::error::{ParseError, Problem};
use crate::keys::{KeyId, PublicKey, SIGNATURE_BYTES};

pub use crate::markers::{BEGIN, END};
pub const ALGORITHM: &str = "ML-DSA-65";

/// The fields of a signature block, checked for form (not yet for truth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureBlock {
    pub key_id: KeyId,
    pub sha3_512: [u8; 64],
    pub signature: Vec<u8>,
    /// Line of the block's BEGIN marker.
    pub line: usize,
}

impl SignatureBlock {
    /// The block's text, BEGIN and END lines included, each line ending in LF.
    pub fn render(&self) -> String {
        format!(
            "{BEGIN}\nalgorithm: {ALGORITHM}\nkey_id: {}\nsha3_512: {}\nsignature: {}\n{END}\n",
            self.key_id,
            hex::encode(self.sha3_512),
            BASE64.encode(&self.signature)
        )
    }
}

/// Why a signature block does not vouch for its document under a given key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the document is not signed (it has no `{BEGIN}` block); sign it with `chimera sign`")]
    Unsigned,
    #[error("signed by key {signed_by}, not by the key given ({given})")]
    OtherKey { signed_by: KeyId, given: KeyId },
    #[error(
        "the document changed after it was signed: its SHA3-512 is {actual}, the signature block says {claimed}"
    )]
    DigestMismatch { actual: String, claimed: String },
    #[error("the ML-DSA-65 signature does not verify under key {key_id}")]
    BadSignature { key_id: KeyId },
}

pub fn digest(signed_bytes: &[u8]) -> [u8; 64] {
    Sha3_512::digest(signed_bytes).into()
}

/// Checks that `block` signs `signed_bytes` with `key`: the key ids agree, the digest is the
/// document's, and the signature verifies.
pub fn verify(
    signed_bytes: &[u8],
    block: &SignatureBlock,
    key: &PublicKey,
) -> Result<(), SignatureError> {
    if block.key_id != key.id() {
        return Err(SignatureError::OtherKey {
            signed_by: block.key_id,
            given: key.id(),
        });
    }
    let actual = digest(signed_bytes);
    if actual != block.sha3_512 {
        return Err(SignatureError::DigestMismatch {
            actual: hex::encode(actual),
            claimed: hex::encode(block.sha3_512),
        });
    }
    if !key.verify(&actual, &block.signature) {
        return Err(SignatureError::BadSignature { key_id: key.id() });
    }
    Ok(())
}

/// A document cut at its signature block.
pub(crate) struct Split<'a> {
    /// Everything before the BEGIN line.
    pub signed: &'a str,
    /// The lines between the markers, and the BEGIN line's number.
    pub block: Option<(&'a str, usize)>,
}

/// Finds the signature block of a CRLF-normalised document and checks that nothing follows it.
pub(crate) fn split(text: &str) -> Result<Split<'_>, ParseError> {
    let mut offset = 0;
    let mut begin: Option<(usize, usize, usize)> = None; // (line, start of BEGIN, start of fields)
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let line_number = index + 1;
        let start = offset;
        offset += line.len();
        // Markers match exactly: every byte of the block's frame is fixed.
        let marker = line.strip_suffix('\n').unwrap_or(line);
        match begin {
            None if marker == BEGIN => begin = Some((line_number, start, offset)),
            None if marker == END => {
                return Err(ParseError::at(line_number, Problem::StraySignatureEnd));
            }
            Some((begin_line, begin_start, fields_start)) if marker == END => {
                if offset != text.len() {
                    return Err(ParseError::at(
                        line_number + 1,
                        Problem::TrailerAfterSignature,
                    ));
                }
                return Ok(Split {
                    signed: &text[..begin_start],
                    block: Some((&text[fields_start..start], begin_line)),
                });
            }
            _ => {}
        }
    }
    match begin {
        Some((line, _, _)) => Err(ParseError::at(line, Problem::UnclosedSignature)),
        None => Ok(Split {
            signed: text,
            block: None,
        }),
    }
}

/// Reads the `key: value` lines between the markers. A `#` after a value starts a comment.
pub(crate) fn parse_fields(fields: &str, begin_line: usize) -> Result<SignatureBlock, ParseError> {
    let mut algorithm = None;
    let mut key_id = None;
    let mut sha3_512 = None;
    let mut signature = None;
    for (index, line) in fields.lines().enumerate() {
        let line_number = begin_line + 1 + index;
        let at = |problem| ParseError::at(line_number, problem);
        let line = line.split(" #").next().unwrap_or_default().trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| at(Problem::UnknownSignatureField))?;
        let value = value.trim();
        let (field, slot) = match name.trim() {
            "algorithm" => ("algorithm", &mut algorithm),
            "key_id" => ("key_id", &mut key_id),
            "sha3_512" => ("sha3_512", &mut sha3_512),
            "signature" => ("signature", &mut signature),
            _ => return Err(at(Problem::UnknownSignatureField)),
        };
        if slot.replace((value, line_number)).is_some() {
            return Err(at(Problem::DuplicateSignatureField { field }));
        }
    }
    fn field<'a>(
        slot: Option<(&'a str, usize)>,
        field: &'static str,
        begin_line: usize,
    ) -> Result<(&'a str, usize), ParseError> {
        slot.ok_or(ParseError::at(
            begin_line,
            Problem::MissingSignatureField { field },
        ))
    }
    let bad = |line, field, expected| {
        ParseError::at(line, Problem::BadSignatureField { field, expected })
    };

    let (value, line) = field(algorithm, "algorithm", begin_line)?;
    if value != ALGORITHM {
        return Err(bad(
            line,
            "algorithm",
            "this engine checks `ML-DSA-65` only",
        ));
    }
    let (value, line) = field(key_id, "key_id", begin_line)?;
    let key_id = lowercase_hex(value)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            bad(
                line,
                "key_id",
                "64 lowercase hex digits, the SHA3-256 of the public key",
            )
        })?;
    let (value, line) = field(sha3_512, "sha3_512", begin_line)?;
    let mut digest = [0u8; 64];
    lowercase_hex(value)
        .and_then(|v| hex::decode_to_slice(v, &mut digest).ok())
        .ok_or_else(|| {
            bad(
                line,
                "sha3_512",
                "128 lowercase hex digits, the SHA3-512 of the signed bytes",
            )
        })?;
    let (value, line) = field(signature, "signature", begin_line)?;
    let signature = BASE64
        .decode(value)
        .ok()
        .filter(|s| s.len() == SIGNATURE_BYTES)
        .ok_or_else(|| {
            bad(
                line,
                "signature",
                "base64 of the 3,309-byte ML-DSA-65 signature (is it a placeholder?)",
            )
        })?;
    Ok(SignatureBlock {
        key_id,
        sha3_512: digest,
        signature,
        line: begin_line,
    })
}

/// Hex in one spelling only, so that no edit of the block leaves it meaning the same.
fn lowercase_hex(value: &str) -> Option<&str> {
    (!value.bytes().any(|b| b.is_ascii_uppercase())).then_some(value)
}
