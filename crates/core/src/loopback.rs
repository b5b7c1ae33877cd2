//! Every socket keyway listens on is on loopback. [`LoopbackAddr`] can only be
//! built from a loopback IP, so "bind somewhere else" is a type error at the call
//! site rather than a review comment.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

/// A socket address whose IP is 127.0.0.0/8 or ::1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoopbackAddr(SocketAddr);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{addr} is not a loopback address; keyway only listens on 127.0.0.0/8 or [::1]")]
pub struct NotLoopback {
    pub addr: String,
}

impl LoopbackAddr {
    /// 127.0.0.1 on an ephemeral port.
    pub const fn ephemeral() -> Self {
        LoopbackAddr(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
    }

    pub fn new(addr: SocketAddr) -> Result<Self, NotLoopback> {
        if addr.ip().is_loopback() {
            Ok(LoopbackAddr(addr))
        } else {
            Err(NotLoopback {
                addr: addr.to_string(),
            })
        }
    }

    pub fn get(self) -> SocketAddr {
        self.0
    }
}

impl fmt::Display for LoopbackAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for LoopbackAddr {
    type Err = NotLoopback;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let addr: SocketAddr = s.parse().map_err(|_| NotLoopback { addr: s.to_owned() })?;
        LoopbackAddr::new(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback() {
        assert!("127.0.0.1:0".parse::<LoopbackAddr>().is_ok());
        assert!("[::1]:8080".parse::<LoopbackAddr>().is_ok());
        assert!("127.1.2.3:80".parse::<LoopbackAddr>().is_ok());
        assert!("0.0.0.0:80".parse::<LoopbackAddr>().is_err());
        assert!("169.254.169.254:80".parse::<LoopbackAddr>().is_err());
        assert!("10.0.0.1:80".parse::<LoopbackAddr>().is_err());
    }
}
