//! The CHIMERA engine behind `chimera serve` (`../shared/DESIGN.md`): the gRPC front door
//! ([`service`]), admission of signed MAML jobs, the durable journal, the dispatcher that hands
//! jobs to the supervised heads ([`dispatch`]), signed receipts ([`receipt`]) and metrics.
//!
//! The data directory holds `journal.redb` (every job and result), `trust.json` (the client
//! keys trusted), `keyring.json` (the keys the operator's unseal key wraps), `engine.pub` and
//! `engine.key.sealed` (the engine's ML-DSA-65 identity, its secret sealed), `audit.log`
//! (`chimera_audit`) and `run/` (the heads' sockets).

mod admission;
pub mod client_certificates;
mod connections;
pub mod convert;
pub mod dispatch;
pub mod gpu_metrics;
mod http_door;
mod identity;
pub mod limits;
pub mod metrics_names;
pub mod owners;
pub mod receipt;
pub mod refusal;
mod request_budget;
pub mod service;
mod sources;
mod tls;
pub mod trust_file;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use chimera_audit::{AuditLog, Event, Recorder};
use chimera_job::Role;
use chimera_journal::Journal;
use chimera_keys::DataSealer;
use chimera_maml::{KeyError, Policy};
use chimera_proto::v1::engine_server::EngineServer;
use chimera_supervisor::{HeadConfig, Launcher, Supervisor, SupervisorConfig};
use chimera_unseal::Keyring;
use tokio::sync::{broadcast, mpsc};

pub use identity::engine_key_prefix;
pub use service::EngineService;
pub use tls::{Tls, TlsError};

/// How long each door has, once the engine begins to stop, to finish the calls in flight before
/// their connections are dropped. Streams and the HTTP door's waits end at once; a client that
/// has stopped reading must not hold the stop up (gRPC's pings would find it only after 50 s).
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Calls one gRPC connection may have open at once; a client's further calls wait their turn
/// (HTTP/2 clients queue them). Without it a connection could open any number.
const MAX_CALLS_PER_CONNECTION: u32 = 256;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot make the data directory {path}: {error}")]
    DataDir { path: String, error: std::io::Error },
    #[error("{error}{hint}", error = .0, hint = repair_hint(.0))]
    Journal(#[from] chimera_journal::JournalError),
    #[error("the engine's key: {0}")]
    Key(#[from] KeyError),
    #[error(
        "the engine's sealed identity key {path} does not open: {detail}. Restore it and \
         keyring.json from the same backup"
    )]
    SealedKey { path: String, detail: String },
    #[error("cannot start the receipt signer: {0}")]
    Signer(std::io::Error),
    #[error(transparent)]
    Audit(#[from] chimera_audit::AuditError),
    #[error("cannot start the audit log's writer: {0}")]
    AuditWriter(std::io::Error),
    #[error(transparent)]
    Supervisor(#[from] chimera_supervisor::SupervisorError),
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("the gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// What to do about a journal that does not read.
fn repair_hint(error: &chimera_journal::JournalError) -> &'static str {
    use chimera_journal::JournalError::{Corrupt, Damaged};
    match error {
        Damaged { .. } | Corrupt { .. } => {
            "; `chimera journal check` lists what still reads, and `chimera journal repair` \
             keeps every record that reads whole and moves the rest aside (give them this \
             engine's --data-dir)"
        }
        _ => "",
    }
}

pub struct EngineConfig {
    pub data_dir: PathBuf,
    /// The data directory's keys, opened with the operator's unseal key.
    pub keyring: Keyring,
    pub heads: Vec<HeadConfig>,
    pub launcher: Launcher,
    pub policy: Policy,
    pub heartbeat_timeout: Duration,
    pub start_timeout: Duration,
    /// How often every head rotates to a new key (DESIGN.md, "Keys, shares and sealing").
    pub key_rotation: Duration,
    pub limits: limits::Limits,
    /// How long a finished job keeps its document, result and receipt; `None`: for ever.
    pub keep_finished: Option<Duration>,
    /// The size past which the audit log goes on in a new file; `None`: one file for ever.
    pub audit_rotate_bytes: Option<u64>,
}

/// The default of [`EngineConfig::audit_rotate_bytes`].
pub const AUDIT_ROTATE_BYTES: u64 = 256 << 20;

/// The default of [`EngineConfig::key_rotation`].
pub const KEY_ROTATION: Duration = Duration::from_secs(24 * 60 * 60);

/// The four heads of DESIGN.md: `q0`, `q1` quantum, `a0`, `a1` AI.
pub fn default_heads() -> Vec<HeadConfig> {
    [
        ("q0", Role::Quantum),
        ("q1", Role::Quantum),
        ("a0", Role::Ai),
        ("a1", Role::Ai),
    ]
    .into_iter()
    .map(|(id, role)| HeadConfig {
        id: id.into(),
        role,
    })
    .collect()
}

pub fn trust_path(data_dir: &Path) -> PathBuf {
    data_dir.join("trust.json")
}

pub fn audit_path(data_dir: &Path) -> PathBuf {
    data_dir.join(chimera_audit::FILE_NAME)
}

pub fn journal_path(data_dir: &Path) -> PathBuf {
    data_dir.join("journal.redb")
}

/// The keys each head keeps at rest with, as the keyring gives them (a head gets its own
/// wrapping key, never the root it is derived from).
fn at_rest(keyring: &Keyring, heads: &[HeadConfig]) -> chimera_supervisor::AtRest {
    let text = |key: &[u8]| chimera_supervisor::KeyText(base64::Engine::encode(&BASE64, key));
    chimera_supervisor::AtRest {
        engine: keyring.engine().to_owned(),
        wrapping_keys: heads
            .iter()
            .map(|h| {
                (
                    h.id.clone(),
                    text(keyring.head_wrapping_key(&h.id).as_slice()),
                )
            })
            .collect(),
        models_key: text(keyring.models().as_slice()),
    }
}

/// Asks the heads to rotate their keys every `period`, for as long as the supervisor lives.
async fn rotate_keys(
    supervisor: std::sync::Weak<Supervisor>,
    audit: Arc<Recorder>,
    period: Duration,
) {
    let mut ticks = tokio::time::interval(period);
    ticks.tick().await; // The first tick is at once; the heads' keys are new then.
    loop {
        ticks.tick().await;
        let Some(supervisor) = supervisor.upgrade() else {
            return;
        };
        audit.record(Event::RotationRequested {
            by: "schedule".into(),
        });
        supervisor.rotate_keys();
    }
}

/// Prunes the jobs that finished more than `keep` ago (their documents, results and receipts;
/// see `chimera_journal::Journal::prune`), at start and then every `keep / 4` (at least every
/// hour, at most every second), until the engine stops.
async fn prune_finished(journal: Journal, keep: Duration, stopped: impl Future<Output = ()>) {
    let pruning = async {
        let mut ticks =
            tokio::time::interval((keep / 4).clamp(Duration::from_secs(1), PRUNE_EVERY));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let before = jiff::Timestamp::now() - keep;
            let mut pruned = 0;
            loop {
                match journal.prune(before).await {
                    Ok(n) => {
                        pruned += n;
                        metrics::counter!(metrics_names::JOBS_PRUNED).increment(n as u64);
                        if n < chimera_journal::PRUNE_BATCH {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::error!("cannot prune finished jobs: {e}");
                        break;
                    }
                }
            }
            if pruned > 0 {
                tracing::info!("pruned {pruned} jobs finished before {before}");
            }
        }
    };
    tokio::select! {
        () = pruning => {}
        () = stopped => {}
    }
}

/// The longest time between two prunings.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// A started engine: journal open, heads starting, jobs the journal still owes queued again.
pub struct Engine {
    service: EngineService,
    supervisor: Arc<Supervisor>,
    audit: Arc<Recorder>,
}

impl Engine {
    pub fn start(config: EngineConfig) -> Result<Self, EngineError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|error| EngineError::DataDir {
            path: config.data_dir.display().to_string(),
            error,
        })?;
        metrics_names::describe();
        gpu_metrics::start();
        let sealer = Arc::new(DataSealer::new(config.keyring.data().clone()));
        let sealed = chimera_journal::Sealed::new(Arc::clone(&sealer));
        let journal = Journal::open(&journal_path(&config.data_dir), sealed)?;
        if journal.rolled_back_at_open() {
            tracing::error!(
                "the journal's last commit was damaged: redb went back to the commit before it, \
                 and what the last one held (jobs acknowledged, or their outcomes) is lost"
            );
        }
        if journal.sealed_at_open() > 0 {
            tracing::info!(
                "sealed the {} jobs of a journal an earlier release wrote (a new file, renamed \
                 over the old one)",
                journal.sealed_at_open()
            );
        }
        // Read before the doors open: a job submitted from then on is the dispatcher's to hear
        // of, and must not be found here as well (it would be queued twice, and run twice).
        let unfinished = journal.unfinished()?;
        let owners = unfinished.iter().map(|r| r.submitted_by.clone());
        let gate = Arc::new(limits::Gate::new(config.limits, owners));
        let identity = identity::engine_key(&config.data_dir, &sealer)?;
        let key = Arc::new(receipt::EngineKey::new(identity));
        let audit = Arc::new(
            Recorder::start(
                AuditLog::open(&audit_path(&config.data_dir))?
                    .rotating_at(config.audit_rotate_bytes),
                Box::new(Arc::clone(&key)),
            )
            .map_err(EngineError::AuditWriter)?,
        );
        audit.record(Event::EngineStarted {
            engine_key: key.key_id().to_owned(),
        });
        let (head_events, head_event_rx) = mpsc::unbounded_channel();
        let supervisor = Arc::new(Supervisor::start(
            SupervisorConfig {
                at_rest: Some(at_rest(&config.keyring, &config.heads)),
                heads: config.heads,
                socket_dir: config.data_dir.join("run"),
                launcher: config.launcher,
                heartbeat_timeout: config.heartbeat_timeout,
                start_timeout: config.start_timeout,
            },
            head_events,
        )?);
        let (events, _) = broadcast::channel(4096);
        let (dispatch, dispatch_rx) = mpsc::unbounded_channel();
        let trust = Arc::new(trust_file::TrustFile::new(trust_path(&config.data_dir)));
        let dispatcher = dispatch::Dispatcher::new(
            journal.clone(),
            Arc::clone(&supervisor),
            events.clone(),
            Arc::clone(&key),
            Arc::clone(&trust),
            Arc::clone(&audit),
            Arc::clone(&gate),
        )
        .map_err(EngineError::Signer)?;
        tokio::spawn(dispatcher.run(unfinished, dispatch_rx, head_event_rx));
        tokio::spawn(rotate_keys(
            Arc::downgrade(&supervisor),
            Arc::clone(&audit),
            config.key_rotation,
        ));
        let service = EngineService(Arc::new(service::Core {
            journal,
            trust,
            policy: config.policy,
            dispatch,
            events,
            supervisor: Arc::clone(&supervisor),
            key,
            audit: Arc::clone(&audit),
            gate,
            stopping: tokio::sync::watch::Sender::new(false),
        }));
        if let Some(keep) = config.keep_finished {
            let journal = service.journal.clone();
            tokio::spawn(prune_finished(journal, keep, service.stopped()));
        }
        Ok(Self {
            service,
            supervisor,
            audit,
        })
    }

    pub fn engine_key_id(&self) -> String {
        self.service.key.key_id().to_owned()
    }

    /// Serves gRPC (the engine, standard health and reflection) on `listener`, and the HTTP door
    /// (`http_door`) on `http` if given, until `shutdown` resolves, then stops the heads. With
    /// `tls`, both speak TLS only.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        tls: Option<Tls>,
        http: Option<tokio::net::TcpListener>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), EngineError> {
        let door = http.map(|listener| {
            let stop = self.service.stopped();
            tokio::spawn(http_door::serve(
                listener,
                self.service.clone(),
                tls.clone(),
                stop,
            ))
        });
        let service = self.service.clone();
        let shutdown = async move {
            shutdown.await;
            service.stopping.send_replace(true);
        };
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<EngineServer<EngineService>>().await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(chimera_proto::v1::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let limits = self.service.gate.limits();
        let incoming = connections::BoundedListener::new(
            listener,
            limits.max_connections,
            limits.max_connections_per_source,
            limits.read_timeout,
            "grpc",
        )
        .into_stream();
        let budget = Arc::clone(self.service.gate.arriving());
        let read_timeout = limits.read_timeout;
        let budgeted =
            tower::util::MapRequestLayer::new(move |request: http::Request<tonic::body::Body>| {
                let budget = Arc::clone(&budget);
                request.map(|body| {
                    tonic::body::Body::new(request_budget::Budgeted::new(
                        body,
                        budget,
                        read_timeout,
                    ))
                })
            });
        // Pings find the clients that vanished (a peer gone with no FIN), whose connections
        // would otherwise hold their places for ever.
        let mut server = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .max_concurrent_streams(Some(MAX_CALLS_PER_CONNECTION))
            .layer(budgeted);
        let mut clients_verified = false;
        if let Some(tls) = tls {
            clients_verified = tls.clients_verified;
            server = server.tls_config(tls.grpc.timeout(limits.read_timeout))?;
        }
        let require_trusted = clients_verified
            .then(|| client_certificates::require_trusted(Arc::clone(&self.service.trust)));
        // Without client certificates, every call passes.
        let check_client = move |request: tonic::Request<()>| match &require_trusted {
            Some(require_trusted) => require_trusted(request),
            None => Ok(request),
        };
        let engine = tonic::service::interceptor::InterceptedService::new(
            EngineServer::new(self.service.clone())
                .max_decoding_message_size(self.service.gate.limits().max_request_bytes),
            check_client,
        );
        let serving = server
            .add_service(health_service)
            .add_service(reflection)
            .add_service(engine)
            .serve_with_incoming_shutdown(incoming, shutdown);
        let stopped = self.service.stopped();
        let served = tokio::select! {
            served = serving => served,
            () = async { stopped.await; tokio::time::sleep(STOP_GRACE).await } => {
                tracing::warn!(
                    "gRPC calls still open {STOP_GRACE:?} after the stop began; their connections \
                     are dropped"
                );
                Ok(())
            }
        };
        if let Some(door) = door
            && let Err(e) = door.await
        {
            tracing::error!("the HTTP door failed: {e}");
        }
        self.supervisor.shutdown().await;
        // Jobs the heads ran go back in the queue: stopped this way, not counted against them.
        let (requeued, committed) = tokio::sync::oneshot::channel();
        if self
            .service
            .dispatch
            .send(dispatch::Request::Stop(requeued))
            .is_ok()
        {
            let _ = committed.await;
        }
        self.audit.record(Event::EngineStopped);
        // Writes what is left, with a last checkpoint.
        let audit = self.audit;
        let _ = tokio::task::spawn_blocking(move || audit.finish()).await;
        Ok(served?)
    }
}
