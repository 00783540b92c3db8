//! `chimera serve`: the engine, with its four heads, until interrupted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chimera_maml::Policy;
use chimera_server::limits::Limits;
use chimera_server::{
    AUDIT_ROTATE_BYTES, Engine, EngineConfig, KEY_ROTATION, Tls, default_heads, metrics_names,
};
use chimera_supervisor::{HeadConfig, Launcher};
use chimera_unseal::Keyring;
use clap::Args;
use metrics_exporter_prometheus::Matcher;

#[derive(Args)]
pub struct ServeArgs {
    /// The gRPC address. Port 0 picks a free port (the one taken is printed).
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: String,
    /// Where Prometheus metrics are served (at /metrics); `off` serves none.
    #[arg(long, default_value = "127.0.0.1:9090")]
    metrics_addr: String,
    /// The engine's data directory: journal, trust store, engine key, training runs and models.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Seconds of silence after which a head is taken for dead and replaced.
    #[arg(long, default_value_t = 3.0)]
    heartbeat_timeout: f64,
    /// Hours between rotations of the heads' keys (each head makes a new key and deals new
    /// shares of it to its peers).
    #[arg(long, default_value_t = 24.0)]
    rotate_keys_every: f64,
    /// Days a finished job keeps its document, result and receipt in the journal (0: for ever).
    /// Its id, state and digest stay, so a resubmission is still the same job or a refused replay.
    #[arg(long, default_value_t = KEEP_FINISHED_DAYS)]
    keep_finished_days: f64,
    /// MiB past which the audit log goes on in a new file, the full one renamed
    /// `audit.log.N` (N its last record's number) for archiving (0: one file for ever).
    #[arg(long, default_value_t = (AUDIT_ROTATE_BYTES >> 20) as f64)]
    audit_rotate_mib: f64,
    #[command(flatten)]
    unseal: crate::unseal::UnsealArgs,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    tls: TlsArgs,
    /// Also serve the HTTP door here (`POST /execute`, `POST /maml/execute`, `GET /health`,
    /// `GET /`): with the gRPC port's TLS settings, or plaintext (loopback only unless
    /// --allow-plaintext) when it has none.
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<String>,
}

/// TLS on the gRPC port and the HTTP door (rustls); plaintext is served on loopback only,
/// unless allowed.
#[derive(Args)]
pub struct TlsArgs {
    /// The server's certificate chain (PEM); with --tls-key, the gRPC port and the HTTP door
    /// speak TLS only.
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// The server certificate's private key (PEM).
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM): mutual TLS. A certificate's first
    /// DNS name (else its common name) must be the name of a trusted key.
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    tls_client_ca: Option<PathBuf>,
    /// Serve plaintext (gRPC without TLS, or the HTTP door) on an address other than loopback
    /// (anyone on the network can then read and send jobs).
    #[arg(long)]
    allow_plaintext: bool,
}

impl TlsArgs {
    fn config(&self) -> Result<Option<Tls>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let read = |path: &PathBuf, what: &str| {
            std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
        };
        let client_ca = match &self.tls_client_ca {
            Some(ca) => Some(read(ca, "the --tls-client-ca CA")?),
            None => None,
        };
        let tls = Tls::from_pem(
            &read(cert, "the --tls-cert certificate")?,
            &read(key, "the --tls-key key")?,
            client_ca.as_deref(),
        )
        .context("--tls-cert, --tls-key and --tls-client-ca")?;
        Ok(Some(tls))
    }

    /// Plaintext is served on loopback only, unless allowed: `flag` names the address given.
    fn refuse_open_plaintext(&self, flag: &str, at: std::net::SocketAddr) -> Result<()> {
        if self.tls_cert.is_none() && !at.ip().is_loopback() && !self.allow_plaintext {
            bail!(
                "{flag} {at} is not a loopback address, and plaintext there lets anyone on the \
                 network read and send jobs: give --tls-cert and --tls-key (and --tls-client-ca \
                 for client certificates; the gRPC port and the HTTP door then both speak TLS), \
                 or --allow-plaintext"
            );
        }
        Ok(())
    }

    /// What the port speaks, for the start-up line.
    fn describe(&self) -> &'static str {
        match (&self.tls_cert, &self.tls_client_ca) {
            (None, _) => "plaintext",
            (Some(_), None) => "TLS",
            (Some(_), Some(_)) => "TLS, client certificates required",
        }
    }
}

/// What one client may do (a client is the trusted key that signs its jobs).
#[derive(Args)]
pub struct LimitArgs {
    /// Submissions per second one client may make on average (0: no limit).
    #[arg(long, default_value_t = Limits::default().submissions_per_second)]
    client_rate: f64,
    /// Submissions one client may make at once after a pause.
    #[arg(long, default_value_t = Limits::default().burst)]
    client_burst: f64,
    /// Documents refused at admission that one source (an IPv4 address, an IPv6 /64) may send
    /// per second, five seconds' worth at once; beyond that its submissions are refused unread
    /// for a while (0: no limit).
    #[arg(long, default_value_t = Limits::default().refusals_per_source_per_second)]
    refusals_per_source: f64,
    /// Jobs one client may have queued or running.
    #[arg(long, default_value_t = Limits::default().max_unfinished_per_client)]
    max_jobs_per_client: usize,
    /// Watch and SubmitBatch streams open at once, all clients together.
    #[arg(long, default_value_t = Limits::default().max_streams)]
    max_streams: usize,
    /// Of those, streams one source (an IPv4 address, an IPv6 /64) may have open.
    #[arg(long, default_value_t = Limits::default().max_streams_per_source)]
    max_streams_per_source: usize,
    /// Qubits of the widest circuit taken. Default: as many as this machine's largest device
    /// (available memory, or the largest GPU's) holds in single precision.
    #[arg(long)]
    max_qubits: Option<usize>,
    /// Shots a job's circuits may ask for (Context `shots`); more is refused at submission.
    #[arg(long, default_value_t = Limits::default().max_shots)]
    max_shots: u64,
    /// Epochs a training may ask for (`epochs` of a chimera-train block); more is refused at
    /// submission.
    #[arg(long, default_value_t = Limits::default().max_epochs)]
    max_epochs: usize,
    /// Connections each door (gRPC, HTTP) holds at once, TLS handshakes included; more wait in
    /// the listen queue until one ends.
    #[arg(long, default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Of those, connections one source (an IPv4 address, an IPv6 /64) may hold at once; its
    /// further ones are closed at once. Raise it for many clients behind one NAT or proxy.
    #[arg(long, default_value_t = Limits::default().max_connections_per_source)]
    max_connections_per_source: usize,
    /// Seconds a client may take to send its first bytes and to finish its TLS handshake, and at
    /// the HTTP door to send a request's headers (a kept-alive connection idle that long is
    /// closed) and then its body.
    #[arg(long, default_value_t = Limits::default().read_timeout.as_secs_f64())]
    read_timeout: f64,
    /// MiB that gRPC messages still arriving may hold in memory, all clients together; a message
    /// beyond that is refused (ENGINE_BUSY) and each must arrive whole within --read-timeout.
    #[arg(long, default_value_t = (Limits::default().max_arriving_request_bytes >> 20) as f64)]
    request_memory: f64,
}

impl LimitArgs {
    fn limits(&self) -> Result<Limits> {
        if !(self.client_rate >= 0.0 && self.client_burst >= 1.0) {
            bail!(
                "--client-rate must be 0 or more and --client-burst at least 1 (given {} and {})",
                self.client_rate,
                self.client_burst
            );
        }
        if !(self.refusals_per_source >= 0.0 && self.refusals_per_source.is_finite()) {
            bail!(
                "--refusals-per-source must be 0 (no limit) or more (given {})",
                self.refusals_per_source
            );
        }
        for (flag, most) in [
            ("--max-jobs-per-client", self.max_jobs_per_client),
            ("--max-streams", self.max_streams),
            ("--max-streams-per-source", self.max_streams_per_source),
            ("--max-epochs", self.max_epochs),
            (
                "--max-shots",
                usize::try_from(self.max_shots).unwrap_or(usize::MAX),
            ),
            ("--max-connections", self.max_connections),
            (
                "--max-connections-per-source",
                self.max_connections_per_source,
            ),
        ] {
            if most == 0 {
                bail!("{flag} must be at least 1: 0 would refuse every one");
            }
        }
        Ok(Limits {
            max_arriving_request_bytes: positive_mib("--request-memory", self.request_memory)?
                as usize,
            max_connections: self.max_connections,
            max_connections_per_source: self.max_connections_per_source,
            read_timeout: positive_seconds("--read-timeout", self.read_timeout)?,
            submissions_per_second: self.client_rate,
            burst: self.client_burst,
            refusals_per_source_per_second: self.refusals_per_source,
            max_unfinished_per_client: self.max_jobs_per_client,
            max_streams: self.max_streams,
            max_streams_per_source: self.max_streams_per_source,
            max_qubits: self.max_qubits,
            max_shots: self.max_shots,
            max_epochs: self.max_epochs,
            ..Limits::default()
        })
    }
}

/// Logs on standard error at `info` (head deaths, jobs queued again, faults), or as `RUST_LOG`
/// says: `RUST_LOG=chimera_server=debug` adds a line per job accepted, started and finished,
/// inside the job's span.
fn log_to_stderr() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Starts each head as `chimera head …` from this same executable.
pub fn head_launcher(data_dir: &Path) -> Result<Launcher> {
    let exe = std::env::current_exe().context("cannot find this executable to start heads")?;
    let data_dir = std::path::absolute(data_dir)?;
    Ok(Arc::new(move |head: &HeadConfig, socket: &Path| {
        let mut command = tokio::process::Command::new(&exe);
        command
            .arg("head")
            .args(["--id", &head.id, "--role", head.role.name()])
            .arg("--socket")
            .arg(socket)
            .arg("--data-dir")
            .arg(&data_dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            // Away from the terminal's Ctrl-C and Ctrl-Z: the engine stops its heads itself.
            .process_group(0);
        command
    }))
}

/// `dir`, when it is a directory: for the commands that read an engine's data directory, so that a
/// mistyped `--data-dir` is named as such rather than as a file missing inside it.
pub fn existing_data_dir(dir: &Path) -> Result<&Path> {
    if !dir.is_dir() {
        bail!(
            "no data directory {}: give --data-dir the directory `chimera serve` was started with \
             (default {DEFAULT_DATA_DIR})",
            dir.display()
        );
    }
    Ok(dir)
}

/// The default of every command's `--data-dir`.
pub const DEFAULT_DATA_DIR: &str = "chimera-data";

/// The default of `--keep-finished-days`.
const KEEP_FINISHED_DAYS: f64 = 30.0;

pub fn engine_config(
    data_dir: &Path,
    keyring: Keyring,
    heartbeat_timeout: Duration,
) -> Result<EngineConfig> {
    Ok(EngineConfig {
        data_dir: data_dir.to_owned(),
        keyring,
        heads: default_heads(),
        launcher: head_launcher(data_dir)?,
        policy: Policy::default(),
        heartbeat_timeout,
        start_timeout: Duration::from_secs(30),
        key_rotation: KEY_ROTATION,
        limits: Limits::default(),
        keep_finished: Some(Duration::from_secs_f64(KEEP_FINISHED_DAYS * 86_400.0)),
        audit_rotate_bytes: Some(AUDIT_ROTATE_BYTES),
    })
}

fn positive_seconds(flag: &str, seconds: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{flag} must be a positive number, not {seconds}"))
}

/// `mib` MiB in bytes.
fn positive_mib(flag: &str, mib: f64) -> Result<u64> {
    if !(mib > 0.0 && mib.is_finite()) {
        bail!("{flag} must be a positive number of MiB, not {mib}");
    }
    Ok((mib * (1 << 20) as f64) as u64)
}

pub fn run(args: ServeArgs) -> Result<()> {
    let heartbeat_timeout = positive_seconds("--heartbeat-timeout", args.heartbeat_timeout)?;
    let key_rotation = positive_seconds("--rotate-keys-every", args.rotate_keys_every * 3600.0)?;
    log_to_stderr();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(serve(args, heartbeat_timeout, key_rotation))
}

async fn serve(args: ServeArgs, heartbeat_timeout: Duration, key_rotation: Duration) -> Result<()> {
    let metrics_addr = match args.metrics_addr.as_str() {
        "off" => None,
        addr => {
            let addr: std::net::SocketAddr = addr.parse().with_context(|| {
                format!("--metrics-addr {addr} is not an address like 127.0.0.1:9090")
            })?;
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .with_http_listener(addr)
                .set_buckets(metrics_names::SECONDS_BUCKETS)?
                .set_buckets_for_metric(
                    Matcher::Full(metrics_names::RECEIPT_BATCH_SIZE.to_owned()),
                    metrics_names::BATCH_SIZE_BUCKETS,
                )?
                .install()
                .with_context(|| format!("cannot serve metrics on {addr}"))?;
            Some(addr)
        }
    };
    let tls = args.tls.config()?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    args.tls.refuse_open_plaintext("--listen", local)?;
    let http = match &args.http_listen {
        None => None,
        Some(addr) => {
            let http = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on --http-listen {addr}"))?;
            let at = http.local_addr()?;
            args.tls.refuse_open_plaintext("--http-listen", at)?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            // Before the gRPC line, which tests and scripts wait for.
            println!("chimera serve: HTTP door on {scheme}://{at}");
            Some(http)
        }
    };
    let limits = args.limits.limits()?;
    enough_file_descriptors(limits.max_connections)?;
    let keep_finished = match args.keep_finished_days {
        0.0 => None,
        days => Some(positive_seconds("--keep-finished-days", days * 86_400.0)?),
    };
    let audit_rotate_bytes = match args.audit_rotate_mib {
        0.0 => None,
        mib => Some(positive_mib("--audit-rotate-mib", mib)?),
    };
    let keyring = args.unseal.unseal(&args.data_dir)?;
    seal_stored_models(&args.data_dir, &keyring)?;
    let config = EngineConfig {
        key_rotation,
        limits,
        keep_finished,
        audit_rotate_bytes,
        ..engine_config(&args.data_dir, keyring, heartbeat_timeout)?
    };
    let engine = Engine::start(config)
        .with_context(|| format!("cannot start the engine in {}", args.data_dir.display()))?;
    // Tests and scripts read this line for the address.
    println!("chimera serve: listening on {local}");
    println!(
        "chimera serve: {}, data in {}, engine key {}, metrics {}",
        args.tls.describe(),
        args.data_dir.display(),
        engine.engine_key_id(),
        metrics_addr.map_or("off".to_owned(), |a| format!("http://{a}/metrics")),
    );
    engine.serve(listener, tls, http, stop_signal()).await?;
    println!("chimera serve: stopped");
    Ok(())
}

/// Seals the models an earlier release stored in plaintext (a data directory's first start with
/// an unseal key), before any head reads them.
fn seal_stored_models(data_dir: &Path, keyring: &Keyring) -> Result<()> {
    let models = Arc::new(chimera_keys::DataSealer::new(keyring.models().clone()));
    let sealed = chimera_head::models::seal_stored(data_dir, &models)
        .with_context(|| format!("sealing the stored models in {}", data_dir.display()))?;
    if sealed > 0 {
        tracing::info!("sealed {sealed} files of models an earlier release stored");
    }
    Ok(())
}

/// Raises this process's open-file limit as far as it may go, and warns when it is still too low
/// for two doors full of connections plus the engine's own files and sockets.
fn enough_file_descriptors(max_connections: usize) -> Result<()> {
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .context("cannot read this process's open-file limit")?;
    let needed = 2 * max_connections as u64 + 256;
    if limit < needed {
        eprintln!(
            "chimera serve: warning: this process may open {limit} files, fewer than the \
             {needed} that two doors of --max-connections {max_connections} and the engine \
             need: raise `ulimit -n` or lower --max-connections"
        );
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        limits: LimitArgs,
    }

    fn limits(flags: &[&str]) -> Result<Limits> {
        let flags = Flags::try_parse_from(std::iter::once("serve").chain(flags.iter().copied()));
        flags.unwrap().limits.limits()
    }

    #[test]
    fn a_count_limit_of_zero_is_refused_naming_its_flag() {
        let defaults = limits(&[]).unwrap();
        assert_eq!(defaults.max_streams_per_source, 256);
        for flag in [
            "--max-jobs-per-client",
            "--max-streams",
            "--max-streams-per-source",
            "--max-connections",
            "--max-connections-per-source",
        ] {
            let refused = limits(&[flag, "0"]).unwrap_err().to_string();
            assert!(
                refused.starts_with(&format!("{flag} must be at least 1")),
                "{refused}"
            );
            assert!(limits(&[flag, "1"]).is_ok(), "{flag} 1");
        }
    }
}
