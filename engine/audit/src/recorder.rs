//! The engine's writer: events come in from anywhere without waiting, a thread appends them in
//! batches (one sync per batch) and signs a checkpoint at least every [`CHECKPOINT_EVERY`].

use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{AuditLog, CheckpointSigner, Event};

/// How long the writer gathers events before it appends them.
const BATCH_WINDOW: Duration = Duration::from_millis(20);
/// The longest a record waits for a checkpoint while the engine runs.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Events kept while the file cannot be written, beyond which the oldest are dropped.
const MAX_PENDING: usize = 100_000;

pub struct Recorder {
    events: Mutex<Option<mpsc::Sender<Event>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Recorder {
    pub fn start(log: AuditLog, signer: Box<dyn CheckpointSigner + Send>) -> std::io::Result<Self> {
        let (events, received) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || write(log, signer.as_ref(), received))?;
        Ok(Self {
            events: Mutex::new(Some(events)),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Queues `event` for the log; after [`Recorder::finish`], drops it.
    pub fn record(&self, event: Event) {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(events) = events.as_ref() {
            let _ = events.send(event);
        }
    }

    /// Writes what is queued with a last checkpoint, and stops the writer.
    pub fn finish(&self) {
        drop(self.events.lock().unwrap_or_else(|p| p.into_inner()).take());
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

fn write(mut log: AuditLog, signer: &dyn CheckpointSigner, received: mpsc::Receiver<Event>) {
    let mut pending: Vec<Event> = Vec::new();
    // Records written since the last checkpoint.
    let mut unsigned = false;
    let mut last_signed = Instant::now();
    loop {
        let wait = if unsigned || !pending.is_empty() {
            CHECKPOINT_EVERY.saturating_sub(last_signed.elapsed())
        } else {
            Duration::MAX
        };
        let closed = match received.recv_timeout(wait) {
            Ok(event) => {
                pending.push(event);
                std::thread::sleep(BATCH_WINDOW);
                pending.extend(received.try_iter());
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        let sign = closed || last_signed.elapsed() >= CHECKPOINT_EVERY;
        if !pending.is_empty() || (sign && unsigned) {
            match log.append(pending.iter().cloned(), sign.then_some(signer)) {
                Ok(()) => {
                    pending.clear();
                    unsigned = !sign;
                    if sign {
                        last_signed = Instant::now();
                    }
                }
                Err(e) => {
                    tracing::error!("cannot write the audit log: {e}; its events are kept");
                    if pending.len() > MAX_PENDING {
                        let dropped = pending.len() - MAX_PENDING;
                        pending.drain(..dropped);
                        tracing::error!("{dropped} audit events dropped");
                    }
                    if !closed {
                        std::thread::sleep(CHECKPOINT_EVERY);
                    }
                }
            }
        }
        if closed {
            return;
        }
    }
}
