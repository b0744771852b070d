//! Device cookies (OWASP's defence for login floods): a successful login
//! gives the browser a token naming the account, sealed with the server's
//! secret key. When that browser logs into the same account again, its
//! password check waits in the hashing pool's `Ahead` lane, so a flood of
//! strangers' guesses cannot keep a returning user out. The token only buys
//! a place in the queue: the password is still checked, and the per-address
//! and per-account limits still apply. A token also names the password it
//! was issued under (a digest of its hash), so a password change retires
//! every earlier token.
use sha2::{Digest, Sha256};

use crate::secrets::SecretBox;

/// Associated data of every device token: a sealed host secret can never
/// pass for one, nor the other way round.
const AAD: &[u8] = b"termroom device cookie v2";
/// Longest token looked at (a valid one for a 64-character name is 242).
const MAX_TOKEN_CHARS: usize = 512;
/// Bytes of the password hash's digest a token carries.
const PASSWORD_TAG_BYTES: usize = 16;

/// What a token seals: the account name, a NUL, and a digest of the
/// account's password hash.
fn plaintext(name: &str, password_hash: &str) -> Vec<u8> {
    let digest = Sha256::digest(password_hash.as_bytes());
    let mut text = Vec::with_capacity(name.len() + 1 + PASSWORD_TAG_BYTES);
    text.extend_from_slice(name.as_bytes());
    text.push(0);
    text.extend_from_slice(&digest[..PASSWORD_TAG_BYTES]);
    text
}

/// A new device token for account `name` whose password hash is
/// `password_hash` (hex), or `None` if sealing failed.
pub fn issue(secrets: &SecretBox, name: &str, password_hash: &str) -> Option<String> {
    let (nonce, sealed) = secrets
        .seal_with(&plaintext(name, password_hash), AAD)
        .ok()?;
    Some(hex::encode([nonce, sealed].concat()))
}

/// Whether `token` was issued by this server (same secret key) for `name`
/// while its password hash was `password_hash`.
pub fn recognises(secrets: &SecretBox, token: &str, name: &str, password_hash: &str) -> bool {
    if token.len() > MAX_TOKEN_CHARS {
        return false;
    }
    let Ok(bytes) = hex::decode(token) else {
        return false;
    };
    if bytes.len() < crate::secrets::NONCE_BYTES {
        return false;
    }
    let (nonce, sealed) = bytes.split_at(crate::secrets::NONCE_BYTES);
    secrets
        .open_with(nonce, sealed, AAD)
        .is_ok_and(|opened| opened == plaintext(name, password_hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: char) -> SecretBox {
        SecretBox::from_hex(&byte.to_string().repeat(64)).unwrap()
    }

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

    #[test]
    fn a_token_names_one_account_of_one_server() {
        let k = key('a');
        let t = issue(&k, "alice", HASH).unwrap();
        assert!(recognises(&k, &t, "alice", HASH));
        assert!(!recognises(&k, &t, "bob", HASH), "another account");
        assert!(!recognises(&k, &t, "Alice", HASH), "names compare exactly");
        assert!(
            !recognises(&key('b'), &t, "alice", HASH),
            "another server's key"
        );
        assert_ne!(
            issue(&k, "alice", HASH).unwrap(),
            t,
            "a fresh nonce each time"
        );
    }

    #[test]
    fn a_password_change_retires_earlier_tokens() {
        let k = key('a');
        let t = issue(&k, "alice", HASH).unwrap();
        let changed = HASH.replace("aGFzaA", "bmV3aA");
        assert!(!recognises(&k, &t, "alice", &changed));
        let fresh = issue(&k, "alice", &changed).unwrap();
        assert!(recognises(&k, &fresh, "alice", &changed));
    }

    #[test]
    fn tampered_or_foreign_tokens_are_not_recognised() {
        let k = key('a');
        let t = issue(&k, "alice", HASH).unwrap();
        let mut flipped = t.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(!recognises(&k, &flipped, "alice", HASH));
        for junk in ["", "zz", "00", &"0".repeat(600), &t[..40]] {
            assert!(!recognises(&k, junk, "alice", HASH), "{junk:?}");
        }
        // A host secret sealed with the same key is not a device token.
        let (nonce, sealed) = k.seal(&plaintext("alice", HASH)).unwrap();
        let secret = hex::encode([nonce, sealed].concat());
        assert!(!recognises(&k, &secret, "alice", HASH));
    }
}
