//! A head's keys (`../shared/DESIGN.md`, "Keys, shares and sealing").
//!
//! - [`sealing`]: each head's AES-256 key, with which it seals (AES-256-GCM) everything of its
//!   state that leaves its memory, bound to the head id, job id and a sequence number.
//! - [`shares`]: that key split by Shamir sharing, 2 of 3, among the head's three peers.
//! - [`mailbox`]: ML-KEM-768 envelopes, so that shares cross the supervisor as ciphertext only.
//! - [`wrapping`]: keys kept at rest, wrapped under a key-encryption key (the operator's unseal
//!   key, or one it wraps); [`at_rest`]: products sealed at rest under a data key.
//!
//! Nothing here knows of processes or sockets: the engine moves the bytes.

pub mod at_rest;
pub mod custody;
pub mod mailbox;
pub mod sealing;
pub mod shares;
pub mod wrapping;

pub use at_rest::{DataSealer, OpenError};
pub use custody::{Custody, CustodyError, Outgoing, Taken};
pub use mailbox::{Mailbox, MailboxAddress, MailboxError};
pub use sealing::{Binding, HeadKey, SealError, SealingKey};
pub use shares::{KeyShare, ShareError};
pub use wrapping::{Secret, WrapError};

/// Fills `bytes` from the operating system's generator.
fn random(bytes: &mut [u8]) {
    // Without an OS generator no key can be made at all; there is nothing sensible to go on with.
    getrandom::fill(bytes).expect("the operating system's random generator failed");
}
