//! Checking a log: the chain from the first record to the last, and every checkpoint's signature.

use std::io::BufRead;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::log::file_name;
use crate::{AuditError, Event, Line, Record, chain, checkpoint_message, io_error};

/// An intact log.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The number of the first record checked: 0, unless the oldest files were removed.
    pub first: u64,
    /// The files checked: the log, and those it went on from.
    pub files: u64,
    /// Records checked.
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

/// Checks every line of the log at `path`, and of the files it went on from (`audit.log.N`,
/// oldest first; where the oldest were removed, from the first one left);
/// `signed_by(key_id, message, signature)` says whether a checkpoint's signature is the
/// engine's. The first fault found is the error, with its file and line.
pub fn verify(
    path: &Path,
    signed_by: impl Fn(&str, &[u8], &[u8]) -> bool,
) -> Result<Report, AuditError> {
    let mut report = Report {
        first: 0,
        files: 0,
        records: 0,
        checkpoints: 0,
        last_checkpoint: None,
        unsigned: 0,
        head: hex::encode([0; 32]),
    };
    let mut chain_end = None;
    for file in files(path)? {
        verify_file(&file, &signed_by, &mut chain_end, &mut report)?;
        report.files += 1;
    }
    Ok(report)
}

/// The log's renamed files, oldest first, then the log itself. A name that is another link to
/// a file already listed (what a rotation cut short by a crash leaves) is left out.
fn files(path: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let current = std::fs::metadata(path).map_err(io_error(path))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let prefix = format!("{}.", file_name(path));
    let mut renamed: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let number = name.strip_prefix(&prefix)?;
            (number.len() == 12 && number.bytes().all(|b| b.is_ascii_digit()))
                .then(|| (name, entry.path()))
        })
        .collect();
    renamed.sort();
    let mut seen = vec![(current.dev(), current.ino())];
    let mut files = Vec::new();
    for (_, file) in renamed {
        let meta = std::fs::metadata(&file).map_err(io_error(&file))?;
        if !seen.contains(&(meta.dev(), meta.ino())) {
            seen.push((meta.dev(), meta.ino()));
            files.push(file);
        }
    }
    files.push(path.to_owned());
    Ok(files)
}

/// Checks one file, going on from `chain_end` (the last hash and the next record's number
/// of the files before; `None` before the first).
fn verify_file(
    path: &Path,
    signed_by: &impl Fn(&str, &[u8], &[u8]) -> bool,
    chain_end: &mut Option<([u8; 32], u64)>,
    report: &mut Report,
) -> Result<(), AuditError> {
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    let mut reader = std::io::BufReader::new(file);
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
        let (previous, expected) = match (*chain_end, &record.event) {
            (Some(end), _) => end,
            // The oldest file left began by going on from one since removed: the chain is
            // checked from there.
            (None, Event::Continued { previous_hash, .. }) => {
                let mut hash = [0; 32];
                hex::decode_to_slice(previous_hash, &mut hash)
                    .map_err(|_| broken("its previous_hash is not 64 hex digits".into()))?;
                report.first = record.seq;
                (hash, record.seq)
            }
            (None, _) => ([0; 32], 0),
        };
        if record.seq != expected {
            return Err(broken(format!(
                "record {} where record {expected} should be: a record (or a whole file of \
                 them) was removed, added or moved",
                record.seq
            )));
        }
        let hash = chain(&previous, line.record.get().as_bytes());
        if hex::encode(hash) != line.hash {
            return Err(broken(format!(
                "record {} was changed: its hash does not match its contents and the records \
                 before it",
                record.seq
            )));
        }
        *chain_end = Some((hash, record.seq + 1));
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
        report.head = hex::encode(hash);
    }
    Ok(())
}
