//! Token secrets: minting from the OS CSPRNG, the `agt_` format, and the SHA-256 kept at rest.
//!
//! A secret exists in memory only between minting and the response that shows it once, and while a
//! request carrying it is being authenticated. It is never logged: [`Secret`]'s `Debug` is redacted.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Every secret starts with this, so leaked tokens are recognisable by secret scanners.
pub const PREFIX: &str = "agt_";
/// Random bytes in a secret: 192 bits from the OS CSPRNG.
const SECRET_BYTES: usize = 24;
/// Length of a well-formed secret: the prefix and the bytes in lowercase hex.
pub const SECRET_LEN: usize = PREFIX.len() + 2 * SECRET_BYTES;

/// A bearer secret. Shown once, never stored, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Mints a new secret from the OS CSPRNG.
    pub fn mint() -> Result<Secret, getrandom::Error> {
        let mut bytes = [0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Secret(format!("{PREFIX}{}", hex(&bytes))))
    }

    /// The secret text, for the one response that shows it or the file the owner reads.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its SHA-256, the only form that is stored.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The SHA-256 of a secret: how tokens are stored and looked up.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Hashes presented text.
    pub fn of(secret: &str) -> TokenHash {
        TokenHash(Sha256::digest(secret.as_bytes()).into())
    }

    /// Compares in constant time, whatever the contents: word by word, the differences folded
    /// together without a branch and put through `subtle`'s barrier once (its byte-wise compare
    /// puts each of the 32 bytes through it, a cost every bearer-authenticated request paid).
    pub fn ct_eq(&self, other: &[u8; 32]) -> bool {
        let (ours, theirs) = (self.0.as_chunks::<8>().0, other.as_chunks::<8>().0);
        let diff = ours.iter().zip(theirs).fold(0u64, |acc, (a, b)| {
            acc | (u64::from_ne_bytes(*a) ^ u64::from_ne_bytes(*b))
        });
        diff.ct_eq(&0).into()
    }
}

/// A map keyed by [`TokenHash`]. The keys are SHA-256 digests already, so their first eight
/// bytes are as even a hash as SipHash would make of them, at no cost per lookup. Nor can they be
/// chosen to crowd a bucket: only tokens found in the store are ever inserted.
pub type ByHash<V> = HashMap<TokenHash, V, BuildHasherDefault<DigestHasher>>;

/// The hasher of [`ByHash`]: a digest's first eight bytes.
#[derive(Default)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        match bytes.first_chunk::<8>() {
            Some(first) => self.0 ^= u64::from_ne_bytes(*first),
            // Never for a digest; whatever else is written still counts.
            None => bytes
                .iter()
                .for_each(|b| self.0 = self.0.rotate_left(8) ^ u64::from(*b)),
        }
    }

    /// The array's length, the same for every key.
    fn write_usize(&mut self, _: usize) {}
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// Whether `text` has the shape of one of our secrets. Checked before any lookup, so garbage never
/// reaches the store. Shape is not secret, so this need not be constant-time.
pub fn well_formed(text: &str) -> bool {
    prefixed_hex(text, PREFIX, SECRET_BYTES)
}

/// `prefix` followed by exactly `bytes` bytes in lowercase hex.
fn prefixed_hex(text: &str, prefix: &str, bytes: usize) -> bool {
    text.len() == prefix.len() + 2 * bytes
        && text.starts_with(prefix)
        && text[prefix.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A new random id with the given prefix, such as `tok_3f9a…`; ids are not secret.
pub fn new_id(prefix: &str) -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{prefix}{}", hex(&bytes)))
}

/// A 256-bit random value from the OS CSPRNG in lowercase hex after `prefix`: web session
/// cookies (`ags_`), pairing codes (`agp_`), OAuth codes (`agc_`), refresh tokens (`agr_`), client
/// secrets (`agk_`) and CSRF tokens.
pub fn random_256(prefix: &str) -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{prefix}{}", hex(&bytes)))
}

/// Whether `text` has the shape [`random_256`] gives with `prefix`.
pub fn well_formed_256(prefix: &str, text: &str) -> bool {
    prefixed_hex(text, prefix, 32)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_secrets_are_well_formed_distinct_and_hash_stably() {
        let a = Secret::mint().unwrap();
        let b = Secret::mint().unwrap();
        assert!(well_formed(a.expose()), "{}", a.expose());
        assert_eq!(a.expose().len(), SECRET_LEN);
        assert_ne!(a, b);
        assert_eq!(a.hash(), TokenHash::of(a.expose()));
        assert!(a.hash().ct_eq(&TokenHash::of(a.expose()).0));
        assert!(!a.hash().ct_eq(&b.hash().0));
        // A difference in any one byte, in each of the four words, is seen.
        for at in [0, 7, 8, 15, 16, 23, 24, 31] {
            let mut other = a.hash().0;
            other[at] ^= 0x80;
            assert!(!a.hash().ct_eq(&other), "byte {at}");
        }
        assert_eq!(format!("{a:?}"), "Secret([redacted])");
        // The map keyed by digests finds each by its own.
        let mut map = ByHash::default();
        map.insert(a.hash(), 'a');
        map.insert(b.hash(), 'b');
        assert_eq!(
            (map.get(&a.hash()), map.get(&b.hash())),
            (Some(&'a'), Some(&'b'))
        );
        assert_eq!(map.get(&TokenHash::of("another")), None);
    }

    #[test]
    fn malformed_secrets_are_recognised() {
        let good = Secret::mint().unwrap();
        let s = good.expose();
        assert!(!well_formed(""));
        assert!(!well_formed(&s[..s.len() - 1]));
        assert!(!well_formed(&format!("{s}0")));
        assert!(!well_formed(&s.replacen("agt_", "agx_", 1)));
        assert!(!well_formed(&s.to_uppercase()));
        assert!(!well_formed(&format!("agt_{}", "g".repeat(48))));
        assert!(!well_formed(&format!("agt_{}é", "a".repeat(46))));
    }

    #[test]
    fn random_256_values_have_256_bits_and_their_shape() {
        let a = random_256("ags_").unwrap();
        assert_eq!(a.len(), 4 + 64);
        assert!(well_formed_256("ags_", &a));
        assert!(!well_formed_256("agp_", &a));
        assert!(!well_formed_256("ags_", &a[..a.len() - 1]));
        assert_ne!(a, random_256("ags_").unwrap());
    }

    #[test]
    fn ids_carry_their_prefix() {
        let id = new_id("tok_").unwrap();
        assert!(id.starts_with("tok_") && id.len() == 20, "{id}");
    }
}
