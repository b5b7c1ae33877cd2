//! Supervising the child: forward signals to it, reap it (and, as PID 1 or a
//! subreaper, every orphan the kernel hands keyway), and report how it ended.
//!
//! Signals are received through tokio's handlers, installed before the child is
//! spawned so neither a `SIGCHLD` nor a `SIGTERM` sent during setup is lost (a
//! signal received before the spawn is forwarded right after it). Installing a
//! handler is permanent for the process: a forwarded signal no longer has its
//! default action on keyway, which is what lets keyway outlive a `SIGTERM` long
//! enough to wait for the child and remove the secret files.
//!
//! Keyboard signals need care. The child stays in keyway's process group, so
//! job control (Ctrl-Z, `fg`) and terminal reads work as if keyway were not
//! there; but it also means a Ctrl-C on the terminal reaches the child directly.
//! Forwarding that `SIGINT` too would deliver it twice (many servers treat a
//! second Ctrl-C as "exit now"). So `SIGINT`, `SIGQUIT` and `SIGWINCH` are not
//! forwarded while keyway's process group is the terminal's foreground group
//! and the child is still in it; a `kill -INT` aimed at keyway alone in that
//! situation is therefore not passed on (use `SIGTERM`, or press Ctrl-C).

use std::future::poll_fn;
use std::io;
use std::task::Poll;

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, getpgid, getpgrp, tcgetpgrp};
use tokio::signal::unix::{SignalKind, signal};

use tokio::sync::oneshot;

use crate::ChildExit;
use crate::envblock::EnvBlock;
use crate::error::Error;
use crate::watch::{Applied, Update, Updates, Workload, send};

/// The signals keyway passes on to the child.
pub(crate) const FORWARDED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Something the supervisor must react to.
#[derive(Debug)]
enum Event {
    /// A child (ours or an adopted orphan) changed state.
    ChildChanged,
    /// Keyway received a signal to forward.
    Received(Signal),
    /// A restart's stop timeout ran out.
    GraceOver,
    /// New values to deliver.
    Update((Update, oneshot::Sender<Result<(), Error>>)),
    /// Nobody will send updates any more.
    UpdatesClosed,
}

/// The installed handlers.
pub(crate) struct Signals {
    child: tokio::signal::unix::Signal,
    forward: Vec<(Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    /// Installs handlers for `SIGCHLD` and every forwarded signal. Must run
    /// inside a tokio runtime with IO enabled.
    pub(crate) fn install() -> Result<Signals, Error> {
        let listen = |sig: Signal| {
            signal(SignalKind::from_raw(sig as i32)).map_err(|source| Error::Signals { source })
        };
        let child = listen(Signal::SIGCHLD)?;
        let forward = FORWARDED
            .iter()
            .map(|&sig| Ok((sig, listen(sig)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Signals { child, forward })
    }

    /// Waits for the next event; child changes come first.
    async fn next(&mut self) -> Result<Event, Error> {
        let gone = || Error::Signals {
            source: io::Error::other("the tokio signal driver shut down"),
        };
        poll_fn(|cx| {
            match self.child.poll_recv(cx) {
                Poll::Ready(Some(())) => return Poll::Ready(Ok(Event::ChildChanged)),
                Poll::Ready(None) => return Poll::Ready(Err(gone())),
                Poll::Pending => {}
            }
            for (sig, stream) in &mut self.forward {
                match stream.poll_recv(cx) {
                    Poll::Ready(Some(())) => return Poll::Ready(Ok(Event::Received(*sig))),
                    Poll::Ready(None) => return Poll::Ready(Err(gone())),
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// Forwards signals to `child` until it exits, reaping orphans too when
/// `reap_all`, and returns how it ended. With `watch`, also carries out the
/// updates that arrive (see the `watch` module); a restart replaces `child`
/// with a new process, and the exit returned is the last process's.
pub(crate) async fn supervise(
    mut child: Pid,
    signals: &mut Signals,
    reap_all: bool,
    mut watch: Option<(&mut Updates, Workload<'_>)>,
) -> Result<ChildExit, Error> {
    let mut restart: Option<Restart> = None;
    let mut updates_open = watch.is_some();
    loop {
        if let Some(exit) = reap(child, reap_all)? {
            match (restart.take(), &watch) {
                (Some(r), Some((_, workload))) if !r.cancelled => {
                    tracing::debug!(
                        pid = child.as_raw(),
                        ?exit,
                        "workload stopped for a restart"
                    );
                    child = workload.command.spawn(&r.env, workload.tie)?;
                    drop(r.env); // zeroises every NAME=value buffer
                    tracing::info!(
                        pid = child.as_raw(),
                        "workload restarted with the new values"
                    );
                    let _ = r.reply.send(Ok(()));
                    continue;
                }
                _ => {
                    tracing::debug!(pid = child.as_raw(), ?exit, "workload exited");
                    return Ok(exit);
                }
            }
        }
        let grace = restart.as_ref().and_then(|r| r.kill_at);
        let listening = updates_open && restart.is_none();
        let event = tokio::select! {
            biased;
            event = signals.next() => event?,
            () = sleep_until(grace), if grace.is_some() => Event::GraceOver,
            update = next_update(&mut watch), if listening => match update {
                Some(update) => Event::Update(update),
                None => Event::UpdatesClosed,
            },
        };
        match event {
            Event::ChildChanged => {}
            Event::Received(sig) => {
                forward(child, sig);
                if let Some(r) = restart.as_mut().filter(|_| is_stop_request(sig)) {
                    if !r.cancelled {
                        tracing::info!(signal = %sig, "stop requested: the restart is cancelled");
                    }
                    r.cancelled = true;
                }
            }
            Event::GraceOver => {
                if let Some(r) = restart.as_mut() {
                    r.kill_at = None;
                    tracing::warn!(
                        pid = child.as_raw(),
                        "the workload did not exit after SIGTERM within the stop timeout; killing it"
                    );
                    if let Err(errno) = kill(child, Signal::SIGKILL) {
                        tracing::warn!(pid = child.as_raw(), %errno, "could not kill the workload");
                    }
                }
            }
            Event::UpdatesClosed => updates_open = false,
            Event::Update((update, reply)) => {
                let Some((updates, workload)) = watch.as_ref() else {
                    continue;
                };
                // A workload that has just exited on its own is not restarted:
                // its exit ends the run (the update's sender learns it has ended).
                if let Some(exit) = reap(child, reap_all)? {
                    tracing::debug!(pid = child.as_raw(), ?exit, "workload exited");
                    return Ok(exit);
                }
                match workload.apply(child.as_raw(), update) {
                    Ok(Applied::Signalled) => {
                        let _ = reply.send(Ok(()));
                    }
                    Ok(Applied::Restart(env)) => {
                        tracing::info!(
                            pid = child.as_raw(),
                            "stopping the workload to restart it (SIGTERM)"
                        );
                        match send(child.as_raw(), libc::SIGTERM) {
                            Ok(()) => {
                                restart = Some(Restart {
                                    env,
                                    reply,
                                    kill_at: Some(
                                        tokio::time::Instant::now() + updates.stop_timeout,
                                    ),
                                    cancelled: false,
                                });
                            }
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        }
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
        }
    }
}

/// A restart under way: the old process was sent `SIGTERM`.
struct Restart {
    /// The new process's environment (zeroised when dropped).
    env: EnvBlock,
    reply: oneshot::Sender<Result<(), Error>>,
    /// When to send `SIGKILL`; `None` once sent.
    kill_at: Option<tokio::time::Instant>,
    /// keyway was asked to stop meanwhile: end with the old process.
    cancelled: bool,
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn next_update(
    watch: &mut Option<(&mut Updates, Workload<'_>)>,
) -> Option<(Update, oneshot::Sender<Result<(), Error>>)> {
    match watch {
        Some((updates, _)) => updates.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Signals that ask keyway to stop. SIGHUP is not one: for a wrapper of
/// daemons it usually means "reload", and it is forwarded like USR1.
fn is_stop_request(sig: Signal) -> bool {
    matches!(sig, Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT)
}

fn forward(child: Pid, sig: Signal) {
    if is_keyboard_signal(sig) && terminal_signals_reach(child) {
        tracing::debug!(signal = %sig, "not forwarding: the terminal sent it to the child's process group too");
        return;
    }
    // The child cannot have been reaped yet (we stop forwarding once we reap
    // it), so its pid cannot have been reused.
    match kill(child, sig) {
        Ok(()) => tracing::debug!(signal = %sig, pid = child.as_raw(), "forwarded signal"),
        Err(errno) => {
            tracing::warn!(signal = %sig, pid = child.as_raw(), %errno, "could not forward signal")
        }
    }
}

/// Signals a terminal sends to its whole foreground process group.
fn is_keyboard_signal(sig: Signal) -> bool {
    matches!(sig, Signal::SIGINT | Signal::SIGQUIT | Signal::SIGWINCH)
}

/// Whether the terminal's foreground process group is keyway's and the child
/// is still in it, i.e. a keyboard signal keyway got has reached the child too.
fn terminal_signals_reach(child: Pid) -> bool {
    let ours = getpgrp();
    let foreground = [
        tcgetpgrp(std::io::stdin()).ok(),
        tcgetpgrp(std::io::stdout()).ok(),
        tcgetpgrp(std::io::stderr()).ok(),
    ];
    foreground.contains(&Some(ours)) && getpgid(Some(child)).ok() == Some(ours)
}

/// Collects exited children without blocking. Returns the child's exit once it
/// has been reaped. With `reap_all`, every waitable child is collected (the
/// duty of PID 1 and of a subreaper), including after ours.
fn reap(child: Pid, reap_all: bool) -> Result<Option<ChildExit>, Error> {
    let target = if reap_all { -1 } else { child.as_raw() };
    let mut found = None;
    loop {
        match wait_nohang(target) {
            Ok(None) => return Ok(found),
            Ok(Some((pid, status))) => {
                let exit = ChildExit::from_wait_status(status);
                if pid == child.as_raw() && exit.is_some() {
                    found = exit;
                    if !reap_all {
                        return Ok(found);
                    }
                } else if pid != child.as_raw() {
                    tracing::debug!(pid, "reaped an orphaned process");
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            // No children left at all: fine once ours has been collected.
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) && found.is_some() => {
                return Ok(found);
            }
            Err(source) => {
                return Err(Error::Wait {
                    pid: child.as_raw(),
                    source,
                });
            }
        }
    }
}

/// `waitpid(pid, WNOHANG)`, returning the raw status. nix's wrapper is not used
/// because it fails on real-time signals after the child is already reaped,
/// which would lose the exit status.
fn wait_nohang(pid: libc::pid_t) -> io::Result<Option<(libc::pid_t, libc::c_int)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes only through the pointer to our local `status`.
    let reaped = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    match reaped {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some((pid, status))),
    }
}

impl ChildExit {
    /// Decodes a `waitpid` status; `None` for stop/continue reports.
    fn from_wait_status(status: libc::c_int) -> Option<ChildExit> {
        if libc::WIFEXITED(status) {
            Some(ChildExit::Exited(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(ChildExit::Signaled(libc::WTERMSIG(status)))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_decode() {
        // Layouts from <bits/waitstatus.h>: exit code in bits 8..16, signal in 0..7.
        assert_eq!(
            ChildExit::from_wait_status(3 << 8),
            Some(ChildExit::Exited(3))
        );
        assert_eq!(
            ChildExit::from_wait_status(255 << 8),
            Some(ChildExit::Exited(255))
        );
        assert_eq!(
            ChildExit::from_wait_status(libc::SIGSEGV),
            Some(ChildExit::Signaled(libc::SIGSEGV))
        );
        assert_eq!(
            ChildExit::from_wait_status(libc::SIGKILL | 0x80),
            Some(ChildExit::Signaled(libc::SIGKILL))
        );
        // Stopped (0x7f in the low byte) is not an exit.
        assert_eq!(
            ChildExit::from_wait_status((libc::SIGSTOP << 8) | 0x7f),
            None
        );
    }

    #[test]
    fn only_terminal_generated_signals_are_deduplicated() {
        let keyboard: Vec<_> = FORWARDED
            .iter()
            .filter(|s| is_keyboard_signal(**s))
            .collect();
        assert_eq!(
            keyboard,
            [&Signal::SIGINT, &Signal::SIGQUIT, &Signal::SIGWINCH]
        );
    }

    #[test]
    fn a_child_outside_our_process_group_gets_every_signal() {
        // Whatever stdin/stdout/stderr are under `cargo test`, a process that
        // is not in keyway's group (here: none) is not reached by its terminal.
        assert!(!terminal_signals_reach(Pid::from_raw(i32::MAX)));
    }
}
