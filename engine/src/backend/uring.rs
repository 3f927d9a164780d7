//! The io_uring backend (not built yet: issue 4).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::client::Connection;
use crate::config::{ClientConfig, Mode};
use crate::error::Error;
use crate::message::Template;
use crate::record::ThreadResult;
use crate::server::{Accepted, Shared};

pub(crate) fn check_kernel(_mode: Option<Mode>) -> Result<(), Error> {
    Err(Error::Config(
        "the uring backend is not available in this build yet".into(),
    ))
}

pub(crate) fn serve<'a>(
    _stop: &AtomicBool,
    _shared: &Shared<'a>,
    _accept: impl FnOnce(&(dyn Fn(Accepted<'_>) + Sync)) -> Result<(), Error>,
) -> Result<(), Error> {
    check_kernel(None)
}

pub(crate) fn run_client_thread(
    _conns: &[Connection],
    _config: &ClientConfig,
    _template: &Arc<Template>,
    _result: &mut ThreadResult,
    start: impl FnOnce(Result<(), Error>) -> Result<(), Error>,
) -> Result<(), Error> {
    start(check_kernel(None))
}
