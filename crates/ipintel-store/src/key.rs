//! API key text: generation, strict parsing and hashing for storage.
//!
//! A key reads `ipintel_<id>_<secret>`: the id is 12 characters of
//! `[a-z0-9]` and names the key in logs, URLs and the database; the secret is
//! 32 characters of `[A-Za-z0-9]` and is shown to its owner once, at
//! creation. Only a hash of the secret is ever stored.

use std::fmt;
use std::str::FromStr;

use rand::distr::Alphanumeric;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Text every key starts with.
pub const KEY_PREFIX: &str = "ipintel_";
/// Length of a key id in characters.
pub const ID_LEN: usize = 12;
/// Length of a key secret in characters.
pub const SECRET_LEN: usize = 32;
/// Length of the full key text in characters.
pub const KEY_LEN: usize = KEY_PREFIX.len() + ID_LEN + 1 + SECRET_LEN;

const ID_ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Domain separation for the stored hash, so the digest of a key secret can
/// never collide with a SHA-256 computed for any other purpose.
const HASH_DOMAIN: &[u8] = b"ipintel api key secret v1\0";

/// Why a text is not a well-formed API key. The variants never carry the
/// text itself, which may hold a secret.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyFormatError {
    /// The text does not start with `ipintel_`.
    #[error("an API key starts with `{KEY_PREFIX}`")]
    MissingPrefix,
    /// The text has the wrong length.
    #[error("an API key is {KEY_LEN} characters long, this one has {found}")]
    Length {
        /// Length found, in bytes.
        found: usize,
    },
    /// The id part holds a character outside `[a-z0-9]`.
    #[error("the id part of an API key is {ID_LEN} characters of [a-z0-9]")]
    InvalidId,
    /// The id and secret are not separated by `_`.
    #[error("the id and the secret of an API key are separated by `_`")]
    MissingSeparator,
    /// The secret part holds a character outside `[A-Za-z0-9]`.
    #[error("the secret part of an API key is {SECRET_LEN} characters of [A-Za-z0-9]")]
    InvalidSecret,
}

/// The public name of a key: 12 characters of `[a-z0-9]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn from_checked_bytes(bytes: &[u8]) -> Self {
        Self(bytes.iter().map(|&b| char::from(b)).collect())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for KeyId {
    type Err = KeyFormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != ID_LEN || !bytes.iter().all(|&b| is_id_byte(b)) {
            return Err(KeyFormatError::InvalidId);
        }
        Ok(Self::from_checked_bytes(bytes))
    }
}

impl Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The secret part of a key. It is wiped from memory on drop and prints as
/// `<redacted>` through both `Debug` and `Display`.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// SHA-256 digest of a key secret, the only form in which a secret is stored.
///
/// A fast hash is the right tool here, unlike for passwords: a secret is
/// 32 characters drawn uniformly from 62 by a CSPRNG (about 190 bits), so
/// brute-forcing a leaked digest is out of reach whatever the hash speed,
/// while a slow hash would only cost CPU on every request. The input is
/// domain-separated and includes the key id, so equal secrets under two ids
/// hash differently.
#[derive(Clone, Copy)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// Length of the digest in bytes.
    pub const LEN: usize = 32;

    /// Rebuilds a digest read from storage; `None` unless exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    /// The raw digest, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares two digests in constant time.
    pub fn matches(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    fn compute(id: &KeyId, secret: &Secret) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(HASH_DOMAIN);
        hasher.update(id.as_str().as_bytes());
        hasher.update(b"\0");
        hasher.update(secret.expose().as_bytes());
        Self(hasher.finalize().into())
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// A key as presented by a client (or freshly generated): the id in clear,
/// the secret redacted in `Debug`.
#[derive(Clone, Debug)]
pub struct PresentedKey {
    /// The key's public id.
    pub id: KeyId,
    secret: Secret,
}

impl PresentedKey {
    /// The digest of this key's secret, as the store keeps it.
    pub fn secret_hash(&self) -> SecretHash {
        SecretHash::compute(&self.id, &self.secret)
    }

    /// Whether this key's secret hashes to `stored` (constant-time compare).
    pub fn verify(&self, stored: &SecretHash) -> bool {
        self.secret_hash().matches(stored)
    }

    /// The full key text, `ipintel_<id>_<secret>`. Shown to the owner once
    /// at creation; never log it.
    pub fn expose_key_text(&self) -> String {
        format!("{KEY_PREFIX}{}_{}", self.id, self.secret.expose())
    }
}

/// Parses a full key text strictly: prefix, exact length, alphabets.
pub fn parse(text: &str) -> Result<PresentedKey, KeyFormatError> {
    let rest = text
        .strip_prefix(KEY_PREFIX)
        .ok_or(KeyFormatError::MissingPrefix)?
        .as_bytes();
    if rest.len() != ID_LEN + 1 + SECRET_LEN {
        return Err(KeyFormatError::Length { found: text.len() });
    }
    let (id, rest) = rest.split_at(ID_LEN);
    let (separator, secret) = rest.split_at(1);
    if !id.iter().all(|&b| is_id_byte(b)) {
        return Err(KeyFormatError::InvalidId);
    }
    if separator != b"_" {
        return Err(KeyFormatError::MissingSeparator);
    }
    if !secret.iter().all(u8::is_ascii_alphanumeric) {
        return Err(KeyFormatError::InvalidSecret);
    }
    let secret = secret.iter().map(|&b| char::from(b)).collect::<String>();
    Ok(PresentedKey {
        id: KeyId::from_checked_bytes(id),
        secret: Secret(Zeroizing::new(secret)),
    })
}

/// Generates a new key from the thread-local CSPRNG (ChaCha, seeded and
/// periodically reseeded from the operating system).
pub fn generate() -> PresentedKey {
    let mut rng = rand::rng();
    let id: String = (0..ID_LEN)
        .map(|_| char::from(ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())]))
        .collect();
    let secret: String = (0..SECRET_LEN)
        .map(|_| char::from(rng.sample(Alphanumeric)))
        .collect();
    PresentedKey {
        id: KeyId(id),
        secret: Secret(Zeroizing::new(secret)),
    }
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = "ipintel_abc123def456_ABCDEFGHIJKLMNOPqrstuvwxyz012345";

    #[test]
    fn parses_a_well_formed_key() {
        let key = parse(GOOD).unwrap();
        assert_eq!(key.id.as_str(), "abc123def456");
        assert_eq!(key.expose_key_text(), GOOD);
    }

    #[test]
    fn rejects_malformed_keys() {
        let cases: &[(&str, KeyFormatError)] = &[
            ("", KeyFormatError::MissingPrefix),
            (
                "IPINTEL_abc123def456_ABCDEFGHIJKLMNOPqrstuvwxyz012345",
                KeyFormatError::MissingPrefix,
            ),
            (
                "ipintel_abc123def456_ABCDEFGHIJKLMNOPqrstuvwxyz01234",
                KeyFormatError::Length { found: 52 },
            ),
            (
                "ipintel_abc123def456_ABCDEFGHIJKLMNOPqrstuvwxyz0123456",
                KeyFormatError::Length { found: 54 },
            ),
            (
                "ipintel_Abc123def456_ABCDEFGHIJKLMNOPqrstuvwxyz012345",
                KeyFormatError::InvalidId,
            ),
            (
                "ipintel_abc123def45-_ABCDEFGHIJKLMNOPqrstuvwxyz012345",
                KeyFormatError::InvalidId,
            ),
            (
                "ipintel_abc123def456-ABCDEFGHIJKLMNOPqrstuvwxyz012345",
                KeyFormatError::MissingSeparator,
            ),
            (
                "ipintel_abc123def456_ABCDEFGHIJKLMNOPqrstuvwxyz01234_",
                KeyFormatError::InvalidSecret,
            ),
            (
                "ipintel_abc123def456_ABCDEFGHIJKLMNOPqrstuvwxyz01234 ",
                KeyFormatError::InvalidSecret,
            ),
            (
                " ipintel_abc123def456_ABCDEFGHIJKLMNOPqrstuvwxyz012345",
                KeyFormatError::MissingPrefix,
            ),
            // Multi-byte text of the right byte length must not panic.
            (
                "ipintel_abc123def45é_ABCDEFGHIJKLMNOPqrstuvwxyz01234",
                KeyFormatError::InvalidId,
            ),
            (
                "ipintel_abc123def456_ABCDEFGHIJKLMNOPqrstuvwxyz0123é",
                KeyFormatError::InvalidSecret,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).unwrap_err(), *expected, "{text:?}");
        }
    }

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let key = parse(GOOD).unwrap();
        let debug = format!("{key:?}");
        assert!(!debug.contains("ABCDEFGH"), "{debug}");
        assert!(debug.contains("abc123def456"), "{debug}");
        assert_eq!(key.secret.to_string(), "<redacted>");
        assert!(!format!("{:?}", key.secret_hash()).contains("ABCDEFGH"));
    }

    #[test]
    fn hash_depends_on_id_and_secret() {
        let key = parse(GOOD).unwrap();
        let other_id = parse("ipintel_abc123def457_ABCDEFGHIJKLMNOPqrstuvwxyz012345").unwrap();
        let other_secret = parse("ipintel_abc123def456_ABCDEFGHIJKLMNOPqrstuvwxyz012346").unwrap();
        let hash = key.secret_hash();
        assert!(key.verify(&hash));
        assert!(!other_id.verify(&hash));
        assert!(!other_secret.verify(&hash));
        let plain: [u8; 32] = Sha256::digest(b"ABCDEFGHIJKLMNOPqrstuvwxyz012345").into();
        assert_ne!(hash.as_bytes(), &plain, "the hash must be domain-separated");
    }

    #[test]
    fn secret_hash_round_trips_through_bytes() {
        let hash = generate().secret_hash();
        let back = SecretHash::from_slice(hash.as_bytes()).unwrap();
        assert!(back.matches(&hash));
        assert!(SecretHash::from_slice(&[0; 31]).is_none());
    }

    #[test]
    fn generated_keys_differ() {
        let a = generate();
        let b = generate();
        assert_ne!(a.id, b.id);
        assert_ne!(a.expose_key_text(), b.expose_key_text());
    }

    #[test]
    fn key_id_parses_and_serializes_as_text() {
        let id: KeyId = "abc123def456".parse().unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"abc123def456\"");
        assert!("abc123def45".parse::<KeyId>().is_err());
        assert!("abc123def45A".parse::<KeyId>().is_err());
        let back: KeyId = serde_json::from_str("\"abc123def456\"").unwrap();
        assert_eq!(back, id);
    }

    proptest! {
        #[test]
        fn generated_keys_parse_back(_seed in any::<u64>()) {
            let key = generate();
            let text = key.expose_key_text();
            prop_assert_eq!(text.len(), KEY_LEN);
            let parsed = parse(&text).unwrap();
            prop_assert_eq!(&parsed.id, &key.id);
            prop_assert!(parsed.verify(&key.secret_hash()));
        }

        #[test]
        fn well_formed_text_parses(id in "[a-z0-9]{12}", secret in "[A-Za-z0-9]{32}") {
            let text = format!("ipintel_{id}_{secret}");
            let key = parse(&text).unwrap();
            prop_assert_eq!(key.id.as_str(), id.as_str());
            prop_assert_eq!(key.expose_key_text(), text);
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,80}") {
            if let Ok(key) = parse(&text) {
                prop_assert_eq!(key.expose_key_text(), text);
            }
        }
    }
}
