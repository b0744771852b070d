//! Host secrets at rest: XChaCha20-Poly1305 with a random nonce per row and a
//! 256-bit key kept outside the database (`TERMROOM_SECRET_KEY`, a key file, or
//! `<data-dir>/secret.key` generated with mode 0600 on first start). Callers
//! bind a secret to where it belongs with associated data ([`SecretBox::seal_with`]).
use std::path::{Path, PathBuf};

use chacha20poly1305::{
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
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
            Ok(text) => {
                warn_if_shared(&path);
                Self::from_hex(&text)
            }
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

    /// Encrypts with no associated data; returns (nonce, ciphertext).
    pub fn seal(&self, plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>), SecretError> {
        self.seal_with(plaintext, &[])
    }

    /// Encrypts, authenticating `aad` too: the result opens only with the same
    /// `aad` ([`SecretBox::open_with`]). Returns (nonce, ciphertext).
    pub fn seal_with(
        &self,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), SecretError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| SecretError::Seal)?;
        Ok((nonce.to_vec(), ct))
    }

    /// Decrypts a (nonce, ciphertext) pair made by [`SecretBox::seal`].
    pub fn open(&self, nonce: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, SecretError> {
        self.open_with(nonce, ciphertext, &[])
    }

    /// Decrypts a (nonce, ciphertext) pair made by [`SecretBox::seal_with`]
    /// with the same `aad`; a different `aad`, key or byte fails alike.
    pub fn open_with(
        &self,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, SecretError> {
        if nonce.len() != NONCE_BYTES {
            return Err(SecretError::Open);
        }
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| SecretError::Open)
    }
}

/// Length of an XChaCha20-Poly1305 nonce, bytes.
pub const NONCE_BYTES: usize = 24;

/// Creates `dir` (and missing parents) readable by the owner only (0700); an
/// existing directory is left as it is, with a warning if others may enter it.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        match std::fs::metadata(dir) {
            Ok(meta) => {
                let mode = meta.permissions().mode();
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        "{} is open to other users (mode {:o}); termroom keeps its database and secret key there, consider `chmod 700`",
                        dir.display(),
                        mode & 0o777
                    );
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Logs a warning if users other than the owner may read the key file.
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    "secret key {} is readable by other users (mode {:o}); `chmod 600` it",
                    path.display(),
                    mode & 0o777
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
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
    fn associated_data_must_match() {
        let b = SecretBox::from_hex(&"22".repeat(32)).unwrap();
        let (n, c) = b.seal_with(b"hunter2", b"host 1 at 10.0.0.1").unwrap();
        assert_eq!(
            b.open_with(&n, &c, b"host 1 at 10.0.0.1").unwrap(),
            b"hunter2"
        );
        assert!(b.open_with(&n, &c, b"host 1 at 10.6.6.6").is_err());
        assert!(b.open(&n, &c).is_err(), "no aad is a different aad");
    }

    #[cfg(unix)]
    #[test]
    fn generated_key_and_its_directory_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("fresh").join("data");
        SecretBox::load(None, &data).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("secret.key")), 0o600);
    }

    #[test]
    fn bad_keys_are_rejected() {
        assert!(SecretBox::from_hex("abc").is_err());
        assert!(SecretBox::from_hex(&"zz".repeat(32)).is_err());
    }
}
