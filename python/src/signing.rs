//! MAML signing for gateways: ML-DSA-65 keys, signatures and their checks through `chimera-maml`,
//! the engine's own code (no second ML-DSA implementation in Python).

use std::path::Path;

use chimera_maml::{DEFAULT_MAX_BYTES, PublicKey, SecretKey, parse, sign_document};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// What a PEM given as text is called in error messages.
const GIVEN: &str = "<the key given>";

/// A new key pair: (secret key PEM, public key PEM).
#[pyfunction]
pub fn keygen() -> PyResult<(String, String)> {
    let secret = SecretKey::generate().map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    let public = secret.public_key().to_pem();
    Ok((secret.to_pem().to_string(), public))
}

/// `document` (MAML text) signed with the secret key `key_pem`: any earlier signature block is
/// dropped and a new one appended.
#[pyfunction]
pub fn sign(py: Python<'_>, document: &str, key_pem: &str) -> PyResult<String> {
    let key = SecretKey::from_pem(key_pem, Path::new(GIVEN)).map_err(value_error)?;
    py.detach(|| sign_document(document.as_bytes(), &key, DEFAULT_MAX_BYTES))
        .map(|signed| signed.text)
        .map_err(value_error)
}

/// The signing key's id when `document`'s signature block verifies under `key_pem`; a
/// `ValueError` saying why otherwise.
#[pyfunction]
pub fn verify(py: Python<'_>, document: &str, key_pem: &str) -> PyResult<String> {
    let key = PublicKey::from_pem(key_pem, Path::new(GIVEN)).map_err(value_error)?;
    let parsed = parse(document.as_bytes(), DEFAULT_MAX_BYTES).map_err(value_error)?;
    let block = parsed
        .signature
        .ok_or_else(|| PyValueError::new_err("the document has no signature block"))?;
    py.detach(|| chimera_maml::verify(&parsed.signed_bytes, &block, &key))
        .map_err(value_error)?;
    Ok(key.id().to_string())
}

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}
