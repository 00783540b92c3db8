//! `chimera audit verify`, and the records that `chimera trust` adds to the audit log.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chimera_audit::{AuditLog, Event, verify};
use chimera_maml::PublicKey;
use chimera_server::{audit_path, engine_key_prefix};
use clap::Subcommand;

use crate::serve::{DEFAULT_DATA_DIR, existing_data_dir};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the engine's audit log: every record chained to the one before, every checkpoint
    /// signed by the engine's key. Exit 0 only when the log is intact.
    Verify {
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
}

pub fn run(command: AuditCommand) -> Result<bool> {
    let AuditCommand::Verify { data_dir } = command;
    let data_dir = existing_data_dir(&data_dir)?;
    let path = audit_path(data_dir);
    let public = engine_key_prefix(data_dir).with_extension("pub");
    let engine = PublicKey::read_file(&public)
        .context("the engine's key, which signs the audit log's checkpoints")?;
    let engine_id = engine.id().to_string();
    let checked = verify(&path, |key_id, message, signature| {
        key_id == engine_id && engine.verify(message, signature)
    });
    let report = match checked {
        Ok(report) => report,
        Err(e) => {
            eprintln!("NOT INTACT: {e}");
            return Ok(false);
        }
    };
    println!(
        "{}: intact: {} records, {} checkpoints signed by the engine's key {engine_id}",
        path.display(),
        report.records,
        report.checkpoints,
    );
    if report.files > 1 {
        println!(
            "in {} files: {} and those it went on from ({}.N, N the number of each one's last \
             record)",
            report.files,
            path.display(),
            path.display()
        );
    }
    if report.first > 0 {
        println!(
            "from record {}: the files of the records before it are not here (archived or \
             removed), so the chain is checked from there",
            report.first
        );
    }
    if report.unsigned > 0 {
        println!(
            "{} records after the last checkpoint are chained but not yet signed (the engine signs \
             within a second, when it stops and when it starts; more means it was killed, or \
             records were added by hand)",
            report.unsigned
        );
    }
    println!("head {}", report.head);
    Ok(true)
}

/// Adds `event` to the data directory's audit log, chained but unsigned: the engine's identity key
/// is sealed, so the engine signs it (within a second when it runs, else when it next starts).
pub fn record(data_dir: &Path, event: Event) -> Result<()> {
    let mut log = AuditLog::open(&audit_path(data_dir))?;
    log.append([event], None)?;
    Ok(())
}
