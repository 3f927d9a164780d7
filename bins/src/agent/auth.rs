//! The daemon's shared secret: read from a file (never from the command line, where `ps`
//! shows it), proven both ways by challenge and response so it never crosses the wire.
//!
//! The agent sends a fresh random nonce in its hello; the controller answers with
//! HMAC-SHA256(secret, "copyperf agent|controller|" + nonce) and a nonce of its own, which
//! the agent answers with the same construction under the "agent" label. The labels keep
//! one side's answer from being replayed as the other's.
//!
//! Proving the secret is not enough on its own: a host in between that knows no secret
//! could pass both proofs along and then speak on the authenticated connection. So every
//! frame after the proofs is sealed ([`Seal`]): an HMAC under a key derived from the
//! secret and both nonces, over a per-direction sequence number and the frame, checked
//! before the frame is read. A relay can then only pass frames along unchanged, in order.

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

impl Secret {
    /// The session's key, from both nonces: what every sealed frame is tagged with.
    pub fn session_key(&self, agent_nonce: &str, controller_nonce: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(b"copyperf agent|session|");
        mac.update(agent_nonce.as_bytes());
        mac.update(b"|");
        mac.update(controller_nonce.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Both directions of a sealed session, as one side holds them.
#[derive(Debug)]
pub struct Seals {
    /// Checks what arrives.
    pub incoming: Seal,
    /// Tags what leaves.
    pub outgoing: Seal,
}

/// The bytes a seal adds to every frame.
pub const TAG_LEN: usize = 32;

/// One direction of a sealed session: tags the frames it sends, or checks the frames it
/// receives, each under the next sequence number.
pub struct Seal {
    key: [u8; 32],
    sender: Prover,
    seq: u64,
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Seal({:?} #{})", self.sender, self.seq)
    }
}

impl Seal {
    /// The seal of the frames `sender` sends under `key`.
    pub fn new(key: [u8; 32], sender: Prover) -> Seal {
        Seal {
            key,
            sender,
            seq: 0,
        }
    }

    fn mac(&self, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(match self.sender {
            Prover::Controller => b"controller",
            Prover::Agent => b"agent",
        });
        mac.update(&self.seq.to_be_bytes());
        mac.update(body);
        mac
    }

    /// The tag of the next frame sent.
    pub fn tag(&mut self, body: &[u8]) -> [u8; TAG_LEN] {
        let tag = self.mac(body).finalize().into_bytes().into();
        self.seq += 1;
        tag
    }

    /// Whether `tag` is the next frame's (compared in constant time).
    pub fn check(&mut self, body: &[u8], tag: &[u8]) -> bool {
        let ok = self.mac(body).verify_slice(tag).is_ok();
        self.seq += 1;
        ok
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
    fn a_seal_takes_frames_only_unchanged_and_in_order() {
        let s = Secret::from_bytes(b"0123456789abcdef");
        let key = s.session_key("a", "c");
        assert_ne!(key, s.session_key("a", "d"));
        let mut send = Seal::new(key, Prover::Controller);
        let mut recv = Seal::new(key, Prover::Controller);
        let t0 = send.tag(b"one");
        let t1 = send.tag(b"two");
        assert!(recv.check(b"one", &t0));
        assert!(!recv.check(b"one", &t0), "a replay");
        let mut recv = Seal::new(key, Prover::Controller);
        assert!(!recv.check(b"two", &t1), "out of order");
        let mut recv = Seal::new(key, Prover::Agent);
        assert!(!recv.check(b"one", &t0), "the other direction's");
        let mut recv = Seal::new(key, Prover::Controller);
        assert!(!recv.check(b"onE", &t0), "changed");
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
