//! Mutual TLS: a client's certificate, verified by rustls against the engine's client CA, names
//! the client, and that name must be a trusted, unrevoked key in the trust store. The name is
//! then the client that the limits count, whatever key signed the jobs it sends (a gateway
//! relays jobs its users signed).

use std::sync::Arc;

use tonic::{Request, Status};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::refusal::Reason;
use crate::trust_file::TrustFile;

/// The client a verified certificate named, in a request's extensions.
#[derive(Debug, Clone)]
pub struct Client(pub String);

/// A certificate's name: its first DNS subject alternative name, else its subject's common name.
pub fn certificate_name(der: &[u8]) -> Option<String> {
    let (_, certificate) = X509Certificate::from_der(der).ok()?;
    let dns = certificate
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|names| {
            names
                .value
                .general_names
                .iter()
                .find_map(|name| match name {
                    GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    _ => None,
                })
        });
    dns.or_else(|| {
        certificate
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned)
    })
}

/// The interceptor in front of every gRPC call when client certificates are required.
pub fn require_trusted(
    trust: Arc<TrustFile>,
) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut request: Request<()>| {
        let client = trusted_client(
            &trust,
            request
                .peer_certs()
                .as_ref()
                .and_then(|chain| chain.first())
                .map(|c| c.as_ref()),
        )?;
        request.extensions_mut().insert(client);
        Ok(request)
    }
}

/// The client that a verified certificate (DER, the first of the chain the client sent) names,
/// when that is a trusted key that is not revoked; else the refusal. Both doors ask this.
pub fn trusted_client(trust: &TrustFile, certificate: Option<&[u8]>) -> Result<Client, Status> {
    let Some(name) = certificate.and_then(certificate_name) else {
        return Err(Reason::ClientCertificateRequired.status(
            "this engine takes calls only with a client certificate that names a trusted key \
             (its first DNS name, or its common name)",
        ));
    };
    match trust.read_key(&name, |key| key.revoked_at.is_some())? {
        Some(false) => Ok(Client(name)),
        Some(true) => Err(Reason::RevokedClient.status(format!(
            "the client certificate names `{name}`, whose key is revoked"
        ))),
        None => Err(Reason::UnknownClient.status(format!(
            "the client certificate names `{name}`, which is no key in the engine's \
                 trust store (`chimera trust add KEY.pub --name {name}` trusts one)"
        ))),
    }
}
