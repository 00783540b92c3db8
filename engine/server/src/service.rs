//! The gRPC service `chimera.v1.Engine`.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use chimera_audit::Event;
use chimera_journal::{JobRecord, Journal};
use chimera_maml::Policy;
use chimera_proto::v1::engine_server::Engine;
use chimera_proto::v1::{
    BatchReply, CancelRequest, GetRequest, Head, HeadStatus, Job, JobEvent, ListHeadsReply,
    ListHeadsRequest, ReceiptDocument, Refusal, RotateKeysRequest, SubmitReply, SubmitRequest,
    WatchRequest, batch_reply,
};
use chimera_supervisor::{HeadStatus as Status_, Supervisor};
use futures_util::{Stream, StreamExt};
use jiff::Timestamp;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tonic::{Request, Response, Status, Streaming};

use crate::admission::Admission;
use crate::client_certificates::Client;
use crate::convert;
use crate::dispatch::Request as Dispatch;
use crate::limits::Gate;
use crate::metrics_names as m;
use crate::owners::{Asker, no_such_job};
use crate::receipt::{self, EngineKey};
use crate::refusal::Reason;
use crate::trust_file::TrustFile;
use chimera_client::JobCall;

/// How many submissions of one `SubmitBatch` stream are checked and committed at once.
pub const BATCH_IN_FLIGHT: usize = 64;

/// The service: a handle on the engine's shared state.
#[derive(Clone)]
pub struct EngineService(pub(crate) Arc<Core>);

impl std::ops::Deref for EngineService {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.0
    }
}

pub struct Core {
    pub(crate) journal: Journal,
    pub(crate) trust: Arc<TrustFile>,
    pub(crate) policy: Policy,
    pub(crate) dispatch: mpsc::UnboundedSender<Dispatch>,
    pub(crate) events: broadcast::Sender<JobEvent>,
    pub(crate) supervisor: Arc<Supervisor>,
    pub(crate) key: Arc<EngineKey>,
    pub(crate) audit: Arc<chimera_audit::Recorder>,
    pub(crate) gate: Arc<Gate>,
    /// Set when the engine begins to stop: open streams and the HTTP door's waits end then,
    /// rather than hold the stop up for as long as their jobs run.
    pub(crate) stopping: watch::Sender<bool>,
}

impl Core {
    /// Admits and journals one document (`admission`); a refusal goes to the audit log with its
    /// reason. `client` is the name a client certificate gave, if one did; else the signing
    /// key's. `source`: the address it came from, if known.
    pub(crate) async fn submit_one(
        &self,
        client: Option<&str>,
        source: Option<IpAddr>,
        document: Vec<u8>,
    ) -> Result<SubmitReply, Status> {
        match self.admit(client, source, &document).await {
            Ok(Admission { record, created }) => Ok(SubmitReply {
                job: Some(convert::job(&record, self.key.public_key())),
                created,
            }),
            Err(refused) => {
                let message = refused.to_string();
                self.audit
                    .record(Event::refused(refused.reason(), &message, &document));
                Err(refused.into())
            }
        }
    }

    pub(crate) fn record(&self, id: &str) -> Result<JobRecord, Status> {
        self.stored(id)?.ok_or_else(|| no_such_job(id))
    }

    fn stored(&self, id: &str) -> Result<Option<JobRecord>, Status> {
        self.journal
            .get(id)
            .map_err(|e| Reason::JournalUnreadable.status(e.to_string()))
    }

    /// Job `id`, if `asker` may see it (`owners`); else `NO_SUCH_JOB`, as if it did not exist.
    pub(crate) fn owned_record(
        &self,
        asker: &Asker,
        call: JobCall,
        id: &str,
    ) -> Result<JobRecord, Status> {
        let trust = self.trust.current()?;
        let record = self.stored(id)?;
        let may_see = asker.may_see(record.as_ref(), &trust, call, id, Timestamp::now())?;
        record.filter(|_| may_see).ok_or_else(|| no_such_job(id))
    }

    /// Resolves once the engine has begun to stop (at once if it has).
    pub(crate) fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopping = self.stopping.subscribe();
        async move {
            // An error means the engine is gone, which is stopped too.
            let _ = stopping.wait_for(|stopping| *stopping).await;
        }
    }

    /// `stream` until the engine begins to stop; then `ENGINE_STOPPING`, saying that `what`
    /// goes on when the engine is started again, and the end.
    fn until_stopping<T: Send + 'static>(
        &self,
        stream: impl Stream<Item = Result<T, Status>> + Send + 'static,
        what: String,
    ) -> BoxStream<T> {
        let state = Some((Box::pin(stream), Box::pin(self.stopped())));
        Box::pin(futures_util::stream::unfold(state, move |state| {
            let what = what.clone();
            async move {
                let (mut stream, mut stopped) = state?;
                tokio::select! {
                    item = stream.next() => item.map(|item| (item, Some((stream, stopped)))),
                    () = &mut stopped => Some((Err(engine_stopping(&what)), None)),
                }
            }
        }))
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The engine is stopping; `what` is in its journal and goes on when it is started again.
pub(crate) fn engine_stopping(what: &str) -> Status {
    Reason::EngineStopping.status(format!(
        "the engine is stopping; {what} is kept in its journal and goes on when the engine is \
             started again: ask then"
    ))
}

#[tonic::async_trait]
impl Engine for EngineService {
    async fn submit(
        &self,
        request: Request<SubmitRequest>,
    ) -> Result<Response<SubmitReply>, Status> {
        metrics::counter!(m::REQUESTS, "method" => "Submit").increment(1);
        let client = request.extensions().get::<Client>().map(|c| c.0.clone());
        let source = request.remote_addr().map(|a| a.ip());
        self.submit_one(client.as_deref(), source, request.into_inner().document)
            .await
            .map(Response::new)
    }

    type SubmitBatchStream = BoxStream<BatchReply>;

    async fn submit_batch(
        &self,
        request: Request<Streaming<SubmitRequest>>,
    ) -> Result<Response<Self::SubmitBatchStream>, Status> {
        metrics::counter!(m::REQUESTS, "method" => "SubmitBatch").increment(1);
        let source = request.remote_addr().map(|a| a.ip());
        let stream = self.gate.stream(source)?;
        let client = request.extensions().get::<Client>().map(|c| c.0.clone());
        let service = Arc::clone(&self.0);
        // At most BATCH_IN_FLIGHT submissions are read ahead of the replies the client has taken.
        let replies = request
            .into_inner()
            .enumerate()
            .map(move |(index, request)| {
                let service = Arc::clone(&service);
                let client = client.clone();
                async move {
                    let request = request?;
                    let outcome = match service
                        .submit_one(client.as_deref(), source, request.document)
                        .await
                    {
                        Ok(reply) => batch_reply::Outcome::Accepted(reply),
                        Err(status) => batch_reply::Outcome::Refused(Refusal {
                            reason: chimera_client::reason_of(&status).unwrap_or_default(),
                            message: status.message().to_owned(),
                            code: status.code() as i32,
                        }),
                    };
                    Ok(BatchReply {
                        index: index as u64,
                        outcome: Some(outcome),
                    })
                }
            })
            .buffered(BATCH_IN_FLIGHT)
            // The stream's place among those open is held until it ends.
            .inspect(move |_| {
                let _ = &stream;
            });
        let what = "every job this stream had accepted".to_owned();
        Ok(Response::new(self.until_stopping(replies, what)))
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<Job>, Status> {
        metrics::counter!(m::REQUESTS, "method" => "Get").increment(1);
        let asker = Asker::of_call(&request)?;
        let record = self.owned_record(&asker, JobCall::Get, &request.into_inner().job_id)?;
        Ok(Response::new(convert::job(&record, self.key.public_key())))
    }

    async fn get_receipt_document(
        &self,
        request: Request<GetRequest>,
    ) -> Result<Response<ReceiptDocument>, Status> {
        metrics::counter!(m::REQUESTS, "method" => "GetReceiptDocument").increment(1);
        let asker = Asker::of_call(&request)?;
        let id = request.into_inner().job_id;
        let record = self.owned_record(&asker, JobCall::Receipt, &id)?;
        if !record.state.is_final() {
            return Err(Reason::NotFinished.status(format!(
                "job {} has not finished; its receipt exists once it has (Watch it)",
                record.id
            )));
        }
        if let Some(pruned_at) = record.pruned_at {
            return Err(Reason::Pruned.status(format!(
                "job {} finished at {}; its document, result and receipt were removed at \
                     {pruned_at}, as the engine keeps finished jobs for --keep-finished-days",
                record.id,
                record
                    .finished_at
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            )));
        }
        let key = Arc::clone(&self.key);
        // Signing takes about a millisecond: off the async workers.
        let rendered = tokio::task::spawn_blocking(move || receipt::render_maml(&record, &key))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| {
                Reason::ReceiptUnrenderable
                    .status(format!("the job's stored document no longer parses: {e}"))
            })?;
        Ok(Response::new(ReceiptDocument { maml: rendered }))
    }

    type WatchStream = BoxStream<JobEvent>;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        metrics::counter!(m::REQUESTS, "method" => "Watch").increment(1);
        let asker = Asker::of_call(&request)?;
        let stream = self.gate.stream(request.remote_addr().map(|a| a.ip()))?;
        let id = request.into_inner().job_id;
        // Subscribed before reading the state, so that no event falls between the two.
        let mut events = self.events.subscribe();
        let record = self.owned_record(&asker, JobCall::Watch, &id)?;
        let what = format!("job {id}");
        let (tx, rx) = mpsc::channel(64);
        let service = Arc::clone(&self.0);
        tokio::spawn(async move {
            // The stream's place among those open is held until it ends.
            let _stream = stream;
            let first = convert::snapshot(&record, service.key.public_key());
            let done = record.state.is_final();
            if tx.send(Ok(first)).await.is_err() || done {
                return;
            }
            loop {
                // A client that went away frees its stream at once, not at the job's next event.
                let received = tokio::select! {
                    received = events.recv() => received,
                    () = tx.closed() => return,
                };
                let event = match received {
                    Ok(event) if event.job_id == id => event,
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => match service.record(&id) {
                        // Fell behind: say where the job stands now and go on from there.
                        Ok(record) => convert::snapshot(&record, service.key.public_key()),
                        Err(status) => {
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
                    },
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let done = matches!(
                    event.detail,
                    Some(chimera_proto::v1::job_event::Detail::Finished(_))
                );
                if tx.send(Ok(event)).await.is_err() || done {
                    return;
                }
            }
        });
        let events = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(self.until_stopping(events, what)))
    }

    async fn cancel(&self, request: Request<CancelRequest>) -> Result<Response<Job>, Status> {
        metrics::counter!(m::REQUESTS, "method" => "Cancel").increment(1);
        let asker = Asker::of_call(&request)?;
        let id = request.into_inner().job_id;
        self.owned_record(&asker, JobCall::Cancel, &id)?;
        let (reply, answer) = oneshot::channel();
        let stopped = || Reason::EngineStopping.status("the engine is stopping");
        self.dispatch
            .send(Dispatch::Cancel(id.clone(), reply))
            .map_err(|_| stopped())?;
        let record = answer
            .await
            .map_err(|_| stopped())?
            .map_err(|e| Reason::JournalUnavailable.status(e.to_string()))?;
        match record {
            Some(record) => Ok(Response::new(convert::job(&record, self.key.public_key()))),
            None => Err(no_such_job(&id)),
        }
    }

    async fn rotate_keys(
        &self,
        request: Request<RotateKeysRequest>,
    ) -> Result<Response<ListHeadsReply>, Status> {
        metrics::counter!(m::REQUESTS, "method" => "RotateKeys").increment(1);
        let by = match request.remote_addr() {
            Some(addr) => format!("RotateKeys from {addr}"),
            None => "RotateKeys".to_owned(),
        };
        self.audit.record(Event::RotationRequested { by });
        // The heads as they are before the rotation, which can be done before a reply read after.
        let before = self.heads().await;
        self.supervisor.rotate_keys();
        Ok(Response::new(before))
    }

    async fn list_heads(
        &self,
        _: Request<ListHeadsRequest>,
    ) -> Result<Response<ListHeadsReply>, Status> {
        metrics::counter!(m::REQUESTS, "method" => "ListHeads").increment(1);
        Ok(Response::new(self.heads().await))
    }
}

impl EngineService {
    /// Every head as the supervisor sees it, with what the dispatcher has it running.
    pub(crate) async fn heads(&self) -> ListHeadsReply {
        let (reply, answer) = oneshot::channel();
        let _ = self.dispatch.send(Dispatch::Loads(reply));
        let loads = answer.await.unwrap_or_default();
        let heads = self
            .supervisor
            .heads()
            .into_iter()
            .map(|h| {
                let load = loads.get(&h.id).cloned().unwrap_or_default();
                Head {
                    status: match h.status {
                        Status_::Starting => HeadStatus::Starting,
                        Status_::Up => HeadStatus::Up,
                        Status_::Down => HeadStatus::Down,
                    } as i32,
                    id: h.id,
                    role: h.role.name().to_owned(),
                    pid: h.pid.unwrap_or(0),
                    backend: h.backend,
                    restarts: h.restarts,
                    key_epoch: h.key_epoch.unwrap_or(0),
                    key_shares: h.key_shares,
                    job_id: load.running.unwrap_or_default(),
                    jobs_done: load.jobs_done,
                }
            })
            .collect();
        ListHeadsReply { heads }
    }
}
