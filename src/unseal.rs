//! `chimera unseal-key new`: a new unseal key for an operator to keep off the data volume.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum UnsealKeyCommand {
    /// Make a new unseal key: 32 random bytes in a new file, readable by its owner alone. An
    /// existing file is never overwritten.
    New {
        /// Where to write it: not on the data volume (a copy of the volume would carry the key
        /// beside what it protects).
        #[arg(short, long)]
        output: PathBuf,
    },
}

pub fn run(command: UnsealKeyCommand) -> Result<()> {
    match command {
        UnsealKeyCommand::New { output } => {
            let key = chimera_unseal::new_key_file(&output)
                .with_context(|| format!("making an unseal key at {}", output.display()))?;
            println!(
                "made the unseal key {} (id {}): back it up, and keep it and its backups off the \
                 data volume; without it, nothing sealed under it can be read",
                output.display(),
                key.id()
            );
            Ok(())
        }
    }
}
