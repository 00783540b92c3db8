//! The one client key the targets sign with, and a trust store that allows it everything.

use chimera_maml::{ANY_TYPE, SecretKey, TrustStore};
use std::sync::LazyLock;

pub static KEY: LazyLock<SecretKey> = LazyLock::new(|| SecretKey::from_seed(&[1; 32]));
pub static TRUST: LazyLock<TrustStore> = LazyLock::new(|| {
    let mut trust = TrustStore::new();
    trust.add("fuzz", KEY.public_key(), vec![ANY_TYPE.into()], jiff::Timestamp::UNIX_EPOCH).unwrap();
    trust
});
