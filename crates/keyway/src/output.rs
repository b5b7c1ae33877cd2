//! Everything keyway prints goes through here, so no command can panic on
//! output. `println!` panics when stdout is a closed pipe (`keyway whoami |
//! head -1`) or a full disk; these functions do not.
//!
//! * stdout closed by its reader (`EPIPE`): keyway ends at once and quietly,
//!   killed by `SIGPIPE` as `cat` is (a shell reports 141). The Rust runtime
//!   ignores `SIGPIPE` so that sockets report `EPIPE` instead of killing the
//!   process; the default action is restored only at this moment.
//! * any other failure (`ENOSPC` on `/dev/full`, `EIO`): an [`WriteError`]
//!   the command returns, printed once by `main` as `error: writing to stdout:
//!   No space left on device`, exit status 1.
//! * stderr: diagnostics are best effort; a failure to write them is ignored
//!   (keyway must go on supervising its workload even if nobody reads its
//!   errors).
//!
//! Every write is flushed at once: a buffered byte would otherwise surface its
//! error at exit, where it could only be lost or panic.

use std::fmt;
use std::io::{self, Write};

/// Writing the output failed for a reason other than a closed pipe.
#[derive(Debug)]
pub struct WriteError {
    /// `stdout`, or the file written instead.
    pub target: String,
    pub source: io::Error,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "writing to {}: {}",
            self.target,
            os_message(&self.source)
        )
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The OS message is already in Display; a cause line would repeat it.
        None
    }
}

/// The OS's words without std's " (os error N)" suffix.
fn os_message(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_owned(),
        _ => s,
    }
}

/// Writes `bytes` to stdout and flushes. A closed pipe ends the process (see
/// the module documentation); other failures are returned.
pub fn stdout(bytes: &[u8]) -> Result<(), WriteError> {
    let mut out = io::stdout().lock();
    let result = out.write_all(bytes).and_then(|()| out.flush());
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => die_of_sigpipe(),
        Err(source) => Err(WriteError {
            target: "stdout".into(),
            source,
        }),
    }
}

/// Writes to stderr, ignoring failure (see the module documentation).
pub fn stderr(bytes: &[u8]) {
    let mut err = io::stderr().lock();
    let _ = err.write_all(bytes).and_then(|()| err.flush());
}

/// Ends the process as the default action of `SIGPIPE` would have.
fn die_of_sigpipe() -> ! {
    // SAFETY: restoring a default disposition and raising a signal have no
    // memory-safety preconditions; no handler of ours runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(libc::SIGPIPE);
    }
    // Only reached if SIGPIPE could not kill us: the status a shell would show.
    std::process::exit(128 + libc::SIGPIPE)
}

/// `print!` that returns a [`WriteError`] instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::stdout(format!($($arg)*).as_bytes())
    };
}

/// `println!` that returns a [`WriteError`] instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::stdout(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::stderr(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}

pub(crate) use {errln, out, outln};

/// Breaks `text` into lines of at most `width` columns, at spaces, the first
/// line starting after `first` columns already used and every following one
/// indented by `indent` spaces. Words longer than a line (URLs, ARNs) are kept
/// whole. Existing line breaks are kept.
///
/// A line of `text` that starts with `$ ` is a shell command the user may copy:
/// it goes on lines of its own, indented two more columns, and is broken with
/// ` \` continuations, so pasting it into a shell runs it as one command.
pub fn wrap(text: &str, first: usize, indent: usize, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / width.max(1) * (indent + 2));
    let mut col = first;
    for (n, paragraph) in text.split('\n').enumerate() {
        let (line_indent, cont_indent, cont, body) = match paragraph.strip_prefix("$ ") {
            Some(cmd) => (indent + 2, indent + 4, " \\", cmd),
            None => (indent, indent, "", paragraph),
        };
        if n > 0 {
            out.push('\n');
            out.push_str(&" ".repeat(line_indent));
            col = line_indent;
        }
        // Room kept at the end of each line for the continuation mark.
        let limit = width.saturating_sub(cont.len());
        let mut line_start = true;
        let words: Vec<&str> = if cont.is_empty() {
            body.split(' ').collect()
        } else {
            shell_words(body)
        };
        for word in words.into_iter().filter(|w| !w.is_empty()) {
            let len = word.chars().count();
            if !line_start && col + 1 + len > limit {
                out.push_str(cont);
                out.push('\n');
                out.push_str(&" ".repeat(cont_indent));
                col = cont_indent;
                line_start = true;
            }
            if !line_start {
                out.push(' ');
                col += 1;
            }
            out.push_str(word);
            col += len;
            line_start = false;
        }
    }
    out
}

/// A command line cut at the spaces a shell splits words at: never inside
/// '…' or "…", where a ` \` continuation would become part of the argument.
fn shell_words(line: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let (mut start, mut quote, mut escaped) = (0, None, false);
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            // A backslash quotes the next character, outside '…'.
            (None | Some('"'), '\\') => escaped = true,
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ' ') => {
                words.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    words.push(&line[start..]);
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_messages_lose_the_errno_suffix() {
        let e = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(os_message(&e), "No space left on device");
        let w = WriteError {
            target: "stdout".into(),
            source: e,
        };
        assert_eq!(w.to_string(), "writing to stdout: No space left on device");
    }

    #[test]
    fn a_command_is_never_broken_inside_quotes() {
        let cmd = "$ gcloud update --attribute-condition='attribute.aws_role in ['\\''a'\\'', '\\''b'\\'']' --project=p";
        let w = wrap(cmd, 0, 0, 30);
        assert_eq!(
            w,
            "gcloud update \\\n    --attribute-condition='attribute.aws_role in ['\\''a'\\'', '\\''b'\\'']' \\\n    --project=p"
        );
    }

    #[test]
    fn wrapping_keeps_words_and_indents() {
        let t = "aaa bbb ccc ddd eee";
        assert_eq!(wrap(t, 0, 2, 7), "aaa bbb\n  ccc\n  ddd\n  eee");
        // A word longer than the width stays whole on its own line.
        assert_eq!(
            wrap("x https://example.com/a/very/long/url y", 0, 1, 10),
            "x\n https://example.com/a/very/long/url\n y"
        );
        // The first line accounts for what is already printed before it.
        assert_eq!(wrap("ab cd", 8, 0, 10), "ab\ncd");
        for line in wrap(&"word ".repeat(100), 9, 4, 100).lines() {
            assert!(line.chars().count() <= 100, "{line}");
        }
    }

    #[test]
    fn commands_get_their_own_lines_with_continuations() {
        let t = "As the owner:\n$ gcloud secrets add-iam-policy-binding s --member=m --role=r";
        assert_eq!(
            wrap(t, 6, 4, 40),
            "As the owner:\n      gcloud secrets \\\n        add-iam-policy-binding s \\\n        --member=m --role=r"
        );
    }

    #[test]
    fn a_quoted_argument_is_never_broken() {
        let cmd = crate::fixes::Cmd::new([
            "gcloud",
            "x",
            "--attribute-condition=attribute.aws_role in ['a',  'b'] && true",
            "--project=p",
        ]);
        let wrapped = wrap(&format!("$ {cmd}"), 0, 0, 30);
        // Joined as a shell joins ` \` continuations, it is the command again.
        let joined: Vec<&str> = wrapped
            .lines()
            .map(|l| l.trim().trim_end_matches(" \\"))
            .collect();
        assert_eq!(joined.join(" "), cmd.to_string(), "{wrapped}");
        assert!(
            wrapped
                .lines()
                .any(|l| l.trim_start().starts_with("--attribute-condition='")
                    && l.contains("&& true'")),
            "{wrapped}"
        );
    }
}
