//! `keyway token`: a credential on stdout, for scripts and other tools. A
//! Google access token (default), a Google ID token (`--audience`), or AWS
//! credentials in the JSON shape of an AWS `credential_process` (`--aws`).
//!
//! The credential goes to stdout and nowhere else; errors and the source that
//! answered (with -v) go to stderr.

use crate::aws;
use crate::cli::{Output, TokenArgs};
use crate::context;
use crate::google;
use crate::output;
use anyhow::{Context, bail};
use keyway_core::{Env, Secret};
use serde_json::json;
use std::process::ExitCode;

pub fn run(a: TokenArgs, env: Env) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut out = rt.block_on(produce(&a, &env))?;
    // One write: the credential and its newline, from a buffer that is wiped.
    out.expose_mut().push('\n');
    output::stdout(out.expose().as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Parses `--scopes`: comma- or space-separated; a bare name like
/// `cloud-platform` is short for `https://www.googleapis.com/auth/cloud-platform`.
pub fn parse_scopes(list: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for item in list
        .iter()
        .flat_map(|s| s.split([',', ' ']))
        .filter(|s| !s.is_empty())
    {
        if item.starts_with("https://") {
            out.push(item.to_owned());
        } else if item
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            out.push(format!("https://www.googleapis.com/auth/{item}"));
        } else {
            bail!(
                "--scopes: '{item}' is not a scope (expected https://www.googleapis.com/auth/NAME or NAME)"
            );
        }
    }
    if out.is_empty() {
        out.push(google::CLOUD_PLATFORM.to_owned());
    }
    Ok(out)
}

async fn produce(a: &TokenArgs, env: &Env) -> anyhow::Result<Secret<String>> {
    let http = context::http_client(env);
    if a.aws {
        let p = aws::provider(env, &http, true)
            .await
            .context("finding AWS credentials")?;
        let c = p
            .credentials()
            .await
            .with_context(|| format!("getting AWS credentials from {}", p.source()))?;
        tracing::info!(source = %p.source(), "AWS credentials");
        let mut v = json!({
            "Version": 1,
            "AccessKeyId": c.access_key_id,
            "SecretAccessKey": c.secret_access_key.expose(),
        });
        if let Some(t) = &c.session_token {
            v["SessionToken"] = json!(t.expose());
        }
        if let Some(exp) = c.expires_at {
            let ts = jiff::Timestamp::from_second(exp)
                .context("AWS credentials carry an expiry out of range")?;
            v["Expiration"] = json!(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        // The rendering holds the secret; it lives in a Secret from here on.
        return Ok(Secret::new(v.to_string()));
    }
    let scopes = parse_scopes(&a.scopes)?;
    let ctx = context::context(env, &http);
    let creds = keyway_auth::google_default(&ctx, &scopes).await?;
    tracing::info!(source = %creds.source(), "Google credentials");
    if let Some(aud) = &a.audience {
        if aud.is_empty() {
            bail!("--audience must not be empty");
        }
        let t = creds.id_token(aud).await.with_context(|| {
            format!(
                "getting an ID token for audience '{aud}' from {}",
                creds.source()
            )
        })?;
        return Ok(match a.output {
            Output::Text => t,
            Output::Json => Secret::new(json!({"id_token": t.expose()}).to_string()),
        });
    }
    let t = creds
        .access_token()
        .await
        .with_context(|| format!("getting an access token from {}", creds.source()))?;
    // What the token really carries (the issuer's word), not what was asked for.
    let granted = creds.granted_scopes().await.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "could not learn the token's scopes");
        None
    });
    if let Some(granted) = &granted {
        warn_if_narrowed(&scopes, granted, creds.source());
    }
    Ok(match a.output {
        Output::Text => t.token,
        Output::Json => {
            let expiry = jiff::Timestamp::from_second(t.expires_at)
                .map(|t| t.to_string())
                .unwrap_or_default();
            Secret::new(
                json!({
                    "access_token": t.token.expose(),
                    "token_type": "Bearer",
                    "expires_at": expiry,
                    "scopes": granted,
                    "requested_scopes": scopes,
                    "source": creds.source().to_string(),
                })
                .to_string(),
            )
        }
    })
}

/// Warns (on stderr) when the token lacks a scope that was asked for: APIs
/// outside its scopes will answer 403 ACCESS_TOKEN_SCOPE_INSUFFICIENT.
fn warn_if_narrowed(requested: &[String], granted: &[String], source: &keyway_auth::Source) {
    let missing: Vec<&str> = requested
        .iter()
        .filter(|r| !granted.contains(r))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return;
    }
    let carried = if granted.is_empty() {
        "none".to_owned()
    } else {
        granted.join(", ")
    };
    match source {
        keyway_auth::Source::MetadataServer { .. } => tracing::warn!(
            "the token does not carry {}: on a VM the instance's access scopes decide, whatever is asked, and this VM's are {carried}. \
             APIs outside them answer 403 ACCESS_TOKEN_SCOPE_INSUFFICIENT; the project owner can change them (stop the VM, then gcloud compute instances set-service-account --scopes)",
            missing.join(", ")
        ),
        _ => tracing::warn!(
            "the token does not carry {}: its issuer granted only {carried}. APIs outside them answer 403 ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            missing.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_scopes;

    #[test]
    fn scopes_short_and_long_forms() {
        assert_eq!(
            parse_scopes(&[]).unwrap(),
            vec!["https://www.googleapis.com/auth/cloud-platform"]
        );
        assert_eq!(
            parse_scopes(&["cloud-platform,https://www.googleapis.com/auth/bigquery".into()])
                .unwrap(),
            vec![
                "https://www.googleapis.com/auth/cloud-platform",
                "https://www.googleapis.com/auth/bigquery"
            ]
        );
        let e = parse_scopes(&["a/b".into()]).unwrap_err().to_string();
        assert!(e.contains("'a/b'"), "{e}");
    }
}
