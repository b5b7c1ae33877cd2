//! keyway-core holds what every other keyway crate agrees on and that needs no IO:
//! the [`Secret`] wrapper that keeps values out of logs, the environment seam
//! ([`env::Env`]) so libraries never read the process environment themselves,
//! the clock seam ([`clock::Clock`]), and the loopback-only address type used by
//! every server keyway starts.

pub mod clock;
pub mod env;
pub mod fs;
pub mod loopback;
pub mod reference;
pub mod secret;
pub mod vars;

pub use clock::{Clock, SystemClock};
pub use env::Env;
pub use fs::{Fs, MemFs, RealFs};
pub use loopback::LoopbackAddr;
pub use reference::{Delivery, RefError, Reference, SecretRef};
pub use secret::Secret;
