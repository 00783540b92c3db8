//! Checking a log: the chain from the first record to the last, and every checkpoint's signature.

use std::io::BufRead;
use std::path::Path;

use crate::{AuditError, Event, Line, Record, chain, checkpoint_message, io_error};

/// An intact log.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub records: u64,
    pub checkpoints: u64,
    /// The number of the last checkpoint, if there is one.
    pub last_checkpoint: Option<u64>,
    /// Records after the last checkpoint: no signature vouches for them yet. The engine signs
    /// within a second of writing, when it stops and when it starts; more than that means it
    /// was killed, or the file was changed.
    pub unsigned: u64,
    /// The last record's hash, hex: a log that is later cut back to before it no longer ends
    /// there.
    pub head: String,
}

/// Checks every line of the log at `path`; `signed_by(key_id, message, signature)` says whether a
/// checkpoint's signature is the engine's. The first fault found is the error, with its line.
pub fn verify(
    path: &Path,
    signed_by: impl Fn(&str, &[u8], &[u8]) -> bool,
) -> Result<Report, AuditError> {
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    let mut reader = std::io::BufReader::new(file);
    let mut report = Report {
        records: 0,
        checkpoints: 0,
        last_checkpoint: None,
        unsigned: 0,
        head: hex::encode([0; 32]),
    };
    let mut hash = [0; 32];
    let mut text = Vec::new();
    for number in 1.. {
        text.clear();
        let read = reader
            .read_until(b'\n', &mut text)
            .map_err(io_error(path))?;
        if read == 0 {
            break;
        }
        let broken = |what: String| AuditError::Broken {
            path: path.display().to_string(),
            line: number,
            what,
        };
        let Some(line) = text.strip_suffix(b"\n") else {
            return Err(broken(
                "the last line is incomplete (a write cut short, or the file cut)".into(),
            ));
        };
        let line: Line = serde_json::from_slice(line)
            .map_err(|e| broken(format!("not an audit record: {e}")))?;
        let record: Record = serde_json::from_str(line.record.get())
            .map_err(|e| broken(format!("not an audit record: {e}")))?;
        if record.seq != report.records {
            return Err(broken(format!(
                "record {} where record {} should be: a record was removed, added or moved",
                record.seq, report.records
            )));
        }
        let previous = hash;
        hash = chain(&previous, line.record.get().as_bytes());
        if hex::encode(hash) != line.hash {
            return Err(broken(format!(
                "record {} was changed: its hash does not match its contents and the records \
                 before it",
                record.seq
            )));
        }
        report.records += 1;
        report.unsigned += 1;
        if let Event::Checkpoint { key_id, signature } = &record.event {
            let valid = hex::decode(signature)
                .is_ok_and(|s| signed_by(key_id, &checkpoint_message(&previous), &s));
            if !valid {
                return Err(broken(format!(
                    "checkpoint {} is not signed by the engine's key: the records before it \
                     were rewritten",
                    record.seq
                )));
            }
            report.checkpoints += 1;
            report.last_checkpoint = Some(record.seq);
            report.unsigned = 0;
        }
    }
    report.head = hex::encode(hash);
    Ok(report)
}
