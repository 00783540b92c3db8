//! The journal's values sealed under the engine's data key: each job's record (its result, error
//! and receipt among it), its document and its checked job, each bound to its table and id, so
//! that a value moved to another job or table does not open.
//!
//! The tables' keys stay readable: job ids, submission numbers and the seconds jobs finished,
//! which opening, listing and pruning go by (as Vault keeps its storage paths readable).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chimera_job::CheckedJob;
use chimera_keys::DataSealer;

use crate::{JobRecord, JournalError};

/// How the journal seals and opens its values; clones share the key.
#[derive(Clone, Debug)]
pub struct Sealed(Arc<DataSealer>);

/// The tables whose values are sealed, as their places name them.
#[derive(Clone, Copy)]
pub(crate) enum Value {
    Record,
    Document,
    Checked,
}

impl Value {
    fn name(self) -> &'static str {
        match self {
            Self::Record => "jobs",
            Self::Document => "documents",
            Self::Checked => "checked",
        }
    }

    fn place(self, id: &str) -> Vec<u8> {
        [self.name().as_bytes(), b"\0", id.as_bytes()].concat()
    }
}

impl Sealed {
    pub fn new(sealer: Arc<DataSealer>) -> Self {
        Self(sealer)
    }

    pub(crate) fn seal(&self, value: Value, id: &str, plaintext: &[u8]) -> Vec<u8> {
        self.0.seal(&value.place(id), plaintext)
    }

    fn open(&self, value: Value, id: &str, stored: &[u8]) -> Result<Vec<u8>, JournalError> {
        self.0
            .open(&value.place(id), stored)
            .map_err(|e| corrupt(id, value, e))
    }

    pub(crate) fn seal_record(&self, record: &JobRecord) -> Result<Vec<u8>, String> {
        let json = serde_json::to_vec(record).map_err(|e| e.to_string())?;
        Ok(self.seal(Value::Record, &record.id, &json))
    }

    pub(crate) fn record(&self, id: &str, stored: &[u8]) -> Result<JobRecord, JournalError> {
        let json = self.open(Value::Record, id, stored)?;
        crate::decode(id, &json)
    }

    pub(crate) fn seal_checked(&self, id: &str, job: &CheckedJob) -> Result<Vec<u8>, String> {
        let json = serde_json::to_vec(job).map_err(|e| e.to_string())?;
        Ok(self.seal(Value::Checked, id, &json))
    }

    pub(crate) fn checked(&self, id: &str, stored: &[u8]) -> Result<CheckedJob, JournalError> {
        let json = self.open(Value::Checked, id, stored)?;
        crate::decode_checked(id, &json)
    }

    pub(crate) fn seal_document(&self, id: &str, document: &str) -> Vec<u8> {
        self.seal(Value::Document, id, document.as_bytes())
    }

    pub(crate) fn document(&self, id: &str, stored: &[u8]) -> Result<String, JournalError> {
        let bytes = self.open(Value::Document, id, stored)?;
        String::from_utf8(bytes).map_err(|e| corrupt(id, Value::Document, e))
    }
}

fn corrupt(id: &str, value: Value, e: impl std::fmt::Display) -> JournalError {
    JournalError::Corrupt {
        id: id.to_owned(),
        detail: format!("its {} entry: {e}", value.name()),
    }
}

/// A sealed value as a line of text can hold it (for what a repair lists as lost).
pub(crate) fn as_text(stored: &[u8]) -> String {
    BASE64.encode(stored)
}
