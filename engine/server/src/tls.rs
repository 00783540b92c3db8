//! TLS for both doors, from one certificate: tonic's settings for the gRPC port, a rustls server
//! configuration for the HTTP door, and the listener that speaks it there.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::connections::{BoundedListener, Counted};

/// Connections whose handshake is done and that the door has not yet taken.
const HANDSHAKEN_QUEUE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the {what} holds no PEM certificate ({detail})")]
    Certificates { what: &'static str, detail: String },
    #[error("the server key is no PEM private key ({0})")]
    Key(String),
    #[error("the client CA certificate: {0}")]
    ClientCa(String),
    #[error("the certificate and key: {0}")]
    Config(#[from] rustls::Error),
}

/// TLS on the gRPC port and the HTTP door: the server's certificate and key, and whether client
/// certificates from a given CA are required (mutual TLS).
#[derive(Clone)]
pub struct Tls {
    pub(crate) grpc: ServerTlsConfig,
    pub(crate) http: Arc<ServerConfig>,
    pub(crate) clients_verified: bool,
}

impl Tls {
    /// From PEM: the server's certificate chain, its private key, and the CA that signs client
    /// certificates when they are required. Refuses here what a handshake would fail on later.
    pub fn from_pem(
        certificate_chain: &[u8],
        key: &[u8],
        client_ca: Option<&[u8]>,
    ) -> Result<Self, TlsError> {
        let chain = certificates(certificate_chain, "server certificate file")?;
        let private_key =
            PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Key(e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for certificate in certificates(ca, "client CA file")? {
                    roots
                        .add(certificate)
                        .map_err(|e| TlsError::ClientCa(e.to_string()))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| TlsError::ClientCa(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut http = builder.with_single_cert(chain, private_key)?;
        // The door speaks HTTP/1.1 only.
        http.alpn_protocols = vec![b"http/1.1".to_vec()];

        let mut grpc = ServerTlsConfig::new().identity(Identity::from_pem(certificate_chain, key));
        if let Some(ca) = client_ca {
            grpc = grpc.client_ca_root(Certificate::from_pem(ca));
        }
        Ok(Self {
            grpc,
            http: Arc::new(http),
            clients_verified: client_ca.is_some(),
        })
    }
}

fn certificates(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificates {
            what,
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Certificates {
            what,
            detail: "no CERTIFICATE block".into(),
        });
    }
    Ok(chain)
}

/// A connection of the HTTP door over TLS.
pub(crate) type HttpsStream = TlsStream<Counted<TcpStream>>;

/// A listener that hands over connections whose TLS handshake is done. Handshakes run side by
/// side, so a client that connects and says nothing holds up no other; one that has not finished
/// its handshake within `handshake_timeout` is dropped.
pub(crate) struct TlsListener {
    handshaken: mpsc::Receiver<HttpsStream>,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub(crate) fn new(
        listener: BoundedListener,
        config: Arc<ServerConfig>,
        handshake_timeout: Duration,
    ) -> Self {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (done, handshaken) = mpsc::channel(HANDSHAKEN_QUEUE);
        let accepting = tokio::spawn(async move {
            loop {
                let tcp = listener.accept().await;
                let peer = tcp.peer();
                let (acceptor, done) = (acceptor.clone(), done.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = done.send(stream).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!("TLS handshake with {peer} failed: {error}")
                        }
                        Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                    }
                });
            }
        });
        Self {
            handshaken,
            accepting,
        }
    }

    /// The next connection whose handshake is done.
    pub(crate) async fn accept(&mut self) -> HttpsStream {
        match self.handshaken.recv().await {
            Some(connection) => connection,
            // The accepting task holds a sender for as long as it runs, and it runs until this
            // listener is dropped.
            None => std::future::pending().await,
        }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (certificate.pem(), key.serialize_pem())
    }

    #[test]
    fn a_certificate_and_its_key_make_both_doors_settings() {
        let (cert, key) = certificate("localhost");
        let (ca, _) = certificate("client CA");
        let tls = Tls::from_pem(cert.as_bytes(), key.as_bytes(), None).unwrap();
        assert!(!tls.clients_verified);
        assert_eq!(tls.http.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let mutual = Tls::from_pem(cert.as_bytes(), key.as_bytes(), Some(ca.as_bytes())).unwrap();
        assert!(mutual.clients_verified);
    }

    #[test]
    fn bad_files_are_refused_at_start_saying_which() {
        let (cert, key) = certificate("localhost");
        let (_, other_key) = certificate("other");
        let refusal = |cert: &str, key: &str, ca: Option<&str>| {
            Tls::from_pem(cert.as_bytes(), key.as_bytes(), ca.map(str::as_bytes))
                .err()
                .expect("refused")
                .to_string()
        };
        assert!(refusal("not a certificate", &key, None).contains("server certificate file"));
        assert!(refusal(&cert, "not a key", None).contains("server key"));
        assert!(refusal(&cert, &key, Some("")).contains("client CA file"));
        // A key that is not the certificate's.
        assert!(refusal(&cert, &other_key, None).contains("the certificate and key"));
    }
}
