//! Content digests (`sha256:<hex>`) and readers that hash what flows through them, so every
//! manifest and blob is verified while it streams, never after the fact.

use std::fmt;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid digest \"{0}\": expected sha256:<64 hex digits>")]
pub struct DigestError(pub String);

/// A content digest. Only sha256 is accepted, as the registries in use produce nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        match s.strip_prefix("sha256:") {
            Some(hex)
                if hex.len() == 64
                    && hex
                        .bytes()
                        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) =>
            {
                Ok(Digest(s.to_string()))
            }
            _ => Err(DigestError(s.to_string())),
        }
    }

    /// The digest of a byte string.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    pub(crate) fn from_hasher(h: Sha256) -> Digest {
        Digest(format!("sha256:{}", hex::encode(h.finalize())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex part, used as a file name in the store.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }

    /// The first 12 hex digits, as `docker images` shows IDs.
    pub fn short(&self) -> &str {
        &self.0[7..19]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A reader that hashes and counts every byte read through it.
pub struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashReader<R> {
    pub fn new(inner: R) -> Self {
        HashReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Read what is left (so the digest covers the whole stream) and return digest and size.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest::from_hasher(self.hasher), self.count))
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A reader that hashes what it reads and also copies it to a writer (the blob file), calling
/// `progress` with the running byte count.
pub struct TeeHashReader<'a, R, W> {
    inner: R,
    out: Option<W>,
    hasher: Sha256,
    count: u64,
    reported: u64,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl<'a, R: Read, W: io::Write> TeeHashReader<'a, R, W> {
    pub fn new(inner: R, out: Option<W>, progress: &'a (dyn Fn(u64) + Sync)) -> Self {
        TeeHashReader {
            inner,
            out,
            hasher: Sha256::new(),
            count: 0,
            reported: 0,
            progress,
        }
    }

    /// Drain the rest of the stream and return digest, size and the writer.
    pub fn finish(mut self) -> io::Result<(Digest, u64, Option<W>)> {
        io::copy(&mut self, &mut io::sink())?;
        (self.progress)(self.count);
        Ok((Digest::from_hasher(self.hasher), self.count, self.out))
    }
}

impl<R: Read, W: io::Write> Read for TeeHashReader<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if let Some(out) = &mut self.out {
            out.write_all(&buf[..n])?;
        }
        self.count += n as u64;
        if self.count - self.reported >= 1 << 20 {
            self.reported = self.count;
            (self.progress)(self.count);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_hashes() {
        let d = Digest::of(b"");
        assert_eq!(
            d.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
        assert!(Digest::parse("sha256:E3B0").is_err());
        assert!(Digest::parse("md5:abc").is_err());
        let mut r = HashReader::new(&b"hello"[..2]);
        let mut b = [0u8; 1];
        r.read_exact(&mut b).unwrap();
        let (d2, n) = r.finish().unwrap();
        assert_eq!(n, 2);
        assert_eq!(d2, Digest::of(b"he"));
    }
}
