//! The engine's side: start each head as its own process, talk to it over its Unix socket, watch
//! its heartbeats, and start a new one when it dies.
//!
//! Each process of a head is numbered, its *rebuild* (0 for the first). Orders carry the rebuild
//! they were meant for and a head's task drops orders for an earlier one, so a job sent to a
//! head that has just died is never delivered to its rebuild behind the engine's back: the
//! engine hears `Down` and requeues it.
//!
//! The supervisor also relays the heads' key custody (`chimera_keys::custody`): it tells each new
//! head process its peers' mailboxes, asks the peers of a rebuilt head for their shares of the
//! dead head's key, and passes envelopes between heads, and the sealed files each head
//! replicates to its peers. It reads none of them.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chimera_job::Role;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use chimera_keys::shares::THRESHOLD;

use crate::protocol::{FromHead, KeyText, Outcome, StatevectorWork, ToHead, encode};

/// How a head process is started: given the head and its socket, the command to run.
pub type Launcher = Arc<dyn Fn(&HeadConfig, &std::path::Path) -> Command + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadConfig {
    pub id: String,
    pub role: Role,
}

pub struct SupervisorConfig {
    pub heads: Vec<HeadConfig>,
    /// Where the heads' sockets are made.
    pub socket_dir: PathBuf,
    pub launcher: Launcher,
    /// A head silent for this long is taken for dead.
    pub heartbeat_timeout: Duration,
    /// How long a new head may take to connect and say hello.
    pub start_timeout: Duration,
    /// What each head keeps at rest under the operator's unseal key (none: nothing).
    pub at_rest: Option<AtRest>,
}

/// The keys the heads keep at rest with, from the keyring that the operator's unseal key wraps.
#[derive(Debug, Clone)]
pub struct AtRest {
    pub engine: String,
    /// Each head's key-wrapping key, by head id.
    pub wrapping_keys: std::collections::BTreeMap<String, KeyText>,
    /// The key of stored models, for the AI heads.
    pub models_key: KeyText,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadStatus {
    Starting,
    Up,
    Down,
}

/// A head as the supervisor sees it now.
#[derive(Debug, Clone)]
pub struct HeadInfo {
    pub id: String,
    pub role: Role,
    pub status: HeadStatus,
    pub pid: Option<u32>,
    pub backend: String,
    /// How many times it was started again after dying.
    pub restarts: u32,
    /// The epoch of the key it last said it seals with.
    pub key_epoch: Option<u32>,
    /// How many live peers were given a share of that key: two of them can rebuild the head.
    pub key_shares: u32,
}

/// What the supervisor tells the engine.
#[derive(Debug, Clone)]
pub enum HeadEvent {
    Up {
        head: String,
        rebuild: u64,
    },
    Down {
        head: String,
        rebuild: u64,
        reason: String,
    },
    Progress {
        head: String,
        rebuild: u64,
        job_id: String,
        progress: serde_json::Value,
    },
    Finished {
        head: String,
        rebuild: u64,
        job_id: String,
        outcome: Outcome,
        work: StatevectorWork,
    },
    /// The head seals with a key of `epoch` now.
    Keyed {
        head: String,
        rebuild: u64,
        epoch: u32,
        /// It restored the dead head's key from two peers' shares before rotating.
        restored: bool,
        /// For a rebuilt head: the time from the dead head's death to this.
        rebuilt_in: Option<Duration>,
        /// Files of its state re-sealed under the new key, and files left closed.
        resealed: u64,
        unreadable: u64,
        /// Files its state directory had lost, or that did not open, taken from its peers'
        /// replicas.
        recovered: u64,
    },
    /// How many live peers hold a share of the key the head seals with now changed to `shares`
    /// (as `HeadInfo::key_shares`).
    KeyShares {
        head: String,
        shares: u32,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("cannot make the heads' socket directory {path}: {error}")]
    SocketDir { path: String, error: std::io::Error },
    #[error("no head `{0}`")]
    NoSuchHead(String),
}

/// What a head's watcher is told.
enum Order {
    /// A line for one rebuild of the head, or (`None`) for whichever is alive.
    Send(Option<u64>, ToHead),
    /// End that rebuild now (it is replaced as if it had died), saying why.
    Kill(u64, String),
}

/// A head as its watcher and its peers' watchers share it.
#[derive(Debug, Clone)]
struct Watched {
    info: HeadInfo,
    /// The mailbox of the life that is up.
    mailbox: Option<String>,
    /// When the last life died, until the next one has a key.
    down_since: Option<Instant>,
    /// The live peers relayed a share of its newest key, and that key's epoch. A head has said
    /// it has a key (`Keyed`) before every peer is sure to hold a share of it: one dealt to a peer
    /// that came up later, or still on its way, is not there yet.
    share_holders: (u32, BTreeSet<String>),
    /// The `key_shares` last sent as a [`HeadEvent::KeyShares`].
    key_shares_reported: u32,
}

impl Watched {
    fn info(&self) -> HeadInfo {
        let (epoch, holders) = &self.share_holders;
        HeadInfo {
            key_shares: match self.info.key_epoch == Some(*epoch) {
                true => holders.len() as u32,
                false => 0,
            },
            ..self.info.clone()
        }
    }

    fn share_dealt(&mut self, epoch: u32, peer: &str) {
        let (newest, holders) = &mut self.share_holders;
        if epoch > *newest {
            *newest = epoch;
            holders.clear();
        }
        if epoch == *newest {
            holders.insert(peer.to_owned());
        }
    }
}

pub struct Supervisor {
    heads: Arc<Mutex<Vec<Watched>>>,
    /// The heads' ids, in the order of `heads` and `orders`.
    ids: Vec<String>,
    orders: Arc<Vec<mpsc::UnboundedSender<Order>>>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Supervisor {
    /// Starts every head; their events arrive on `events`.
    pub fn start(
        config: SupervisorConfig,
        events: mpsc::UnboundedSender<HeadEvent>,
    ) -> Result<Self, SupervisorError> {
        std::fs::create_dir_all(&config.socket_dir).map_err(|error| {
            SupervisorError::SocketDir {
                path: config.socket_dir.display().to_string(),
                error,
            }
        })?;
        let heads = Arc::new(Mutex::new(
            config
                .heads
                .iter()
                .map(|h| Watched {
                    info: HeadInfo {
                        id: h.id.clone(),
                        role: h.role,
                        status: HeadStatus::Starting,
                        pid: None,
                        backend: String::new(),
                        restarts: 0,
                        key_epoch: None,
                        key_shares: 0,
                    },
                    mailbox: None,
                    down_since: None,
                    share_holders: Default::default(),
                    key_shares_reported: 0,
                })
                .collect(),
        ));
        let (shutdown, _) = watch::channel(false);
        let ids: Vec<String> = config.heads.iter().map(|h| h.id.clone()).collect();
        let config = Arc::new(config);
        let (senders, receivers): (Vec<_>, Vec<_>) =
            ids.iter().map(|_| mpsc::unbounded_channel()).unzip();
        let orders = Arc::new(senders);
        let mut tasks = Vec::new();
        for (slot, order_rx) in receivers.into_iter().enumerate() {
            let watcher = HeadWatcher {
                slot,
                config: Arc::clone(&config),
                heads: Arc::clone(&heads),
                orders: Arc::clone(&orders),
                events: events.clone(),
                shutdown: shutdown.subscribe(),
            };
            tasks.push(tokio::spawn(watcher.run(order_rx)));
        }
        Ok(Self {
            heads,
            ids,
            orders,
            shutdown,
            tasks: Mutex::new(tasks),
        })
    }

    pub fn heads(&self) -> Vec<HeadInfo> {
        self.heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(Watched::info)
            .collect()
    }

    /// Asks every head that is alive to rotate to a new key.
    pub fn rotate_keys(&self) {
        for orders in self.orders.iter() {
            let _ = orders.send(Order::Send(None, ToHead::Rotate));
        }
    }

    /// Sends `order` to the head's rebuild `rebuild`; dropped if that one is gone.
    pub fn send(&self, head: &str, rebuild: u64, order: ToHead) -> Result<(), SupervisorError> {
        self.order(head, Order::Send(Some(rebuild), order))
    }

    /// Kills the head's rebuild `rebuild`, if it is still alive: it is replaced as a head
    /// that died is, and `reason` is the death's.
    pub fn kill(&self, head: &str, rebuild: u64, reason: String) -> Result<(), SupervisorError> {
        self.order(head, Order::Kill(rebuild, reason))
    }

    fn order(&self, head: &str, order: Order) -> Result<(), SupervisorError> {
        let slot = self
            .ids
            .iter()
            .position(|id| id == head)
            .ok_or_else(|| SupervisorError::NoSuchHead(head.to_owned()))?;
        // A closed channel means shutdown; the order is dropped like any to a dead head.
        let _ = self.orders[slot].send(order);
        Ok(())
    }

    /// Stops every head: closes their sockets (a head exits when its socket closes), then kills
    /// any still running after a grace period.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
    }
}

struct HeadWatcher {
    slot: usize,
    config: Arc<SupervisorConfig>,
    heads: Arc<Mutex<Vec<Watched>>>,
    /// Every head's orders, for relaying key custody between heads.
    orders: Arc<Vec<mpsc::UnboundedSender<Order>>>,
    events: mpsc::UnboundedSender<HeadEvent>,
    shutdown: watch::Receiver<bool>,
}

enum Ended {
    Shutdown,
    Died(String),
}

/// A head that lived this long before dying is restarted at once, not after a back-off.
const STABLE_AFTER: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const GRACE: Duration = Duration::from_secs(3);

impl HeadWatcher {
    /// Changes this head as the watchers share it, and returns what `change` does.
    fn update<R>(&self, change: impl FnOnce(&mut Watched) -> R) -> R {
        change(&mut self.heads.lock().unwrap_or_else(|p| p.into_inner())[self.slot])
    }

    /// Sends a [`HeadEvent::KeyShares`] for each head whose count of shares held has changed
    /// since the last (a share relayed, a key made, a peer dead).
    fn report_key_shares(&self) {
        let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
        for w in heads.iter_mut() {
            let shares = w.info().key_shares;
            if shares != w.key_shares_reported {
                w.key_shares_reported = shares;
                let head = w.info.id.clone();
                let _ = self.events.send(HeadEvent::KeyShares { head, shares });
            }
        }
    }

    /// Sends `order` to whichever life of the head at `slot` is alive.
    fn relay(&self, slot: usize, order: ToHead) {
        let _ = self.orders[slot].send(Order::Send(None, order));
    }

    /// A new life said hello with `mailbox`: what to tell it of its keys and its peers (peers are
    /// told of it here).
    fn welcome(&self, mailbox: &str) -> Vec<ToHead> {
        let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
        heads[self.slot].mailbox = Some(mailbox.to_owned());
        let me = heads[self.slot].info();
        let restore_epoch = me.key_epoch;
        // Peers asked for shares that are not there would answer nothing.
        let restorable = restore_epoch.is_some() && me.key_shares as usize >= THRESHOLD;
        let my_id = me.id;
        let mut welcome: Vec<ToHead> = self.at_rest().into_iter().collect();
        welcome.push(ToHead::Keys {
            restore_epoch,
            restore_shares: me.key_shares,
            peers: (heads.iter().map(|h| h.info.id.clone()))
                .filter(|id| *id != my_id)
                .collect(),
        });
        for (slot, peer) in heads.iter().enumerate() {
            let Some(peer_mailbox) = peer.mailbox.as_ref().filter(|_| slot != self.slot) else {
                continue;
            };
            welcome.push(ToHead::Peer {
                id: peer.info.id.clone(),
                mailbox: peer_mailbox.clone(),
            });
            self.relay(
                slot,
                ToHead::Peer {
                    id: my_id.clone(),
                    mailbox: mailbox.to_owned(),
                },
            );
            if restorable {
                self.relay(
                    slot,
                    ToHead::GiveShare {
                        owner: my_id.clone(),
                        mailbox: mailbox.to_owned(),
                    },
                );
            }
        }
        welcome
    }

    fn head(&self) -> &HeadConfig {
        &self.config.heads[self.slot]
    }

    /// What this head keeps at rest with, if the engine seals at rest.
    fn at_rest(&self) -> Option<ToHead> {
        let at_rest = self.config.at_rest.as_ref()?;
        let head = self.head();
        Some(ToHead::AtRest {
            engine: at_rest.engine.clone(),
            wrapping_key: at_rest.wrapping_keys.get(&head.id)?.clone(),
            models_key: (head.role == Role::Ai).then(|| at_rest.models_key.clone()),
        })
    }

    async fn run(mut self, mut orders: mpsc::UnboundedReceiver<Order>) {
        let mut backoff = Duration::ZERO;
        for rebuild in 0.. {
            self.update(|w| {
                w.info.status = HeadStatus::Starting;
                w.info.pid = None;
            });
            let started = Instant::now();
            let reason = match self.process(rebuild, &mut orders).await {
                Ended::Shutdown => return,
                Ended::Died(reason) => reason,
            };
            {
                let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
                let w = &mut heads[self.slot];
                w.info.status = HeadStatus::Down;
                w.info.restarts += 1;
                w.mailbox = None;
                w.down_since.get_or_insert_with(Instant::now);
                // The shares of its peers' keys it held died with it (they live in memory only).
                let id = &self.head().id;
                for peer in heads.iter_mut() {
                    peer.share_holders.1.remove(id);
                }
            }
            self.report_key_shares();
            let _ = self.events.send(HeadEvent::Down {
                head: self.head().id.clone(),
                rebuild,
                reason,
            });
            backoff = if started.elapsed() > STABLE_AFTER {
                Duration::ZERO
            } else {
                (backoff * 2 + Duration::from_millis(100)).min(MAX_BACKOFF)
            };
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.shutdown.changed() => return,
            }
        }
    }

    /// One process of the head: start it, serve it, and say how it ended.
    async fn process(
        &mut self,
        rebuild: u64,
        orders: &mut mpsc::UnboundedReceiver<Order>,
    ) -> Ended {
        let head = self.head().clone();
        let socket = self.config.socket_dir.join(format!("{}.sock", head.id));
        let _ = std::fs::remove_file(&socket);
        let listener = match UnixListener::bind(&socket) {
            Ok(l) => l,
            Err(e) => return Ended::Died(format!("cannot listen on {}: {e}", socket.display())),
        };
        let mut child = match (self.config.launcher)(&head, &socket)
            .kill_on_drop(true)
            .spawn()
        {
            Ok(child) => child,
            Err(e) => return Ended::Died(format!("cannot start its process: {e}")),
        };
        let connection = tokio::select! {
            accepted = tokio::time::timeout(self.config.start_timeout, listener.accept()) => match accepted {
                Ok(Ok((stream, _))) => stream,
                Ok(Err(e)) => return self.end(child, format!("its socket failed: {e}")).await,
                Err(_) => return self.end(child, format!("did not connect within {:?}", self.config.start_timeout)).await,
            },
            status = child.wait() => return Ended::Died(exit_reason(status)),
            _ = self.shutdown.changed() => return self.stop(child).await,
        };
        drop(listener);
        let _ = std::fs::remove_file(&socket);
        let (read_half, write_half) = connection.into_split();
        let mut lines = BufReader::new(read_half).lines();
        let (to_head, mut writer) = Writer::start(write_half);
        loop {
            tokio::select! {
                line = tokio::time::timeout(self.config.heartbeat_timeout, lines.next_line()) => {
                    let line = match line {
                        Err(_) => return self.end(child, format!("missed its heartbeats for {:?}", self.config.heartbeat_timeout)).await,
                        Ok(Err(e)) => return self.end(child, format!("its connection failed: {e}")).await,
                        Ok(Ok(None)) => {
                            // Closed: most often the process died; say how if it did.
                            let status = tokio::time::timeout(GRACE, child.wait()).await;
                            return match status {
                                Ok(status) => Ended::Died(exit_reason(status)),
                                Err(_) => self.end(child, "closed its connection".into()).await,
                            };
                        }
                        Ok(Ok(Some(line))) => line,
                    };
                    let message: FromHead = match serde_json::from_str(&line) {
                        Ok(m) => m,
                        Err(e) => return self.end(child, format!("sent a line that is not the protocol ({e})")).await,
                    };
                    let event = match message {
                        FromHead::Heartbeat => None,
                        FromHead::Hello { pid, backend, mailbox, .. } => {
                            self.update(|w| {
                                w.info.status = HeadStatus::Up;
                                w.info.pid = Some(pid);
                                w.info.backend = backend;
                            });
                            for order in self.welcome(&mailbox) {
                                let _ = to_head.send(encode(&order));
                            }
                            Some(HeadEvent::Up { head: head.id.clone(), rebuild })
                        }
                        FromHead::Share { to, envelope, epoch } => {
                            if let Some(slot) = self.config.heads.iter().position(|h| h.id == to) {
                                if let Some(epoch) = epoch {
                                    self.update(|w| w.share_dealt(epoch, &to));
                                }
                                self.relay(slot, ToHead::TakeShare { from: head.id.clone(), envelope });
                            }
                            None
                        }
                        FromHead::Replica { to, replica } => {
                            if let Some(slot) = self.config.heads.iter().position(|h| h.id == to) {
                                self.relay(slot, ToHead::Replica { from: head.id.clone(), replica });
                            }
                            None
                        }
                        FromHead::Keyed { epoch, restored, resealed, unreadable, recovered } => Some(HeadEvent::Keyed {
                            head: head.id.clone(), rebuild, epoch, restored,
                            // For a rebuilt head: the time since the dead head died.
                            rebuilt_in: self.update(|w| {
                                w.info.key_epoch = Some(epoch);
                                w.down_since.take().map(|since| since.elapsed())
                            }),
                            resealed, unreadable, recovered,
                        }),
                        FromHead::Progress { job_id, progress } => Some(HeadEvent::Progress {
                            head: head.id.clone(), rebuild, job_id, progress,
                        }),
                        FromHead::Finished { job_id, outcome, work } => Some(HeadEvent::Finished {
                            head: head.id.clone(), rebuild, job_id, outcome, work,
                        }),
                    };
                    if let Some(event) = event {
                        let _ = self.events.send(event);
                    }
                    self.report_key_shares();
                }
                Some(order) = orders.recv() => match order {
                    Order::Send(for_rebuild, order) => {
                        if for_rebuild.is_none_or(|g| g == rebuild) {
                            let _ = to_head.send(encode(&order));
                        }
                    }
                    Order::Kill(for_rebuild, reason) if for_rebuild == rebuild => {
                        return self.end(child, reason).await;
                    }
                    Order::Kill(..) => {}
                },
                written = &mut writer.0 => {
                    let reason = match written {
                        Ok(Err(e)) => format!("cannot be written to: {e}"),
                        _ => "its writer stopped".into(),
                    };
                    return self.end(child, reason).await;
                }
                status = child.wait() => return Ended::Died(exit_reason(status)),
                _ = self.shutdown.changed() => {
                    // The head reads the end of its connection and stops.
                    drop(writer);
                    return self.stop(child).await;
                }
            }
        }
    }

    /// Kills a head that is no longer fit to serve and says why: the way its process ended, when
    /// it had already (a head killed mid-line leaves half a line, or a connection reset).
    async fn end(&self, mut child: tokio::process::Child, reason: String) -> Ended {
        if let Ok(status) = tokio::time::timeout(Duration::from_millis(100), child.wait()).await {
            return Ended::Died(exit_reason(status));
        }
        let _ = child.start_kill();
        let _ = child.wait().await;
        Ended::Died(reason)
    }

    async fn stop(&self, mut child: tokio::process::Child) -> Ended {
        if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        self.update(|w| {
            w.info.status = HeadStatus::Down;
            w.info.pid = None;
        });
        Ended::Shutdown
    }
}

/// Writes to one head life on a task of its own, so that the watcher never stops reading the
/// head to write to it: a head that sends a large message (its sealed state, replicated) while
/// the watcher writes it one (a peer's, relayed) would otherwise wait on each other for good.
/// Dropping it stops the writing and closes the head's side.
struct Writer(tokio::task::JoinHandle<std::io::Result<()>>);

impl Writer {
    fn start(
        mut write_half: tokio::net::unix::OwnedWriteHalf,
    ) -> (mpsc::UnboundedSender<Vec<u8>>, Writer) {
        let (to_head, mut lines) = mpsc::unbounded_channel::<Vec<u8>>();
        let task = tokio::spawn(async move {
            while let Some(line) = lines.recv().await {
                write_half.write_all(&line).await?;
            }
            Ok(())
        });
        (to_head, Writer(task))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn exit_reason(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => format!("its process ended ({status})"),
        Err(e) => format!("its process cannot be waited for: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(key_epoch: Option<u32>) -> Watched {
        Watched {
            info: HeadInfo {
                id: "q0".into(),
                role: Role::Quantum,
                status: HeadStatus::Up,
                pid: None,
                backend: String::new(),
                restarts: 0,
                key_epoch,
                key_shares: 0,
            },
            mailbox: None,
            down_since: None,
            share_holders: Default::default(),
            key_shares_reported: 0,
        }
    }

    #[test]
    fn shares_count_for_the_key_the_head_seals_with_and_a_newer_key_starts_again() {
        let mut w = watched(None);
        w.share_dealt(1, "q1");
        // Dealt before the head said it has the key: not counted until it does.
        assert_eq!(w.info().key_shares, 0);
        w.info.key_epoch = Some(1);
        w.share_dealt(1, "a0");
        w.share_dealt(1, "a0");
        assert_eq!(w.info().key_shares, 2);
        // A rotation: the old shares open nothing new.
        w.share_dealt(2, "a1");
        assert_eq!(w.info().key_shares, 0);
        w.info.key_epoch = Some(2);
        assert_eq!(w.info().key_shares, 1);
        // A share of an older key, relayed late, counts for nothing.
        w.share_dealt(1, "q1");
        assert_eq!(w.info().key_shares, 1);
    }
}
