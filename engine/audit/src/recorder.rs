//! The engine's writer: events come in from anywhere without waiting, a thread appends them in
//! batches (one sync per batch) and signs a checkpoint at least every [`CHECKPOINT_EVERY`].
//! Refusals beyond [`REFUSALS_PER_SECOND`] are counted instead of written one by one: a flood
//! of bad documents (about 500 bytes of log each) must not fill the disk.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::{AuditLog, CheckpointSigner, Event};

/// How long the writer gathers events before it appends them.
const BATCH_WINDOW: Duration = Duration::from_millis(20);
/// The longest a record waits for a checkpoint while the engine runs.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Events kept while the file cannot be written, beyond which the oldest are dropped.
const MAX_PENDING: usize = 100_000;
/// Refusals written one by one per second on average, and at once after a quiet spell.
pub const REFUSALS_PER_SECOND: f64 = 20.0;
const REFUSAL_BURST: f64 = 200.0;
/// How often the count of a flood's refusals is written while the flood lasts.
const COUNT_EVERY: Duration = Duration::from_secs(1);

/// The refusals written one by one (a token bucket) and those counted since the last count.
struct Refusals {
    tokens: f64,
    at: Instant,
    by_reason: BTreeMap<String, u64>,
    first_last: Option<(Timestamp, Timestamp)>,
    counted_at: Instant,
}

impl Refusals {
    fn new(now: Instant) -> Self {
        Self {
            tokens: REFUSAL_BURST,
            at: now,
            by_reason: BTreeMap::new(),
            first_last: None,
            counted_at: now,
        }
    }

    /// Whether one more refusal may be written one by one.
    fn take(&mut self, now: Instant) -> bool {
        let refilled =
            self.tokens + now.duration_since(self.at).as_secs_f64() * REFUSALS_PER_SECOND;
        (self.tokens, self.at) = (refilled.min(REFUSAL_BURST), now);
        let taken = self.tokens >= 1.0;
        if taken {
            self.tokens -= 1.0;
        }
        taken
    }

    fn count(&mut self, reason: &str) {
        *self.by_reason.entry(reason.to_owned()).or_default() += 1;
        let now = Timestamp::now();
        let (first, _) = self.first_last.unwrap_or((now, now));
        self.first_last = Some((first, now));
    }

    /// The count so far as an event, if there is one; counting starts again.
    fn counted(&mut self, now: Instant) -> Option<Event> {
        let (first, last) = self.first_last.take()?;
        self.counted_at = now;
        Some(Event::RefusalsCounted {
            by_reason: std::mem::take(&mut self.by_reason),
            first,
            last,
        })
    }
}

pub struct Recorder {
    events: Mutex<Option<mpsc::Sender<Event>>>,
    refusals: Mutex<Refusals>,
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
            refusals: Mutex::new(Refusals::new(Instant::now())),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Queues `event` for the log, or counts it if it is a refusal beyond the rate; after
    /// [`Recorder::finish`], drops it.
    pub fn record(&self, event: Event) {
        let now = Instant::now();
        let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        let count_due = now.duration_since(refusals.counted_at) >= COUNT_EVERY;
        let Event::Refused { reason, .. } = &event else {
            // What was counted goes before what follows the flood.
            self.send(refusals.counted(now));
            self.send(Some(event));
            return;
        };
        if count_due {
            self.send(refusals.counted(now));
        }
        if refusals.take(now) {
            self.send(Some(event));
        } else {
            refusals.count(reason);
        }
    }

    fn send(&self, event: Option<Event>) {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(events), Some(event)) = (events.as_ref(), event) {
            let _ = events.send(event);
        }
    }

    /// Writes what is queued (and counted) with a last checkpoint, and stops the writer.
    pub fn finish(&self) {
        let counted = self
            .refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .counted(Instant::now());
        self.send(counted);
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
