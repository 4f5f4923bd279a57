//! sha256 content digests: the only identity the store trusts.
//!
//! Every blob, config and layer is named by the sha256 of its bytes, so a name can be checked
//! against the content at any time and a corrupted or forged blob is caught before it is stored.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Why a string is not a digest the store accepts.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    /// Only sha256 is accepted: it is what every registry and archive in use produces.
    #[error("unsupported digest algorithm in {value:?} (only sha256 is supported)")]
    Algorithm {
        /// The digest string at fault.
        value: String,
    },
    /// The hex part must be 64 lowercase hex characters.
    #[error("malformed sha256 digest {value:?}: expected 64 lowercase hex characters")]
    Malformed {
        /// The digest string at fault.
        value: String,
    },
}

/// A validated `sha256:<64 hex>` digest; validation up front means a digest can be used as a
/// file name without any path check.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Digest of a byte slice held in memory (manifests, configs).
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    fn from_hasher(h: Sha256) -> Digest {
        Digest(format!("sha256:{}", hex::encode(h.finalize())))
    }

    /// The 64 hex characters, used as file names in the store.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }

    /// The whole `sha256:…` string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 12-character short form shown by `image ls`, as Docker users expect.
    pub fn short(&self) -> &str {
        &self.0[7..19]
    }

    /// Builds a digest from a bare hex string (file names in the store).
    pub fn from_hex(hex: &str) -> Result<Digest, DigestError> {
        format!("sha256:{hex}").parse()
    }

    /// The chain id of a layer on top of `parent` (OCI image spec: sha256 of "parent diffid").
    /// Layer directories are keyed by it, so a layer is unpacked once for every image sharing
    /// the same stack below it.
    pub fn chain(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
        match parent {
            None => diff_id.clone(),
            Some(p) => Digest::of_bytes(format!("{} {}", p.as_str(), diff_id.as_str()).as_bytes()),
        }
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some(hex) = s.strip_prefix("sha256:") else {
            return Err(DigestError::Algorithm {
                value: s.to_owned(),
            });
        };
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::Malformed {
                value: s.to_owned(),
            });
        }
        Ok(Digest(s.to_owned()))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A reader that hashes what passes through it: layer streams are hashed while they are
/// unpacked or stored, never read twice.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads the rest of the stream (a tar reader stops at the end marker, but the digest covers
    /// every byte), then returns the digest and the byte count.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest::from_hasher(self.hasher), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes what passes through it (blobs being written to the store).
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The digest and byte count of everything written, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        (Digest::from_hasher(self.hasher), self.count, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
        assert_eq!(d, Digest::of_bytes(b""));
        assert_eq!(d.short(), "e3b0c44298fc");
        assert!("sha512:00".parse::<Digest>().is_err());
        assert!("sha256:../../etc/passwd".parse::<Digest>().is_err());
        assert!(
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
                .parse::<Digest>()
                .is_err()
        );
    }

    #[test]
    fn chain_id_follows_the_spec() {
        let a = Digest::of_bytes(b"a");
        let b = Digest::of_bytes(b"b");
        assert_eq!(Digest::chain(None, &a), a);
        let want = Digest::of_bytes(format!("{a} {b}").as_bytes());
        assert_eq!(Digest::chain(Some(&a), &b), want);
    }
}
