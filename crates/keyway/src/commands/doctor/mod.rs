//! `keyway doctor [REF...]`: walks what `exec` would do, for each cloud and
//! each reference, and reports every step: what it looked for, where, what it
//! found, and for a failure the diagnosis ([`Problem`]: the cause in one
//! sentence and the fix, a command with the real names filled in or the file
//! and line to change).
//!
//! The walk lives per cloud ([`google`], [`aws`]); this file holds the report
//! (its JSON schema is documented in the README and stable: `schema` names
//! its version), the text rendering and the exit status.

mod aws;
mod google;

use crate::cli::{DoctorArgs, Output};
use crate::context;
use crate::diagnosis::{Fix, Problem};
use crate::output::{out, wrap};
use crate::{Failed, WIDTH};
use anyhow::Context;
use keyway_core::{Env, Reference, SecretRef};
use serde::Serialize;
use std::process::ExitCode;
use std::time::Duration;

/// `schema` in `--output json`; bumped when a field changes meaning or goes.
pub const SCHEMA: &str = "keyway.doctor/v1";

/// Exit status when a step failed (0 when none did; warnings do not count).
pub const EXIT_PROBLEMS: u8 = 1;

/// Exit status for a usage error (clap's, and a reference that does not parse).
pub const EXIT_USAGE: u8 = 2;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Works now, but something is off (it will fail elsewhere or later).
    Warning,
    Failed,
    /// Not checked, because a step it needs failed.
    Skipped,
}

/// Which cloud a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cloud {
    Google,
    Aws,
}

/// One step of the walk.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub cloud: Cloud,
    /// A stable name: `credentials`, `token`, `identity`, `scopes`,
    /// `federation`, `reference`, `permission`, `project`.
    pub check: &'static str,
    /// The secret reference the step is about, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// What keyway looked for.
    pub looked_for: String,
    /// Where it looked (a variable, a file, an endpoint, the sources tried).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub looked_in: Option<String>,
    /// What it found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    pub status: Status,
    /// What went wrong, for a failed or warning step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

impl Step {
    pub fn new(cloud: Cloud, check: &'static str, looked_for: impl Into<String>) -> Step {
        Step {
            cloud,
            check,
            reference: None,
            looked_for: looked_for.into(),
            looked_in: None,
            found: None,
            status: Status::Ok,
            problem: None,
        }
    }

    pub fn reference(mut self, r: &SecretRef) -> Step {
        self.reference = Some(r.to_string());
        self
    }

    pub fn looked_in(mut self, place: impl Into<String>) -> Step {
        self.looked_in = Some(place.into());
        self
    }

    pub fn found(mut self, what: impl Into<String>) -> Step {
        self.found = Some(what.into());
        self
    }

    pub fn failed(mut self, p: Option<Problem>) -> Step {
        self.status = Status::Failed;
        self.problem = p;
        self
    }

    pub fn warning(mut self, p: Problem) -> Step {
        self.status = Status::Warning;
        self.problem = Some(p);
        self
    }

    pub fn skipped(mut self, why: impl Into<String>) -> Step {
        self.status = Status::Skipped;
        self.found = Some(why.into());
        self
    }
}

/// Where a credential chain looked, in its order, and why each source that
/// did not answer did not: "GOOGLE_APPLICATION_CREDENTIALS (… is not set),
/// gcloud's well-known file (no file at …), metadata server".
pub fn tried<'a, S, A, E>(
    attempts: impl IntoIterator<Item = (&'a S, &'a keyway_auth::ChainOutcome<A, E>)>,
) -> String
where
    S: std::fmt::Display + 'a,
    A: std::fmt::Display + 'a,
    E: 'a,
{
    attempts
        .into_iter()
        .map(|(source, outcome)| match outcome {
            keyway_auth::ChainOutcome::NotConfigured(why) => format!("{source} ({why})"),
            _ => source.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A `reference` step for each of `refs`, skipped because `why` (a step
/// they need failed).
pub fn skipped_references(cloud: Cloud, refs: &[&SecretRef], why: &str) -> Vec<Step> {
    refs.iter()
        .map(|r| {
            Step::new(cloud, "reference", "the secret's value")
                .reference(r)
                .skipped(why)
        })
        .collect()
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    /// No step failed.
    pub ok: bool,
    pub steps: Vec<Step>,
}

pub fn run(a: DoctorArgs, env: Env) -> anyhow::Result<ExitCode> {
    let mut refs = Vec::new();
    for r in &a.references {
        // A reference that does not parse is a usage error (2), like a bad option.
        let parsed = SecretRef::parse(r).map_err(|e| Failed {
            message: format!(
                "error: {}",
                wrap(
                    &format!("the reference {r:?} is not valid: {e}"),
                    7,
                    4,
                    WIDTH
                )
            ),
            status: Some(EXIT_USAGE),
        })?;
        refs.push(parsed);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let timeout = Duration::from_secs(a.timeout);
    let steps = rt.block_on(walk(&env, &refs, timeout));
    let report = Report {
        schema: SCHEMA,
        ok: !steps.iter().any(|s| s.status == Status::Failed),
        steps,
    };
    match a.output {
        Output::Json => out!("{}\n", serde_json::to_string_pretty(&report)?)?,
        Output::Text => {
            let colour =
                crate::logging::colour(&env, std::io::IsTerminal::is_terminal(&std::io::stdout()));
            out!("{}", render(&report, colour))?
        }
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PROBLEMS)
    })
}

/// The clouds to check: those the references name, or both when none is given.
async fn walk(env: &Env, refs: &[SecretRef], timeout: Duration) -> Vec<Step> {
    let http = context::http_client(env);
    let google_refs: Vec<&SecretRef> = refs
        .iter()
        .filter(|r| matches!(r.source, Reference::GcpSecretManager { .. }))
        .collect();
    let aws_refs: Vec<&SecretRef> = refs
        .iter()
        .filter(|r| matches!(r.source, Reference::AwsSecretsManager { .. }))
        .collect();
    let mut steps = Vec::new();
    if refs.is_empty() || !google_refs.is_empty() {
        steps.extend(google::walk(env, &http, &google_refs, timeout).await);
    }
    if refs.is_empty() || !aws_refs.is_empty() {
        steps.extend(aws::walk(env, &http, &aws_refs, timeout, refs.is_empty()).await);
    }
    steps
}

/// The report as text: a line per step (`ok`, `warn`, `FAIL`, `skip`), and
/// under a failure or warning its cause and fixes, wrapped at [`WIDTH`].
pub fn render(r: &Report, colour: bool) -> String {
    let paint = |code: &str, s: &str| {
        if colour {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    };
    let mut t = String::new();
    let mut cloud = None;
    for s in &r.steps {
        if cloud != Some(s.cloud) {
            cloud = Some(s.cloud);
            t.push_str(&paint(
                "1",
                match s.cloud {
                    Cloud::Google => "Google\n",
                    Cloud::Aws => "AWS\n",
                },
            ));
        }
        let mark = match s.status {
            Status::Ok => paint("32", "ok  "),
            Status::Warning => paint("33", "warn"),
            Status::Failed => paint("31", "FAIL"),
            Status::Skipped => paint("2", "skip"),
        };
        let what = match &s.reference {
            Some(r) => format!("{} {r}", s.check),
            None => s.check.to_owned(),
        };
        let mut line = format!("{what}: {}", s.looked_for);
        if let Some(p) = &s.looked_in {
            line.push_str(&format!(" in {p}"));
        }
        t.push_str(&format!("  {mark} {}\n", wrap(&line, 7, 9, WIDTH)));
        if let Some(f) = &s.found {
            t.push_str(&format!("         found: {}\n", wrap(f, 16, 11, WIDTH)));
        }
        if let Some(p) = &s.problem {
            t.push_str(&format!(
                "         cause: {}\n",
                wrap(&p.cause, 16, 11, WIDTH)
            ));
            // Commands run one after the other by the same person share one header.
            let mut header: Option<&Option<String>> = None;
            for fix in &p.fixes {
                match fix {
                    Fix::Run { line, who, .. } => {
                        if header != Some(who) {
                            let by = who
                                .as_deref()
                                .map(|w| format!(" (as {w})"))
                                .unwrap_or_default();
                            let n = if p.fixes.len() > 1 { "es" } else { "" };
                            t.push_str(&format!("         fix{n}{by}:\n"));
                            header = Some(who);
                        }
                        t.push_str(&format!(
                            "           $ {}\n",
                            wrap(&format!("$ {line}"), 13, 9, WIDTH)
                        ));
                    }
                    Fix::Edit { file, line, change } => {
                        let at = match line {
                            Some(n) => format!("{}, line {n}", file.display()),
                            None => file.display().to_string(),
                        };
                        t.push_str(&format!(
                            "         fix: {}\n",
                            wrap(&format!("in {at}: {change}"), 14, 11, WIDTH)
                        ));
                        header = None;
                    }
                }
            }
        }
    }
    let failed = r
        .steps
        .iter()
        .filter(|s| s.status == Status::Failed)
        .count();
    let warned = r
        .steps
        .iter()
        .filter(|s| s.status == Status::Warning)
        .count();
    t.push_str(&match (failed, warned) {
        (0, 0) => paint("32", "everything checks out\n"),
        (0, w) => paint("33", &format!("no failure, {w} warning(s)\n")),
        (f, _) => paint("31", &format!("{f} step(s) failed\n")),
    });
    t
}
