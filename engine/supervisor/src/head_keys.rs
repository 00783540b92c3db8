//! A head's keys: the [`Custody`] of its own key and of its shares of its peers' keys, driven by
//! the supervisor's key orders, and the head's state directory, whose files it seals.
//!
//! A file under the state directory is sealed bound to the head, the key epoch and the file's
//! place under that directory (which names the job and, for a checkpoint, its step): a sealed file
//! moved to another place, another job or another head does not open. Whenever the head's key
//! changes (a rotation, or the rotation after restoring its predecessor's key from two peers),
//! every file sealed under an older key is re-sealed under the new one before the head says so.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chimera_keys::{Binding, Custody, Mailbox, MailboxAddress, Outgoing, SealError, Taken};

use crate::protocol::{FromHead, ToHead};

/// How a head sends to the supervisor.
pub type Sender = dyn Fn(&FromHead) -> std::io::Result<()> + Send + Sync;

/// How long a head born again waits for two peers' shares of its predecessor's key before it
/// gives up on its predecessor's sealed state and makes a new key.
const RESTORE_DEADLINE: Duration = Duration::from_secs(3);

/// Written next to a file being sealed, then renamed over it.
const SEALING_SUFFIX: &str = ".sealing";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{0}: this head has no key yet (it is restoring its predecessor's)")]
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
    /// This life's mailbox, until `Keys` makes the custody that keeps it.
    mailbox: Mutex<Option<Mailbox>>,
    address: String,
    custody: Mutex<Option<Custody>>,
    keyed: Condvar,
}

/// What a re-seal of the state directory did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Resealed {
    files: u64,
    /// Files sealed under a key this head no longer has (a predecessor whose key could not be
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

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |error| StateError::Io {
        path: path.to_owned(),
        error,
    }
}

/// Writes `bytes` to `path` through a sibling renamed over it.
fn replace(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(SEALING_SUFFIX);
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, bytes).map_err(io_error(&temporary))?;
    std::fs::rename(&temporary, path).map_err(io_error(path))
}

impl HeadKeys {
    /// The keys of a new life of `head`, whose sealed state lives under `state_dir`.
    pub fn new(head: &str, state_dir: PathBuf) -> Self {
        let mailbox = Mailbox::generate();
        Self(Arc::new(Shared {
            head: head.to_owned(),
            state_dir,
            address: BASE64.encode(mailbox.address().to_bytes()),
            mailbox: Mutex::new(Some(mailbox)),
            custody: Mutex::new(None),
            keyed: Condvar::new(),
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

    /// Seals files bound to their places under the state directory. A re-seal waits while the
    /// sealer lives, so that it never misses a file sealed under the key it replaces: write the
    /// sealed files before dropping it.
    pub fn sealer(&self) -> Sealer<'_> {
        Sealer {
            keys: self,
            custody: lock(&self.0.custody),
        }
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
        let mut pending = vec![self.0.state_dir.clone()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                if path.to_string_lossy().ends_with(SEALING_SUFFIX) {
                    continue;
                }
                match self.reseal_file(custody, &path) {
                    Ok(true) => done.files += 1,
                    Ok(false) => {}
                    Err(e) => {
                        first_failure.get_or_insert(e);
                        done.unreadable += 1;
                    }
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

    fn reseal_file(&self, custody: &mut Custody, path: &Path) -> Result<bool, StateError> {
        let sealed = std::fs::read(path).map_err(io_error(path))?;
        if !custody.is_stale(&sealed) {
            return Ok(false);
        }
        let place = self.place(path)?;
        let plain = open_at(custody, path, &place, &sealed)?;
        let resealed = seal_at(custody, path, &place, &plain)?;
        replace(path, &resealed)?;
        Ok(true)
    }

    /// Carries out a key order of the supervisor.
    pub(crate) fn handle(&self, order: ToHead, send: &Arc<Sender>) -> std::io::Result<()> {
        let head = &self.0.head;
        if let ToHead::Keys {
            restore_epoch,
            peers,
        } = order
        {
            return self.begin(restore_epoch, &peers, send);
        }
        let mut guard = lock(&self.0.custody);
        let Some(custody) = guard.as_mut() else {
            return refused(head, "a key order came before `keys`; dropped");
        };
        match order {
            ToHead::Peer { id, mailbox } => match address(&mailbox) {
                Ok(address) => deal(
                    &**send,
                    custody.peer_address(&id, address).into_iter().collect(),
                ),
                Err(e) => refused(head, format!("peer {id}: {e}")),
            },
            ToHead::GiveShare { owner, mailbox } => match address(&mailbox) {
                Ok(address) => deal(
                    &**send,
                    custody.give_share(&owner, &address).into_iter().collect(),
                ),
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
            ToHead::Run { .. } | ToHead::Cancel { .. } | ToHead::Keys { .. } => Ok(()),
        }
    }

    fn begin(
        &self,
        restore_epoch: Option<u32>,
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
                let dealt = custody.new_key(1);
                self.keyed(&mut custody, dealt, false, send)?;
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
        if let Some(dealt) = custody.abandon_restore() {
            let _ = refused(
                &self.0.head,
                format!(
                    "fewer than two peers gave their shares of key epoch {epoch} within \
                     {RESTORE_DEADLINE:?}: what that key sealed stays closed; going on with a \
                     new key"
                ),
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
        let resealed = self.reseal(custody);
        deal(&**send, dealt)?;
        let epoch = custody.epoch().unwrap_or(0);
        self.0.keyed.notify_all();
        send(&FromHead::Keyed {
            epoch,
            restored,
            resealed: resealed.files,
            unreadable: resealed.unreadable,
        })
    }
}

/// See [`HeadKeys::sealer`].
pub struct Sealer<'a> {
    keys: &'a HeadKeys,
    custody: MutexGuard<'a, Option<Custody>>,
}

impl Sealer<'_> {
    /// Seals `bytes` bound to `path`, the place under the state directory where they will lie.
    pub fn seal(&mut self, path: &Path, bytes: &[u8]) -> Result<Vec<u8>, StateError> {
        let place = self.keys.place(path)?;
        let custody = self
            .custody
            .as_mut()
            .ok_or_else(|| StateError::NoKey(path.to_owned()))?;
        seal_at(custody, path, &place, bytes)
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
    use super::*;

    fn write(keys: &HeadKeys, path: &Path, bytes: &[u8]) -> Result<(), StateError> {
        let sealed = keys.sealer().seal(path, bytes)?;
        std::fs::write(path, sealed).map_err(io_error(path))
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

    /// A head's keys with its first key made, and what it sent.
    fn keyed_head(dir: &Path) -> (HeadKeys, Arc<Mutex<Vec<FromHead>>>) {
        let keys = HeadKeys::new("a0", dir.to_owned());
        let (sent, send) = recorder();
        let peers = ["a1", "q0", "q1"].map(String::from).to_vec();
        keys.handle(
            ToHead::Keys {
                restore_epoch: None,
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

    #[test]
    fn state_is_sealed_on_disk_and_bound_to_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let (keys, sent) = keyed_head(dir.path());
        assert!(matches!(
            lock(&sent).last(),
            Some(FromHead::Keyed {
                epoch: 1,
                restored: false,
                ..
            })
        ));
        let path = dir.path().join("runs/job/checkpoint.bin");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write(&keys, &path, b"model weights").unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert!(on_disk.starts_with(b"CHS1"));
        assert!(!on_disk.windows(13).any(|w| w == b"model weights"));
        assert_eq!(keys.read(&path).unwrap(), b"model weights");

        // Moved to another place (another job, another step) it does not open.
        let moved = dir.path().join("runs/other-job/checkpoint.bin");
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
            write(&keys, Path::new("/elsewhere"), b"x"),
            Err(StateError::Outside(_))
        ));
    }

    #[test]
    fn a_rotation_reseals_the_state_under_the_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let (keys, _) = keyed_head(dir.path());
        let paths: Vec<PathBuf> = (0..3)
            .map(|i| dir.path().join(format!("runs/job/step-{i}")))
            .collect();
        std::fs::create_dir_all(dir.path().join("runs/job")).unwrap();
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
            let on_disk = std::fs::read(path).unwrap();
            assert_eq!(chimera_keys::HeadKey::epoch_of(&on_disk), Ok(2));
            assert_eq!(
                keys.read(path).unwrap(),
                format!("checkpoint {i}").as_bytes()
            );
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
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint");
        {
            let (keys, _) = keyed_head(dir.path());
            write(&keys, &path, b"sealed by a head whose key is gone").unwrap();
        }
        // A new head life with a first key of its own, as after a restart of the whole engine.
        let (keys, _) = keyed_head(dir.path());
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
}
