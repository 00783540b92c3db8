//! `chimera head`: one worker head, started by `chimera serve` (the head itself is
//! `chimera-head`'s).

use std::path::PathBuf;

use anyhow::Result;
use chimera_head::{HeadOptions, Role};
use clap::Args;

#[derive(Args)]
pub struct HeadArgs {
    /// The head's id (q0, q1, a0, a1).
    #[arg(long)]
    id: String,
    /// `quantum` or `ai`.
    #[arg(long)]
    role: Role,
    /// The supervisor's socket for this head.
    #[arg(long)]
    socket: PathBuf,
    /// The engine's data directory: the head's sealed state (training runs and their
    /// checkpoints) in DIR/heads/ID, the replicas it holds of its peers' in DIR/replicas/ID,
    /// models in DIR/models, datasets named by file in DIR/data.
    #[arg(long)]
    data_dir: PathBuf,
}

pub fn run(args: HeadArgs) -> Result<()> {
    let options = HeadOptions {
        id: args.id,
        role: args.role,
        socket: args.socket,
        data_dir: args.data_dir,
    };
    Ok(chimera_head::serve(&options)?)
}
