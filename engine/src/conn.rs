//! The seam between the orchestrators (`client`, `server`) and the backends: what a
//! backend is handed to run one connection ([`ConnSpec`]) and what it hands back
//! ([`ConnReport`]). Both backends take the same spec and give the same report; neither
//! knows whether it serves a client or a server, nor how the results are reported.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::message::{Layout, Region, Template};
use crate::pool::{Pool, PoolPlan};
use crate::workload::{Flow, FlowSpec};

/// Once a client is interrupted, how long what is outstanding (the last messages, the
/// server's figures) may still take.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(1);

/// One connection, ready to run.
pub(crate) struct ConnSpec {
    /// The connected socket. The orchestrator owns it and keeps it open until the
    /// connection's report is back.
    pub fd: RawFd,
    /// The workload, with its buffers.
    pub flow: Flow,
    /// zc-fixed: the region the flow's buffers live in, for the ring to register (also set,
    /// unregistered, for the memfd of sendfile and splice).
    pub region: Option<Arc<Region>>,
    /// What the buffers hold.
    pub plan: PoolPlan,
}

impl ConnSpec {
    /// Allocates the buffers `plan` describes and builds the flow over them, with its own
    /// template.
    pub fn new(fd: RawFd, spec: FlowSpec, plan: PoolPlan) -> Result<ConnSpec, Error> {
        ConnSpec::with_template(fd, spec, plan, Template::new(Layout::new(plan.size)))
    }

    /// As [`ConnSpec::new`], sharing `template` (a client's threads share one).
    pub fn with_template(
        fd: RawFd,
        spec: FlowSpec,
        plan: PoolPlan,
        template: Arc<Template>,
    ) -> Result<ConnSpec, Error> {
        let (pool, region) = match plan.stride {
            Some(_) => {
                let (pool, region) = Pool::fixed(&template, &plan)?;
                // A memfd region is sent from by file offset, never registered.
                (pool, (!plan.file).then_some(region))
            }
            None => (Pool::heap(&template, &plan), None),
        };
        Ok(ConnSpec {
            fd,
            flow: Flow::new(spec, template, pool),
            region,
            plan,
        })
    }
}

/// What a backend hands back for one connection: its flow (counts, round trips,
/// progress, measured interval) and the error that ended it, if any.
pub(crate) struct ConnReport {
    pub flow: Flow,
    pub error: Option<Error>,
    /// No message of this side's lies partway in the byte stream (none was cut mid-send,
    /// none may still go out): after an error, an end notice (see `wire`) may follow
    /// where the next message would have started.
    pub at_boundary: bool,
}
