//! `keyway whoami`: which Google identity keyway would use, from which source,
//! with which scopes and until when, and what else was tried.

use crate::cli::{Output, WhoamiArgs};
use crate::google;
use anyhow::Context;
use keyway_core::Env;
use serde_json::json;
use std::process::ExitCode;

pub fn run(a: WhoamiArgs, env: Env) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(async move {
        let http = google::http_client();
        let creds = google::credentials(&env, &http).await?;
        let token = creds.access_token().await.with_context(|| format!("getting an access token from {}", creds.source()))?;
        let id = creds.identity().await.ok();
        let who = google::who(&creds, &http).await;
        let scopes: Vec<String> = token.scopes.clone().or_else(|| id.as_ref().and_then(|i| i.scopes.clone())).unwrap_or_default();
        let expires = jiff::Timestamp::from_second(token.expires_at).map(|t| t.to_string()).unwrap_or_default();
        let attempts: Vec<serde_json::Value> = creds.attempts().iter().map(|a| json!({"source": a.source.to_string(), "outcome": a.outcome.to_string()})).collect();
        let source = creds.source();
        if a.output == Output::Json {
            let v = json!({"google": {
                "email": who.email,
                "principal": who.member(),
                "source": {"kind": source.kind().as_str(), "description": source.to_string()},
                "vm": who.vm,
                "scopes": scopes,
                "expires_at": expires,
                "attempts": attempts,
            }});
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!("google identity  {}", if who.email.is_empty() { "(unknown email)".to_owned() } else { who.member() });
        println!("source           {source}");
        if let Some(vm) = &who.vm {
            println!("vm               {} in {} (project {})", vm.name, vm.zone, vm.project);
        }
        let mut first = true;
        for s in &scopes {
            println!("{}{s}", if first { "scopes           " } else { "                 " });
            first = false;
        }
        if !scopes.is_empty() && !scopes.iter().any(|s| s == google::CLOUD_PLATFORM) {
            println!("                 (no cloud-platform scope: Secret Manager and most Google APIs will refuse this token)");
        }
        println!("token expires    {expires}");
        for (i, a) in creds.attempts().iter().enumerate() {
            println!("{}{}: {}", if i == 0 { "checked          " } else { "                 " }, a.source, a.outcome);
        }
        Ok(ExitCode::SUCCESS)
    })
}
