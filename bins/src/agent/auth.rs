//! The daemon's shared secret: read from a file (never from the command line, where `ps`
//! shows it), proven both ways by challenge and response so it never crosses the wire.
//!
//! The agent sends a fresh random nonce in its hello; the controller answers with
//! HMAC-SHA256(secret, "copyperf agent|controller|" + nonce) and a nonce of its own, which
//! the agent answers with the same construction under the "agent" label. The labels keep
//! one side's answer from being replayed as the other's.

use std::path::Path;

use anyhow::{bail, Context, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The shortest secret accepted: 16 bytes, about what `openssl rand -hex 8` prints.
pub const MIN_SECRET: usize = 16;

/// A shared secret, as read from its file.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Who is proving it holds the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prover {
    Controller,
    Agent,
}

impl Secret {
    /// Reads the secret from `path`: its contents without the trailing newline, at least
    /// [`MIN_SECRET`] bytes.
    pub fn read(path: &Path) -> Result<Secret> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading the secret file {}", path.display()))?;
        let secret = bytes.trim_ascii_end().to_vec();
        if secret.len() < MIN_SECRET {
            bail!(
                "the secret in {} is {} bytes; use at least {MIN_SECRET} (e.g. `openssl rand -hex 16 > {}`)",
                path.display(),
                secret.len(),
                path.display()
            );
        }
        Ok(Secret(secret))
    }

    #[cfg(test)]
    pub fn from_bytes(b: &[u8]) -> Secret {
        Secret(b.to_vec())
    }

    /// The answer to `nonce` by `who`, hex.
    pub fn answer(&self, who: Prover, nonce: &str) -> String {
        let mut mac = self.mac(who);
        mac.update(nonce.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// Whether `answer` is `who`'s answer to `nonce` (compared in constant time).
    pub fn check(&self, who: Prover, nonce: &str, answer: &str) -> bool {
        let Some(bytes) = unhex(answer) else {
            return false;
        };
        let mut mac = self.mac(who);
        mac.update(nonce.as_bytes());
        mac.verify_slice(&bytes).is_ok()
    }

    fn mac(&self, who: Prover) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(match who {
            Prover::Controller => b"copyperf agent|controller|",
            Prover::Agent => b"copyperf agent|agent|",
        });
        mac
    }
}

/// 32 random bytes from the kernel, hex.
pub fn nonce() -> String {
    let mut b = [0u8; 32];
    let mut filled = 0;
    while filled < b.len() {
        // SAFETY: getrandom writes at most the given length into our buffer.
        let n = unsafe { libc::getrandom(b[filled..].as_mut_ptr().cast(), b.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            panic!("getrandom failed: {}", std::io::Error::last_os_error());
        }
    }
    hex(&b)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_answers_with_its_own_label() {
        let s = Secret::from_bytes(b"0123456789abcdef");
        let n = nonce();
        assert_eq!(n.len(), 64);
        assert_ne!(n, nonce());
        let a = s.answer(Prover::Controller, &n);
        assert!(s.check(Prover::Controller, &n, &a));
        assert!(!s.check(Prover::Agent, &n, &a), "a reflected answer");
        assert!(!s.check(Prover::Controller, &nonce(), &a), "another nonce");
        let other = Secret::from_bytes(b"0123456789abcdeF");
        assert!(!other.check(Prover::Controller, &n, &a), "another secret");
        assert!(!s.check(Prover::Controller, &n, "zz"));
        assert!(!s.check(Prover::Controller, &n, ""));
    }

    #[test]
    fn a_short_secret_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("copyperf-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("short");
        std::fs::write(&f, "abc\n").unwrap();
        let e = Secret::read(&f).unwrap_err().to_string();
        assert!(e.contains("is 3 bytes; use at least 16"), "{e}");
        std::fs::write(&f, "0123456789abcdef\n").unwrap();
        assert!(Secret::read(&f).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
