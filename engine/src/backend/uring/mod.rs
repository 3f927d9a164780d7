//! The io_uring backend: one ring per worker thread, created and used only by that thread,
//! serving many connections.
//!
//! - `probe.rs`: which opcodes the kernel has (a missing one is an error naming the opcode
//!   and the running kernel, never a quiet fallback to another path);
//! - `setup.rs`: making a ring with the fastest flags the kernel takes, and the locked
//!   memory it needs;
//! - `ring.rs`: [`ring::Ring`], the thin layer that pushes SQEs, enters the kernel and
//!   counts what that cost; `slots.rs` its registered tables; `bufring.rs` its provided
//!   buffers;
//! - `conn.rs`: one connection's operations over a [`crate::workload::Flow`];
//! - `client.rs`, `server.rs`: the client's ring per thread, the server's worker pool.

mod bufring;
mod client;
mod conn;
mod probe;
mod ring;
mod server;
mod setup;
mod slots;

pub(crate) use client::{run_ring, RingOpts};
pub(crate) use probe::{check_kernel, has_recv_zc};
pub(crate) use server::{serve, Dispatch, Incoming, ServeHost, ServeOpts};
pub(crate) use setup::{check_server_rings, memlock_limit, pin_limit};

pub(crate) use crate::vocab::MAX_FIXED_BUFFERS;
