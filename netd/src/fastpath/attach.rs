//! The program on a host-side veth's ingress, as a tc `bpf` filter in direct-action mode under
//! an `ingress` qdisc, over rtnetlink: attach (at netd's own priority, so other filters keep
//! theirs), find netd's own among the device's filters, detach. The filter stays with the
//! device (no file descriptor or pin to hold) and goes with it.
//!
//! Not tcx (`BPF_PROG_ATTACH` to `BPF_TCX_INGRESS`), although the kernel has it: a tcx attach
//! waits for a full RCU grace period while holding the RTNL lock, measured 8-20 ms per device
//! on the shared test machine (`netd_bench`: 100 sequential endpoint attaches 1.4 s against
//! 0.15 s), where adding the qdisc and the filter took about 0.1 ms each.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use futures::{StreamExt, TryStreamExt};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::tc::{
    TcAttribute, TcBpfFlags, TcFilterBpfOption, TcHandle, TcMessage, TcOption,
};
use rtnetlink::Handle;

use super::prog::PROG_NAME;
use super::sys::{self, ProgInfo};

/// The tc priority of netd's filter on every host veth.
pub const PRIORITY: u16 = 0xbe57;
/// `ETH_P_ALL`: the filter sees every frame.
const ETH_P_ALL: u16 = 0x0003;

/// Why an attach, detach or listing failed.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The netlink request failed.
    #[error("netlink: cannot {op} on interface {ifindex}")]
    Netlink {
        op: &'static str,
        ifindex: u32,
        #[source]
        source: rtnetlink::Error,
    },
    /// Reading a program found there failed.
    #[error("bpf: cannot read program {id}")]
    Bpf {
        id: u32,
        #[source]
        source: io::Error,
    },
}

impl AttachError {
    /// The errno of a refused request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            AttachError::Netlink { source, .. } => crate::links::errno(source),
            AttachError::Bpf { source, .. } => source.raw_os_error(),
        }
    }
}

fn filter_message(ifindex: u32) -> TcMessage {
    let mut m = TcMessage::default();
    m.header.index = ifindex as i32;
    m.header.parent = TcHandle {
        major: 0xffff,
        minor: TcHandle::MIN_INGRESS,
    };
    m.header.info = ((PRIORITY as u32) << 16) | ETH_P_ALL.to_be() as u32;
    m
}

async fn send(h: &Handle, msg: RouteNetlinkMessage, flags: u16) -> Result<(), rtnetlink::Error> {
    let mut req = NetlinkMessage::from(msg);
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    let mut h = h.clone();
    let mut resp = h.request(req)?;
    while let Some(m) = resp.next().await {
        if let NetlinkPayload::Error(e) = m.payload {
            return Err(rtnetlink::Error::NetlinkError(e));
        }
    }
    Ok(())
}

/// Attaches `prog` to the ingress of `ifindex` (adding the `ingress` qdisc when the device
/// has none); a filter already at netd's priority is left as it is (reconcile checks which
/// program it holds).
pub async fn attach(h: &Handle, prog: BorrowedFd<'_>, ifindex: u32) -> Result<(), AttachError> {
    let q = h.clone();
    match q.qdisc().add(ifindex as i32).ingress().execute().await {
        Ok(()) => {}
        Err(e) if crate::links::errno(&e) == Some(libc::EEXIST) => {}
        Err(source) => {
            return Err(AttachError::Netlink {
                op: "add the ingress qdisc",
                ifindex,
                source,
            });
        }
    }
    let mut m = filter_message(ifindex);
    m.header.handle = TcHandle { major: 0, minor: 1 };
    m.attributes.push(TcAttribute::Kind("bpf".into()));
    m.attributes.push(TcAttribute::Options(vec![
        TcOption::Bpf(TcFilterBpfOption::ProgFd(prog.as_raw_fd() as u32)),
        TcOption::Bpf(TcFilterBpfOption::ProgName(PROG_NAME.into())),
        TcOption::Bpf(TcFilterBpfOption::Flags(TcBpfFlags::DirectAction)),
    ]));
    match send(
        h,
        RouteNetlinkMessage::NewTrafficFilter(m),
        NLM_F_CREATE | NLM_F_EXCL,
    )
    .await
    {
        Ok(()) => Ok(()),
        Err(e) if crate::links::errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(source) => Err(AttachError::Netlink {
            op: "add the fast path's tc filter",
            ifindex,
            source,
        }),
    }
}

/// Removes netd's filter from the ingress of `ifindex`; none there is fine.
pub async fn detach(h: &Handle, ifindex: u32) -> Result<(), AttachError> {
    let mut m = filter_message(ifindex);
    m.attributes.push(TcAttribute::Kind("bpf".into()));
    match send(h, RouteNetlinkMessage::DelTrafficFilter(m), 0).await {
        Ok(()) => Ok(()),
        Err(e) if matches!(crate::links::errno(&e), Some(libc::ENOENT | libc::EINVAL)) => Ok(()),
        Err(source) => Err(AttachError::Netlink {
            op: "remove the fast path's tc filter",
            ifindex,
            source,
        }),
    }
}

/// A fast-path program found on a device.
#[derive(Debug)]
pub struct Found {
    /// A file descriptor holding it.
    pub fd: OwnedFd,
    /// Its id, name and maps.
    pub info: ProgInfo,
}

/// The program of netd's filter on the ingress of `ifindex`, if it is netd's (by name).
pub async fn ours_on(h: &Handle, ifindex: u32) -> Result<Option<Found>, AttachError> {
    // No ingress qdisc: no filter.
    let Some(msgs) = ingress_filters(h, ifindex).await? else {
        return Ok(None);
    };
    for m in msgs {
        if m.header.info >> 16 != PRIORITY as u32 {
            continue;
        }
        let id = m.attributes.iter().find_map(|a| match a {
            TcAttribute::Options(o) => o.iter().find_map(|o| match o {
                TcOption::Bpf(TcFilterBpfOption::ProgId(id)) => Some(*id),
                _ => None,
            }),
            _ => None,
        });
        let Some(id) = id else { continue };
        let fd = match sys::prog_fd_by_id(id) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(source) => return Err(AttachError::Bpf { id, source }),
        };
        let info = sys::prog_info(std::os::fd::AsFd::as_fd(&fd))
            .map_err(|source| AttachError::Bpf { id, source })?;
        if info.name == PROG_NAME {
            return Ok(Some(Found { fd, info }));
        }
    }
    Ok(None)
}

/// The tc filters on the ingress of `ifindex`; `None` when the device has no ingress qdisc
/// (the kernel answers EINVAL or ENOENT then).
async fn ingress_filters(h: &Handle, ifindex: u32) -> Result<Option<Vec<TcMessage>>, AttachError> {
    match h
        .clone()
        .traffic_filter(ifindex as i32)
        .get()
        .ingress()
        .execute()
        .try_collect()
        .await
    {
        Ok(m) => Ok(Some(m)),
        Err(e) if matches!(crate::links::errno(&e), Some(libc::EINVAL | libc::ENOENT)) => Ok(None),
        Err(source) => Err(AttachError::Netlink {
            op: "list the tc filters",
            ifindex,
            source,
        }),
    }
}

/// Removes the `ingress` qdisc of `ifindex` when no filter is left under it (netd's was the
/// only one); a qdisc with other filters, or none at all, stays as it is.
pub async fn remove_empty_ingress(h: &Handle, ifindex: u32) -> Result<(), AttachError> {
    let Some(filters) = ingress_filters(h, ifindex).await? else {
        return Ok(());
    };
    if !filters.is_empty() {
        return Ok(());
    }
    let mut m = TcMessage::default();
    m.header.index = ifindex as i32;
    m.header.parent = TcHandle::INGRESS;
    m.header.handle = TcHandle {
        major: 0xffff,
        minor: 0,
    };
    match send(h, RouteNetlinkMessage::DelQueueDiscipline(m), 0).await {
        Ok(()) => Ok(()),
        Err(e) if matches!(crate::links::errno(&e), Some(libc::ENOENT | libc::EINVAL)) => Ok(()),
        Err(source) => Err(AttachError::Netlink {
            op: "remove the empty ingress qdisc",
            ifindex,
            source,
        }),
    }
}
