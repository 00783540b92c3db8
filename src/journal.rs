//! `chimera journal check` and `chimera journal repair`: the engine's job journal looked at, and
//! a damaged one replaced by one of every record that reads whole, with the engine stopped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use chimera_audit::Event;
use chimera_journal::{Lost, Salvage, Sealed};
use chimera_keys::DataSealer;
use chimera_server::journal_path;
use clap::Subcommand;

use crate::serve::{DEFAULT_DATA_DIR, existing_data_dir};
use crate::unseal::UnsealArgs;

/// How the data directory's journal is sealed, with the operator's key.
fn sealed_journal(data_dir: &Path, unseal: &UnsealArgs) -> Result<Sealed> {
    let keyring = unseal.open(data_dir)?;
    let sealer = DataSealer::new(keyring.data().clone());
    Ok(Sealed::new(Arc::new(sealer)))
}

#[derive(Subcommand)]
pub enum JournalCommand {
    /// Read every record of the journal and check every page of it: exit 0 only when it is whole.
    /// Changes nothing.
    Check {
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// The key the data directory is sealed under.
        #[command(flatten)]
        unseal: UnsealArgs,
    },
    /// Replace a damaged journal with one of every record that reads whole. The damaged file is
    /// kept beside it (journal.redb.damaged-TIME), what did not read is listed in
    /// journal.lost-TIME.jsonl, and the audit log records what was lost. Stop the engine first.
    Repair {
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// The key the data directory is sealed under.
        #[command(flatten)]
        unseal: UnsealArgs,
    },
}

pub fn run(command: JournalCommand) -> Result<bool> {
    match command {
        JournalCommand::Check { data_dir, unseal } => {
            let sealed = sealed_journal(existing_data_dir(&data_dir)?, &unseal)?;
            let path = journal_path(&data_dir);
            let salvage = chimera_journal::check(&path, &sealed)?;
            report(&path, &salvage);
            if !salvage.is_whole() {
                eprintln!(
                    "`chimera journal repair --data-dir {}` keeps the {} jobs that read whole",
                    data_dir.display(),
                    salvage.kept.len()
                );
            }
            Ok(salvage.is_whole())
        }
        JournalCommand::Repair { data_dir, unseal } => {
            let data_dir = existing_data_dir(&data_dir)?;
            let sealed = sealed_journal(data_dir, &unseal)?;
            let path = journal_path(data_dir);
            let repaired = chimera_journal::repair(&path, &sealed)?;
            report(&path, &repaired.salvage);
            let Some((damaged_copy, lost_file)) = repaired.moved else {
                println!("nothing to repair");
                return Ok(true);
            };
            println!(
                "{}: a new journal of the {} jobs that read whole; the damaged file is {}",
                path.display(),
                repaired.salvage.kept.len(),
                damaged_copy.display()
            );
            if let Some(lost_file) = &lost_file {
                println!("what was lost is listed in {}", lost_file.display());
            }
            let lost = repaired
                .salvage
                .lost
                .iter()
                .map(|l| l.key.clone())
                .collect();
            crate::audit::record(
                data_dir,
                Event::JournalRepaired {
                    kept: repaired.salvage.kept.len(),
                    lost,
                    damaged_copy: damaged_copy.display().to_string(),
                    lost_file: lost_file.map(|f| f.display().to_string()),
                },
            )?;
            Ok(true)
        }
    }
}

fn report(path: &std::path::Path, salvage: &Salvage) {
    match &salvage.store {
        Ok(()) => println!("{}: every page checks", path.display()),
        Err(detail) => println!("{}: DAMAGED: {detail}", path.display()),
    }
    println!("{} jobs read whole", salvage.kept.len());
    for Lost { key, detail, .. } in &salvage.lost {
        println!("LOST {key}: {detail}");
    }
}
