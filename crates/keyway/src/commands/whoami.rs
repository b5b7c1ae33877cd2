//! `keyway whoami`: which Google identity and which AWS identity keyway would
//! use, from which source, (for Google) with which scopes and until when, and
//! what else was tried. Either cloud missing is reported, not an error; the
//! command fails only if neither has credentials.

use crate::aws;
use crate::cli::{Output, WhoamiArgs};
use crate::context;
use crate::google;
use crate::output::{out, outln};
use anyhow::Context;
use keyway_auth::{AuthError, AwsAuthError, AwsOutcome, Outcome};
use keyway_core::Env;
use serde_json::json;
use std::process::ExitCode;

pub fn run(a: WhoamiArgs, env: Env) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let http = context::http_client(&env);
        let g = google_part(&env, &http).await;
        let w = aws_part(&env, &http).await;
        let (g_json, g_text) = match &g {
            Ok((j, t)) => (j.clone(), t.clone()),
            Err(e) => {
                let nothing = e
                    .downcast_ref::<AuthError>()
                    .is_some_and(google_nothing_configured);
                (
                    json!({"error": format!("{e:#}")}),
                    missing("google", &format!("{e:#}"), nothing),
                )
            }
        };
        let (w_json, w_text) = match &w {
            Ok((j, t)) => (j.clone(), t.clone()),
            Err(e) => {
                let shown = e.to_string();
                (
                    json!({"error": shown}),
                    missing("aws", &shown, e.nothing_configured()),
                )
            }
        };
        if a.output == Output::Json {
            outln!(
                "{}",
                serde_json::to_string_pretty(&json!({"google": g_json, "aws": w_json}))?
            )?;
        } else {
            out!("{g_text}{w_text}")?;
        }
        match (g, w) {
            (Err(e), Err(_)) => Err(e.context("neither Google nor AWS credentials were found")),
            _ => Ok(ExitCode::SUCCESS),
        }
    })
}

/// The text line for a cloud whose credentials were not found: short when
/// nothing is configured (the JSON output lists every source checked), the
/// whole reason, one clause a line, when something was configured but failed.
fn missing(cloud: &str, error: &str, nothing_configured: bool) -> String {
    if nothing_configured {
        return format!(
            "{cloud:<17}no credentials found (`keyway whoami --output json` lists every source checked)\n"
        );
    }
    format!(
        "{cloud:<17}none: {}\n",
        error.replace("; ", "\n                   ")
    )
}

/// No Google source applies here (none was configured and failed).
fn google_nothing_configured(e: &AuthError) -> bool {
    match e {
        AuthError::NotConfigured { attempts } => attempts
            .iter()
            .all(|a| matches!(a.outcome, Outcome::NotConfigured(_))),
        _ => false,
    }
}

/// Why `whoami` has no AWS identity.
enum AwsMissing {
    /// The chain found no credentials, or a source failed.
    Chain(AwsAuthError),
    /// A source answered, but STS does not accept what it gave.
    Identity { source: String, error: AwsAuthError },
}

impl AwsMissing {
    fn nothing_configured(&self) -> bool {
        match self {
            AwsMissing::Chain(AwsAuthError::NotConfigured { attempts }) => attempts
                .iter()
                .all(|a| matches!(a.outcome, AwsOutcome::NotConfigured(_))),
            _ => false,
        }
    }
}

impl std::fmt::Display for AwsMissing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AwsMissing::Chain(e) => e.fmt(f),
            AwsMissing::Identity { source, error } => write!(
                f,
                "{source} answered, but STS GetCallerIdentity failed: {error}"
            ),
        }
    }
}

async fn google_part(
    env: &Env,
    http: &reqwest::Client,
) -> anyhow::Result<(serde_json::Value, String)> {
    let creds = google::credentials(env, http).await?;
    let token = creds
        .access_token()
        .await
        .with_context(|| format!("getting an access token from {}", creds.source()))?;
    let id = creds.identity().await.ok();
    // A federated token used directly has no email: it acts as the pool's principal.
    let who = google::caller(env, http, &creds).await;
    let scopes: Vec<String> = token
        .scopes
        .clone()
        .or_else(|| id.as_ref().and_then(|i| i.scopes.clone()))
        .unwrap_or_default();
    let expires = jiff::Timestamp::from_second(token.expires_at)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let attempts: Vec<serde_json::Value> = creds
        .attempts()
        .iter()
        .map(|a| json!({"source": a.source.to_string(), "outcome": a.outcome.to_string()}))
        .collect();
    let source = creds.source();
    let v = json!({
        "email": who.email,
        "principal": if who.email.is_empty() && who.principal.is_none() { None } else { Some(who.member()) },
        "source": {"kind": source.kind().as_str(), "description": source.to_string()},
        "vm": who.vm,
        "scopes": scopes,
        "expires_at": expires,
        "attempts": attempts,
    });
    let mut t = String::new();
    let mut line = |s: String| {
        t.push_str(&s);
        t.push('\n');
    };
    line(format!(
        "google identity  {}",
        if who.email.is_empty() && who.principal.is_none() {
            "(unknown email)".to_owned()
        } else {
            who.member()
        }
    ));
    line(format!("source           {source}"));
    if let Some(vm) = &who.vm {
        line(format!(
            "vm               {} in {} (project {})",
            vm.name, vm.zone, vm.project
        ));
    }
    for (i, s) in scopes.iter().enumerate() {
        line(format!(
            "{}{s}",
            if i == 0 {
                "scopes           "
            } else {
                "                 "
            }
        ));
    }
    if !scopes.is_empty() && !scopes.iter().any(|s| s == google::CLOUD_PLATFORM) {
        line("                 (no cloud-platform scope: Secret Manager and most Google APIs will refuse this token)".into());
    }
    line(format!("token expires    {expires}"));
    t.push_str(&checked(
        creds
            .attempts()
            .iter()
            .map(|a| format!("{}: {}", a.source, a.outcome)),
    ));
    Ok((v, t))
}

async fn aws_part(
    env: &Env,
    http: &reqwest::Client,
) -> Result<(serde_json::Value, String), AwsMissing> {
    let p = aws::provider(env, http, aws::looks_like_ec2())
        .await
        .map_err(AwsMissing::Chain)?;
    let keyway_auth::CallerIdentity {
        account,
        arn,
        user_id,
    } = keyway_auth::caller_identity(&p)
        .await
        .map_err(|error| AwsMissing::Identity {
            source: p.source().to_string(),
            error,
        })?;
    let expires = p
        .credentials()
        .await
        .ok()
        .and_then(|c| c.expires_at)
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| t.to_string());
    let attempts: Vec<serde_json::Value> = p
        .attempts()
        .iter()
        .map(|a| json!({"source": a.source.to_string(), "outcome": a.outcome.to_string()}))
        .collect();
    let region = p.region().map(|(r, from)| json!({"name": r, "from": from}));
    let v = json!({
        "account": account,
        "arn": arn,
        "user_id": user_id,
        "source": {"kind": p.source().kind.as_str(), "description": p.source().to_string()},
        "region": region,
        "expires_at": expires,
        "attempts": attempts,
    });
    let mut t = format!(
        "aws identity     {arn}\naccount          {account}\nsource           {}\n",
        p.source()
    );
    if let Some((r, from)) = p.region() {
        t.push_str(&format!("region           {r} (from {from})\n"));
    }
    if let Some(e) = expires {
        t.push_str(&format!("credentials exp. {e}\n"));
    }
    t.push_str(&checked(
        p.attempts()
            .iter()
            .map(|a| format!("{}: {}", a.source, a.outcome)),
    ));
    Ok((v, t))
}

/// The `checked` lines: each source tried and what came of it, one a line.
fn checked(attempts: impl Iterator<Item = String>) -> String {
    attempts
        .enumerate()
        .map(|(i, a)| {
            let label = if i == 0 { "checked" } else { "" };
            format!("{label:<17}{a}\n")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyway_auth::{Absent, Attempt, AwsAbsent, AwsAttempt, AwsSourceKind, SourceKind};

    #[test]
    fn nothing_configured_is_decided_on_the_attempts_not_the_text() {
        let unset = Attempt {
            source: SourceKind::EnvFile,
            outcome: Outcome::NotConfigured(Absent::Unset {
                var: "GOOGLE_APPLICATION_CREDENTIALS",
            }),
        };
        let failed = Attempt {
            source: SourceKind::MetadataServer,
            outcome: Outcome::Failed(Box::new(AuthError::InvalidEnv {
                var: "GCE_METADATA_HOST",
                reason: "not configured".into(),
            })),
        };
        assert!(google_nothing_configured(&AuthError::NotConfigured {
            attempts: vec![unset.clone()]
        }));
        // A failed source is shown in full, whatever its words say.
        assert!(!google_nothing_configured(&AuthError::NotConfigured {
            attempts: vec![unset, failed]
        }));

        let none = AwsAttempt {
            source: AwsSourceKind::Environment,
            outcome: AwsOutcome::NotConfigured(AwsAbsent::NoAccessKeyVariable),
        };
        assert!(
            AwsMissing::Chain(AwsAuthError::NotConfigured {
                attempts: vec![none.clone()]
            })
            .nothing_configured()
        );
        let broken = AwsAttempt {
            source: AwsSourceKind::Imds,
            outcome: AwsOutcome::Failed(Box::new(AwsAuthError::NoInstanceProfile)),
        };
        assert!(
            !AwsMissing::Chain(AwsAuthError::NotConfigured {
                attempts: vec![none, broken]
            })
            .nothing_configured()
        );
        let line = missing("aws", "a; b", false);
        assert_eq!(line, "aws              none: a\n                   b\n");
    }
}
