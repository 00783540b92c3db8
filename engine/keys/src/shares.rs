//! A head key split 2 of 3 with Shamir sharing over GF(256) (`blahaj`), one share for each of the
//! head's three peers: one peer alone learns nothing of the key, any two restore it.
//!
//! A share is `CHK1`, the key's epoch (u32, big-endian), the share's x (1 to 3), its 32 y bytes,
//! the key's check value ([`HeadKey::check_value`], 32 bytes), then the owner head's id. The check
//! value lets a restored key be known right before anything is opened with it; being a SHA3-256
//! commitment to a random 256-bit key, it tells a holder nothing it could use.

use zeroize::Zeroizing;

use crate::sealing::{HeadKey, KEY_BYTES, check_value};

pub const SHARES: usize = 3;
pub const THRESHOLD: usize = 2;
const MAGIC: &[u8; 4] = b"CHK1";
const FIXED_BYTES: usize = MAGIC.len() + 4 + 1 + KEY_BYTES + 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShareError {
    #[error("{have} distinct share(s) of a key that needs {THRESHOLD}")]
    TooFew { have: usize },
    #[error(
        "the shares are of different keys ({first} and {other}); restore a key from shares of \
         one head and one epoch"
    )]
    Mixed { first: String, other: String },
    #[error("two different shares claim the same place (x = {0}); one of them is forged")]
    Conflicting(u8),
    #[error("not a key share: {0}")]
    Malformed(&'static str),
    #[error(
        "the shares put together a key that fails its check value: at least one share is forged \
         or damaged"
    )]
    WrongKey,
}

/// One peer's share of a head's key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyShare {
    owner: String,
    epoch: u32,
    x: u8,
    y: Zeroizing<[u8; KEY_BYTES]>,
    check: [u8; 32],
}

impl std::fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyShare")
            .field("owner", &self.owner)
            .field("epoch", &self.epoch)
            .field("x", &self.x)
            .finish_non_exhaustive()
    }
}

impl KeyShare {
    /// The head whose key this is a share of.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Which of the three shares it is (1 to 3).
    pub fn index(&self) -> u8 {
        self.x
    }

    fn of(&self) -> String {
        format!("{} epoch {}", self.owner, self.epoch)
    }

    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(FIXED_BYTES + self.owner.len()));
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.epoch.to_be_bytes());
        bytes.push(self.x);
        bytes.extend_from_slice(self.y.as_slice());
        bytes.extend_from_slice(&self.check);
        bytes.extend_from_slice(self.owner.as_bytes());
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ShareError> {
        if bytes.len() <= FIXED_BYTES || &bytes[..4] != MAGIC {
            return Err(ShareError::Malformed("too short or without CHK1"));
        }
        let x = bytes[8];
        if !(1..=SHARES as u8).contains(&x) {
            return Err(ShareError::Malformed("x is not 1, 2 or 3"));
        }
        let mut y = Zeroizing::new([0u8; KEY_BYTES]);
        y.copy_from_slice(&bytes[9..9 + KEY_BYTES]);
        let owner = std::str::from_utf8(&bytes[FIXED_BYTES..])
            .map_err(|_| ShareError::Malformed("the owner is not UTF-8"))?;
        Ok(Self {
            owner: owner.to_owned(),
            epoch: u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes")),
            x,
            y,
            check: bytes[9 + KEY_BYTES..FIXED_BYTES]
                .try_into()
                .expect("32 bytes"),
        })
    }
}

/// Splits `key` into three shares, any two of which restore it.
pub fn split(key: &HeadKey) -> [KeyShare; SHARES] {
    let check = key.check_value();
    let mut dealt = blahaj::Sharks(THRESHOLD as u8).dealer(key.secret());
    std::array::from_fn(|_| {
        // blahaj's byte form of a share: x, then the y bytes.
        let point = Zeroizing::new(Vec::from(&dealt.next().expect("a dealer gives 255 shares")));
        let mut y = Zeroizing::new([0u8; KEY_BYTES]);
        y.copy_from_slice(&point[1..]);
        KeyShare {
            owner: key.head().to_owned(),
            epoch: key.epoch(),
            x: point[0],
            y,
            check,
        }
    })
}

/// Restores a key from at least two distinct shares of it. The key can open what was sealed under
/// it, never seal: a head that restores its key rotates to a new one.
pub fn restore(shares: &[KeyShare]) -> Result<HeadKey, ShareError> {
    let Some(first) = shares.first() else {
        return Err(ShareError::TooFew { have: 0 });
    };
    let mut distinct: Vec<&KeyShare> = Vec::with_capacity(SHARES);
    for share in shares {
        if (share.owner.as_str(), share.epoch, share.check)
            != (first.owner.as_str(), first.epoch, first.check)
        {
            return Err(ShareError::Mixed {
                first: first.of(),
                other: share.of(),
            });
        }
        match distinct.iter().find(|d| d.x == share.x) {
            Some(same) if same.y != share.y => return Err(ShareError::Conflicting(share.x)),
            Some(_) => {}
            None => distinct.push(share),
        }
    }
    if distinct.len() < THRESHOLD {
        return Err(ShareError::TooFew {
            have: distinct.len(),
        });
    }
    let points: Vec<blahaj::Share> = distinct
        .iter()
        .map(|s| {
            let point = Zeroizing::new([&[s.x][..], s.y.as_slice()].concat());
            blahaj::Share::try_from(point.as_slice()).expect("33 bytes make a share")
        })
        .collect();
    let recovered = Zeroizing::new(blahaj::Sharks(THRESHOLD as u8).recover(&points).map_err(
        |_| ShareError::TooFew {
            have: distinct.len(),
        },
    )?);
    let mut secret = Zeroizing::new([0u8; KEY_BYTES]);
    secret.copy_from_slice(&recovered);
    if check_value(&first.owner, first.epoch, &secret) != first.check {
        return Err(ShareError::WrongKey);
    }
    Ok(HeadKey::from_secret(&first.owner, first.epoch, secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealing::{Binding, SealingKey};

    const AT: Binding<'static> = Binding {
        job: "job",
        sequence: 0,
    };

    #[test]
    fn any_two_shares_restore_the_key() {
        let mut key = SealingKey::generate("a0", 2);
        let sealed = key.seal(AT, b"checkpoint").unwrap();
        let shares = split(key.key());
        for (i, j) in [(0, 1), (0, 2), (1, 2), (2, 0)] {
            let restored = restore(&[shares[i].clone(), shares[j].clone()]).unwrap();
            assert_eq!(restored.epoch(), 2);
            assert_eq!(restored.open(AT, &sealed).unwrap(), b"checkpoint");
        }
        assert!(restore(&shares).is_ok());
    }

    #[test]
    fn one_share_alone_opens_nothing() {
        let key = SealingKey::generate("q0", 1);
        let shares = split(key.key());
        for share in &shares {
            assert_eq!(
                restore(std::slice::from_ref(share)).unwrap_err(),
                ShareError::TooFew { have: 1 }
            );
            // The same share twice is still one share.
            assert_eq!(
                restore(&[share.clone(), share.clone()]).unwrap_err(),
                ShareError::TooFew { have: 1 }
            );
        }
    }

    /// One share is a uniformly random point: for a fixed share, every candidate secret byte has a
    /// polynomial through it, so the share says nothing of the key. Check the other side of that:
    /// the shares of one key, dealt many times, take many values at every byte.
    #[test]
    fn a_share_is_independent_of_the_key() {
        let key = SealingKey::generate("q1", 1);
        let mut seen = [[false; 256]; KEY_BYTES];
        for _ in 0..2000 {
            let share = &split(key.key())[0];
            for (byte, value) in share.y.iter().enumerate() {
                seen[byte][*value as usize] = true;
            }
        }
        for (byte, values) in seen.iter().enumerate() {
            let distinct = values.iter().filter(|&&v| v).count();
            // 2000 uniform draws over 256 values miss more than 56 with probability < 1e-20.
            assert!(
                distinct >= 200,
                "byte {byte} of share 1 took {distinct} values"
            );
        }
    }

    #[test]
    fn a_forged_or_damaged_share_is_caught_by_the_check_value() {
        let key = SealingKey::generate("a1", 1);
        let shares = split(key.key());
        let mut forged = shares[1].clone();
        forged.y[5] ^= 0x40;
        assert_eq!(
            restore(&[shares[0].clone(), forged.clone()]).unwrap_err(),
            ShareError::WrongKey
        );
        assert_eq!(
            restore(&[shares[1].clone(), forged]).unwrap_err(),
            ShareError::Conflicting(shares[1].index())
        );
    }

    #[test]
    fn shares_of_different_keys_do_not_mix() {
        let old = SealingKey::generate("a0", 1);
        let new = SealingKey::successor(old.key());
        let old_shares = split(old.key());
        let new_shares = split(new.key());
        let err = restore(&[old_shares[0].clone(), new_shares[1].clone()]).unwrap_err();
        assert!(matches!(err, ShareError::Mixed { .. }), "{err}");
        let other_head = split(SealingKey::generate("a1", 1).key());
        let err = restore(&[old_shares[0].clone(), other_head[1].clone()]).unwrap_err();
        assert!(matches!(err, ShareError::Mixed { .. }), "{err}");
    }

    #[test]
    fn after_rotation_old_shares_open_nothing_new() {
        let old = SealingKey::generate("q0", 7);
        let old_shares = split(old.key());
        let mut new = SealingKey::successor(old.key());
        let sealed_after = new.seal(AT, b"state sealed after the rotation").unwrap();
        let from_old = restore(&old_shares[..2]).unwrap();
        assert!(from_old.open(AT, &sealed_after).is_err());
    }

    #[test]
    fn shares_round_trip_through_bytes_and_refuse_garbage() {
        let key = SealingKey::generate("a0", 9);
        for share in split(key.key()) {
            let back = KeyShare::from_bytes(&share.to_bytes()).unwrap();
            assert_eq!(back, share);
            assert_eq!(back.owner(), "a0");
            assert_eq!(back.epoch(), 9);
        }
        let good = split(key.key())[0].to_bytes();
        assert!(KeyShare::from_bytes(&good[..FIXED_BYTES]).is_err());
        let mut zero_x = good.to_vec();
        zero_x[8] = 0;
        assert!(KeyShare::from_bytes(&zero_x).is_err());
        assert!(
            KeyShare::from_bytes(b"CHK0 not a share at all, but long enough to be read as one")
                .is_err()
        );
    }
}
