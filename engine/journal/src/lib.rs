//! The engine's durable job journal, in one redb file.
//!
//! Every change goes through one writer thread that commits whatever changes are waiting in one
//! transaction (group commit), so that many concurrent submissions share one `fsync`. A caller's
//! change is answered only after its transaction is committed: when [`Journal::submit`] returns,
//! the job survives a crash of the process or the machine.
//!
//! Tables: `jobs` (id → the job record as JSON, without its document), `documents` (id → the MAML
//! document, written once: a job's record changes two or three times more, and rewriting a
//! document of kilobytes with each change made every commit several times larger), `checked`
//! (id → the job as the door checked it, JSON, written once beside its document) and
//! `unfinished` (submission sequence → id), so that a restarted engine finds the jobs it still
//! owes in the order they came, and `finished` ((second it finished, sequence) → id), so that
//! [`Journal::prune`] finds the jobs finished before a time without reading every record. A
//! pruned job keeps its record, without result and receipt, and loses its document: its id and
//! digest still make a resubmission the same job or a refused replay, for ever.
//!
//! Opening checks the store: redb's checksums over every page, then every record read whole.
//! A damaged file is reported as damage, naming the file (and the job, where one record is what
//! does not read), never as a panic: redb panics on some damaged pages, and every read of the
//! store here turns such a panic into an error. [`salvage`] reads what still reads of a damaged
//! journal, and writes it into a new one.

mod salvage;
mod sealed;
mod upgrade;

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use chimera_job::CheckedJob;
use jiff::Timestamp;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
const DOCUMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("sealed_documents");
/// The documents of a journal from before sealing, sealed into [`DOCUMENTS`] when it is opened.
const PLAIN_DOCUMENTS: TableDefinition<&str, &str> = TableDefinition::new("documents");
/// What the journal says of itself: `sealing` once its values are sealed.
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const SEALING: (&str, &str) = ("sealing", "v1");
const CHECKED: TableDefinition<&str, &[u8]> = TableDefinition::new("checked");
const UNFINISHED: TableDefinition<u64, &str> = TableDefinition::new("unfinished");
const FINISHED: TableDefinition<(i64, u64), &str> = TableDefinition::new("finished");

/// How many waiting changes one transaction takes at most.
const MAX_GROUP: usize = 1024;

pub use salvage::{Lost, Repaired, Salvage, check, repair};
pub use sealed::Sealed;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "the journal {path} is in use: is another `chimera serve` using this data directory? \
         each engine needs its own"
    )]
    InUse { path: String },
    #[error("the journal {path} cannot be opened: {detail}")]
    Open { path: String, detail: String },
    #[error("the journal {path} is damaged: {detail}")]
    Damaged { path: String, detail: String },
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
    #[error(
        "the journal {path} was written by a release before sealing, and this one reads sealed \
         journals only: `chimera serve` seals it when it first opens it; to check or repair it \
         before that, use the earlier release's `chimera journal`"
    )]
    BeforeSealing { path: String },
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
    /// What its blocks run, as the trust store's allow lists name it (`training+inference`);
    /// empty in journals from before it was kept.
    #[serde(default)]
    pub runs: String,
    /// The role of head that runs it.
    pub role: chimera_job::Role,
    /// The trust store name of the key that signed it: the job's owner.
    pub submitted_by: String,
    /// The client certificate's name, when a client proved one (mutual TLS) submitting it: a
    /// gateway that relays its users' jobs may follow them too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relayed_by: Option<String>,
    /// The document as submitted. Stored in the `documents` table, not in the record's JSON
    /// (read from the JSON only to move it out of journals written before that; see `prepare`).
    #[serde(default, skip_serializing)]
    pub document: String,
    /// The job as the door checked it: what a head is sent. Stored in the `checked` table, once,
    /// by the submission or by an update that sets it (an engine converting a job that an
    /// earlier release admitted). `None` for such a job not yet converted, and once pruned.
    #[serde(default, skip_serializing)]
    pub checked: Option<CheckedJob>,
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
    /// When [`Journal::prune`] removed its document, result and receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned_at: Option<Timestamp>,
}

impl JobRecord {
    /// What the job runs, for metrics and logs: its `runs`, or for a record from before that
    /// was kept, its type.
    pub fn work(&self) -> &str {
        if self.runs.is_empty() {
            &self.job_type
        } else {
            &self.runs
        }
    }
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
    Prune(
        Timestamp,
        tokio::sync::oneshot::Sender<Result<usize, JournalError>>,
    ),
}

/// The journal: cheap to clone, shared by every part of the engine. When the last clone is
/// dropped, the writer commits what is waiting and the file is closed cleanly before the drop
/// returns: a journal closed cleanly is one `chimera journal repair` can read record by record
/// even if it is damaged later (redb reads a file that was not closed cleanly only once it has
/// repaired it, which damage can prevent).
#[derive(Clone)]
pub struct Journal {
    // Dropped before `writer`, whose thread then holds the last handle on the database.
    db: Arc<Database>,
    writer: Arc<Writer>,
    rolled_back: bool,
    /// How many jobs of a journal from before sealing were sealed at open.
    sealed_at_open: usize,
    sealed: Sealed,
}

/// The writer thread and the way to it.
struct Writer {
    changes: Option<mpsc::Sender<Change>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn send(&self, change: Change) -> Result<(), mpsc::SendError<Change>> {
        let changes = self.changes.as_ref().expect("taken only when dropped");
        changes.send(change)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // The writer's queue ends; it commits what is waiting and drops the database.
        drop(self.changes.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Journal {
    /// Opens (or creates) the journal file at `path`, checks it, and starts its writer thread.
    /// A journal from before sealing is sealed first, into a new file renamed over it.
    pub fn open(path: &Path, sealed: Sealed) -> Result<Self, JournalError> {
        let (opened, sealed_at_open) = match open_prepared(path, &sealed)? {
            Opened::Ready(db, next_seq, rolled_back) => ((db, next_seq, rolled_back), 0),
            Opened::BeforeSealing(records) => {
                upgrade::seal(path, &records, &sealed)?;
                match open_prepared(path, &sealed)? {
                    Opened::Ready(db, next_seq, rolled_back) => {
                        ((db, next_seq, rolled_back), records.len())
                    }
                    Opened::BeforeSealing(_) => unreachable!("a journal just sealed is marked so"),
                }
            }
        };
        let (db, next_seq, rolled_back) = opened;
        let db = Arc::new(db);
        let (changes, queue) = mpsc::channel();
        let writer_db = Arc::clone(&db);
        let writer_sealed = sealed.clone();
        let thread = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || write_changes(writer_db, &queue, next_seq, &writer_sealed))
            .map_err(|e| JournalError::Open {
                path: path.display().to_string(),
                detail: e.to_string(),
            })?;
        let writer = Arc::new(Writer {
            changes: Some(changes),
            thread: Some(thread),
        });
        Ok(Self {
            db,
            writer,
            rolled_back,
            sealed_at_open,
            sealed,
        })
    }

    /// Whether opening found the last commit damaged, and redb went back to the one before it:
    /// what that commit held (jobs acknowledged, or their changes) is lost.
    pub fn rolled_back_at_open(&self) -> bool {
        self.rolled_back
    }

    /// How many jobs opening sealed: those of a journal that a release before sealing wrote.
    pub fn sealed_at_open(&self) -> usize {
        self.sealed_at_open
    }

    /// Records a new job (its `seq` is assigned here), unless its id is known. The change is
    /// queued at once, so changes are committed in the order they were asked for; the future
    /// resolves once its outcome is committed.
    pub fn submit(
        &self,
        record: JobRecord,
    ) -> impl Future<Output = Result<Submitted, JournalError>> + Send + 'static {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let queued = self.writer.send(Change::Submit(Box::new(record), reply));
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
            .writer
            .send(Change::Update(id.to_owned(), Box::new(change), reply));
        async move {
            queued.map_err(|_| JournalError::Stopped)?;
            answer.await.map_err(|_| JournalError::Stopped)?
        }
    }

    /// Removes the document, result and receipt of every job that finished before `before`
    /// (at most [`PRUNE_BATCH`] of them; call again while it returns that many), keeping the
    /// rest of its record; resolves to how many it pruned.
    pub fn prune(
        &self,
        before: Timestamp,
    ) -> impl Future<Output = Result<usize, JournalError>> + Send + 'static {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let queued = self.writer.send(Change::Prune(before, reply));
        async move {
            queued.map_err(|_| JournalError::Stopped)?;
            answer.await.map_err(|_| JournalError::Stopped)?
        }
    }

    pub fn get(&self, id: &str) -> Result<Option<JobRecord>, JournalError> {
        caught(|| self.read_job(id, true), unreadable)
    }

    /// Job `id` as a head is sent it: its record and checked job, without the document, which
    /// no head reads (a signed document is kilobytes, read for every job started).
    pub fn get_to_run(&self, id: &str) -> Result<Option<JobRecord>, JournalError> {
        caught(|| self.read_job(id, false), unreadable)
    }

    /// Every job not yet finished, failed or cancelled, in submission order.
    pub fn unfinished(&self) -> Result<Vec<JobRecord>, JournalError> {
        caught(|| self.read_unfinished(), unreadable)
    }

    fn read_job(&self, id: &str, with_document: bool) -> Result<Option<JobRecord>, JournalError> {
        let read = |e: &dyn std::fmt::Display| JournalError::Read(e.to_string());
        let txn = self.db.begin_read().map_err(|e| read(&e))?;
        let jobs = txn.open_table(JOBS).map_err(|e| read(&e))?;
        let documents = txn.open_table(DOCUMENTS).map_err(|e| read(&e))?;
        let checked = txn.open_table(CHECKED).map_err(|e| read(&e))?;
        let documents = with_document.then_some(&documents);
        load(&jobs, documents, &checked, id, &self.sealed)
    }

    fn read_unfinished(&self) -> Result<Vec<JobRecord>, JournalError> {
        let read = |e: &dyn std::fmt::Display| JournalError::Read(e.to_string());
        let txn = self.db.begin_read().map_err(|e| read(&e))?;
        let unfinished = txn.open_table(UNFINISHED).map_err(|e| read(&e))?;
        let jobs = txn.open_table(JOBS).map_err(|e| read(&e))?;
        let documents = txn.open_table(DOCUMENTS).map_err(|e| read(&e))?;
        let checked = txn.open_table(CHECKED).map_err(|e| read(&e))?;
        let mut records = Vec::new();
        for entry in unfinished.iter().map_err(|e| read(&e))? {
            let (_, id) = entry.map_err(|e| read(&e))?;
            let record = load(&jobs, Some(&documents), &checked, id.value(), &self.sealed)?;
            let record = record.ok_or_else(|| JournalError::Corrupt {
                id: id.value().to_owned(),
                detail: "listed as unfinished but not stored".into(),
            })?;
            records.push(record);
        }
        Ok(records)
    }
}

/// A journal opened and prepared, or (closed again) the records of one from before sealing.
enum Opened {
    Ready(Database, u64, bool),
    BeforeSealing(Vec<JobRecord>),
}

/// Opens the journal at `path`, checks it, and prepares it: the next sequence number and whether
/// redb rolled its last commit back.
fn open_prepared(path: &Path, sealed: &Sealed) -> Result<Opened, JournalError> {
    guarded(path, || {
        let db = Database::create(path).map_err(|e| opening(path, e))?;
        // Every page against its checksum: a file changed behind redb's back is found now,
        // not by a read that panics later.
        let (db, whole) = checked(path, db)?;
        match prepare(&db, sealed) {
            Ok(last) => Ok(Opened::Ready(db, last + 1, !whole)),
            Err(Prepare::BeforeSealing) => Ok(Opened::BeforeSealing(upgrade::plain_records(&db)?)),
            Err(Prepare::Record(e)) => Err(e),
            Err(Prepare::Store(detail)) => Err(damaged(path, detail)),
        }
    })
}

/// What a panic's payload says.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|m| (*m).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic that says nothing".to_owned())
}

/// Runs `read` of the store. redb panics on some damaged pages: such a panic becomes the error
/// that `error` makes of what it said.
fn caught<T, E>(
    read: impl FnOnce() -> Result<T, E>,
    error: impl FnOnce(String) -> E,
) -> Result<T, E> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|payload| {
        let said = panic_message(&*payload);
        Err(error(format!("a page does not read (redb: {said})")))
    })
}

/// A read of the open journal that redb's panic ended.
fn unreadable(said: String) -> JournalError {
    JournalError::Read(format!("{said}: the file may be damaged"))
}

/// Runs `read` of the store at `path`, a panic in which is damage.
fn guarded<T>(
    path: &Path,
    read: impl FnOnce() -> Result<T, JournalError>,
) -> Result<T, JournalError> {
    caught(read, |detail| damaged(path, detail))
}

/// `db` once redb has checked every page of it against its checksum, and whether they all
/// checked (`false`: its last commit did not, and redb went back to the one before it).
fn checked(path: &Path, mut db: Database) -> Result<(Database, bool), JournalError> {
    match db.check_integrity() {
        Ok(whole) => Ok((db, whole)),
        Err(e) => {
            abandon(db);
            Err(opening(path, e))
        }
    }
}

/// Drops a database redb found damaged: its drop asserts that such a database was repaired, and
/// that panic would hide why it was not.
fn abandon(db: Database) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(db)));
}

/// An error of redb opening or checking the journal at `path`, as this crate says it.
fn opening(path: &Path, e: impl Into<redb::DatabaseError>) -> JournalError {
    match e.into() {
        redb::DatabaseError::DatabaseAlreadyOpen => JournalError::InUse {
            path: path.display().to_string(),
        },
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => {
            damaged(path, detail)
        }
        other => JournalError::Open {
            path: path.display().to_string(),
            detail: other.to_string(),
        },
    }
}

fn damaged(path: &Path, detail: String) -> JournalError {
    JournalError::Damaged {
        path: path.display().to_string(),
        detail,
    }
}

/// The record of job `id` with its checked job and (given `documents`) its document, from the
/// tables of a read or a write transaction.
fn load(
    jobs: &impl ReadableTable<&'static str, &'static [u8]>,
    documents: Option<&impl ReadableTable<&'static str, &'static [u8]>>,
    checked: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
    sealed: &Sealed,
) -> Result<Option<JobRecord>, JournalError> {
    let read = |e: redb::StorageError| JournalError::Read(e.to_string());
    let Some(bytes) = jobs.get(id).map_err(read)? else {
        return Ok(None);
    };
    let mut record = sealed.record(id, bytes.value())?;
    let document = documents.map(|d| d.get(id)).transpose().map_err(read)?;
    match document {
        None => {}
        Some(Some(document)) => record.document = sealed.document(id, document.value())?,
        Some(None) if record.pruned_at.is_some() => {}
        Some(None) => {
            return Err(JournalError::Corrupt {
                id: id.to_owned(),
                detail: "its document is not stored".into(),
            });
        }
    }
    if let Some(job) = checked.get(id).map_err(read)? {
        record.checked = Some(sealed.checked(id, job.value())?);
    }
    Ok(Some(record))
}

/// Stores the checked job a record carries, if it carries one.
fn put_checked(
    checked: &mut redb::Table<&str, &[u8]>,
    record: &JobRecord,
    sealed: &Sealed,
) -> Result<(), String> {
    let Some(job) = &record.checked else {
        return Ok(());
    };
    let bytes = sealed.seal_checked(&record.id, job)?;
    checked
        .insert(record.id.as_str(), bytes.as_slice())
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Stores the document a new record carries.
fn put_document(
    documents: &mut redb::Table<&str, &[u8]>,
    record: &JobRecord,
    sealed: &Sealed,
) -> Result<(), String> {
    let bytes = sealed.seal_document(&record.id, &record.document);
    documents
        .insert(record.id.as_str(), bytes.as_slice())
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn decode_checked(id: &str, json: &[u8]) -> Result<CheckedJob, JournalError> {
    serde_json::from_slice(json).map_err(|e| JournalError::Corrupt {
        id: id.to_owned(),
        detail: format!("its checked job: {e}"),
    })
}

fn decode(id: &str, bytes: &[u8]) -> Result<JobRecord, JournalError> {
    serde_json::from_slice(bytes).map_err(|e| JournalError::Corrupt {
        id: id.to_owned(),
        detail: e.to_string(),
    })
}

/// Why the journal cannot be prepared: a record that does not read, or the store.
enum Prepare {
    Record(JournalError),
    Store(String),
    /// Jobs that a release before sealing wrote: to be sealed into a new file.
    BeforeSealing,
}

impl From<String> for Prepare {
    fn from(detail: String) -> Self {
        Self::Store(detail)
    }
}

/// Makes the tables (a new journal is marked sealed), then goes once over every job: finds the
/// last sequence number given out, and lists in `finished` the jobs that finished before that
/// table. A journal of jobs not marked sealed is one from before sealing, changed in nothing.
fn prepare(db: &Database, sealed: &Sealed) -> Result<u64, Prepare> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    let mut last = 0;
    {
        let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
        let jobs = txn.open_table(JOBS).map_err(|e| e.to_string())?;
        if meta.get(SEALING.0).map_err(|e| e.to_string())?.is_none() {
            if !jobs.is_empty().map_err(|e| e.to_string())? {
                return Err(Prepare::BeforeSealing);
            }
            meta.insert(SEALING.0, SEALING.1)
                .map_err(|e| e.to_string())?;
        }
        txn.open_table(DOCUMENTS).map_err(|e| e.to_string())?;
        txn.open_table(CHECKED).map_err(|e| e.to_string())?;
        txn.open_table(UNFINISHED).map_err(|e| e.to_string())?;
        let mut finished = txn.open_table(FINISHED).map_err(|e| e.to_string())?;
        for entry in jobs.iter().map_err(|e| e.to_string())? {
            let (id, bytes) = entry.map_err(|e| e.to_string())?;
            let record = sealed
                .record(id.value(), bytes.value())
                .map_err(Prepare::Record)?;
            last = last.max(record.seq);
            list_if_finished(&mut finished, &record)?;
        }
    }
    txn.commit().map_err(|e| e.to_string())?;
    Ok(last)
}

/// The writer thread: takes every change waiting, applies them in one transaction, commits, and
/// only then answers each. Ends when every [`Journal`] is dropped, dropping the database last:
/// closing it cleanly.
fn write_changes(
    db: Arc<Database>,
    queue: &mpsc::Receiver<Change>,
    mut next_seq: u64,
    sealed: &Sealed,
) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(change) => group.push(change),
                Err(_) => break,
            }
        }
        let seq_before = next_seq;
        match apply(&db, &mut group, &mut next_seq, sealed) {
            Ok(outcomes) => {
                for (change, outcome) in group.into_iter().zip(outcomes) {
                    match (change, outcome) {
                        (Change::Submit(_, reply), Outcome::Submitted(s)) => {
                            let _ = reply.send(s);
                        }
                        (Change::Update(_, _, reply), Outcome::Updated(u)) => {
                            let _ = reply.send(u);
                        }
                        (Change::Prune(_, reply), Outcome::Pruned(p)) => {
                            let _ = reply.send(p);
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
                        Change::Prune(_, reply) => {
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
    Pruned(Result<usize, JournalError>),
}

/// Applies a group of changes in one write transaction. A change that cannot apply (an update of
/// an unknown job) fails alone; an error of the store fails the whole group.
fn apply(
    db: &Database,
    group: &mut [Change],
    next_seq: &mut u64,
    sealed: &Sealed,
) -> Result<Vec<Outcome>, String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    let mut outcomes = Vec::with_capacity(group.len());
    {
        let mut jobs = txn.open_table(JOBS).map_err(|e| e.to_string())?;
        let mut documents = txn.open_table(DOCUMENTS).map_err(|e| e.to_string())?;
        let mut checked = txn.open_table(CHECKED).map_err(|e| e.to_string())?;
        let mut unfinished = txn.open_table(UNFINISHED).map_err(|e| e.to_string())?;
        let mut finished = txn.open_table(FINISHED).map_err(|e| e.to_string())?;
        for change in group.iter_mut() {
            match change {
                Change::Submit(record, _) => {
                    let found = load(&jobs, Some(&documents), &checked, &record.id, sealed);
                    let outcome = match found {
                        Ok(Some(existing)) if existing.digest == record.digest => {
                            Ok(Submitted::Existing(existing))
                        }
                        Ok(Some(existing)) => Ok(Submitted::Conflict(existing)),
                        Err(e) => Err(e),
                        Ok(None) => {
                            let mut record = (**record).clone();
                            record.seq = *next_seq;
                            *next_seq += 1;
                            put_document(&mut documents, &record, sealed)?;
                            put_checked(&mut checked, &record, sealed)?;
                            put(&mut jobs, &mut unfinished, &mut finished, &record, sealed)?;
                            Ok(Submitted::Created(record))
                        }
                    };
                    outcomes.push(Outcome::Submitted(outcome));
                }
                Change::Update(id, mutation, _) => {
                    let mutation: Mutation = std::mem::replace(mutation, Box::new(|_| {}));
                    let stored = jobs.get(id.as_str()).map_err(|e| e.to_string())?;
                    let opened = stored.map(|bytes| sealed.record(id, bytes.value()));
                    let outcome = match opened.transpose() {
                        Ok(None) => Err(JournalError::NoSuchJob(id.clone())),
                        Err(e) => Err(e),
                        Ok(Some(mut record)) => {
                            mutation(&mut record);
                            put_checked(&mut checked, &record, sealed)?;
                            put(&mut jobs, &mut unfinished, &mut finished, &record, sealed)?;
                            Ok(record)
                        }
                    };
                    outcomes.push(Outcome::Updated(outcome));
                }
                Change::Prune(before, _) => {
                    let mut tables = Tables {
                        jobs: &mut jobs,
                        documents: &mut documents,
                        checked: &mut checked,
                        unfinished: &mut unfinished,
                        finished: &mut finished,
                    };
                    let pruned = prune(&mut tables, *before, sealed)?;
                    outcomes.push(Outcome::Pruned(Ok(pruned)));
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
    finished: &mut redb::Table<(i64, u64), &str>,
    record: &JobRecord,
    sealed: &Sealed,
) -> Result<(), String> {
    let bytes = sealed.seal_record(record)?;
    jobs.insert(record.id.as_str(), bytes.as_slice())
        .map_err(|e| e.to_string())?;
    if record.state.is_final() {
        unfinished.remove(record.seq).map_err(|e| e.to_string())?;
        list_if_finished(finished, record)?;
    } else {
        unfinished
            .insert(record.seq, record.id.as_str())
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Lists a finished job not yet pruned in `finished`, under the second it finished.
fn list_if_finished(
    finished: &mut redb::Table<(i64, u64), &str>,
    record: &JobRecord,
) -> Result<(), String> {
    if let (true, Some(at), None) = (
        record.state.is_final(),
        record.finished_at,
        record.pruned_at,
    ) {
        finished
            .insert((at.as_second(), record.seq), record.id.as_str())
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The most jobs one call of [`Journal::prune`] prunes, so that it never holds up the journal's
/// other changes for long.
pub const PRUNE_BATCH: usize = 1000;

/// The tables of a write transaction that pruning changes.
struct Tables<'t, 'txn> {
    jobs: &'t mut redb::Table<'txn, &'static str, &'static [u8]>,
    documents: &'t mut redb::Table<'txn, &'static str, &'static [u8]>,
    checked: &'t mut redb::Table<'txn, &'static str, &'static [u8]>,
    unfinished: &'t mut redb::Table<'txn, u64, &'static str>,
    finished: &'t mut redb::Table<'txn, (i64, u64), &'static str>,
}

/// Prunes up to [`PRUNE_BATCH`] jobs that finished before `before`; how many it pruned.
fn prune(tables: &mut Tables<'_, '_>, before: Timestamp, sealed: &Sealed) -> Result<usize, String> {
    let due: Vec<((i64, u64), String)> = tables
        .finished
        .range(..(before.as_second(), 0))
        .map_err(|e| e.to_string())?
        .take(PRUNE_BATCH)
        .map(|entry| entry.map(|(key, id)| (key.value(), id.value().to_owned())))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let now = Timestamp::now();
    for (key, id) in &due {
        tables.finished.remove(key).map_err(|e| e.to_string())?;
        tables
            .documents
            .remove(id.as_str())
            .map_err(|e| e.to_string())?;
        tables
            .checked
            .remove(id.as_str())
            .map_err(|e| e.to_string())?;
        let stored = tables.jobs.get(id.as_str()).map_err(|e| e.to_string())?;
        let Some(mut record) = stored
            .map(|bytes| sealed.record(id, bytes.value()))
            .transpose()
            .map_err(|e| e.to_string())?
        else {
            continue;
        };
        (record.result, record.receipt, record.pruned_at) = (None, None, Some(now));
        put(
            tables.jobs,
            tables.unfinished,
            tables.finished,
            &record,
            sealed,
        )?;
    }
    Ok(due.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The journal's values sealed under one test key (each call a new life of it).
    fn sealed() -> Sealed {
        let key = zeroize::Zeroizing::new([7u8; 32]);
        Sealed::new(Arc::new(chimera_keys::DataSealer::new(key)))
    }

    fn record(id: &str, digest: &str) -> JobRecord {
        JobRecord {
            id: id.into(),
            seq: 0,
            job_type: "quantum_circuit".into(),
            runs: "quantum_circuit".into(),
            role: chimera_job::Role::Quantum,
            submitted_by: "test".into(),
            relayed_by: None,
            document: "---".into(),
            checked: None,
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
            pruned_at: None,
        }
    }

    #[tokio::test]
    async fn submissions_are_idempotent_by_id_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("journal.redb"), sealed()).unwrap();
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

    /// The journal at `path` once more: the writer thread lets go of the file once the last
    /// handle is dropped.
    fn reopen(path: &Path) -> Journal {
        loop {
            match Journal::open(path, sealed()) {
                Ok(journal) => return journal,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    }

    /// Finishes job `id` at `at`, with a result and a receipt.
    async fn finish(journal: &Journal, id: &str, at: Timestamp) {
        journal
            .update(id, move |r| {
                r.state = JobState::Succeeded;
                r.finished_at = Some(at);
                r.result = Some("{\"counts\":{}}".into());
                r.receipt = Some(Receipt {
                    statement: "s".into(),
                    merkle_path: vec![],
                    batch_statement: "b".into(),
                    signature: "sig".into(),
                    engine_key_id: "k".into(),
                });
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn pruning_drops_old_finished_jobs_bodies_and_keeps_their_ids_against_replays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.redb");
        let hour = jiff::SignedDuration::from_hours(1);
        let now = Timestamp::now();
        {
            let journal = Journal::open(&path, sealed()).unwrap();
            for id in ["old", "recent", "running"] {
                journal.submit(record(id, "d")).await.unwrap();
            }
            finish(&journal, "old", now - 3 * hour).await;
            finish(&journal, "recent", now - hour / 2).await;
            journal
                .update("running", |r| r.state = JobState::Running)
                .await
                .unwrap();
            assert_eq!(journal.prune(now - hour).await.unwrap(), 1);
            assert_eq!(journal.prune(now - hour).await.unwrap(), 0, "pruned once");

            let old = journal.get("old").unwrap().unwrap();
            assert!(old.pruned_at.is_some());
            assert_eq!(
                (old.document.as_str(), &old.result, &old.receipt),
                ("", &None, &None)
            );
            assert_eq!((old.state, old.digest.as_str()), (JobState::Succeeded, "d"));
            let recent = journal.get("recent").unwrap().unwrap();
            assert!(recent.pruned_at.is_none() && recent.result.is_some());
            assert_eq!(recent.document, "---");
            // Its id is still known: the same bytes are the same job, other bytes a replay.
            assert!(matches!(
                journal.submit(record("old", "d")).await.unwrap(),
                Submitted::Existing(r) if r.pruned_at.is_some()
            ));
            assert!(matches!(
                journal.submit(record("old", "other")).await.unwrap(),
                Submitted::Conflict(_)
            ));
        }
        // Reopened, the rest is pruned in its time; the unfinished job never is.
        let journal = reopen(&path);
        assert_eq!(journal.prune(now + hour).await.unwrap(), 1);
        assert!(journal.get("recent").unwrap().unwrap().pruned_at.is_some());
        let running = journal.get("running").unwrap().unwrap();
        assert!(running.pruned_at.is_none() && running.document == "---");
        assert_eq!(journal.unfinished().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_reopened_journal_has_every_committed_job_and_its_unfinished_ones_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.redb");
        {
            let journal = Journal::open(&path, sealed()).unwrap();
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
        let journal = reopen(&path);
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

    /// A job as the door checked one, a circuit on a quantum head.
    fn checked_job(id: &str) -> CheckedJob {
        CheckedJob {
            id: id.into(),
            signed: chimera_job::Signed {
                digest: "d".into(),
                signer: "test".into(),
            },
            role: chimera_job::Role::Quantum,
            work: [chimera_maml::Work::QuantumCircuit].into(),
            requires_cuda: false,
            settings: None,
            blocks: Vec::new(),
            output_schema: None,
        }
    }

    #[tokio::test]
    async fn a_checked_job_is_kept_beside_its_document_set_by_submission_or_update() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.redb");
        let journal = Journal::open(&path, sealed()).unwrap();
        let mut submitted = record("new", "d");
        submitted.checked = Some(checked_job("new"));
        journal.submit(submitted).await.unwrap();
        // As a job an earlier release admitted: none, until the engine converts it.
        journal.submit(record("old", "d")).await.unwrap();
        assert_eq!(journal.get("old").unwrap().unwrap().checked, None);
        journal
            .update("old", |r| r.checked = Some(checked_job("old")))
            .await
            .unwrap();
        journal.update("new", |r| r.attempts = 1).await.unwrap();
        drop(journal);
        let journal = Journal::open(&path, sealed()).unwrap();
        for id in ["new", "old"] {
            let read = journal.get(id).unwrap().unwrap().checked;
            assert_eq!(read, Some(checked_job(id)), "{id}");
        }
        let unfinished = journal.unfinished().unwrap();
        assert!(unfinished.iter().all(|r| r.checked.is_some()));
        // What the dispatcher reads to start a job: the checked job, not the document.
        let to_run = journal.get_to_run("new").unwrap().unwrap();
        assert_eq!(
            (to_run.checked.is_some(), to_run.document.as_str()),
            (true, "")
        );
        journal
            .update("new", |r| {
                r.state = JobState::Succeeded;
                r.finished_at = Some(Timestamp::UNIX_EPOCH);
            })
            .await
            .unwrap();
        journal.prune(Timestamp::now()).await.unwrap();
        assert_eq!(journal.get("new").unwrap().unwrap().checked, None);
    }

    #[tokio::test]
    async fn a_document_is_stored_once_and_comes_back_with_every_read_and_update() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("journal.redb"), sealed()).unwrap();
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

    /// A closed journal of `jobs` jobs with documents of a few kilobytes, some finished.
    async fn written(path: &Path, jobs: usize) -> Vec<String> {
        let journal = Journal::open(path, sealed()).unwrap();
        let mut ids = Vec::new();
        for i in 0..jobs {
            let mut job = record(&format!("urn:uuid:{i}"), "d");
            job.document = format!("---\nid: {i}\n---\n{}", "x".repeat(2000 + i));
            journal.submit(job).await.unwrap();
            if i % 3 == 0 {
                finish(&journal, &format!("urn:uuid:{i}"), Timestamp::now()).await;
            }
            ids.push(format!("urn:uuid:{i}"));
        }
        // Closed cleanly as the last handle goes: `check` reads it without repairing it first.
        drop(journal);
        ids
    }

    fn flip(path: &Path, at: u64) {
        use std::io::{Read, Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut byte = [0u8];
        file.seek(SeekFrom::Start(at)).unwrap();
        file.read_exact(&mut byte).unwrap();
        file.seek(SeekFrom::Start(at)).unwrap();
        file.write_all(&[!byte[0]]).unwrap();
    }

    /// Issue 34: one flipped byte at 4096 made the engine panic inside redb; at 65536 it was
    /// refused as if another engine held the file. A damaged journal is reported as damaged, and
    /// a repair keeps every record that reads whole and says what it lost.
    #[tokio::test]
    async fn a_flipped_byte_is_damage_reported_and_repair_keeps_every_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        let original = dir.path().join("written.redb");
        let ids = written(&original, 40).await;
        let size = std::fs::metadata(&original).unwrap().len();
        let mut damaged_any = false;
        for at in [4096, 65536, size / 2, size - 4096] {
            let path = dir.path().join(format!("journal-{at}.redb"));
            std::fs::copy(&original, &path).unwrap();
            flip(&path, at);
            let checked = check(&path, &sealed()).unwrap();
            let opened = Journal::open(&path, sealed());
            match opened {
                Ok(journal) => {
                    assert!(checked.is_whole(), "{at}: opens but {checked:?}");
                    drop(journal);
                    continue;
                }
                Err(e) => assert!(
                    matches!(
                        e,
                        JournalError::Damaged { .. } | JournalError::Corrupt { .. }
                    ),
                    "{at}: {e}"
                ),
            }
            damaged_any = true;
            let repaired = repair(&path, &sealed()).unwrap();
            let (damaged_copy, lost_file) = repaired.moved.clone().unwrap();
            assert!(damaged_copy.exists(), "{at}");
            let kept: Vec<&str> = repaired
                .salvage
                .kept
                .iter()
                .map(|r| r.id.as_str())
                .collect();
            let lost: Vec<&str> = repaired
                .salvage
                .lost
                .iter()
                .map(|l| l.key.as_str())
                .collect();
            assert!(
                kept.len() > ids.len() / 2,
                "{at}: kept only {kept:?}, lost {lost:?}"
            );
            for id in &ids {
                assert!(
                    kept.contains(&id.as_str()) ^ lost.contains(&id.as_str())
                        || lost.iter().any(|l| l.contains("table")),
                    "{at}: {id} neither kept nor said lost"
                );
            }
            assert_eq!(lost_file.is_some(), !lost.is_empty(), "{at}");
            let journal = Journal::open(&path, sealed()).unwrap();
            for record in &repaired.salvage.kept {
                let read = journal.get(&record.id).unwrap().unwrap();
                assert_eq!(&read, record, "{at}");
            }
            let unfinished = journal.unfinished().unwrap().len();
            assert_eq!(
                unfinished,
                repaired
                    .salvage
                    .kept
                    .iter()
                    .filter(|r| !r.state.is_final())
                    .count()
            );
            drop(journal);
            assert!(check(&path, &sealed()).unwrap().is_whole(), "{at}");
        }
        assert!(
            damaged_any,
            "no flip damaged anything: the test proves nothing"
        );
    }

    #[tokio::test]
    async fn a_record_that_does_not_read_is_named_and_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.redb");
        written(&path, 5).await;
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(JOBS)
                .unwrap()
                .insert("urn:uuid:2", b"{\"id\": not json".as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let refused = Journal::open(&path, sealed()).err().unwrap();
        assert!(
            matches!(&refused, JournalError::Corrupt { id, .. } if id == "urn:uuid:2"),
            "{refused}"
        );
        let repaired = repair(&path, &sealed()).unwrap();
        assert_eq!(repaired.salvage.kept.len(), 4);
        assert_eq!(repaired.salvage.lost.len(), 1);
        let lost = &repaired.salvage.lost[0];
        assert_eq!(lost.key, "urn:uuid:2");
        assert!(
            lost.detail.contains("not a sealed value"),
            "{}",
            lost.detail
        );
        let as_stored = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "{\"id\": not json",
        );
        assert_eq!(lost.record.as_deref(), Some(as_stored.as_str()));
        let lost_file = repaired.moved.unwrap().1.unwrap();
        let listed = std::fs::read_to_string(lost_file).unwrap();
        assert!(
            listed.contains("urn:uuid:2") && listed.lines().count() == 1,
            "{listed}"
        );
        let journal = Journal::open(&path, sealed()).unwrap();
        assert!(journal.get("urn:uuid:2").unwrap().is_none());
        assert!(journal.get("urn:uuid:3").unwrap().is_some());
    }

    #[tokio::test]
    async fn a_journal_written_before_the_documents_table_keeps_every_document() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.redb");
        // As journals written before the documents table stored a job: its document in its JSON
        // (and, as before the finished table, nothing listed it there once it had finished).
        let mut old = record("old", "d");
        old.document = "---\nid: old\n---\n".into();
        (old.state, old.finished_at) = (JobState::Failed, Some(Timestamp::UNIX_EPOCH));
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
        let journal = Journal::open(&path, sealed()).unwrap();
        {
            let txn = journal.db.begin_read().unwrap();
            let stored = txn.open_table(JOBS).unwrap().get("old").unwrap().unwrap();
            assert!(!String::from_utf8_lossy(stored.value()).contains("old"));
            assert_eq!(txn.open_table(FINISHED).unwrap().len().unwrap(), 1);
        }
        assert_eq!(journal.get("old").unwrap().unwrap().document, old.document);
        journal.update("old", |r| r.attempts = 2).await.unwrap();
        let read = journal.get("old").unwrap().unwrap();
        assert_eq!((read.attempts, read.document), (2, old.document));
        assert_eq!(journal.prune(Timestamp::now()).await.unwrap(), 1);
    }

    /// A journal of the release before sealing (plaintext records, checked jobs and documents,
    /// no `meta` table): sealed when opened, every job as it was, no plaintext left in the file
    /// (not even in pages redb freed), and closed to another key.
    #[tokio::test]
    async fn a_journal_from_before_sealing_is_sealed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.redb");
        let mut job = record("plain", "d");
        job.document = "---\nid: plain\n---\nA secret intent: 0xfeedface".into();
        job.result = Some("{\"counts\":{\"0110\":777}}".into());
        let checked = checked_job("plain");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            let json = serde_json::to_vec(&job).unwrap();
            txn.open_table(JOBS)
                .unwrap()
                .insert("plain", json.as_slice())
                .unwrap();
            let checked_json = serde_json::to_vec(&checked).unwrap();
            txn.open_table(CHECKED)
                .unwrap()
                .insert("plain", checked_json.as_slice())
                .unwrap();
            (txn.open_table(PLAIN_DOCUMENTS).unwrap())
                .insert("plain", job.document.as_str())
                .unwrap();
            txn.open_table(UNFINISHED)
                .unwrap()
                .insert(0, "plain")
                .unwrap();
            txn.commit().unwrap();
        }
        // What a start killed while sealing left: the next one begins again.
        let sealing = path.with_extension("redb.sealing");
        std::fs::write(&sealing, b"half a journal").unwrap();
        let journal = Journal::open(&path, sealed()).unwrap();
        assert!(!sealing.exists());
        assert_eq!(journal.sealed_at_open(), 1);
        let read = journal.get("plain").unwrap().unwrap();
        assert_eq!((&read.document, &read.result), (&job.document, &job.result));
        assert_eq!(read.checked, Some(checked));
        assert_eq!(journal.unfinished().unwrap().len(), 1);
        drop(journal);
        let bytes = std::fs::read(&path).unwrap();
        for plaintext in ["0xfeedface", "0110", "A secret intent", "\"signer\""] {
            assert!(
                !bytes
                    .windows(plaintext.len())
                    .any(|w| w == plaintext.as_bytes()),
                "{plaintext} is in the file"
            );
        }
        let other = Sealed::new(Arc::new(chimera_keys::DataSealer::new(
            zeroize::Zeroizing::new([8u8; 32]),
        )));
        let refused = Journal::open(&path, other).err().unwrap();
        assert!(matches!(refused, JournalError::Corrupt { .. }), "{refused}");
        let again = Journal::open(&path, sealed()).unwrap();
        assert_eq!(again.get("plain").unwrap().unwrap().document, job.document);
    }

    /// `check` and `repair` read sealed journals only: one from before sealing is refused, with
    /// what to do, and left as it is.
    #[test]
    fn check_refuses_a_journal_from_before_sealing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.redb");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            let json = serde_json::to_vec(&record("plain", "d")).unwrap();
            txn.open_table(JOBS)
                .unwrap()
                .insert("plain", json.as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let refused = check(&path, &sealed()).err().unwrap();
        assert!(
            matches!(refused, JournalError::BeforeSealing { .. }),
            "{refused}"
        );
        assert!(refused.to_string().contains("chimera serve"), "{refused}");
        assert!(repair(&path, &sealed()).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}
