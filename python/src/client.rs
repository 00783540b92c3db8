//! `chimera.Client`: a gateway's client of a running engine over gRPC, on `chimera-client`. Calls
//! block on a runtime of the client's own with the GIL released; a refusal is raised as
//! `chimera.Refused` carrying the engine's reason (`RATE_LIMITED`, `BAD_SIGNATURE`…), a transport
//! failure as `ConnectionError`.

use std::sync::Mutex;

use chimera_client::json::{head_json, job_json};
use chimera_client::{JobCall, Tls, describe, job_request, reason_of};
use chimera_maml::SecretKey;
use chimera_proto::v1::engine_client::EngineClient;
use chimera_proto::v1::{
    CancelRequest, GetRequest, JobEvent, ListHeadsRequest, SubmitReply, SubmitRequest,
    WatchRequest, batch_reply, job_event,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyConnectionError, PyException, PyValueError};
use pyo3::prelude::*;
use tonic::Streaming;
use tonic::transport::Channel;

create_exception!(
    _native,
    Refused,
    PyException,
    "The engine refused a call: `reason` is its reason (RATE_LIMITED, BAD_SIGNATURE, NO_SUCH_JOB…), `message` what it said."
);

/// A client of one engine. Calls about a job (get, watch, cancel, receipt) prove with
/// `signing_key` that the job is the caller's, unless the client certificate that submitted it
/// (`cert`, `key`) does.
#[pyclass(frozen, module = "chimera._native")]
pub struct Client {
    runtime: tokio::runtime::Runtime,
    engine: EngineClient<Channel>,
    signing_key: Option<SecretKey>,
}

#[pymethods]
impl Client {
    /// PEMs are given as bytes; the Python side reads paths.
    #[new]
    #[pyo3(signature = (server, tls_ca=None, cert=None, key=None, signing_key=None))]
    fn new(
        py: Python<'_>,
        server: &str,
        tls_ca: Option<Vec<u8>>,
        cert: Option<Vec<u8>>,
        key: Option<Vec<u8>>,
        signing_key: Option<String>,
    ) -> PyResult<Self> {
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(PyValueError::new_err(
                    "cert and key come together: give both or neither",
                ));
            }
        };
        let tls = (tls_ca.is_some() || identity.is_some()).then_some(Tls {
            ca: tls_ca,
            identity,
        });
        let signing_key = signing_key
            .map(|pem| SecretKey::from_pem(&pem, std::path::Path::new("<signing_key>")))
            .transpose()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                PyConnectionError::new_err(format!("cannot start the client's runtime: {e}"))
            })?;
        let engine = py
            .detach(|| runtime.block_on(chimera_client::connect(server, tls.as_ref())))
            .map_err(|e| PyConnectionError::new_err(e.to_string()))?;
        Ok(Client {
            runtime,
            engine,
            signing_key,
        })
    }

    /// Submits a signed MAML document; the job as JSON (with `created`: false when the engine
    /// already had a job of that id and document).
    fn submit(&self, py: Python<'_>, document: Vec<u8>) -> PyResult<String> {
        let mut engine = self.engine.clone();
        Ok(accepted_json(
            self.call(py, engine.submit(SubmitRequest { document }))?,
        ))
    }

    /// Submits documents over one stream: for each, in order, the job as JSON or a `Refused`.
    fn submit_batch(&self, py: Python<'_>, documents: Vec<Vec<u8>>) -> PyResult<Vec<Py<PyAny>>> {
        let count = documents.len();
        let requests = documents
            .into_iter()
            .map(|document| SubmitRequest { document });
        let mut engine = self.engine.clone();
        let replies = py.detach(|| {
            self.runtime.block_on(async {
                let mut stream = engine
                    .submit_batch(tokio_stream::iter(requests))
                    .await?
                    .into_inner();
                let mut replies = Vec::with_capacity(count);
                while let Some(reply) = stream.message().await? {
                    replies.push(reply);
                }
                Ok::<_, tonic::Status>(replies)
            })
        });
        let mut outcomes: Vec<Option<Py<PyAny>>> = (0..count).map(|_| None).collect();
        for reply in replies.map_err(refused)? {
            let outcome = match reply.outcome {
                Some(batch_reply::Outcome::Accepted(accepted)) => accepted_json(accepted)
                    .into_pyobject(py)?
                    .into_any()
                    .unbind(),
                Some(batch_reply::Outcome::Refused(r)) => Refused::new_err((r.reason, r.message))
                    .into_value(py)
                    .into_any(),
                None => continue,
            };
            if let Some(slot) = outcomes.get_mut(reply.index as usize) {
                *slot = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                o.ok_or_else(|| {
                    PyConnectionError::new_err(format!("the engine did not answer document {i}"))
                })
            })
            .collect()
    }

    /// The job as JSON, its receipt checked.
    fn get(&self, py: Python<'_>, job_id: &str) -> PyResult<String> {
        let request = self.request(
            GetRequest {
                job_id: job_id.into(),
            },
            JobCall::Get,
            job_id,
        );
        let mut engine = self.engine.clone();
        Ok(job_json(&self.call(py, engine.get(request))?).to_string())
    }

    /// Cancels the job; the job as JSON.
    fn cancel(&self, py: Python<'_>, job_id: &str) -> PyResult<String> {
        let request = self.request(
            CancelRequest {
                job_id: job_id.into(),
            },
            JobCall::Cancel,
            job_id,
        );
        let mut engine = self.engine.clone();
        Ok(job_json(&self.call(py, engine.cancel(request))?).to_string())
    }

    /// The job's receipt as a MAML document signed by the engine.
    fn receipt(&self, py: Python<'_>, job_id: &str) -> PyResult<String> {
        let request = self.request(
            GetRequest {
                job_id: job_id.into(),
            },
            JobCall::Receipt,
            job_id,
        );
        let mut engine = self.engine.clone();
        Ok(self.call(py, engine.get_receipt_document(request))?.maml)
    }

    /// The heads as a JSON array.
    fn heads(&self, py: Python<'_>) -> PyResult<String> {
        let mut engine = self.engine.clone();
        let reply = py
            .detach(|| {
                self.runtime
                    .block_on(engine.list_heads(ListHeadsRequest {}))
            })
            .map_err(refused)?;
        let heads: Vec<_> = reply.into_inner().heads.iter().map(head_json).collect();
        Ok(serde_json::Value::from(heads).to_string())
    }

    /// The job's events until it ends, as an iterator of JSON objects.
    fn watch(slf: Bound<'_, Self>, job_id: &str) -> PyResult<Events> {
        let client = slf.get();
        let request = client.request(
            WatchRequest {
                job_id: job_id.into(),
            },
            JobCall::Watch,
            job_id,
        );
        let mut engine = client.engine.clone();
        let stream = client.call(slf.py(), engine.watch(request))?;
        Ok(Events {
            client: slf.unbind(),
            stream: Mutex::new(Some(stream)),
        })
    }
}

impl Client {
    /// One call on the client's runtime, with the GIL released.
    fn call<R: Send>(
        &self,
        py: Python<'_>,
        call: impl Future<Output = Result<tonic::Response<R>, tonic::Status>> + Send,
    ) -> PyResult<R> {
        py.detach(|| self.runtime.block_on(call))
            .map(tonic::Response::into_inner)
            .map_err(refused)
    }

    fn request<T>(&self, message: T, call: JobCall, job_id: &str) -> tonic::Request<T> {
        job_request(message, self.signing_key.as_ref(), call, job_id)
    }
}

/// A job's events, as `Client.watch` returns them.
#[pyclass(module = "chimera._native")]
pub struct Events {
    client: Py<Client>,
    stream: Mutex<Option<Streaming<JobEvent>>>,
}

#[pymethods]
impl Events {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let mut guard = self
            .stream
            .lock()
            .expect("events are read by one thread at a time");
        let Some(stream) = guard.as_mut() else {
            return Ok(None);
        };
        let client = self.client.get();
        let next = py
            .detach(|| client.runtime.block_on(stream.message()))
            .map_err(refused)?;
        match next {
            Some(event) => Ok(Some(event_json(&event).to_string())),
            None => {
                *guard = None;
                Ok(None)
            }
        }
    }
}

/// An accepted submission: the job as JSON, with `created`.
fn accepted_json(reply: SubmitReply) -> String {
    let mut json = job_json(&reply.job.unwrap_or_default());
    json["created"] = reply.created.into();
    json.to_string()
}

fn event_json(event: &JobEvent) -> serde_json::Value {
    let mut json = serde_json::json!({
        "job_id": event.job_id,
        "state": chimera_client::json::state_name(event.state),
        "head": event.head,
        "at": event.at,
    });
    match &event.detail {
        Some(job_event::Detail::ProgressJson(progress)) => {
            json["progress"] = serde_json::from_str(progress).unwrap_or_default();
        }
        Some(job_event::Detail::Finished(job)) => json["finished"] = job_json(job),
        Some(job_event::Detail::Note(note)) => json["note"] = note.as_str().into(),
        None => {}
    }
    json
}

/// A status as Python's exception: `Refused` when the engine gave a reason, `ConnectionError`
/// for a transport failure.
fn refused(status: tonic::Status) -> PyErr {
    match reason_of(&status) {
        Some(reason) => Refused::new_err((reason, status.message().to_string())),
        None => PyConnectionError::new_err(describe(&status)),
    }
}
