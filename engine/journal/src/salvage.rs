//! What still reads of a damaged journal ([`check`]), and a new journal of it ([`repair`]):
//! `chimera journal check` and `chimera journal repair`, run with the engine stopped.
//!
//! Records are found by their ids in every table that names jobs (`jobs`, `documents`,
//! `unfinished`, `finished`), so that a damaged page hides only the records on it, and each is
//! read on its own, a failure (or a panic of redb's) costing that record alone. A job is kept when
//! its record and its document both read whole; anything else is lost, and said so.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;

use crate::{
    CHECKED, DOCUMENTS, FINISHED, JOBS, JobRecord, JournalError, Sealed, UNFINISHED, caught,
    checked, guarded, opening, put, put_checked, put_document,
};

/// A job, or a table's list of them, that did not read whole.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lost {
    /// The job's id, or the table whose list broke off.
    pub key: String,
    pub detail: String,
    /// The job's record as stored (sealed, in base64), when that much read.
    pub record: Option<String>,
}

/// What a look at a journal found.
#[derive(Debug, Clone)]
pub struct Salvage {
    /// Every job that reads whole, in submission order.
    pub kept: Vec<JobRecord>,
    pub lost: Vec<Lost>,
    /// redb's own check of every page's checksum: `Err` says what is damaged.
    pub store: Result<(), String>,
}

impl Salvage {
    pub fn is_whole(&self) -> bool {
        self.lost.is_empty() && self.store.is_ok()
    }
}

/// What [`repair`] did.
#[derive(Debug, Clone)]
pub struct Repaired {
    pub salvage: Salvage,
    /// Where the damaged file went, and the file that lists what was lost (if anything was);
    /// `None` when the journal was whole and nothing was done.
    pub moved: Option<(PathBuf, Option<PathBuf>)>,
}

/// Reads every record of the journal at `path` that reads whole (and opens under `sealed`'s key),
/// and checks its store.
pub fn check(path: &Path, sealed: &Sealed) -> Result<Salvage, JournalError> {
    if !path.exists() {
        return Err(JournalError::Open {
            path: path.display().to_string(),
            detail: "no such file".into(),
        });
    }
    let store = store_check(path)?;
    let (kept, lost) = read_what_reads(path, sealed)?;
    Ok(Salvage { kept, lost, store })
}

/// Writes what [`check`] finds readable into a new journal at `path`; the damaged file is
/// renamed `journal.redb.damaged-TIME` beside it, and what was lost listed, a JSON object a line,
/// in `journal.lost-TIME.jsonl`. A whole journal is left as it is.
pub fn repair(path: &Path, sealed: &Sealed) -> Result<Repaired, JournalError> {
    let salvage = check(path, sealed)?;
    if salvage.is_whole() {
        return Ok(Repaired {
            salvage,
            moved: None,
        });
    }
    let stamp = Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let renamed = |suffix: String| path.with_file_name(suffix);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("journal.redb");
    let fresh = renamed(format!("{name}.repairing"));
    write_journal(&fresh, &salvage.kept, sealed)?;
    let damaged_copy = renamed(format!("{name}.damaged-{stamp}"));
    let write = |e: std::io::Error| JournalError::Write(e.to_string());
    std::fs::rename(path, &damaged_copy).map_err(write)?;
    std::fs::rename(&fresh, path).map_err(write)?;
    let lost_file = match salvage.lost.is_empty() {
        true => None,
        false => {
            let lost_file = renamed(format!("journal.lost-{stamp}.jsonl"));
            let lines: String = salvage
                .lost
                .iter()
                .map(|l| serde_json::to_string(l).expect("plain data serialises") + "\n")
                .collect();
            std::fs::write(&lost_file, lines).map_err(write)?;
            Some(lost_file)
        }
    };
    Ok(Repaired {
        salvage,
        moved: Some((damaged_copy, lost_file)),
    })
}

/// A copy of the journal beside it, removed when dropped.
struct Copy(PathBuf);

impl Copy {
    fn of(path: &Path) -> Result<Self, JournalError> {
        let copy = path.with_extension("redb.checking");
        std::fs::copy(path, &copy).map_err(|e| JournalError::Write(e.to_string()))?;
        Ok(Self(copy))
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// redb's check of every page's checksum, on a copy (the check repairs what it can, and the
/// original must stay as it is until it is repaired on purpose).
fn store_check(path: &Path) -> Result<Result<(), String>, JournalError> {
    // Not open elsewhere: a copy of a journal being written would not be the journal.
    drop(read_only(path)?);
    let copy = Copy::of(path)?;
    let checked = guarded(path, || {
        let db = Database::create(&copy.0).map_err(|e| opening(path, e))?;
        match checked(path, db)? {
            (_, true) => Ok(()),
            (_, false) => Err(JournalError::Damaged {
                path: path.display().to_string(),
                detail: "its last commit does not check, and only the one before it does".into(),
            }),
        }
    });
    match checked {
        Ok(()) => Ok(Ok(())),
        Err(JournalError::Damaged { detail, .. }) => Ok(Err(detail)),
        Err(other) => Err(other),
    }
}

/// The journal opened to read: `Ok(None)` when it was not closed cleanly, which redb opens only
/// to write, after a repair.
fn read_only(path: &Path) -> Result<Option<redb::ReadOnlyDatabase>, JournalError> {
    guarded(path, || match redb::Builder::new().open_read_only(path) {
        Ok(db) => Ok(Some(db)),
        Err(redb::DatabaseError::RepairAborted) => Ok(None),
        Err(e) => Err(opening(path, e)),
    })
}

/// Every job that reads whole, and what does not: from the file itself, or when it was not
/// closed cleanly, from a copy that redb has repaired. (Not `store_check`'s copy: a copy whose
/// check failed is no longer open, while the repair alone can still leave much of it readable.)
fn read_what_reads(
    path: &Path,
    sealed: &Sealed,
) -> Result<(Vec<JobRecord>, Vec<Lost>), JournalError> {
    if let Some(db) = read_only(path)? {
        refuse_before_sealing(path, &db)?;
        return Ok(read_all(&db, sealed));
    }
    let copy = Copy::of(path)?;
    let db = guarded(path, || {
        Database::create(&copy.0).map_err(|e| opening(path, e))
    })
    .map_err(|e| JournalError::Damaged {
        path: path.display().to_string(),
        detail: format!(
            "it was not closed cleanly, and its damage stops redb's repair, without which \
             nothing of it reads: {e}"
        ),
    })?;
    refuse_before_sealing(path, &db)?;
    Ok(read_all(&db, sealed))
}

/// Refuses a journal an earlier release wrote, whose values the engine seals when it first opens
/// it: this release reads sealed values only.
fn refuse_before_sealing(path: &Path, db: &impl ReadableDatabase) -> Result<(), JournalError> {
    let marked = read_or_say(|| {
        let txn = db.begin_read().map_err(|e| e.to_string())?;
        let meta = match txn.open_table(crate::META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
            Err(e) => return Err(e.to_string()),
        };
        Ok(meta
            .get(crate::SEALING.0)
            .map_err(|e| e.to_string())?
            .is_some())
    });
    match marked {
        Ok(false) => Err(JournalError::BeforeSealing {
            path: path.display().to_string(),
        }),
        // Sealed; or the damage is where it would say so, and each record will tell.
        Ok(true) | Err(_) => Ok(()),
    }
}

fn read_all(db: &impl ReadableDatabase, sealed: &Sealed) -> (Vec<JobRecord>, Vec<Lost>) {
    let (ids, mut lost) = ids_named(db);
    let mut kept = Vec::new();
    for id in ids {
        match read_job(db, &id, sealed) {
            Ok(record) => kept.push(record),
            Err((detail, record)) => lost.push(Lost {
                key: id,
                detail,
                record,
            }),
        }
    }
    kept.sort_by_key(|r| r.seq);
    (kept, lost)
}

/// A read of the salvaged store, whose failure (a panic of redb's too) is said in words.
fn read_or_say<T>(read: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    caught(read, |said| said)
}

/// Every job id any table names, and each table whose list broke off.
fn ids_named(db: &impl ReadableDatabase) -> (BTreeSet<String>, Vec<Lost>) {
    let mut ids = BTreeSet::new();
    let mut lost = Vec::new();
    let listed = [
        (
            "jobs",
            list_ids(db, JOBS, &mut ids, |id, _| id.value().into()),
        ),
        (
            "documents",
            list_ids(db, DOCUMENTS, &mut ids, |id, _| id.value().into()),
        ),
        (
            "checked",
            list_ids(db, CHECKED, &mut ids, |id, _| id.value().into()),
        ),
        (
            "unfinished",
            list_ids(db, UNFINISHED, &mut ids, |_, id| id.value().into()),
        ),
        (
            "finished",
            list_ids(db, FINISHED, &mut ids, |_, id| id.value().into()),
        ),
    ];
    for (table, outcome) in listed {
        if let Err(detail) = outcome {
            lost.push(Lost {
                key: format!("the `{table}` table"),
                detail: format!("it could not be listed to its end: {detail}"),
                record: None,
            });
        }
    }
    (ids, lost)
}

/// Adds to `ids` the id each entry of `table` names (`id_of` its key and value).
fn list_ids<K: redb::Key + 'static, V: redb::Value + 'static>(
    db: &impl ReadableDatabase,
    table: TableDefinition<K, V>,
    ids: &mut BTreeSet<String>,
    id_of: impl Fn(redb::AccessGuard<'_, K>, redb::AccessGuard<'_, V>) -> String,
) -> Result<(), String> {
    read_or_say(|| {
        let txn = db.begin_read().map_err(|e| e.to_string())?;
        let table = txn.open_table(table).map_err(|e| e.to_string())?;
        for entry in table.iter().map_err(|e| e.to_string())? {
            let (key, value) = entry.map_err(|e| e.to_string())?;
            ids.insert(id_of(key, value));
        }
        Ok(())
    })
}

/// Job `id`, record and document; or why not, with the record as stored if it read.
fn read_job(
    db: &impl ReadableDatabase,
    id: &str,
    sealed: &Sealed,
) -> Result<JobRecord, (String, Option<String>)> {
    let stored = read_or_say(|| {
        let txn = db.begin_read().map_err(|e| e.to_string())?;
        let jobs = txn.open_table(JOBS).map_err(|e| e.to_string())?;
        let bytes = jobs.get(id).map_err(|e| e.to_string())?;
        Ok(bytes.map(|b| b.value().to_vec()))
    })
    .map_err(|detail| (detail, None))?;
    let Some(bytes) = stored else {
        return Err((
            "a table names it, but its record is not stored".into(),
            None,
        ));
    };
    let as_stored = Some(crate::sealed::as_text(&bytes));
    let mut record = (sealed.record(id, &bytes)).map_err(|e| (e.to_string(), as_stored.clone()))?;
    let document = read_or_say(|| {
        let txn = db.begin_read().map_err(|e| e.to_string())?;
        let documents = txn.open_table(DOCUMENTS).map_err(|e| e.to_string())?;
        let document = documents.get(id).map_err(|e| e.to_string())?;
        Ok(document.map(|d| d.value().to_vec()))
    })
    .map_err(|detail| (format!("its document: {detail}"), as_stored.clone()))?;
    match document {
        Some(document) => {
            record.document =
                (sealed.document(id, &document)).map_err(|e| (e.to_string(), as_stored.clone()))?;
        }
        None if record.pruned_at.is_some() => {}
        None => return Err(("its document is not stored".into(), as_stored)),
    }
    record.checked = read_checked(db, id, sealed);
    Ok(record)
}

/// Job `id`'s checked job, if it reads: one that does not is made again from its document when
/// the engine starts, as a job an earlier release admitted is.
fn read_checked(
    db: &impl ReadableDatabase,
    id: &str,
    sealed: &Sealed,
) -> Option<crate::CheckedJob> {
    let stored = read_or_say(|| {
        let txn = db.begin_read().map_err(|e| e.to_string())?;
        let checked = txn.open_table(CHECKED).map_err(|e| e.to_string())?;
        let job = checked.get(id).map_err(|e| e.to_string())?;
        Ok(job.map(|j| j.value().to_vec()))
    });
    sealed.checked(id, &stored.ok()??).ok()
}

/// A new journal at `path` holding `records` as they were (their sequence numbers too). Its
/// tables are made first, in a commit of their own, as [`Journal::open`] makes them: a journal
/// whose first commit both made the tables and held 59 jobs closed with a commit that redb
/// (3.1.3) itself then found damaged (the `hostile` test's repair).
pub(crate) fn write_journal(
    path: &Path,
    records: &[JobRecord],
    sealed: &Sealed,
) -> Result<(), JournalError> {
    let _ = std::fs::remove_file(path);
    let write = |e: &dyn std::fmt::Display| JournalError::Write(e.to_string());
    let db = Database::create(path).map_err(|e| write(&e))?;
    crate::prepare(&db, sealed).map_err(|e| match e {
        crate::Prepare::Record(e) => e,
        crate::Prepare::Store(detail) => JournalError::Write(detail),
        crate::Prepare::BeforeSealing => unreachable!("a new journal holds no job"),
    })?;
    let txn = db.begin_write().map_err(|e| write(&e))?;
    {
        let mut jobs = txn.open_table(JOBS).map_err(|e| write(&e))?;
        let mut documents = txn.open_table(DOCUMENTS).map_err(|e| write(&e))?;
        let mut checked = txn.open_table(CHECKED).map_err(|e| write(&e))?;
        let mut unfinished = txn.open_table(UNFINISHED).map_err(|e| write(&e))?;
        let mut finished = txn.open_table(FINISHED).map_err(|e| write(&e))?;
        for record in records {
            if record.pruned_at.is_none() {
                put_document(&mut documents, record, sealed).map_err(|e| write(&e))?;
            }
            put_checked(&mut checked, record, sealed).map_err(|e| write(&e))?;
            put(&mut jobs, &mut unfinished, &mut finished, record, sealed)
                .map_err(|e| write(&e))?;
        }
    }
    txn.commit().map_err(|e| write(&e))
}
