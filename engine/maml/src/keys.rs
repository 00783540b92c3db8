//! ML-DSA-65 key pairs and their files.
//!
//! Files are the standard PEM encodings, so OpenSSL 3.5 and other FIPS 204 tools read them too:
//! the secret key is PKCS#8 `PRIVATE KEY` holding the 32-byte seed (RFC 9881's seed form), the
//! public key is SubjectPublicKeyInfo `PUBLIC KEY`. A key's id is the SHA3-256 of its raw
//! 1,952-byte public key, in hex.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ml_dsa::{EncodedVerifyingKey, MlDsa65, Signature, SigningKey, VerifyingKey};
use pkcs8::der::pem::LineEnding;
use pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use sha3::{Digest, Sha3_256};

use crate::files::{with_suffix, write_atomically};

/// Bytes of an encoded ML-DSA-65 signature.
pub const SIGNATURE_BYTES: usize = 3309;
/// Bytes of an encoded ML-DSA-65 public key.
pub const PUBLIC_KEY_BYTES: usize = 1952;

/// FIPS 204 context string of every MAML signature: a signature made for a MAML document can
/// never be replayed as a signature over anything else signed with the same key.
const CONTEXT: &[u8] = b"MAML";
/// The context string of a client's proof that it asks for a job (`crate::proof`), so that
/// neither kind of signature can pass for the other.
pub(crate) const REQUEST_CONTEXT: &[u8] = b"chimera-request";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    // Not `source`: the message already carries the I/O error, so a chain would repeat it.
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot write {path}: there is no directory {dir}; create it first (`mkdir -p {dir}`)")]
    NoDirectory { path: PathBuf, dir: PathBuf },
    #[error("{path} already exists; choose another prefix or pass --force to replace the key pair")]
    Exists { path: PathBuf },
    #[error("{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{path} holds a public key, but a secret key (the PREFIX.key file) is needed here")]
    PublicNotSecret { path: PathBuf },
    #[error("{path} holds a secret key; give the public key (the PREFIX.pub file) instead")]
    SecretNotPublic { path: PathBuf },
    #[error("{path} is not an ML-DSA-65 {what} PEM file: {detail}")]
    Malformed {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
    #[error("a public key is {PUBLIC_KEY_BYTES} bytes of ML-DSA-65; got {0}")]
    PublicKeyLength(usize),
    #[error("the operating system gave no random bytes: {0}")]
    Random(getrandom::Error),
}

/// A key id: SHA3-256 of the raw public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 32]);

impl KeyId {
    fn of(public_key: &[u8]) -> Self {
        Self(Sha3_256::digest(public_key).into())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = hex::FromHexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut id = [0u8; 32];
        hex::decode_to_slice(s, &mut id)?;
        Ok(Self(id))
    }
}

/// An ML-DSA-65 public key with its id. Decoding expands the key's matrix once, so a key kept
/// (as the trust store keeps them) verifies faster than one decoded per document.
#[derive(Clone)]
pub struct PublicKey {
    key: VerifyingKey<MlDsa65>,
    id: KeyId,
}

impl PublicKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let encoded = EncodedVerifyingKey::<MlDsa65>::try_from(bytes)
            .map_err(|_| KeyError::PublicKeyLength(bytes.len()))?;
        Ok(Self {
            key: VerifyingKey::decode(&encoded),
            id: KeyId::of(bytes),
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.key.encode().to_vec()
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .expect("an ML-DSA-65 public key always encodes")
    }

    /// Reads a `PUBLIC KEY` PEM; `path` only names the source in errors.
    pub fn from_pem(pem: &str, path: &Path) -> Result<Self, KeyError> {
        if pem.contains("PRIVATE KEY-----") {
            return Err(KeyError::SecretNotPublic { path: path.into() });
        }
        let key =
            VerifyingKey::<MlDsa65>::from_public_key_pem(pem).map_err(|e| KeyError::Malformed {
                path: path.into(),
                what: "public key",
                detail: e.to_string(),
            })?;
        Ok(Self {
            id: KeyId::of(&key.encode()),
            key,
        })
    }

    pub fn read_file(path: &Path) -> Result<Self, KeyError> {
        Self::from_pem(&read_to_string(path)?, path)
    }

    /// Checks `signature` over `message` (for MAML, the document's SHA3-512 digest).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verify_in(CONTEXT, message, signature)
    }

    pub(crate) fn verify_in(&self, context: &[u8], message: &[u8], signature: &[u8]) -> bool {
        Signature::<MlDsa65>::try_from(signature)
            .is_ok_and(|s| self.key.verify_with_context(message, context, &s))
    }

    /// ML-DSA.Verify_internal of FIPS 204 on a prepared message M′, for the NIST ACVP vectors,
    /// which test that layer; MAML signatures go through [`PublicKey::verify`].
    #[doc(hidden)]
    pub fn verify_internal(&self, message_prime: &[u8], signature: &[u8]) -> bool {
        Signature::<MlDsa65>::try_from(signature)
            .is_ok_and(|s| self.key.verify_internal(message_prime, &s))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

/// An ML-DSA-65 signing key (its 32-byte seed; wiped from memory when dropped).
pub struct SecretKey {
    key: SigningKey<MlDsa65>,
}

impl SecretKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(KeyError::Random)?;
        Ok(Self::from_seed(&seed))
    }

    /// ML-DSA.KeyGen_internal of FIPS 204 from a 32-byte seed ξ.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_seed(&(*seed).into()),
        }
    }

    pub fn public_key(&self) -> PublicKey {
        let key = self.key.expanded_key().verifying_key();
        PublicKey {
            id: KeyId::of(&key.encode()),
            key,
        }
    }

    /// Signs `message` deterministically (FIPS 204's deterministic variant with MAML's context).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.sign_in(CONTEXT, message)
    }

    pub(crate) fn sign_in(&self, context: &[u8], message: &[u8]) -> Vec<u8> {
        self.key
            .expanded_key()
            .sign_deterministic(message, context)
            .expect("the contexts are under 255 bytes")
            .encode()
            .to_vec()
    }

    pub fn to_pem(&self) -> zeroize::Zeroizing<String> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("an ML-DSA-65 seed always encodes")
    }

    pub fn from_pem(pem: &str, path: &Path) -> Result<Self, KeyError> {
        if pem.contains("PUBLIC KEY-----") {
            return Err(KeyError::PublicNotSecret { path: path.into() });
        }
        let key = SigningKey::<MlDsa65>::from_pkcs8_pem(pem).map_err(|e| KeyError::Malformed {
            path: path.into(),
            what: "secret key",
            detail: e.to_string(),
        })?;
        Ok(Self { key })
    }

    /// Reads a secret key file, refusing one that other users can read (as ssh does).
    pub fn read_file(path: &Path) -> Result<Self, KeyError> {
        let pem = zeroize::Zeroizing::new(read_to_string(path)?);
        if pem.contains("PUBLIC KEY-----") {
            return Err(KeyError::PublicNotSecret { path: path.into() });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(path)
                .map_err(read_error(path))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(KeyError::Exposed {
                    path: path.into(),
                    mode: mode & 0o777,
                });
            }
        }
        Self::from_pem(&pem, path)
    }
}

/// The two files of a key pair made by [`write_key_pair`].
#[derive(Debug)]
pub struct KeyPairFiles {
    pub secret: PathBuf,
    pub public: PathBuf,
}

/// Writes `PREFIX.key` (mode 0600) and `PREFIX.pub`. Existing files are kept unless `replace`.
pub fn write_key_pair(
    key: &SecretKey,
    prefix: &Path,
    replace: bool,
) -> Result<KeyPairFiles, KeyError> {
    let files = KeyPairFiles {
        secret: with_suffix(prefix, "key"),
        public: with_suffix(prefix, "pub"),
    };
    if !replace {
        for path in [&files.secret, &files.public] {
            if path.exists() {
                return Err(KeyError::Exists { path: path.clone() });
            }
        }
    }
    // A bare "No such file or directory" would not say that it is the directory that is missing.
    if let Some(dir) = files
        .secret
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(KeyError::NoDirectory {
            dir: dir.into(),
            path: files.secret,
        });
    }
    let io = |path: &PathBuf| {
        let path = path.clone();
        move |error| KeyError::Write { path, error }
    };
    write_atomically(&files.secret, key.to_pem().as_bytes(), 0o600).map_err(io(&files.secret))?;
    write_atomically(&files.public, key.public_key().to_pem().as_bytes(), 0o644)
        .map_err(io(&files.public))?;
    Ok(files)
}

fn read_to_string(path: &Path) -> Result<String, KeyError> {
    fs::read_to_string(path).map_err(read_error(path))
}

/// What failing to read `path` (or its metadata) becomes.
fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError {
    let path = path.to_path_buf();
    move |error| KeyError::Read { path, error }
}
