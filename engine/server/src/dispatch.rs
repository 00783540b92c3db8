//! The dispatcher: one task that owns the queues and knows what each head is running. Jobs wait
//! in a queue per role; an idle head that is up takes the oldest (the one with fewest jobs done
//! first, so that work spreads); a job whose head dies goes back to the front of its queue.
//!
//! A job whose head said it keeps a checkpoint of it (a progress object with a `checkpoint`
//! member) is sealed under that head's key: if the head dies, the job waits up to
//! [`RESERVED_FOR`] for the head's rebuild, which restores the key and resumes it, before any
//! other head may take it (and start it over).
//!
//! A change that a client could act on (queued again, finished, cancelled) is committed to the
//! journal before anyone is told of it; a job's start is recorded without waiting (see `assign`).
//!
//! A running job that is cancelled and has not stopped within [`CANCEL_GRACE`] (a circuit does not
//! look at the cancel flag) has its head killed: it is replaced, and the job ends cancelled.
//!
//! A job the journal says is running when the engine starts was running when the engine died
//! (a stop that is asked for puts its jobs back in the queue first, [`Request::Stop`]): that
//! counts as a death of its head, so that a job that brings the whole engine down is not run
//! again for ever either.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chimera_audit::{Event, Recorder};
use chimera_job::{Progress, Role, Signed};
use chimera_journal::{JobRecord, JobState, Journal, JournalError};
use chimera_proto::v1::{JobEvent, job_event};
use chimera_supervisor::{HeadEvent, Outcome, Supervisor, ToHead};
use jiff::Timestamp;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{Span, debug, error, info, info_span, warn};

use crate::limits::Gate;
use crate::metrics_names as m;
use crate::trust_file::TrustFile;
use crate::{convert, receipt};

pub enum Request {
    /// A job just committed to the journal, and the role of head it needs.
    Submitted { id: String, role: Role },
    Cancel(
        String,
        oneshot::Sender<Result<Option<JobRecord>, JournalError>>,
    ),
    /// What each head is running and how many jobs it finished.
    Loads(oneshot::Sender<HashMap<String, HeadLoad>>),
    /// The engine is stopping and its heads have stopped: the jobs they ran go back in the
    /// queue, in the journal, without counting against them. Answered once committed.
    Stop(oneshot::Sender<()>),
}

#[derive(Debug, Clone, Default)]
pub struct HeadLoad {
    pub running: Option<String>,
    pub jobs_done: u64,
}

struct Slot {
    role: Role,
    /// The rebuild that is up, if one is.
    up: Option<u64>,
    running: Option<Running>,
    jobs_done: u64,
}

/// How long a job with a checkpoint waits for its dead head's rebuild: the supervisor's
/// longest restart back-off (5 s), a start, and a restore of the head's key (at most 3 s), with
/// room to spare.
pub const RESERVED_FOR: std::time::Duration = std::time::Duration::from_secs(15);
/// A job whose head dies this many times while running it fails instead of running again.
pub const MAX_HEAD_DEATHS: u32 = 3;
/// How long a running job that was cancelled may take to stop before its head is killed.
pub const CANCEL_GRACE: std::time::Duration = std::time::Duration::from_millis(500);
/// How often the dispatcher looks at what has no event to say it is due: reservations that end,
/// cancels past their grace.
const TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// A queued job kept for one head until a deadline.
struct Reservation {
    head: String,
    until: std::time::Instant,
}

/// The job a head is running, and what its receipt will say of its start.
struct Running {
    job: String,
    /// The head keeps a sealed checkpoint of it.
    checkpointed: bool,
    attempt: u32,
    started_at: Timestamp,
    digest: String,
    /// When a client asked to cancel it.
    cancelling: Option<std::time::Instant>,
    /// The job's span (DESIGN.md: one per job) for this attempt.
    span: Span,
}

pub struct Dispatcher {
    journal: Journal,
    supervisor: Arc<Supervisor>,
    events: broadcast::Sender<JobEvent>,
    key: Arc<receipt::EngineKey>,
    signer: receipt::Signer,
    queues: HashMap<Role, VecDeque<String>>,
    reserved: HashMap<String, Reservation>,
    /// Read again before each start: a job whose key was revoked after it was accepted is not run.
    trust: Arc<TrustFile>,
    audit: Arc<Recorder>,
    gate: Arc<Gate>,
    slots: HashMap<String, Slot>,
    /// Outcomes being signed and committed (`finished`), which a stop waits for.
    finishing: tokio::task::JoinSet<()>,
}

/// What a rebuilt head said once it served with a key.
struct Rebuilt {
    epoch: u32,
    restored: bool,
    rebuilt_in: std::time::Duration,
    resealed: u64,
    recovered: u64,
}

impl Dispatcher {
    pub fn new(
        journal: Journal,
        supervisor: Arc<Supervisor>,
        events: broadcast::Sender<JobEvent>,
        key: Arc<receipt::EngineKey>,
        trust: Arc<TrustFile>,
        audit: Arc<Recorder>,
        gate: Arc<Gate>,
    ) -> std::io::Result<Self> {
        let slots = supervisor
            .heads()
            .into_iter()
            .map(|h| {
                let slot = Slot {
                    role: h.role,
                    up: None,
                    running: None,
                    jobs_done: 0,
                };
                (h.id, slot)
            })
            .collect();
        Ok(Self {
            journal,
            supervisor,
            events,
            signer: receipt::Signer::start(Arc::clone(&key))?,
            key,
            queues: HashMap::new(),
            reserved: HashMap::new(),
            trust,
            audit,
            gate,
            slots,
            finishing: tokio::task::JoinSet::new(),
        })
    }

    /// Keeps the queued job `job` for `head` for [`RESERVED_FOR`]: the one head that can open its
    /// checkpoint.
    fn reserve(&mut self, job: &str, head: &str) {
        let reservation = Reservation {
            head: head.to_owned(),
            until: std::time::Instant::now() + RESERVED_FOR,
        };
        self.reserved.insert(job.to_owned(), reservation);
    }

    /// Puts back in the queue the jobs the journal held `unfinished` when the engine started (a
    /// job that was running when the engine stopped runs again), then serves requests and the
    /// heads' events until every request sender is gone.
    pub async fn run(
        mut self,
        unfinished: Vec<JobRecord>,
        mut requests: mpsc::UnboundedReceiver<Request>,
        mut head_events: mpsc::UnboundedReceiver<HeadEvent>,
    ) {
        for record in unfinished {
            let Some(record) = self.converted(record).await else {
                continue;
            };
            if record.state != JobState::Running {
                self.enqueue(record.role, record.id, false);
            } else if let Some(requeued) = self.after_engine_died(&record.id).await {
                // A training's checkpoints are sealed under its head's key, which that head
                // takes back from the data directory as it starts (issue 36): kept for it.
                let training =
                    (record.checked.as_ref()).is_some_and(|j| j.trainings().next().is_some());
                if let Some(head) = record.head.filter(|_| training) {
                    self.reserve(&requeued.id, &head);
                }
                self.enqueue(requeued.role, requeued.id, false);
            }
        }
        // Reservations and cancels' graces end with no event to say so: look now and then.
        let mut ticks = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    Some(request) => self.request(request).await,
                    None => return,
                },
                Some(event) = head_events.recv() => self.head_event(event).await,
                _ = ticks.tick() => {
                    while self.finishing.try_join_next().is_some() {}
                    self.kill_the_overdue();
                }
            }
            self.assign().await;
        }
    }

    /// The record with its checked job: a job an earlier release admitted has none, and is
    /// checked now from its document as the door checks one, within this engine's limits. One
    /// that no longer passes fails, saying why; `None` then.
    async fn converted(&mut self, record: JobRecord) -> Option<JobRecord> {
        if record.checked.is_some() {
            return Some(record);
        }
        let signed = Signed {
            digest: record.digest.clone(),
            signer: record.submitted_by.clone(),
        };
        let checked = chimera_maml::parse(record.document.as_bytes(), usize::MAX)
            .map_err(|e| e.to_string())
            .and_then(|document| {
                chimera_job::check(&document.job, signed, self.gate.job_limits())
                    .map_err(|e| e.to_string())
            });
        let checked = match checked {
            Ok(checked) => checked,
            Err(refused) => {
                let error = format!(
                    "not run: an earlier release of the engine accepted it, and this one \
                     refuses it: {refused}"
                );
                self.fail_unrun(&record.id, error).await;
                return None;
            }
        };
        let update = self
            .journal
            .update(&record.id, move |r| r.checked = Some(checked));
        match update.await {
            Ok(updated) => Some(updated),
            Err(e) => {
                error!(job = %record.id, "cannot be converted: {e}");
                None
            }
        }
    }

    /// A job that was running when the engine died: its head's death, as one that died under
    /// it would count. The record, if it is to run again.
    async fn after_engine_died(&mut self, id: &str) -> Option<JobRecord> {
        let died = "the engine stopped while it ran, without stopping cleanly (killed, or the \
                    machine went down)";
        let update = self.journal.update(id, move |r| {
            r.head = None;
            died_under(r, died);
        });
        match update.await {
            Ok(record) if record.state == JobState::Queued => {
                warn!(job = %record.id, "the engine restarted while it ran; queued again");
                self.note(&record, "the engine restarted while it ran; queued again");
                Some(record)
            }
            Ok(record) => {
                warn!(job = %record.id, "its head died {} times; failed", record.head_deaths);
                self.publish_final(&record);
                None
            }
            Err(e) => {
                error!(job = %id, "cannot be queued again: {e}");
                None
            }
        }
    }

    /// Kills the head of each job cancelled longer than [`CANCEL_GRACE`] ago that runs on.
    fn kill_the_overdue(&self) {
        for (head, slot) in &self.slots {
            let (Some(rebuild), Some(run)) = (slot.up, &slot.running) else {
                continue;
            };
            if run
                .cancelling
                .is_some_and(|at| at.elapsed() >= CANCEL_GRACE)
            {
                let reason = format!(
                    "killed: job {} was cancelled and had not stopped {CANCEL_GRACE:?} later",
                    run.job
                );
                let _ = self.supervisor.kill(head, rebuild, reason);
            }
        }
    }

    async fn request(&mut self, request: Request) {
        match request {
            Request::Submitted { id, role } => self.enqueue(role, id, false),
            Request::Cancel(id, reply) => {
                let _ = reply.send(self.cancel(&id).await);
            }
            Request::Stop(reply) => {
                self.stop().await;
                let _ = reply.send(());
            }
            Request::Loads(reply) => {
                let loads = self
                    .slots
                    .iter()
                    .map(|(id, s)| {
                        let load = HeadLoad {
                            running: s.running.as_ref().map(|r| r.job.clone()),
                            jobs_done: s.jobs_done,
                        };
                        (id.clone(), load)
                    })
                    .collect();
                let _ = reply.send(loads);
            }
        }
    }

    fn enqueue(&mut self, role: Role, id: String, front: bool) {
        let queue = self.queues.entry(role).or_default();
        if front {
            queue.push_front(id);
        } else {
            queue.push_back(id);
        }
        metrics::gauge!(m::QUEUE_DEPTH, "role" => role.name()).set(queue.len() as f64);
    }

    async fn head_event(&mut self, event: HeadEvent) {
        match event {
            HeadEvent::Up { head, rebuild } => {
                if let Some(slot) = self.slots.get_mut(&head) {
                    slot.up = Some(rebuild);
                    metrics::gauge!(m::HEAD_STATUS, "head" => head, "role" => slot.role.name())
                        .set(1.0);
                }
            }
            HeadEvent::KeyShares { head, shares } => {
                metrics::gauge!(m::HEAD_KEY_SHARES, "head" => head).set(f64::from(shares));
            }
            HeadEvent::Down {
                head,
                rebuild,
                reason,
            } => self.head_down(head, rebuild, reason).await,
            HeadEvent::Keyed {
                head,
                epoch,
                restored,
                rebuilt_in,
                resealed,
                unreadable,
                recovered,
                ..
            } => {
                metrics::gauge!(m::HEAD_KEY_EPOCH, "head" => head.clone()).set(f64::from(epoch));
                if unreadable > 0 {
                    warn!(%head, epoch, unreadable, "files of the head's state are sealed under a key it no longer has; they stay closed");
                }
                let Some(rebuilt_in) = rebuilt_in else {
                    if restored {
                        info!(%head, epoch, resealed, "head keyed: its keys from before the engine's start unwrapped, its state re-sealed under a new key");
                    }
                    debug!(%head, epoch, resealed, "head keyed");
                    self.audit.record(Event::HeadKeyed { head, epoch });
                    return;
                };
                let rebuilt = Rebuilt {
                    epoch,
                    restored,
                    rebuilt_in,
                    resealed,
                    recovered,
                };
                self.head_rebuilt(head, rebuilt);
            }
            HeadEvent::Progress {
                head,
                job_id,
                progress,
                ..
            } => self.progress(head, job_id, progress),
            HeadEvent::Finished {
                head,
                rebuild,
                job_id,
                outcome,
                work,
            } => {
                if work.gate_passes > 0 {
                    metrics::counter!(m::GATE_PASSES, "head" => head.clone())
                        .increment(work.gate_passes);
                    metrics::counter!(m::BYTES_MOVED, "head" => head.clone())
                        .increment(work.bytes_moved);
                }
                self.finished(head, rebuild, job_id, outcome).await
            }
        }
    }

    /// A head died: said and counted, and the job it ran queued again (first in its queue, and
    /// kept for the head's rebuild if it has a checkpoint there), or ended.
    async fn head_down(&mut self, head: String, rebuild: u64, reason: String) {
        let Some(slot) = self.slots.get_mut(&head) else {
            return;
        };
        warn!(%head, %reason, "head down; starting a new one");
        self.audit.record(Event::HeadDown {
            head: head.clone(),
            reason: reason.clone(),
        });
        metrics::gauge!(m::HEAD_STATUS, "head" => head.clone(), "role" => slot.role.name())
            .set(0.0);
        metrics::counter!(m::HEAD_RESTARTS, "head" => head.clone()).increment(1);
        if slot.up == Some(rebuild) {
            slot.up = None;
        }
        let role = slot.role;
        if let Some(running) = slot.running.take() {
            self.died_under_its_job(head, reason, role, running).await;
        }
    }

    async fn died_under_its_job(&mut self, head: String, reason: String, role: Role, run: Running) {
        let Running {
            job,
            cancelling,
            span,
            checkpointed,
            ..
        } = run;
        let died = format!("{head}: {reason}");
        let update = self.journal.update(&job, move |r| {
            if cancelling.is_some() {
                r.state = JobState::Cancelled;
                r.finished_at = Some(Timestamp::now());
                return;
            }
            died_under(r, &died);
        });
        match update.await {
            Ok(record) if record.state == JobState::Queued => {
                warn!(parent: &span, "its head died; queued again");
                let kept = if checkpointed {
                    self.reserve(&job, &head);
                    format!(
                        ", kept {RESERVED_FOR:?} for {head}'s rebuild, which can open its checkpoint"
                    )
                } else {
                    String::new()
                };
                let note = format!("head {head} died ({reason}); queued again{kept}");
                self.note(&record, &note);
                self.enqueue(role, job, true);
            }
            Ok(record) => {
                if record.state == JobState::Failed {
                    warn!(parent: &span, "its head died {} times; failed", record.head_deaths);
                }
                self.publish_final(&record)
            }
            Err(e) => error!(parent: &span, "{e}"),
        }
    }

    /// A rebuilt head serves with a key: audited, said and counted.
    fn head_rebuilt(&self, head: String, rebuilt: Rebuilt) {
        let Rebuilt {
            epoch,
            restored,
            rebuilt_in,
            resealed,
            recovered,
        } = rebuilt;
        self.audit.record(Event::HeadRebuilt {
            head: head.clone(),
            epoch,
            restored,
            seconds: rebuilt_in.as_secs_f64(),
            recovered_files: recovered,
        });
        let outcome = if restored { "restored" } else { "new_key" };
        if restored {
            info!(%head, epoch, resealed, recovered, seconds = rebuilt_in.as_secs_f64(), "head rebuilt: its key restored from two peers, its state re-sealed under a new key (`recovered`: files taken back from its peers' replicas)");
        } else {
            warn!(%head, epoch, "head rebuilt without the dead head's key: too few peers gave shares; what that key sealed stays closed");
        }
        metrics::counter!(m::HEAD_REBUILDS, "head" => head.clone(), "outcome" => outcome)
            .increment(1);
        metrics::counter!(m::HEAD_RECOVERED_FILES, "head" => head.clone()).increment(recovered);
        metrics::histogram!(m::HEAD_REBUILD_SECONDS, "outcome" => outcome)
            .record(rebuilt_in.as_secs_f64());
    }

    /// A head's progress on its job: passed on to whoever watches; a checkpoint is noted, as it
    /// keeps the job for the head's rebuild if the head dies.
    fn progress(&mut self, head: String, job_id: String, progress: serde_json::Value) {
        let checkpointed = matches!(
            Progress::deserialize(&progress),
            Ok(Progress::Checkpoint { .. })
        );
        if checkpointed
            && let Some(running) = self
                .slots
                .get_mut(&head)
                .and_then(|s| s.running.as_mut())
                .filter(|r| r.job == job_id)
        {
            running.checkpointed = true;
        }
        let _ = self.events.send(JobEvent {
            job_id,
            state: chimera_proto::v1::JobState::Running as i32,
            head,
            at: Timestamp::now().to_string(),
            detail: Some(job_event::Detail::ProgressJson(progress.to_string())),
        });
    }

    async fn finished(&mut self, head: String, rebuild: u64, job_id: String, outcome: Outcome) {
        let Some(slot) = self.slots.get_mut(&head) else {
            return;
        };
        let runs_it = slot.running.as_ref().is_some_and(|r| r.job == job_id);
        if slot.up != Some(rebuild) || !runs_it {
            return;
        }
        let Running {
            attempt,
            started_at,
            digest,
            span,
            ..
        } = slot.running.take().expect("checked above");
        slot.jobs_done += 1;
        let signer = self.signer.clone();
        let journal = self.journal.clone();
        let events = self.events.clone();
        let key = Arc::clone(&self.key);
        let gate = Arc::clone(&self.gate);
        // Signing takes most of a millisecond: done off the dispatcher and off the journal's
        // writer, and the result committed with its receipt when it is ready.
        self.finishing.spawn(async move {
            let finished_at = Timestamp::now();
            let (state, outcome_name, output) = match outcome {
                Outcome::Succeeded(result) => (JobState::Succeeded, "succeeded", result),
                Outcome::Failed(error) => (JobState::Failed, "failed", error),
                Outcome::Cancelled => (JobState::Cancelled, "cancelled", String::new()),
            };
            let facts = receipt::Facts {
                job_id: job_id.clone(),
                job_digest: digest,
                outcome: outcome_name,
                output,
                head,
                attempts: attempt,
                started_at: Some(started_at),
                finished_at,
            };
            let Some((receipt, receipt::Facts { output, .. })) = signer.sign(facts).await else {
                error!(parent: &span, "its receipt could not be signed");
                return;
            };
            let update = journal.update(&job_id, move |r| {
                r.receipt = Some(receipt);
                r.state = state;
                r.finished_at = Some(finished_at);
                match state {
                    JobState::Succeeded => r.result = Some(output),
                    JobState::Failed => r.error = Some(output),
                    _ => {}
                }
            });
            match update.await {
                Ok(record) => {
                    let seconds = finished_at.duration_since(started_at).as_secs_f64();
                    debug!(parent: &span, outcome = outcome_name, seconds, "finished");
                    publish_final(&events, &record, key.public_key(), &gate)
                }
                Err(e) => error!(parent: &span, "the outcome was not recorded: {e}"),
            }
        });
    }

    /// Where in its role's queue the oldest job is that `head` may take: one not kept for another
    /// head (reservations that ran out are dropped at the start of [`Self::assign`]).
    fn next_for(&self, head: &str, role: Role) -> Option<usize> {
        self.queues
            .get(&role)?
            .iter()
            .position(|job| self.reserved.get(job).is_none_or(|r| r.head == head))
    }

    /// Gives each idle head that is up the oldest job of its role that it may take.
    async fn assign(&mut self) {
        let now = std::time::Instant::now();
        self.reserved.retain(|_, r| r.until > now);
        loop {
            let mut idle: Vec<(&String, &Slot, usize)> = self
                .slots
                .iter()
                .filter(|(_, s)| s.up.is_some() && s.running.is_none())
                .filter_map(|(id, s)| Some((id, s, self.next_for(id, s.role)?)))
                .collect();
            idle.sort_by_key(|(id, s, _)| (s.jobs_done, id.as_str()));
            let Some((head, _, index)) = idle.first() else {
                return;
            };
            let (head, index) = ((*head).clone(), *index);
            let slot = &self.slots[&head];
            let (rebuild, role) = (slot.up.expect("filtered on up"), slot.role);
            let queue = self.queues.get_mut(&role).expect("filtered on a queue");
            let job = queue.remove(index).expect("found in the queue above");
            self.reserved.remove(&job);
            metrics::gauge!(m::QUEUE_DEPTH, "role" => role.name()).set(queue.len() as f64);
            // One head at a time runs a job, however often it was queued.
            let running = |s: &Slot| s.running.as_ref().is_some_and(|r| r.job == job);
            if self.slots.values().any(running) {
                continue;
            }
            // Every change to a queued job was committed before it was queued, so this read
            // sees the job as it stands.
            let mut record = match self.journal.get_to_run(&job) {
                Ok(Some(record)) if !record.state.is_final() => record,
                Ok(_) => continue,
                Err(e) => {
                    error!(%job, "cannot be read from the journal: {e}");
                    continue;
                }
            };
            if let Some(revoked_at) = self.trust.revoked(&record.submitted_by) {
                let error = format!(
                    "not run: the key `{}` that signed it was revoked at {revoked_at}, after the \
                     job was accepted",
                    record.submitted_by
                );
                self.fail_unrun(&job, error).await;
                continue;
            }
            let Some(checked) = record.checked.take() else {
                // Every job is checked at its submission or converted when the engine starts.
                let error = "not run: the journal holds no checked job for it".to_owned();
                self.fail_unrun(&job, error).await;
                continue;
            };
            let attempt = record.attempts + 1;
            let started_at = Timestamp::now();
            let span = info_span!("job", id = %job, r#type = %record.work(), %head, attempt);
            debug!(parent: &span, "started");
            let slot = self.slots.get_mut(&head).expect("listed above");
            slot.running = Some(Running {
                job: job.clone(),
                checkpointed: false,
                attempt,
                started_at,
                digest: record.digest,
                cancelling: None,
                span: span.clone(),
            });
            // The start is queued in the journal before the order goes out (the journal commits
            // in order) but not waited for: if the engine dies first, the job is still queued in
            // the journal and runs again after the restart, as it would have anyway.
            let started = self.journal.update(&job, {
                let head = head.clone();
                move |r| {
                    r.state = JobState::Running;
                    r.head = Some(head);
                    r.attempts = attempt;
                    r.started_at = Some(started_at);
                }
            });
            tokio::spawn(async move {
                if let Err(e) = started.await {
                    error!(parent: &span, "its start was not recorded: {e}");
                }
            });
            let _ = self.events.send(JobEvent {
                job_id: job.clone(),
                state: chimera_proto::v1::JobState::Running as i32,
                head: head.clone(),
                at: started_at.to_string(),
                detail: None,
            });
            let order = ToHead::Run {
                job: Box::new(checked),
            };
            let _ = self.supervisor.send(&head, rebuild, order);
        }
    }

    /// Fails a job that was not run, saying why.
    async fn fail_unrun(&self, job: &str, error: String) {
        warn!(%job, "{error}");
        let failed = self.journal.update(job, move |r| {
            r.state = JobState::Failed;
            r.error = Some(error);
            r.finished_at = Some(Timestamp::now());
        });
        match failed.await {
            Ok(record) => self.publish_final(&record),
            Err(e) => error!(%job, "its failure was not recorded: {e}"),
        }
    }

    async fn cancel(&mut self, id: &str) -> Result<Option<JobRecord>, JournalError> {
        let Some(mut record) = self.journal.get(id)? else {
            return Ok(None);
        };
        if record.state.is_final() {
            return Ok(Some(record));
        }
        let queued = self
            .queues
            .get_mut(&record.role)
            .and_then(|q| q.iter().position(|j| j == id).map(|i| q.remove(i)))
            .is_some();
        if queued {
            let record = self
                .journal
                .update(id, |r| {
                    r.state = JobState::Cancelled;
                    r.finished_at = Some(Timestamp::now());
                })
                .await?;
            self.publish_final(&record);
            return Ok(Some(record));
        }
        let running_on = self.slots.iter_mut().find_map(|(head, s)| {
            let run = s.running.as_mut().filter(|r| r.job == id)?;
            Some((head, s.up, run))
        });
        if let Some((head, Some(rebuild), run)) = running_on {
            run.cancelling.get_or_insert_with(std::time::Instant::now);
            debug!(parent: &run.span, "cancel asked");
            let _ = self.supervisor.send(
                head,
                rebuild,
                ToHead::Cancel {
                    job_id: id.to_owned(),
                },
            );
            // As it stands, though its start may not be committed yet (`assign` does not wait).
            (record.state, record.head) = (JobState::Running, Some(head.clone()));
        }
        Ok(Some(record))
    }

    /// Commits the outcomes being signed, and marks every job a head was running as queued again,
    /// for the engine's next start.
    async fn stop(&mut self) {
        while self.finishing.join_next().await.is_some() {}
        let running: Vec<String> = self
            .slots
            .values_mut()
            .filter_map(|slot| slot.running.take())
            .map(|run| run.job)
            .collect();
        for job in running {
            let requeued = self.journal.update(&job, |r| {
                if !r.state.is_final() {
                    r.state = JobState::Queued;
                    r.head = None;
                }
            });
            if let Err(e) = requeued.await {
                error!(%job, "not put back in the queue as the engine stops: {e}");
            }
        }
    }

    fn note(&self, record: &JobRecord, note: &str) {
        let mut event = convert::snapshot(record, &[]);
        event.detail = Some(job_event::Detail::Note(note.to_owned()));
        let _ = self.events.send(event);
    }

    fn publish_final(&self, record: &JobRecord) {
        publish_final(&self.events, record, self.key.public_key(), &self.gate);
    }
}

/// Counts a death of the head running the job (`died` says how): it is queued again, or after
/// [`MAX_HEAD_DEATHS`] failed, so that a job that brings its head down (memory exhausted, say)
/// cannot bring down every head in turn.
fn died_under(r: &mut JobRecord, died: &str) {
    r.head_deaths += 1;
    if r.head_deaths < MAX_HEAD_DEATHS {
        r.state = JobState::Queued;
        return;
    }
    r.state = JobState::Failed;
    r.finished_at = Some(Timestamp::now());
    r.error = Some(format!(
        "its head died {} times while running it (the last, {died}); not run again, so that a \
         job that brings its head down (memory exhausted, say) cannot bring down every head in \
         turn",
        r.head_deaths
    ));
}

/// Tells of a job that reached its final state, and frees its client's place in the limits.
fn publish_final(
    events: &broadcast::Sender<JobEvent>,
    record: &JobRecord,
    public_key: &[u8],
    gate: &Gate,
) {
    gate.finished(&record.submitted_by);
    let outcome = match record.state {
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        _ => "cancelled",
    };
    metrics::counter!(m::JOBS, "type" => record.work().to_owned(), "outcome" => outcome)
        .increment(1);
    let total = Timestamp::now().duration_since(record.submitted_at);
    metrics::histogram!(m::JOB_SECONDS).record(total.as_secs_f64());
    if let (Some(start), Some(end)) = (record.started_at, record.finished_at) {
        metrics::histogram!(m::EXECUTION_SECONDS).record(end.duration_since(start).as_secs_f64());
    }
    let _ = events.send(convert::snapshot(record, public_key));
}
