//! What a client of a CHIMERA engine needs, and nothing of the engine: a connection
//! ([`connect`]: TLS, a client certificate), the proof that a call about a job is its owner's
//! ([`proof`]), a receipt checked against the engine's key ([`receipt`]), and the reason a refusal
//! carries ([`reason_of`]). The `chimera` binary's client commands and the Python package are
//! both built on it; the engine uses its receipt format and call names.

pub mod json;
pub mod merkle;
pub mod proof;
pub mod receipt;

pub use proof::{JobCall, job_request, prove};

use chimera_proto::v1::engine_client::EngineClient;
use tonic::Status;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_types::StatusExt;

/// Where a client connects when it is told nothing.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

/// Replies larger than this are refused (a job's result can be a state of several MiB).
const MAX_REPLY_BYTES: usize = 64 << 20;

/// TLS for a connection, as PEM bytes: the CA that signed the engine's certificate, and this
/// client's certificate and key for an engine that asks for one.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    pub ca: Option<Vec<u8>>,
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{url} is not a URL like {DEFAULT_SERVER}")]
    Url { url: String },
    #[error("the TLS settings: {0}")]
    Tls(String),
    #[error("cannot reach the engine at {url} (is `chimera serve` running?): {why}")]
    Unreachable { url: String, why: String },
}

/// A client of the engine at `url`, over TLS when `tls` is given.
pub async fn connect(url: &str, tls: Option<&Tls>) -> Result<EngineClient<Channel>, ConnectError> {
    Ok(engine(channel(url, tls).await?))
}

/// The engine's service on `channel`, taking replies as large as a job's result can be.
pub fn engine(channel: Channel) -> EngineClient<Channel> {
    EngineClient::new(channel).max_decoding_message_size(MAX_REPLY_BYTES)
}

/// A connection to `url` (the engine's gRPC port: its own service and gRPC health), over TLS
/// when `tls` is given.
pub async fn channel(url: &str, tls: Option<&Tls>) -> Result<Channel, ConnectError> {
    let mut endpoint = Channel::from_shared(url.to_owned()).map_err(|_| ConnectError::Url {
        url: url.to_owned(),
    })?;
    if let Some(tls) = tls {
        let mut config = ClientTlsConfig::new();
        if let Some(ca) = &tls.ca {
            config = config.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &tls.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        endpoint = endpoint
            .tls_config(config)
            .map_err(|e| ConnectError::Tls(with_causes(e.to_string(), &e)))?;
    }
    endpoint
        .connect()
        .await
        .map_err(|e| ConnectError::Unreachable {
            url: url.to_owned(),
            why: with_causes(e.to_string(), &e),
        })
}

/// The reason a status carries (`RATE_LIMITED`, `BAD_SIGNATURE`…), if it carries one.
pub fn reason_of(status: &Status) -> Option<String> {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .filter(|r| !r.is_empty())
}

/// A refusal or failure in words: the engine's message and the reason it carries, or for a
/// transport failure (a TLS alert, a refused connection) its code, message and causes.
pub fn describe(status: &Status) -> String {
    match reason_of(status) {
        Some(reason) => format!("{} ({reason})", status.message()),
        None => with_causes(format!("{}: {}", status.code(), status.message()), status),
    }
}

/// `said`, then each source of `error` after a colon: a transport failure's why is in its
/// sources.
fn with_causes(mut said: String, error: &dyn std::error::Error) -> String {
    let mut source = error.source();
    while let Some(cause) = source {
        said += &format!(": {cause}");
        source = cause.source();
    }
    said
}
