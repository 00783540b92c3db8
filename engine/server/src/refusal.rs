//! Every way a client's request can be refused, as a gRPC status with a stable reason in its
//! `ErrorInfo` detail (domain `chimera.engine`), so that clients match on the reason, not the text.

use chimera_job::JobError;
use chimera_maml::Refusal;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub const DOMAIN: &str = "chimera.engine";

pub fn status(code: Code, reason: &str, message: impl Into<String>) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, DOMAIN, std::collections::HashMap::new()),
    )
}

/// The status of a document that failed admission.
pub fn admission(refusal: &Refusal) -> Status {
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
pub fn job(error: &JobError) -> Status {
    let code = match error {
        JobError::HybridNotSupported => Code::Unimplemented,
        JobError::TooManyQubits { .. } | JobError::OverLimit { .. } => Code::OutOfRange,
        JobError::BadCircuit { .. } | JobError::BadSpec { .. } | JobError::BadContext { .. } => {
            Code::InvalidArgument
        }
    };
    status(code, error.reason(), error.to_string())
}

/// The reason a status carries, if it carries one.
pub fn reason_of(status: &Status) -> Option<String> {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .filter(|r| !r.is_empty())
}
