//! Integration tests: real servers and clients on 127.0.0.1:0, in one test binary.

mod count;
mod counters;
mod direction;
mod errors;
mod harness;
mod hostile;
mod live;
mod matrix;
mod page_cache;
mod placement;
mod polling;
mod rate;
mod relay;
mod rx;
mod sizes;
mod tcp_info;
