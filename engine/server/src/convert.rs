//! Journal records as the API's messages (their names and JSON are `chimera_client::json`'s).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chimera_journal::{JobRecord, JobState as Stored, Receipt as StoredReceipt};
use chimera_proto::v1::{Job, JobEvent, JobState, Receipt, job_event};
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
