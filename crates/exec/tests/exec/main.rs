//! Integration tests for keyway-exec: every test runs real processes through
//! `keyway_exec::run` and checks what a user would check (exit codes, what the
//! child saw, what is left on tmpfs, what errors and logs say).

mod env;
mod exit;
mod files;
mod orphans;
mod reaping;
mod redaction;
mod rotation;
mod signals;
mod support;

/// Not a test of its own: the body of the keyway-like process that the signal
/// and reaping tests start (see `support::Harness`). Does nothing otherwise.
#[test]
fn harness_process() {
    if std::env::var_os(support::HARNESS).is_some() {
        support::harness_main();
    }
}
