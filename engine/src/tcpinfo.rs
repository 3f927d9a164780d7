//! `TCP_INFO`: what the kernel's TCP said about a connection at the end of its run.
//!
//! Each connection reads `getsockopt(IPPROTO_TCP, TCP_INFO)` once, just before it reports
//! (the client before reading the server's end-of-run figures, the server before sending
//! them), into a zeroed [`RawTcpInfo`] — this module's own copy of the kernel's
//! `struct tcp_info` (`include/uapi/linux/tcp.h`, up to `tcpi_total_rto_time`, Linux 6.7;
//! the libc crate's stops at `tcpi_total_retrans`). With `--interval`, the client's
//! reporter also reads it at every look (see `live`). The kernel copies as much of its own
//! struct as fits and returns the length it copied: a field that ends beyond that length
//! was not filled by this kernel and is `None` ([`TcpInfo::from_raw`]), never a 0 that
//! would pass for a reading.
//!
//! A side's connections are summarised in a [`TcpSummary`]: counters summed, gauges
//! (cwnd, srtt, rttvar, delivery rate, MSS, path MTU) as their mean and range over the
//! connections. The mean, not the median, because a summary must merge exactly when the
//! records of several client hosts are merged: means weighted by connections do, medians
//! do not.

use serde::{Deserialize, Serialize};
use std::mem::{offset_of, size_of};
use std::os::fd::RawFd;

/// The kernel's `struct tcp_info` (include/uapi/linux/tcp.h) up to `tcpi_total_rto_time`.
/// The bit fields (`tcpi_snd_wscale : 4, tcpi_rcv_wscale : 4`, and
/// `tcpi_delivery_rate_app_limited : 1, tcpi_fastopen_client_fail : 2`) are one byte each.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct RawTcpInfo {
    pub state: u8,
    pub ca_state: u8,
    pub retransmits: u8,
    pub probes: u8,
    pub backoff: u8,
    pub options: u8,
    pub wscale: u8,
    pub app_limited_fastopen: u8,
    pub rto: u32,
    pub ato: u32,
    pub snd_mss: u32,
    pub rcv_mss: u32,
    pub unacked: u32,
    pub sacked: u32,
    pub lost: u32,
    pub retrans: u32,
    pub fackets: u32,
    pub last_data_sent: u32,
    pub last_ack_sent: u32,
    pub last_data_recv: u32,
    pub last_ack_recv: u32,
    pub pmtu: u32,
    pub rcv_ssthresh: u32,
    pub rtt: u32,
    pub rttvar: u32,
    pub snd_ssthresh: u32,
    pub snd_cwnd: u32,
    pub advmss: u32,
    pub reordering: u32,
    pub rcv_rtt: u32,
    pub rcv_space: u32,
    pub total_retrans: u32,
    pub pacing_rate: u64,
    pub max_pacing_rate: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_out: u32,
    pub segs_in: u32,
    pub notsent_bytes: u32,
    pub min_rtt: u32,
    pub data_segs_in: u32,
    pub data_segs_out: u32,
    pub delivery_rate: u64,
    pub busy_time: u64,
    pub rwnd_limited: u64,
    pub sndbuf_limited: u64,
    pub delivered: u32,
    pub delivered_ce: u32,
    pub bytes_sent: u64,
    pub bytes_retrans: u64,
    pub dsack_dups: u32,
    pub reord_seen: u32,
    pub rcv_ooopack: u32,
    pub snd_wnd: u32,
    pub rcv_wnd: u32,
    pub rehash: u32,
    pub total_rto: u16,
    pub total_rto_recoveries: u16,
    pub total_rto_time: u32,
}

// The offsets of include/uapi/linux/tcp.h, as the kernel lays them out.
const _: () = {
    assert!(offset_of!(RawTcpInfo, retransmits) == 2);
    assert!(offset_of!(RawTcpInfo, rto) == 8);
    assert!(offset_of!(RawTcpInfo, snd_mss) == 16);
    assert!(offset_of!(RawTcpInfo, unacked) == 24);
    assert!(offset_of!(RawTcpInfo, pmtu) == 60);
    assert!(offset_of!(RawTcpInfo, rtt) == 68);
    assert!(offset_of!(RawTcpInfo, rttvar) == 72);
    assert!(offset_of!(RawTcpInfo, snd_cwnd) == 80);
    assert!(offset_of!(RawTcpInfo, total_retrans) == 100);
    assert!(offset_of!(RawTcpInfo, pacing_rate) == 104);
    assert!(offset_of!(RawTcpInfo, bytes_acked) == 120);
    assert!(offset_of!(RawTcpInfo, bytes_received) == 128);
    assert!(offset_of!(RawTcpInfo, notsent_bytes) == 144);
    assert!(offset_of!(RawTcpInfo, delivery_rate) == 160);
    assert!(offset_of!(RawTcpInfo, busy_time) == 168);
    assert!(offset_of!(RawTcpInfo, rwnd_limited) == 176);
    assert!(offset_of!(RawTcpInfo, sndbuf_limited) == 184);
    assert!(offset_of!(RawTcpInfo, bytes_sent) == 200);
    assert!(offset_of!(RawTcpInfo, total_rto) == 240);
    assert!(offset_of!(RawTcpInfo, total_rto_time) == 244);
    assert!(size_of::<RawTcpInfo>() == 248);
};

/// One connection's `TCP_INFO` at the end of its run. `None`: the kernel did not fill the
/// field (its `struct tcp_info` ends before it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpInfo {
    /// `tcpi_retransmits`: retransmission timeouts not yet recovered from.
    pub retransmits: Option<u64>,
    /// `tcpi_total_retrans`: segments retransmitted over the connection's life.
    pub total_retrans: Option<u64>,
    /// `tcpi_snd_cwnd`: congestion window, segments.
    pub cwnd: Option<u64>,
    /// `tcpi_rtt`: smoothed round-trip time, µs.
    pub srtt_us: Option<u64>,
    /// `tcpi_rttvar`: its variation, µs.
    pub rttvar_us: Option<u64>,
    /// `tcpi_delivery_rate`: the most recent delivery rate sample, bytes per second.
    pub delivery_rate: Option<u64>,
    /// `tcpi_bytes_acked`: bytes the peer acknowledged.
    pub bytes_acked: Option<u64>,
    /// `tcpi_bytes_received`: bytes received.
    pub bytes_received: Option<u64>,
    /// `tcpi_busy_time`: time with data in flight, µs.
    pub busy_us: Option<u64>,
    /// `tcpi_rwnd_limited`: time sending was stopped by the peer's receive window, µs.
    pub rwnd_limited_us: Option<u64>,
    /// `tcpi_sndbuf_limited`: time sending was stopped by the send buffer, µs.
    pub sndbuf_limited_us: Option<u64>,
    /// `tcpi_unacked`: segments sent and not yet acknowledged (in flight).
    pub unacked: Option<u64>,
    /// `tcpi_notsent_bytes`: bytes written to the socket and not yet sent.
    pub notsent_bytes: Option<u64>,
    /// `tcpi_snd_mss`: the sending MSS, bytes.
    pub snd_mss: Option<u64>,
    /// `tcpi_pmtu`: path MTU, bytes.
    pub pmtu: Option<u64>,
}

/// `fd`'s `TCP_INFO` as the kernel wrote it, and how many of its bytes it wrote (an older
/// kernel writes fewer: the fields past them are not there).
fn read_raw(fd: RawFd) -> std::io::Result<(RawTcpInfo, usize)> {
    let mut raw = RawTcpInfo::default();
    let mut len = size_of::<RawTcpInfo>() as libc::socklen_t;
    // SAFETY: `raw` is a plain repr(C) struct of `len` bytes that outlives the call; the
    // kernel writes at most `len` bytes and stores how many in `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut raw as *mut RawTcpInfo).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((raw, len as usize))
}

impl TcpInfo {
    /// The fields of `raw` that lie within the `len` bytes the kernel filled.
    pub fn from_raw(raw: &RawTcpInfo, len: usize) -> TcpInfo {
        macro_rules! field {
            ($f:ident) => {{
                let end = offset_of!(RawTcpInfo, $f) + std::mem::size_of_val(&raw.$f);
                (end <= len).then(|| u64::from(raw.$f))
            }};
        }
        TcpInfo {
            retransmits: field!(retransmits),
            total_retrans: field!(total_retrans),
            cwnd: field!(snd_cwnd),
            srtt_us: field!(rtt),
            rttvar_us: field!(rttvar),
            delivery_rate: field!(delivery_rate),
            bytes_acked: field!(bytes_acked),
            bytes_received: field!(bytes_received),
            busy_us: field!(busy_time),
            rwnd_limited_us: field!(rwnd_limited),
            sndbuf_limited_us: field!(sndbuf_limited),
            unacked: field!(unacked),
            notsent_bytes: field!(notsent_bytes),
            snd_mss: field!(snd_mss),
            pmtu: field!(pmtu),
        }
    }

    /// Reads `fd`'s `TCP_INFO`.
    pub fn read(fd: RawFd) -> std::io::Result<TcpInfo> {
        let (raw, len) = read_raw(fd)?;
        Ok(TcpInfo::from_raw(&raw, len))
    }

    /// A reading with every field present, for tests and for the CSV columns.
    pub fn example() -> TcpInfo {
        TcpInfo::from_raw(
            &RawTcpInfo {
                retransmits: 0,
                total_retrans: 1,
                snd_cwnd: 10,
                rtt: 35,
                rttvar: 10,
                delivery_rate: 1_000_000_000,
                bytes_acked: 4096,
                bytes_received: 4096,
                busy_time: 1000,
                rwnd_limited: 10,
                sndbuf_limited: 20,
                unacked: 1,
                notsent_bytes: 100,
                snd_mss: 65483,
                pmtu: 65535,
                ..RawTcpInfo::default()
            },
            size_of::<RawTcpInfo>(),
        )
    }

    /// `fd`'s TCP state (`tcpi_state`, numbered as in the kernel's `tcp_states.h`), `None`
    /// where the kernel refused.
    pub fn state(fd: RawFd) -> Option<u8> {
        let (raw, len) = read_raw(fd).ok()?;
        (len >= 1).then_some(raw.state)
    }

    /// Reads `fd`'s `TCP_INFO`; `None` where the kernel refused (then nothing is known).
    pub fn read_or_none(fd: RawFd) -> Option<TcpInfo> {
        TcpInfo::read(fd).ok()
    }

    /// Every connection's `TCP_INFO`, in order, all fields missing where the kernel
    /// refused.
    pub fn read_each(fds: impl IntoIterator<Item = RawFd>) -> Vec<TcpInfo> {
        fds.into_iter()
            .map(|fd| TcpInfo::read(fd).unwrap_or_default())
            .collect()
    }
}

/// A gauge over a side's connections: its mean, smallest and largest value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Gauge {
    pub mean: f64,
    pub min: u64,
    pub max: u64,
}

impl Gauge {
    /// Over `values`; `None` where any is missing (a mean of some connections would pass
    /// for all) or there are none.
    fn of(values: impl Iterator<Item = Option<u64>>) -> Option<Gauge> {
        let values: Vec<u64> = values.collect::<Option<Vec<u64>>>()?;
        let n = values.len();
        Some(Gauge {
            mean: values.iter().map(|&v| v as f64).sum::<f64>() / n as f64,
            min: *values.iter().min()?,
            max: *values.iter().max()?,
        })
    }

    /// `a` over `na` connections and `b` over `nb`, as one gauge over both.
    fn merge(a: Option<Gauge>, na: u64, b: Option<Gauge>, nb: u64) -> Option<Gauge> {
        let (a, b) = (a?, b?);
        let n = (na + nb).max(1) as f64;
        Some(Gauge {
            mean: (a.mean * na as f64 + b.mean * nb as f64) / n,
            min: a.min.min(b.min),
            max: a.max.max(b.max),
        })
    }
}

/// A side's connections' `TCP_INFO`: counters summed over the connections, gauges as
/// [`Gauge`]s. A field is `None` unless every connection's kernel filled it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TcpSummary {
    /// The connections read.
    pub connections: u64,
    pub retransmits: Option<u64>,
    pub total_retrans: Option<u64>,
    pub bytes_acked: Option<u64>,
    pub bytes_received: Option<u64>,
    /// Summed over the connections: it can exceed the run's duration.
    pub busy_us: Option<u64>,
    pub rwnd_limited_us: Option<u64>,
    pub sndbuf_limited_us: Option<u64>,
    pub unacked: Option<u64>,
    pub notsent_bytes: Option<u64>,
    /// Segments.
    pub cwnd: Option<Gauge>,
    pub srtt_us: Option<Gauge>,
    pub rttvar_us: Option<Gauge>,
    /// Bytes per second.
    pub delivery_rate: Option<Gauge>,
    pub snd_mss: Option<Gauge>,
    pub pmtu: Option<Gauge>,
}

impl TcpSummary {
    /// Over `conns`; `None` where there are none.
    pub fn of(conns: &[TcpInfo]) -> Option<TcpSummary> {
        if conns.is_empty() {
            return None;
        }
        let sum = |f: fn(&TcpInfo) -> Option<u64>| conns.iter().map(f).sum::<Option<u64>>();
        let gauge = |f: fn(&TcpInfo) -> Option<u64>| Gauge::of(conns.iter().map(f));
        Some(TcpSummary {
            connections: conns.len() as u64,
            retransmits: sum(|c| c.retransmits),
            total_retrans: sum(|c| c.total_retrans),
            bytes_acked: sum(|c| c.bytes_acked),
            bytes_received: sum(|c| c.bytes_received),
            busy_us: sum(|c| c.busy_us),
            rwnd_limited_us: sum(|c| c.rwnd_limited_us),
            sndbuf_limited_us: sum(|c| c.sndbuf_limited_us),
            unacked: sum(|c| c.unacked),
            notsent_bytes: sum(|c| c.notsent_bytes),
            cwnd: gauge(|c| c.cwnd),
            srtt_us: gauge(|c| c.srtt_us),
            rttvar_us: gauge(|c| c.rttvar_us),
            delivery_rate: gauge(|c| c.delivery_rate),
            snd_mss: gauge(|c| c.snd_mss),
            pmtu: gauge(|c| c.pmtu),
        })
    }

    /// Two summaries of disjoint sets of connections as one: counters summed, gauges'
    /// means weighted by their connections — what [`TcpSummary::of`] gives over both sets.
    pub fn merge(&self, other: &TcpSummary) -> TcpSummary {
        let (na, nb) = (self.connections, other.connections);
        let add = |a: Option<u64>, b: Option<u64>| Some(a? + b?);
        let g = |a, b| Gauge::merge(a, na, b, nb);
        TcpSummary {
            connections: na + nb,
            retransmits: add(self.retransmits, other.retransmits),
            total_retrans: add(self.total_retrans, other.total_retrans),
            bytes_acked: add(self.bytes_acked, other.bytes_acked),
            bytes_received: add(self.bytes_received, other.bytes_received),
            busy_us: add(self.busy_us, other.busy_us),
            rwnd_limited_us: add(self.rwnd_limited_us, other.rwnd_limited_us),
            sndbuf_limited_us: add(self.sndbuf_limited_us, other.sndbuf_limited_us),
            unacked: add(self.unacked, other.unacked),
            notsent_bytes: add(self.notsent_bytes, other.notsent_bytes),
            cwnd: g(self.cwnd, other.cwnd),
            srtt_us: g(self.srtt_us, other.srtt_us),
            rttvar_us: g(self.rttvar_us, other.rttvar_us),
            delivery_rate: g(self.delivery_rate, other.delivery_rate),
            snd_mss: g(self.snd_mss, other.snd_mss),
            pmtu: g(self.pmtu, other.pmtu),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawTcpInfo {
        RawTcpInfo {
            retransmits: 1,
            total_retrans: 7,
            snd_cwnd: 10,
            rtt: 35,
            rttvar: 12,
            pmtu: 1500,
            snd_mss: 1448,
            unacked: 3,
            bytes_acked: 1 << 33,
            bytes_received: 99,
            notsent_bytes: 5,
            delivery_rate: 1_250_000_000,
            busy_time: 2_900_000,
            rwnd_limited: 100_000,
            sndbuf_limited: 4,
            ..RawTcpInfo::default()
        }
    }

    #[test]
    fn a_full_length_fills_every_field() {
        let info = TcpInfo::from_raw(&raw(), size_of::<RawTcpInfo>());
        assert_eq!(
            info,
            TcpInfo {
                retransmits: Some(1),
                total_retrans: Some(7),
                cwnd: Some(10),
                srtt_us: Some(35),
                rttvar_us: Some(12),
                delivery_rate: Some(1_250_000_000),
                bytes_acked: Some(1 << 33),
                bytes_received: Some(99),
                busy_us: Some(2_900_000),
                rwnd_limited_us: Some(100_000),
                sndbuf_limited_us: Some(4),
                unacked: Some(3),
                notsent_bytes: Some(5),
                snd_mss: Some(1448),
                pmtu: Some(1500),
            }
        );
    }

    #[test]
    fn fields_past_the_returned_length_are_missing_not_zero() {
        // The size of struct tcp_info in Linux 4.6 (up to tcpi_total_retrans)...
        let old = TcpInfo::from_raw(&raw(), 104);
        assert_eq!(old.total_retrans, Some(7));
        assert_eq!(old.cwnd, Some(10));
        assert_eq!(old.bytes_acked, None);
        assert_eq!(old.delivery_rate, None);
        assert_eq!(old.busy_us, None);
        assert_eq!(old.notsent_bytes, None);
        // ...a length ending inside a field leaves that field out...
        let cut = TcpInfo::from_raw(&raw(), 124);
        assert_eq!(cut.bytes_acked, None);
        assert_eq!(cut.total_retrans, Some(7));
        // ...and up to tcpi_delivery_rate (Linux 4.9) fills it, not the chrono times.
        let v49 = TcpInfo::from_raw(&raw(), 168);
        assert_eq!(v49.delivery_rate, Some(1_250_000_000));
        assert_eq!(v49.notsent_bytes, Some(5));
        assert_eq!(v49.busy_us, None);
        // Nothing returned: nothing known.
        assert_eq!(TcpInfo::from_raw(&raw(), 0), TcpInfo::default());
        assert_eq!(TcpInfo::from_raw(&raw(), 2).retransmits, None);
        assert_eq!(TcpInfo::from_raw(&raw(), 3).retransmits, Some(1));
    }

    #[test]
    fn reads_a_live_connection() {
        use std::io::{Read, Write};
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut b, _) = listener.accept().unwrap();
        a.write_all(&[7u8; 1000]).unwrap();
        let mut buf = [0u8; 1000];
        b.read_exact(&mut buf).unwrap();
        let info = TcpInfo::read(b.as_raw_fd()).unwrap();
        assert_eq!(info.bytes_received, Some(1000));
        assert!(info.cwnd.unwrap() > 0);
        assert!(TcpInfo::read(-1).is_err());
    }

    #[test]
    fn summaries_sum_counters_and_span_gauges() {
        let a = TcpInfo::from_raw(&raw(), size_of::<RawTcpInfo>());
        let b = TcpInfo {
            cwnd: Some(30),
            srtt_us: Some(65),
            total_retrans: Some(3),
            ..a
        };
        let s = TcpSummary::of(&[a, b]).unwrap();
        assert_eq!(s.connections, 2);
        assert_eq!(s.total_retrans, Some(10));
        assert_eq!(s.bytes_acked, Some(1 << 34));
        assert_eq!(
            s.cwnd,
            Some(Gauge {
                mean: 20.0,
                min: 10,
                max: 30
            })
        );
        assert_eq!(s.srtt_us.unwrap().mean, 50.0);
        assert_eq!(TcpSummary::of(&[]), None);
        // One connection without a field: the sum and the gauge of it are missing.
        let old = TcpInfo::from_raw(&raw(), 104);
        let s = TcpSummary::of(&[a, old]).unwrap();
        assert_eq!(s.bytes_acked, None);
        assert_eq!(s.delivery_rate, None);
        assert_eq!(s.total_retrans, Some(14));
        assert_eq!(s.cwnd.unwrap().mean, 10.0);
    }

    #[test]
    fn merged_summaries_equal_the_summary_of_all_connections() {
        let a = TcpInfo::from_raw(&raw(), size_of::<RawTcpInfo>());
        let b = TcpInfo {
            cwnd: Some(40),
            rttvar_us: Some(2),
            ..a
        };
        let c = TcpInfo {
            cwnd: Some(1),
            delivery_rate: Some(3),
            ..a
        };
        let one = TcpSummary::of(&[a]).unwrap();
        let two = TcpSummary::of(&[b, c]).unwrap();
        assert_eq!(one.merge(&two), TcpSummary::of(&[a, b, c]).unwrap());
        let old = TcpSummary::of(&[TcpInfo::from_raw(&raw(), 104)]).unwrap();
        let m = one.merge(&old);
        assert_eq!(m.connections, 2);
        assert_eq!(m.bytes_acked, None);
        assert_eq!(m.busy_us, None);
        assert_eq!(m.total_retrans, Some(14));
    }
}
