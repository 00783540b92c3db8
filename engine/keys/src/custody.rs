//! What one head does with keys, as messages in and messages out (no sockets here: the engine
//! relays the messages and cannot read them).
//!
//! - At its first birth a head makes a key (epoch 1) and deals its three shares to its three
//!   peers, share *i* to the *i*-th peer in id order, each sealed to that peer's mailbox.
//! - It keeps its own three shares so that a peer that comes back (with a new mailbox and
//!   nothing it held) gets its share again, and it holds the latest share of each peer's key.
//! - A rebuilt head asks its peers (through the supervisor) for the shares of the
//!   dead head's key; with two it restores that key, open-only, and rotates: a new key of the
//!   next epoch, new shares to every peer. The key before the current one (restored, or replaced
//!   by a rotation) still opens what it sealed, so that the head can re-seal its state under the
//!   new key; the next rotation drops it. Shares of an old key open nothing sealed after it.

use std::collections::BTreeMap;

use crate::mailbox::{Mailbox, MailboxAddress, MailboxError};
use crate::sealing::{Binding, HeadKey, SealError, SealingKey};
use crate::shares::{self, KeyShare, ShareError};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CustodyError {
    #[error("an envelope from {from}: {error}")]
    Envelope { from: String, error: MailboxError },
    #[error("a share from {from}: {error}")]
    Share { from: String, error: ShareError },
    #[error("{from} sent a share of its own key; a head's own shares are only dealt, never held")]
    OwnShareFromOwner { from: String },
    #[error("a share of {owner}'s key epoch {epoch} arrived, but no restore of it is under way")]
    Unasked { owner: String, epoch: u32 },
}

/// A share on its way to a peer, sealed to that peer's mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub to: String,
    pub envelope: Vec<u8>,
}

/// What an incoming share did.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// A share of a peer's key, now held for it.
    Held { owner: String, epoch: u32 },
    /// A share of the dead head's key, for this head's rebuild; `have` of the two needed so far.
    Collecting { have: usize },
    /// The dead head's key is restored: [`Custody::previous`] opens its state.
    Restored { epoch: u32 },
    /// A share of a key this head already restored or replaced (a third peer answering after
    /// two did): nothing to do.
    Spare,
}

pub struct Custody {
    head: String,
    /// The other heads, in id order: share i + 1 is dealt to `peers[i]`.
    peers: Vec<String>,
    mailbox: Mailbox,
    addresses: BTreeMap<String, MailboxAddress>,
    key: Option<SealingKey>,
    dealt: Vec<KeyShare>,
    held: BTreeMap<String, KeyShare>,
    /// The dead head's key epoch while its shares are being collected.
    restoring: Option<(u32, Vec<KeyShare>)>,
    /// The key before the current one: restored from shares, or replaced by the last rotation.
    previous: Option<HeadKey>,
    /// The keys of this head's life before a start of the whole engine, unwrapped from the data
    /// directory: they open what they sealed until the state is re-sealed.
    unwrapped: Vec<HeadKey>,
}

/// What an envelope carrying a share says it is, as associated data: a share relayed to another
/// head or claimed to come from another one does not open.
fn context(from: &str, to: &str) -> Vec<u8> {
    format!("chimera key share from {from} to {to}").into_bytes()
}

impl Custody {
    /// `peers`: the ids of the three other heads; `mailbox`: this head life's, whose address the
    /// supervisor already has.
    pub fn new(head: &str, peers: &[String], mailbox: Mailbox) -> Self {
        let mut peers = peers.to_vec();
        peers.sort();
        Self {
            head: head.to_owned(),
            peers,
            mailbox,
            addresses: BTreeMap::new(),
            key: None,
            dealt: Vec::new(),
            held: BTreeMap::new(),
            restoring: None,
            previous: None,
            unwrapped: Vec::new(),
        }
    }

    /// Takes back `keys`, this head's from before a start of the whole engine (the data
    /// directory kept them wrapped), and makes a new key of the epoch after them: the keys
    /// open what they sealed, and the new one's shares are returned to deal.
    pub fn unwrapped(&mut self, keys: Vec<HeadKey>) -> Vec<Outgoing> {
        let last = keys.iter().map(HeadKey::epoch).max().unwrap_or(0);
        self.unwrapped = keys;
        self.new_key(last + 1)
    }

    /// The state is re-sealed under the current key: the unwrapped keys open nothing more.
    pub fn forget_unwrapped(&mut self) {
        self.unwrapped.clear();
    }

    /// Every key whose sealing may still be in the state: the current one, the previous one and
    /// those unwrapped at the start. What the data directory keeps, wrapped.
    pub fn kept(&self) -> impl Iterator<Item = &HeadKey> {
        let current = self.key.as_ref().map(SealingKey::key);
        current
            .into_iter()
            .chain(self.previous.as_ref())
            .chain(&self.unwrapped)
    }

    pub fn address(&self) -> MailboxAddress {
        self.mailbox.address()
    }

    /// The ids of the other heads, sorted.
    pub fn peers(&self) -> &[String] {
        &self.peers
    }

    /// The epoch of the key this head seals with, once it has one.
    pub fn epoch(&self) -> Option<u32> {
        self.key.as_ref().map(|k| k.key().epoch())
    }

    /// The key this head seals with, once it has one.
    pub fn key(&mut self) -> Option<&mut SealingKey> {
        self.key.as_mut()
    }

    /// The key before the current one (the dead head's, restored from shares, or the one the
    /// last rotation replaced): it opens what it sealed and seals nothing.
    pub fn previous(&self) -> Option<&HeadKey> {
        self.previous.as_ref()
    }

    /// Opens a blob sealed under the current key, the previous one or one unwrapped at the start.
    pub fn open(&self, binding: Binding<'_>, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let epoch = HeadKey::epoch_of(sealed)?;
        let key = self.kept().find(|k| k.epoch() == epoch);
        match key {
            Some(key) => key.open(binding, sealed),
            None => Err(SealError::OtherEpoch {
                sealed: epoch,
                held: self.key.as_ref().map_or(0, |k| k.key().epoch()),
            }),
        }
    }

    /// Whether `sealed` is under an older key than the current one (and should be re-sealed).
    pub fn is_stale(&self, sealed: &[u8]) -> bool {
        let current = self.key.as_ref().map(|k| k.key().epoch());
        HeadKey::epoch_of(sealed).is_ok_and(|epoch| Some(epoch) != current)
    }

    /// Shares of peers' keys held here, by owner: (epoch, which share).
    pub fn held(&self) -> BTreeMap<String, (u32, u8)> {
        self.held
            .iter()
            .map(|(owner, s)| (owner.clone(), (s.epoch(), s.index())))
            .collect()
    }

    /// A peer's mailbox is known (it was born, or rebuilt): it gets its share of this head's
    /// key, if this head has one and that peer is owed one.
    pub fn peer_address(&mut self, peer: &str, address: MailboxAddress) -> Option<Outgoing> {
        self.addresses.insert(peer.to_owned(), address);
        self.deal_to(peer)
    }

    /// Makes a new key of `epoch` and deals its shares to every peer whose mailbox is known (the
    /// others get theirs when their address arrives). The first key, and every rotation.
    pub fn new_key(&mut self, epoch: u32) -> Vec<Outgoing> {
        let key = SealingKey::generate(&self.head, epoch);
        self.dealt = shares::split(key.key()).to_vec();
        if let Some(replaced) = self.key.replace(key) {
            self.previous = Some(replaced.retire());
        }
        self.peers
            .clone()
            .iter()
            .filter_map(|p| self.deal_to(p))
            .collect()
    }

    /// Rotates to the next epoch's key (after the current key, or after the restored one).
    pub fn rotate(&mut self) -> Vec<Outgoing> {
        let epoch = self
            .key
            .as_ref()
            .map(|k| k.key().epoch())
            .or(self.previous.as_ref().map(HeadKey::epoch))
            .unwrap_or(0);
        self.new_key(epoch + 1)
    }

    fn deal_to(&self, peer: &str) -> Option<Outgoing> {
        let index = self.peers.iter().position(|p| p == peer)?;
        let share = self.dealt.get(index)?;
        let address = self.addresses.get(peer)?;
        Some(Outgoing {
            to: peer.to_owned(),
            envelope: address.seal(&context(&self.head, peer), &share.to_bytes()),
        })
    }

    /// This head is a rebuild of one that died with a key of `epoch`: collect the shares of it.
    pub fn expect_restore(&mut self, epoch: u32) {
        self.restoring = Some((epoch, Vec::new()));
    }

    /// Gives up a restore that did not complete (too few peers answered): a new key of the next
    /// epoch, whose shares are returned to deal. What the dead head sealed stays closed. `None`
    /// when no restore was under way.
    pub fn abandon_restore(&mut self) -> Option<Vec<Outgoing>> {
        let (epoch, _) = self.restoring.take()?;
        Some(self.new_key(epoch + 1))
    }

    /// Gives the share this head holds of `owner`'s key to `owner`'s new life at `to`.
    pub fn give_share(&self, owner: &str, to: &MailboxAddress) -> Option<Outgoing> {
        let share = self.held.get(owner)?;
        Some(Outgoing {
            to: owner.to_owned(),
            envelope: to.seal(&context(&self.head, owner), &share.to_bytes()),
        })
    }

    /// An envelope relayed from `from`.
    pub fn take(&mut self, from: &str, envelope: &[u8]) -> Result<Taken, CustodyError> {
        let bytes = self
            .mailbox
            .open(&context(from, &self.head), envelope)
            .map_err(|error| CustodyError::Envelope {
                from: from.to_owned(),
                error,
            })?;
        let share = KeyShare::from_bytes(&bytes).map_err(|error| CustodyError::Share {
            from: from.to_owned(),
            error,
        })?;
        if share.owner() != self.head {
            if share.owner() == from {
                // A peer dealing its own key: hold the latest epoch's share.
                let newer = self
                    .held
                    .get(from)
                    .is_none_or(|h| h.epoch() <= share.epoch());
                let taken = Taken::Held {
                    owner: from.to_owned(),
                    epoch: share.epoch(),
                };
                if newer {
                    self.held.insert(from.to_owned(), share);
                }
                return Ok(taken);
            }
            return Err(CustodyError::Unasked {
                owner: share.owner().to_owned(),
                epoch: share.epoch(),
            });
        }
        if from == self.head {
            return Err(CustodyError::OwnShareFromOwner {
                from: from.to_owned(),
            });
        }
        let Some((epoch, collected)) = self.restoring.as_mut() else {
            let current = self.key.as_ref().map_or(0, |k| k.key().epoch());
            if share.epoch() < current {
                return Ok(Taken::Spare);
            }
            return Err(CustodyError::Unasked {
                owner: share.owner().to_owned(),
                epoch: share.epoch(),
            });
        };
        if share.epoch() != *epoch {
            return Err(CustodyError::Unasked {
                owner: share.owner().to_owned(),
                epoch: share.epoch(),
            });
        }
        collected.push(share);
        match shares::restore(collected) {
            Ok(key) => {
                let epoch = key.epoch();
                self.previous = Some(key);
                self.restoring = None;
                Ok(Taken::Restored { epoch })
            }
            Err(ShareError::TooFew { have }) => Ok(Taken::Collecting { have }),
            Err(error) => {
                // Drop what was collected: a bad share must not poison the next attempt.
                collected.clear();
                Err(CustodyError::Share {
                    from: from.to_owned(),
                    error,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: [&str; 4] = ["a0", "a1", "q0", "q1"];

    fn custody(head: &str) -> Custody {
        let peers: Vec<String> = IDS
            .iter()
            .filter(|p| **p != head)
            .map(|p| p.to_string())
            .collect();
        Custody::new(head, &peers, Mailbox::generate())
    }

    /// Four heads that know each other's mailboxes, with their first keys dealt and held.
    struct Engine {
        heads: BTreeMap<String, Custody>,
    }

    impl Engine {
        fn start() -> Self {
            let mut heads: BTreeMap<String, Custody> =
                IDS.iter().map(|id| (id.to_string(), custody(id))).collect();
            let addresses: Vec<(String, MailboxAddress)> = heads
                .iter()
                .map(|(id, c)| (id.clone(), c.address()))
                .collect();
            for (id, head) in heads.iter_mut() {
                for (peer, address) in &addresses {
                    if peer != id {
                        assert_eq!(head.peer_address(peer, address.clone()), None);
                    }
                }
            }
            let mut engine = Self { heads };
            for id in IDS {
                let out = engine.head(id).new_key(1);
                assert_eq!(out.len(), 3);
                engine.relay(id, out);
            }
            engine
        }

        fn head(&mut self, id: &str) -> &mut Custody {
            self.heads.get_mut(id).unwrap()
        }

        /// What the supervisor does: hand each envelope to its addressee.
        fn relay(&mut self, from: &str, out: Vec<Outgoing>) -> Vec<Taken> {
            out.into_iter()
                .map(|o| self.head(&o.to).take(from, &o.envelope).unwrap())
                .collect()
        }

        /// `id` dies and a new life of it starts, expecting to restore `epoch`.
        fn rebuilt(&mut self, id: &str, epoch: u32) {
            let mut new = custody(id);
            new.expect_restore(epoch);
            let address = new.address();
            self.heads.insert(id.to_owned(), new);
            let peers: Vec<String> = IDS
                .iter()
                .filter(|p| **p != id)
                .map(|p| p.to_string())
                .collect();
            for peer in &peers {
                let own = self.head(peer).address();
                assert_eq!(self.head(id).peer_address(peer, own), None);
                // The peer learns the new mailbox: it deals its own share to it again.
                let dealt = self.head(peer).peer_address(id, address.clone()).unwrap();
                self.relay(peer, vec![dealt]);
            }
        }
    }

    #[test]
    fn every_head_holds_one_share_of_each_peer() {
        let mut engine = Engine::start();
        for id in IDS {
            let held = engine.head(id).held();
            assert_eq!(held.len(), 3, "{id} holds {held:?}");
            assert!(held.values().all(|(epoch, _)| *epoch == 1));
        }
        // Each owner's three shares sit with three different holders as three different points.
        for owner in IDS {
            let mut points: Vec<u8> = IDS
                .iter()
                .filter(|h| **h != owner)
                .map(|h| engine.head(h).held()[owner].1)
                .collect();
            points.sort();
            assert_eq!(points, [1, 2, 3]);
        }
    }

    #[test]
    fn a_rebuilt_head_restores_its_key_from_two_peers_then_rotates() {
        let mut engine = Engine::start();
        let sealed = engine
            .head("a0")
            .key()
            .unwrap()
            .seal(
                Binding {
                    job: "train",
                    sequence: 3,
                },
                b"checkpoint",
            )
            .unwrap();
        engine.rebuilt("a0", 1);
        let to = engine.head("a0").address();
        let first = engine.head("q0").give_share("a0", &to).unwrap();
        assert_eq!(
            engine.relay("q0", vec![first]),
            [Taken::Collecting { have: 1 }]
        );
        assert!(
            engine.head("a0").previous().is_none(),
            "one share opened something"
        );
        let second = engine.head("a1").give_share("a0", &to).unwrap();
        assert_eq!(
            engine.relay("a1", vec![second]),
            [Taken::Restored { epoch: 1 }]
        );
        let third = engine.head("q1").give_share("a0", &to).unwrap();
        let restored = engine.head("a0").previous().unwrap();
        assert_eq!(
            restored
                .open(
                    Binding {
                        job: "train",
                        sequence: 3
                    },
                    &sealed
                )
                .unwrap(),
            b"checkpoint"
        );

        let out = engine.head("a0").rotate();
        assert_eq!(out.len(), 3);
        assert_eq!(engine.relay("q1", vec![third]), [Taken::Spare]);
        engine.relay("a0", out);
        assert_eq!(engine.head("a0").key().unwrap().key().epoch(), 2);
        for peer in ["a1", "q0", "q1"] {
            assert_eq!(
                engine.head(peer).held()["a0"].0,
                2,
                "{peer} holds an old share"
            );
        }

        // Re-sealing: the restored key still opens the old blob, the new key seals it again.
        let at = Binding {
            job: "train",
            sequence: 3,
        };
        let a0 = engine.head("a0");
        assert!(a0.is_stale(&sealed));
        let plain = a0.open(at, &sealed).unwrap();
        let resealed = a0.key().unwrap().seal(at, &plain).unwrap();
        assert!(!a0.is_stale(&resealed));
        // One more rotation and the epoch-1 key is gone; the re-sealed blob still opens.
        a0.rotate();
        assert_eq!(
            a0.open(at, &sealed),
            Err(SealError::OtherEpoch { sealed: 1, held: 3 })
        );
        assert_eq!(a0.open(at, &resealed).unwrap(), b"checkpoint");
    }

    #[test]
    fn a_share_relayed_to_the_wrong_head_or_from_a_lying_sender_does_not_open() {
        let mut engine = Engine::start();
        engine.rebuilt("q1", 1);
        let to = engine.head("q1").address();
        let share = engine.head("a0").give_share("q1", &to).unwrap();
        // The relay claims it came from a1.
        let err = engine.head("q1").take("a1", &share.envelope).unwrap_err();
        assert!(matches!(err, CustodyError::Envelope { .. }), "{err}");
        // Or hands it to another head.
        let err = engine.head("q0").take("a0", &share.envelope).unwrap_err();
        assert!(matches!(err, CustodyError::Envelope { .. }), "{err}");
    }

    #[test]
    fn a_restore_that_gets_too_few_shares_gives_up_for_a_new_key() {
        let mut engine = Engine::start();
        engine.rebuilt("q0", 1);
        let to = engine.head("q0").address();
        let one = engine.head("q1").give_share("q0", &to).unwrap();
        engine.relay("q1", vec![one]);
        let dealt = engine.head("q0").abandon_restore().unwrap();
        assert_eq!(dealt.len(), 3);
        assert!(engine.head("q0").previous().is_none());
        assert_eq!(engine.head("q0").key().unwrap().key().epoch(), 2);
        assert_eq!(engine.head("q0").abandon_restore(), None);
    }

    #[test]
    fn a_share_nobody_asked_for_is_refused() {
        let mut engine = Engine::start();
        let own = engine.head("q0").address();
        // q0 is not restoring: a share of its own key is not taken.
        let share = engine.head("a0").give_share("q0", &own).unwrap();
        let err = engine.head("q0").take("a0", &share.envelope).unwrap_err();
        assert_eq!(
            err,
            CustodyError::Unasked {
                owner: "q0".into(),
                epoch: 1
            }
        );
    }
}
