//! The Google half of `keyway doctor`: Application Default Credentials (which
//! source, what was tried), the federation settings of an `external_account`
//! file, the token, who it is (a VM's service account, a user, a federated
//! principal), its scopes, and each Secret Manager reference. A denial is
//! confirmed with `testIamPermissions`; where this machine also holds gcloud's
//! user credentials, they are asked too, to tell "your user holds the role,
//! the VM's service account does not" (seed 000) and "the secret does not
//! exist" apart from a plain denial.

use super::{Cloud, Step, skipped_references, tried};
use crate::commands::resolve;
use crate::diagnosis::{Code, Fix, Problem};
use crate::fixes::{self, Cmd};
use crate::google::{self, Who};
use keyway_auth::{AuthError, GoogleCredentials, SourceKind};
use keyway_core::{Env, Reference, Secret, SecretRef, SystemClock, vars};
use keyway_http::{Call, Cap};
use keyway_secrets::{FetchError, Fetcher};
use std::sync::Arc;
use std::time::Duration;

const G: Cloud = Cloud::Google;
const OWNER: &str = "the project owner";

pub async fn walk(
    env: &Env,
    http: &reqwest::Client,
    refs: &[&SecretRef],
    timeout: Duration,
) -> Vec<Step> {
    let mut steps = Vec::new();
    // 1. Which source answers.
    let adc = Step::new(G, "credentials", "Application Default Credentials");
    let creds = match tokio::time::timeout(timeout, google::credentials(env, http)).await {
        Ok(Ok(c)) => {
            steps.push(
                adc.looked_in(tried(c.attempts().iter().map(|a| (&a.source, &a.outcome))))
                    .found(c.source().to_string()),
            );
            c
        }
        Ok(Err(e)) => {
            let p = crate::google_failure::credentials_problem(env, http, &e).await;
            let mut s = adc.found(e.to_string());
            if let AuthError::NotConfigured { attempts } = &e {
                s = s.looked_in(tried(attempts.iter().map(|a| (&a.source, &a.outcome))));
            }
            steps.push(s.failed(p));
            steps.extend(skipped_references(G, refs, "no Google credentials"));
            return steps;
        }
        Err(_) => {
            steps.push(adc.failed(Some(took_too_long(timeout))));
            steps.extend(skipped_references(G, refs, "no Google credentials"));
            return steps;
        }
    };
    // 2. Federation settings, as the file says them.
    if let Some(f) = creds.file().and_then(|f| f.federation.clone()) {
        let path = creds.file().map(|f| f.path.display().to_string());
        let mut found = format!("audience {}", f.audience);
        if let Some(sa) = &f.service_account {
            found.push_str(&format!(", impersonating {sa}"));
        }
        let mut s =
            Step::new(G, "federation", "Workload Identity Federation settings").found(found);
        if let Some(p) = path {
            s = s.looked_in(p);
        }
        steps.push(s);
    }
    // 3. A token, fetched now: not one cached in the credentials file (an
    // authorized_user file may carry one), which would hide a refresh token
    // that was revoked or has expired until the cached token runs out.
    let creds = creds.with_scopes(creds.requested_scopes());
    let tok = Step::new(G, "token", "an access token").looked_in(creds.source().to_string());
    let token = match tokio::time::timeout(timeout, creds.access_token()).await {
        Ok(Ok(t)) => {
            let expires = jiff::Timestamp::from_second(t.expires_at)
                .map(|t| t.to_string())
                .unwrap_or_default();
            steps.push(tok.found(format!("a token valid until {expires}")));
            t
        }
        Ok(Err(e)) => {
            let p = crate::google_failure::credentials_problem(env, http, &e).await;
            steps.push(tok.found(e.to_string()).failed(p));
            steps.extend(skipped_references(G, refs, "no Google access token"));
            return steps;
        }
        Err(_) => {
            steps.push(tok.failed(Some(took_too_long(timeout))));
            steps.extend(skipped_references(G, refs, "no Google access token"));
            return steps;
        }
    };
    // 4. Who it is.
    let mut who = google::who(&creds, http).await;
    if who.email.is_empty() {
        who.principal = google::federated_member(env, http, &creds).await;
    }
    let mut found = if who.email.is_empty() && who.principal.is_none() {
        "an identity Google does not name (no email)".to_owned()
    } else {
        who.member()
    };
    if let Some(vm) = &who.vm {
        found.push_str(&format!(
            ", on VM {} in {} (project {})",
            vm.name, vm.zone, vm.project
        ));
    }
    steps.push(Step::new(G, "identity", "who the token is").found(found));
    // 5. Scopes: a token without cloud-platform cannot read Secret Manager, whatever IAM says.
    let scopes = match token.scopes.clone() {
        Some(s) => Some(s),
        None => creds.granted_scopes().await.ok().flatten(),
    };
    if let Some(scopes) = scopes {
        let s =
            Step::new(G, "scopes", "the cloud-platform OAuth scope").found(if scopes.is_empty() {
                "no scope".to_owned()
            } else {
                scopes.join(" ")
            });
        steps.push(if scopes.iter().any(|s| s == google::CLOUD_PLATFORM) {
            s
        } else {
            s.failed(Some(scope_problem(&who)))
        });
    }
    // 6. Each reference.
    let mut fetcher = Fetcher::new(http.clone(), env, Arc::new(SystemClock));
    fetcher.retry = keyway_secrets::retry_within(timeout);
    for r in refs {
        let s = Step::new(G, "reference", "the secret's value").reference(r);
        match fetcher.fetch_versioned(r, Some(&token.token)).await {
            Ok(v) => steps.push(s.found(format!(
                "version {} ({} bytes)",
                v.version.as_deref().unwrap_or("?"),
                v.value.expose().len()
            ))),
            Err(e) => {
                let found = e.to_string();
                let scopes_failed = steps
                    .iter()
                    .any(|s| s.check == "scopes" && s.status == super::Status::Failed);
                let caller = Caller {
                    who: &who,
                    creds: &creds,
                    token: &token.token,
                    scopes_failed,
                };
                let (problem, extra) = diagnose(env, http, &e, r, &caller).await;
                steps.push(s.found(found).failed(problem));
                steps.extend(extra);
            }
        }
    }
    steps
}

fn took_too_long(timeout: Duration) -> Problem {
    Problem::new(
        Code::Unreachable,
        format!(
            "no answer within {}s: check the network, or the endpoint override variables if you point keyway at other endpoints",
            timeout.as_secs()
        ),
    )
}

/// The scopes of the token do not include cloud-platform: on a VM, the three
/// commands that change its access scopes.
fn scope_problem(who: &Who) -> Problem {
    match &who.vm {
        Some(vm) => Problem::new(
            Code::GoogleScopeInsufficient,
            format!(
                "the VM's access scopes do not include cloud-platform, so Google refuses its token for Secret Manager \
                 whatever IAM roles {} holds (a role cannot make up for a missing scope); scopes change only while the VM is stopped.",
                who.email
            ),
        )
        .fixes(
            fixes::vm_scopes(&vm.project, &vm.zone, &vm.name, &who.email)
                .into_iter()
                .map(|c| Fix::run_as(OWNER, c)),
        ),
        None => Problem::new(
            Code::GoogleScopeInsufficient,
            "the token does not carry the https://www.googleapis.com/auth/cloud-platform scope; ask for it where the token is made",
        ),
    }
}

/// Who read the references, as the steps before found them.
struct Caller<'a> {
    who: &'a Who,
    creds: &'a GoogleCredentials,
    token: &'a Secret<String>,
    /// The scopes step failed already (a reference's scope error points back to it).
    scopes_failed: bool,
}

/// The diagnosis of a failed reference, and steps that show what was asked to
/// reach it (a `permission` step with testIamPermissions, a `project` step).
async fn diagnose(
    env: &Env,
    http: &reqwest::Client,
    e: &FetchError,
    r: &SecretRef,
    caller: &Caller<'_>,
) -> (Option<Problem>, Vec<Step>) {
    let Caller {
        who,
        creds,
        token,
        scopes_failed,
    } = *caller;
    let Reference::GcpSecretManager {
        project,
        secret,
        version,
    } = &r.source
    else {
        return (None, Vec::new());
    };
    let api = SecretManager::new(env, http);
    let mut extra = Vec::new();
    let base = resolve::google_problem(e, r, Some(who));
    let problem = match e {
        FetchError::InsufficientScopes { .. } if scopes_failed => Some(Problem::new(
            Code::GoogleScopeInsufficient,
            "the token lacks the cloud-platform scope: the scopes step above says why, and how to fix it",
        )),
        FetchError::InsufficientScopes { .. } => Some(scope_problem(who)),
        FetchError::PermissionDenied { permission, .. } => {
            // What IAM says the caller holds on the secret.
            let held = api
                .test_permissions(token, project, secret, permission)
                .await;
            let mut s = Step::new(G, "permission", format!("{permission} for {}", who.member()))
                .reference(r)
                .looked_in(format!("testIamPermissions on projects/{project}/secrets/{secret}"));
            s = match held {
                Some(true) => s.found("granted"),
                Some(false) => s.found("not granted").failed(None),
                None => s.skipped("testIamPermissions did not answer"),
            };
            extra.push(s);
            // The user of this machine, if gcloud's credentials are here: do they hold it?
            let user = match user_token(env, http, creds).await {
                Some(u) => Some((
                    api.test_permissions(&u.1, project, secret, permission).await,
                    api.secret_exists(&u.1, project, secret).await,
                    u.0,
                )),
                None => None,
            };
            match user {
                Some((_, Some(false), user)) => Some(
                    Problem::new(
                        Code::GoogleSecretNotFound,
                        format!(
                            "secret {secret} does not exist in project {project} (as {user} can see; Secret Manager answers a caller \
                             without access with the same 403 whether the secret exists or not). Create it, with the value on stdin:"
                        ),
                    )
                    .fix(Fix::run(create_secret(project, secret)))
                    .fix(Fix::run(add_version(project, secret))),
                ),
                Some((Some(true), _, user)) if user != who.email => {
                    let member = who.member();
                    let role = fixes::role_granting(permission);
                    Some(
                        Problem::new(
                            Code::GoogleUserHasRoleServiceAccountLacks,
                            format!(
                                "your own account {user} holds {permission} on the secret, but keyway runs as {member}, which does not: \
                                 a role granted to your user does not reach what runs on the VM. (Colab and your laptop run as you, \
                                 which is why they just worked.) Grant the role to the service account:"
                            ),
                        )
                        .fix(Fix::run_as(
                            OWNER,
                            fixes::grant_on_secret(project, secret, &member, role),
                        )),
                    )
                }
                _ => base,
            }
        }
        FetchError::NotFound { .. } => {
            match api.secret_exists(token, project, secret).await {
                Some(false) => Some(
                    Problem::new(
                        Code::GoogleSecretNotFound,
                        format!(
                            "secret {secret} does not exist in project {project}. Create it, with the value on stdin:"
                        ),
                    )
                    .fix(Fix::run(create_secret(project, secret)))
                    .fix(Fix::run(add_version(project, secret))),
                ),
                Some(true) => Some(
                    Problem::new(
                        Code::GoogleVersionNotFound,
                        format!(
                            "secret {secret} exists, but it has no version {version}; list the versions it has:"
                        ),
                    )
                    .fix(Fix::run(fixes::list_versions(project, secret))),
                ),
                None => base,
            }
        }
        FetchError::NotEnabled { .. } => {
            // The version's own number: `latest` is an alias that access and
            // get take, but enable, disable and destroy do not.
            let found = api.version_state(token, project, secret, version).await;
            let (state, number) = match &found {
                Some((state, number)) => (Some(state.as_str()), number.as_str()),
                None => (None, version.as_str()),
            };
            let which = if number == version {
                format!("version {version}")
            } else {
                format!("version {number} ({version})")
            };
            match state {
                Some("DESTROYED") => Some(
                    Problem::new(
                        Code::GoogleVersionDestroyed,
                        format!(
                            "{which} of secret {secret} was destroyed: its data is gone and cannot come back. \
                             Add a new version (the value on stdin) and refer to it, or to latest:"
                        ),
                    )
                    .fix(Fix::run(add_version(project, secret))),
                ),
                _ => Some(
                    Problem::new(
                        Code::GoogleVersionDisabled,
                        format!("{which} of secret {secret} is disabled; enable it:"),
                    )
                    .fix(Fix::run(fixes::enable_version(project, secret, number))),
                ),
            }
        }
        FetchError::ServiceDisabled { .. } => Some(
            Problem::new(
                Code::GoogleServiceDisabled,
                format!("the Secret Manager API is not enabled in project {project}; enable it:"),
            )
            .fix(Fix::run_as(
                OWNER,
                Cmd::new([
                    "gcloud",
                    "services",
                    "enable",
                    "secretmanager.googleapis.com",
                    &format!("--project={project}"),
                ]),
            )),
        ),
        FetchError::Transport { error, .. } => Some(resolve::transport_problem(
            error,
            vars::CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER,
        )),
        _ => base,
    };
    // A reference to another project than the credentials' own.
    if matches!(e, FetchError::PermissionDenied { .. })
        && let Some(own) = own_project(who, creds)
        && own != *project
        && !project.chars().all(|c| c.is_ascii_digit())
    {
        extra.push(
            Step::new(G, "project", "the project the credentials belong to")
                .reference(r)
                .found(own.clone())
                .warning(Problem::new(
                    Code::GoogleProjectMismatch,
                    format!(
                        "the reference names project {project}, but the credentials belong to project {own}: \
                         check the project id in the reference; if the secret really is in {project}, the grant must be made there"
                    ),
                )),
        );
    }
    (problem, extra)
}

/// The project the credentials belong to: the VM's, or a service account's
/// (its email's domain), or the file's quota or key project.
fn own_project(who: &Who, creds: &GoogleCredentials) -> Option<String> {
    if let Some(vm) = &who.vm {
        return Some(vm.project.clone());
    }
    if let Some(p) = who
        .email
        .strip_suffix(".iam.gserviceaccount.com")
        .and_then(|d| d.rsplit_once('@'))
        .map(|(_, p)| p.to_owned())
    {
        return Some(p);
    }
    creds.project_hint().map(str::to_owned)
}

fn create_secret(project: &str, secret: &str) -> Cmd {
    Cmd::new([
        "gcloud",
        "secrets",
        "create",
        secret,
        &format!("--project={project}"),
        "--replication-policy=automatic",
    ])
}

fn add_version(project: &str, secret: &str) -> Cmd {
    Cmd::new([
        "gcloud",
        "secrets",
        "versions",
        "add",
        secret,
        &format!("--project={project}"),
        "--data-file=-",
    ])
}

/// The person at this machine, as gcloud knows them, when that is not who
/// keyway runs as: gcloud's active account with its access-token file
/// (CLOUDSDK_CORE_ACCOUNT, CLOUDSDK_AUTH_ACCESS_TOKEN_FILE), or gcloud's
/// application-default user credentials when ADC did not pick them (because
/// GOOGLE_APPLICATION_CREDENTIALS names another file). The email and a token.
async fn user_token(
    env: &Env,
    http: &reqwest::Client,
    creds: &GoogleCredentials,
) -> Option<(String, Secret<String>)> {
    if let Some(person) = google::gcloud_person(env) {
        return Some(person);
    }
    if creds.source().kind() == SourceKind::GcloudFile {
        return None;
    }
    // ADC as it would run with only gcloud's file to look at.
    let only_gcloud = env
        .clone()
        .with(vars::GOOGLE_APPLICATION_CREDENTIALS, "")
        .with(vars::NO_GCE_CHECK, "true");
    let user = google::credentials(&only_gcloud, http).await.ok()?;
    if user.source().kind() != SourceKind::GcloudFile {
        return None;
    }
    let token = user.access_token().await.ok()?;
    let email = user.identity().await.ok()?.email?;
    Some((email, token.token))
}

/// The few Secret Manager calls the diagnosis makes (a diagnosis is best
/// effort: `None` when the answer does not tell).
struct SecretManager<'a> {
    http: &'a reqwest::Client,
    base: String,
}

const ANSWER: Cap = Cap::kib(64);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

impl<'a> SecretManager<'a> {
    fn new(env: &Env, http: &'a reqwest::Client) -> SecretManager<'a> {
        SecretManager {
            http,
            base: keyway_secrets::secretmanager_base(env),
        }
    }

    async fn call(
        &self,
        token: &Secret<String>,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Option<(u16, serde_json::Value)> {
        let url = format!("{}v1/{path}", self.base);
        let call = Call {
            doing: "diagnosing a Secret Manager failure",
            url: &url,
            cap: ANSWER,
        };
        let request = match body {
            Some(b) => self.http.post(url.as_str()).json(&b),
            None => self.http.get(url.as_str()),
        }
        .bearer_auth(token.expose());
        let reply = keyway_http::exchange(request, CALL_TIMEOUT, &call)
            .await
            .map_err(|e| tracing::debug!(error = %e, "diagnosis call failed"))
            .ok()?;
        let v = serde_json::from_slice(reply.body.expose()).unwrap_or_default();
        Some((reply.status, v))
    }

    /// Whether `token`'s principal holds `permission` on the secret.
    async fn test_permissions(
        &self,
        token: &Secret<String>,
        project: &str,
        secret: &str,
        permission: &str,
    ) -> Option<bool> {
        let (status, v) = self
            .call(
                token,
                &format!("projects/{project}/secrets/{secret}:testIamPermissions"),
                Some(serde_json::json!({"permissions": [permission]})),
            )
            .await?;
        (status == 200).then(|| {
            v["permissions"]
                .as_array()
                .is_some_and(|a| a.iter().any(|p| p == permission))
        })
    }

    /// Whether the secret exists, as far as `token`'s principal may see.
    async fn secret_exists(
        &self,
        token: &Secret<String>,
        project: &str,
        secret: &str,
    ) -> Option<bool> {
        let (status, _) = self
            .call(token, &format!("projects/{project}/secrets/{secret}"), None)
            .await?;
        match status {
            200 => Some(true),
            404 => Some(false),
            _ => None,
        }
    }

    /// A version's state (`ENABLED`, `DISABLED`, `DESTROYED`) and its number
    /// (what `latest` stands for).
    async fn version_state(
        &self,
        token: &Secret<String>,
        project: &str,
        secret: &str,
        version: &str,
    ) -> Option<(String, String)> {
        let (status, v) = self
            .call(
                token,
                &format!("projects/{project}/secrets/{secret}/versions/{version}"),
                None,
            )
            .await?;
        if status != 200 {
            return None;
        }
        let state = v["state"].as_str()?.to_owned();
        let number = v["name"]
            .as_str()
            .and_then(|n| n.rsplit_once("/versions/"))
            .map(|(_, n)| n.to_owned())
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            .unwrap_or_else(|| version.to_owned());
        Some((state, number))
    }
}
