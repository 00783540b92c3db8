//! A client's proof that it asks about its own job: the engine answers a job only to the key that
//! signed it (or the client certificate that submitted it, or an admin key).

use chimera_maml::{PROOF_HEADERS, RequestProof, SecretKey};
use jiff::Timestamp;
use tonic::metadata::MetadataValue;

/// The calls about one job, named as request proofs name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobCall {
    Get,
    Watch,
    Cancel,
    Receipt,
}

impl JobCall {
    pub fn name(self) -> &'static str {
        match self {
            Self::Get => "Get",
            Self::Watch => "Watch",
            Self::Cancel => "Cancel",
            Self::Receipt => "GetReceiptDocument",
        }
    }
}

/// Adds `key`'s proof that it asks `call` about `job_id` to a gRPC request.
pub fn prove<T>(request: &mut tonic::Request<T>, key: &SecretKey, call: JobCall, job_id: &str) {
    let proof = RequestProof::sign(key, call.name(), job_id, Timestamp::now());
    for (name, value) in PROOF_HEADERS.into_iter().zip(proof.header_values()) {
        let value = MetadataValue::try_from(value).expect("hex, RFC 3339 and base64 are ASCII");
        request.metadata_mut().insert(name, value);
    }
}

/// `message` as a request about `job_id`, with `key`'s proof that it asks if there is a key.
pub fn job_request<T>(
    message: T,
    key: Option<&SecretKey>,
    call: JobCall,
    job_id: &str,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(key) = key {
        prove(&mut request, key, call, job_id);
    }
    request
}
