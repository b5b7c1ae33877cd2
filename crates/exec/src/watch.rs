//! Rotation: delivering new secret values to a workload that is running.
//!
//! The caller (the binary's `--watch` loop, which knows the clouds) decides
//! *what* changed and *what to do*; this module does it to the process and its
//! files, which only [`crate::run_with_updates`] holds:
//!
//! * **Files** are replaced atomically: the new contents are written to a
//!   temporary file in the same private directory (mode 0400, exclusive
//!   create, no symlink followed), then `rename(2)`d over the old file. The
//!   path does not change, a reader sees the whole old contents or the whole
//!   new ones, and a process holding the old file open keeps reading the old
//!   contents until it opens the path again. If any file cannot be written,
//!   none is replaced.
//! * **[`Action::Signal`]**: after the files are in place the workload gets the
//!   signal (`SIGHUP` is the convention for "re-read your configuration").
//!   A process's environment cannot be changed from outside, so an update
//!   that carries variables must restart.
//! * **[`Action::Restart`]**: the files are replaced, the new environment is
//!   built (base environment, the plan's removals, every plan variable with its
//!   new value, the file paths as before), then the workload is stopped as a
//!   service manager stops one: `SIGTERM`, up to the stop timeout, then
//!   `SIGKILL`; once it has been reaped, the same program with the same
//!   arguments is started with the new environment. A `SIGTERM`, `SIGINT`
//!   or `SIGQUIT` that keyway receives meanwhile is forwarded as always and
//!   cancels the restart: keyway then ends with the workload. (Other signals,
//!   `SIGHUP` included, are forwarded and the restart goes on.)
//!
//! Each [`Updater::apply`] waits until the update has been carried out (for a
//! restart, until the new process has started) and says whether it was. An
//! update that is refused (a variable the plan does not have, a value with a
//! NUL byte, a file that cannot be written) changes nothing: the workload
//! keeps running on what it had. New values are [`Secret`]s, copied once into
//! the file or the environment block and zeroised when dropped, as at start.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use keyway_core::{Env, Secret};
use tokio::sync::{mpsc, oneshot};

use crate::envblock::EnvBlock;
use crate::error::Error;
use crate::secret_dir::SecretDir;
use crate::spawn::{Command, Tie};

/// What the workload is told when its secrets change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send this signal (a raw signal number, real-time signals included)
    /// once the files are in place.
    Signal(i32),
    /// Stop the workload (`SIGTERM`, the stop timeout, `SIGKILL`) and start it
    /// again with the new values.
    Restart,
}

/// New values for some of the plan's secrets, and what to do about them.
#[derive(Debug)]
pub struct Update {
    /// New contents for file-delivered secrets, by the plan's variable name
    /// ([`crate::FileSecret::var`]). Only the files listed are replaced.
    pub files: Vec<(String, Secret<Vec<u8>>)>,
    /// For [`Action::Restart`]: every variable of the plan's `vars`, each
    /// once, with the value the new process gets. Must be empty for
    /// [`Action::Signal`] (a running process's environment cannot change).
    pub vars: Vec<(String, Secret<Vec<u8>>)>,
    pub action: Action,
}

/// Why [`Updater::apply`] did not deliver an update.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The update was refused or failed; unless the error says otherwise,
    /// nothing changed and the workload runs on.
    #[error(transparent)]
    Refused(Error),
    /// The workload has ended (or `run_with_updates` has returned): there is
    /// nothing left to update.
    #[error("the workload has ended")]
    Ended,
}

impl UpdateError {
    /// Whether the same update could succeed later (see [`Error::is_transient`]).
    pub fn is_transient(&self) -> bool {
        match self {
            UpdateError::Refused(e) => e.is_transient(),
            UpdateError::Ended => false,
        }
    }
}

type Reply = oneshot::Sender<Result<(), Error>>;

/// The sending half: used by whoever watches for new values.
#[derive(Debug, Clone)]
pub struct Updater {
    tx: mpsc::Sender<(Update, Reply)>,
}

/// The receiving half, given to [`crate::run_with_updates`].
#[derive(Debug)]
pub struct Updates {
    pub(crate) rx: mpsc::Receiver<(Update, Reply)>,
    /// How long a restart waits after `SIGTERM` before `SIGKILL`.
    pub(crate) stop_timeout: Duration,
}

/// A channel of updates for one run. `stop_timeout` is how long a restart
/// waits for the workload to exit after `SIGTERM` before killing it.
pub fn updates(stop_timeout: Duration) -> (Updater, Updates) {
    let (tx, rx) = mpsc::channel(1);
    (Updater { tx }, Updates { rx, stop_timeout })
}

impl Updater {
    /// Hands the update to the running workload's supervisor and waits until
    /// it has been carried out (for a restart: the new process has started).
    pub async fn apply(&self, update: Update) -> Result<(), UpdateError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((update, reply))
            .await
            .map_err(|_| UpdateError::Ended)?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(UpdateError::Refused(e)),
            Err(_) => Err(UpdateError::Ended),
        }
    }
}

/// What the supervisor needs to replace files and start the program again.
pub(crate) struct Workload<'a> {
    pub command: &'a Command,
    pub tie: Tie,
    pub base_env: &'a Env,
    pub remove: &'a [String],
    pub dir: Option<&'a SecretDir>,
    /// Plan file variable → (file name, path).
    pub files: BTreeMap<String, (String, PathBuf)>,
    /// The plan's variable names.
    pub vars: BTreeSet<String>,
}

/// An update checked and carried out as far as it goes without waiting.
pub(crate) enum Applied {
    /// Files replaced and the signal sent.
    Signalled,
    /// Files replaced; the process must now be stopped and started with this environment.
    Restart(EnvBlock),
}

impl Workload<'_> {
    /// Checks the update against the plan, prepares the new environment for a
    /// restart, replaces the files and, for [`Action::Signal`], signals `pid`.
    /// Any failure before the files are renamed changes nothing.
    pub(crate) fn apply(&self, pid: libc::pid_t, update: Update) -> Result<Applied, Error> {
        let Update {
            files,
            vars,
            action,
        } = update;
        let mut seen = BTreeSet::new();
        for (var, _) in &files {
            if !self.files.contains_key(var) {
                return Err(Error::UpdateUnknown {
                    var: var.clone(),
                    kind: "secret file",
                });
            }
            if !seen.insert(var.as_str()) {
                return Err(Error::DuplicateVar { var: var.clone() });
            }
        }
        match action {
            Action::Signal(signal) => {
                if let Some((var, _)) = vars.first() {
                    return Err(Error::UpdateVarWithoutRestart { var: var.clone() });
                }
                self.replace(files)?;
                send(pid, signal)?;
                tracing::debug!(pid, signal, "signalled the workload");
                Ok(Applied::Signalled)
            }
            Action::Restart => {
                let given: BTreeSet<&str> = vars.iter().map(|(v, _)| v.as_str()).collect();
                if let Some(var) = given.iter().find(|v| !self.vars.contains(**v)) {
                    return Err(Error::UpdateUnknown {
                        var: (*var).to_owned(),
                        kind: "variable",
                    });
                }
                if let Some(var) = self.vars.iter().find(|v| !given.contains(v.as_str())) {
                    return Err(Error::UpdateMissingVar { var: var.clone() });
                }
                // Consumes the values: each is copied once into the block.
                let mut env = EnvBlock::build(self.base_env, self.remove, vars)?;
                for (var, (_, path)) in &self.files {
                    env.set_path(var, path)?;
                }
                self.replace(files)?;
                Ok(Applied::Restart(env))
            }
        }
    }

    /// Writes every new file beside its old one, then renames each into place.
    fn replace(&self, files: Vec<(String, Secret<Vec<u8>>)>) -> Result<(), Error> {
        let Some(first) = files.first() else {
            return Ok(());
        };
        let dir = self.dir.ok_or_else(|| Error::UpdateUnknown {
            var: first.0.clone(),
            kind: "secret file",
        })?;
        let names: Vec<String> = files.iter().map(|(v, _)| v.clone()).collect();
        let staged = dir.stage(files.into_iter().filter_map(|(var, contents)| {
            let (key, (name, _)) = self.files.get_key_value(&var)?;
            Some((key.as_str(), name.as_str(), contents))
        }))?;
        staged.commit()?;
        tracing::debug!(files = ?names, "replaced secret files");
        Ok(())
    }
}

/// `kill(pid, signal)` with a raw number, so real-time signals can be sent.
pub(crate) fn send(pid: libc::pid_t, signal: i32) -> Result<(), Error> {
    // SAFETY: kill takes no pointers.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(Error::Signal {
            pid,
            signal,
            source: std::io::Error::last_os_error(),
        })
    }
}
