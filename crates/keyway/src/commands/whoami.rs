//! `keyway whoami`: which Google identity and which AWS identity keyway would
//! use, from which source, (for Google) with which scopes and until when, and
//! what else was tried. Either cloud missing is reported, not an error; the
//! command fails only if neither has credentials.

use crate::aws;
use crate::cli::{Output, WhoamiArgs};
use crate::google;
use crate::output::{out, outln};
use anyhow::Context;
use keyway_core::Env;
use serde_json::json;
use std::process::ExitCode;

pub fn run(a: WhoamiArgs, env: Env) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let http = google::http_client(&env);
        let g = google_part(&env, &http).await;
        let w = aws_part(&env, &http).await;
        let (g_json, g_text) = match &g {
            Ok((j, t)) => (j.clone(), t.clone()),
            Err(e) => (
                json!({"error": format!("{e:#}")}),
                missing("google", &format!("{e:#}")),
            ),
        };
        let (w_json, w_text) = match &w {
            Ok((j, t)) => (j.clone(), t.clone()),
            Err(e) => (json!({"error": e}), missing("aws", e)),
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
fn missing(cloud: &str, error: &str) -> String {
    let not_configured = error.contains("no source answered")
        || error.contains("no credentials were found")
        || error.contains("not configured");
    if not_configured && !error.contains("failed") {
        return format!(
            "{cloud:<17}no credentials found (`keyway whoami --output json` lists every source checked)\n"
        );
    }
    format!(
        "{cloud:<17}none: {}\n",
        error.replace("; ", "\n                   ")
    )
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
    let mut who = google::who(&creds, http).await;
    if who.email.is_empty() {
        // A federated token used directly has no email: it acts as the pool's principal.
        who.principal = google::federated_member(env, http, &creds).await;
    }
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
    for (i, a) in creds.attempts().iter().enumerate() {
        line(format!(
            "{}{}: {}",
            if i == 0 {
                "checked          "
            } else {
                "                 "
            },
            a.source,
            a.outcome
        ));
    }
    Ok((v, t))
}

async fn aws_part(
    env: &Env,
    http: &reqwest::Client,
) -> Result<(serde_json::Value, String), String> {
    let p = aws::provider(env, http, aws::looks_like_ec2())
        .await
        .map_err(|e| e.to_string())?;
    let keyway_auth::CallerIdentity {
        account,
        arn,
        user_id,
    } = keyway_auth::caller_identity(&p).await.map_err(|e| {
        format!(
            "{} answered, but STS GetCallerIdentity failed: {e}",
            p.source()
        )
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
    for (i, a) in p.attempts().iter().enumerate() {
        t.push_str(&format!(
            "{}{}: {}\n",
            if i == 0 {
                "checked          "
            } else {
                "                 "
            },
            a.source,
            a.outcome
        ));
    }
    Ok((v, t))
}
