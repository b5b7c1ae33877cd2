//! [`Cap`]: the largest response body a call reads, and how it reads in an
//! error ("192 KiB"). It imports nothing of the crate: the exchange reads under
//! it and the errors name it.

use std::fmt;

/// The largest response body a call reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap(usize);

impl Cap {
    /// A cap of `n` KiB.
    pub const fn kib(n: usize) -> Cap {
        Cap(n << 10)
    }

    /// A cap of `n` MiB.
    pub const fn mib(n: usize) -> Cap {
        Cap(n << 20)
    }

    pub const fn bytes(self) -> usize {
        self.0
    }
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
            write!(f, "{} MiB", n >> 20)
        } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
            write!(f, "{} KiB", n >> 10)
        } else {
            write!(f, "{n} bytes")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_read_well() {
        assert_eq!(Cap::mib(1).to_string(), "1 MiB");
        assert_eq!(Cap::kib(192).to_string(), "192 KiB");
        assert_eq!(Cap(100).to_string(), "100 bytes");
    }
}
