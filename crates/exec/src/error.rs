//! Every way running a workload can fail, as one enum the binary can match on.
//!
//! Variants carry context (variable names, file names, paths, the program) in
//! fields, and never a secret value: the plan's values are not even reachable
//! from the code that builds these errors. Messages are lowercase and say what
//! was being done.

use std::io;
use std::path::PathBuf;

/// Why [`crate::run`] could not run the workload to completion.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A variable name is empty or contains `=` or a NUL byte.
    #[error(
        "building the child environment: invalid variable name {var:?} (must be non-empty, without '=' or NUL)"
    )]
    InvalidVarName { var: String },

    /// A variable's value contains a NUL byte, which no Unix environment can carry.
    #[error(
        "building the child environment: the value of {var} contains a NUL byte, which cannot be passed to a program"
    )]
    NulInValue { var: String },

    /// The plan sets the same variable twice (as two values, two files, or a value and a file).
    #[error("building the child environment: {var} is set more than once by the plan")]
    DuplicateVar { var: String },

    /// A delivered file's name is unusable (empty, `.`, `..`, contains `/` or NUL).
    #[error("delivering {var} as a file: invalid file name {file_name:?} ({reason})")]
    InvalidFileName {
        var: String,
        file_name: String,
        reason: &'static str,
    },

    /// Two delivered files would share one name.
    #[error(
        "delivering {var} as a file: the file name {file_name:?} is already used by another variable"
    )]
    DuplicateFileName { var: String, file_name: String },

    /// No tmpfs was found for secret files and no fallback directory was allowed.
    #[error(
        "creating the secret-file directory: none of {tried:?} is on tmpfs; refusing to write secrets to disk-backed storage (allow a fallback directory explicitly to override)"
    )]
    NoTmpfs { tried: Vec<PathBuf> },

    /// Creating or securing the private directory for secret files failed.
    #[error("creating the secret-file directory in {}", root.display())]
    CreateDir {
        root: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Creating or writing one secret file failed.
    #[error("writing the secret file for {var} at {}", path.display())]
    WriteFile {
        var: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Writing a new version of a secret file, or putting it in place, failed
    /// (the file keeps its previous contents unless the error says otherwise).
    #[error("replacing the secret file for {var} at {}", path.display())]
    ReplaceFile {
        var: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// An update names a variable the plan did not deliver (or delivered the other way).
    #[error("updating the workload: {var} is not a {kind} the workload was started with")]
    UpdateUnknown { var: String, kind: &'static str },

    /// A restart must give every variable the plan set; this one is missing.
    #[error("restarting the workload: no new value for {var}, which the workload was started with")]
    UpdateMissingVar { var: String },

    /// An environment variable cannot change in a running process: only a restart can deliver it.
    #[error(
        "updating the workload: {var} is delivered in the environment; only a restart can change it"
    )]
    UpdateVarWithoutRestart { var: String },

    /// Sending the change signal to the workload failed.
    #[error("signalling the workload (pid {pid}) with signal {signal}")]
    Signal {
        pid: i32,
        signal: i32,
        #[source]
        source: io::Error,
    },

    /// The program or one of its arguments contains a NUL byte (`index` 0 is the program).
    #[error("starting the program: argument {index} contains a NUL byte")]
    NulInArgument { index: usize },

    /// The program was not found (on `PATH`, or at the given path, or its interpreter is missing).
    #[error("starting {}: program not found (or its #! interpreter is missing)", program.display())]
    ProgramNotFound { program: PathBuf },

    /// The program exists but cannot be executed (no execute permission, a directory, not a binary or script).
    #[error("starting {}: program is not executable", program.display())]
    NotExecutable {
        program: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Spawning the program failed for another reason (resource limits, ...).
    #[error("starting {}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Installing the signal handlers used for forwarding and reaping failed.
    #[error("installing signal handlers for the supervisor")]
    Signals {
        #[source]
        source: io::Error,
    },

    /// `prctl(PR_SET_CHILD_SUBREAPER)` failed.
    #[error("becoming a child subreaper")]
    Subreaper {
        #[source]
        source: io::Error,
    },

    /// Waiting for the child failed (for example it was reaped by someone else in this process).
    #[error("waiting for the child process {pid}")]
    Wait {
        pid: i32,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The exit code a command-line tool should use for this error, following
    /// the shell and `env(1)` conventions: 127 when the program was not found,
    /// 126 when it was found but could not be executed, 125 when keyway itself
    /// failed before or while running the workload.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::ProgramNotFound { .. } => 127,
            Error::NotExecutable { .. } => 126,
            _ => 125,
        }
    }

    /// Whether retrying the same plan could succeed. Almost every failure here
    /// is a configuration problem; only resource exhaustion while spawning
    /// (`EAGAIN`, `ENOMEM`) is transient.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Spawn { source, .. } => {
                matches!(source.raw_os_error(), Some(libc::EAGAIN | libc::ENOMEM))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_shell_conventions() {
        let nf = Error::ProgramNotFound {
            program: "nope".into(),
        };
        assert_eq!(nf.exit_code(), 127);
        assert!(nf.to_string().contains("nope"));
        let ne = Error::NotExecutable {
            program: "/etc".into(),
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        assert_eq!(ne.exit_code(), 126);
        assert_eq!(Error::NulInValue { var: "A".into() }.exit_code(), 125);
    }

    #[test]
    fn only_resource_exhaustion_is_transient() {
        let again = Error::Spawn {
            program: "x".into(),
            source: io::Error::from_raw_os_error(libc::EAGAIN),
        };
        assert!(again.is_transient());
        assert!(!Error::NoTmpfs { tried: vec![] }.is_transient());
    }
}
