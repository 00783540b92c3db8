//! The API's messages as the names and JSON a client shows: the command line's `--json`, the
//! HTTP door's replies and the Python package's dictionaries are all these.

use chimera_proto::v1::{Head, HeadStatus, Job, JobState};

/// A job state's name: `queued`, `running`, `succeeded`, `failed`, `cancelled`.
pub fn state_name(state: i32) -> &'static str {
    match JobState::try_from(state).unwrap_or(JobState::Unspecified) {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
        JobState::Unspecified => "unknown",
    }
}

/// A head status's name: `starting`, `up`, `down`.
pub fn head_status(status: i32) -> &'static str {
    match HeadStatus::try_from(status).unwrap_or(HeadStatus::Unspecified) {
        HeadStatus::Starting => "starting",
        HeadStatus::Up => "up",
        HeadStatus::Down => "down",
        HeadStatus::Unspecified => "unknown",
    }
}

/// A head as JSON (`chimera heads --json`, the HTTP door's `GET /`).
pub fn head_json(h: &Head) -> serde_json::Value {
    serde_json::json!({
        "id": h.id, "role": h.role, "status": head_status(h.status),
        "pid": h.pid, "backend": h.backend, "restarts": h.restarts,
        "key_epoch": h.key_epoch, "key_shares": h.key_shares, "job_id": h.job_id,
        "jobs_done": h.jobs_done,
    })
}

/// A job as JSON, its receipt checked (`receipt_valid`).
pub fn job_json(job: &Job) -> serde_json::Value {
    serde_json::json!({
        "id": job.id,
        "type": job.job_type,
        "state": state_name(job.state),
        "head": job.head,
        "attempts": job.attempts,
        "submitted_at": job.submitted_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "result": serde_json::from_str::<serde_json::Value>(&job.result_json).ok(),
        "error": (!job.error.is_empty()).then_some(&job.error),
        "receipt_valid": job.receipt.is_some().then(|| crate::receipt::valid(job)),
        "engine_key_id": job.receipt.as_ref().map(|r| &r.engine_key_id),
        "pruned_at": (!job.pruned_at.is_empty()).then_some(&job.pruned_at),
    })
}
