//! Resolving references for `exec` and `get`: get Google credentials once (only if
//! a Google reference is present) and AWS credentials once (only if an AWS
//! reference is present), fetch everything concurrently, and turn each
//! failure into a message that says which reference failed, why, and, when the
//! fix is known, the one command that fixes it.

use crate::Failed;
use crate::WIDTH;
use crate::aws;
use crate::context;
use crate::diagnosis::{Code, Fix, Problem};
use crate::fixes;
use crate::google::{self, Who};
use crate::output::wrap;
use keyway_auth::GoogleCredentials;
use keyway_core::{Env, Reference, Secret, SecretRef, vars};
use keyway_secrets::{FetchError, Fetched, Fetcher};
use std::time::Duration;

/// One reference to resolve, and what it is for (an env var name, or "argument").
#[derive(Clone)]
pub struct Wanted {
    pub name: String,
    pub reference: SecretRef,
}

pub struct Failure {
    pub name: String,
    /// The reference, as the user wrote it (normalised).
    pub reference: String,
    /// What went wrong, naming the reference.
    pub error: String,
    /// The diagnosis, when keyway can tell.
    pub hint: Option<Problem>,
    /// Whether trying again later may succeed (the error's own `is_transient()`).
    pub transient: bool,
}

impl std::fmt::Display for Failure {
    /// `NAME: error` and `hint: …` on the next line, both wrapped at [`WIDTH`]
    /// for a block indented by two spaces (as [`report`] prints it).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = format!("{}: {}", self.name, self.error);
        write!(f, "{}", wrap(&head, 2, 6, WIDTH))?;
        if let Some(h) = &self.hint {
            write!(f, "\n    hint: {}", wrap(&h.to_string(), 10, 6, WIDTH))?;
        }
        Ok(())
    }
}

/// Values in the order of `wanted`, or every failure.
pub async fn resolve(
    env: &Env,
    wanted: &[Wanted],
    concurrency: usize,
    timeout: Duration,
) -> Result<Vec<Secret<Vec<u8>>>, Vec<Failure>> {
    let fetched = Resolver::new(env, concurrency, timeout)
        .resolve(wanted)
        .await?;
    Ok(fetched.into_iter().map(|f| f.value).collect())
}

/// Resolves references, keeping the credentials it found between calls, so
/// that `exec --watch` re-resolves through keyway-auth's caches (a token is
/// refreshed when it nears expiry, not fetched again every round).
pub struct Resolver {
    env: Env,
    http: reqwest::Client,
    concurrency: usize,
    timeout: Duration,
    google: Option<GoogleCredentials>,
    aws: Option<keyway_auth::AwsCredentialsProvider>,
    /// Look up who the credentials are to write hints when a Google reference
    /// fails (a start); off for the rounds of a watch, which only log.
    pub hints: bool,
}

impl Resolver {
    pub fn new(env: &Env, concurrency: usize, timeout: Duration) -> Resolver {
        Resolver {
            env: env.clone(),
            http: context::http_client(env),
            concurrency,
            timeout,
            google: None,
            aws: None,
            hints: true,
        }
    }

    /// Values (with the version each came from) in the order of `wanted`, or
    /// every failure.
    pub async fn resolve(&mut self, wanted: &[Wanted]) -> Result<Vec<Fetched>, Vec<Failure>> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let (env, http, timeout) = (&self.env, &self.http, self.timeout);
        let needs_google = wanted
            .iter()
            .any(|w| matches!(w.reference.source, Reference::GcpSecretManager { .. }));
        let mut token: Option<Secret<String>> = None;
        if needs_google {
            match &self.google {
                // Known credentials: their cache answers, or refreshes.
                Some(c) => match tokio::time::timeout(timeout, c.access_token()).await {
                    Ok(Ok(t)) => token = Some(t.token),
                    Ok(Err(e)) => {
                        return Err(all_fail(
                            wanted,
                            &format!("getting an access token from {}: {e}", c.source()),
                            None,
                            e.is_transient(),
                        ));
                    }
                    Err(_) => return Err(google_timeout(wanted, timeout)),
                },
                None => match tokio::time::timeout(timeout, google::token(env, http)).await {
                    Ok(Ok((t, c))) => {
                        token = Some(t);
                        self.google = Some(c);
                    }
                    Ok(Err(e)) => {
                        let transient = e.auth().is_transient();
                        let hint =
                            crate::google_failure::credentials_problem(env, http, e.auth()).await;
                        return Err(all_fail(
                            wanted,
                            &format!("no Google credentials: {e:#}"),
                            hint,
                            transient,
                        ));
                    }
                    Err(_) => return Err(google_timeout(wanted, timeout)),
                },
            }
        }
        let needs_aws = wanted
            .iter()
            .any(|w| matches!(w.reference.source, Reference::AwsSecretsManager { .. }));
        // AWS credentials failing fails the AWS references only (nothing runs anyway: fail closed).
        let mut aws_failure: Option<(String, Option<Problem>, bool)> = None;
        if needs_aws && self.aws.is_none() {
            match tokio::time::timeout(timeout, aws::provider(env, http, true)).await {
                Ok(Ok(p)) => {
                    tracing::info!(source = %p.source(), region = ?p.region(), "aws credentials");
                    self.aws = Some(p);
                }
                Ok(Err(e)) => {
                    aws_failure = Some((
                        format!("no AWS credentials: {e}"),
                        aws::credentials_problem(env, &e),
                        e.is_transient(),
                    ))
                }
                Err(_) => {
                    aws_failure = Some((
                        format!(
                            "getting AWS credentials took longer than {}s",
                            timeout.as_secs()
                        ),
                        None,
                        true,
                    ))
                }
            }
        }
        let aws_provider = &self.aws;
        let mut fetcher = Fetcher::new(
            http.clone(),
            env,
            std::sync::Arc::new(keyway_core::SystemClock),
        );
        fetcher.concurrency = self.concurrency;
        fetcher.retry = keyway_secrets::retry_within(timeout);
        fetcher.aws = aws_provider.clone();
        let refs: Vec<SecretRef> = wanted.iter().map(|w| w.reference.clone()).collect();
        let results = fetcher.fetch_all_versioned(&refs, token.as_ref()).await;
        // Who the credentials are matters only for hints: ask only when a
        // reference of that cloud failed.
        let failed = |google: bool| {
            self.hints
                && results.iter().zip(wanted).any(|(r, w)| {
                    r.is_err()
                        && matches!(w.reference.source, Reference::GcpSecretManager { .. })
                            == google
                })
        };
        let who: Option<Who> = match &self.google {
            Some(c) if failed(true) => Some(google::caller(env, http, c).await),
            _ => None,
        };
        let aws_facts = match aws_provider {
            Some(p) if failed(false) => aws::facts(p).await,
            _ => aws::Facts::default(),
        };
        let mut values = Vec::with_capacity(results.len());
        let mut failures = Vec::new();
        for (w, r) in wanted.iter().zip(results) {
            let e = match r {
                Ok(v) => {
                    values.push(v);
                    continue;
                }
                Err(e) => e,
            };
            let (reference, transient) = (w.reference.to_string(), e.is_transient());
            let failure = |error: String, hint: Option<Problem>| Failure {
                name: w.name.clone(),
                reference: reference.clone(),
                error,
                hint,
                transient,
            };
            failures.push(match e {
                FetchError::NoAwsCredentials { .. } if aws_failure.is_some() => {
                    let (error, hint, transient) = aws_failure.clone().unwrap_or_default();
                    Failure {
                        transient,
                        ..failure(format!("reading {}: {error}", w.reference), hint)
                    }
                }
                FetchError::Transport { reference, error } => {
                    let var = match w.reference.source {
                        Reference::AwsSecretsManager { .. } => {
                            vars::AWS_ENDPOINT_URL_SECRETSMANAGER
                        }
                        Reference::GcpSecretManager { .. } => {
                            vars::CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER
                        }
                    };
                    let hint = transport_problem(&error, var);
                    failure(
                        FetchError::Transport { reference, error }.to_string(),
                        Some(hint),
                    )
                }
                e if matches!(w.reference.source, Reference::AwsSecretsManager { .. }) => failure(
                    e.to_string(),
                    aws::problem(
                        &e,
                        &w.reference.source,
                        aws_provider.as_ref(),
                        env,
                        &aws_facts,
                    ),
                ),
                e => failure(
                    e.to_string(),
                    google_problem(&e, &w.reference, who.as_ref()),
                ),
            });
        }
        if failures.is_empty() {
            Ok(values)
        } else {
            Err(failures)
        }
    }
}

fn google_timeout(wanted: &[Wanted], timeout: Duration) -> Vec<Failure> {
    all_fail(
        wanted,
        &format!(
            "getting Google credentials took longer than {}s",
            timeout.as_secs()
        ),
        None,
        true,
    )
}

fn all_fail(
    wanted: &[Wanted],
    error: &str,
    hint: Option<Problem>,
    transient: bool,
) -> Vec<Failure> {
    wanted
        .iter()
        .map(|w| Failure {
            name: w.name.clone(),
            reference: w.reference.to_string(),
            error: format!("reading {}: {error}", w.reference),
            hint: hint.clone(),
            transient,
        })
        .collect()
}

/// The diagnosis of a Google fetch failure, when keyway can tell: a match on
/// the failure's variant, with the names filled in from the reference and
/// from who the credentials are.
pub fn google_problem(e: &FetchError, r: &SecretRef, who: Option<&Who>) -> Option<Problem> {
    let Reference::GcpSecretManager {
        project,
        secret,
        version,
    } = &r.source
    else {
        return None;
    };
    const OWNER: &str = "the project owner";
    match e {
        FetchError::InsufficientScopes { .. } => Some(match who.and_then(|w| w.vm.as_ref()) {
            Some(vm) => {
                let sa = who.map(|w| w.email.as_str()).unwrap_or("SERVICE_ACCOUNT");
                Problem::new(
                    Code::GoogleScopeInsufficient,
                    "the VM's access scopes do not include cloud-platform (IAM roles cannot make up for a missing scope); \
                     scopes change only while the VM is stopped.",
                )
                .fixes(
                    fixes::vm_scopes(&vm.project, &vm.zone, &vm.name, sa)
                        .into_iter()
                        .map(|c| Fix::run_as(OWNER, c)),
                )
            }
            None => Problem::new(
                Code::GoogleScopeInsufficient,
                "request a token with the https://www.googleapis.com/auth/cloud-platform scope",
            ),
        }),
        FetchError::PermissionDenied { permission, .. } => {
            let member = who
                .map(|w| w.member())
                .unwrap_or_else(|| "PRINCIPAL".into());
            let role = fixes::role_granting(permission);
            Some(
                Problem::new(
                    Code::GooglePermissionDenied,
                    format!(
                        "{member} lacks {permission} on the secret (or the secret does not exist)."
                    ),
                )
                .fix(Fix::run_as(
                    OWNER,
                    fixes::grant_on_secret(project, secret, &member, role),
                )),
            )
        }
        FetchError::NotFound { .. } => Some(
            Problem::new(
                Code::GoogleSecretNotFound,
                "the secret or the version does not exist; list what exists:",
            )
            .fix(Fix::run(fixes::list_versions(project, secret))),
        ),
        // `enable` takes a version's number, not the `latest` alias: list them.
        FetchError::NotEnabled { .. } if version == "latest" => Some(
            Problem::new(
                Code::GoogleVersionDisabled,
                "the latest version is disabled or destroyed; find its number (a destroyed version cannot come back) \
                 and enable it with `gcloud secrets versions enable NUMBER`, or add a new version:",
            )
            .fix(Fix::run(fixes::list_versions(project, secret))),
        ),
        FetchError::NotEnabled { .. } => Some(
            Problem::new(
                Code::GoogleVersionDisabled,
                "enable the version (a destroyed version cannot come back):",
            )
            .fix(Fix::run(fixes::enable_version(project, secret, version))),
        ),
        _ => None,
    }
}

/// What to check when a secrets endpoint gave no usable answer; `override_var`
/// is the variable that points keyway at another endpoint.
pub fn transport_problem(e: &keyway_http::HttpError, override_var: &str) -> Problem {
    match e {
        keyway_http::HttpError::TooLarge { .. } => Problem::new(
            Code::Unreachable,
            format!(
                "no secret is that large: whatever answered is not the service keyway expected; check {override_var} (and any proxy in HTTPS_PROXY)"
            ),
        ),
        _ => Problem::new(
            Code::Unreachable,
            format!("check the network, or {override_var} if you point keyway at another endpoint"),
        ),
    }
}

/// Failures as `exec` reports them: a line saying nothing ran, then a block each.
pub fn unresolved(failures: &[Failure]) -> anyhow::Error {
    let mut m = format!(
        "error: {} of the secret references could not be resolved; nothing was run",
        failures.len()
    );
    for f in failures {
        m.push_str(&format!("\n  {f}"));
    }
    Failed::error(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disabled(r: &str) -> Problem {
        let r = SecretRef::parse(r).unwrap();
        let e = FetchError::NotEnabled {
            reference: r.to_string(),
            message: "is in DISABLED state".into(),
        };
        google_problem(&e, &r, None).unwrap()
    }

    #[test]
    fn a_disabled_version_is_enabled_by_its_number_never_by_the_latest_alias() {
        let pinned = disabled("sm://p/s#3");
        assert_eq!(pinned.code, Code::GoogleVersionDisabled);
        assert!(
            pinned
                .to_string()
                .ends_with("$ gcloud secrets versions enable 3 --secret=s --project=p"),
            "{pinned}"
        );
        let latest = disabled("sm://p/s");
        assert_eq!(latest.code, Code::GoogleVersionDisabled);
        assert!(
            latest
                .to_string()
                .ends_with("$ gcloud secrets versions list s --project=p"),
            "{latest}"
        );
        assert!(!latest.to_string().contains("enable latest"), "{latest}");
    }
}
