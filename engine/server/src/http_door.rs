//! The HTTP door beside gRPC, for the curl users of the CHIMERA documents: `POST /execute` and
//! `POST /maml/execute` take a signed MAML document (`text/markdown`) and answer
//! `{"status": …, "result": …}`; `GET /jobs/ID` answers the same of a job to its owner
//! (`owners`: a request proof in the headers, or the client certificate); `GET /health`;
//! `GET /` the engine's status. A submission goes
//! through the same admission, limits, journal and audit log as gRPC's `Submit`. With TLS
//! configured the door speaks it too, with the gRPC port's certificate, and when client
//! certificates are required every request but `/health` must come with one that names a trusted
//! key, as every gRPC call must.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use base64::Engine as _;
use chimera_journal::JobRecord;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tonic::{Code, Status};
use tower::ServiceExt;

use crate::client_certificates::{self, Client};
use crate::connections::BoundedListener;
use crate::convert;
use crate::owners::Asker;
use crate::request_budget::Hold;
use crate::service::EngineService;
use crate::tls::{Tls, TlsListener};
use chimera_client::JobCall;

/// How long `POST /execute` waits for the job to end unless `?wait=SECONDS` says otherwise.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);
/// The longest wait a request may ask for.
const MAX_WAIT: Duration = Duration::from_secs(600);

#[derive(Clone)]
struct Door {
    service: EngineService,
    /// Mutual TLS: a request's client certificate must name a trusted key.
    clients_verified: bool,
}

fn router(door: Door) -> axum::Router {
    axum::Router::new()
        .route("/execute", post(execute))
        .route("/maml/execute", post(execute))
        .route("/jobs/{id}", get(job))
        .route("/", get(status))
        .route_layer(middleware::from_fn_with_state(door.clone(), trusted_client))
        .route("/health", get(health))
        .fallback(|method, uri| unserved(StatusCode::NOT_FOUND, "NOT_FOUND", method, uri))
        .method_not_allowed_fallback(|method, uri| {
            unserved(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                method,
                uri,
            )
        })
        .with_state(door)
}

/// The answer to a request the door does not serve (no such path, or not with that method),
/// saying what it does serve.
async fn unserved(http: StatusCode, reason: &str, method: Method, uri: Uri) -> Response {
    answer(
        http,
        Some(reason),
        &format!(
            "no {method} {}: this door serves POST /execute, POST /maml/execute, GET /jobs/ID, \
             GET /health and GET /",
            uri.path()
        ),
    )
}

/// The first certificate the client sent in its TLS handshake (DER), if any: shared by the
/// connection's requests, each of which gets a handle to it.
#[derive(Clone)]
struct ClientCertificate(Option<Arc<[u8]>>);

/// The address the request came from.
#[derive(Clone, Copy)]
struct Source(std::net::IpAddr);

/// With client certificates required, the client the certificate names, or the refusal.
async fn trusted_client(
    State(door): State<Door>,
    Extension(certificate): Extension<ClientCertificate>,
    mut request: Request,
    next: Next,
) -> Response {
    if door.clients_verified {
        match client_certificates::trusted_client(&door.service.trust, certificate.0.as_deref()) {
            Ok(client) => {
                request.extensions_mut().insert(client);
            }
            Err(status) => return refused(&status),
        }
    }
    next.run(request).await
}

#[derive(serde::Deserialize)]
struct WaitQuery {
    /// Seconds to wait for the job to end; 0 answers at once. Taken as text, so that a value
    /// that is not a number is refused as the door's other refusals are.
    wait: Option<String>,
}

/// How long to wait for a job: `?wait=SECONDS` (decimal digits, at most [`MAX_WAIT`]), else
/// `default`; or the reason and message of a `400` for a wait that is not that.
fn wait_of(
    query: Result<Query<WaitQuery>, QueryRejection>,
    default: Duration,
) -> Result<Duration, (&'static str, String)> {
    let text = match query {
        Ok(Query(WaitQuery { wait: None })) => return Ok(default),
        Ok(Query(WaitQuery { wait: Some(text) })) => text,
        Err(rejection) => {
            let said = format!("{}: this door takes ?wait=SECONDS", rejection.body_text());
            return Err(("BAD_QUERY", said));
        }
    };
    let plain = !text.is_empty() && text.chars().all(|c| c.is_ascii_digit() || c == '.');
    match text.parse::<f64>().map(Duration::try_from_secs_f64) {
        Ok(Ok(wait)) if plain && wait <= MAX_WAIT => Ok(wait),
        _ => Err((
            "BAD_WAIT",
            format!(
                "?wait={text}: give seconds from 0 to {}, in decimal digits",
                MAX_WAIT.as_secs()
            ),
        )),
    }
}

async fn execute(
    State(Door { service, .. }): State<Door>,
    client: Option<Extension<Client>>,
    Extension(Source(source)): Extension<Source>,
    query: Result<Query<WaitQuery>, QueryRejection>,
    body: Body,
) -> Response {
    let wait = match wait_of(query, DEFAULT_WAIT) {
        Ok(wait) => wait,
        Err((reason, said)) => return answer(StatusCode::BAD_REQUEST, Some(reason), &said),
    };
    let document = match read_body(&service, body).await {
        Ok(document) => document,
        Err(refusal) => return refusal,
    };
    let client = client.map(|Extension(Client(name))| name);
    let reply = match service
        .submit_one(client.as_deref(), Some(source), document)
        .await
    {
        Ok(reply) => reply,
        Err(status) => return refused(&status),
    };
    let id = reply.job.map(|job| job.id).unwrap_or_default();
    answer_when_finished(&service, &id, wait).await
}

/// `GET /jobs/ID`: the job as `POST /execute` answers it, to its owner, at once or once it ends
/// within `?wait=SECONDS`.
async fn job(
    State(Door { service, .. }): State<Door>,
    client: Option<Extension<Client>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> Response {
    let wait = match wait_of(query, Duration::ZERO) {
        Ok(wait) => wait,
        Err((reason, said)) => return answer(StatusCode::BAD_REQUEST, Some(reason), &said),
    };
    let client = client.map(|Extension(Client(name))| name);
    let owned = Asker::of_http(&headers, client)
        .and_then(|asker| service.owned_record(&asker, JobCall::Get, &id));
    if let Err(status) = owned {
        return refused(&status);
    }
    answer_when_finished(&service, &id, wait).await
}

/// `200` with the job once it has ended, `202` with where it stands when `wait` is over first.
async fn answer_when_finished(service: &EngineService, id: &str, wait: Duration) -> Response {
    match finished_within(service, id, wait).await {
        Ok(record) if record.state.is_final() => (StatusCode::OK, Json(outcome(service, &record))),
        Ok(record) => (StatusCode::ACCEPTED, Json(outcome(service, &record))),
        Err(status) => return refused(&status),
    }
    .into_response()
}

/// The request's body, if it is no larger than the engine takes and arrives in time: a client
/// that sends it slowly must not hold its connection (and its place at the door) for ever.
async fn read_body(service: &EngineService, mut body: Body) -> Result<Vec<u8>, Response> {
    let limits = service.gate.limits();
    let (limit, timeout) = (limits.max_request_bytes, limits.read_timeout);
    // Held against the budget of requests still arriving, as gRPC's messages are, until read.
    let mut held = Hold::new(Arc::clone(service.gate.arriving()));
    let read = async {
        let mut document = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| {
                answer(
                    StatusCode::BAD_REQUEST,
                    Some("BAD_BODY"),
                    &format!("the request's body could not be read: {error}"),
                )
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if document.len() + data.len() > limit {
                return Err(answer(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Some("TOO_LARGE"),
                    &format!("the request is larger than the {limit} bytes this engine takes"),
                ));
            }
            held.take(data.len()).map_err(|busy| refused(&busy))?;
            document.extend_from_slice(&data);
        }
        Ok(document)
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(read) => read,
        Err(_) => Err(answer(
            StatusCode::REQUEST_TIMEOUT,
            Some("BODY_TIMEOUT"),
            &format!(
                "the request's body did not arrive within {} s",
                timeout.as_secs_f64()
            ),
        )),
    }
}

/// The job as it stands once it has ended, or when `wait` is over.
async fn finished_within(
    service: &EngineService,
    id: &str,
    wait: Duration,
) -> Result<JobRecord, Status> {
    // Subscribed before reading the state, so that no event falls between the two.
    let mut events = service.events.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let record = service.record(id)?;
        if record.state.is_final() || tokio::time::Instant::now() >= deadline {
            return Ok(record);
        }
        let next_event_of_job = async {
            loop {
                match events.recv().await {
                    Ok(event) if event.job_id == id => return true,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => return true,
                    Err(RecvError::Closed) => return false,
                }
            }
        };
        // A stopping engine answers at once with where the job stands (202 if unfinished)
        // rather than hold its stop up for the rest of the wait.
        let waited = tokio::select! {
            waited = tokio::time::timeout_at(deadline, next_event_of_job) => waited,
            () = service.stopped() => return service.record(id),
        };
        match waited {
            Ok(true) | Err(_) => continue,
            Ok(false) => return service.record(id),
        }
    }
}

/// `{"status", "job_id", "result", "error", "receipt"}`: the result as the JSON it is.
fn outcome(service: &EngineService, record: &JobRecord) -> Value {
    let result = record
        .result
        .as_deref()
        .map(|r| serde_json::from_str(r).unwrap_or_else(|_| Value::from(r)));
    let job = convert::job(record, service.key.public_key());
    let base64 = base64::engine::general_purpose::STANDARD;
    let receipt = job.receipt.map(|r| {
        json!({
            "statement": r.statement,
            "signature": base64.encode(&r.signature),
            "engine_key_id": r.engine_key_id,
            "merkle_path": r.merkle_path,
            "batch_statement": r.batch_statement,
        })
    });
    json!({
        "status": chimera_client::json::state_name(convert::state(record.state) as i32),
        "job_id": record.id,
        "head": record.head,
        "result": result,
        "error": record.error,
        "receipt": receipt,
        "pruned_at": record.pruned_at,
    })
}

/// A refusal: the HTTP status nearest its gRPC code, and the same reason and message.
fn refused(status: &Status) -> Response {
    let http = match status.code() {
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        // A number past this engine's limits: no retry makes it pass.
        Code::OutOfRange => StatusCode::UNPROCESSABLE_ENTITY,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    answer(
        http,
        chimera_client::reason_of(status).as_deref(),
        status.message(),
    )
}

/// `{"status": "refused", "reason", "message"}` with the HTTP status `http`.
fn answer(http: StatusCode, reason: Option<&str>, message: &str) -> Response {
    let body = json!({
        "status": "refused",
        "reason": reason,
        "message": message,
    });
    (http, Json(body)).into_response()
}

async fn health() -> Json<Value> {
    Json(json!({"status": "serving"}))
}

async fn status(State(Door { service, .. }): State<Door>) -> Json<Value> {
    let heads: Vec<Value> = service
        .heads()
        .await
        .heads
        .iter()
        .map(chimera_client::json::head_json)
        .collect();
    Json(json!({
        "engine": "chimera",
        "version": env!("CARGO_PKG_VERSION"),
        "engine_key_id": service.key.key_id(),
        "heads": heads,
    }))
}

/// Serves the door on `listener` until `stop` resolves: plaintext, or with `tls` TLS only. Holds
/// at most `max_connections` at once, `max_connections_per_source` from one source
/// (`connections`); a client must send each request's headers
/// within `read_timeout` of the door waiting for them (a kept-alive connection idle that long is
/// closed), and its body within `read_timeout` more.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: EngineService,
    tls: Option<Tls>,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let limits = service.gate.limits();
    let read_timeout = limits.read_timeout;
    let listener = BoundedListener::new(
        listener,
        limits.max_connections,
        limits.max_connections_per_source,
        read_timeout,
        "http",
    );
    let door = router(Door {
        service,
        clients_verified: tls.as_ref().is_some_and(|tls| tls.clients_verified),
    });
    let mut connections = match tls {
        None => Connections::Plain(listener),
        Some(tls) => Connections::Tls(TlsListener::new(listener, tls.http, read_timeout)),
    };
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (io, certificate, source) = tokio::select! {
            connection = connections.accept() => connection,
            () = &mut stop => break,
        };
        let door = door.clone();
        let service = service_fn(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(certificate.clone());
            request.extensions_mut().insert(source);
            door.clone().oneshot(request)
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(read_timeout)
            .serve_connection(TokioIo::new(io), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("an HTTP door connection ended: {error}");
            }
        });
    }
    drop(connections);
    if tokio::time::timeout(crate::STOP_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "HTTP door connections still open {:?} after the stop began; they are dropped",
            crate::STOP_GRACE
        );
    }
}

/// Where the door's connections come from.
enum Connections {
    Plain(BoundedListener),
    Tls(TlsListener),
}

/// A connection of either kind.
trait Connection: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Connection for T {}

impl Connections {
    async fn accept(&mut self) -> (Box<dyn Connection>, ClientCertificate, Source) {
        match self {
            Self::Plain(listener) => {
                let tcp = listener.accept().await;
                let source = Source(tcp.peer().ip());
                (Box::new(tcp), ClientCertificate(None), source)
            }
            Self::Tls(listener) => {
                let tls = listener.accept().await;
                let (tcp, session) = tls.get_ref();
                let first = session.peer_certificates().and_then(|c| c.first());
                let certificate = ClientCertificate(first.map(|c| Arc::from(c.as_ref())));
                let source = Source(tcp.peer().ip());
                (Box::new(tls), certificate, source)
            }
        }
    }
}
