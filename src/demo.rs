//! `chimera demo`: the whole engine in one command, on a fresh CPU-only machine. It starts an
//! engine with its four heads in a temporary directory, makes a client key and trusts it, signs
//! the bundled example jobs, submits them over gRPC, follows them to their results and checks
//! the engine's receipts, shows the heads, and shuts down.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chimera_maml::{ANY_TYPE, DEFAULT_MAX_BYTES, SecretKey, TrustStore, sign_document};
use chimera_proto::v1::{JobState, ListHeadsRequest, SubmitRequest};
use chimera_server::{Engine, trust_path};
use clap::Args;

use crate::client::{self, describe_outcome, heads_table};

/// The bundled example jobs, unsigned as in `examples/`.
const EXAMPLES: [(&str, &str); 4] = [
    ("bell.maml.md", include_str!("../examples/bell.maml.md")),
    ("qft.maml.md", include_str!("../examples/qft.maml.md")),
    (
        "train-digits.maml.md",
        include_str!("../examples/train-digits.maml.md"),
    ),
    (
        "hybrid-moons.maml.md",
        include_str!("../examples/hybrid-moons.maml.md"),
    ),
];

#[derive(Args)]
pub struct DemoArgs {
    /// Keep the engine's directory (journal, keys, models) instead of removing it at the end.
    #[arg(long)]
    keep: bool,
}

pub fn run(args: DemoArgs) -> Result<()> {
    tokio::runtime::Runtime::new()?.block_on(demo(args))
}

async fn demo(args: DemoArgs) -> Result<()> {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("chimera-demo-")
        .tempdir()
        .context("cannot make a temporary directory")?;
    let data_dir = dir.path().join("data");
    println!("== engine: data in {}", data_dir.display());

    let client_key = SecretKey::generate()?;
    let mut trust = TrustStore::new();
    trust.add(
        "demo-client",
        client_key.public_key(),
        vec![ANY_TYPE.to_owned()],
        jiff::Timestamp::now(),
    )?;
    std::fs::create_dir_all(&data_dir)?;
    trust.save(&trust_path(&data_dir))?;
    println!(
        "   client key {} trusted as `demo-client`",
        client_key.public_key().id()
    );

    // The demo's directory goes when it ends, so its unseal key may live beside the data (never
    // inside it); `chimera serve` keeps its key off the data volume.
    let key_file = dir.path().join("unseal.key");
    chimera_unseal::new_key_file(&key_file)?;
    let source = chimera_unseal::Source::File(key_file);
    let keyring = chimera_unseal::unseal(&source, &data_dir)?.keyring;
    println!("   sealed under the unseal key {}", keyring.unseal_key_id());
    let engine = Engine::start(crate::serve::engine_config(
        &data_dir,
        keyring,
        Duration::from_secs(3),
    )?)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    println!("   engine key {}, gRPC on {url}", engine.engine_key_id());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(engine.serve(listener, None, None, async {
        let _ = stopped.await;
    }));
    let outcome = drive(&url, &client_key).await;
    let _ = stop.send(());
    server.await.context("the engine task failed")??;
    if args.keep {
        let kept = dir.keep();
        println!("== kept {}", kept.display());
    }
    outcome?;
    println!(
        "== done in {:.1} s: every job succeeded and every receipt checked",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn drive(url: &str, client_key: &SecretKey) -> Result<()> {
    let mut client = client::connect(url).await?;
    let mut jobs = Vec::new();
    println!("== submitting the bundled examples, signed with ML-DSA-65");
    for (name, text) in EXAMPLES {
        let signed = sign_document(text.as_bytes(), client_key, DEFAULT_MAX_BYTES)
            .with_context(|| format!("cannot sign {name}"))?;
        let reply = client
            .submit(SubmitRequest {
                document: signed.text.into_bytes(),
            })
            .await
            .map_err(client::status_error)
            .with_context(|| format!("{name} was refused"))?
            .into_inner();
        let job = reply.job.context("the engine answered without the job")?;
        println!("   {name}: accepted as {} ({})", job.id, job.job_type);
        jobs.push(job.id);
    }
    println!("== following the jobs");
    let mut failed = Vec::new();
    for id in &jobs {
        let job = client::follow(&mut client, id, Some(client_key), false).await?;
        println!("{}", describe_outcome(&job));
        if job.state != JobState::Succeeded as i32 || !chimera_client::receipt::valid(&job) {
            failed.push(id.clone());
        }
    }
    let heads = client
        .list_heads(ListHeadsRequest {})
        .await
        .map_err(client::status_error)?
        .into_inner()
        .heads;
    println!("== heads");
    print!("{}", heads_table(&heads));
    if !failed.is_empty() {
        bail!("these jobs did not succeed with a valid receipt: {failed:?}");
    }
    Ok(())
}
