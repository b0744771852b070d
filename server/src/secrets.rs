//! Host secrets at rest: XChaCha20-Poly1305 with a random nonce per row and a
//! 256-bit key kept outside the database (`TERMROOM_SECRET_KEY`, a key file, or
//! `<data-dir>/secret.key` generated with mode 0600 on first start).
use std::path::{Path, PathBuf};

use chacha20poly1305::{
    aead::{Aead, AeadCore, KeyInit, OsRng},
    XChaCha20Poly1305, XNonce,
};

/// Secret-key and sealing failures.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret key {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret key must be 64 hex characters (32 bytes)")]
    BadKey,
    #[error("could not decrypt a stored secret (wrong key or corrupted row)")]
    Open,
    #[error("could not encrypt a secret")]
    Seal,
}

/// The key that seals and opens host secrets.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// From 64 hex characters.
    pub fn from_hex(hex_key: &str) -> Result<Self, SecretError> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| SecretError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SecretError::BadKey)?;
        Ok(Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
        })
    }

    /// Loads the key: `TERMROOM_SECRET_KEY`, else `key_file`, else
    /// `<data_dir>/secret.key` (generated if missing).
    pub fn load(key_file: Option<&Path>, data_dir: &Path) -> Result<Self, SecretError> {
        if let Ok(k) = std::env::var("TERMROOM_SECRET_KEY") {
            return Self::from_hex(&k);
        }
        let path = key_file
            .map(Path::to_path_buf)
            .unwrap_or_else(|| data_dir.join("secret.key"));
        let io = |source| SecretError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_hex(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && key_file.is_none() => {
                let key = XChaCha20Poly1305::generate_key(&mut OsRng);
                write_private(&path, &hex::encode(key)).map_err(io)?;
                Ok(Self {
                    cipher: XChaCha20Poly1305::new(&key),
                })
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Encrypts; returns (nonce, ciphertext).
    pub fn seal(&self, plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>), SecretError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(&nonce, plaintext)
            .map_err(|_| SecretError::Seal)?;
        Ok((nonce.to_vec(), ct))
    }

    /// Decrypts a (nonce, ciphertext) pair made by [`SecretBox::seal`].
    pub fn open(&self, nonce: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, SecretError> {
        if nonce.len() != 24 {
            return Err(SecretError::Open);
        }
        self.cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| SecretError::Open)
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_with_fresh_nonces() {
        let dir = tempfile::tempdir().unwrap();
        let b = SecretBox::load(None, dir.path()).unwrap();
        let (n1, c1) = b.seal(b"hunter2").unwrap();
        let (n2, c2) = b.seal(b"hunter2").unwrap();
        assert_ne!(n1, n2);
        assert_ne!(c1, c2);
        assert!(!c1.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(b.open(&n1, &c1).unwrap(), b"hunter2");
        // the generated key file is reused
        let again = SecretBox::load(None, dir.path()).unwrap();
        assert_eq!(again.open(&n2, &c2).unwrap(), b"hunter2");
        // a different key cannot open it
        let other = SecretBox::from_hex(&"11".repeat(32)).unwrap();
        assert!(other.open(&n1, &c1).is_err());
        let mut bad = c1.clone();
        bad[0] ^= 1;
        assert!(b.open(&n1, &bad).is_err());
    }

    #[test]
    fn bad_keys_are_rejected() {
        assert!(SecretBox::from_hex("abc").is_err());
        assert!(SecretBox::from_hex(&"zz".repeat(32)).is_err());
    }
}
