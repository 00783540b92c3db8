//! Journal records as the API's messages, and the API's messages as the names and JSON that the
//! command line and the HTTP door show.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chimera_journal::{JobRecord, JobState as Stored, Receipt as StoredReceipt};
use chimera_proto::v1::{Head, HeadStatus, Job, JobEvent, JobState, Receipt, job_event};
use jiff::Timestamp;

pub fn state(state: Stored) -> JobState {
    match state {
        Stored::Queued => JobState::Queued,
        Stored::Running => JobState::Running,
        Stored::Succeeded => JobState::Succeeded,
        Stored::Failed => JobState::Failed,
        Stored::Cancelled => JobState::Cancelled,
    }
}

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

fn time(t: Option<Timestamp>) -> String {
    t.map(|t| t.to_string()).unwrap_or_default()
}

pub fn job(record: &JobRecord, engine_public_key: &[u8]) -> Job {
    Job {
        id: record.id.clone(),
        job_type: record.job_type.clone(),
        role: record.role.name().to_owned(),
        state: state(record.state) as i32,
        head: record.head.clone().unwrap_or_default(),
        attempts: record.attempts,
        submitted_at: record.submitted_at.to_string(),
        started_at: time(record.started_at),
        finished_at: time(record.finished_at),
        result_json: record.result.clone().unwrap_or_default(),
        error: record.error.clone().unwrap_or_default(),
        receipt: record
            .receipt
            .as_ref()
            .map(|r| receipt(r, engine_public_key)),
        submitted_by: record.submitted_by.clone(),
        pruned_at: time(record.pruned_at),
    }
}

pub fn receipt(receipt: &StoredReceipt, engine_public_key: &[u8]) -> Receipt {
    Receipt {
        statement: receipt.statement.clone(),
        signature: BASE64.decode(&receipt.signature).unwrap_or_default(),
        engine_key_id: receipt.engine_key_id.clone(),
        engine_public_key: engine_public_key.to_vec(),
        merkle_path: receipt.merkle_path.clone(),
        batch_statement: receipt.batch_statement.clone(),
    }
}

/// The event that says where a job stands now; the whole job once it is final.
pub fn snapshot(record: &JobRecord, engine_public_key: &[u8]) -> JobEvent {
    let detail = record
        .state
        .is_final()
        .then(|| job_event::Detail::Finished(job(record, engine_public_key)));
    JobEvent {
        job_id: record.id.clone(),
        state: state(record.state) as i32,
        head: record.head.clone().unwrap_or_default(),
        at: Timestamp::now().to_string(),
        detail,
    }
}
