//! MAML jobs for CHIMERA (`../shared/MAML.md`): a parser that turns a document into a typed
//! [`Job`], ML-DSA-65 signing and verification, key files, the trust store, the checks the
//! engine applies at submission ([`admit`]: the work a job's blocks ask for, [`Work`], is what
//! its key must be allowed), and clients' proofs that a request about a job is theirs
//! ([`RequestProof`]). Needs no server: a gateway signs and checks jobs
//! with this crate alone.

mod admission;
mod body;
mod document;
mod error;
mod files;
mod keys;
mod markers;
mod proof;
mod schema;
mod signature;
mod trust;
mod work;
mod yaml;

pub use admission::{Admitted, Policy, Refusal, admit};
pub use document::{
    BlockKind, CodeBlock, DEFAULT_MAX_BYTES, Document, Job, MAX_ID_CHARS, MamlVersion, Section,
    SignedDocument, parse, sign_document,
};
pub use error::{ParseError, Problem};
pub use keys::{
    KeyError, KeyId, KeyPairFiles, PUBLIC_KEY_BYTES, PublicKey, SIGNATURE_BYTES, SecretKey,
    write_key_pair,
};
pub use proof::{HEADERS as PROOF_HEADERS, PROOF_SKEW, ProofError, RequestProof};
pub use schema::{OutputMismatch, check_output};
pub use signature::{ALGORITHM, BEGIN, END, SignatureBlock, SignatureError, digest, verify};
pub use trust::{TrustError, TrustStore, TrustedKey};
pub use work::{ADMIN, ANY_TYPE, Work, allowable, label as work_label, work_of};
