//! The agent's control protocol: length-prefixed JSON frames over any byte stream (a
//! child's stdin/stdout through `ip netns exec` or `ssh`, or a daemon's TCP socket).
//!
//! The agent speaks first: the four bytes [`MAGIC`], then a [`Reply::Hello`] naming the
//! protocol version and the copyperf version, so a controller that reached something
//! else (a shell's "command not found", an sshd banner, an HTTP server) says so instead
//! of misreading it. Every frame is a 4-byte big-endian length and that many bytes of
//! JSON; a length over the reader's bound ends the session before anything is allocated.
//! Requests are small ([`MAX_REQUEST`]); replies carry whole records with their
//! histograms ([`MAX_REPLY`]).

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};

use engine::host::HostInfo;
use engine::{Backend, ClientConfig, Mode, Record, ServerConfig};
use serde::{Deserialize, Serialize};

use super::auth::{Seal, TAG_LEN};

/// Bumped whenever a frame changes meaning; an agent and a controller of different
/// protocol versions refuse each other.
pub const PROTOCOL: u32 = 1;

/// What an agent's byte stream starts with.
pub const MAGIC: [u8; 4] = *b"CPAG";

/// The largest request an agent reads.
pub const MAX_REQUEST: usize = 1 << 20;

/// The largest reply a controller reads.
pub const MAX_REPLY: usize = 16 << 20;

/// What a controller asks of an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// The daemon's challenge answered: HMAC-SHA256 of the agent's nonce under the shared
    /// secret, and a nonce of the controller's own for the agent to answer in turn.
    Auth { mac: String, nonce: String },
    /// Describe this host and the interface holding `addr` (or the default route's).
    Describe { addr: Option<IpAddr> },
    /// Can this host's kernel run `mode` on `backend`?
    Supports { backend: Backend, mode: Mode },
    /// Start a server on exactly this configuration.
    Serve { config: ServerConfig },
    /// Stop the server started by `Serve`.
    StopServing,
    /// Connect and handshake a client on exactly this configuration, then wait for
    /// [`Request::Go`]. `peer_agent` is the control address of the agent serving the
    /// target: a daemon runs a client only against a server that such an agent vouches
    /// for (see [`Request::Vouch`]).
    Connect {
        config: Box<ClientConfig>,
        #[serde(default)]
        peer_agent: Option<String>,
    },
    /// Start the measured interval of the connected client.
    Go,
    /// End the client's run now (nothing measured is lost; the record says interrupted).
    Abort,
    /// Is this agent's server listening on `addr`, an address of this host? Asked by a
    /// daemon about to run a client against it.
    Vouch { addr: SocketAddr },
    /// End the session: stop everything this session started.
    Bye,
}

/// What an agent answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// The first frame. `challenge` is set by a daemon that needs the shared secret.
    Hello {
        protocol: u32,
        version: String,
        host: String,
        #[serde(default)]
        challenge: Option<String>,
    },
    /// The agent's answer to the controller's nonce: proof that it holds the secret too.
    Authenticated {
        mac: String,
    },
    Described {
        host: Box<HostInfo>,
    },
    Supported,
    Serving {
        addr: SocketAddr,
    },
    Stopped,
    /// Every connection is up and past its handshake; waiting for `Go`.
    Connected {
        connections: usize,
    },
    Finished {
        record: Box<Record>,
    },
    Vouched,
    /// Something worth a line in the controller's log; the session goes on.
    Notice {
        text: String,
    },
    /// The request failed; `exit_code` is the one the equivalent binary would have used.
    Failed {
        error: String,
        exit_code: i32,
    },
}

impl Reply {
    pub fn name(&self) -> &'static str {
        match self {
            Reply::Hello { .. } => "hello",
            Reply::Authenticated { .. } => "authenticated",
            Reply::Described { .. } => "described",
            Reply::Supported => "supported",
            Reply::Serving { .. } => "serving",
            Reply::Stopped => "stopped",
            Reply::Connected { .. } => "connected",
            Reply::Finished { .. } => "finished",
            Reply::Vouched => "vouched",
            Reply::Notice { .. } => "notice",
            Reply::Failed { .. } => "failed",
        }
    }
}

/// Writes one frame.
pub fn write_frame<W: Write + ?Sized, T: Serialize>(w: &mut W, frame: &T) -> io::Result<()> {
    write_sealed(w, frame, None)
}

/// Writes one frame, tagged by `seal` when the session is sealed.
pub fn write_sealed<W: Write + ?Sized, T: Serialize>(
    w: &mut W,
    frame: &T,
    seal: Option<&mut Seal>,
) -> io::Result<()> {
    let mut body = serde_json::to_vec(frame).map_err(io::Error::other)?;
    if let Some(seal) = seal {
        let tag = seal.tag(&body);
        body.extend_from_slice(&tag);
    }
    let len = u32::try_from(body.len()).map_err(|_| io::Error::other("frame over 4 GiB"))?;
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&body);
    w.write_all(&buf)?;
    w.flush()
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the stream ended")]
    Closed,
    #[error("a frame of {len} bytes is over the {max}-byte limit")]
    TooLong { len: usize, max: usize },
    #[error("a frame that is not what the protocol allows: {0}")]
    Malformed(String),
    #[error("a frame whose seal does not check: changed, replayed, reordered or injected")]
    Forged,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Reads one frame of at most `max` bytes.
pub fn read_frame<R: Read + ?Sized, T: for<'de> Deserialize<'de>>(
    r: &mut R,
    max: usize,
) -> Result<T, FrameError> {
    parse(read_raw(r, max)?, None)
}

/// Reads one frame's bytes, at most `max` (and a seal's tag), without parsing them.
pub fn read_raw<R: Read + ?Sized>(r: &mut R, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        other => other?,
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max + TAG_LEN {
        return Err(FrameError::TooLong { len, max });
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => FrameError::Closed,
        _ => FrameError::Io(e),
    })?;
    Ok(body)
}

/// Parses a frame read by [`read_raw`], checking its tag first when the session is sealed.
pub fn parse<T: for<'de> Deserialize<'de>>(
    mut body: Vec<u8>,
    seal: Option<&mut Seal>,
) -> Result<T, FrameError> {
    if let Some(seal) = seal {
        if body.len() < TAG_LEN {
            return Err(FrameError::Forged);
        }
        let tag = body.split_off(body.len() - TAG_LEN);
        if !seal.check(&body, &tag) {
            return Err(FrameError::Forged);
        }
    }
    serde_json::from_slice(&body).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Reads the stream's opening [`MAGIC`]. Anything else is shown as the text it probably
/// is (what a shell or a server printed), up to a line.
pub fn read_magic<R: Read + ?Sized>(r: &mut R) -> Result<(), FrameError> {
    let mut got = [0u8; 4];
    let mut n = 0;
    while n < 4 {
        match r.read(&mut got[n..]) {
            Ok(0) if n == 0 => return Err(FrameError::Closed),
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    if n == 4 && got == MAGIC {
        return Ok(());
    }
    let mut text = got[..n].to_vec();
    let mut byte = [0u8; 1];
    while text.len() < 200 && !text.ends_with(b"\n") {
        match r.read(&mut byte) {
            Ok(1) => text.push(byte[0]),
            _ => break,
        }
    }
    Err(FrameError::Malformed(format!(
        "not a copyperf agent; it said {:?}",
        String::from_utf8_lossy(&text).trim()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        let req = Request::Connect {
            config: Box::default(),
            peer_agent: Some("10.0.0.1:8079".into()),
        };
        // A counted run's config (`--messages`) travels whole.
        let counted = Request::Connect {
            config: Box::new(ClientConfig {
                messages: Some(1000),
                ..ClientConfig::default()
            }),
            peer_agent: None,
        };
        write_frame(&mut buf, &req).unwrap();
        write_frame(&mut buf, &counted).unwrap();
        write_frame(&mut buf, &Request::Go).unwrap();
        let mut r = &buf[..];
        assert_eq!(read_frame::<_, Request>(&mut r, MAX_REQUEST).unwrap(), req);
        assert_eq!(
            read_frame::<_, Request>(&mut r, MAX_REQUEST).unwrap(),
            counted
        );
        assert_eq!(
            read_frame::<_, Request>(&mut r, MAX_REQUEST).unwrap(),
            Request::Go
        );
        assert!(matches!(
            read_frame::<_, Request>(&mut r, MAX_REQUEST),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn a_long_frame_is_refused_before_it_is_read() {
        // A sealed frame may add its tag; one byte beyond that is refused.
        let mut buf = ((MAX_REQUEST + TAG_LEN) as u32 + 1).to_be_bytes().to_vec();
        buf.extend_from_slice(b"{}");
        let e = read_frame::<_, Request>(&mut &buf[..], MAX_REQUEST).unwrap_err();
        assert!(matches!(e, FrameError::TooLong { .. }), "{e}");
    }

    #[test]
    fn an_unknown_request_is_malformed() {
        let mut buf = Vec::new();
        write_frame(
            &mut buf,
            &serde_json::json!({"op": "shell", "cmd": "rm -rf /"}),
        )
        .unwrap();
        let e = read_frame::<_, Request>(&mut &buf[..], MAX_REQUEST).unwrap_err();
        assert!(matches!(e, FrameError::Malformed(_)), "{e}");
    }

    #[test]
    fn something_else_is_named_by_what_it_said() {
        let e = read_magic(&mut &b"bash: agent: command not found\nmore"[..]).unwrap_err();
        assert!(
            e.to_string()
                .contains("not a copyperf agent; it said \"bash: agent: command not found\""),
            "{e}"
        );
        assert!(read_magic(&mut &MAGIC[..]).is_ok());
        assert!(matches!(read_magic(&mut &b""[..]), Err(FrameError::Closed)));
    }
}
