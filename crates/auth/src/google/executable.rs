//! The `executable` subject-token source of `external_account` credentials
//! (AIP-4117, "Executable-sourced credentials"): run a command the file names,
//! only when the user opted in with GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1,
//! and read a versioned JSON response from its stdout (or, while it is still
//! valid, from the `output_file` a previous run left).
//!
//! The command gets keyway's environment plus GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE,
//! _TOKEN_TYPE, _INTERACTIVE=0, _IMPERSONATED_EMAIL (when impersonating) and
//! _OUTPUT_FILE (when set); it is split on whitespace (no shell) and killed at
//! its timeout (`timeout_millis`, default 30 s, 5 s to 120 s). Errors name the
//! command, its exit code and the field at fault; never its output, which
//! carries the token.

use crate::context::AuthContext;
use crate::error::{AuthError, SubjectCause, SubjectFrom};
use keyway_core::{Secret, vars};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use zeroize::Zeroize;

pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const MIN_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest response read from a command's stdout.
const MAX_OUTPUT: usize = 1 << 20;

const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
const SAML2: &str = "urn:ietf:params:oauth:token-type:saml2";

#[derive(Debug, Clone)]
pub(crate) struct ExecutableConfig {
    pub command: String,
    pub timeout: Duration,
    pub output_file: Option<PathBuf>,
}

/// What the command is told about the credentials it serves.
pub(crate) struct Request<'a> {
    pub audience: &'a str,
    pub token_type: &'a str,
    pub impersonated_email: Option<&'a str>,
}

fn fail(cfg: &ExecutableConfig, reason: impl Into<String>) -> AuthError {
    AuthError::SubjectToken {
        from: SubjectFrom::Executable(cfg.command.clone()),
        cause: SubjectCause::Executable(reason.into()),
    }
}

/// The subject token: from the output file while its response is valid, else from a run.
pub(crate) async fn subject_token(
    ctx: &AuthContext,
    cfg: &ExecutableConfig,
    req: &Request<'_>,
) -> Result<Secret<String>, AuthError> {
    if ctx.env.get(vars::GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES) != Some("1") {
        return Err(fail(
            cfg,
            format!(
                "executables are not allowed to run; set {}=1 to let this credentials file run its command",
                vars::GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES
            ),
        ));
    }
    let now = ctx.clock.now_secs();
    if let Some(path) = &cfg.output_file
        && let Ok(mut bytes) = ctx.fs.read(path)
    {
        let parsed = parse_response(&bytes, now, true);
        bytes.zeroize();
        match parsed {
            Ok(Some(token)) => {
                tracing::debug!(file = %path.display(), "using the executable's cached response");
                return Ok(token);
            }
            // Expired: run the command again.
            Ok(None) => {}
            Err(why) => {
                return Err(fail(
                    cfg,
                    format!("the output file {}: {why}", path.display()),
                ));
            }
        }
    }
    let mut stdout = run(ctx, cfg, req).await?;
    let parsed = parse_response(&stdout, now, cfg.output_file.is_some());
    stdout.zeroize();
    match parsed {
        Ok(Some(token)) => Ok(token),
        Ok(None) => Err(fail(
            cfg,
            "the response's expiration_time has already passed",
        )),
        Err(why) => Err(fail(cfg, why)),
    }
}

async fn run(
    ctx: &AuthContext,
    cfg: &ExecutableConfig,
    req: &Request<'_>,
) -> Result<Vec<u8>, AuthError> {
    let mut words = cfg.command.split_whitespace();
    let program = words
        .next()
        .ok_or_else(|| fail(cfg, "the command is empty"))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(words)
        .env_clear()
        .envs(ctx.env.iter())
        .env("GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE", req.audience)
        .env("GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE", req.token_type)
        .env("GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(e) = req.impersonated_email {
        cmd.env("GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL", e);
    }
    if let Some(f) = &cfg.output_file {
        cmd.env("GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE", f);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(cfg, format!("cannot start {program}: {e}")))?;
    let mut pipe = child
        .stdout
        .take()
        .ok_or_else(|| fail(cfg, "no stdout pipe"))?;
    let work = async {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = pipe.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            if out.len() + n > MAX_OUTPUT {
                out.zeroize();
                return Err(std::io::Error::other(format!(
                    "it wrote more than {MAX_OUTPUT} bytes"
                )));
            }
            out.extend_from_slice(&buf[..n]);
        }
        buf.zeroize();
        let status = child.wait().await?;
        Ok((status, out))
    };
    let (status, mut out) = match tokio::time::timeout(cfg.timeout, work).await {
        Err(_) => {
            return Err(fail(
                cfg,
                format!(
                    "it did not finish within {:?} (timeout_millis); it was killed",
                    cfg.timeout
                ),
            ));
        }
        Ok(Err(e)) => return Err(fail(cfg, format!("reading its output: {e}"))),
        Ok(Ok(r)) => r,
    };
    if !status.success() {
        out.zeroize();
        let how = match status.code() {
            Some(c) => format!("exit code {c}"),
            None => "a signal".to_owned(),
        };
        return Err(fail(cfg, format!("the command failed with {how}")));
    }
    Ok(out)
}

/// The token of a valid response; `Ok(None)` when it has expired; `Err` names what is wrong.
/// `need_expiry`: an `expiration_time` is required (responses cached in an output file).
fn parse_response(
    bytes: &[u8],
    now: i64,
    need_expiry: bool,
) -> Result<Option<Secret<String>>, String> {
    let mut v: Value = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "the response is not JSON (line {} column {})",
            e.line(),
            e.column()
        )
    })?;
    let result = read_response(&mut v, now, need_expiry);
    super::doc::wipe(&mut v);
    result
}

fn read_response(
    v: &mut Value,
    now: i64,
    need_expiry: bool,
) -> Result<Option<Secret<String>>, String> {
    let obj = v
        .as_object_mut()
        .ok_or("the response is not a JSON object")?;
    match obj.get("version") {
        None => return Err("the response lacks the field \"version\"".into()),
        Some(Value::Number(n)) if n.as_i64() == Some(1) => {}
        Some(other) => {
            return Err(format!(
                "the response's \"version\" is {other}; only version 1 is supported"
            ));
        }
    }
    let success = match obj.get("success") {
        Some(Value::Bool(b)) => *b,
        None => return Err("the response lacks the field \"success\"".into()),
        Some(_) => return Err("the response's \"success\" must be true or false".into()),
    };
    if !success {
        let code = obj.get("code").and_then(Value::as_str);
        let message = obj.get("message").and_then(Value::as_str);
        return match (code, message) {
            (Some(c), Some(m)) => Err(format!("the executable reported an error: code {c}: {m}")),
            _ => Err(
                "the executable reported failure without the fields \"code\" and \"message\""
                    .into(),
            ),
        };
    }
    let token_type = obj
        .get("token_type")
        .and_then(Value::as_str)
        .ok_or("the response lacks the field \"token_type\"")?
        .to_owned();
    let field = match token_type.as_str() {
        JWT | ID_TOKEN => "id_token",
        SAML2 => "saml_response",
        other => {
            return Err(format!(
                "the response's \"token_type\" {other:?} is not one of {JWT}, {ID_TOKEN}, {SAML2}"
            ));
        }
    };
    match obj.get("expiration_time") {
        Some(Value::Number(n)) => match n.as_i64() {
            Some(exp) if exp <= now => return Ok(None),
            Some(_) => {}
            None => {
                return Err("the response's \"expiration_time\" must be whole unix seconds".into());
            }
        },
        None if need_expiry => {
            return Err("the response lacks the field \"expiration_time\", which is required when an output_file is set".into());
        }
        None => {}
        Some(_) => {
            return Err(
                "the response's \"expiration_time\" must be a number (unix seconds)".into(),
            );
        }
    }
    match obj.remove(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(Secret::new(s))),
        Some(mut other) => {
            super::doc::wipe(&mut other);
            Err(format!(
                "the response's \"{field}\" is empty or not a string"
            ))
        }
        None => Err(format!(
            "the response lacks the field \"{field}\" that token_type {token_type} requires"
        )),
    }
}

/// `timeout_millis` checked against AIP-4117's bounds.
pub(crate) fn timeout_from_millis(ms: Option<i64>) -> Result<Duration, String> {
    let Some(ms) = ms else {
        return Ok(DEFAULT_TIMEOUT);
    };
    let d = Duration::from_millis(ms.max(0) as u64);
    if ms < 0 || d < MIN_TIMEOUT || d > MAX_TIMEOUT {
        return Err(format!(
            "timeout_millis is {ms}; it must be between 5000 and 120000"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, now: i64, need: bool) -> Result<Option<String>, String> {
        parse_response(s.as_bytes(), now, need).map(|t| t.map(|t| t.expose().clone()))
    }

    #[test]
    fn responses_are_checked_as_the_spec_says() {
        let ok = r#"{"version":1,"success":true,"token_type":"urn:ietf:params:oauth:token-type:id_token","id_token":"tok","expiration_time":2000}"#;
        assert_eq!(p(ok, 1000, true).unwrap().as_deref(), Some("tok"));
        assert_eq!(p(ok, 2000, true).unwrap(), None);
        let saml = r#"{"version":1,"success":true,"token_type":"urn:ietf:params:oauth:token-type:saml2","saml_response":"PHNhbWw+"}"#;
        assert_eq!(p(saml, 1000, false).unwrap().as_deref(), Some("PHNhbWw+"));
        assert!(p(saml, 1000, true).unwrap_err().contains("expiration_time"));
        let cases = [
            (r#"{"success":true}"#, "\"version\""),
            (r#"{"version":2,"success":true}"#, "only version 1"),
            (r#"{"version":1}"#, "\"success\""),
            (
                r#"{"version":1,"success":false,"code":"401","message":"Caller not authorized."}"#,
                "code 401: Caller not authorized.",
            ),
            (
                r#"{"version":1,"success":false}"#,
                "\"code\" and \"message\"",
            ),
            (
                r#"{"version":1,"success":true,"id_token":"x"}"#,
                "\"token_type\"",
            ),
            (
                r#"{"version":1,"success":true,"token_type":"x","id_token":"x"}"#,
                "is not one of",
            ),
            (
                r#"{"version":1,"success":true,"token_type":"urn:ietf:params:oauth:token-type:jwt"}"#,
                "lacks the field \"id_token\"",
            ),
            ("not json", "not JSON"),
        ];
        for (body, want) in cases {
            let e = p(body, 1000, false).unwrap_err();
            assert!(e.contains(want), "{body}: {e}");
        }
    }

    #[test]
    fn timeouts_are_bounded() {
        assert_eq!(timeout_from_millis(None).unwrap(), Duration::from_secs(30));
        assert_eq!(
            timeout_from_millis(Some(5000)).unwrap(),
            Duration::from_secs(5)
        );
        assert!(timeout_from_millis(Some(4999)).is_err());
        assert!(timeout_from_millis(Some(120_001)).is_err());
    }
}
