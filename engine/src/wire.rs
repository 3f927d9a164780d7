//! The control frames around a run: hello, accept or refuse, and the server's stats.
//!
//! Every frame is a 12-byte header — magic `CPRF`, protocol version (u16 LE), kind (u8),
//! a zero byte, payload length (u32 LE) — and a payload. The length is checked against
//! the largest payload its kind may carry before a single payload byte is read, so a peer
//! cannot make us allocate or wait for more than that. Messages themselves travel between
//! hello and stats as raw `size`-byte records (see `message`), not as frames.
//!
//! A server that ends a connection before the run's end says why with an end frame
//! (protocol version 4) sent as an end notice: the frame, padded with zeros to one
//! message's size, where the next message would have started. Its first byte, `C`, is odd,
//! and no message's first byte is (field 0's tag, little-endian, is a multiple of 8; the
//! end-of-stream record's is `0xfe`), so a client reading messages tells it from one; a
//! client reading frames reads the frame and ignores the padding.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub use crate::error::WireError;
use crate::stats::PeerReport;
use crate::vocab::{Backend, Direction, Mode, RxMode, Verify, Workload};

/// Opens every frame.
pub const MAGIC: [u8; 4] = *b"CPRF";
/// The protocol version this build speaks.
pub const VERSION: u16 = crate::error::WIRE_VERSION;
/// Header bytes before every payload.
pub const HEADER_LEN: usize = 12;
/// Hello payload bytes (protocol version 3: the receive path and the direction follow
/// the 24 bytes of version 2).
pub const HELLO_LEN: usize = 28;
/// A hello that carries a warm-up (`--omit`): its length in ms follows as bytes 28–31.
/// Only a client with a warm-up sends them, so a hello without one stays the 28 bytes
/// every version 3 server takes; a server older than the field refuses the longer one
/// (too long) rather than count the warm-up unawares.
pub const HELLO_OMIT_LEN: usize = 32;
/// Accept payload bytes.
pub const ACCEPT_LEN: usize = 12;
/// Longest refusal or end reason, in bytes.
pub const MAX_REASON: usize = 1024;
/// End frame payload bytes before its reason: the code (u16 LE).
const END_FIXED: usize = 2;
/// Largest stats payload.
pub const MAX_STATS: usize = 1 << 20;

/// The byte that stands for a value of the vocabulary on the wire. Codes are part of the
/// protocol: never renumber one; a new value takes a new code.
pub trait WireCode: Sized + Copy + 'static {
    /// Every value with its code.
    const CODES: &'static [(Self, u8)];

    fn code(self) -> u8
    where
        Self: PartialEq,
    {
        Self::CODES
            .iter()
            .find(|(v, _)| *v == self)
            .map(|&(_, c)| c)
            .expect("every value has a code")
    }

    fn from_code(code: u8) -> Option<Self> {
        Self::CODES
            .iter()
            .find(|&&(_, c)| c == code)
            .map(|&(v, _)| v)
    }
}

impl WireCode for Backend {
    const CODES: &'static [(Self, u8)] = &[(Backend::Syscall, 1), (Backend::Uring, 2)];
}

impl WireCode for Mode {
    const CODES: &'static [(Self, u8)] = &[
        (Mode::TwoCopy, 1),
        (Mode::OneCopy, 2),
        (Mode::Zc, 3),
        (Mode::ZcFixed, 4),
        (Mode::Sendfile, 5),
        (Mode::Splice, 6),
    ];
}

impl WireCode for Workload {
    const CODES: &'static [(Self, u8)] = &[(Workload::Echo, 1), (Workload::Stream, 2)];
}

impl WireCode for Verify {
    const CODES: &'static [(Self, u8)] =
        &[(Verify::Full, 1), (Verify::Sample, 2), (Verify::Off, 3)];
}

/// The direction code is the one code where 0 means something: the client sends, as
/// before directions existed.
impl WireCode for Direction {
    const CODES: &'static [(Self, u8)] = &[
        (Direction::Forward, 0),
        (Direction::Reverse, 1),
        (Direction::Bidir, 2),
    ];
}

impl WireCode for RxMode {
    const CODES: &'static [(Self, u8)] = &[
        (RxMode::Copy, 1),
        (RxMode::Discard, 2),
        (RxMode::Zerocopy, 3),
    ];
}

const KIND_HELLO: u8 = 1;
const KIND_ACCEPT: u8 = 2;
const KIND_REFUSE: u8 = 3;
const KIND_STATS: u8 = 4;
const KIND_END: u8 = 5;

/// What the client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    pub workload: Workload,
    pub mode: Mode,
    pub verify: Verify,
    /// The client's backend; the server logs it, the record keeps it.
    pub backend: Backend,
    pub size: u32,
    pub depth: u32,
    pub duration_ms: u32,
    /// The client's index for this connection, for log lines on both sides.
    pub flow: u32,
    /// The client thread that runs this connection: under the `paired` placement the
    /// server runs it on that thread's CPU (protocol version 2).
    pub thread: u32,
    /// How the receiving side(s) take bytes off the socket: the server in either
    /// workload, the client too in echo (protocol version 3, byte 24).
    pub rx: RxMode,
    /// Who sends the stream (protocol version 3, byte 25; 26–27 are reserved zero).
    pub direction: Direction,
    /// The client's warm-up (`--omit`), ms: the server leaves out what it counts in its
    /// first `omit_ms` from its first message. Bytes 28–31, sent only when non-zero; a
    /// 28-byte hello means 0.
    pub omit_ms: u32,
}

/// The server's yes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    pub backend: Backend,
    /// The server's number for this connection, as in its log.
    pub connection: u64,
}

/// Why a server said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum RefuseCode {
    /// Already `-t` clients connected.
    Full = 1,
    /// Message size beyond the server's `-s`.
    Size = 2,
    /// Mode not served by this server or not available on its backend.
    Mode = 3,
    /// Depth or pool size beyond the limits.
    Depth = 4,
    /// Protocol version not spoken here.
    Version = 5,
    /// The server is shutting down.
    ShuttingDown = 6,
    /// The hello could not be read as one (not a copyperf peer, bad field, bad length).
    Malformed = 7,
    /// The connection's buffers would take the server past its memory budget.
    Memory = 8,
    /// A receive path (`--rx`) this server cannot run on its backend.
    Rx = 9,
    /// Anything else.
    Other = 255,
}

impl RefuseCode {
    fn from_u16(v: u16) -> RefuseCode {
        match v {
            1 => RefuseCode::Full,
            2 => RefuseCode::Size,
            3 => RefuseCode::Mode,
            4 => RefuseCode::Depth,
            5 => RefuseCode::Version,
            6 => RefuseCode::ShuttingDown,
            7 => RefuseCode::Malformed,
            8 => RefuseCode::Memory,
            9 => RefuseCode::Rx,
            _ => RefuseCode::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refuse {
    pub code: RefuseCode,
    pub reason: String,
}

/// Why a server ended a connection before the run's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum EndCode {
    /// The server is shutting down (SIGINT, SIGTERM).
    ShuttingDown = 1,
    /// The server caught a bug (a panic) while serving the connection.
    Bug = 2,
    /// The server failed the connection (a peer error, a timeout, an I/O error).
    Failed = 3,
    /// The server's worker for the connection stopped before it could serve it.
    WorkerStopped = 4,
    /// Anything else, or a code this build does not know.
    Other = 255,
}

impl EndCode {
    fn from_u16(v: u16) -> EndCode {
        match v {
            1 => EndCode::ShuttingDown,
            2 => EndCode::Bug,
            3 => EndCode::Failed,
            4 => EndCode::WorkerStopped,
            _ => EndCode::Other,
        }
    }
}

/// A server's end of a connection before the run's end, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    pub code: EndCode,
    /// The server's own words (its error); decoded with control characters replaced.
    pub reason: String,
}

impl End {
    /// What a client prints after "server ended the run: ".
    pub fn describe(&self) -> String {
        let what = match self.code {
            EndCode::ShuttingDown => "the server is shutting down",
            EndCode::Bug => "the server caught a bug",
            EndCode::Failed => "the server failed the connection",
            EndCode::WorkerStopped => "the server's worker stopped",
            EndCode::Other => "the server gave a reason this build does not know",
        };
        if self.reason.is_empty() {
            what.to_string()
        } else {
            format!("{what}: {}", self.reason)
        }
    }

    /// The end notice as sent in place of a message of `size` bytes: the end frame, its
    /// reason cut (at a character's boundary) so the frame fits in `size` bytes, padded
    /// with zeros to `size`.
    pub fn notice(&self, size: usize) -> Vec<u8> {
        let room = size.saturating_sub(HEADER_LEN + END_FIXED).min(MAX_REASON);
        let mut reason = self.reason.as_str();
        let mut end = reason.len().min(room);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason = &reason[..end];
        let mut out = Frame::End(End {
            code: self.code,
            reason: reason.to_owned(),
        })
        .encode();
        if out.len() < size {
            out.resize(size, 0);
        }
        out
    }

    /// The end notice at the start of `bytes` (a message-sized record whose first bytes
    /// are [`MAGIC`]), or why it is not one.
    pub fn from_notice(bytes: &[u8]) -> Result<End, WireError> {
        match Frame::decode(bytes)? {
            (Frame::End(end), _) => Ok(end),
            (other, _) => Err(WireError::Unexpected {
                expected: "end",
                got: other.name(),
            }),
        }
    }
}

/// Whether received bytes open with a frame rather than a message (see the module's
/// doc): a message-sized record that is an end notice.
pub fn opens_frame(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// A peer's text as it may be shown: control characters (a terminal's escapes, line
/// breaks) replaced by U+FFFD.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// One control frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Hello(Hello),
    Accept(Accept),
    Refuse(Refuse),
    Stats(Box<PeerReport>),
    /// The server ended the connection before the run's end (protocol version 4): sent
    /// in place of the stats, or as an end notice in place of a message.
    End(End),
}

impl Frame {
    fn kind(&self) -> u8 {
        match self {
            Frame::Hello(_) => KIND_HELLO,
            Frame::Accept(_) => KIND_ACCEPT,
            Frame::Refuse(_) => KIND_REFUSE,
            Frame::Stats(_) => KIND_STATS,
            Frame::End(_) => KIND_END,
        }
    }

    /// The frame kind's name, for messages.
    pub fn name(&self) -> &'static str {
        kind_name(self.kind())
    }

    /// The frame as bytes, header included.
    pub fn encode(&self) -> Vec<u8> {
        let mut payload = Vec::new();
        match self {
            Frame::Hello(h) => {
                payload.extend_from_slice(&[
                    h.workload.code(),
                    h.mode.code(),
                    h.verify.code(),
                    h.backend.code(),
                ]);
                for v in [h.size, h.depth, h.duration_ms, h.flow, h.thread] {
                    payload.extend_from_slice(&v.to_le_bytes());
                }
                // Byte 24 the receive path, 25 the direction, 26–27 reserved (zero).
                payload.extend_from_slice(&[h.rx.code(), h.direction.code(), 0, 0]);
                if h.omit_ms > 0 {
                    payload.extend_from_slice(&h.omit_ms.to_le_bytes());
                }
            }
            Frame::Accept(a) => {
                payload.extend_from_slice(&[a.backend.code(), 0, 0, 0]);
                payload.extend_from_slice(&a.connection.to_le_bytes());
            }
            Frame::Refuse(r) => {
                payload.extend_from_slice(&(r.code as u16).to_le_bytes());
                payload.extend_from_slice(bounded(&r.reason));
            }
            Frame::End(e) => {
                payload.extend_from_slice(&(e.code as u16).to_le_bytes());
                payload.extend_from_slice(bounded(&e.reason));
            }
            Frame::Stats(report) => {
                payload = serde_json::to_vec(report).expect("a PeerReport always serializes");
            }
        }
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[self.kind(), 0]);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Decodes one frame from the start of `buf`; returns it and the bytes it took.
    pub fn decode(buf: &[u8]) -> Result<(Frame, usize), WireError> {
        let header: &[u8; HEADER_LEN] = buf
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(WireError::Truncated {
                need: HEADER_LEN,
                have: buf.len(),
            })?;
        let (kind, len) = decode_header(header)?;
        let total = HEADER_LEN + len;
        let payload = buf.get(HEADER_LEN..total).ok_or(WireError::Truncated {
            need: total,
            have: buf.len(),
        })?;
        Ok((decode_payload(kind, payload)?, total))
    }
}

/// A reason as sent: at most [`MAX_REASON`] bytes, cut at a character's boundary.
fn bounded(reason: &str) -> &[u8] {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason.as_bytes()[..end]
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        KIND_HELLO => "hello",
        KIND_ACCEPT => "accept",
        KIND_REFUSE => "refuse",
        KIND_STATS => "stats",
        KIND_END => "end",
        _ => "unknown",
    }
}

/// Checks a header and returns the frame kind and payload length, bounded by the kind.
pub fn decode_header(h: &[u8; HEADER_LEN]) -> Result<(u8, usize), WireError> {
    let magic: [u8; 4] = h[0..4].try_into().expect("4 bytes");
    if magic != MAGIC {
        return Err(WireError::BadMagic(magic));
    }
    let version = u16::from_le_bytes([h[4], h[5]]);
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let kind = h[6];
    let len = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes")) as usize;
    let (min, max) = match kind {
        KIND_HELLO => (HELLO_LEN, HELLO_OMIT_LEN),
        KIND_ACCEPT => (ACCEPT_LEN, ACCEPT_LEN),
        KIND_REFUSE => (2, 2 + MAX_REASON),
        KIND_STATS => (2, MAX_STATS),
        KIND_END => (END_FIXED, END_FIXED + MAX_REASON),
        other => return Err(WireError::UnknownKind(other)),
    };
    let name = kind_name(kind);
    if h[7] != 0 {
        return Err(WireError::Malformed {
            kind: name,
            why: format!("reserved header byte is {}", h[7]),
        });
    }
    if len > max {
        return Err(WireError::TooLong {
            kind: name,
            len,
            max,
        });
    }
    if len < min {
        return Err(WireError::Malformed {
            kind: name,
            why: format!("payload of {len} bytes, expected at least {min}"),
        });
    }
    Ok((kind, len))
}

fn decode_payload(kind: u8, p: &[u8]) -> Result<Frame, WireError> {
    let name = kind_name(kind);
    let bad = |why: String| WireError::Malformed { kind: name, why };
    let u32_at = |i: usize| u32::from_le_bytes(p[i..i + 4].try_into().expect("4 bytes"));
    match kind {
        KIND_HELLO => {
            let workload = Workload::from_code(p[0])
                .ok_or_else(|| bad(format!("unknown workload code {}", p[0])))?;
            let mode =
                Mode::from_code(p[1]).ok_or_else(|| bad(format!("unknown mode code {}", p[1])))?;
            let verify = Verify::from_code(p[2])
                .ok_or_else(|| bad(format!("unknown verify code {}", p[2])))?;
            let backend = Backend::from_code(p[3])
                .ok_or_else(|| bad(format!("unknown backend code {}", p[3])))?;
            let rx = RxMode::from_code(p[24]).ok_or_else(|| {
                bad(format!(
                    "unknown receive path (rx) code {}: this build knows {}",
                    p[24],
                    RxMode::CODES
                        .iter()
                        .map(|(v, c)| format!("{c} ({v})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            let direction = Direction::from_code(p[25])
                .ok_or_else(|| bad(format!("unknown direction code {}", p[25])))?;
            if p[26..28] != [0, 0] {
                return Err(bad(format!("reserved hello bytes are {} {}", p[26], p[27])));
            }
            let omit_ms = match p.len() {
                HELLO_LEN => 0,
                HELLO_OMIT_LEN => u32_at(28),
                n => {
                    return Err(bad(format!(
                        "payload of {n} bytes: a hello has {HELLO_LEN} or {HELLO_OMIT_LEN}"
                    )))
                }
            };
            Ok(Frame::Hello(Hello {
                workload,
                mode,
                verify,
                backend,
                size: u32_at(4),
                depth: u32_at(8),
                duration_ms: u32_at(12),
                flow: u32_at(16),
                thread: u32_at(20),
                rx,
                direction,
                omit_ms,
            }))
        }
        KIND_ACCEPT => {
            let backend = Backend::from_code(p[0])
                .ok_or_else(|| bad(format!("unknown backend code {}", p[0])))?;
            Ok(Frame::Accept(Accept {
                backend,
                connection: u64::from_le_bytes(p[4..12].try_into().expect("8 bytes")),
            }))
        }
        KIND_REFUSE => {
            let code = RefuseCode::from_u16(u16::from_le_bytes([p[0], p[1]]));
            let reason = std::str::from_utf8(&p[2..])
                .map_err(|_| bad("reason is not UTF-8".into()))?
                .to_owned();
            Ok(Frame::Refuse(Refuse { code, reason }))
        }
        KIND_STATS => serde_json::from_slice(p)
            .map(|r| Frame::Stats(Box::new(r)))
            .map_err(|e| bad(e.to_string())),
        KIND_END => Ok(Frame::End(End {
            code: EndCode::from_u16(u16::from_le_bytes([p[0], p[1]])),
            // Shown to a user: never trusted to be valid text or free of escapes.
            reason: sanitize(&String::from_utf8_lossy(&p[END_FIXED..])),
        })),
        other => Err(WireError::UnknownKind(other)),
    }
}

/// How reading a frame off a stream failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Wire(#[from] WireError),
    #[error("peer closed the connection before a whole frame arrived")]
    Closed,
    #[error("peer sent nothing for {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(io::Error),
}

/// Reads exactly one frame: the header, then a payload no longer than its kind allows.
/// `timeout` is only used to word the error when the socket's read timeout fires.
pub fn read_frame(r: &mut impl Read, timeout: Duration) -> Result<Frame, ReadError> {
    let mut header = [0u8; HEADER_LEN];
    read_exact(r, &mut header, timeout)?;
    let (kind, len) = decode_header(&header)?;
    let mut payload = vec![0u8; len];
    read_exact(r, &mut payload, timeout)?;
    Ok(decode_payload(kind, &payload)?)
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], timeout: Duration) -> Result<(), ReadError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ReadError::Closed,
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ReadError::Timeout(timeout),
        _ => ReadError::Io(e),
    })
}

/// Reads exactly one frame off `stream`, which must arrive whole by `deadline`: each read
/// waits only for what is left, so a peer that trickles bytes gains nothing by it.
pub fn read_frame_by(stream: &TcpStream, deadline: Instant) -> Result<Frame, ReadError> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    let mut reader = DeadlineReader { stream, deadline };
    read_frame(&mut reader, timeout)
}

/// Reads from a socket, never past a deadline.
struct DeadlineReader<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut s = self.stream;
        s.read(buf)
    }
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, frame: &Frame) -> io::Result<()> {
    w.write_all(&frame.encode())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::FlowStats;

    fn hello() -> Hello {
        Hello {
            workload: Workload::Echo,
            mode: Mode::Zc,
            verify: Verify::Full,
            backend: Backend::Uring,
            size: 65536,
            depth: 8,
            duration_ms: 3000,
            flow: 5,
            thread: 2,
            rx: RxMode::Zerocopy,
            direction: Direction::Bidir,
            omit_ms: 0,
        }
    }

    fn frames() -> Vec<Frame> {
        let mut stats = FlowStats {
            bytes_received: 123,
            ..Default::default()
        };
        stats.zc.sends = 4;
        vec![
            Frame::Hello(hello()),
            Frame::Hello(Hello {
                omit_ms: u32::MAX,
                ..hello()
            }),
            Frame::Accept(Accept {
                backend: Backend::Syscall,
                connection: u64::MAX - 1,
            }),
            Frame::Refuse(Refuse {
                code: RefuseCode::Full,
                reason: "server is full".into(),
            }),
            Frame::Stats(Box::new(PeerReport {
                backend: Backend::Uring,
                stats,
                duration_s: 1.5,
                ..Default::default()
            })),
            Frame::End(End {
                code: EndCode::Bug,
                reason: "injected fault".into(),
            }),
        ]
    }

    /// Issue 16: the end notice is one message's size whatever its reason's length, opens
    /// with what no message opens with, and reads back as the server's reason.
    #[test]
    fn an_end_notice_fills_one_message_and_reads_back() {
        use crate::message::{tag, END_TAG};
        let end = End {
            code: EndCode::Failed,
            reason: "é".repeat(600),
        };
        for size in [crate::vocab::MIN_SIZE, 65, 1000, 4096, 1 << 20] {
            let notice = end.notice(size);
            assert_eq!(notice.len(), size);
            assert!(opens_frame(&notice));
            let back = End::from_notice(&notice).unwrap();
            assert_eq!(back.code, EndCode::Failed);
            assert!(end.reason.starts_with(&back.reason), "{size}");
            let room = (size - HEADER_LEN - END_FIXED).min(MAX_REASON);
            assert!(
                back.reason.len() <= room && back.reason.len() + 1 >= room,
                "{size}"
            );
        }
        // No message, nor the end-of-stream record, opens like a frame.
        for seq in [0, 1, 7, 1 << 40, u64::MAX / 8] {
            assert!(!opens_frame(&tag(seq, 0).to_le_bytes()));
        }
        assert!(!opens_frame(&END_TAG.to_le_bytes()));
        assert_eq!(
            end.notice(64)[HEADER_LEN + END_FIXED..]
                .iter()
                .filter(|&&b| b == 0)
                .count(),
            0,
            "a 64-byte notice is all frame: 50 bytes of reason"
        );
    }

    /// A hostile server's reason is bounded by the header check and shown without its
    /// control characters; an unknown code still reads.
    #[test]
    fn an_end_reason_is_sanitized_and_bounded() {
        let mut bytes = Frame::End(End {
            code: EndCode::Other,
            reason: "a\x1b[2Jb\nc".into(),
        })
        .encode();
        bytes[HEADER_LEN] = 77;
        let (Frame::End(end), _) = Frame::decode(&bytes).unwrap() else {
            panic!("not an end frame")
        };
        assert_eq!(end.code, EndCode::Other);
        assert_eq!(end.reason, "a\u{fffd}[2Jb\u{fffd}c");
        assert!(end.describe().contains("does not know: a"));
        let mut long = Frame::End(End {
            code: EndCode::Bug,
            reason: String::new(),
        })
        .encode();
        long[8..12].copy_from_slice(&((END_FIXED + MAX_REASON + 1) as u32).to_le_bytes());
        assert!(matches!(
            decode_header(long[..HEADER_LEN].try_into().unwrap()),
            Err(WireError::TooLong { kind: "end", .. })
        ));
        let mut bad = Frame::End(End {
            code: EndCode::Bug,
            reason: "x".into(),
        })
        .encode();
        *bad.last_mut().unwrap() = 0xff;
        let (Frame::End(end), _) = Frame::decode(&bad).unwrap() else {
            panic!("not an end frame")
        };
        assert_eq!(
            end.reason, "\u{fffd}",
            "invalid UTF-8 is replaced, not refused"
        );
    }

    #[test]
    fn every_value_has_one_code_and_back() {
        fn check<T: WireCode + PartialEq + std::fmt::Debug>(all: &[T]) {
            assert_eq!(T::CODES.len(), all.len(), "a code for every value");
            for v in all {
                assert_eq!(T::from_code(v.code()), Some(*v));
            }
            assert_eq!(T::from_code(0), None);
        }
        check(Backend::ALL);
        check(Mode::ALL);
        check(Workload::ALL);
        check(Verify::ALL);
        check(RxMode::ALL);
        // Direction 0 is the forward stream every earlier hello meant.
        assert_eq!(Direction::CODES.len(), Direction::ALL.len());
        for d in Direction::ALL {
            assert_eq!(Direction::from_code(d.code()), Some(*d));
        }
        assert_eq!(Direction::Forward.code(), 0);
        assert_eq!(Direction::from_code(3), None);
    }

    #[test]
    fn the_hello_layout_is_fixed() {
        let bytes = Frame::Hello(hello()).encode();
        assert_eq!(bytes.len(), HEADER_LEN + 28);
        let p = &bytes[HEADER_LEN..];
        assert_eq!(p[24], 3, "receive path: zerocopy");
        assert_eq!(p[25], 2, "direction: bidir");
        assert_eq!(&p[26..], &[0, 0], "reserved");
        for (at, value, what) in [
            (24, 9, "receive path"),
            (25, 3, "direction"),
            (26, 1, "reserved"),
            (27, 1, "reserved"),
        ] {
            let mut b = bytes.clone();
            b[HEADER_LEN + at] = value;
            let err = Frame::decode(&b).unwrap_err();
            assert!(
                matches!(&err, WireError::Malformed { kind: "hello", why } if why.contains(what)),
                "byte {at} = {value}: {err}"
            );
        }
    }

    #[test]
    fn a_warm_up_adds_four_bytes_and_a_hello_without_one_is_unchanged() {
        let plain = Frame::Hello(hello()).encode();
        assert_eq!(
            plain.len(),
            HEADER_LEN + HELLO_LEN,
            "what older servers take"
        );
        let warm = Hello {
            omit_ms: 1500,
            ..hello()
        };
        let bytes = Frame::Hello(warm).encode();
        assert_eq!(bytes.len(), HEADER_LEN + HELLO_OMIT_LEN);
        assert_eq!(&bytes[..8], &plain[..8], "the same header but its length");
        assert_eq!(
            &bytes[HEADER_LEN..HEADER_LEN + HELLO_LEN],
            &plain[HEADER_LEN..],
            "the same 28 bytes first"
        );
        assert_eq!(&bytes[HEADER_LEN + 28..], &1500u32.to_le_bytes());
        assert_eq!(Frame::decode(&bytes).unwrap().0, Frame::Hello(warm));
        // Any other length between the two is malformed, by name.
        let mut odd = bytes.clone();
        odd.truncate(HEADER_LEN + 30);
        odd[8..12].copy_from_slice(&30u32.to_le_bytes());
        let err = Frame::decode(&odd).unwrap_err();
        assert!(err.to_string().contains("payload of 30 bytes"), "{err}");
    }

    #[test]
    fn every_frame_round_trips() {
        for f in frames() {
            let bytes = f.encode();
            let (back, used) = Frame::decode(&bytes).unwrap();
            assert_eq!(back, f);
            assert_eq!(used, bytes.len());
            let mut reader = &bytes[..];
            assert_eq!(read_frame(&mut reader, Duration::ZERO).unwrap(), f);
        }
    }

    #[test]
    fn every_truncation_is_reported_not_misread() {
        for f in frames() {
            let bytes = f.encode();
            for cut in 0..bytes.len() {
                assert!(
                    matches!(
                        Frame::decode(&bytes[..cut]),
                        Err(WireError::Truncated { .. })
                    ),
                    "{} cut at {cut}",
                    f.name()
                );
                let mut reader = &bytes[..cut];
                assert!(matches!(
                    read_frame(&mut reader, Duration::ZERO),
                    Err(ReadError::Closed)
                ));
            }
        }
    }

    #[test]
    fn garbage_is_rejected_by_name() {
        let err = Frame::decode(b"GET / HTTP/1.1\r\n\r\n").unwrap_err();
        assert_eq!(err, WireError::BadMagic(*b"GET "));
        assert!(err.to_string().contains("not a copyperf peer"));

        let mut b = Frame::Hello(hello()).encode();
        b[4] = 9;
        assert_eq!(Frame::decode(&b).unwrap_err(), WireError::Version(9));

        let mut b = Frame::Hello(hello()).encode();
        b[6] = 77;
        assert_eq!(Frame::decode(&b).unwrap_err(), WireError::UnknownKind(77));

        let mut b = Frame::Hello(hello()).encode();
        b[HEADER_LEN + 1] = 99; // mode
        assert!(matches!(
            Frame::decode(&b),
            Err(WireError::Malformed { .. })
        ));

        // Version 3's bytes: an unknown receive path, an unknown direction, a reserved
        // byte set.
        for (at, value, says) in [
            (24, 9, "rx) code 9"),
            (24, 0, "rx) code 0"),
            (25, 3, "direction code 3"),
            (27, 1, "reserved hello bytes"),
        ] {
            let mut b = Frame::Hello(hello()).encode();
            b[HEADER_LEN + at] = value;
            let err = Frame::decode(&b).unwrap_err();
            assert!(err.to_string().contains(says), "byte {at}: {err}");
        }
        let b = Frame::Hello(hello()).encode();
        assert_eq!(b.len(), HEADER_LEN + 28);
        assert_eq!(b[HEADER_LEN + 24], 3, "zerocopy's code at byte 24");

        let mut b = Frame::Hello(hello()).encode();
        b[7] = 1; // reserved header byte
        assert!(matches!(
            Frame::decode(&b),
            Err(WireError::Malformed { .. })
        ));
    }

    #[test]
    fn oversize_lengths_are_refused_before_reading_the_payload() {
        for (kind, len) in [
            (KIND_HELLO, HELLO_OMIT_LEN + 1),
            (KIND_ACCEPT, 4096),
            (KIND_REFUSE, 3 + MAX_REASON),
            (KIND_STATS, u32::MAX as usize),
        ] {
            let mut h = [0u8; HEADER_LEN];
            h[..4].copy_from_slice(&MAGIC);
            h[4..6].copy_from_slice(&VERSION.to_le_bytes());
            h[6] = kind;
            h[8..12].copy_from_slice(&(len as u32).to_le_bytes());
            // Only the header is supplied: a reader that trusted the length would report
            // truncation (or try to allocate 4 GiB) instead.
            let mut reader = &h[..];
            assert!(
                matches!(
                    read_frame(&mut reader, Duration::ZERO),
                    Err(ReadError::Wire(WireError::TooLong { .. }))
                ),
                "kind {kind} len {len}"
            );
        }
    }

    #[test]
    fn short_fixed_payloads_are_malformed() {
        let mut h = Frame::Hello(hello()).encode();
        h[8..12].copy_from_slice(&4u32.to_le_bytes());
        h.truncate(HEADER_LEN + 4);
        assert!(matches!(
            Frame::decode(&h),
            Err(WireError::Malformed { .. })
        ));
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let f = Frame::Refuse(Refuse {
            code: RefuseCode::Other,
            reason: "é".repeat(MAX_REASON),
        });
        let (back, _) = Frame::decode(&f.encode()).unwrap();
        let Frame::Refuse(r) = back else { panic!() };
        assert_eq!(r.reason.len(), MAX_REASON);
    }

    #[test]
    fn stats_carry_the_servers_tcp_info_and_older_stats_without_it_still_parse() {
        let report = PeerReport {
            tcp_info: Some(crate::tcpinfo::TcpInfo {
                bytes_acked: None,
                ..crate::tcpinfo::TcpInfo::example()
            }),
            ..Default::default()
        };
        let bytes = Frame::Stats(Box::new(report.clone())).encode();
        let (back, _) = Frame::decode(&bytes).unwrap();
        assert_eq!(back, Frame::Stats(Box::new(report.clone())));
        // An older server's report: no tcp_info key at all.
        let mut json: serde_json::Value = serde_json::from_slice(&bytes[HEADER_LEN..]).unwrap();
        assert!(json.as_object_mut().unwrap().remove("tcp_info").is_some());
        let payload = serde_json::to_vec(&json).unwrap();
        let mut old = bytes[..HEADER_LEN].to_vec();
        old[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        old.extend_from_slice(&payload);
        let (back, _) = Frame::decode(&old).unwrap();
        assert_eq!(
            back,
            Frame::Stats(Box::new(PeerReport {
                tcp_info: None,
                ..report
            }))
        );
    }

    #[test]
    fn stats_that_are_not_json_are_malformed() {
        let mut b = Frame::Refuse(Refuse {
            code: RefuseCode::Other,
            reason: "{not json".into(),
        })
        .encode();
        b[6] = KIND_STATS;
        assert!(matches!(
            Frame::decode(&b),
            Err(WireError::Malformed { kind: "stats", .. })
        ));
    }
}
