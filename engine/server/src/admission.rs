//! Admission: a submitted document, from its bytes to a job committed to the journal, or the
//! reason it is refused. The source's and the client's limits, the signature and the work its key
//! may do (`chimera_maml::admit`), the job's content (`chimera_job::check_admitted`), the journal's
//! answer. No gRPC here: both doors call [`Core::admit`] and word its [`Refused`] themselves.

use std::net::IpAddr;
use std::time::Instant;

use chimera_audit::Event;
use chimera_job::CheckedJob;
use chimera_journal::{JobRecord, JobState, Submitted};
use chimera_maml::{Admitted, admit};
use jiff::Timestamp;

use crate::convert;
use crate::dispatch::Request as Dispatch;
use crate::metrics_names as m;
use crate::refusal::{Reason, Refused};
use crate::service::Core;

/// What admission did with a document: the job it committed, or the one the same document made
/// before.
pub(crate) struct Admission {
    pub record: JobRecord,
    /// Whether the job is new.
    pub created: bool,
}

impl Core {
    /// Admits `document` and commits its job. `client` is the name a client certificate gave, if
    /// one did (it is then limited as that client, else as the signing key); `source` the address
    /// it came from, if known.
    pub(crate) async fn admit(
        &self,
        client: Option<&str>,
        source: Option<IpAddr>,
        document: &[u8],
    ) -> Result<Admission, Refused> {
        let received = Instant::now();
        // A client that proved who it is with a certificate is limited as that client, not by
        // its address: a gateway relays many users' documents, some of them bad, from one.
        let source = source.filter(|_| client.is_none());
        if let Some(source) = source
            && let Err(throttled) = self.gate.source_may_submit(source)
        {
            metrics::counter!(m::SUBMISSIONS, "outcome" => "refused").increment(1);
            return Err(throttled);
        }
        let trust = self.trust.current()?;
        let admitted =
            admit(document, &trust, &self.policy, Timestamp::now()).map_err(|refused| {
                if let Some(source) = source {
                    self.gate.refused(source);
                }
                tracing::debug!(reason = refused.reason(), "submission refused: {refused}");
                metrics::counter!(m::SIGNATURE_CHECKS, "result" => refused.reason()).increment(1);
                metrics::counter!(m::SUBMISSIONS, "outcome" => "refused").increment(1);
                Refused::Document(refused)
            })?;
        metrics::counter!(m::SIGNATURE_CHECKS, "result" => "valid").increment(1);
        let checked =
            chimera_job::check_admitted(&admitted, self.gate.job_limits()).map_err(Refused::Job)?;
        let relayed_by = client.map(str::to_owned);
        let client = client.unwrap_or(&admitted.key_name);
        self.gate.submission(client)?;
        let place = self.gate.place(client)?;
        let record = record(&admitted, document, checked, relayed_by);
        let outcome = (self.journal.submit(record).await)
            .map_err(|e| Reason::JournalUnavailable.refused(e.to_string()))?;
        let admission = match outcome {
            Submitted::Created(record) => {
                place.keep();
                self.announce(&record);
                Admission {
                    record,
                    created: true,
                }
            }
            Submitted::Existing(record) => {
                metrics::counter!(m::SUBMISSIONS, "outcome" => "existing").increment(1);
                Admission {
                    record,
                    created: false,
                }
            }
            Submitted::Conflict(existing) => {
                metrics::counter!(m::SUBMISSIONS, "outcome" => "refused").increment(1);
                return Err(replayed(&existing, &admitted.key_name));
            }
        };
        metrics::histogram!(m::ACK_SECONDS).record(received.elapsed().as_secs_f64());
        Ok(admission)
    }

    /// A new job: to the audit log, to those who watch, and to the dispatcher.
    fn announce(&self, record: &JobRecord) {
        tracing::debug!(job = %record.id, key = %record.submitted_by, "accepted");
        self.audit.record(Event::Submitted {
            job: record.id.clone(),
            job_type: record.job_type.clone(),
            runs: record.runs.clone(),
            key: record.submitted_by.clone(),
            digest: record.digest.clone(),
        });
        let _ = self.events.send(convert::snapshot(record, &[]));
        let _ = self.dispatch.send(Dispatch::Submitted {
            id: record.id.clone(),
            role: record.role,
        });
        metrics::counter!(m::SUBMISSIONS, "outcome" => "created").increment(1);
    }
}

/// The journal record of a job just admitted and checked, queued.
fn record(
    admitted: &Admitted,
    document: &[u8],
    checked: CheckedJob,
    relayed_by: Option<String>,
) -> JobRecord {
    let job = &admitted.document.job;
    JobRecord {
        id: job.id.clone(),
        seq: 0,
        job_type: job.job_type.clone(),
        runs: chimera_maml::work_label(&checked.work),
        role: checked.role,
        submitted_by: admitted.key_name.clone(),
        relayed_by,
        // Admission read it as UTF-8.
        document: String::from_utf8(document.to_vec()).expect("admitted documents are UTF-8"),
        digest: checked.signed.digest.clone(),
        checked: Some(checked),
        state: JobState::Queued,
        head: None,
        attempts: 0,
        head_deaths: 0,
        submitted_at: Timestamp::now(),
        started_at: None,
        finished_at: None,
        result: None,
        error: None,
        receipt: None,
        pruned_at: None,
    }
}

/// The refusal of a job id already taken by other bytes. When, only to the key that submitted
/// it: a stranger learns no more than that the id is taken.
fn replayed(existing: &JobRecord, key_name: &str) -> Refused {
    let when = if existing.submitted_by == key_name {
        format!(" at {} with other content", existing.submitted_at)
    } else {
        String::new()
    };
    Reason::ReplayedId.refused(format!(
        "job id {} was already submitted{when}; a new job needs a new id",
        existing.id
    ))
}
