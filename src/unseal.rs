//! `chimera unseal-key new`: a new unseal key for an operator to keep off the data volume.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chimera_unseal::{Keyring, Source, Unsealed};
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

/// Where the operator's unseal key comes from (`chimera serve`, and the commands that read what
/// it seals).
#[derive(clap::Args)]
pub struct UnsealArgs {
    /// The operator's unseal key: a file of 32 random bytes, its owner's alone, outside the data
    /// directory (make one with `chimera unseal-key new`). Without this or --unseal-key-command,
    /// the key is `unseal.key` in $XDG_CONFIG_HOME/chimera/ (~/.config/chimera/), made at the
    /// first start.
    #[arg(
        long,
        env = "CHIMERA_UNSEAL_KEY_FILE",
        value_name = "PATH",
        conflicts_with = "unseal_key_command"
    )]
    unseal_key_file: Option<PathBuf>,
    /// A command whose standard output is the unseal key (its 32 bytes, 64 hex digits or base64):
    /// a KMS client, `vault kv get`, sops, systemd-creds, `cat` of a mounted secret. Run with
    /// `sh -c`; stopped after 10 s; what it says on standard error goes to the log.
    #[arg(long, env = "CHIMERA_UNSEAL_KEY_COMMAND", value_name = "CMD")]
    unseal_key_command: Option<String>,
}

impl UnsealArgs {
    fn source(&self) -> Source {
        source(
            self.unseal_key_file.clone(),
            self.unseal_key_command.clone(),
        )
    }

    /// The keyring of a data directory an engine has sealed, opened with the operator's key.
    pub fn open(&self, data_dir: &Path) -> Result<Keyring> {
        chimera_unseal::open_keyring(&self.source(), data_dir)
            .with_context(|| format!("unsealing the data directory {}", data_dir.display()))
    }

    /// The data directory's keyring, opened with the operator's key (or made, with the default
    /// key if none is given, for a directory that has none), said in the log.
    pub fn unseal(&self, data_dir: &Path) -> Result<Keyring> {
        let unsealed = chimera_unseal::unseal(&self.source(), data_dir)
            .with_context(|| format!("unsealing the data directory {}", data_dir.display()))?;
        let Unsealed { keyring, key, made } = unsealed;
        if key.made {
            tracing::warn!(
                "made a new unseal key, {} (id {}), for the data directory {}: back it up, and \
                 keep it and its backups off the data volume; without it nothing sealed there can \
                 be read",
                key.from,
                keyring.unseal_key_id(),
                data_dir.display()
            );
        }
        match made {
            true => tracing::info!(
                "sealing the data directory {} under the unseal key {} from {}",
                data_dir.display(),
                keyring.unseal_key_id(),
                key.from
            ),
            false => tracing::info!(
                "unsealed the data directory {} with the unseal key {} from {}",
                data_dir.display(),
                keyring.unseal_key_id(),
                key.from
            ),
        }
        Ok(keyring)
    }
}

/// Where a key comes from: the file, else the command, else the configuration directory.
fn source(file: Option<PathBuf>, command: Option<String>) -> Source {
    match (file, command) {
        (Some(path), _) => Source::File(path),
        (None, Some(command)) => Source::Command(command),
        (None, None) => Source::ConfigDirectory,
    }
}

/// `chimera admin rewrap`: the data directory's keyring wrapped under a new unseal key.
#[derive(clap::Args)]
pub struct RewrapArgs {
    #[arg(long, default_value = crate::serve::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The key it is sealed under now.
    #[command(flatten)]
    current: UnsealArgs,
    /// The new unseal key's file (make one with `chimera unseal-key new`).
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "new_unseal_key_command",
        required_unless_present = "new_unseal_key_command"
    )]
    new_unseal_key_file: Option<PathBuf>,
    /// A command whose standard output is the new unseal key, as --unseal-key-command.
    #[arg(long, value_name = "CMD")]
    new_unseal_key_command: Option<String>,
}

pub fn rewrap(args: RewrapArgs) -> Result<()> {
    let data_dir = crate::serve::existing_data_dir(&args.data_dir)?;
    let new = source(args.new_unseal_key_file, args.new_unseal_key_command);
    let done = chimera_unseal::rewrap(data_dir, &args.current.source(), &new)
        .with_context(|| format!("rewrapping the data directory {}", data_dir.display()))?;
    println!(
        "{}: rewrapped under the unseal key {} (was {}): start the engine with the new key from \
         now on; the old one opens nothing here any more",
        data_dir.display(),
        done.new_id,
        done.old_id
    );
    Ok(())
}
