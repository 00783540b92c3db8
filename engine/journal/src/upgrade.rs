//! A journal from before sealing, sealed: every record read as that release wrote it (its
//! document in the `documents` table, or in its JSON before that table; its checked job, if it
//! has one) and written sealed into a new file, which is then renamed over the old one.
//!
//! A new file and not the old one rewritten: redb writes a changed page elsewhere and frees the
//! old one, whose plaintext would stay in the file. A crash before the rename leaves the old
//! journal as it was, and the next start begins again.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable};

use crate::{
    CHECKED, JOBS, JobRecord, JournalError, PLAIN_DOCUMENTS, Sealed, decode, decode_checked,
    salvage,
};

/// Every record of a journal from before sealing, with its document and checked job.
pub(crate) fn plain_records(db: &Database) -> Result<Vec<JobRecord>, JournalError> {
    let txn = db.begin_read().map_err(|e| read(&e))?;
    let jobs = txn.open_table(JOBS).map_err(|e| read(&e))?;
    let documents = existing(&txn, PLAIN_DOCUMENTS)?;
    let checked = existing(&txn, CHECKED)?;
    let mut records = Vec::new();
    for entry in jobs.iter().map_err(|e| read(&e))? {
        let (id, json) = entry.map_err(|e| read(&e))?;
        let id = id.value();
        let mut record = decode(id, json.value())?;
        if let Some(document) = value(documents.as_ref(), id)? {
            record.document = document.value().to_owned();
        }
        if let Some(job) = value(checked.as_ref(), id)? {
            record.checked = Some(decode_checked(id, job.value())?);
        }
        records.push(record);
    }
    records.sort_by_key(|r| r.seq);
    Ok(records)
}

fn read(e: &dyn std::fmt::Display) -> JournalError {
    JournalError::Read(e.to_string())
}

/// `table`, if the journal has it (an older one may not).
fn existing<V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    table: redb::TableDefinition<&'static str, V>,
) -> Result<Option<redb::ReadOnlyTable<&'static str, V>>, JournalError> {
    match txn.open_table(table) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(read(&e)),
    }
}

/// The value of `id` in `table`, if there is that table and that value.
fn value<'t, V: redb::Value + 'static>(
    table: Option<&'t redb::ReadOnlyTable<&'static str, V>>,
    id: &str,
) -> Result<Option<redb::AccessGuard<'t, V>>, JournalError> {
    let found = table.map(|t| t.get(id)).transpose().map_err(|e| read(&e))?;
    Ok(found.flatten())
}

/// Replaces the journal at `path` with `records` sealed: written whole beside it, then renamed
/// over it.
pub(crate) fn seal(
    path: &Path,
    records: &[JobRecord],
    sealed: &Sealed,
) -> Result<(), JournalError> {
    let sealing = path.with_extension("redb.sealing");
    salvage::write_journal(&sealing, records, sealed)?;
    chimera_files::rename_durably(&sealing, path).map_err(|e| JournalError::Write(e.to_string()))
}
