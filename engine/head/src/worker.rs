//! The head's side: connect to the supervisor, say hello, send heartbeats, run the jobs it is
//! sent one at a time through an [`Executor`], and report their progress and outcome. The
//! supervisor's key orders go to the head's [`HeadKeys`].
//!
//! An executor that panics fails its job, saying so, and ends the head (its state may be half
//! changed): [`serve`] returns [`WorkerError::Panicked`] and the supervisor starts a new head. A
//! panic never ends only the executor's thread, which would leave a head that says it is alive
//! and a job that runs for ever.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use chimera_job::{CheckedJob, Progress};

use crate::head_keys::{HeadKeys, Sender};
use chimera_supervisor::protocol::{FromHead, Outcome, StatevectorWork, ToHead, encode};

/// How often a head says it is alive; the supervisor's deadline is several of these.
pub const HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// How long a job waits for its head to have a key (a rebuilt head is restoring the
/// dead head's) before it runs without one, and fails if it must seal anything.
const KEYED_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot reach the supervisor at {socket}: {error}")]
    Connect {
        socket: String,
        error: std::io::Error,
    },
    #[error("the connection to the supervisor failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the supervisor sent a line this head does not understand: {0}")]
    Protocol(serde_json::Error),
    #[error("the head's executor panicked running job {job_id}: {message}")]
    Panicked { job_id: String, message: String },
}

/// How a job ended on a head, and the work it took.
#[derive(Debug, Clone, PartialEq)]
pub struct JobReport {
    pub outcome: Outcome,
    pub work: StatevectorWork,
}

/// What a head computes with: the seam between the engine and the quantum and AI heads.
pub trait Executor: Send + 'static {
    /// What it computes on, in words ("cpu (16 threads)", a GPU's name).
    fn backend(&self) -> String;
    /// Runs one job to its end, calling `progress` along the way and stopping early (with
    /// [`Outcome::Cancelled`]) once `cancelled` is set.
    fn run(
        &mut self,
        job: &CheckedJob,
        progress: &mut dyn FnMut(Progress),
        cancelled: &AtomicBool,
    ) -> JobReport;
}

/// Serves as head `head_id` until the supervisor closes the connection. `keys` is the head's
/// keyring (the executor may hold a clone of it to seal its state).
pub fn serve(
    head_id: &str,
    socket: &Path,
    keys: HeadKeys,
    mut executor: impl Executor,
) -> Result<(), WorkerError> {
    let stream = UnixStream::connect(socket).map_err(|error| WorkerError::Connect {
        socket: socket.display().to_string(),
        error,
    })?;
    let writer = Arc::new(Mutex::new(stream.try_clone()?));
    let send = {
        let writer = Arc::clone(&writer);
        move |message: &FromHead| -> std::io::Result<()> {
            writer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_all(&encode(message))
        }
    };
    send(&FromHead::Hello {
        head_id: head_id.to_owned(),
        pid: std::process::id(),
        backend: executor.backend(),
        mailbox: keys.mailbox_address(),
    })?;
    let key_send: Arc<Sender> = Arc::new(send.clone());

    let heartbeat = send.clone();
    std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || {
            while heartbeat(&FromHead::Heartbeat).is_ok() {
                std::thread::sleep(HEARTBEAT_INTERVAL);
            }
        })?;

    let cancels: Arc<Mutex<HashMap<String, Arc<AtomicBool>>>> = Arc::default();
    let (orders, queue) = mpsc::channel::<(Box<CheckedJob>, Arc<AtomicBool>)>();
    let report = send.clone();
    let panicked: Arc<Mutex<Option<WorkerError>>> = Arc::default();
    // Shut down to end the head when the executor panics: the reader below then sees the end.
    let connection = stream.try_clone()?;
    std::thread::Builder::new().name("executor".into()).spawn({
        let cancels = Arc::clone(&cancels);
        let keys = keys.clone();
        let panicked = Arc::clone(&panicked);
        move || {
            for (job, cancelled) in queue {
                keys.wait_keyed(KEYED_WAIT);
                let job_id = job.id.clone();
                let mut progress = |progress: Progress| {
                    let _ = report(&FromHead::Progress {
                        job_id: job_id.clone(),
                        progress: progress.to_value(),
                    });
                };
                let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    executor.run(&job, &mut progress, &cancelled)
                }));
                cancels
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&job_id);
                let (JobReport { outcome, work }, panic) = match ran {
                    Ok(report) => (report, None),
                    Err(payload) => panic_report(&job_id, payload.as_ref()),
                };
                let finished = FromHead::Finished {
                    job_id,
                    outcome,
                    work,
                };
                if report(&finished).is_err() || panic.is_some() {
                    *panicked.lock().unwrap_or_else(|p| p.into_inner()) = panic;
                    let _ = connection.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
    })?;

    let mut orders_in = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        // A line that ends without its newline was cut short: the supervisor stopped as it
        // wrote (a replica of a peer's state can be large), which ends this head as EOF does.
        // So does a reset: a supervisor that stops with heartbeats still unread resets the
        // connection instead of closing it.
        let read = match orders_in.read_line(&mut line) {
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => break,
            read => read?,
        };
        if read == 0 || !line.ends_with('\n') {
            break;
        }
        match serde_json::from_str(&line).map_err(WorkerError::Protocol)? {
            ToHead::Run { job } => {
                let cancelled = Arc::new(AtomicBool::new(false));
                cancels
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(job.id.clone(), Arc::clone(&cancelled));
                if orders.send((job, cancelled)).is_err() {
                    break;
                }
            }
            ToHead::Cancel { job_id } => {
                if let Some(flag) = cancels
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&job_id)
                {
                    flag.store(true, Ordering::Relaxed);
                }
            }
            key_order => keys.handle(key_order, &key_send)?,
        }
    }
    match panicked.lock().unwrap_or_else(|p| p.into_inner()).take() {
        Some(panic) => Err(panic),
        None => Ok(()),
    }
}

/// The report of a job whose executor panicked, and the error that ends the head.
fn panic_report(
    job_id: &str,
    payload: &(dyn std::any::Any + Send),
) -> (JobReport, Option<WorkerError>) {
    let message = payload
        .downcast_ref::<&str>()
        .map(|m| (*m).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic that says nothing".to_owned());
    let report = JobReport {
        outcome: Outcome::Failed(format!(
            "the head panicked running it ({message}): a fault in the engine, not in the job's \
             document; the head was replaced, and the engine's log has the panic's place"
        )),
        work: StatevectorWork::default(),
    };
    let panic = WorkerError::Panicked {
        job_id: job_id.to_owned(),
        message,
    };
    (report, Some(panic))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// An executor that panics on every job, as one did on `shots: 9223372036854775807` (issue
    /// 34). Most tests send it none.
    struct Panics;

    impl Executor for Panics {
        fn backend(&self) -> String {
            "test".into()
        }

        fn run(
            &mut self,
            _: &CheckedJob,
            _: &mut dyn FnMut(Progress),
            _: &AtomicBool,
        ) -> JobReport {
            panic!("capacity overflow")
        }
    }

    /// Serves a head whose supervisor, once it has the head's hello, is `supervise`: how
    /// serving ended, and what `supervise` returned.
    fn head_served<T: Send + 'static>(
        supervise: impl FnOnce(UnixStream) -> T + Send + 'static,
    ) -> (Result<(), WorkerError>, T) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("head.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let supervisor = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut hello = String::new();
            BufReader::new(&stream).read_line(&mut hello).unwrap();
            supervise(stream)
        });
        let served = serve("q0", &socket, HeadKeys::new("q0", dir.path()), Panics);
        (served, supervisor.join().unwrap())
    }

    /// A head whose supervisor waits `linger` after its hello, sends `sent` and closes the
    /// connection. A linger longer than a heartbeat leaves heartbeats unread, so the close is a
    /// reset.
    fn closed_after(sent: &'static [u8], linger: Duration) -> Result<(), WorkerError> {
        head_served(move |mut stream| {
            std::thread::sleep(linger);
            stream.write_all(sent).unwrap();
        })
        .0
    }

    #[test]
    fn an_executor_that_panics_fails_its_job_and_ends_the_head() {
        let (served, finished) = head_served(|mut stream| {
            let keys = ToHead::Keys {
                restore_epoch: None,
                restore_shares: 0,
                peers: Vec::new(),
            };
            let job = CheckedJob {
                id: "urn:uuid:poison".into(),
                signed: chimera_job::Signed {
                    digest: String::new(),
                    signer: "test".into(),
                },
                role: chimera_job::Role::Ai,
                work: Default::default(),
                requires_cuda: false,
                settings: None,
                blocks: Vec::new(),
                output_schema: None,
            };
            let run = ToHead::Run { job: Box::new(job) };
            stream.write_all(&encode(&keys)).unwrap();
            stream.write_all(&encode(&run)).unwrap();
            // Every line up to the end of the connection, which the head closes.
            let lines = BufReader::new(stream).lines().map_while(Result::ok);
            lines
                .filter_map(|line| match serde_json::from_str(&line) {
                    Ok(FromHead::Finished { outcome, .. }) => Some(outcome),
                    _ => None,
                })
                .last()
        });
        assert!(
            matches!(&served, Err(WorkerError::Panicked { job_id, message })
                if job_id == "urn:uuid:poison" && message == "capacity overflow"),
            "{served:?}"
        );
        let Some(Outcome::Failed(said)) = finished else {
            panic!("the job was not failed: {finished:?}");
        };
        assert!(
            said.contains("panicked") && said.contains("capacity overflow"),
            "{said}"
        );
    }

    #[test]
    fn a_supervisor_stopping_mid_line_or_with_heartbeats_unread_ends_the_head_as_eof_does() {
        let cut_line: &[u8] = b"{\"cancel\":{\"job_id\":\"urn:uuid:1\"";
        let unread_heartbeats = HEARTBEAT_INTERVAL * 2;
        for linger in [Duration::ZERO, unread_heartbeats] {
            let stopped = closed_after(b"", linger);
            assert!(stopped.is_ok(), "{linger:?}: {stopped:?}");
            let cut = closed_after(cut_line, linger);
            assert!(cut.is_ok(), "{linger:?}: {cut:?}");
        }
        // A whole line that is not an order is still an error, saying so.
        let garbled = closed_after(b"not an order\n", unread_heartbeats);
        assert!(
            matches!(garbled, Err(WorkerError::Protocol(_))),
            "{garbled:?}"
        );
    }
}
