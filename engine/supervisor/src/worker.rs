//! The head's side: connect to the supervisor, say hello, send heartbeats, run the jobs it is
//! sent one at a time through an [`Executor`], and report their progress and outcome. It also
//! keeps the head's keys ([`chimera_keys::Custody`]): its own, and its shares of its peers'.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chimera_keys::{Custody, Mailbox, MailboxAddress, Outgoing, Taken};

use crate::protocol::{FromHead, Outcome, StatevectorWork, ToHead, encode};

/// How often a head says it is alive; the supervisor's deadline is several of these.
pub const HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// How long a head born again waits for two peers' shares of its predecessor's key before it
/// gives up on its predecessor's sealed state and makes a new key.
pub const RESTORE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3);

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
}

/// A job as a head receives it.
#[derive(Debug, Clone)]
pub struct JobOrder {
    pub job_id: String,
    /// The MAML document, already admitted by the engine.
    pub document: String,
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
        job: &JobOrder,
        progress: &mut dyn FnMut(serde_json::Value),
        cancelled: &AtomicBool,
    ) -> JobReport;
}

/// Serves as head `head_id` until the supervisor closes the connection.
pub fn serve(head_id: &str, socket: &Path, mut executor: impl Executor) -> Result<(), WorkerError> {
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
    let mailbox = Mailbox::generate();
    send(&FromHead::Hello {
        head_id: head_id.to_owned(),
        pid: std::process::id(),
        backend: executor.backend(),
        mailbox: BASE64.encode(mailbox.address().to_bytes()),
    })?;
    let mut keys = KeyKeeper {
        head: head_id.to_owned(),
        mailbox: Some(mailbox),
        custody: Arc::default(),
        send: Arc::new(send.clone()),
    };

    let heartbeat = send.clone();
    std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || {
            while heartbeat(&FromHead::Heartbeat).is_ok() {
                std::thread::sleep(HEARTBEAT_INTERVAL);
            }
        })?;

    let cancels: Arc<Mutex<HashMap<String, Arc<AtomicBool>>>> = Arc::default();
    let (orders, queue) = mpsc::channel::<(JobOrder, Arc<AtomicBool>)>();
    let report = send.clone();
    std::thread::Builder::new().name("executor".into()).spawn({
        let cancels = Arc::clone(&cancels);
        move || {
            for (order, cancelled) in queue {
                let job_id = order.job_id.clone();
                let mut progress = |progress: serde_json::Value| {
                    let _ = report(&FromHead::Progress {
                        job_id: job_id.clone(),
                        progress,
                    });
                };
                let JobReport { outcome, work } = executor.run(&order, &mut progress, &cancelled);
                cancels
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&job_id);
                let finished = FromHead::Finished {
                    job_id,
                    outcome,
                    work,
                };
                if report(&finished).is_err() {
                    return;
                }
            }
        }
    })?;

    for line in BufReader::new(stream).lines() {
        match serde_json::from_str(&line?).map_err(WorkerError::Protocol)? {
            ToHead::Run { job_id, document } => {
                let cancelled = Arc::new(AtomicBool::new(false));
                cancels
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(job_id.clone(), Arc::clone(&cancelled));
                let order = JobOrder { job_id, document };
                if orders.send((order, cancelled)).is_err() {
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
            key_order => keys.handle(key_order)?,
        }
    }
    Ok(())
}

type Sender = dyn Fn(&FromHead) -> std::io::Result<()> + std::marker::Send + Sync;

/// The head's side of key custody: turns the supervisor's key orders into [`Custody`] calls and
/// sends what they deal.
struct KeyKeeper {
    head: String,
    /// This life's mailbox, until `Keys` makes the custody that keeps it.
    mailbox: Option<Mailbox>,
    custody: Arc<Mutex<Option<Custody>>>,
    send: Arc<Sender>,
}

/// A refused key message is reported and dropped: a relay that garbles one envelope must not take
/// the head down (a restore then gives up at its deadline).
fn refused(head: &str, what: impl std::fmt::Display) -> std::io::Result<()> {
    eprintln!("chimera head {head}: key custody: {what}");
    Ok(())
}

fn deal(send: &Sender, dealt: Vec<Outgoing>) -> std::io::Result<()> {
    for Outgoing { to, envelope } in dealt {
        send(&FromHead::Share {
            to,
            envelope: BASE64.encode(envelope),
        })?;
    }
    Ok(())
}

fn address(text: &str) -> Result<MailboxAddress, String> {
    let bytes = BASE64
        .decode(text)
        .map_err(|e| format!("a mailbox address that is not base64: {e}"))?;
    MailboxAddress::from_bytes(&bytes).map_err(|e| e.to_string())
}

impl KeyKeeper {
    fn handle(&mut self, order: ToHead) -> std::io::Result<()> {
        if let ToHead::Keys {
            restore_epoch,
            peers,
        } = order
        {
            return self.begin(restore_epoch, &peers);
        }
        let mut guard = self.custody.lock().unwrap_or_else(|p| p.into_inner());
        let Some(custody) = guard.as_mut() else {
            return refused(&self.head, "a key order came before `keys`; dropped");
        };
        let send = &*self.send;
        match order {
            ToHead::Peer { id, mailbox } => match address(&mailbox) {
                Ok(address) => deal(
                    send,
                    custody.peer_address(&id, address).into_iter().collect(),
                ),
                Err(e) => refused(&self.head, format!("peer {id}: {e}")),
            },
            ToHead::GiveShare { owner, mailbox } => match address(&mailbox) {
                Ok(address) => deal(
                    send,
                    custody.give_share(&owner, &address).into_iter().collect(),
                ),
                Err(e) => refused(&self.head, format!("new {owner}: {e}")),
            },
            ToHead::TakeShare { from, envelope } => {
                let taken = BASE64
                    .decode(&envelope)
                    .map_err(|e| format!("an envelope from {from} that is not base64: {e}"))
                    .and_then(|bytes| custody.take(&from, &bytes).map_err(|e| e.to_string()));
                match taken {
                    // Nothing sealed yet to re-seal: the rotation follows at once.
                    Ok(Taken::Restored { .. }) => {
                        let dealt = custody.rotate();
                        self.keyed(custody, dealt, true)
                    }
                    Ok(Taken::Held { .. } | Taken::Collecting { .. } | Taken::Spare) => Ok(()),
                    Err(e) => refused(&self.head, e),
                }
            }
            ToHead::Rotate => {
                let dealt = custody.rotate();
                self.keyed(custody, dealt, false)
            }
            ToHead::Run { .. } | ToHead::Cancel { .. } | ToHead::Keys { .. } => Ok(()),
        }
    }

    fn begin(&mut self, restore_epoch: Option<u32>, peers: &[String]) -> std::io::Result<()> {
        let Some(mailbox) = self.mailbox.take() else {
            return refused(&self.head, "a second `keys`; dropped");
        };
        let mut custody = Custody::new(&self.head, peers, mailbox);
        match restore_epoch {
            None => {
                let dealt = custody.new_key(1);
                self.keyed(&mut custody, dealt, false)?;
            }
            Some(epoch) => {
                custody.expect_restore(epoch);
                let (head, shared, send) = (
                    self.head.clone(),
                    Arc::clone(&self.custody),
                    Arc::clone(&self.send),
                );
                std::thread::Builder::new()
                    .name("restore-deadline".into())
                    .spawn(move || {
                        std::thread::sleep(RESTORE_DEADLINE);
                        let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
                        let Some(custody) = guard.as_mut() else { return };
                        if let Some(dealt) = custody.abandon_restore() {
                            let _ = refused(
                                &head,
                                format!(
                                    "fewer than two peers gave their shares of key epoch {epoch} within \
                                     {RESTORE_DEADLINE:?}: what that key sealed stays closed; going on \
                                     with a new key"
                                ),
                            );
                            let epoch = custody.key().map_or(0, |k| k.key().epoch());
                            let _ = deal(&*send, dealt)
                                .and_then(|()| send(&FromHead::Keyed { epoch, restored: false }));
                        }
                    })?;
            }
        }
        *self.custody.lock().unwrap_or_else(|p| p.into_inner()) = Some(custody);
        Ok(())
    }

    fn keyed(
        &self,
        custody: &mut Custody,
        dealt: Vec<Outgoing>,
        restored: bool,
    ) -> std::io::Result<()> {
        deal(&*self.send, dealt)?;
        let epoch = custody.key().map_or(0, |k| k.key().epoch());
        (self.send)(&FromHead::Keyed { epoch, restored })
    }
}
