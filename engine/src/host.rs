//! Where a side ran, as that side sees it: the host (name, kernel, CPU, the socket limits
//! that shape zero-copy) and the interface that carried its connection's data (kind,
//! driver, link speed, MTU, offloads).
//!
//! Each side describes itself — the server from inside its own network namespace or host,
//! for the address its connection arrived on — because that is where the sockets live: a
//! controller describing its own namespace would report the wrong interface and the wrong
//! per-namespace `optmem_max`. A figure the host will not give is `None`, never a guess.
//!
//! Whether the path crossed a real NIC decides what a zero-copy result means: on loopback
//! and veth the kernel copies every zero-copy send when it delivers to the local socket.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use serde::{Deserialize, Serialize};

/// One side's host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    /// `uname -r`.
    pub kernel: String,
    pub cpu_model: Option<String>,
    /// CPUs online on the host (not the describing thread's affinity: a pinned worker may
    /// run on one).
    pub cores: Option<usize>,
    /// net.core.optmem_max in this side's network namespace: the zero-copy control memory
    /// a socket may hold.
    pub optmem_max: Option<u64>,
    /// The soft RLIMIT_MEMLOCK; `None` when unlimited.
    pub memlock_limit: Option<u64>,
    /// The interface holding the connection's local address; `None` where none matched.
    pub interface: Option<Interface>,
}

/// What kind of link an interface is, for what a zero-copy result can mean on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// The loopback device: data never leaves the kernel.
    Loopback,
    /// One end of a veth pair: a namespace on the same kernel.
    Veth,
    /// Backed by a device (a NIC, physical or a VM's virtual one).
    Nic,
    /// Another software device (bridge, tun, ifb, …).
    Virtual,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Loopback => "loopback",
            LinkKind::Veth => "veth",
            LinkKind::Nic => "nic",
            LinkKind::Virtual => "virtual",
        }
    }

    /// Whether data sent through it reaches a socket of the same kernel, where zero-copy
    /// sends are copied on delivery.
    pub fn stays_local(self) -> bool {
        matches!(self, LinkKind::Loopback | LinkKind::Veth)
    }
}

/// The interface that carried a side's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    pub kind: LinkKind,
    /// The driver ethtool names (`veth`, `virtio_net`, `mlx5_core`, …).
    pub driver: Option<String>,
    /// Link speed in Mbit/s; `None` where the device does not say (loopback, veth).
    pub speed_mbps: Option<u32>,
    pub mtu: Option<u32>,
    pub offloads: Offloads,
}

/// The offloads that decide how sends are segmented and received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offloads {
    /// Scatter-gather: without it the kernel must linearise, and zero-copy cannot work.
    pub sg: Option<bool>,
    pub tso: Option<bool>,
    pub gso: Option<bool>,
    pub gro: Option<bool>,
}

impl HostInfo {
    /// This host, with the interface that holds `local` (a connection's local address).
    pub fn for_address(local: IpAddr) -> HostInfo {
        HostInfo {
            hostname: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_default(),
            kernel: crate::kernel_release(),
            cpu_model: cpu_model(),
            cores: online_cpus(),
            optmem_max: read_number("/proc/sys/net/core/optmem_max"),
            memlock_limit: crate::memlock_limit(),
            interface: interface_for(local),
        }
    }
}

impl HostInfo {
    /// A host with every figure present, for tests and the list of CSV columns: one end
    /// of a veth pair in a namespace.
    pub fn example() -> HostInfo {
        HostInfo {
            hostname: "example".into(),
            kernel: "6.18.0".into(),
            cpu_model: Some("Example CPU".into()),
            cores: Some(2),
            optmem_max: Some(131072),
            memlock_limit: Some(8 << 20),
            interface: Some(Interface {
                name: "cps1".into(),
                kind: LinkKind::Veth,
                driver: Some("veth".into()),
                speed_mbps: Some(10000),
                mtu: Some(1500),
                offloads: Offloads {
                    sg: Some(true),
                    tso: Some(true),
                    gso: Some(true),
                    gro: Some(false),
                },
            }),
        }
    }
}

/// CPUs online on this host.
fn online_cpus() -> Option<usize> {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).ok().filter(|&n| n > 0)
}

/// The CPU model name from /proc/cpuinfo.
pub fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix("model name")
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
    })
}

fn read_number<T: std::str::FromStr>(path: &str) -> Option<T> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The interface holding `local`, described; `None` where no interface has it.
fn interface_for(local: IpAddr) -> Option<Interface> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    let found = addrs.into_iter().find(|a| {
        a.address.as_ref().is_some_and(|s| {
            let ip: Option<IpAddr> = s
                .as_sockaddr_in()
                .map(|v4| IpAddr::from(v4.ip()))
                .or_else(|| s.as_sockaddr_in6().map(|v6| IpAddr::from(v6.ip())));
            ip == Some(local)
        })
    })?;
    let name = found.interface_name;
    let loopback = found
        .flags
        .contains(nix::net::if_::InterfaceFlags::IFF_LOOPBACK);
    let driver = Ethtool::open().and_then(|e| e.driver(&name));
    let has_device = std::path::Path::new(&format!("/sys/class/net/{name}/device")).exists();
    let kind = if loopback {
        LinkKind::Loopback
    } else if driver.as_deref() == Some("veth") {
        LinkKind::Veth
    } else if has_device {
        LinkKind::Nic
    } else {
        LinkKind::Virtual
    };
    let ethtool = Ethtool::open();
    let flag = |cmd| ethtool.as_ref().and_then(|e| e.flag(&name, cmd));
    Some(Interface {
        speed_mbps: read_number::<i64>(&format!("/sys/class/net/{name}/speed"))
            .filter(|&s| s > 0)
            .and_then(|s| u32::try_from(s).ok()),
        mtu: read_number(&format!("/sys/class/net/{name}/mtu")),
        offloads: Offloads {
            sg: flag(ETHTOOL_GSG),
            tso: flag(ETHTOOL_GTSO),
            gso: flag(ETHTOOL_GGSO),
            gro: flag(ETHTOOL_GGRO),
        },
        name,
        kind,
        driver,
    })
}

// ethtool commands (linux/ethtool.h).
const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GSG: u32 = 0x18;
const ETHTOOL_GTSO: u32 = 0x1e;
const ETHTOOL_GGSO: u32 = 0x23;
const ETHTOOL_GGRO: u32 = 0x2b;

/// `struct ethtool_drvinfo`.
#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// `struct ethtool_value`.
#[repr(C)]
struct Value {
    cmd: u32,
    data: u32,
}

/// A socket to ask ethtool questions through (SIOCETHTOOL), in this network namespace.
struct Ethtool(OwnedFd);

impl Ethtool {
    fn open() -> Option<Ethtool> {
        // SAFETY: socket has no memory preconditions; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        // SAFETY: a fresh descriptor that nothing else owns.
        (fd >= 0).then(|| Ethtool(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Runs ethtool command `data` (whose first u32 is the command) on `name`.
    fn ask<T>(&self, name: &str, data: &mut T) -> bool {
        // SAFETY: ifreq is plain data; zeroed is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        let bytes = name.as_bytes();
        if bytes.len() >= ifr.ifr_name.len() {
            return false;
        }
        for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        ifr.ifr_ifru.ifru_data = (data as *mut T).cast();
        // SAFETY: a valid socket, an ifreq naming an interface, and ifr_data pointing at a
        // live, correctly laid out ethtool struct for the command it carries.
        unsafe { libc::ioctl(self.0.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) == 0 }
    }

    fn driver(&self, name: &str) -> Option<String> {
        // SAFETY: DrvInfo is plain data; zeroed is a valid value.
        let mut info: DrvInfo = unsafe { std::mem::zeroed() };
        info.cmd = ETHTOOL_GDRVINFO;
        if !self.ask(name, &mut info) {
            return None;
        }
        let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
        let driver = String::from_utf8_lossy(&info.driver[..end]).into_owned();
        (!driver.is_empty()).then_some(driver)
    }

    fn flag(&self, name: &str, cmd: u32) -> Option<bool> {
        let mut v = Value { cmd, data: 0 };
        self.ask(name, &mut v).then_some(v.data != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_described_as_loopback() {
        let h = HostInfo::for_address(IpAddr::from([127, 0, 0, 1]));
        assert!(!h.hostname.is_empty());
        assert!(!h.kernel.is_empty());
        assert!(h.cores.unwrap() >= 1);
        assert!(h.optmem_max.unwrap() > 0);
        let i = h.interface.expect("127.0.0.1 is on lo");
        assert_eq!((i.name.as_str(), i.kind), ("lo", LinkKind::Loopback));
        assert!(i.kind.stays_local());
        assert_eq!(i.mtu, Some(65536));
        assert_eq!(i.speed_mbps, None, "lo has no link speed");
        // lo answers the offload questions (it does scatter-gather).
        assert_eq!(i.offloads.sg, Some(true));
    }

    #[test]
    fn cores_are_the_hosts_not_the_threads() {
        let all = HostInfo::for_address(IpAddr::from([127, 0, 0, 1])).cores;
        // Described from a thread pinned to one CPU, the host still has all its CPUs.
        let pinned = std::thread::spawn(|| {
            crate::placement::pin(0).expect("pin to CPU 0");
            HostInfo::for_address(IpAddr::from([127, 0, 0, 1])).cores
        })
        .join()
        .unwrap();
        assert_eq!(pinned, all);
        assert_eq!(
            all,
            std::thread::available_parallelism().ok().map(|n| n.get())
        );
    }

    #[test]
    fn an_address_no_interface_holds_has_no_interface() {
        let h = HostInfo::for_address(IpAddr::from([192, 0, 2, 77]));
        assert_eq!(h.interface, None);
        assert!(!LinkKind::Nic.stays_local());
    }
}
