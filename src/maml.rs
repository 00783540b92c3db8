//! `chimera keygen`, `chimera sign` and `chimera verify`: signed MAML jobs without a server.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chimera_maml::{
    ANY_TYPE, DEFAULT_MAX_BYTES, Policy, PublicKey, SecretKey, TrustStore, admit, sign_document,
    write_key_pair,
};
use clap::Args;

#[derive(Args)]
pub struct KeygenArgs {
    /// Writes PREFIX.key (the secret key, mode 0600) and PREFIX.pub (the public key).
    #[arg(long, value_name = "PREFIX")]
    out: PathBuf,
    /// Replace an existing key pair with that prefix.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
pub struct SignArgs {
    /// The MAML document to sign; '-' reads standard input.
    file: PathBuf,
    /// The secret key file made by `chimera keygen`.
    #[arg(long, value_name = "PREFIX.key")]
    key: PathBuf,
    /// Where to write the signed document (standard output when not given).
    #[arg(short = 'o', long = "out", value_name = "OUT")]
    out: Option<PathBuf>,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The signed MAML document; '-' reads standard input.
    file: PathBuf,
    /// The public key the document must be signed with.
    #[arg(long = "pub", value_name = "PREFIX.pub")]
    public_key: PathBuf,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

pub fn keygen(args: KeygenArgs) -> Result<()> {
    let key = SecretKey::generate()?;
    let files = write_key_pair(&key, &args.out, args.force)?;
    println!("key id  {}", key.public_key().id());
    println!(
        "secret  {} (mode 0600: keep it private)",
        files.secret.display()
    );
    println!("public  {}", files.public.display());
    Ok(())
}

pub fn sign(args: SignArgs) -> Result<()> {
    let key = SecretKey::read_file(&args.key)?;
    let document = read_document(&args.file)?;
    let signed = sign_document(&document, &key, DEFAULT_MAX_BYTES)
        .with_context(|| format!("{} cannot be signed", args.file.display()))?;
    if let Some(previous) = signed.replaced {
        eprintln!("note: replaced the previous signature, by key {previous}");
    }
    match &args.out {
        Some(path) => std::fs::write(path, &signed.text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().write_all(signed.text.as_bytes())?,
    }
    eprintln!("signed with ML-DSA-65 key {}", key.public_key().id());
    Ok(())
}

/// Applies the engine's submission checks with `--pub` as the only trusted key, allowed every
/// job type: valid here means the engine accepts the job once that key is trusted for its type.
pub fn verify(args: VerifyArgs) -> Result<bool> {
    let key = PublicKey::read_file(&args.public_key)?;
    let key_id = key.id();
    let mut trust = TrustStore::new();
    trust.add(
        "given",
        key,
        vec![ANY_TYPE.to_owned()],
        jiff::Timestamp::now(),
    )?;
    let document = read_document(&args.file)?;
    let outcome = admit(
        &document,
        &trust,
        &Policy::default(),
        jiff::Timestamp::now(),
    );
    let file = args.file.display();
    if args.json {
        let json = match &outcome {
            Ok(admitted) => serde_json::json!({
                "valid": true,
                "key_id": key_id.to_string(),
                "job_id": admitted.document.job.id,
                "type": admitted.document.job.job_type,
            }),
            Err(refusal) => serde_json::json!({
                "valid": false,
                "reason": refusal.reason(),
                "message": refusal.to_string(),
            }),
        };
        println!("{json}");
    } else {
        match &outcome {
            Ok(admitted) => {
                let job = &admitted.document.job;
                let blocks: Vec<&str> = job
                    .code_blocks
                    .iter()
                    .filter(|b| b.kind.is_runnable())
                    .map(|b| b.language.as_str())
                    .collect();
                println!(
                    "{file}: valid, signed by ML-DSA-65 key {key_id}\n  job {} ({}), blocks: {}",
                    job.id,
                    job.job_type,
                    blocks.join(", ")
                );
            }
            Err(refusal) => eprintln!("{file}: INVALID ({}): {refusal}", refusal.reason()),
        }
    }
    Ok(outcome.is_ok())
}

fn read_document(path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin().read_to_end(&mut bytes)?;
    } else {
        bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    }
    if bytes.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(bytes)
}
