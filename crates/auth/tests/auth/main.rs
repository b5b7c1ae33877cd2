//! keyway-auth's integration tests: Application Default Credentials against fake
//! metadata servers and token endpoints written here, on 127.0.0.1:0 only.
//! Every context sets NO_GCE_CHECK or a loopback metadata address, and the
//! suite runs in a loopback-only network namespace (scripts/netns.sh).
//! The secret-redaction scenario is its own binary (`tests/redaction.rs`).

mod adc;
mod federation;
mod flows;
mod resilience;
mod support;
