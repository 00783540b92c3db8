//! MAML jobs for CHIMERA (`../shared/MAML.md`): a parser that turns a document into a typed
//! [`Job`], ML-DSA-65 signing and verification, key files, the trust store, and the checks the
//! engine applies at submission ([`admit`]). Needs no server: a gateway signs and checks jobs
//! with this crate alone.

mod admission;
mod body;
mod document;
mod error;
mod files;
mod keys;
mod schema;
mod signature;
mod trust;
mod yaml;

pub use admission::{Admitted, Policy, Refusal, admit};
pub use document::{
    BlockKind, CodeBlock, DEFAULT_MAX_BYTES, Document, Job, MamlVersion, Section, parse,
};
pub use error::{ParseError, Problem};
pub use keys::{
    KeyError, KeyId, KeyPairFiles, PUBLIC_KEY_BYTES, PublicKey, SIGNATURE_BYTES, SecretKey,
    write_key_pair,
};
pub use schema::OutputMismatch;
pub use signature::{
    ALGORITHM, BEGIN, END, SignatureBlock, SignatureError, SignedDocument, digest, sign_document,
    verify,
};
pub use trust::{ANY_TYPE, TrustError, TrustStore, TrustedKey};
