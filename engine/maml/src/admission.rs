//! The checks the engine applies to a submitted document before it takes the job
//! (MAML.md: "The engine refuses"). Replays of an id are the journal's to judge, not these.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};

use crate::document::{BlockKind, DEFAULT_MAX_BYTES, Document, parse};
use crate::error::ParseError;
use crate::keys::KeyId;
use crate::signature::{self, SignatureError};
use crate::trust::TrustStore;
use crate::work::{Work, label, type_mismatch, work_of};

/// Limits of admission.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_bytes: usize,
    /// How far in the future `created_at` may be, for clocks that disagree.
    pub max_clock_skew: SignedDuration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            max_clock_skew: SignedDuration::from_mins(5),
        }
    }
}

/// A document that passed every check, with the trusted key that signed it and the work its
/// blocks ask for (which that key is allowed).
#[derive(Debug, Clone)]
pub struct Admitted {
    pub document: Document,
    pub key_name: String,
    pub key_id: KeyId,
    pub work: BTreeSet<Work>,
}

/// Why a document was refused. [`Refusal::reason`] is the stable code clients match on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed MAML: {0}")]
    Malformed(#[from] ParseError),
    #[error("{0}")]
    Signature(SignatureError),
    #[error(
        "key {0} is not in the trust store; an operator must trust it first (`chimera trust add`)"
    )]
    UnknownKey(KeyId),
    #[error("key {key_id} (`{name}`) was revoked at {revoked_at}")]
    RevokedKey {
        key_id: KeyId,
        name: String,
        revoked_at: Timestamp,
    },
    #[error(
        "key `{name}` may not run {work} (the {language} block at line {line} asks for it); it may \
         run: {allowed}"
    )]
    TypeNotAllowed {
        name: String,
        work: &'static str,
        language: String,
        line: usize,
        allowed: String,
    },
    #[error("the job's type is `{job_type}` but its blocks run {runs}: {why}")]
    TypeMismatch {
        job_type: String,
        runs: String,
        why: String,
    },
    #[error("created_at {created_at} is more than {skew} ahead of this engine's clock ({now})")]
    CreatedInFuture {
        created_at: Timestamp,
        now: Timestamp,
        skew: String,
    },
    #[error("the job expired at {expires_at} (now {now})")]
    Expired {
        expires_at: Timestamp,
        now: Timestamp,
    },
    #[error(
        "line {line}: a `{language}` block is never executed; export the circuit as OpenQASM (in Qiskit, `qiskit.qasm2.dumps(circuit)`) and put it in a ```qasm block"
    )]
    PythonBlock { language: String, line: usize },
    #[error(
        "nothing to run: {found}; the engine runs qasm, qasm2, openqasm, qasm3, chimera-train and chimera-infer blocks in Code_Blocks"
    )]
    NothingToRun { found: String },
}

impl Refusal {
    /// A stable, machine-readable code for the refusal.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(e) => match e.problem {
                crate::error::Problem::TooLarge { .. } => "TOO_LARGE",
                crate::error::Problem::TrailerAfterSignature => "TRAILER_AFTER_SIGNATURE",
                _ => "MALFORMED",
            },
            Self::Signature(SignatureError::Unsigned) => "UNSIGNED",
            Self::Signature(SignatureError::DigestMismatch { .. }) => "DIGEST_MISMATCH",
            Self::Signature(_) => "BAD_SIGNATURE",
            Self::UnknownKey(_) => "UNKNOWN_KEY",
            Self::RevokedKey { .. } => "REVOKED_KEY",
            Self::TypeNotAllowed { .. } => "TYPE_NOT_ALLOWED",
            Self::TypeMismatch { .. } => "TYPE_MISMATCH",
            Self::CreatedInFuture { .. } => "CREATED_IN_FUTURE",
            Self::Expired { .. } => "EXPIRED",
            Self::PythonBlock { .. } => "PYTHON_BLOCK",
            Self::NothingToRun { .. } => "NOTHING_TO_RUN",
        }
    }
}

/// Parses `bytes` and applies every submission check at time `now`.
pub fn admit(
    bytes: &[u8],
    trust: &TrustStore,
    policy: &Policy,
    now: Timestamp,
) -> Result<Admitted, Refusal> {
    let document = parse(bytes, policy.max_bytes)?;
    let block = document
        .signature
        .as_ref()
        .ok_or(Refusal::Signature(SignatureError::Unsigned))?;
    let trusted = trust
        .get(block.key_id)
        .ok_or(Refusal::UnknownKey(block.key_id))?;
    if let Some(revoked_at) = trusted.revoked_at {
        return Err(Refusal::RevokedKey {
            key_id: block.key_id,
            name: trusted.name.clone(),
            revoked_at,
        });
    }
    signature::verify(&document.signed_bytes, block, &trusted.key).map_err(Refusal::Signature)?;

    let job = &document.job;
    let work = work_of(job);
    if let Some(why) = type_mismatch(&job.job_type, &work) {
        return Err(Refusal::TypeMismatch {
            job_type: job.job_type.clone(),
            runs: label(&work),
            why,
        });
    }
    // What the blocks run is what the key must be allowed, whatever the type says.
    let refused = job.code_blocks.iter().find_map(|b| {
        Work::of(b.kind)
            .filter(|w| !trusted.allows(*w))
            .map(|w| (b, w))
    });
    if let Some((block, work)) = refused {
        return Err(Refusal::TypeNotAllowed {
            name: trusted.name.clone(),
            work: work.name(),
            language: block.language.clone(),
            line: block.line,
            allowed: trusted.allow.join(", "),
        });
    }
    if job.created_at > now + policy.max_clock_skew {
        return Err(Refusal::CreatedInFuture {
            created_at: job.created_at,
            now,
            skew: format!("{:#}", policy.max_clock_skew),
        });
    }
    if let Some(expires_at) = job.expires_at
        && expires_at <= now
    {
        return Err(Refusal::Expired { expires_at, now });
    }
    if let Some(python) = job.code_blocks.iter().find(|b| b.kind == BlockKind::Python) {
        return Err(Refusal::PythonBlock {
            language: python.language.clone(),
            line: python.line,
        });
    }
    if !job.code_blocks.iter().any(|b| b.kind.is_runnable()) {
        let found = if job.code_blocks.is_empty() {
            "the Code_Blocks section holds no code block".to_owned()
        } else {
            let found: Vec<String> = job
                .code_blocks
                .iter()
                .map(|b| match b.language.as_str() {
                    "" => format!("an untagged block at line {}", b.line),
                    tag => format!("`{tag}` at line {}", b.line),
                })
                .collect();
            format!("found only {}", found.join(", "))
        };
        return Err(Refusal::NothingToRun { found });
    }
    let (key_name, key_id) = (trusted.name.clone(), trusted.key.id());
    Ok(Admitted {
        document,
        key_name,
        key_id,
        work,
    })
}
