//! What keyway's tests share, so each thing is done one way:
//!
//! - [`local`] (feature `cloud`): the local cloud in this
//!   process, on a clock the test sets; its Google and AWS routers are called
//!   in process (tower's `oneshot`), and bound to loopback ports only for the
//!   tests that need a socket.
//! - [`process`]: `keyway cloud up` as a child process (the binary's tests),
//!   with `keyway cloud env`'s variables as a map.
//! - [`files`]: credential files a test gives keyway.
//! - [`servers`]: loopback servers that answer as a test scripts them or
//!   misbehave (endless or oversized bodies, answers that never come), and a
//!   port nothing listens on.
//! - [`worlds`]: a world file's `{NAME}` placeholders filled in.
//! - [`paths`] and [`sigv4_suite`]: the shared test vectors, found from the
//!   repository (never a machine path), and AWS's SigV4 suite read from them; a
//!   test that needs them fails naming where it looked.
//!
//! Everything here panics on failure, naming what failed: it runs only in tests.

pub mod files;
#[cfg(feature = "cloud")]
pub mod local;
pub mod paths;
pub mod process;
pub mod servers;
pub mod sigv4_suite;
pub mod worlds;

/// Google's `cloud-platform` OAuth scope.
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

#[cfg(feature = "cloud")]
pub use local::{Api, Bearer, Creds, Local, NOW, Reply, Signed, SmStep, Step, xml};
