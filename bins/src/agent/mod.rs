//! The agent: one process per host that serves or runs clients as a controller asks,
//! over a versioned, bounded protocol on stdin/stdout ([`proto`]) — so that `ip netns
//! exec`, the system's `ssh`, or a daemon's authenticated TCP port ([`daemon`]) can reach
//! it — and the controller's side of that conversation ([`control`]).

pub mod auth;
pub mod control;
pub mod daemon;
pub mod proto;
pub mod session;
