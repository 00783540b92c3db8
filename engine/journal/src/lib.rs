//! The engine's durable job journal, in one redb file.
//!
//! Every change goes through one writer thread that commits whatever changes are waiting in one
//! transaction (group commit), so that many concurrent submissions share one `fsync`. A caller's
//! change is answered only after its transaction is committed: when [`Journal::submit`] returns,
//! the job survives a crash of the process or the machine.
//!
//! Tables: `jobs` (id → the job record as JSON, without its document), `documents` (id → the MAML
//! document, written once: a job's record changes two or three times more, and rewriting a
//! document of kilobytes with each change made every commit several times larger) and
//! `unfinished` (submission sequence → id), so that a restarted engine finds the jobs it still
//! owes in the order they came.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use jiff::Timestamp;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
const DOCUMENTS: TableDefinition<&str, &str> = TableDefinition::new("documents");
const UNFINISHED: TableDefinition<u64, &str> = TableDefinition::new("unfinished");

/// How many waiting changes one transaction takes at most.
const MAX_GROUP: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("the journal {path} cannot be opened: {detail}")]
    Open { path: String, detail: String },
    #[error("the journal cannot be written: {0}")]
    Write(String),
    #[error("the journal cannot be read: {0}")]
    Read(String),
    #[error("the journal holds a record it cannot read (job {id}): {detail}")]
    Corrupt { id: String, detail: String },
    #[error("the journal's writer has stopped")]
    Stopped,
    #[error("no job {0}")]
    NoSuchJob(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// The engine's signed statement that a job ran (see the engine's `receipt` module).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub statement: String,
    /// The steps from the statement's hash to the Merkle root that `batch_statement` names.
    pub merkle_path: Vec<String>,
    /// What the signature is over: the root of a batch of statements signed together.
    pub batch_statement: String,
    /// Base64 of the ML-DSA-65 signature.
    pub signature: String,
    pub engine_key_id: String,
}

/// One job as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The MAML `id`.
    pub id: String,
    /// Submission order, set by the journal.
    pub seq: u64,
    pub job_type: String,
    /// The role of head that runs it (`quantum`, `ai`).
    pub role: String,
    /// The trust store name of the key that signed it.
    pub submitted_by: String,
    /// The document as submitted. Stored in the `documents` table, not in the record's JSON
    /// (read from the JSON only to move it out of journals written before that; see `prepare`).
    #[serde(default, skip_serializing)]
    pub document: String,
    /// SHA3-512 of the signed bytes, hex: what makes a resubmission the same job.
    pub digest: String,
    pub state: JobState,
    pub head: Option<String>,
    pub attempts: u32,
    /// Heads that died while running it (journals from before this count read as 0).
    #[serde(default)]
    pub head_deaths: u32,
    pub submitted_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// The result, JSON text exactly as the receipt hashes it.
    pub result: Option<String>,
    pub error: Option<String>,
    pub receipt: Option<Receipt>,
}

/// What [`Journal::submit`] did.
#[derive(Debug, Clone)]
pub enum Submitted {
    /// The job is new and now committed.
    Created(JobRecord),
    /// A job with this id and the same digest was already there: this is it.
    Existing(JobRecord),
    /// A job with this id but other signed bytes is there.
    Conflict(JobRecord),
}

type Mutation = Box<dyn FnOnce(&mut JobRecord) + Send>;

enum Change {
    Submit(
        Box<JobRecord>,
        tokio::sync::oneshot::Sender<Result<Submitted, JournalError>>,
    ),
    Update(
        String,
        Mutation,
        tokio::sync::oneshot::Sender<Result<JobRecord, JournalError>>,
    ),
}

/// The journal: cheap to clone, shared by every part of the engine.
#[derive(Clone)]
pub struct Journal {
    db: Arc<Database>,
    changes: mpsc::Sender<Change>,
}

impl Journal {
    /// Opens (or creates) the journal file at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let open_error = |detail: String| JournalError::Open {
            path: path.display().to_string(),
            detail,
        };
        let db = Database::create(path).map_err(|e| open_error(e.to_string()))?;
        let next_seq = prepare(&db).map_err(open_error)? + 1;
        let db = Arc::new(db);
        let (changes, queue) = mpsc::channel();
        let writer_db = Arc::clone(&db);
        std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || write_changes(&writer_db, &queue, next_seq))
            .map_err(|e| open_error(e.to_string()))?;
        Ok(Self { db, changes })
    }

    /// Records a new job (its `seq` is assigned here), unless its id is known. The change is
    /// queued at once, so changes are committed in the order they were asked for; the future
    /// resolves once its outcome is committed.
    pub fn submit(
        &self,
        record: JobRecord,
    ) -> impl Future<Output = Result<Submitted, JournalError>> + Send + 'static {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let queued = self.changes.send(Change::Submit(Box::new(record), reply));
        async move {
            queued.map_err(|_| JournalError::Stopped)?;
            answer.await.map_err(|_| JournalError::Stopped)?
        }
    }

    /// Applies `change` to the job `id`, queued at once like [`Journal::submit`]; resolves to the
    /// record as committed, without its document (which no change touches: [`Journal::get`] has
    /// it). Not reading and copying kilobytes of document for each start and end of a job is
    /// a good part of what makes an update cheap.
    pub fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut JobRecord) + Send + 'static,
    ) -> impl Future<Output = Result<JobRecord, JournalError>> + Send + 'static {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let queued = self
            .changes
            .send(Change::Update(id.to_owned(), Box::new(change), reply));
        async move {
            queued.map_err(|_| JournalError::Stopped)?;
            answer.await.map_err(|_| JournalError::Stopped)?
        }
    }

    pub fn get(&self, id: &str) -> Result<Option<JobRecord>, JournalError> {
        let read = |e: &dyn std::fmt::Display| JournalError::Read(e.to_string());
        let txn = self.db.begin_read().map_err(|e| read(&e))?;
        let jobs = txn.open_table(JOBS).map_err(|e| read(&e))?;
        let documents = txn.open_table(DOCUMENTS).map_err(|e| read(&e))?;
        load(&jobs, &documents, id)
    }

    /// Every job not yet finished, failed or cancelled, in submission order.
    pub fn unfinished(&self) -> Result<Vec<JobRecord>, JournalError> {
        let read = |e: &dyn std::fmt::Display| JournalError::Read(e.to_string());
        let txn = self.db.begin_read().map_err(|e| read(&e))?;
        let unfinished = txn.open_table(UNFINISHED).map_err(|e| read(&e))?;
        let jobs = txn.open_table(JOBS).map_err(|e| read(&e))?;
        let documents = txn.open_table(DOCUMENTS).map_err(|e| read(&e))?;
        let mut records = Vec::new();
        for entry in unfinished.iter().map_err(|e| read(&e))? {
            let (_, id) = entry.map_err(|e| read(&e))?;
            let record =
                load(&jobs, &documents, id.value())?.ok_or_else(|| JournalError::Corrupt {
                    id: id.value().to_owned(),
                    detail: "listed as unfinished but not stored".into(),
                })?;
            records.push(record);
        }
        Ok(records)
    }
}

/// The record of job `id` with its document, from the tables of a read or a write transaction.
fn load(
    jobs: &impl ReadableTable<&'static str, &'static [u8]>,
    documents: &impl ReadableTable<&'static str, &'static str>,
    id: &str,
) -> Result<Option<JobRecord>, JournalError> {
    let read = |e: redb::StorageError| JournalError::Read(e.to_string());
    let Some(bytes) = jobs.get(id).map_err(read)? else {
        return Ok(None);
    };
    let mut record = decode(id, bytes.value())?;
    let document = documents.get(id).map_err(read)?;
    record.document = document
        .ok_or_else(|| JournalError::Corrupt {
            id: id.to_owned(),
            detail: "its document is not stored".into(),
        })?
        .value()
        .to_owned();
    Ok(Some(record))
}

fn decode(id: &str, bytes: &[u8]) -> Result<JobRecord, JournalError> {
    serde_json::from_slice(bytes).map_err(|e| JournalError::Corrupt {
        id: id.to_owned(),
        detail: e.to_string(),
    })
}

/// Makes the tables, then goes once over every job: finds the last sequence number given out,
/// and moves the document of each record written before the `documents` table out of its JSON,
/// so that everything after opening finds documents in one place.
fn prepare(db: &Database) -> Result<u64, String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    let mut last = 0;
    {
        let mut jobs = txn.open_table(JOBS).map_err(|e| e.to_string())?;
        let mut documents = txn.open_table(DOCUMENTS).map_err(|e| e.to_string())?;
        txn.open_table(UNFINISHED).map_err(|e| e.to_string())?;
        let mut inline = Vec::new();
        for entry in jobs.iter().map_err(|e| e.to_string())? {
            let (id, bytes) = entry.map_err(|e| e.to_string())?;
            let record = decode(id.value(), bytes.value()).map_err(|e| e.to_string())?;
            last = last.max(record.seq);
            if !record.document.is_empty() {
                inline.push(record);
            }
        }
        for record in inline {
            documents
                .insert(record.id.as_str(), record.document.as_str())
                .map_err(|e| e.to_string())?;
            let bytes = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
            jobs.insert(record.id.as_str(), bytes.as_slice())
                .map_err(|e| e.to_string())?;
        }
    }
    txn.commit().map_err(|e| e.to_string())?;
    Ok(last)
}

/// The writer thread: takes every change waiting, applies them in one transaction, commits, and
/// only then answers each. Ends when every [`Journal`] is dropped.
fn write_changes(db: &Database, queue: &mpsc::Receiver<Change>, mut next_seq: u64) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(change) => group.push(change),
                Err(_) => break,
            }
        }
        let seq_before = next_seq;
        match apply(db, &mut group, &mut next_seq) {
            Ok(outcomes) => {
                for (change, outcome) in group.into_iter().zip(outcomes) {
                    match (change, outcome) {
                        (Change::Submit(_, reply), Outcome::Submitted(s)) => {
                            let _ = reply.send(s);
                        }
                        (Change::Update(_, _, reply), Outcome::Updated(u)) => {
                            let _ = reply.send(u);
                        }
                        _ => unreachable!("one outcome per change, in order"),
                    }
                }
            }
            Err(error) => {
                // Nothing of this group was committed: every caller hears so.
                next_seq = seq_before;
                for change in group {
                    let error = JournalError::Write(error.clone());
                    match change {
                        Change::Submit(_, reply) => {
                            let _ = reply.send(Err(error));
                        }
                        Change::Update(_, _, reply) => {
                            let _ = reply.send(Err(error));
                        }
                    }
                }
            }
        }
    }
}

enum Outcome {
    Submitted(Result<Submitted, JournalError>),
    Updated(Result<JobRecord, JournalError>),
}

/// Applies a group of changes in one write transaction. A change that cannot apply (an update of
/// an unknown job) fails alone; an error of the store fails the whole group.
fn apply(db: &Database, group: &mut [Change], next_seq: &mut u64) -> Result<Vec<Outcome>, String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    let mut outcomes = Vec::with_capacity(group.len());
    {
        let mut jobs = txn.open_table(JOBS).map_err(|e| e.to_string())?;
        let mut documents = txn.open_table(DOCUMENTS).map_err(|e| e.to_string())?;
        let mut unfinished = txn.open_table(UNFINISHED).map_err(|e| e.to_string())?;
        for change in group.iter_mut() {
            match change {
                Change::Submit(record, _) => {
                    let outcome = match load(&jobs, &documents, &record.id) {
                        Ok(Some(existing)) if existing.digest == record.digest => {
                            Ok(Submitted::Existing(existing))
                        }
                        Ok(Some(existing)) => Ok(Submitted::Conflict(existing)),
                        Err(e) => Err(e),
                        Ok(None) => {
                            let mut record = (**record).clone();
                            record.seq = *next_seq;
                            *next_seq += 1;
                            documents
                                .insert(record.id.as_str(), record.document.as_str())
                                .map_err(|e| e.to_string())?;
                            put(&mut jobs, &mut unfinished, &record)?;
                            Ok(Submitted::Created(record))
                        }
                    };
                    outcomes.push(Outcome::Submitted(outcome));
                }
                Change::Update(id, mutation, _) => {
                    let mutation: Mutation = std::mem::replace(mutation, Box::new(|_| {}));
                    let stored = jobs.get(id.as_str()).map_err(|e| e.to_string())?;
                    let outcome = match stored.map(|bytes| decode(id, bytes.value())).transpose() {
                        Ok(None) => Err(JournalError::NoSuchJob(id.clone())),
                        Err(e) => Err(e),
                        Ok(Some(mut record)) => {
                            mutation(&mut record);
                            put(&mut jobs, &mut unfinished, &record)?;
                            Ok(record)
                        }
                    };
                    outcomes.push(Outcome::Updated(outcome));
                }
            }
        }
    }
    txn.commit().map_err(|e| e.to_string())?;
    Ok(outcomes)
}

fn put(
    jobs: &mut redb::Table<&str, &[u8]>,
    unfinished: &mut redb::Table<u64, &str>,
    record: &JobRecord,
) -> Result<(), String> {
    let bytes = serde_json::to_vec(record).map_err(|e| e.to_string())?;
    jobs.insert(record.id.as_str(), bytes.as_slice())
        .map_err(|e| e.to_string())?;
    if record.state.is_final() {
        unfinished.remove(record.seq).map_err(|e| e.to_string())?;
    } else {
        unfinished
            .insert(record.seq, record.id.as_str())
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, digest: &str) -> JobRecord {
        JobRecord {
            id: id.into(),
            seq: 0,
            job_type: "quantum_circuit".into(),
            role: "quantum".into(),
            submitted_by: "test".into(),
            document: "---".into(),
            digest: digest.into(),
            state: JobState::Queued,
            head: None,
            attempts: 0,
            head_deaths: 0,
            submitted_at: Timestamp::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
            result: None,
            error: None,
            receipt: None,
        }
    }

    #[tokio::test]
    async fn submissions_are_idempotent_by_id_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("journal.redb")).unwrap();
        let Submitted::Created(first) = journal.submit(record("a", "d1")).await.unwrap() else {
            panic!("a new id is created");
        };
        assert_eq!(first.seq, 1);
        assert!(matches!(
            journal.submit(record("a", "d1")).await.unwrap(),
            Submitted::Existing(r) if r.seq == 1
        ));
        assert!(matches!(
            journal.submit(record("a", "d2")).await.unwrap(),
            Submitted::Conflict(r) if r.digest == "d1"
        ));
    }

    #[tokio::test]
    async fn a_reopened_journal_has_every_committed_job_and_its_unfinished_ones_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.redb");
        {
            let journal = Journal::open(&path).unwrap();
            // Concurrent submissions share transactions; each is still answered on its own.
            let submissions: Vec<_> = (0..50)
                .map(|i| {
                    let journal = journal.clone();
                    tokio::spawn(async move { journal.submit(record(&format!("j{i}"), "d")).await })
                })
                .collect();
            for s in submissions {
                assert!(matches!(s.await.unwrap().unwrap(), Submitted::Created(_)));
            }
            let done = journal
                .update("j7", |r| {
                    r.state = JobState::Succeeded;
                    r.result = Some("{}".into());
                })
                .await
                .unwrap();
            assert_eq!(done.state, JobState::Succeeded);
            assert!(matches!(
                journal.update("nope", |_| {}).await,
                Err(JournalError::NoSuchJob(_))
            ));
        }
        // The writer thread lets go of the file once the last handle is dropped.
        let journal = loop {
            match Journal::open(&path) {
                Ok(j) => break j,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        };
        let unfinished = journal.unfinished().unwrap();
        assert_eq!(unfinished.len(), 49);
        assert!(unfinished.windows(2).all(|w| w[0].seq < w[1].seq));
        assert!(unfinished.iter().all(|r| r.id != "j7"));
        assert_eq!(
            journal.get("j7").unwrap().unwrap().result.as_deref(),
            Some("{}")
        );
        let Submitted::Created(next) = journal.submit(record("new", "d")).await.unwrap() else {
            panic!("a new id is created");
        };
        assert_eq!(next.seq, 51, "sequence numbers go on after a restart");
    }

    #[tokio::test]
    async fn a_document_is_stored_once_and_comes_back_with_every_read_and_update() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("journal.redb")).unwrap();
        let document = "---\nid: big\n---\n".to_owned() + &"x".repeat(5000);
        let mut big = record("big", "d");
        big.document = document.clone();
        journal.submit(big).await.unwrap();
        let updated = journal.update("big", |r| r.attempts = 1).await.unwrap();
        assert_eq!(updated.attempts, 1);
        assert!(
            updated.document.is_empty(),
            "an update does not read the document"
        );
        assert_eq!(journal.get("big").unwrap().unwrap().document, document);
        assert_eq!(journal.unfinished().unwrap()[0].document, document);
        let txn = journal.db.begin_read().unwrap();
        let stored = txn.open_table(JOBS).unwrap().get("big").unwrap().unwrap();
        assert!(
            stored.value().len() < 1000,
            "the record's JSON holds no document"
        );
    }

    #[tokio::test]
    async fn a_journal_written_before_the_documents_table_keeps_every_document() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.redb");
        // As journals written before the documents table stored a job: its document in its JSON.
        let mut old = record("old", "d");
        old.document = "---\nid: old\n---\n".into();
        let mut json: serde_json::Value = serde_json::to_value(&old).unwrap();
        json["document"] = old.document.clone().into();
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(JOBS)
                .unwrap()
                .insert("old", serde_json::to_vec(&json).unwrap().as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let journal = Journal::open(&path).unwrap();
        {
            let txn = journal.db.begin_read().unwrap();
            let stored = txn.open_table(JOBS).unwrap().get("old").unwrap().unwrap();
            assert!(!String::from_utf8_lossy(stored.value()).contains("id: old"));
        }
        assert_eq!(journal.get("old").unwrap().unwrap().document, old.document);
        journal.update("old", |r| r.attempts = 2).await.unwrap();
        let read = journal.get("old").unwrap().unwrap();
        assert_eq!((read.attempts, read.document), (2, old.document));
    }
}
