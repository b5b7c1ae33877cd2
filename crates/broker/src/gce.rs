//! The GCE metadata API, backed by whatever Google credentials keyway resolved
//! (Workload Identity Federation from ECS credentials, impersonation, a key, a
//! user, a real metadata server), so that Google's client libraries in any
//! language believe they run on Compute Engine and need no credential file.
//!
//! It answers what Python google-auth, Node gcp-metadata/google-auth-library
//! and Go's `cloud.google.com/go/compute/metadata` read, as GCE does:
//! `Metadata-Flavor: Google` is required on `/computeMetadata/` and sent back on
//! every answer (with `Server: Metadata Server for VM`); `/` answers the ping
//! without it; a request carrying `X-Forwarded-For` (or `Forwarded`) is refused
//! with 403; only GET is taken (405 otherwise); directories answer newline
//! listings, or JSON with `?recursive=true`, and a directory asked for without
//! its trailing slash is redirected (301) to it; leaves are `application/text`,
//! or a JSON string with `?alt=json`; anything else is GCE's 404 page.
//!
//! `service-accounts/default/token` honours `?scopes=` (comma-separated), as
//! the serverless platforms' metadata servers do: a token for other scopes
//! comes from a handle on the same credentials with its own cache
//! ([`GoogleCredentials::with_scopes`]; at most [`MAX_SCOPE_SETS`] sets are kept).
//! When no token can be had the answer says why: 503 if the failure is
//! transient (clients retry it), 403 if Google refused, 500 otherwise.
//!
//! Not a VM: `instance/` has no id, zone, name or hostname. Without a service
//! account (a federated principal used directly) the email is `default`, and
//! identity tokens cannot be had (Google issues them to service accounts only).

use crate::reply::{forwarded, param, query, readable, response, secret_body};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Response, StatusCode, header};
use keyway_auth::{AuthError, GoogleCredentials};
use keyway_core::Clock;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

/// How many scope sets besides the default keep a token cache.
pub const MAX_SCOPE_SETS: usize = 16;
/// The email reported when the credentials are not a service account's or a user's.
pub const NO_ACCOUNT: &str = "default";
const UNIVERSE: &str = "googleapis.com";

/// What the metadata API serves.
pub struct Google {
    creds: GoogleCredentials,
    /// The default token's scopes, sorted (the key `?scopes=` is compared with).
    default_scopes: Vec<String>,
    scoped: Mutex<VecDeque<(Vec<String>, GoogleCredentials)>>,
    email: String,
    project_id: Option<String>,
    project_number: Option<String>,
    clock: Arc<dyn Clock>,
}

/// Where the project comes from when the command line does not say.
#[derive(Debug, Clone, Default)]
pub struct Project {
    pub id: Option<String>,
    pub number: Option<String>,
}

impl Google {
    /// Gets a first token (so a broker that cannot serve fails before its
    /// workload starts) and learns who the credentials are.
    pub async fn new(
        creds: GoogleCredentials,
        project: Project,
        clock: Arc<dyn Clock>,
    ) -> Result<Google, AuthError> {
        let who = creds.identity().await?;
        let email = who.email.clone().unwrap_or_else(|| NO_ACCOUNT.to_owned());
        let mut default_scopes = who
            .scopes
            .clone()
            .unwrap_or_else(|| creds.requested_scopes().to_vec());
        default_scopes.sort();
        default_scopes.dedup();
        let project_id = project
            .id
            .or_else(|| creds.project_hint().map(str::to_owned))
            .or_else(|| project_of_email(&email));
        let project_number = project
            .number
            .or_else(|| creds.federation_audience().and_then(number_of_audience))
            .or_else(|| number_of_email(&email));
        Ok(Google {
            creds,
            default_scopes,
            scoped: Mutex::new(VecDeque::new()),
            email,
            project_id,
            project_number,
            clock,
        })
    }

    /// The credentials behind the default token (for the background refresher).
    pub fn credentials(&self) -> &GoogleCredentials {
        &self.creds
    }

    pub fn email(&self) -> &str {
        &self.email
    }

    pub fn project_id(&self) -> Option<&str> {
        self.project_id.as_deref()
    }

    /// The credentials for `?scopes=` (comma-separated), or the default ones.
    /// `None` if the parameter is malformed.
    fn for_scopes(&self, asked: Option<&str>) -> Option<GoogleCredentials> {
        let Some(asked) = asked.filter(|s| !s.trim().is_empty()) else {
            return Some(self.creds.clone());
        };
        let mut scopes: Vec<String> = asked
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        scopes.sort();
        scopes.dedup();
        if scopes
            .iter()
            .any(|s| s.len() > 256 || s.contains(char::is_whitespace))
            || scopes.len() > 32
        {
            return None;
        }
        if scopes == self.default_scopes {
            return Some(self.creds.clone());
        }
        let mut sets = self.scoped.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, c)) = sets.iter().find(|(s, _)| *s == scopes) {
            return Some(c.clone());
        }
        let c = self.creds.with_scopes(&scopes);
        if sets.len() >= MAX_SCOPE_SETS {
            sets.pop_front();
        }
        sets.push_back((scopes, c.clone()));
        Some(c)
    }
}

/// `name@PROJECT.iam.gserviceaccount.com` → PROJECT.
fn project_of_email(email: &str) -> Option<String> {
    let domain = email.rsplit_once('@')?.1;
    domain
        .strip_suffix(".iam.gserviceaccount.com")
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
}

/// `NUMBER-compute@developer.gserviceaccount.com` → NUMBER.
fn number_of_email(email: &str) -> Option<String> {
    let n = email
        .strip_suffix("@developer.gserviceaccount.com")?
        .strip_suffix("-compute")?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then(|| n.to_owned())
}

/// `//iam.googleapis.com/projects/NUMBER/locations/…` → NUMBER.
fn number_of_audience(aud: &str) -> Option<String> {
    let rest = aud.split_once("/projects/")?.1;
    let n = rest.split('/').next()?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then(|| n.to_owned())
}

/// The metadata API alone (the broker's combined router dispatches to [`handle`]).
pub fn router(state: Arc<Google>) -> Router {
    Router::new()
        .fallback(|State(g): State<Arc<Google>>, req: Request| async move { handle(&g, req).await })
        .with_state(state)
}

fn gce(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert("metadata-flavor", HeaderValue::from_static("Google"));
    h.insert(
        header::SERVER,
        HeaderValue::from_static("Metadata Server for VM"),
    );
    h.insert("x-xss-protection", HeaderValue::from_static("0"));
    h.insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
    r
}

fn text(body: impl Into<Body>) -> Response<Body> {
    gce(response(StatusCode::OK, "application/text", body))
}

fn json(v: &serde_json::Value) -> Response<Body> {
    gce(response(
        StatusCode::OK,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    ))
}

fn error(status: StatusCode, msg: &str) -> Response<Body> {
    gce(response(
        status,
        "text/plain; charset=utf-8",
        format!("{msg}\n"),
    ))
}

/// GCE's own 404 page.
pub(crate) fn not_found() -> Response<Body> {
    gce(response(
        StatusCode::NOT_FOUND,
        "text/html; charset=UTF-8",
        "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n  <p><b>404.</b> <ins>That\u{2019}s an error.</ins>\n  <p>The requested URL was not found on this server.  <ins>That\u{2019}s all we know.</ins>\n",
    ))
}

/// Why no token could be had, as the endpoint answers it. Logged: the workload
/// only sees a status.
fn unavailable(what: &str, e: &AuthError) -> Response<Body> {
    let status = if e.is_transient() {
        StatusCode::SERVICE_UNAVAILABLE
    } else if matches!(e.status(), Some(400 | 401 | 403))
        || matches!(e, AuthError::OperationUnsupported { .. })
    {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    tracing::warn!(error = %e, status = status.as_u16(), "the metadata API could not get {what}");
    error(status, &format!("Unable to generate {what}: {e}"))
}

/// Whether the path (without `/computeMetadata/v1`) is a directory this API has.
enum Node<'a> {
    Dir(Vec<String>, Option<serde_json::Value>),
    Leaf(String),
    Token(Option<&'a str>),
    Identity,
    Missing,
}

/// Serves one request of the metadata API.
pub async fn handle(g: &Google, req: Request) -> Response<Body> {
    let (parts, _body) = req.into_parts();
    if forwarded(&parts.headers) {
        return error(
            StatusCode::FORBIDDEN,
            "Request denied: X-Forwarded-For header present; the metadata server refuses proxied requests.",
        );
    }
    if !readable(&parts.method) {
        let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    let path = parts.uri.path();
    if path == "/" {
        return text("computeMetadata/\n");
    }
    let Some(rest) = path.strip_prefix("/computeMetadata") else {
        return not_found();
    };
    if parts
        .headers
        .get("metadata-flavor")
        .map(HeaderValue::as_bytes)
        != Some(b"Google")
    {
        return error(
            StatusCode::FORBIDDEN,
            "Missing required header: Metadata-Flavor: Google",
        );
    }
    if rest.is_empty() || rest == "/" {
        return if rest.is_empty() {
            redirect(path)
        } else {
            text("v1/\n")
        };
    }
    let Some(rest) = rest.strip_prefix("/v1") else {
        return not_found();
    };
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let q = query(parts.uri.query());
    let recursive =
        param(&q, "recursive").is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    let alt_json = param(&q, "alt") == Some("json");
    let is_dir = rest.is_empty() || rest.ends_with('/');
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match g.node(&segs, param(&q, "scopes")) {
        Node::Dir(entries, whole) => {
            if !is_dir && !recursive {
                return redirect(path);
            }
            match (recursive, whole) {
                (true, Some(v)) => json(&v),
                _ => text(entries.iter().map(|e| format!("{e}\n")).collect::<String>()),
            }
        }
        Node::Leaf(v) if !is_dir => {
            if alt_json {
                json(&serde_json::Value::String(v))
            } else {
                text(v)
            }
        }
        Node::Token(scopes) if !is_dir => g.token(scopes).await,
        Node::Identity if !is_dir => g.identity(&q).await,
        _ => not_found(),
    }
}

fn dir(entries: &[&str]) -> Vec<String> {
    entries.iter().map(|e| (*e).to_owned()).collect()
}

fn redirect(path: &str) -> Response<Body> {
    let mut r = gce(response(StatusCode::MOVED_PERMANENTLY, "text/html", ""));
    if let Ok(v) = HeaderValue::from_str(&format!("{path}/")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

impl Google {
    fn account_json(&self) -> serde_json::Value {
        serde_json::json!({"aliases": ["default"], "email": self.email, "scopes": self.default_scopes})
    }

    fn accounts_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("default".into(), self.account_json());
        if self.email != NO_ACCOUNT {
            m.insert(self.email.clone(), self.account_json());
        }
        serde_json::Value::Object(m)
    }

    fn project_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("attributes".into(), serde_json::json!({}));
        if let Some(n) = self
            .project_number
            .as_ref()
            .and_then(|n| n.parse::<u64>().ok())
        {
            m.insert("numericProjectId".into(), n.into());
        }
        if let Some(p) = &self.project_id {
            m.insert("projectId".into(), p.clone().into());
        }
        serde_json::Value::Object(m)
    }

    fn instance_json(&self) -> serde_json::Value {
        serde_json::json!({"attributes": {}, "serviceAccounts": self.accounts_json()})
    }

    fn node<'a>(&self, segs: &[&str], scopes: Option<&'a str>) -> Node<'a> {
        match segs {
            [] => Node::Dir(
                dir(&["instance/", "project/", "universe/"]),
                Some(serde_json::json!({
                    "instance": self.instance_json(),
                    "project": self.project_json(),
                    "universe": {"universeDomain": UNIVERSE},
                })),
            ),
            ["universe"] => Node::Dir(
                dir(&["universe-domain"]),
                Some(serde_json::json!({"universeDomain": UNIVERSE})),
            ),
            ["universe", "universe-domain"] => Node::Leaf(UNIVERSE.into()),
            ["project"] => Node::Dir(
                dir(match (&self.project_id, &self.project_number) {
                    (Some(_), Some(_)) => &["attributes/", "numeric-project-id", "project-id"],
                    (Some(_), None) => &["attributes/", "project-id"],
                    (None, Some(_)) => &["attributes/", "numeric-project-id"],
                    (None, None) => &["attributes/"],
                }),
                Some(self.project_json()),
            ),
            ["project", "attributes"] | ["instance", "attributes"] => {
                Node::Dir(Vec::new(), Some(serde_json::json!({})))
            }
            ["project", "project-id"] => match &self.project_id {
                Some(p) => Node::Leaf(p.clone()),
                None => Node::Missing,
            },
            ["project", "numeric-project-id"] => match &self.project_number {
                Some(n) => Node::Leaf(n.clone()),
                None => Node::Missing,
            },
            ["instance"] => Node::Dir(
                dir(&["attributes/", "service-accounts/"]),
                Some(self.instance_json()),
            ),
            ["instance", "service-accounts"] => Node::Dir(
                if self.email == NO_ACCOUNT {
                    vec!["default/".into()]
                } else {
                    vec!["default/".into(), format!("{}/", self.email)]
                },
                Some(self.accounts_json()),
            ),
            ["instance", "service-accounts", who, rest @ ..]
                if *who == "default" || *who == self.email =>
            {
                match rest {
                    [] => Node::Dir(
                        dir(&["aliases", "email", "identity", "scopes", "token"]),
                        Some(self.account_json()),
                    ),
                    ["aliases"] => Node::Leaf("default\n".into()),
                    ["email"] => Node::Leaf(self.email.clone()),
                    ["scopes"] => Node::Leaf(
                        self.default_scopes
                            .iter()
                            .map(|s| format!("{s}\n"))
                            .collect(),
                    ),
                    ["token"] => Node::Token(scopes),
                    ["identity"] => Node::Identity,
                    _ => Node::Missing,
                }
            }
            _ => Node::Missing,
        }
    }

    async fn token(&self, scopes: Option<&str>) -> Response<Body> {
        let Some(creds) = self.for_scopes(scopes) else {
            return error(StatusCode::BAD_REQUEST, "invalid scopes parameter");
        };
        match creds.access_token().await {
            Ok(t) => {
                let now = self.clock.now_secs();
                let expires_in = t.expires_at.saturating_sub(now).max(1);
                let mut body = Vec::with_capacity(t.token.expose().len() + 64);
                body.extend_from_slice(b"{\"access_token\":");
                // A JSON string: tokens are printable ASCII, but escape anyway.
                if serde_json::to_writer(&mut body, t.token.expose()).is_err() {
                    return error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
                }
                body.extend_from_slice(
                    format!(",\"expires_in\":{expires_in},\"token_type\":\"Bearer\"}}").as_bytes(),
                );
                gce(response(
                    StatusCode::OK,
                    "application/json",
                    secret_body(body),
                ))
            }
            Err(e) => unavailable("an access token", &e),
        }
    }

    async fn identity(&self, q: &[(String, String)]) -> Response<Body> {
        let Some(aud) = param(q, "audience").filter(|a| !a.is_empty()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "non-empty audience parameter required",
            );
        };
        if let Some(f) = param(q, "format")
            && f != "full"
            && f != "standard"
        {
            return error(
                StatusCode::BAD_REQUEST,
                "format must be 'standard' or 'full'",
            );
        }
        match self.creds.id_token(aud).await {
            Ok(t) => gce(response(
                StatusCode::OK,
                "application/text",
                secret_body(t.expose().as_bytes().to_vec()),
            )),
            Err(e) => unavailable("an identity token", &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects_from_names() {
        assert_eq!(
            project_of_email("a@my-proj.iam.gserviceaccount.com").as_deref(),
            Some("my-proj")
        );
        assert_eq!(project_of_email("kyoto@example.com"), None);
        assert_eq!(
            number_of_email("482915736104-compute@developer.gserviceaccount.com").as_deref(),
            Some("482915736104")
        );
        assert_eq!(
            number_of_email("x-compute@developer.gserviceaccount.com"),
            None
        );
        assert_eq!(
            number_of_audience("//iam.googleapis.com/projects/402718395026/locations/global/workloadIdentityPools/bq-pool/providers/aws").as_deref(),
            Some("402718395026")
        );
        assert_eq!(
            number_of_audience("//iam.googleapis.com/projects/p/x"),
            None
        );
    }
}
