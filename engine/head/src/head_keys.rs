//! A head's keys: the [`Custody`] of its own key and of its shares of its peers' keys, driven by
//! the supervisor's key orders, and the head's state directory, whose files it seals.
//!
//! A file under the state directory is sealed bound to the head, the key epoch and the file's
//! place under that directory (which names the job and, for a checkpoint, its step): a sealed file
//! moved to another place, another job or another head does not open. Whenever the head's key
//! changes (a rotation, or the rotation after restoring the dead head's key from two peers),
//! every file sealed under an older key is re-sealed under the new one before the head says so.
//!
//! Every change to the state directory is replicated to the three peers, which hold the sealed
//! files without being able to open them ([`crate::replicas`]). A rebuilt head takes back what
//! its peers hold before it re-seals: a file its directory lost, or that does not open there, is
//! recovered from a peer's replica that opens under the restored key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chimera_keys::shares::THRESHOLD;
use chimera_keys::{
    Binding, Custody, DataSealer, Mailbox, MailboxAddress, Outgoing, SealError, Taken,
};

use crate::at_rest::{AtRest, key_from_text};

use crate::files;
use crate::replicas::{self, ReplicaStore};
use chimera_supervisor::protocol::{FromHead, KeyText, Replica, SealedFile, ToHead};

/// How a head sends to the supervisor.
pub type Sender = dyn Fn(&FromHead) -> std::io::Result<()> + Send + Sync;

/// How long a rebuilt head waits for two peers' shares of the dead head's key before it
/// gives up on the dead head's sealed state and makes a new key. Restores take about 0.1 s,
/// up to 1.5 s seen with 24 engines on 2 cores; giving up loses that state, so the wait is
/// generous (and shorter than a job's wait for its head's key, `worker::KEYED_WAIT`).
const RESTORE_DEADLINE: Duration = Duration::from_secs(6);

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{0}: this head has no key yet (it is restoring the dead head's)")]
    NoKey(PathBuf),
    #[error("{0} is outside the head's state directory")]
    Outside(PathBuf),
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {error}")]
    Sealed { path: PathBuf, error: SealError },
}

impl From<StateError> for std::io::Error {
    fn from(error: StateError) -> Self {
        match error {
            StateError::Io { error, .. } => error,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

/// A head's keys; clones share them.
#[derive(Clone)]
pub struct HeadKeys(Arc<Shared>);

impl std::fmt::Debug for HeadKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadKeys")
            .field("head", &self.0.head)
            .field("state_dir", &self.0.state_dir)
            .finish_non_exhaustive()
    }
}

struct Shared {
    head: String,
    state_dir: PathBuf,
    /// What this head holds of its peers' state.
    replicas: ReplicaStore,
    /// How it reaches the supervisor, from the first key order on.
    send: OnceLock<Arc<Sender>>,
    /// A rebuilt head: its state as its peers gave it back, by place, until it has a key.
    given_back: Mutex<HashMap<String, Vec<Vec<u8>>>>,
    /// This life's mailbox, until `Keys` makes the custody that keeps it.
    mailbox: Mutex<Option<Mailbox>>,
    address: String,
    custody: Mutex<Option<Custody>>,
    keyed: Condvar,
    /// What it keeps at rest with, as the supervisor sends it.
    at_rest: OnceLock<AtRest>,
}

/// What a re-seal of the state directory did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Resealed {
    files: u64,
    /// Files sealed under a key this head no longer has (a dead head whose key could not be
    /// restored): they stay as they are, and stay closed.
    unreadable: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A refused key message is reported and dropped: a relay that garbles one envelope must not take
/// the head down (a restore then gives up at its deadline).
fn refused(head: &str, what: impl std::fmt::Display) -> std::io::Result<()> {
    eprintln!("chimera head {head}: key custody: {what}");
    Ok(())
}

/// Sends each share in `dealt`: of this head's own key of `epoch`, or (none) a peer's given back.
fn deal(send: &Sender, dealt: Vec<Outgoing>, epoch: Option<u32>) -> std::io::Result<()> {
    for Outgoing { to, envelope } in dealt {
        send(&FromHead::Share {
            to,
            envelope: BASE64.encode(envelope),
            epoch,
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

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |error| StateError::Io {
        path: path.to_owned(),
        error,
    }
}

/// Sends `replica` to each of `peers`.
fn replicate(send: &Sender, peers: &[String], replica: &Replica) {
    for peer in peers {
        // A lost connection ends the head's life soon after; its state stays on its own disk.
        let _ = send(&FromHead::Replica {
            to: peer.clone(),
            replica: replica.clone(),
        });
    }
}

impl HeadKeys {
    /// The keys of a new life of `head`: its sealed state lives under `DATA/heads/HEAD`, the
    /// replicas it holds of its peers' under `DATA/replicas/HEAD`.
    pub fn new(head: &str, data_dir: &Path) -> Self {
        let mailbox = Mailbox::generate();
        Self(Arc::new(Shared {
            head: head.to_owned(),
            state_dir: data_dir.join("heads").join(head),
            replicas: ReplicaStore::new(data_dir.join("replicas").join(head)),
            send: OnceLock::new(),
            given_back: Mutex::default(),
            address: BASE64.encode(mailbox.address().to_bytes()),
            mailbox: Mutex::new(Some(mailbox)),
            custody: Mutex::new(None),
            keyed: Condvar::new(),
            at_rest: OnceLock::new(),
        }))
    }

    pub fn state_dir(&self) -> &Path {
        &self.0.state_dir
    }

    /// This life's mailbox address, base64, for its hello.
    pub(crate) fn mailbox_address(&self) -> String {
        self.0.address.clone()
    }

    /// Waits until the head has a key to seal with, at most `timeout`; whether it has one.
    pub fn wait_keyed(&self, timeout: Duration) -> bool {
        let keyed = |c: &mut Option<Custody>| c.as_ref().and_then(Custody::epoch).is_some();
        let guard = lock(&self.0.custody);
        let (mut guard, _) = self
            .0
            .keyed
            .wait_timeout_while(guard, timeout, |c| !keyed(c))
            .unwrap_or_else(|p| p.into_inner());
        keyed(&mut guard)
    }

    /// The file's place under the state directory: what it is bound to.
    fn place(&self, path: &Path) -> Result<String, StateError> {
        path.strip_prefix(&self.0.state_dir)
            .ok()
            .and_then(Path::to_str)
            .map(str::to_owned)
            .ok_or_else(|| StateError::Outside(path.to_owned()))
    }

    /// Makes `dir`, under the state directory, a directory holding exactly `contents` (name,
    /// bytes), each file sealed bound to its place, whole or not at all; and replicates it to the
    /// peers.
    pub fn write_directory(
        &self,
        dir: &Path,
        contents: &[(&str, Vec<u8>)],
    ) -> Result<(), StateError> {
        let place = self.place(dir)?;
        // Held until the peers are sent the directory: a re-seal (which replicates everything
        // again) comes before or after, never between.
        let mut guard = lock(&self.0.custody);
        let custody = guard
            .as_mut()
            .ok_or_else(|| StateError::NoKey(dir.to_owned()))?;
        let sealed = contents
            .iter()
            .map(|(name, bytes)| {
                let path = dir.join(name);
                let place = self.place(&path)?;
                Ok((*name, seal_at(custody, &path, &place, bytes)?))
            })
            .collect::<Result<Vec<_>, StateError>>()?;
        files::replace_directory(dir, &sealed).map_err(io_error(dir))?;
        if let Some(send) = self.0.send.get() {
            let files = sealed
                .iter()
                .map(|(name, bytes)| replicas::encode((*name).to_owned(), bytes))
                .collect();
            replicate(
                &**send,
                custody.peers(),
                &Replica::Directory { place, files },
            );
        }
        Ok(())
    }

    /// Removes the file or directory `path` of the state directory, here and at the peers.
    pub fn remove(&self, path: &Path) -> Result<(), StateError> {
        let place = self.place(path)?;
        let guard = lock(&self.0.custody);
        files::remove(path).map_err(io_error(path))?;
        if let (Some(send), Some(custody)) = (self.0.send.get(), guard.as_ref()) {
            replicate(&**send, custody.peers(), &Replica::Removed { place });
        }
        Ok(())
    }

    /// Reads and opens the sealed file `path`.
    pub fn read(&self, path: &Path) -> Result<Vec<u8>, StateError> {
        let place = self.place(path)?;
        let sealed = std::fs::read(path).map_err(io_error(path))?;
        let custody = lock(&self.0.custody);
        let custody = custody
            .as_ref()
            .ok_or_else(|| StateError::NoKey(path.to_owned()))?;
        open_at(custody, path, &place, &sealed)
    }

    /// Re-seals under the current key every file of the state directory sealed under an older
    /// one that this head can still open.
    fn reseal(&self, custody: &mut Custody) -> Resealed {
        let mut done = Resealed::default();
        let mut first_failure = None;
        for path in files::files_under(&self.0.state_dir) {
            match self.reseal_file(custody, &path) {
                Ok(true) => done.files += 1,
                Ok(false) => {}
                Err(e) => {
                    first_failure.get_or_insert(e);
                    done.unreadable += 1;
                }
            }
        }
        if let Some(first) = first_failure {
            let _ = refused(
                &self.0.head,
                format!(
                    "{} file(s) of its state not re-sealed: left by an interrupted write, or \
                     sealed under a key it does not hold (the first: {first})",
                    done.unreadable
                ),
            );
        }
        done
    }

    /// A rebuilt head, holding the dead head's key: takes back from what its peers gave
    /// every file its state directory lacks or cannot open; how many.
    fn recover(&self, custody: &Custody) -> u64 {
        let given_back = std::mem::take(&mut *lock(&self.0.given_back));
        let mut recovered = 0;
        for (place, candidates) in given_back {
            let Ok(relative) = replicas::place_path(&place) else {
                continue;
            };
            let path = self.0.state_dir.join(relative);
            let opens = |sealed: &[u8]| open_at(custody, &path, &place, sealed).is_ok();
            if std::fs::read(&path).is_ok_and(|own| opens(&own)) {
                continue;
            }
            let Some(good) = candidates.iter().find(|c| opens(c)) else {
                continue;
            };
            match files::replace(&path, good) {
                Ok(()) => recovered += 1,
                Err(e) => {
                    let _ = refused(&self.0.head, format!("{}: {e}", path.display()));
                }
            }
        }
        recovered
    }

    /// Sends each peer the whole state directory, replacing what it held.
    fn replicate_all(&self, peers: &[String], send: &Sender) {
        let files = files::files_under(&self.0.state_dir)
            .into_iter()
            .filter_map(|path| {
                let place = self.place(&path).ok()?;
                let sealed = std::fs::read(&path).ok()?;
                Some(Replica::File {
                    place,
                    sealed: replicas::base64(&sealed),
                })
            })
            .collect::<Vec<_>>();
        for peer in peers {
            let peer = std::slice::from_ref(peer);
            replicate(send, peer, &Replica::Cleared);
            for file in &files {
                replicate(send, peer, file);
            }
        }
    }

    fn reseal_file(&self, custody: &mut Custody, path: &Path) -> Result<bool, StateError> {
        let sealed = std::fs::read(path).map_err(io_error(path))?;
        if !custody.is_stale(&sealed) {
            return Ok(false);
        }
        let place = self.place(path)?;
        let plain = open_at(custody, path, &place, &sealed)?;
        let resealed = seal_at(custody, path, &place, &plain)?;
        files::replace(path, &resealed).map_err(io_error(path))?;
        Ok(true)
    }

    /// The key of stored models, once the supervisor has sent it.
    pub(crate) fn models(&self) -> Option<Arc<DataSealer>> {
        self.0.at_rest.get()?.models.clone()
    }

    /// Carries out a key order of the supervisor.
    pub(crate) fn handle(&self, order: ToHead, send: &Arc<Sender>) -> std::io::Result<()> {
        let head = &self.0.head;
        let _ = self.0.send.set(Arc::clone(send));
        let order = match order {
            ToHead::Replica { from, replica } => return self.replica(&from, replica),
            ToHead::AtRest {
                engine,
                wrapping_key,
                models_key,
            } => return self.take_at_rest(engine, &wrapping_key.0, models_key),
            order => order,
        };
        if let ToHead::Keys {
            restore_epoch,
            restore_shares,
            peers,
        } = order
        {
            return self.begin(restore_epoch, restore_shares, &peers, send);
        }
        let mut guard = lock(&self.0.custody);
        let Some(custody) = guard.as_mut() else {
            return refused(head, "a key order came before `keys`; dropped");
        };
        match order {
            ToHead::Peer { id, mailbox } => match address(&mailbox) {
                Ok(address) => {
                    // A rebuilt peer may hold nothing of this head's state; one restoring its
                    // key gets all of it with the rest once it has one.
                    let epoch = custody.epoch();
                    if epoch.is_some() {
                        self.replicate_all(std::slice::from_ref(&id), &**send);
                    }
                    deal(
                        &**send,
                        custody.peer_address(&id, address).into_iter().collect(),
                        epoch,
                    )
                }
                Err(e) => refused(head, format!("peer {id}: {e}")),
            },
            ToHead::GiveShare { owner, mailbox } => match address(&mailbox) {
                Ok(address) => {
                    // The state first: it is there when the share completes the owner's key.
                    match self.0.replicas.held(&owner) {
                        Ok(files) if !files.is_empty() => {
                            let given = Replica::GivenBack { files };
                            replicate(&**send, std::slice::from_ref(&owner), &given);
                        }
                        Ok(_) => {}
                        Err(e) => refused(head, format!("the replica of {owner}: {e}"))?,
                    }
                    deal(
                        &**send,
                        custody.give_share(&owner, &address).into_iter().collect(),
                        None,
                    )
                }
                Err(e) => refused(head, format!("new {owner}: {e}")),
            },
            ToHead::TakeShare { from, envelope } => {
                let taken = BASE64
                    .decode(&envelope)
                    .map_err(|e| format!("an envelope from {from} that is not base64: {e}"))
                    .and_then(|bytes| custody.take(&from, &bytes).map_err(|e| e.to_string()));
                match taken {
                    Ok(Taken::Restored { .. }) => {
                        let dealt = custody.rotate();
                        self.keyed(custody, dealt, true, send)
                    }
                    Ok(Taken::Held { .. } | Taken::Collecting { .. } | Taken::Spare) => Ok(()),
                    Err(e) => refused(head, e),
                }
            }
            ToHead::Rotate => {
                let dealt = custody.rotate();
                self.keyed(custody, dealt, false, send)
            }
            ToHead::Run { .. }
            | ToHead::Cancel { .. }
            | ToHead::Keys { .. }
            | ToHead::Replica { .. }
            | ToHead::AtRest { .. } => Ok(()),
        }
    }

    /// A change to a peer's replica, or this head's own state given back.
    /// Keeps what the supervisor sent to keep at rest with; keys that are not keys are refused
    /// as a garbled key order is (the head then keeps nothing at rest, and stores no model).
    fn take_at_rest(
        &self,
        engine: String,
        wrapping_key: &str,
        models_key: Option<KeyText>,
    ) -> std::io::Result<()> {
        let Some(wrapping_key) = key_from_text(wrapping_key) else {
            return refused(&self.0.head, "its wrapping key is not 32 bytes in base64");
        };
        let models = match models_key.map(|k| key_from_text(&k.0)) {
            Some(None) => {
                return refused(
                    &self.0.head,
                    "the key of stored models is not 32 bytes in base64",
                );
            }
            Some(Some(key)) => Some(key),
            None => None,
        };
        let _ = self
            .0
            .at_rest
            .set(AtRest::new(engine, wrapping_key, models));
        Ok(())
    }

    /// The keys this head's life before a start of the whole engine kept, if it kept any: a
    /// file that does not open is said, and the head goes on with a new key (what the old keys
    /// sealed stays closed).
    fn unwrapped_keys(&self) -> Vec<chimera_keys::HeadKey> {
        let Some(at_rest) = self.0.at_rest.get() else {
            return Vec::new();
        };
        at_rest
            .kept(&self.0.head, &self.0.state_dir)
            .unwrap_or_else(|e| {
                let _ = refused(&self.0.head, format!("its kept keys do not open: {e}"));
                Vec::new()
            })
    }

    /// Keeps, wrapped, every key whose sealing may be in the state (a failure is said: the
    /// keys then live in memory only, as before the engine sealed at rest).
    fn keep_keys(&self, custody: &Custody) {
        if let Some(at_rest) = self.0.at_rest.get()
            && let Err(e) = at_rest.keep(&self.0.state_dir, custody.kept())
        {
            let _ = refused(&self.0.head, format!("its keys cannot be kept: {e}"));
        }
    }

    fn replica(&self, from: &str, replica: Replica) -> std::io::Result<()> {
        let head = &self.0.head;
        let Replica::GivenBack { files } = replica else {
            return match self.0.replicas.apply(from, replica) {
                Ok(()) => Ok(()),
                Err(e) => refused(head, format!("a replica change from {from}: {e}")),
            };
        };
        let restoring = lock(&self.0.custody)
            .as_ref()
            .is_none_or(|c| c.epoch().is_none());
        if !restoring {
            // The third peer's copy, arriving after two others' shares completed the restore.
            return Ok(());
        }
        let mut given_back = lock(&self.0.given_back);
        for SealedFile { name, sealed } in files {
            match replicas::decode(&name, &sealed) {
                Ok(bytes) => given_back.entry(name).or_default().push(bytes),
                Err(e) => refused(head, format!("state given back by {from}: {e}"))?,
            }
        }
        Ok(())
    }

    fn begin(
        &self,
        restore_epoch: Option<u32>,
        restore_shares: u32,
        peers: &[String],
        send: &Arc<Sender>,
    ) -> std::io::Result<()> {
        let head = &self.0.head;
        let Some(mailbox) = lock(&self.0.mailbox).take() else {
            return refused(head, "a second `keys`; dropped");
        };
        let mut custody = Custody::new(head, peers, mailbox);
        let mut guard = lock(&self.0.custody);
        match restore_epoch {
            None => {
                // A first life: its keys from before a start of the whole engine, if it kept any.
                let unwrapped = self.unwrapped_keys();
                let restored = !unwrapped.is_empty();
                let dealt = match restored {
                    true => custody.unwrapped(unwrapped),
                    false => custody.new_key(1),
                };
                self.keyed(&mut custody, dealt, restored, send)?;
            }
            Some(epoch) if (restore_shares as usize) < THRESHOLD => {
                custody.expect_restore(epoch);
                self.give_up_restore(
                    &mut custody,
                    &format!(
                        "{restore_shares} live peer(s) hold a share of key epoch {epoch}, and \
                         a restore needs {THRESHOLD}"
                    ),
                    send,
                );
            }
            Some(epoch) => {
                custody.expect_restore(epoch);
                let (keys, send) = (self.clone(), Arc::clone(send));
                std::thread::Builder::new()
                    .name("restore-deadline".into())
                    .spawn(move || keys.restore_deadline(epoch, &send))?;
            }
        }
        *guard = Some(custody);
        Ok(())
    }

    /// After [`RESTORE_DEADLINE`], gives up a restore that has not completed.
    fn restore_deadline(&self, epoch: u32, send: &Arc<Sender>) {
        std::thread::sleep(RESTORE_DEADLINE);
        let mut guard = lock(&self.0.custody);
        let Some(custody) = guard.as_mut() else {
            return;
        };
        self.give_up_restore(
            custody,
            &format!(
                "fewer than {THRESHOLD} peers gave their shares of key epoch {epoch} within \
                 {RESTORE_DEADLINE:?}"
            ),
            send,
        );
    }

    /// Gives up the restore under way, if any (`why`): what the dead head's key sealed stays
    /// closed, and the head goes on with a new key.
    fn give_up_restore(&self, custody: &mut Custody, why: &str, send: &Arc<Sender>) {
        if let Some(dealt) = custody.abandon_restore() {
            let _ = refused(
                &self.0.head,
                format!("{why}: what that key sealed stays closed; going on with a new key"),
            );
            let _ = self.keyed(custody, dealt, false, send);
        }
    }

    /// The head has a new key: re-seal its state under it, deal its shares, say so, and wake the
    /// jobs waiting for it.
    fn keyed(
        &self,
        custody: &mut Custody,
        dealt: Vec<Outgoing>,
        restored: bool,
        send: &Arc<Sender>,
    ) -> std::io::Result<()> {
        let recovered = if restored {
            self.recover(custody)
        } else {
            // Sealed under a key this life will never hold.
            lock(&self.0.given_back).clear();
            0
        };
        self.keep_keys(custody);
        let resealed = self.reseal(custody);
        custody.forget_unwrapped();
        self.keep_keys(custody);
        deal(&**send, dealt, custody.epoch())?;
        // The peers' replicas are sealed under the old key: all of the state again.
        self.replicate_all(custody.peers(), &**send);
        let epoch = custody.epoch().unwrap_or(0);
        self.0.keyed.notify_all();
        send(&FromHead::Keyed {
            epoch,
            restored,
            resealed: resealed.files,
            unreadable: resealed.unreadable,
            recovered,
        })
    }
}

/// Seals `bytes` under the current key, bound to `place` (that of `path`).
fn seal_at(
    custody: &mut Custody,
    path: &Path,
    place: &str,
    bytes: &[u8],
) -> Result<Vec<u8>, StateError> {
    let key = custody
        .key()
        .ok_or_else(|| StateError::NoKey(path.to_owned()))?;
    key.seal(binding(place), bytes)
        .map_err(|error| StateError::Sealed {
            path: path.to_owned(),
            error,
        })
}

/// Opens `sealed`, bound to `place` (that of `path`), under the current or the previous key.
fn open_at(
    custody: &Custody,
    path: &Path,
    place: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, StateError> {
    custody
        .open(binding(place), sealed)
        .map_err(|error| StateError::Sealed {
            path: path.to_owned(),
            error,
        })
}

fn binding(place: &str) -> Binding<'_> {
    Binding {
        job: place,
        sequence: 0,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// Writes one sealed file, alone in its directory.
    fn write(keys: &HeadKeys, path: &Path, bytes: &[u8]) -> Result<(), StateError> {
        let name = path.file_name().unwrap().to_str().unwrap();
        keys.write_directory(path.parent().unwrap(), &[(name, bytes.to_vec())])
    }

    /// A sender that keeps what is sent.
    fn recorder() -> (Arc<Mutex<Vec<FromHead>>>, Arc<Sender>) {
        let sent: Arc<Mutex<Vec<FromHead>>> = Arc::default();
        let kept = Arc::clone(&sent);
        let send: Arc<Sender> = Arc::new(move |m: &FromHead| {
            lock(&kept).push(m.clone());
            Ok(())
        });
        (sent, send)
    }

    const PEERS: [&str; 3] = ["a1", "q0", "q1"];

    /// Head a0's keys with its first key made, and what it sent.
    fn keyed_head(data: &Path) -> (HeadKeys, Arc<Mutex<Vec<FromHead>>>) {
        let keys = HeadKeys::new("a0", data);
        let (sent, send) = recorder();
        let peers = PEERS.map(String::from).to_vec();
        keys.handle(
            ToHead::Keys {
                restore_epoch: None,
                restore_shares: 0,
                peers,
            },
            &send,
        )
        .unwrap();
        assert!(keys.wait_keyed(Duration::ZERO));
        (keys, sent)
    }

    fn rotate(keys: &HeadKeys) -> Vec<FromHead> {
        let (sent, send) = recorder();
        keys.handle(ToHead::Rotate, &send).unwrap();
        std::mem::take(&mut *lock(&sent))
    }

    fn epoch_of(path: &Path) -> u32 {
        chimera_keys::HeadKey::epoch_of(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn state_is_sealed_on_disk_and_bound_to_its_place() {
        let data = tempfile::tempdir().unwrap();
        let (keys, sent) = keyed_head(data.path());
        assert!(matches!(
            lock(&sent).last(),
            Some(FromHead::Keyed {
                epoch: 1,
                restored: false,
                ..
            })
        ));
        let path = keys.state_dir().join("runs/job/checkpoint.bin");
        write(&keys, &path, b"model weights").unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert!(on_disk.starts_with(b"CHS1"));
        assert!(!on_disk.windows(13).any(|w| w == b"model weights"));
        assert_eq!(keys.read(&path).unwrap(), b"model weights");

        // Moved to another place (another job, another step) it does not open.
        let moved = keys.state_dir().join("runs/other-job/checkpoint.bin");
        std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
        std::fs::copy(&path, &moved).unwrap();
        assert!(matches!(
            keys.read(&moved),
            Err(StateError::Sealed {
                error: SealError::DoesNotOpen,
                ..
            })
        ));
        assert!(matches!(
            write(&keys, Path::new("/elsewhere/x"), b"x"),
            Err(StateError::Outside(_))
        ));
    }

    #[test]
    fn a_rotation_reseals_the_state_under_the_new_key() {
        let data = tempfile::tempdir().unwrap();
        let (keys, _) = keyed_head(data.path());
        let paths: Vec<PathBuf> = (0..3)
            .map(|i| keys.state_dir().join(format!("runs/job/step-{i}/weights")))
            .collect();
        for (i, path) in paths.iter().enumerate() {
            write(&keys, path, format!("checkpoint {i}").as_bytes()).unwrap();
        }
        let sent = rotate(&keys);
        let Some(FromHead::Keyed {
            epoch: 2,
            resealed: 3,
            unreadable: 0,
            ..
        }) = sent.last()
        else {
            panic!("{sent:?}")
        };
        for (i, path) in paths.iter().enumerate() {
            assert_eq!(epoch_of(path), 2);
            assert_eq!(
                keys.read(path).unwrap(),
                format!("checkpoint {i}").as_bytes()
            );
        }
        // Each peer is sent the re-sealed state in place of what it held.
        for peer in PEERS {
            let to_peer: Vec<&Replica> = sent
                .iter()
                .filter_map(|m| match m {
                    FromHead::Replica { to, replica } if to == peer => Some(replica),
                    _ => None,
                })
                .collect();
            assert_eq!(to_peer.len(), 4, "{peer}: {to_peer:?}");
            assert_eq!(to_peer[0], &Replica::Cleared);
        }
        // Two rotations on, nothing is left under epoch 1 that would now be closed.
        let sent = rotate(&keys);
        assert!(matches!(
            sent.last(),
            Some(FromHead::Keyed {
                epoch: 3,
                resealed: 3,
                unreadable: 0,
                ..
            })
        ));
    }

    #[test]
    fn state_of_a_key_nobody_holds_stays_closed() {
        let data = tempfile::tempdir().unwrap();
        let path = data.path().join("heads/a0/checkpoint/weights");
        {
            let (keys, _) = keyed_head(data.path());
            write(&keys, &path, b"sealed by a head whose key is gone").unwrap();
        }
        // A new head life with a first key of its own, as after a restart of the whole engine.
        let (keys, _) = keyed_head(data.path());
        assert!(keys.read(&path).is_err());
        let sent = rotate(&keys);
        assert!(matches!(
            sent.last(),
            Some(FromHead::Keyed {
                resealed: 0,
                unreadable: 1,
                ..
            })
        ));
    }

    /// Four heads that talk through a relay as the supervisor's.
    struct Heads {
        data: PathBuf,
        keys: HashMap<String, HeadKeys>,
        sent: Arc<Mutex<VecDeque<(String, FromHead)>>>,
        keyed: Vec<(String, FromHead)>,
    }

    impl Heads {
        fn start(data: &Path) -> Self {
            let mut heads = Self {
                data: data.to_owned(),
                keys: HashMap::new(),
                sent: Arc::default(),
                keyed: Vec::new(),
            };
            for id in ["a0", "a1", "q0", "q1"] {
                heads.born(id, None);
            }
            heads
        }

        fn sender(&self, id: &str) -> Arc<Sender> {
            let (sent, id) = (Arc::clone(&self.sent), id.to_owned());
            Arc::new(move |m: &FromHead| {
                lock(&sent).push_back((id.clone(), m.clone()));
                Ok(())
            })
        }

        /// Gives `to` an order; as the supervisor's, a relay to a head not started is lost.
        fn order(&self, to: &str, order: ToHead) {
            if let Some(keys) = self.keys.get(to) {
                keys.handle(order, &self.sender(to)).unwrap();
            }
        }

        /// A new life of `id`: its keys order, and its peers told of it, as the supervisor does.
        /// Every head started holds a share of every other's key.
        fn born(&mut self, id: &str, restore_epoch: Option<u32>) {
            let keys = HeadKeys::new(id, &self.data);
            let mailbox = keys.mailbox_address();
            self.keys.insert(id.to_owned(), keys);
            let peers: Vec<String> = self.keys.keys().filter(|p| *p != id).cloned().collect();
            let all = ["a0", "a1", "q0", "q1"].map(String::from);
            let restorable = restore_epoch.is_some() && peers.len() >= THRESHOLD;
            let restore = ToHead::Keys {
                restore_epoch,
                restore_shares: peers.len() as u32,
                peers: all.iter().filter(|p| *p != id).cloned().collect(),
            };
            self.order(id, restore);
            for peer in &peers {
                let peer_mailbox = self.keys[peer].mailbox_address();
                self.order(
                    id,
                    ToHead::Peer {
                        id: peer.clone(),
                        mailbox: peer_mailbox,
                    },
                );
                let (owner, mailbox) = (id.to_owned(), mailbox.clone());
                self.order(
                    peer,
                    ToHead::Peer {
                        id: owner.clone(),
                        mailbox: mailbox.clone(),
                    },
                );
                if restorable {
                    self.order(peer, ToHead::GiveShare { owner, mailbox });
                }
            }
            self.relay();
        }

        /// Delivers what the heads sent until they are quiet.
        fn relay(&mut self) {
            loop {
                let Some((from, message)) = lock(&self.sent).pop_front() else {
                    return;
                };
                match message {
                    FromHead::Share { to, envelope, .. } => self.order(
                        &to,
                        ToHead::TakeShare {
                            from: from.clone(),
                            envelope,
                        },
                    ),
                    FromHead::Replica { to, replica } => self.order(
                        &to,
                        ToHead::Replica {
                            from: from.clone(),
                            replica,
                        },
                    ),
                    keyed @ FromHead::Keyed { .. } => self.keyed.push((from, keyed)),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn a_head_born_again_recovers_what_its_directory_lost_from_its_peers_replicas() {
        let data = tempfile::tempdir().unwrap();
        let mut heads = Heads::start(data.path());
        let a0 = heads.keys["a0"].clone();
        let run = a0.state_dir().join("runs/job");
        for step in 1..=3 {
            let dir = run.join(format!("step-{step}"));
            let contents = [
                ("weights", format!("weights {step}").into_bytes()),
                ("progress", format!("progress {step}").into_bytes()),
            ];
            a0.write_directory(&dir, &contents).unwrap();
        }
        a0.remove(&run.join("step-1")).unwrap();
        heads.relay();

        // Each peer holds a0's state as a0 has it, and cannot open it.
        for peer in PEERS {
            let held = data.path().join("replicas").join(peer).join("a0");
            let files = files::files_under(&held);
            assert_eq!(files.len(), 4, "{peer}: {files:?}");
            for file in files {
                let place = file.strip_prefix(&held).unwrap();
                let own = a0.state_dir().join(place);
                assert_eq!(std::fs::read(&file).unwrap(), std::fs::read(&own).unwrap());
                assert!(
                    heads.keys[peer].read(&own).is_err(),
                    "{peer} opened {place:?}"
                );
            }
        }

        // a0 dies; its directory loses one checkpoint and a file of the other is damaged.
        std::fs::remove_dir_all(run.join("step-2")).unwrap();
        let damaged = run.join("step-3/weights");
        let mut bytes = std::fs::read(&damaged).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&damaged, bytes).unwrap();
        heads.born("a0", Some(1));

        let Some((
            _,
            FromHead::Keyed {
                epoch,
                restored,
                recovered,
                unreadable,
                ..
            },
        )) = heads.keyed.iter().rev().find(|(id, _)| id == "a0")
        else {
            panic!("a0 never keyed: {:?}", heads.keyed)
        };
        assert_eq!((*epoch, *restored), (2, true));
        assert_eq!((*recovered, *unreadable), (3, 0));
        let a0 = heads.keys["a0"].clone();
        for step in 2..=3 {
            for name in ["weights", "progress"] {
                let path = run.join(format!("step-{step}/{name}"));
                assert_eq!(a0.read(&path).unwrap(), format!("{name} {step}").as_bytes());
                assert_eq!(epoch_of(&path), 2);
            }
        }
        assert!(!run.join("step-1").exists());
        // And its peers hold the state re-sealed under its new key.
        for peer in PEERS {
            let held = data.path().join("replicas").join(peer).join("a0");
            let files = files::files_under(&held);
            assert_eq!(files.len(), 4, "{peer}");
            assert!(files.iter().all(|f| epoch_of(f) == 2), "{peer}");
        }
    }

    #[test]
    fn a_peer_born_again_with_no_replica_is_sent_all_of_it() {
        let data = tempfile::tempdir().unwrap();
        let mut heads = Heads::start(data.path());
        let a0 = heads.keys["a0"].clone();
        let dir = a0.state_dir().join("runs/job/step-1");
        a0.write_directory(&dir, &[("weights", b"w".to_vec())])
            .unwrap();
        heads.relay();
        let held = data.path().join("replicas/q1/a0/runs/job/step-1/weights");
        assert!(held.exists());

        // q1 comes back on a disk that lost its replicas.
        std::fs::remove_dir_all(data.path().join("replicas/q1")).unwrap();
        heads.born("q1", Some(1));
        assert_eq!(
            std::fs::read(&held).unwrap(),
            std::fs::read(dir.join("weights")).unwrap()
        );
        // State given back to a head that is not restoring is dropped.
        let given = Replica::GivenBack {
            files: vec![replicas::encode("runs/x".into(), b"forged")],
        };
        heads.order(
            "a0",
            ToHead::Replica {
                from: "q1".into(),
                replica: given,
            },
        );
        assert!(lock(&a0.0.given_back).is_empty());
    }

    /// With one peer alive holding a share, the key cannot come back: the rebuilt head says
    /// so at once, with a new key, rather than wait out the restore deadline.
    #[test]
    fn a_head_with_one_share_alive_gives_up_its_key_at_once() {
        let data = tempfile::tempdir().unwrap();
        let mut heads = Heads::start(data.path());
        let file = heads.keys["a0"].state_dir().join("runs/job/progress");
        write(&heads.keys["a0"], &file, b"step 1").unwrap();
        heads.relay();

        // a0, q0 and q1 die; only a1 holds a share of a0's key.
        for id in ["a0", "q0", "q1"] {
            heads.keys.remove(id);
        }
        heads.born("a0", Some(1));
        let a0 = heads.keys["a0"].clone();
        assert!(
            a0.wait_keyed(Duration::ZERO),
            "a0 waits for shares that cannot come"
        );
        let Some((_, keyed)) = heads.keyed.iter().rev().find(|(id, _)| id == "a0") else {
            panic!("a0 never keyed: {:?}", heads.keyed)
        };
        assert!(
            matches!(
                keyed,
                FromHead::Keyed {
                    epoch: 2,
                    restored: false,
                    unreadable: 1,
                    ..
                }
            ),
            "{keyed:?}"
        );
        assert!(a0.read(&file).is_err());
    }
}
