//! Limits that hold under abuse, per client (the trusted key that signed the job): submissions
//! per second (a token bucket) and jobs waiting or running; per source address, documents
//! refused at admission (a token bucket, checked before a document is read); and for everyone,
//! open streams. Each refusal is `RESOURCE_EXHAUSTED` with its own reason. The connections each door holds and
//! how long a client may take to speak are bounded too (`connections`, `http_door`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::refusal::{Reason, Refused};
use crate::request_budget::Budget;
use crate::sources::{PerSource, Place as SourcePlace, source_of};

#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest request a client may send, in bytes (larger ones are refused before they are
    /// read whole).
    pub max_request_bytes: usize,
    /// Unfinished jobs (queued or running) one client may have.
    pub max_unfinished_per_client: usize,
    /// Submissions per second one client may make, on average; 0 for no limit.
    pub submissions_per_second: f64,
    /// How many it may make at once after a pause: the bucket's size.
    pub burst: f64,
    /// Documents refused at admission (a bad signature, an unknown key, malformed, expired…)
    /// that one source (an IPv4 address, an IPv6 /64) may send per second on average, five
    /// seconds' worth at once; beyond that its submissions are refused unread until its bucket
    /// refills. A client is known only by its key, which a forged document does not prove, so
    /// without this a flood of forgeries would cost a signature check each; 0 for no limit.
    pub refusals_per_source_per_second: f64,
    /// `Watch` and `SubmitBatch` streams open at once, all clients together.
    pub max_streams: usize,
    /// Of those, how many one source (an IPv4 address, an IPv6 /64) may have open.
    pub max_streams_per_source: usize,
    /// Qubits of the widest circuit taken; `None`: as many as this machine's largest device
    /// (its available memory, or its largest GPU's) holds in single precision, read at start.
    pub max_qubits: Option<usize>,
    /// The most shots a job's circuits may ask for.
    pub max_shots: u64,
    /// The most epochs a training may ask for.
    pub max_epochs: usize,
    /// Connections each door (gRPC, HTTP) holds at once, TLS handshakes included; more wait in
    /// the listen queue.
    pub max_connections: usize,
    /// Of those, how many one source (an IPv4 address, an IPv6 /64) holds at once; its
    /// connections beyond that are closed at once.
    pub max_connections_per_source: usize,
    /// Bytes that gRPC messages still arriving may hold, all clients together (each message
    /// holds its own until it has come whole); a message beyond that is refused, `ENGINE_BUSY`.
    pub max_arriving_request_bytes: usize,
    /// How long a client may take to send its first bytes and to finish its TLS handshake, and
    /// at the HTTP door to send a request's headers (a kept-alive connection idle that long is
    /// closed) and then its body.
    pub read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: chimera_maml::DEFAULT_MAX_BYTES + 1024,
            max_unfinished_per_client: 10_000,
            submissions_per_second: 5_000.0,
            burst: 10_000.0,
            refusals_per_source_per_second: 20.0,
            max_streams: 1024,
            max_streams_per_source: 256,
            max_qubits: None,
            max_shots: chimera_job::Limits::DEFAULT_MAX_SHOTS,
            max_epochs: chimera_job::Limits::DEFAULT_MAX_EPOCHS,
            max_connections: 1024,
            max_connections_per_source: 128,
            read_timeout: Duration::from_secs(15),
            max_arriving_request_bytes: 256 << 20,
        }
    }
}

/// A token bucket, refilled for the time since it was last looked at.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(size: f64, now: Instant) -> Self {
        Self {
            tokens: size,
            at: now,
        }
    }

    fn refill(&mut self, rate: f64, size: f64, now: Instant) {
        let refilled = self.tokens + now.duration_since(self.at).as_secs_f64() * rate;
        self.tokens = refilled.min(size);
        self.at = now;
    }

    /// Milliseconds until the next token, if there is none now.
    fn empty_for_ms(&self, rate: f64) -> Option<f64> {
        (self.tokens < 1.0).then(|| ((1.0 - self.tokens) / rate * 1000.0).ceil())
    }
}

/// What a state needs beside its amplitudes (the CPU backend's per-thread buffers).
fn with_room(bytes: u128) -> u128 {
    bytes.saturating_add(bytes / 16)
}

/// The most qubits whose single-precision state fits the larger of this machine's available
/// memory and its largest GPU's memory.
pub fn device_max_qubits() -> usize {
    use chimera_circuit::memory::Precision;
    let cpu = chimera_circuit::memory::available_memory().unwrap_or(0);
    let gpu = crate::gpu_metrics::largest_gpu_memory().map_or(0, u128::from);
    let memory = cpu.max(gpu);
    (0..64)
        .take_while(|&n| with_room(Precision::Single.state_bytes(n)) <= memory)
        .last()
        .unwrap_or(0)
}

/// Sources whose refusal buckets are kept; beyond this, full ones are forgotten.
const TRACKED_SOURCES: usize = 16_384;

/// Where the gate reads the time: the system's clock, or in tests one they move by hand.
type Clock = Box<dyn Fn() -> Instant + Send + Sync>;

/// The counters behind [`Limits`], shared by the front door and the dispatcher.
pub struct Gate {
    limits: Limits,
    clock: Clock,
    buckets: Mutex<HashMap<String, Bucket>>,
    refusals: Mutex<HashMap<IpAddr, Bucket>>,
    unfinished: Mutex<HashMap<String, usize>>,
    streams: Arc<Semaphore>,
    streams_by_source: Arc<PerSource>,
    jobs: chimera_job::Limits,
    arriving: Arc<Budget>,
}

/// An open stream's place among all and among its source's; given back when dropped.
pub struct StreamPlace {
    _permit: OwnedSemaphorePermit,
    _of_source: Option<SourcePlace>,
}

/// A place in a client's count of unfinished jobs, given back when dropped unless kept.
pub struct Place<'a> {
    gate: &'a Gate,
    client: String,
    kept: bool,
}

impl Place<'_> {
    /// The job was created: its place is held until it finishes ([`Gate::finished`]).
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.gate.finished(&self.client);
        }
    }
}

impl Gate {
    /// `unfinished`: the client of every job the journal holds unfinished.
    pub fn new(limits: Limits, unfinished: impl IntoIterator<Item = String>) -> Self {
        Self::with_clock(limits, unfinished, Box::new(Instant::now))
    }

    fn with_clock(
        limits: Limits,
        unfinished: impl IntoIterator<Item = String>,
        clock: Clock,
    ) -> Self {
        let mut counts = HashMap::new();
        for client in unfinished {
            *counts.entry(client).or_insert(0) += 1;
        }
        Self {
            streams: Arc::new(Semaphore::new(limits.max_streams)),
            streams_by_source: PerSource::new(limits.max_streams_per_source),
            arriving: Budget::new(limits.max_arriving_request_bytes),
            jobs: chimera_job::Limits {
                max_qubits: limits.max_qubits.unwrap_or_else(device_max_qubits),
                max_shots: limits.max_shots,
                max_epochs: limits.max_epochs,
            },
            limits,
            clock,
            buckets: Mutex::new(HashMap::new()),
            refusals: Mutex::new(HashMap::new()),
            unfinished: Mutex::new(counts),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// What requests still arriving may hold, at both doors.
    pub(crate) fn arriving(&self) -> &Arc<Budget> {
        &self.arriving
    }

    /// The largest numbers a job may ask for: [`Limits::max_qubits`] (or what this machine
    /// holds), shots and epochs.
    pub fn job_limits(&self) -> &chimera_job::Limits {
        &self.jobs
    }

    /// Takes a token from `client`'s bucket, or says when the next one comes.
    pub fn submission(&self, client: &str) -> Result<(), Refused> {
        let rate = self.limits.submissions_per_second;
        if rate <= 0.0 {
            return Ok(());
        }
        let (now, burst) = ((self.clock)(), self.limits.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets
            .entry(client.to_owned())
            .or_insert_with(|| Bucket::full(burst, now));
        bucket.refill(rate, burst, now);
        let Some(wait_ms) = bucket.empty_for_ms(rate) else {
            bucket.tokens -= 1.0;
            return Ok(());
        };
        Err(Reason::RateLimited.refused(format!(
            "`{client}` submits faster than the {rate} jobs per second (bursts of {}) this \
                 engine allows one client; retry in {wait_ms} ms",
            self.limits.burst
        )))
    }

    /// Whether `source` may submit: not if its documents were refused faster than
    /// [`Limits::refusals_per_source_per_second`] allows, in which case this one is refused
    /// unread, saying when to retry.
    pub fn source_may_submit(&self, source: IpAddr) -> Result<(), Refused> {
        let Some((rate, size)) = self.refusal_bucket() else {
            return Ok(());
        };
        let source = source_of(source);
        let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        let Some(bucket) = refusals.get_mut(&source) else {
            return Ok(());
        };
        bucket.refill(rate, size, (self.clock)());
        match bucket.empty_for_ms(rate) {
            None => Ok(()),
            Some(wait_ms) => Err(Reason::TooManyRefused.refused(format!(
                "{source} sends documents that are refused faster than the {rate} per second \
                     this engine reads from one source; its submissions are refused unread for \
                     {wait_ms} ms. Fix what the earlier refusals said (their reasons are in the \
                     engine's audit log)"
            ))),
        }
    }

    /// The rate and size of each source's refusal bucket (five seconds' worth, at least one
    /// document), if refusals are limited.
    fn refusal_bucket(&self) -> Option<(f64, f64)> {
        let rate = self.limits.refusals_per_source_per_second;
        (rate > 0.0).then(|| (rate, (5.0 * rate).max(1.0)))
    }

    /// A document from `source` was refused at admission: one token less in its bucket.
    pub fn refused(&self, source: IpAddr) {
        let Some((rate, size)) = self.refusal_bucket() else {
            return;
        };
        let (source, now) = (source_of(source), (self.clock)());
        let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        if refusals.len() >= TRACKED_SOURCES && !refusals.contains_key(&source) {
            // Many sources: forget those whose buckets have refilled (they would start full).
            refusals.retain(|_, bucket| {
                bucket.refill(rate, size, now);
                bucket.tokens < size
            });
            if refusals.len() >= TRACKED_SOURCES {
                // Memory stays bounded; this source goes unthrottled until some refill.
                return;
            }
        }
        let bucket = refusals
            .entry(source)
            .or_insert_with(|| Bucket::full(size, now));
        bucket.refill(rate, size, now);
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
    }

    /// A place for one more unfinished job of `client`, or the refusal when it has too many.
    pub fn place(&self, client: &str) -> Result<Place<'_>, Refused> {
        let max = self.limits.max_unfinished_per_client;
        let mut counts = self.unfinished.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(client.to_owned()).or_insert(0);
        if *count >= max {
            return Err(Reason::TooManyJobs.refused(format!(
                "`{client}` has {count} jobs queued or running, the most this engine holds \
                     for one client; submit more when some have finished (Watch them)"
            )));
        }
        *count += 1;
        Ok(Place {
            gate: self,
            client: client.to_owned(),
            kept: false,
        })
    }

    /// A job of `client` has finished: its place is free.
    pub fn finished(&self, client: &str) {
        let mut counts = self.unfinished.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(client) {
            *count = count.saturating_sub(1);
        }
    }

    /// A place for one more open stream from `source`, held for as long as the stream lives.
    pub fn stream(&self, source: Option<IpAddr>) -> Result<StreamPlace, Refused> {
        let too_many = |message: String| Reason::TooManyStreams.refused(message);
        let of_source = match source.map(|source| self.streams_by_source.take(source)) {
            None => None,
            Some(Ok(place)) => Some(place),
            Some(Err(full)) => {
                return Err(too_many(format!(
                    "{} has {} Watch and SubmitBatch streams open, the most one source may; close \
                     one or retry later",
                    full.source, full.most
                )));
            }
        };
        let permit = Arc::clone(&self.streams).try_acquire_owned().map_err(|_| {
            too_many(format!(
                "the engine has {} Watch and SubmitBatch streams open, its most; close one or \
                 retry later",
                self.limits.max_streams
            ))
        })?;
        Ok(StreamPlace {
            _permit: permit,
            _of_source: of_source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::{Code, Status};

    #[test]
    fn this_machine_holds_some_qubits_and_not_absurdly_many() {
        let n = device_max_qubits();
        assert!((10..50).contains(&n), "{n}");
    }

    /// A clock the test moves by hand, so that no test depends on how fast the machine runs it.
    #[derive(Clone, Default)]
    struct Hands(Arc<Mutex<std::time::Duration>>);

    impl Hands {
        fn forward(&self, by: std::time::Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    /// A gate on a clock that stands still until the test moves it.
    fn gate_and_clock(limits: Limits) -> (Gate, Hands) {
        let (start, hands) = (Instant::now(), Hands::default());
        let read = hands.clone();
        let clock = Box::new(move || start + *read.0.lock().unwrap());
        let gate = Gate::with_clock(limits, ["busy".to_owned(), "busy".to_owned()], clock);
        (gate, hands)
    }

    fn gate(limits: Limits) -> Gate {
        gate_and_clock(limits).0
    }

    #[test]
    fn a_bucket_gives_its_burst_then_refuses_saying_when_to_retry() {
        let gate = gate(Limits {
            submissions_per_second: 1.0,
            burst: 3.0,
            ..Limits::default()
        });
        for _ in 0..3 {
            gate.submission("a").unwrap();
        }
        let refused = Status::from(gate.submission("a").unwrap_err());
        assert_eq!(refused.code(), Code::ResourceExhausted);
        assert_eq!(chimera_client::reason_of(&refused).unwrap(), "RATE_LIMITED");
        assert!(refused.message().contains("retry in"), "{refused:?}");
        // Another client has its own bucket.
        gate.submission("b").unwrap();
    }

    #[test]
    fn a_bucket_refills_at_its_rate() {
        let (gate, clock) = gate_and_clock(Limits {
            submissions_per_second: 200.0,
            burst: 1.0,
            ..Limits::default()
        });
        gate.submission("a").unwrap();
        assert!(gate.submission("a").is_err());
        clock.forward(std::time::Duration::from_millis(4));
        assert!(gate.submission("a").is_err(), "refilled before its 5 ms");
        clock.forward(std::time::Duration::from_millis(1));
        gate.submission("a").unwrap();
    }

    #[test]
    fn a_source_whose_documents_are_refused_too_fast_is_refused_unread_for_a_while() {
        let (gate, clock) = gate_and_clock(Limits {
            refusals_per_source_per_second: 100.0,
            ..Limits::default()
        });
        let source = IpAddr::from([192, 0, 2, 1]);
        // Five seconds' worth of refusals are taken in stride, then no more.
        let mut taken = 0;
        while gate.source_may_submit(source).is_ok() {
            gate.refused(source);
            taken += 1;
            assert!(taken < 2_000, "never throttled");
        }
        assert_eq!(taken, 500, "throttled after {taken}");
        let throttled = Status::from(gate.source_may_submit(source).unwrap_err());
        assert_eq!(throttled.code(), Code::ResourceExhausted);
        assert_eq!(
            chimera_client::reason_of(&throttled).unwrap(),
            "TOO_MANY_REFUSED"
        );
        assert!(throttled.message().contains("192.0.2.1"), "{throttled:?}");
        assert!(throttled.message().contains("ms"), "{throttled:?}");
        // Another source, even next door, is not held up; one IPv6 /64 is one source.
        gate.source_may_submit(IpAddr::from([192, 0, 2, 2]))
            .unwrap();
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        for _ in 0..taken {
            gate.refused(v6("2001:db8:0:1::1"));
        }
        assert!(gate.source_may_submit(v6("2001:db8:0:1::2")).is_err());
        gate.source_may_submit(v6("2001:db8:0:2::1")).unwrap();
        // One refusal's worth of time later (10 ms at 100 a second), it is read again.
        clock.forward(std::time::Duration::from_millis(10));
        gate.source_may_submit(source).unwrap();
    }

    #[test]
    fn refusals_are_not_limited_at_rate_0_and_a_slow_rate_still_takes_one() {
        let unlimited = gate(Limits {
            refusals_per_source_per_second: 0.0,
            ..Limits::default()
        });
        let source = IpAddr::from([192, 0, 2, 1]);
        for _ in 0..10_000 {
            unlimited.refused(source);
        }
        unlimited.source_may_submit(source).unwrap();
        let slow = gate(Limits {
            refusals_per_source_per_second: 0.01,
            ..Limits::default()
        });
        slow.source_may_submit(source).unwrap();
        slow.refused(source);
        assert!(slow.source_may_submit(source).is_err());
    }

    #[test]
    fn unfinished_jobs_are_counted_from_the_journal_and_freed_when_done() {
        let gate = gate(Limits {
            max_unfinished_per_client: 3,
            ..Limits::default()
        });
        gate.place("busy").unwrap().keep();
        let refused = Status::from(gate.place("busy").err().unwrap());
        assert_eq!(
            chimera_client::reason_of(&refused).unwrap(),
            "TOO_MANY_JOBS"
        );
        assert!(refused.message().contains("has 3 jobs"), "{refused:?}");
        gate.finished("busy");
        // A place not kept (the document was a repeat, or refused) is given back.
        drop(gate.place("busy").unwrap());
        gate.place("busy").unwrap().keep();
        assert!(gate.place("busy").is_err());
        assert!(gate.place("idle").is_ok());
    }

    #[test]
    fn streams_beyond_the_limit_are_refused_until_one_closes() {
        let gate = gate(Limits {
            max_streams: 2,
            ..Limits::default()
        });
        let first = gate.stream(None).unwrap();
        let _second = gate.stream(None).unwrap();
        let refused = Status::from(gate.stream(None).err().unwrap());
        assert_eq!(
            chimera_client::reason_of(&refused).unwrap(),
            "TOO_MANY_STREAMS"
        );
        drop(first);
        let _third = gate.stream(None).unwrap();
    }

    #[test]
    fn one_source_has_at_most_its_share_of_the_streams() {
        let gate = gate(Limits {
            max_streams: 10,
            max_streams_per_source: 2,
            ..Limits::default()
        });
        let (a, b) = (IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 2]));
        let first = gate.stream(Some(a)).unwrap();
        let _second = gate.stream(Some(a)).unwrap();
        let refused = Status::from(gate.stream(Some(a)).err().unwrap());
        assert_eq!(
            chimera_client::reason_of(&refused).unwrap(),
            "TOO_MANY_STREAMS"
        );
        assert!(refused.message().contains("192.0.2.1"), "{refused:?}");
        let _other = gate.stream(Some(b)).unwrap();
        drop(first);
        let _again = gate.stream(Some(a)).unwrap();
    }
}
