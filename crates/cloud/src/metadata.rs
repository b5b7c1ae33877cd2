//! One GCE metadata server per instance, on its own loopback port (the port is
//! what `GCE_METADATA_HOST` names, so the port identifies the VM).
//!
//! As on GCE: `Metadata-Flavor: Google` is required on `/computeMetadata/` and
//! returned on every answer; a request carrying `X-Forwarded-For` is refused;
//! directories answer listings, or JSON with `?recursive=true`; tokens carry the
//! instance's access scopes whatever `?scopes=` asks for (GCE does not honour it).
//! A stopped (TERMINATED) instance runs no workload, so its server answers 503.

use crate::cloud::Cloud;
use crate::store::Instance;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use keyway_wire::google::oauth2::TokenResponse;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub struct Metadata {
    cloud: Arc<Cloud>,
    /// `PROJECT/ZONE/NAME` of the instance this server belongs to.
    key: String,
    /// The token GCE would hand out again until shortly before it expires.
    cache: Mutex<Option<Cached>>,
}

struct Cached {
    member: String,
    scopes: Vec<String>,
    token: String,
    exp: i64,
}

pub fn router(cloud: Arc<Cloud>, instance_key: String) -> axum::Router {
    let m = Arc::new(Metadata {
        cloud,
        key: instance_key,
        cache: Mutex::new(None),
    });
    axum::Router::new().fallback(handle).with_state(m)
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert("Metadata-Flavor", HeaderValue::from_static("Google"));
    h.insert(
        header::SERVER,
        HeaderValue::from_static("Metadata Server for VM"),
    );
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn text(s: impl Into<String>) -> Response {
    reply(StatusCode::OK, "application/text", s.into())
}

fn json(v: &impl serde::Serialize) -> Response {
    reply(
        StatusCode::OK,
        "application/json",
        serde_json::to_string(v).unwrap_or_default(),
    )
}

fn not_found() -> Response {
    reply(
        StatusCode::NOT_FOUND,
        "text/html; charset=UTF-8",
        "<!DOCTYPE html>\n<html><body><h1>404 Not Found</h1></body></html>\n".into(),
    )
}

fn error(status: StatusCode, msg: &str) -> Response {
    reply(status, "text/plain; charset=utf-8", format!("{msg}\n"))
}

async fn handle(AxState(m): AxState<Arc<Metadata>>, uri: Uri, headers: HeaderMap) -> Response {
    let r = m.serve(&uri, &headers);
    tracing::debug!(instance = %m.key, path = %uri.path(), status = r.status().as_u16(), "metadata");
    r
}

fn query(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

impl Metadata {
    fn serve(&self, uri: &Uri, headers: &HeaderMap) -> Response {
        if headers.contains_key("x-forwarded-for") {
            return error(
                StatusCode::FORBIDDEN,
                "Request denied: X-Forwarded-For header present; the metadata server refuses proxied requests.",
            );
        }
        let path = uri.path();
        let st = self.cloud.store.read();
        let Some(inst) = st.instances.get(&self.key) else {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "This instance no longer exists in the local cloud.",
            );
        };
        if inst.status != "RUNNING" {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "Instance {} is {}: nothing runs on a stopped VM.",
                    inst.name, inst.status
                ),
            );
        }
        if path == "/" {
            return text("computeMetadata/\n");
        }
        let Some(rest) = path.strip_prefix("/computeMetadata/v1") else {
            return not_found();
        };
        if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
            return error(
                StatusCode::FORBIDDEN,
                "Missing required header: Metadata-Flavor: Google",
            );
        }
        let q = query(uri);
        let recursive = q
            .get("recursive")
            .is_some_and(|v| v == "true" || v == "True" || v == "1");
        let alt_json = q.get("alt").is_some_and(|v| v == "json");
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        let is_dir = rest.is_empty() || rest.ends_with('/');
        let segs: Vec<&str> = rest
            .trim_end_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let project = st.project(&inst.project);
        let (project_id, number) = project
            .map(|p| (p.id.clone(), p.number))
            .unwrap_or_default();
        let sa_unique = inst
            .service_account
            .as_ref()
            .and_then(|e| st.service_accounts.get(e))
            .map(|s| s.unique_id.clone())
            .unwrap_or_default();

        // Leaves first; a directory asked for without its slash is redirected, as GCE does.
        let dir_listing = |entries: &[&str]| -> Response {
            if !is_dir {
                let mut r = reply(StatusCode::MOVED_PERMANENTLY, "text/html", String::new());
                if let Ok(v) = HeaderValue::from_str(&format!("{}/", uri.path())) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                return r;
            }
            text(entries.iter().map(|e| format!("{e}\n")).collect::<String>())
        };
        let leaf = |v: String| if alt_json { json(&v) } else { text(v) };
        match segs.as_slice() {
            [] => {
                if recursive {
                    return json(
                        &serde_json::json!({"instance": instance_json(inst, number), "project": {"projectId": project_id, "numericProjectId": number}}),
                    );
                }
                dir_listing(&["instance/", "oslogin/", "project/", "universe/"])
            }
            ["universe"] => dir_listing(&["universe-domain"]),
            ["universe", "universe-domain"] => leaf("googleapis.com".into()),
            ["project"] => {
                if recursive {
                    return json(
                        &serde_json::json!({"projectId": project_id, "numericProjectId": number, "attributes": {}}),
                    );
                }
                dir_listing(&["attributes/", "numeric-project-id", "project-id"])
            }
            ["project", "project-id"] => leaf(project_id),
            ["project", "numeric-project-id"] => leaf(number.to_string()),
            ["project", "attributes"] => {
                if recursive {
                    json(&serde_json::json!({}))
                } else {
                    dir_listing(&[])
                }
            }
            ["instance"] => {
                if recursive {
                    return json(&instance_json(inst, number));
                }
                dir_listing(&[
                    "attributes/",
                    "hostname",
                    "id",
                    "machine-type",
                    "name",
                    "service-accounts/",
                    "zone",
                ])
            }
            ["instance", "id"] => leaf(inst.id.to_string()),
            ["instance", "name"] => leaf(inst.name.clone()),
            ["instance", "hostname"] => leaf(format!(
                "{}.{}.c.{}.internal",
                inst.name, inst.zone, project_id
            )),
            ["instance", "zone"] => leaf(format!("projects/{number}/zones/{}", inst.zone)),
            ["instance", "machine-type"] => leaf(format!(
                "projects/{number}/machineTypes/{}",
                inst.machine_type
            )),
            ["instance", "attributes"] => {
                if recursive {
                    return json(&inst.attributes);
                }
                let keys: Vec<&str> = inst.attributes.keys().map(String::as_str).collect();
                dir_listing(&keys)
            }
            ["instance", "attributes", k] => match inst.attributes.get(*k) {
                Some(v) => leaf(v.clone()),
                None => not_found(),
            },
            ["instance", "service-accounts"] => {
                let Some(email) = &inst.service_account else {
                    return if recursive {
                        json(&serde_json::json!({}))
                    } else {
                        dir_listing(&[])
                    };
                };
                if recursive {
                    let one = sa_json(inst);
                    return json(&serde_json::json!({ "default": one, email.as_str(): one }));
                }
                let e = format!("{email}/");
                dir_listing(&["default/", &e])
            }
            ["instance", "service-accounts", who, rest @ ..] => {
                let Some(email) = inst
                    .service_account
                    .as_ref()
                    .filter(|e| *who == "default" || *who == e.as_str())
                else {
                    return not_found();
                };
                match rest {
                    [] => {
                        if recursive {
                            return json(&sa_json(inst));
                        }
                        dir_listing(&["aliases", "email", "identity", "scopes", "token"])
                    }
                    ["aliases"] => text("default\n"),
                    ["email"] => leaf(email.clone()),
                    ["scopes"] => {
                        if alt_json {
                            return json(&inst.scopes);
                        }
                        text(
                            inst.scopes
                                .iter()
                                .map(|s| format!("{s}\n"))
                                .collect::<String>(),
                        )
                    }
                    ["token"] => self.token(inst, email),
                    ["identity"] => self.identity(inst, email, &sa_unique, &q, &project_id, number),
                    _ => not_found(),
                }
            }
            _ => not_found(),
        }
    }

    fn token(&self, inst: &Instance, email: &str) -> Response {
        let member = format!("serviceAccount:{email}");
        let now = self.cloud.clock.now_secs();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        // GCE hands out the same token until about five minutes before it expires.
        if let Some(c) = cache.as_ref()
            && c.member == member
            && c.scopes == inst.scopes
            && c.exp - now > 300
        {
            return json(&TokenResponse {
                access_token: c.token.clone(),
                expires_in: c.exp - now,
                token_type: "Bearer".into(),
                scope: None,
                id_token: None,
                refresh_token: None,
            });
        }
        let (token, life) = self.cloud.mint_access_token(&member, &inst.scopes, email);
        *cache = Some(Cached {
            member,
            scopes: inst.scopes.clone(),
            token: token.clone(),
            exp: now + life,
        });
        json(&TokenResponse {
            access_token: token,
            expires_in: life,
            token_type: "Bearer".into(),
            scope: None,
            id_token: None,
            refresh_token: None,
        })
    }

    fn identity(
        &self,
        inst: &Instance,
        email: &str,
        unique: &str,
        q: &BTreeMap<String, String>,
        project_id: &str,
        number: u64,
    ) -> Response {
        let Some(aud) = q.get("audience").filter(|a| !a.is_empty()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "non-empty audience parameter required",
            );
        };
        let now = self.cloud.clock.now_secs();
        // As GCE: `azp` and `sub` are the account's unique id; the standard
        // format stops there, `format=full` adds the email and the instance.
        let mut claims = serde_json::json!({
            "iss": crate::google::oauth2::ISSUER, "aud": aud, "azp": unique, "sub": unique,
            "iat": now, "exp": now + self.cloud.cap_lifetime(3600),
        });
        if q.get("format").is_some_and(|f| f == "full") {
            claims["email"] = serde_json::json!(email);
            claims["email_verified"] = serde_json::json!(true);
            claims["google"] = serde_json::json!({"compute_engine": {
                "instance_creation_timestamp": inst.create_ms / 1000,
                "instance_id": inst.id.to_string(),
                "instance_name": inst.name,
                "project_id": project_id,
                "project_number": number,
                "zone": inst.zone,
            }});
        }
        match self.cloud.sign_id_token(claims) {
            Ok(t) => text(t),
            Err(e) => {
                tracing::error!(%e, "signing an identity token");
                error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

fn sa_json(inst: &Instance) -> serde_json::Value {
    serde_json::json!({"aliases": ["default"], "email": inst.service_account, "scopes": inst.scopes})
}

fn instance_json(inst: &Instance, number: u64) -> serde_json::Value {
    let mut sas = serde_json::Map::new();
    if let Some(e) = &inst.service_account {
        sas.insert("default".into(), sa_json(inst));
        sas.insert(e.clone(), sa_json(inst));
    }
    serde_json::json!({
        "attributes": inst.attributes, "id": inst.id, "name": inst.name,
        "zone": format!("projects/{number}/zones/{}", inst.zone),
        "machineType": format!("projects/{number}/machineTypes/{}", inst.machine_type),
        "serviceAccounts": sas,
    })
}
