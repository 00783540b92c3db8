//! Appending to the log under an exclusive lock.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
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
    /// The size past which a signed append goes on in a new file.
    rotate_at: Option<u64>,
}

/// Where the chain stands: the next record's number and the last record's hash.
struct ChainEnd {
    next_seq: u64,
    hash: [u8; 32],
}

impl AuditLog {
    /// Opens the log, creating it empty if there is none.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        Ok(Self {
            file: open_appending(path)?,
            path: path.to_owned(),
            rotate_at: None,
        })
    }

    /// Once the file holds `bytes` or more, a signed append renames it `audit.log.N` (N the
    /// number of its last record, 12 digits) and the log goes on in a new `audit.log` whose
    /// first record is [`Event::Continued`]. The chain runs on across files.
    /// `None`: one file for ever.
    pub fn rotating_at(mut self, bytes: Option<u64>) -> Self {
        self.rotate_at = bytes;
        self
    }

    /// Appends `events` in order, then, with `signer`, a checkpoint over them and everything
    /// before, and syncs the file to disk.
    pub fn append(
        &mut self,
        events: impl IntoIterator<Item = Event>,
        signer: Option<&dyn CheckpointSigner>,
    ) -> Result<(), AuditError> {
        self.lock_current()?;
        let appended = self.append_locked(events, signer);
        // Only after a checkpoint, so that every renamed file ends signed. The events are
        // written whatever happens here (failing the append would have them written again):
        // a log that cannot be renamed grows on and is renamed at a later checkpoint.
        if let Ok(end) = &appended
            && signer.is_some()
            && self.is_full()
            && let Err(e) = self.rotate(end)
        {
            tracing::error!("audit log: cannot go on in a new file: {e}; this one grows on");
        }
        // Unlocked when the file closes, at the latest.
        let _ = self.file.unlock();
        appended.map(drop)
    }

    fn is_full(&self) -> bool {
        let size = self.file.metadata().map(|m| m.len());
        self.rotate_at
            .is_some_and(|most| size.is_ok_and(|size| size >= most))
    }

    /// Locks the file that is the log now: another writer may have renamed the one this
    /// handle has open while it waited for the lock.
    fn lock_current(&mut self) -> Result<(), AuditError> {
        loop {
            self.file.lock().map_err(io_error(&self.path))?;
            let open = self.file.metadata().map_err(io_error(&self.path))?;
            let named = std::fs::metadata(&self.path).ok();
            if named.is_some_and(|n| (n.dev(), n.ino()) == (open.dev(), open.ino())) {
                return Ok(());
            }
            let _ = self.file.unlock();
            self.file = open_appending(&self.path)?;
        }
    }

    /// Renames the log after its last record and goes on in a new file, under the old one's
    /// lock. The new file is written whole before it takes the name, and the old one is linked
    /// to its new name first, so that `audit.log` always exists and is always a whole chain's
    /// end: a writer that opens it meanwhile finds one or the other.
    fn rotate(&mut self, end: &ChainEnd) -> Result<(), AuditError> {
        let last = end.next_seq - 1;
        let renamed = sibling(&self.path, &format!("{last:012}"));
        let fresh = sibling(&self.path, "new");
        let continued = Record {
            seq: end.next_seq,
            at: Timestamp::now(),
            event: Event::Continued {
                previous: file_name(&renamed),
                previous_hash: hex::encode(end.hash),
            },
        };
        let record = serde_json::to_vec(&continued).expect("records serialize");
        let text = line(&chain(&end.hash, &record), &record);
        let mut new = File::create(&fresh).map_err(io_error(&fresh))?;
        new.write_all(&text)
            .and_then(|()| new.sync_data())
            .map_err(io_error(&fresh))?;
        // A link left by a rotation cut short by a crash names this same file.
        let _ = std::fs::remove_file(&renamed);
        std::fs::hard_link(&self.path, &renamed).map_err(io_error(&renamed))?;
        std::fs::rename(&fresh, &self.path).map_err(io_error(&self.path))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_error(dir))?;
        }
        tracing::info!(
            "audit log: {} continues in a new {}",
            renamed.display(),
            self.path.display()
        );
        // The old file's lock goes with its handle.
        self.file = open_appending(&self.path)?;
        Ok(())
    }

    /// Appends under the lock; returns where the chain ends now.
    fn append_locked(
        &mut self,
        events: impl IntoIterator<Item = Event>,
        signer: Option<&dyn CheckpointSigner>,
    ) -> Result<ChainEnd, AuditError> {
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
            text.extend_from_slice(&line(&end.hash, &record));
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
        self.file.sync_data().map_err(io_error(&self.path))?;
        Ok(end)
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

fn open_appending(path: &Path) -> Result<File, AuditError> {
    File::options()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(io_error(path))
}

/// One line of the file: a record and its hash.
fn line(hash: &[u8; 32], record: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(record.len() + 96);
    line.extend_from_slice(b"{\"hash\":\"");
    line.extend_from_slice(hex::encode(hash).as_bytes());
    line.extend_from_slice(b"\",\"record\":");
    line.extend_from_slice(record);
    line.extend_from_slice(b"}\n");
    line
}

/// `audit.log.SUFFIX` beside `audit.log`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    path.with_file_name(format!("{}.{suffix}", file_name(path)))
}

pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}
