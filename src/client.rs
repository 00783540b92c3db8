//! `chimera submit`, `watch`, `receipt`, `cancel`, `heads` and `trust`: a client of a running
//! engine, and the operator's hand on its trust store. A job answers only its owner, so the calls
//! about one job prove the key that signed it (`--key`) unless a client certificate does.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chimera_audit::Event;
use chimera_client::json::{head_json, head_status, job_json, state_name};
use chimera_client::{JobCall, Tls, job_request};
use chimera_job::{BlockResult, JobResult, Progress};
use chimera_maml::{PublicKey, SecretKey, TrustStore};
use chimera_proto::v1::engine_client::EngineClient;
use chimera_proto::v1::{
    CancelRequest, GetRequest, HeadStatus, Job, JobEvent, JobState, ListHeadsRequest,
    RotateKeysRequest, SubmitRequest, WatchRequest, job_event,
};
use chimera_server::trust_path;
use clap::{Args, Subcommand};
use tonic::transport::Channel;

use crate::serve::{DEFAULT_DATA_DIR, existing_data_dir};

use chimera_client::DEFAULT_SERVER;

#[derive(Args)]
pub struct ServerArg {
    /// The engine's gRPC address. Default: $CHIMERA_SERVER, else http://127.0.0.1:50051
    /// (https://… for an engine serving TLS).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// The CA that signed the engine's TLS certificate (PEM). Default: $CHIMERA_TLS_CA.
    #[arg(long, value_name = "PEM")]
    tls_ca: Option<PathBuf>,
    /// This client's certificate (PEM), for an engine that requires one.
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// This client's certificate's private key (PEM).
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    tls_key: Option<PathBuf>,
}

impl ServerArg {
    /// Whether calls go with a client certificate, which proves who asks about a job.
    fn certified(&self) -> bool {
        self.tls_cert.is_some()
    }

    async fn connect(&self) -> Result<EngineClient<Channel>> {
        Ok(chimera_client::engine(self.channel().await?))
    }

    async fn channel(&self) -> Result<Channel> {
        let url = self
            .server
            .clone()
            .or_else(|| std::env::var("CHIMERA_SERVER").ok())
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        let ca = self
            .tls_ca
            .clone()
            .or_else(|| std::env::var_os("CHIMERA_TLS_CA").map(PathBuf::from));
        let read = |path: &PathBuf| {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        };
        let tls = match (&ca, &self.tls_cert, &self.tls_key) {
            (None, None, None) => None,
            (ca, cert, key) => Some(Tls {
                ca: ca.as_ref().map(read).transpose()?,
                identity: match (cert, key) {
                    (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
                    _ => None,
                },
            }),
        };
        Ok(chimera_client::channel(&url, tls.as_ref()).await?)
    }
}

pub async fn connect(url: &str) -> Result<EngineClient<Channel>> {
    Ok(chimera_client::connect(url, None).await?)
}

/// The key whose jobs a command asks about.
#[derive(Args)]
pub struct KeyArg {
    /// The secret key that signed the job (PREFIX.key), which proves to the engine that the job
    /// is this client's: the engine answers a job only to its owner (or an admin key). Not needed
    /// with the client certificate (--tls-cert) that submitted it. Default: $CHIMERA_KEY.
    #[arg(long, value_name = "KEY")]
    key: Option<PathBuf>,
}

impl KeyArg {
    pub fn load(&self) -> Result<Option<SecretKey>> {
        let path = self
            .key
            .clone()
            .or_else(|| std::env::var_os("CHIMERA_KEY").map(PathBuf::from));
        Ok(path.map(|path| SecretKey::read_file(&path)).transpose()?)
    }

    /// The key, which `server`'s calls about a job need unless a client certificate proves who
    /// asks.
    fn for_calls_to(&self, server: &ServerArg, what: &str) -> Result<Option<SecretKey>> {
        let key = self.load()?;
        if key.is_none() && !server.certified() {
            bail!(
                "{what} asks about a job, which the engine answers only to its owner: give --key \
                 with the key that signed it (or $CHIMERA_KEY), or call with the client \
                 certificate that submitted it (--tls-cert, --tls-key)"
            );
        }
        Ok(key)
    }
}

#[derive(Args)]
pub struct HealthArgs {
    #[command(flatten)]
    server: ServerArg,
}

/// The engine's standard gRPC health (`grpc.health.v1`): true when it serves jobs.
pub fn health(args: HealthArgs) -> Result<bool> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    runtime()?.block_on(async {
        let mut client = HealthClient::new(args.server.channel().await?);
        let request = HealthCheckRequest {
            service: "chimera.v1.Engine".into(),
        };
        let status = client.check(request).await.map_err(status_error)?;
        let status = status.into_inner().status();
        println!("{}", status.as_str_name());
        Ok(status == ServingStatus::Serving)
    })
}

#[derive(Args)]
pub struct SubmitArgs {
    /// Signed MAML documents.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    server: ServerArg,
    /// Follow each job to its end and print its result (needs --key, or a client certificate).
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    key: KeyArg,
    /// One JSON object per job.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct WatchArgs {
    job_id: String,
    #[command(flatten)]
    server: ServerArg,
    #[command(flatten)]
    key: KeyArg,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct CancelArgs {
    job_id: String,
    #[command(flatten)]
    server: ServerArg,
    #[command(flatten)]
    key: KeyArg,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ReceiptArgs {
    job_id: String,
    #[command(flatten)]
    server: ServerArg,
    #[command(flatten)]
    key: KeyArg,
    /// Write the document here instead of to standard output.
    #[arg(short, long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args)]
pub struct HeadsArgs {
    #[command(flatten)]
    server: ServerArg,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum TrustCommand {
    /// Trust a client's public key for some job types.
    Add {
        /// The public key file made by `chimera keygen`.
        key: PathBuf,
        #[arg(long)]
        name: String,
        /// What its jobs may run, comma-separated: quantum_circuit, training, inference,
        /// hybrid_workflow (`*` for all four), and admin to read, follow and cancel every
        /// client's jobs. A job's blocks are what it runs, whatever its `type` says.
        #[arg(long, value_delimiter = ',', required = true)]
        allow: Vec<String>,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// List the trusted keys.
    List {
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Revoke a key by name or id: its jobs are refused from the next submission on.
    Revoke {
        name_or_id: String,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub fn trust(command: TrustCommand) -> Result<()> {
    let now = jiff::Timestamp::now();
    match command {
        TrustCommand::List { data_dir } => {
            let path = trust_path(existing_data_dir(&data_dir)?);
            let store = TrustStore::load(&path)?;
            if store.keys().is_empty() {
                eprintln!(
                    "no keys are trusted in {}; trust one with `chimera trust add KEY.pub --name \
                     NAME --allow TYPES --data-dir {}`",
                    path.display(),
                    data_dir.display()
                );
            }
            for key in store.keys() {
                let revoked = key
                    .revoked_at
                    .map(|t| format!("  REVOKED at {t}"))
                    .unwrap_or_default();
                println!(
                    "{:<20} {}  allow {}{revoked}",
                    key.name,
                    key.key.id(),
                    key.allow.join(",")
                );
                // Names an older engine took (a MAML type such as `workflow`) allow nothing now:
                // a key is allowed what a job's blocks run.
                for stale in key.allow.iter().filter(|a| !chimera_maml::allowable(a)) {
                    eprintln!(
                        "{}: `{stale}` allows nothing: a key is allowed quantum_circuit, training, \
                         inference, hybrid_workflow, `*` or admin (edit its `allow` in {})",
                        key.name,
                        path.display()
                    );
                }
            }
            Ok(())
        }
        TrustCommand::Add {
            key,
            name,
            allow,
            data_dir,
        } => {
            let public = PublicKey::read_file(&key)?;
            edit_trust(&data_dir, |store| {
                let added = store.add(&name, public, allow, now)?;
                let said = format!(
                    "trusted `{}` ({}) for {}",
                    added.name,
                    added.key.id(),
                    added.allow.join(", ")
                );
                let event = Event::KeyTrusted {
                    name: added.name.clone(),
                    key_id: added.key.id().to_string(),
                    allow: added.allow.clone(),
                };
                Ok((said, event))
            })
        }
        TrustCommand::Revoke {
            name_or_id,
            data_dir,
        } => edit_trust(existing_data_dir(&data_dir)?, |store| {
            let revoked = store.revoke(&name_or_id, now)?;
            let said = format!("revoked `{}` ({})", revoked.name, revoked.key.id());
            let event = Event::KeyRevoked {
                name: revoked.name.clone(),
                key_id: revoked.key.id().to_string(),
            };
            Ok((said, event))
        }),
    }
}

/// Loads the data directory's trust store, changes it, and saves it; a running engine reads it
/// again at its next submission. The change goes to the audit log.
fn edit_trust(
    data_dir: &std::path::Path,
    change: impl FnOnce(&mut TrustStore) -> Result<(String, Event)>,
) -> Result<()> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot make {}", data_dir.display()))?;
    let path = trust_path(data_dir);
    let mut store = TrustStore::load(&path)?;
    let (said, event) = change(&mut store)?;
    store.save(&path)?;
    crate::audit::record(data_dir, event)?;
    println!("{said} in {}", path.display());
    Ok(())
}

/// A job's outcome in a few lines.
pub fn describe_outcome(job: &Job) -> String {
    let mut text = format!(
        "{} {} on head {} (attempt {})",
        job.id,
        state_name(job.state),
        job.head,
        job.attempts
    );
    if !job.error.is_empty() {
        text += &format!("\n  error: {}", job.error);
    }
    if !job.pruned_at.is_empty() {
        text += &format!(
            "\n  result and receipt removed at {} (the engine keeps finished jobs for \
             --keep-finished-days)",
            job.pruned_at
        );
    }
    if !job.result_json.is_empty() {
        text += &format!("\n  result: {}", summarise(&job.result_json));
    }
    if let Some(receipt) = &job.receipt {
        let check = if chimera_client::receipt::valid(job) {
            "valid"
        } else {
            "INVALID"
        };
        let key = &receipt.engine_key_id;
        text += &format!(
            "\n  receipt: signed by engine key {}…, signature {check}",
            &key[..key.len().min(16)]
        );
    }
    text
}

/// The interesting part of a result: the most frequent counts, a model's accuracy.
fn summarise(result: &str) -> String {
    match serde_json::from_str::<JobResult>(result) {
        Ok(JobResult::Blocks { blocks }) => {
            let each: Vec<String> = blocks.iter().map(summarise_block).collect();
            each.join("; ")
        }
        Ok(JobResult::Block(block)) => summarise_block(&block),
        Err(_) => cut(result),
    }
}

fn summarise_block(result: &BlockResult) -> String {
    match result {
        BlockResult::Circuit(circuit) => {
            let mut counts: Vec<(&String, u64)> =
                circuit.counts.iter().map(|(k, &n)| (k, n)).collect();
            counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let top: Vec<String> = counts
                .iter()
                .take(4)
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            let more = counts.len().saturating_sub(4);
            let more = if more > 0 {
                format!(" (+{more} more)")
            } else {
                String::new()
            };
            format!("counts {{{}}}{more}", top.join(", "))
        }
        BlockResult::Training(trained) => {
            let id = &trained.model_id;
            format!(
                "val_accuracy {:.4}, model {}",
                trained.val_accuracy,
                &id[..id.len().min(16)]
            )
        }
        other => cut(&serde_json::to_string(other).unwrap_or_default()),
    }
}

/// `text`, cut after 200 bytes.
fn cut(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// A progress event in one line.
pub fn describe_event(event: &JobEvent) -> Option<String> {
    match &event.detail {
        Some(job_event::Detail::ProgressJson(p)) => match serde_json::from_str(p) {
            Ok(Progress::Epoch(e)) => Some(format!(
                "{} epoch {}/{}  loss {:.4}  val acc {:.3}  {:.0} samples/s",
                event.job_id, e.epoch, e.epochs, e.loss, e.val_accuracy, e.samples_per_second,
            )),
            _ => Some(format!("{} progress {p}", event.job_id)),
        },
        Some(job_event::Detail::Note(note)) => Some(format!("{} {note}", event.job_id)),
        Some(job_event::Detail::Finished(_)) => None,
        None => Some(format!(
            "{} {}{}",
            event.job_id,
            state_name(event.state),
            if event.head.is_empty() {
                String::new()
            } else {
                format!(" on head {}", event.head)
            }
        )),
    }
}

/// How long following a job keeps trying while the engine is stopping or out of reach: a
/// restart (a deploy, say) takes seconds, and the engine keeps the job in its journal meanwhile.
const ENGINE_RETURN_WAIT: Duration = Duration::from_secs(300);

/// Follows a job to its end, printing its events; returns the finished job. While the engine
/// stops and starts again it waits for it, saying so on standard error.
pub async fn follow(
    client: &mut EngineClient<Channel>,
    job_id: &str,
    key: Option<&SecretKey>,
    json: bool,
) -> Result<Job> {
    let mut away_since: Option<Instant> = None;
    loop {
        let status = match watch_to_end(client, job_id, key, json, &mut away_since).await {
            Ok(job) => return Ok(job),
            Err(status) if status.code() == tonic::Code::Unavailable => status,
            Err(status) => return Err(status_error(status)),
        };
        let since = *away_since.get_or_insert_with(|| {
            eprintln!(
                "{job_id}: {}; waiting up to {} s for the engine to be back",
                status_error(status.clone()),
                ENGINE_RETURN_WAIT.as_secs()
            );
            Instant::now()
        });
        if since.elapsed() > ENGINE_RETURN_WAIT {
            return Err(status_error(status)).with_context(|| {
                format!(
                    "the engine was not back within {} s; `chimera watch {job_id}` follows the job \
                     once it is",
                    ENGINE_RETURN_WAIT.as_secs()
                )
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One watch of the job, until it ends or the watch does; clears `away_since` once the engine
/// answers.
async fn watch_to_end(
    client: &mut EngineClient<Channel>,
    job_id: &str,
    key: Option<&SecretKey>,
    json: bool,
    away_since: &mut Option<Instant>,
) -> Result<Job, tonic::Status> {
    let watch = WatchRequest {
        job_id: job_id.to_owned(),
    };
    // A new proof for each watch: one made before the engine went away may be stale by now.
    let watch = job_request(watch, key, JobCall::Watch, job_id);
    let mut events = client.watch(watch).await?.into_inner();
    while let Some(event) = events.message().await? {
        if away_since.take().is_some() {
            eprintln!("{job_id}: the engine is back; following the job again");
        }
        if let Some(job_event::Detail::Finished(job)) = event.detail {
            return Ok(job);
        }
        if !json && let Some(line) = describe_event(&event) {
            println!("{line}");
        }
    }
    Err(tonic::Status::unavailable(format!(
        "the engine closed the watch of {job_id} before the job finished"
    )))
}

/// A gRPC status as an error that names its reason.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!(chimera_client::describe(&status))
}

pub fn submit(args: SubmitArgs) -> Result<bool> {
    let key = match args.wait {
        true => args.key.for_calls_to(&args.server, "--wait")?,
        false => None,
    };
    runtime()?.block_on(async {
        let mut client = args.server.connect().await?;
        let mut all_ok = true;
        let mut accepted = Vec::new();
        for file in &args.files {
            let document = std::fs::read(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            match client.submit(SubmitRequest { document }).await {
                Ok(reply) => {
                    let reply = reply.into_inner();
                    let job = reply.job.context("the engine answered without the job")?;
                    if !args.json {
                        let how = if reply.created { "accepted" } else { "already known" };
                        println!("{}: {how}, job {} ({})", file.display(), job.id, state_name(job.state));
                    }
                    accepted.push(job);
                }
                Err(status) => {
                    all_ok = false;
                    let reason = chimera_client::reason_of(&status).unwrap_or_default();
                    if args.json {
                        println!(
                            "{}",
                            serde_json::json!({"file": file, "refused": reason, "message": status.message()})
                        );
                    } else {
                        eprintln!("{}: refused ({reason}): {}", file.display(), status.message());
                    }
                }
            }
        }
        for job in accepted {
            let job = if args.wait {
                follow(&mut client, &job.id, key.as_ref(), args.json).await?
            } else {
                job
            };
            if args.json {
                println!("{}", job_json(&job));
            } else if args.wait {
                println!("{}", describe_outcome(&job));
            }
            if args.wait && job.state != JobState::Succeeded as i32 {
                all_ok = false;
            }
        }
        Ok(all_ok)
    })
}

pub fn watch(args: WatchArgs) -> Result<bool> {
    let key = args.key.for_calls_to(&args.server, "chimera watch")?;
    runtime()?.block_on(async {
        let mut client = args.server.connect().await?;
        let job = follow(&mut client, &args.job_id, key.as_ref(), args.json).await?;
        if args.json {
            println!("{}", job_json(&job));
        } else {
            println!("{}", describe_outcome(&job));
        }
        Ok(job.state == JobState::Succeeded as i32)
    })
}

/// Asks the engine to cancel a job: a queued one is cancelled at once, a running one stopped on
/// its head within a second. Prints the job as it stands then.
pub fn cancel(args: CancelArgs) -> Result<()> {
    let key = args.key.for_calls_to(&args.server, "chimera cancel")?;
    runtime()?.block_on(async {
        let mut client = args.server.connect().await?;
        let request = CancelRequest {
            job_id: args.job_id.clone(),
        };
        let request = job_request(request, key.as_ref(), JobCall::Cancel, &args.job_id);
        let job = client
            .cancel(request)
            .await
            .map_err(status_error)?
            .into_inner();
        if args.json {
            println!("{}", job_json(&job));
        } else {
            let state = state_name(job.state);
            match job.state == JobState::Running as i32 {
                true => println!(
                    "{}: running; asked to stop (`chimera watch` follows it)",
                    job.id
                ),
                false => println!("{}: {state}", job.id),
            }
        }
        Ok(())
    })
}

pub fn receipt(args: ReceiptArgs) -> Result<()> {
    let key = args.key.for_calls_to(&args.server, "chimera receipt")?;
    let maml = runtime()?.block_on(async {
        let mut client = args.server.connect().await?;
        let request = GetRequest {
            job_id: args.job_id.clone(),
        };
        let request = job_request(request, key.as_ref(), JobCall::Receipt, &args.job_id);
        let reply = client.get_receipt_document(request).await;
        Ok::<_, anyhow::Error>(reply.map_err(status_error)?.into_inner().maml)
    })?;
    match &args.out {
        Some(path) => std::fs::write(path, maml)
            .with_context(|| format!("cannot write the receipt to {}", path.display())),
        None => {
            print!("{maml}");
            Ok(())
        }
    }
}

pub fn heads(args: HeadsArgs) -> Result<()> {
    runtime()?.block_on(async {
        let mut client = args.server.connect().await?;
        let heads = client
            .list_heads(ListHeadsRequest {})
            .await
            .map_err(status_error)?
            .into_inner()
            .heads;
        print_heads(&heads, args.json);
        Ok(())
    })
}

fn print_heads(heads: &[chimera_proto::v1::Head], json: bool) {
    if json {
        let rows: Vec<_> = heads.iter().map(head_json).collect();
        println!("{}", serde_json::Value::from(rows));
    } else {
        print!("{}", heads_table(heads));
    }
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Rotate every head's key now (as the engine does every `--rotate-keys-every` hours): a new
    /// key of the next epoch, new shares to its peers, its state re-sealed. Waits until each head
    /// that was up seals with its new key, then shows the heads.
    Rotate(HeadsArgs),
    /// Wrap the data directory's keys under a new unseal key (`--new-unseal-key-file` or
    /// `--new-unseal-key-command`), given the current one as `chimera serve` takes it. Safe while
    /// the engine runs; it starts with the new key from then on, and the old key opens nothing
    /// there. What the keys seal is not rewritten: rewrapping is one file, replaced whole.
    Rewrap(crate::unseal::RewrapArgs),
}

/// How long `chimera admin rotate` waits for the heads' new keys.
const ROTATION_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

pub fn admin(command: AdminCommand) -> Result<()> {
    match command {
        AdminCommand::Rotate(args) => rotate(args),
        AdminCommand::Rewrap(args) => crate::unseal::rewrap(args),
    }
}

/// `chimera admin rotate`.
fn rotate(args: HeadsArgs) -> Result<()> {
    runtime()?.block_on(async {
        let mut client = args.server.connect().await?;
        let before = client
            .rotate_keys(RotateKeysRequest {})
            .await
            .map_err(status_error)?
            .into_inner()
            .heads;
        let deadline = std::time::Instant::now() + ROTATION_WAIT;
        loop {
            let now = client
                .list_heads(ListHeadsRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .heads;
            let waiting: Vec<&str> = before
                .iter()
                .filter(|b| b.status == HeadStatus::Up as i32)
                .filter(|b| {
                    !now.iter()
                        .any(|n| n.id == b.id && (n.key_epoch > b.key_epoch || n.pid != b.pid))
                })
                .map(|b| b.id.as_str())
                .collect();
            if waiting.is_empty() {
                print_heads(&now, args.json);
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "asked every head to rotate its key, but {} did not within {ROTATION_WAIT:?}; \
                     see `chimera heads` and the engine's log",
                    waiting.join(", ")
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
}

pub fn heads_table(heads: &[chimera_proto::v1::Head]) -> String {
    let mut table = format!(
        "{:<4} {:<8} {:<9} {:>8} {:>8} {:>9} {:>10} {:>9}  backend\n",
        "head", "role", "status", "pid", "restarts", "key epoch", "key shares", "jobs done"
    );
    for h in heads {
        table += &format!(
            "{:<4} {:<8} {:<9} {:>8} {:>8} {:>9} {:>10} {:>9}  {}\n",
            h.id,
            h.role,
            head_status(h.status),
            h.pid,
            h.restarts,
            h.key_epoch,
            h.key_shares,
            h.jobs_done,
            h.backend
        );
    }
    table
}
