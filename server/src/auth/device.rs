//! Device cookies (OWASP's defence for login floods): a successful login
//! gives the browser a token naming the account, sealed with the server's
//! secret key. When that browser logs into the same account again, its
//! password check waits in the hashing pool's `Ahead` lane, so a flood of
//! strangers' guesses cannot keep a returning user out. The token only buys
//! a place in the queue: the password is still checked, and the per-address
//! and per-account limits still apply.
use crate::secrets::SecretBox;

/// Associated data of every device token: a sealed host secret can never
/// pass for one, nor the other way round.
const AAD: &[u8] = b"termroom device cookie v1";
/// Longest token looked at (a valid one for a 64-character name is 208).
const MAX_TOKEN_CHARS: usize = 512;

/// A new device token for account `name` (hex), or `None` if sealing failed.
pub fn issue(secrets: &SecretBox, name: &str) -> Option<String> {
    let (nonce, sealed) = secrets.seal_with(name.as_bytes(), AAD).ok()?;
    Some(hex::encode([nonce, sealed].concat()))
}

/// Whether `token` was issued by this server (same secret key) for `name`.
pub fn recognises(secrets: &SecretBox, token: &str, name: &str) -> bool {
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
        .is_ok_and(|opened| opened == name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: char) -> SecretBox {
        SecretBox::from_hex(&byte.to_string().repeat(64)).unwrap()
    }

    #[test]
    fn a_token_names_one_account_of_one_server() {
        let k = key('a');
        let t = issue(&k, "alice").unwrap();
        assert!(recognises(&k, &t, "alice"));
        assert!(!recognises(&k, &t, "bob"), "another account");
        assert!(!recognises(&k, &t, "Alice"), "names compare exactly");
        assert!(!recognises(&key('b'), &t, "alice"), "another server's key");
        assert_ne!(issue(&k, "alice").unwrap(), t, "a fresh nonce each time");
    }

    #[test]
    fn tampered_or_foreign_tokens_are_not_recognised() {
        let k = key('a');
        let t = issue(&k, "alice").unwrap();
        let mut flipped = t.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(!recognises(&k, &flipped, "alice"));
        for junk in ["", "zz", "00", &"0".repeat(600), &t[..40]] {
            assert!(!recognises(&k, junk, "alice"), "{junk:?}");
        }
        // A host secret sealed with the same key is not a device token.
        let (nonce, sealed) = k.seal(b"alice").unwrap();
        let secret = hex::encode([nonce, sealed].concat());
        assert!(!recognises(&k, &secret, "alice"));
    }
}
