//! Appending to the log under an exclusive lock.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::{AuditError, Event, Line, Record, chain, checkpoint_message, io_error};

/// How much of the file's end is read to find its last record: records are far smaller.
const TAIL: u64 = 64 * 1024;

/// Signs checkpoints: the engine's key.
pub trait CheckpointSigner {
    /// SHA3-256 of the public key, hex.
    fn key_id(&self) -> String;
    fn sign(&self, message: &[u8]) -> Vec<u8>;
}

/// The engine shares its key with its other signers.
impl<T: CheckpointSigner + ?Sized> CheckpointSigner for std::sync::Arc<T> {
    fn key_id(&self) -> String {
        (**self).key_id()
    }
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        (**self).sign(message)
    }
}

pub struct AuditLog {
    file: File,
    path: PathBuf,
}

/// Where the chain stands: the next record's number and the last record's hash.
struct ChainEnd {
    next_seq: u64,
    hash: [u8; 32],
}

impl AuditLog {
    /// Opens the log, creating it empty if there is none.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let file = File::options()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_error(path))?;
        Ok(Self {
            file,
            path: path.to_owned(),
        })
    }

    /// Appends `events` in order, then, with `signer`, a checkpoint over them and everything
    /// before, and syncs the file to disk.
    pub fn append(
        &mut self,
        events: impl IntoIterator<Item = Event>,
        signer: Option<&dyn CheckpointSigner>,
    ) -> Result<(), AuditError> {
        self.file.lock().map_err(io_error(&self.path))?;
        let appended = self.append_locked(events, signer);
        // Unlocked when the file closes, at the latest.
        let _ = self.file.unlock();
        appended
    }

    fn append_locked(
        &mut self,
        events: impl IntoIterator<Item = Event>,
        signer: Option<&dyn CheckpointSigner>,
    ) -> Result<(), AuditError> {
        let mut end = self.chain_end()?;
        let mut text = Vec::new();
        let at = Timestamp::now();
        let mut push = |event: Event, end: &mut ChainEnd| {
            let record = Record {
                seq: end.next_seq,
                at,
                event,
            };
            let record = serde_json::to_vec(&record).expect("records serialize");
            end.hash = chain(&end.hash, &record);
            end.next_seq += 1;
            text.extend_from_slice(b"{\"hash\":\"");
            text.extend_from_slice(hex::encode(end.hash).as_bytes());
            text.extend_from_slice(b"\",\"record\":");
            text.extend_from_slice(&record);
            text.extend_from_slice(b"}\n");
        };
        for event in events {
            push(event, &mut end);
        }
        if let Some(signer) = signer {
            let signature = signer.sign(&checkpoint_message(&end.hash));
            let checkpoint = Event::Checkpoint {
                key_id: signer.key_id(),
                signature: hex::encode(signature),
            };
            push(checkpoint, &mut end);
        }
        self.file.write_all(&text).map_err(io_error(&self.path))?;
        self.file.sync_data().map_err(io_error(&self.path))
    }

    /// Reads the last record. A last line without its newline is what a write cut short by a
    /// crash leaves; it was never synced, so it is cut off and the chain goes on from the line
    /// before.
    fn chain_end(&mut self) -> Result<ChainEnd, AuditError> {
        let broken = |what: &str| AuditError::Broken {
            path: self.path.display().to_string(),
            line: 0,
            what: what.to_owned(),
        };
        let len = self.file.metadata().map_err(io_error(&self.path))?.len();
        let start = len.saturating_sub(TAIL);
        let mut tail = Vec::new();
        self.file
            .seek(SeekFrom::Start(start))
            .and_then(|_| self.file.read_to_end(&mut tail))
            .map_err(io_error(&self.path))?;
        let complete = match tail.iter().rposition(|&b| b == b'\n') {
            Some(end) => end + 1,
            None if start == 0 => 0,
            None => return Err(broken("its last line is longer than any record")),
        };
        if complete < tail.len() {
            self.file
                .set_len(start + complete as u64)
                .map_err(io_error(&self.path))?;
            tail.truncate(complete);
        }
        let Some(last) = tail[..complete.saturating_sub(1)]
            .split(|&b| b == b'\n')
            .next_back()
            .filter(|line| !line.is_empty())
        else {
            return Ok(ChainEnd {
                next_seq: 0,
                hash: [0; 32],
            });
        };
        let line: Line =
            serde_json::from_slice(last).map_err(|_| broken("its last line is not a record"))?;
        let record: Record = serde_json::from_str(line.record.get())
            .map_err(|_| broken("its last line is not a record"))?;
        let mut hash = [0; 32];
        hex::decode_to_slice(line.hash, &mut hash)
            .map_err(|_| broken("its last line's hash is not 64 hex digits"))?;
        Ok(ChainEnd {
            next_seq: record.seq + 1,
            hash,
        })
    }
}
