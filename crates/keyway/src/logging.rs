//! Diagnostics go to stderr through `tracing`. `-v` raises the level (info,
//! debug, trace); `KEYWAY_LOG` takes an env-filter directive and wins over `-v`.
//! No code path logs a secret value: values are `Secret`s, which print as
//! `[redacted]`.
//!
//! What a line looks like depends on who reads it. Colour only when stderr is a
//! terminal, `NO_COLOR` is unset (<https://no-color.org>) and `TERM` is not
//! `dumb`; a file or a pipe gets plain text. At the default level (warnings
//! only, often printed just before an error) a line reads like the error that
//! follows it, `warning: …`, wrapped at 100 columns, without a timestamp; with
//! `-v` or `KEYWAY_LOG` it is a log line with a timestamp, as a log should be.

use keyway_core::{Env, vars};
use std::fmt;
use std::io::IsTerminal;
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub fn init(env: &Env, verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    let directive = env.non_empty(vars::KEYWAY_LOG);
    let filter = directive
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("{level},hyper=warn,h2=warn,rustls=warn")));
    let ansi = colour(env, std::io::stderr().is_terminal());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi);
    let _ = if verbose == 0 && directive.is_none() {
        builder.event_format(Plain).try_init()
    } else {
        builder.try_init()
    };
}

/// Whether output to a terminal (stderr for logs, stdout for `doctor`) gets ANSI colour.
pub fn colour(env: &Env, stderr_is_terminal: bool) -> bool {
    stderr_is_terminal
        && env.non_empty(vars::NO_COLOR).is_none()
        && env.get(vars::TERM) != Some("dumb")
}

/// `warning: message (field=value, …)`, wrapped like keyway's errors.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let label = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        };
        let mut fields = String::new();
        ctx.field_format()
            .format_fields(Writer::new(&mut fields), event)?;
        // DefaultFields writes the message first, then ` key=value` pairs.
        let line = if event.fields().any(|f| f.name() == "message") {
            split_message(&fields)
        } else {
            fields
        };
        let prefix = format!("{label}: ");
        let (start, end) = if writer.has_ansi_escapes() {
            ("\u{1b}[33m", "\u{1b}[0m")
        } else {
            ("", "")
        };
        writeln!(
            writer,
            "{start}{label}:{end} {}",
            crate::output::wrap(&line, prefix.len(), 4, crate::WIDTH)
        )
    }
}

/// `message k=v k2=v2` → `message (k=v, k2=v2)`. Values may hold spaces, so
/// the pairs are found by ` name=` boundaries of known shape (an identifier).
fn split_message(fields: &str) -> String {
    let mut cuts = Vec::new();
    let bytes = fields.as_bytes();
    for (i, _) in fields.match_indices(' ') {
        let rest = &fields[i + 1..];
        let name_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.')
            .count();
        if name_len > 0 && bytes.get(i + 1 + name_len) == Some(&b'=') {
            cuts.push(i);
        }
    }
    let Some(&first) = cuts.first() else {
        return fields.to_owned();
    };
    let mut pairs = Vec::new();
    for (n, &c) in cuts.iter().enumerate() {
        let end = cuts.get(n + 1).copied().unwrap_or(fields.len());
        pairs.push(&fields[c + 1..end]);
    }
    format!("{} ({})", &fields[..first], pairs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color_or_dumb() {
        let e = Env::new().with("TERM", "xterm-256color");
        assert!(colour(&e, true));
        assert!(!colour(&e, false), "a file or pipe gets plain text");
        assert!(!colour(&e.clone().with("NO_COLOR", "1"), true));
        assert!(
            colour(&e.clone().with("NO_COLOR", ""), true),
            "an empty NO_COLOR is unset"
        );
        assert!(!colour(&Env::new().with("TERM", "dumb"), true));
    }

    #[test]
    fn fields_follow_the_message_in_parentheses() {
        assert_eq!(
            split_message(r#"giving up doing="refreshing user credentials" attempts=5"#),
            r#"giving up (doing="refreshing user credentials", attempts=5)"#
        );
        assert_eq!(split_message("no fields here"), "no fields here");
    }
}
