//! Every way a client's request can be refused: as the engine decides it ([`Refused`]: its
//! reason and words), and as a gRPC status with the stable reason in its `ErrorInfo` detail
//! (domain `chimera.engine`), so that clients match on the reason, not the text.

use chimera_job::JobError;
use chimera_maml::Refusal;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub const DOMAIN: &str = "chimera.engine";

fn status(code: Code, reason: &str, message: impl Into<String>) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, DOMAIN, std::collections::HashMap::new()),
    )
}

/// Why the engine refuses a request, beside admission's reasons ([`Refusal::reason`]) and the
/// job check's ([`JobError::reason`]): each with its stable name and its gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Mutual TLS: the call came without a client certificate naming a trusted key.
    ClientCertificateRequired,
    /// The client certificate names a revoked key.
    RevokedClient,
    /// The client certificate names no key of the trust store.
    UnknownClient,
    /// A call about a job that does not prove who asks.
    ProofRequired,
    /// A proof of who asks that does not check.
    BadProof,
    /// No job of that id that the asker may see (the same answer for both).
    NoSuchJob,
    /// A job id already taken by other bytes.
    ReplayedId,
    /// A receipt asked of a job that has not finished.
    NotFinished,
    /// A receipt asked of a job whose receipt was pruned.
    Pruned,
    /// A client submitting faster than its rate.
    RateLimited,
    /// A source whose documents are refused faster than the engine reads them.
    TooManyRefused,
    /// A client with as many jobs queued or running as the engine holds for one.
    TooManyJobs,
    /// More open streams than the engine, or one source, may have.
    TooManyStreams,
    /// More request bytes still arriving than the engine holds.
    EngineBusy,
    /// A message that did not arrive whole within the read timeout.
    RequestTimeout,
    /// The engine is stopping.
    EngineStopping,
    /// The journal cannot take a change now.
    JournalUnavailable,
    /// The journal cannot be read.
    JournalUnreadable,
    /// The trust store cannot be read.
    TrustStoreUnreadable,
    /// A stored document that no longer renders as a receipt.
    ReceiptUnrenderable,
}

impl Reason {
    /// The stable name clients match on.
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientCertificateRequired => "CLIENT_CERTIFICATE_REQUIRED",
            Self::RevokedClient => "REVOKED_CLIENT",
            Self::UnknownClient => "UNKNOWN_CLIENT",
            Self::ProofRequired => "PROOF_REQUIRED",
            Self::BadProof => "BAD_PROOF",
            Self::NoSuchJob => "NO_SUCH_JOB",
            Self::ReplayedId => "REPLAYED_ID",
            Self::NotFinished => "NOT_FINISHED",
            Self::Pruned => "PRUNED",
            Self::RateLimited => "RATE_LIMITED",
            Self::TooManyRefused => "TOO_MANY_REFUSED",
            Self::TooManyJobs => "TOO_MANY_JOBS",
            Self::TooManyStreams => "TOO_MANY_STREAMS",
            Self::EngineBusy => "ENGINE_BUSY",
            Self::RequestTimeout => "REQUEST_TIMEOUT",
            Self::EngineStopping => "ENGINE_STOPPING",
            Self::JournalUnavailable => "JOURNAL_UNAVAILABLE",
            Self::JournalUnreadable => "JOURNAL_UNREADABLE",
            Self::TrustStoreUnreadable => "TRUST_STORE_UNREADABLE",
            Self::ReceiptUnrenderable => "RECEIPT_UNRENDERABLE",
        }
    }

    pub fn code(self) -> Code {
        match self {
            Self::ClientCertificateRequired | Self::ProofRequired | Self::BadProof => {
                Code::Unauthenticated
            }
            Self::RevokedClient | Self::UnknownClient => Code::PermissionDenied,
            Self::NoSuchJob => Code::NotFound,
            Self::ReplayedId => Code::AlreadyExists,
            Self::NotFinished | Self::Pruned => Code::FailedPrecondition,
            Self::RateLimited
            | Self::TooManyRefused
            | Self::TooManyJobs
            | Self::TooManyStreams
            | Self::EngineBusy => Code::ResourceExhausted,
            Self::RequestTimeout => Code::DeadlineExceeded,
            Self::EngineStopping | Self::JournalUnavailable => Code::Unavailable,
            Self::JournalUnreadable | Self::TrustStoreUnreadable | Self::ReceiptUnrenderable => {
                Code::Internal
            }
        }
    }

    /// The refusal, saying `message`.
    pub fn refused(self, message: impl Into<String>) -> Refused {
        Refused::Engine(self, message.into())
    }

    /// The refusal, saying `message`, as a gRPC status.
    pub fn status(self, message: impl Into<String>) -> Status {
        status(self.code(), self.name(), message)
    }
}

/// A refusal as the engine decides it, before a door words it: the engine's own reasons,
/// admission's, and the job check's.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{1}")]
    Engine(Reason, String),
    #[error("{0}")]
    Document(Refusal),
    #[error(transparent)]
    Job(JobError),
}

impl Refused {
    /// The stable name clients match on.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::Engine(reason, _) => reason.name(),
            Refused::Document(refusal) => refusal.reason(),
            Refused::Job(error) => error.reason(),
        }
    }
}

impl From<Refused> for Status {
    fn from(refused: Refused) -> Status {
        match refused {
            Refused::Engine(reason, message) => reason.status(message),
            Refused::Document(refusal) => admission(&refusal),
            Refused::Job(error) => job(&error),
        }
    }
}

/// The status of a document that failed admission.
fn admission(refusal: &Refusal) -> Status {
    let code = match refusal {
        Refusal::Malformed(_)
        | Refusal::PythonBlock { .. }
        | Refusal::NothingToRun { .. }
        | Refusal::TypeMismatch { .. } => Code::InvalidArgument,
        Refusal::Signature(_) | Refusal::UnknownKey(_) => Code::Unauthenticated,
        Refusal::RevokedKey { .. } | Refusal::TypeNotAllowed { .. } => Code::PermissionDenied,
        Refusal::CreatedInFuture { .. } | Refusal::Expired { .. } => Code::FailedPrecondition,
    };
    status(code, refusal.reason(), refusal.to_string())
}

/// The status of an admitted job that its content refuses. A number past this engine's limits
/// is `OUT_OF_RANGE`: no retry makes it pass here (the HTTP door answers it 422).
fn job(error: &JobError) -> Status {
    let code = match error {
        JobError::HybridNotSupported => Code::Unimplemented,
        JobError::TooManyQubits { .. } | JobError::OverLimit { .. } => Code::OutOfRange,
        JobError::BadCircuit { .. } | JobError::BadSpec { .. } | JobError::BadContext { .. } => {
            Code::InvalidArgument
        }
    };
    status(code, error.reason(), error.to_string())
}
