//! copyperf baseline: the bare loops `scripts/compare.sh` holds copyperf against where no
//! packaged tool does the same operation. Nothing here frames, checks or accounts for
//! anything: a receiver that drains its connections (discarding them with `MSG_TRUNC`, or
//! copying them into one buffer), and an io_uring sender that keeps `--depth` sends of
//! one buffer in flight per flow, plain `SEND` or `SEND_ZC` from a registered buffer.
//!
//! The `SEND_ZC` loop reuses its one buffer without waiting for the kernel's
//! notification, as a C loop would: it is an upper bound for zero-copy sending, which a
//! program that must not rewrite a buffer the kernel may still read (copyperf) cannot
//! simply copy. The sender prints one JSON object: bytes, seconds, Gbit/s.

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use io_uring::{cqueue, opcode, types, IoUring};

/// The bare reference loops compare.sh measures copyperf against.
#[derive(Debug, Parser)]
#[command(name = "baseline", version, max_term_width = 100)]
struct Args {
    #[command(subcommand)]
    role: Role,
}

#[derive(Debug, Subcommand)]
enum Role {
    /// Accept connections and drain each one in a thread of its own, until killed.
    Recv {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:18790")]
        listen: SocketAddr,
        /// discard: recv(MSG_TRUNC), the kernel drops the bytes; copy: recv into a buffer.
        #[arg(long, value_enum, default_value_t = Rx::Discard)]
        rx: Rx,
        /// Bytes asked for by each recv.
        #[arg(long, default_value_t = 1 << 20)]
        chunk: usize,
    },
    /// Connect `--flows` connections, one thread and one ring each, and send for `-d` s.
    Send {
        /// The receiver's address.
        #[arg(long, default_value = "127.0.0.1:18790")]
        to: SocketAddr,
        /// Bytes per send (K/M suffixes).
        #[arg(short = 's', long, default_value = "16K", value_parser = cli::size_arg)]
        size: usize,
        /// Sends in flight per flow.
        #[arg(long, default_value_t = 8)]
        depth: u32,
        /// Connections, each with a thread and a ring of its own.
        #[arg(long, default_value_t = 1)]
        flows: usize,
        /// Seconds of sending.
        #[arg(short = 'd', long, default_value_t = 3.0)]
        duration: f64,
        /// plain: IORING_OP_SEND; zc-fixed: IORING_OP_SEND_ZC from a registered buffer.
        #[arg(long, value_enum, default_value_t = Send::Plain)]
        send: Send,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Rx {
    Discard,
    Copy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Send {
    Plain,
    ZcFixed,
}

fn main() -> ExitCode {
    let result = match Args::parse().role {
        Role::Recv { listen, rx, chunk } => receive(listen, rx, chunk),
        Role::Send {
            to,
            size,
            depth,
            flows,
            duration,
            send,
        } => transmit(
            to,
            size,
            depth,
            flows,
            Duration::from_secs_f64(duration),
            send,
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn receive(listen: SocketAddr, rx: Rx, chunk: usize) -> Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        std::thread::spawn(move || {
            let mut buf = vec![0u8; chunk];
            loop {
                let n = match rx {
                    Rx::Copy => conn.read(&mut buf).unwrap_or(0),
                    // SAFETY: with MSG_TRUNC a TCP recv drops up to `chunk` bytes without
                    // writing to the buffer, which is valid for `chunk` bytes anyway.
                    Rx::Discard => unsafe {
                        libc::recv(
                            conn.as_raw_fd(),
                            buf.as_mut_ptr().cast(),
                            chunk,
                            libc::MSG_TRUNC,
                        )
                        .max(0) as usize
                    },
                };
                if n == 0 {
                    break;
                }
            }
        });
    }
    Ok(())
}

fn transmit(
    to: SocketAddr,
    size: usize,
    depth: u32,
    flows: usize,
    duration: Duration,
    send: Send,
) -> Result<()> {
    if size == 0 || depth == 0 || flows == 0 {
        bail!("size, depth and flows must be at least 1");
    }
    let conns = (0..flows)
        .map(|_| TcpStream::connect(to).with_context(|| format!("connecting to {to}")))
        .collect::<Result<Vec<_>>>()?;
    let started = Instant::now();
    let threads: Vec<_> = conns
        .into_iter()
        .map(|conn| std::thread::spawn(move || flow(&conn, size, depth, duration, send)))
        .collect();
    let mut bytes = 0u64;
    for t in threads {
        bytes += t.join().map_err(|_| anyhow::anyhow!("a flow panicked"))??;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "bytes": bytes,
            "seconds": seconds,
            "gbps": bytes as f64 * 8.0 / seconds / 1e9,
            "size": size,
            "depth": depth,
            "flows": flows,
            "send": send.to_possible_value().map(|v| v.get_name().to_owned()),
        })
    );
    Ok(())
}

/// One flow: `depth` sends of one buffer in flight until `duration` has passed; returns
/// the bytes the kernel took.
fn flow(conn: &TcpStream, size: usize, depth: u32, duration: Duration, send: Send) -> Result<u64> {
    let fd = types::Fd(conn.as_raw_fd());
    let buf = vec![0x5au8; size];
    let mut ring =
        IoUring::new((depth * 2).next_power_of_two().max(8)).context("io_uring_setup")?;
    if send == Send::ZcFixed {
        let iov = libc::iovec {
            iov_base: buf.as_ptr() as *mut _,
            iov_len: size,
        };
        // SAFETY: `buf` outlives the ring (declared before it, dropped after it).
        unsafe { ring.submitter().register_buffers(&[iov]) }.context("IORING_REGISTER_BUFFERS")?;
    }
    let len = u32::try_from(size).context("size over 4 GiB")?;
    let sqe = || match send {
        Send::Plain => opcode::Send::new(fd, buf.as_ptr(), len).build(),
        Send::ZcFixed => opcode::SendZc::new(fd, buf.as_ptr(), len)
            .buf_index(Some(0))
            .build(),
    };
    let deadline = Instant::now() + duration;
    let mut in_flight = 0u32;
    // Zero-copy notifications still to come: the loop ends only when they have.
    let mut notifications = 0u32;
    let mut bytes = 0u64;
    let mut sending = true;
    loop {
        if sending {
            while in_flight < depth {
                // SAFETY: the buffer (and its registration) outlive every operation: the
                // loop waits for all of them before returning.
                unsafe { ring.submission().push(&sqe()) }.expect("the ring has room for depth");
                in_flight += 1;
            }
        }
        if in_flight == 0 && notifications == 0 {
            break;
        }
        ring.submit_and_wait(1).context("io_uring_enter")?;
        for cqe in ring.completion() {
            if cqueue::notif(cqe.flags()) {
                notifications -= 1;
                continue;
            }
            if cqueue::more(cqe.flags()) {
                notifications += 1;
            }
            in_flight -= 1;
            if cqe.result() < 0 {
                bail!("send: {}", std::io::Error::from_raw_os_error(-cqe.result()));
            }
            bytes += cqe.result() as u64;
        }
        if sending && Instant::now() >= deadline {
            sending = false;
        }
    }
    Ok(bytes)
}
