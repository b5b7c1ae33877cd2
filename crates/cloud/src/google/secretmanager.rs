//! Secret Manager v1 over REST: secrets, versions, payload access, IAM policies.
//! Resource names in responses use the project number, as Google's do; requests
//! may name the project by id or number.

use super::{ApiError, CLOUD_PLATFORM, Reply, Req, authenticate, ok_json, require_scope};
use crate::cloud::{Caller, Cloud};
use crate::iam;
use crate::store::{Change, Project, SecretEntry, SecretMeta, State, Version};
use axum::http::Method;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use keyway_wire::google::error::{ErrorDetail, FieldViolation};
use keyway_wire::google::iam::{
    Policy, SetIamPolicyRequest, TestIamPermissionsRequest, TestIamPermissionsResponse,
};
use keyway_wire::google::secretmanager as sm;
use keyway_wire::google::secretmanager::VersionState;
use serde_json::Value;
use std::collections::BTreeMap;

const SERVICE: &str = "secretmanager.googleapis.com";
pub const MAX_PAYLOAD: usize = 65536;
const MAX_PAGE: usize = 25000;

fn rpc(method: &str) -> String {
    format!("google.cloud.secretmanager.v1.SecretManagerService.{method}")
}

/// Routes `/v1/projects/{p}/secrets[/{s}[/versions[/{v}]]][:verb]`.
pub fn dispatch(cloud: &Cloud, req: &Req) -> Reply {
    let n = req.segments.len();
    let verb = req.verb.as_deref();
    let m = &req.method;
    let op = match (n, verb, m) {
        (4, None, &Method::POST) => "CreateSecret",
        (4, None, &Method::GET) => "ListSecrets",
        (5, None, &Method::GET) => "GetSecret",
        (5, None, &Method::PATCH) => "UpdateSecret",
        (5, None, &Method::DELETE) => "DeleteSecret",
        (5, Some("addVersion"), &Method::POST) => "AddSecretVersion",
        (5, Some("getIamPolicy"), &Method::GET | &Method::POST) => "GetIamPolicy",
        (5, Some("setIamPolicy"), &Method::POST) => "SetIamPolicy",
        (5, Some("testIamPermissions"), &Method::POST) => "TestIamPermissions",
        (6, None, &Method::GET) if req.seg(5) == "versions" => "ListSecretVersions",
        (7, None, &Method::GET) if req.seg(5) == "versions" => "GetSecretVersion",
        (7, Some("access"), &Method::GET) if req.seg(5) == "versions" => "AccessSecretVersion",
        (7, Some("enable"), &Method::POST) if req.seg(5) == "versions" => "EnableSecretVersion",
        (7, Some("disable"), &Method::POST) if req.seg(5) == "versions" => "DisableSecretVersion",
        (7, Some("destroy"), &Method::POST) if req.seg(5) == "versions" => "DestroySecretVersion",
        _ => return Err(ApiError::unknown_path(&req.method, &req.path)),
    };
    let caller = authenticate(cloud, req, SERVICE, &rpc(op))?;
    require_scope(&caller, &[CLOUD_PLATFORM], SERVICE, &rpc(op))?;
    let ctx = Ctx {
        cloud,
        req,
        caller: &caller,
        project_ref: req.seg(2),
    };
    match op {
        "CreateSecret" => ctx.create_secret(),
        "ListSecrets" => ctx.list_secrets(),
        "GetSecret" => ctx.get_secret(),
        "UpdateSecret" => ctx.update_secret(),
        "DeleteSecret" => ctx.delete_secret(),
        "AddSecretVersion" => ctx.add_version(),
        "GetIamPolicy" => ctx.get_iam_policy(),
        "SetIamPolicy" => ctx.set_iam_policy(),
        "TestIamPermissions" => ctx.test_iam_permissions(),
        "ListSecretVersions" => ctx.list_versions(),
        "GetSecretVersion" => ctx.get_version(),
        "AccessSecretVersion" => ctx.access(),
        "EnableSecretVersion" => ctx.set_state(VersionState::Enabled),
        "DisableSecretVersion" => ctx.set_state(VersionState::Disabled),
        _ => ctx.set_state(VersionState::Destroyed),
    }
}

struct Ctx<'a> {
    cloud: &'a Cloud,
    req: &'a Req,
    caller: &'a Caller,
    project_ref: &'a str,
}

/// Does the caller hold `perm` on the secret (or its project)?
fn allowed(
    p: &Project,
    secret: Option<&SecretEntry>,
    who: &iam::Principal<'_>,
    perm: &str,
) -> bool {
    iam::grants(&p.iam, who, perm) || secret.is_some_and(|s| iam::grants(&s.meta.iam, who, perm))
}

fn secret_name(p: &Project, id: &str) -> String {
    format!("projects/{}/secrets/{id}", p.number)
}

fn etag(a: i64, b: u64) -> String {
    format!("\"{:x}{:x}\"", a, b)
}

fn render_secret(p: &Project, m: &SecretMeta) -> sm::Secret {
    sm::Secret {
        name: secret_name(p, &m.id),
        replication: Some(m.replication.clone()),
        create_time: crate::time::rfc3339_millis(m.create_ms),
        labels: m.labels.clone(),
        annotations: m.annotations.clone(),
        version_aliases: m.version_aliases.clone(),
        etag: etag(m.create_ms, m.revision),
    }
}

fn render_version(p: &Project, secret: &str, v: &Version) -> sm::SecretVersion {
    sm::SecretVersion {
        name: format!("{}/versions/{}", secret_name(p, secret), v.number),
        create_time: crate::time::rfc3339_millis(v.create_ms),
        destroy_time: v.destroy_ms.map(crate::time::rfc3339_millis),
        state: v.state,
        replication_status: Some(serde_json::json!({"automatic": {}})),
        etag: etag(
            v.create_ms,
            v.state.number() as u64 + v.destroy_ms.unwrap_or(0) as u64,
        ),
        client_specified_payload_checksum: v.client_checksum,
    }
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    STANDARD
        .decode(s)
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .ok()
}

/// A simple filter: space- or AND-separated terms `key:value` (contains) or
/// `key=value` (equals), keys `name`, `state`, `labels.KEY` (value `*` = has).
struct Filter(Vec<(String, bool, String)>);

impl Filter {
    fn parse(s: Option<&str>) -> Result<Filter, ApiError> {
        let mut terms = Vec::new();
        for t in s.unwrap_or("").split_whitespace().filter(|t| *t != "AND") {
            let (k, exact, v) = if let Some((k, v)) = t.split_once('=') {
                (k, true, v)
            } else if let Some((k, v)) = t.split_once(':') {
                (k, false, v)
            } else {
                return Err(ApiError::invalid_argument(format!(
                    "Invalid filter: term '{t}' must be key:value or key=value."
                )));
            };
            if !(k == "name" || k == "state" || k.starts_with("labels.")) {
                return Err(ApiError::invalid_argument(format!(
                    "Invalid filter: unsupported field '{k}'."
                )));
            }
            terms.push((k.to_owned(), exact, v.trim_matches('"').to_owned()));
        }
        Ok(Filter(terms))
    }

    fn matches(&self, name: &str, state: Option<&str>, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|(k, exact, v)| {
            let field: Option<&str> = match k.as_str() {
                "name" => Some(name),
                "state" => state,
                l => labels.get(&l["labels.".len()..]).map(String::as_str),
            };
            match field {
                None => false,
                Some(_) if v == "*" => true,
                Some(f) if *exact => f == v,
                Some(f) => f.contains(v.as_str()),
            }
        })
    }
}

fn page_size(req: &Req) -> Result<usize, ApiError> {
    match req.q("pageSize") {
        None | Some("") | Some("0") => Ok(MAX_PAGE),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n <= MAX_PAGE => Ok(n),
            _ => Err(ApiError::invalid_argument(format!(
                "page_size must be between 0 and {MAX_PAGE}; got {s}."
            ))),
        },
    }
}

/// One page of `matching`, in listing order: at most `size` of the items
/// past the page token (those `past` accepts), and the next page's token
/// (`token` of the page's last item) when more follow, else empty.
fn one_page<T>(
    matching: Vec<T>,
    size: usize,
    past: impl Fn(&T) -> bool,
    token: impl Fn(&T) -> String,
) -> (Vec<T>, String) {
    let mut page: Vec<T> = matching
        .into_iter()
        .filter(|x| past(x))
        .take(size + 1)
        .collect();
    let more = page.len() > size;
    page.truncate(size);
    let next = if more {
        page.last().map(token).unwrap_or_default()
    } else {
        String::new()
    };
    (page, next)
}

fn page_start(req: &Req) -> Result<Option<String>, ApiError> {
    match req.q("pageToken").filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(Some)
            .ok_or_else(|| ApiError::invalid_argument("The page token is invalid.")),
    }
}

impl Ctx<'_> {
    fn who(&self) -> iam::Principal<'_> {
        self.caller.principal()
    }

    /// The project and (if it exists) the secret, after checking `perm`.
    /// A caller without the permission gets 403 whether or not it exists.
    fn secret<'s>(
        &self,
        st: &'s State,
        perm: &str,
        resource: &str,
    ) -> Result<(&'s Project, Option<&'s SecretEntry>), ApiError> {
        let p = st
            .project(self.project_ref)
            .ok_or_else(|| ApiError::permission_denied(perm, resource))?;
        let s = p.secrets.get(self.req.seg(4));
        if !allowed(p, s, &self.who(), perm) {
            return Err(ApiError::permission_denied(perm, resource));
        }
        Ok((p, s))
    }

    fn existing<'s>(
        &self,
        st: &'s State,
        perm: &str,
    ) -> Result<(&'s Project, &'s SecretEntry), ApiError> {
        let resource = format!("projects/{}/secrets/{}", self.project_ref, self.req.seg(4));
        let (p, s) = self.secret(st, perm, &resource)?;
        let s = s.ok_or_else(|| {
            ApiError::not_found(format!(
                "Secret [{}] not found.",
                secret_name(p, self.req.seg(4))
            ))
        })?;
        Ok((p, s))
    }

    fn project_with<'s>(&self, st: &'s State, perm: &str) -> Result<&'s Project, ApiError> {
        let resource = format!("projects/{}", self.project_ref);
        let p = st
            .project(self.project_ref)
            .ok_or_else(|| ApiError::permission_denied(perm, &resource))?;
        if !iam::grants(&p.iam, &self.who(), perm) {
            return Err(ApiError::permission_denied(perm, &resource));
        }
        Ok(p)
    }

    fn create_secret(&self) -> Reply {
        let id = self.req.q("secretId").unwrap_or("").to_owned();
        let body: sm::Secret = self.req.json()?;
        let now = self.cloud.clock.now_millis();
        let (p, meta) = self.cloud.store.write(|st| -> Result<_, ApiError> {
            let p = self.project_with(st, "secretmanager.secrets.create")?;
            if !crate::world::valid_secret_id(&id) {
                return Err(ApiError::invalid_argument(format!(
                    "Secret ID [{id}] is invalid: it must be 1 to 255 characters of letters, numbers, hyphens and underscores."
                )));
            }
            let replication = match &body.replication {
                Some(r) if r.get("automatic").is_some() || r.get("userManaged").is_some() || r.get("user_managed").is_some() => r.clone(),
                _ => return Err(ApiError::invalid_argument("Secret.replication must be specified (automatic or userManaged).")),
            };
            if p.secrets.contains_key(&id) {
                return Err(ApiError::already_exists(format!("Secret [{}] already exists.", secret_name(p, &id))));
            }
            validate_labels(&body.labels)?;
            validate_annotations(&body.annotations)?;
            let meta = SecretMeta {
                id: id.clone(),
                create_ms: now,
                labels: body.labels.clone(),
                annotations: body.annotations.clone(),
                version_aliases: BTreeMap::new(),
                replication,
                revision: 1,
                iam: Policy::default(),
            };
            Ok((vec![Change::PutSecret { project: p.id.clone(), meta: meta.clone() }], (p.clone(), meta)))
        })?;
        Ok(ok_json(&render_secret(&p, &meta), self.req.enums_as_ints()))
    }

    fn list_secrets(&self) -> Reply {
        let st = self.cloud.store.read();
        let p = self.project_with(&st, "secretmanager.secrets.list")?;
        let filter = Filter::parse(self.req.q("filter"))?;
        let size = page_size(self.req)?;
        let start = page_start(self.req)?;
        let matching: Vec<&SecretEntry> = p
            .secrets
            .values()
            .filter(|s| filter.matches(&s.meta.id, None, &s.meta.labels))
            .collect();
        let total = matching.len();
        let (page, next_page_token) = one_page(
            matching,
            size,
            |s| {
                start
                    .as_ref()
                    .is_none_or(|a| s.meta.id.as_str() > a.as_str())
            },
            |s| URL_SAFE_NO_PAD.encode(&s.meta.id),
        );
        let resp = sm::ListSecretsResponse {
            secrets: page.iter().map(|s| render_secret(p, &s.meta)).collect(),
            next_page_token,
            total_size: total as i32,
        };
        Ok(ok_json(&resp, self.req.enums_as_ints()))
    }

    fn get_secret(&self) -> Reply {
        let st = self.cloud.store.read();
        let (p, s) = self.existing(&st, "secretmanager.secrets.get")?;
        Ok(ok_json(
            &render_secret(p, &s.meta),
            self.req.enums_as_ints(),
        ))
    }

    fn update_secret(&self) -> Reply {
        let body: sm::Secret = self.req.json()?;
        let mask = self.req.q("updateMask").unwrap_or("").to_owned();
        if mask.is_empty() {
            return Err(ApiError::invalid_argument("update_mask is required."));
        }
        let (p, meta) = self.cloud.store.write(|st| -> Result<_, ApiError> {
            let (p, s) = self.existing(st, "secretmanager.secrets.update")?;
            if !body.etag.is_empty() && body.etag != etag(s.meta.create_ms, s.meta.revision) {
                return Err(ApiError::aborted("The etag provided in the request does not match the secret's current etag."));
            }
            let mut m = s.meta.clone();
            for field in mask.split(',').map(str::trim) {
                match field {
                    "labels" => {
                        validate_labels(&body.labels)?;
                        m.labels = body.labels.clone();
                    }
                    "annotations" => {
                        validate_annotations(&body.annotations)?;
                        m.annotations = body.annotations.clone();
                    }
                    "version_aliases" | "versionAliases" => {
                        for (alias, v) in &body.version_aliases {
                            let ok = v.parse::<usize>().is_ok_and(|n| n >= 1 && n <= s.versions.len());
                            if !ok || alias == "latest" {
                                return Err(ApiError::invalid_argument(format!("Version alias '{alias}' must name an existing version number and not be 'latest'.")));
                            }
                        }
                        m.version_aliases = body.version_aliases.clone();
                    }
                    other => return Err(ApiError::invalid_argument(format!("Invalid update_mask path '{other}'. Updatable fields: labels, annotations, version_aliases."))),
                }
            }
            m.revision += 1;
            Ok((vec![Change::PutSecret { project: p.id.clone(), meta: m.clone() }], (p.clone(), m)))
        })?;
        Ok(ok_json(&render_secret(&p, &meta), self.req.enums_as_ints()))
    }

    fn delete_secret(&self) -> Reply {
        let want = self.req.q("etag").map(str::to_owned);
        self.cloud.store.write(|st| -> Result<_, ApiError> {
            let (p, s) = self.existing(st, "secretmanager.secrets.delete")?;
            if let Some(e) = want.as_deref().filter(|e| !e.is_empty())
                && e != etag(s.meta.create_ms, s.meta.revision)
            {
                return Err(ApiError::aborted(
                    "The etag provided in the request does not match the secret's current etag.",
                ));
            }
            Ok((
                vec![Change::DeleteSecret {
                    project: p.id.clone(),
                    secret: s.meta.id.clone(),
                }],
                (),
            ))
        })?;
        Ok(ok_json(&serde_json::json!({}), false))
    }

    fn add_version(&self) -> Reply {
        let body: sm::AddSecretVersionRequest = self.req.json()?;
        let payload = body
            .payload
            .ok_or_else(|| ApiError::invalid_argument("payload is required."))?;
        let data = zeroize::Zeroizing::new(decode_b64(&payload.data).ok_or_else(|| {
            ApiError::invalid_argument("Invalid value at 'payload.data': not valid base64.")
        })?);
        if data.len() > MAX_PAYLOAD {
            return Err(ApiError::invalid_argument(format!(
                "Secret Payload cannot be larger than 64KiB ({} bytes given).",
                data.len()
            )));
        }
        let crc = crc32c::crc32c(&data);
        if let Some(given) = payload.data_crc32c
            && given != crc as i64
        {
            return Err(ApiError::invalid_argument(
                "Checksum mismatch: payload.data_crc32c does not match the CRC32C of payload.data. The payload was not stored.",
            ));
        }
        let now = self.cloud.clock.now_millis();
        let (p, id, v) = self.cloud.store.write(|st| -> Result<_, ApiError> {
            let (p, s) = self.existing(st, "secretmanager.versions.add")?;
            let number = s.versions.len() as u64 + 1;
            let v = Version {
                number,
                create_ms: now,
                state: VersionState::Enabled,
                destroy_ms: None,
                crc32c: crc,
                client_checksum: payload.data_crc32c.is_some(),
                sealed: self
                    .cloud
                    .store
                    .seal_payload(&p.id, &s.meta.id, number, &data)?,
            };
            Ok(put_version(p, s, v))
        })?;
        Ok(ok_json(
            &render_version(&p, &id, &v),
            self.req.enums_as_ints(),
        ))
    }

    /// Resolves `versions/{v}` (a number, `latest`, or an alias) after `perm`.
    fn version<'s>(
        &self,
        st: &'s State,
        perm: &str,
    ) -> Result<(&'s Project, &'s SecretEntry, &'s Version), ApiError> {
        let v = self.req.seg(6);
        let resource = format!(
            "projects/{}/secrets/{}/versions/{v}",
            self.project_ref,
            self.req.seg(4)
        );
        let (p, s) = self.secret(st, perm, &resource)?;
        let s = s.ok_or_else(|| {
            ApiError::not_found(format!(
                "Secret [{}] not found or has no versions.",
                secret_name(p, self.req.seg(4))
            ))
        })?;
        let number: u64 = if v == "latest" {
            s.versions.len() as u64
        } else if let Ok(n) = v.parse::<u64>() {
            if n == 0 {
                return Err(ApiError::invalid_argument(format!(
                    "Invalid version id [{v}]: version numbers start at 1."
                )));
            }
            n
        } else if let Some(n) = s.meta.version_aliases.get(v) {
            n.parse().unwrap_or(0)
        } else if v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !v.is_empty()
        {
            return Err(ApiError::not_found(format!(
                "Secret Version alias [{v}] not found for secret [{}].",
                secret_name(p, &s.meta.id)
            )));
        } else {
            return Err(ApiError::invalid_argument(format!(
                "Invalid version id [{v}]."
            )));
        };
        match s.versions.get((number as usize).wrapping_sub(1)) {
            Some(ver) => Ok((p, s, ver)),
            None if v == "latest" => Err(ApiError::not_found(format!(
                "Secret [{}] not found or has no versions.",
                secret_name(p, &s.meta.id)
            ))),
            None => Err(ApiError::not_found(format!(
                "Secret Version [{}/versions/{number}] not found.",
                secret_name(p, &s.meta.id)
            ))),
        }
    }

    fn list_versions(&self) -> Reply {
        let st = self.cloud.store.read();
        let (p, s) = self.existing(&st, "secretmanager.versions.list")?;
        let filter = Filter::parse(self.req.q("filter"))?;
        let size = page_size(self.req)?;
        let start: Option<u64> = match page_start(self.req)? {
            None => None,
            Some(t) => Some(
                t.parse()
                    .map_err(|_| ApiError::invalid_argument("The page token is invalid."))?,
            ),
        };
        // Newest first, as Secret Manager lists them.
        let matching: Vec<&Version> = s
            .versions
            .iter()
            .rev()
            .filter(|v| {
                filter.matches(
                    &v.number.to_string(),
                    Some(v.state.name()),
                    &BTreeMap::new(),
                )
            })
            .collect();
        let total = matching.len();
        let (page, next_page_token) = one_page(
            matching,
            size,
            |v| start.is_none_or(|a| v.number < a),
            |v| URL_SAFE_NO_PAD.encode(v.number.to_string()),
        );
        let resp = sm::ListSecretVersionsResponse {
            versions: page
                .iter()
                .map(|v| render_version(p, &s.meta.id, v))
                .collect(),
            next_page_token,
            total_size: total as i32,
        };
        Ok(ok_json(&resp, self.req.enums_as_ints()))
    }

    fn get_version(&self) -> Reply {
        let st = self.cloud.store.read();
        let (p, s, v) = self.version(&st, "secretmanager.versions.get")?;
        Ok(ok_json(
            &render_version(p, &s.meta.id, v),
            self.req.enums_as_ints(),
        ))
    }

    fn access(&self) -> Reply {
        let st = self.cloud.store.read();
        let (p, s, v) = self.version(&st, "secretmanager.versions.access")?;
        let name = format!("{}/versions/{}", secret_name(p, &s.meta.id), v.number);
        if v.state != VersionState::Enabled {
            return Err(ApiError::failed_precondition(format!(
                "Secret Version [{name}] is in {} state.",
                v.state.name()
            )));
        }
        let plain = self.cloud.store.open_payload(&p.id, &s.meta.id, v)?;
        drop(st);
        let resp = sm::AccessSecretVersionResponse {
            name,
            payload: sm::SecretPayload {
                data: STANDARD.encode(plain.as_slice()),
                data_crc32c: Some(v_crc(&plain)),
            },
        };
        let out = ok_json(&resp, false);
        let mut data = resp.payload.data;
        zeroize::Zeroize::zeroize(&mut data);
        Ok(out)
    }

    fn set_state(&self, to: VersionState) -> Reply {
        let body: sm::VersionActionRequest = self.req.json()?;
        let perm = match to {
            VersionState::Enabled => "secretmanager.versions.enable",
            VersionState::Disabled => "secretmanager.versions.disable",
            _ => "secretmanager.versions.destroy",
        };
        let now = self.cloud.clock.now_millis();
        let (p, id, v) = self.cloud.store.write(|st| -> Result<_, ApiError> {
            let (p, s, v) = self.version(st, perm)?;
            let current = render_version(p, &s.meta.id, v);
            if !body.etag.is_empty() && body.etag != current.etag {
                return Err(ApiError::aborted(
                    "The etag provided in the request does not match the version's current etag.",
                ));
            }
            if v.state == VersionState::Destroyed {
                return Err(ApiError::failed_precondition(format!(
                    "Secret Version [{}] is in DESTROYED state.",
                    current.name
                )));
            }
            let mut nv = v.clone();
            nv.state = to;
            if to == VersionState::Destroyed {
                nv.destroy_ms = Some(now);
                nv.sealed = Vec::new();
            }
            Ok(put_version(p, s, nv))
        })?;
        Ok(ok_json(
            &render_version(&p, &id, &v),
            self.req.enums_as_ints(),
        ))
    }

    fn get_iam_policy(&self) -> Reply {
        let st = self.cloud.store.read();
        let (_, s) = self.existing(&st, "secretmanager.secrets.getIamPolicy")?;
        Ok(ok_json(&with_etag(&s.meta.iam), false))
    }

    fn set_iam_policy(&self) -> Reply {
        let body = set_iam_policy_request(self.req)?;
        let policy = self.cloud.store.write(|st| -> Result<_, ApiError> {
            let (p, s) = self.existing(st, "secretmanager.secrets.setIamPolicy")?;
            let new = checked_policy_update(&s.meta.iam, body.policy.clone())?;
            let mut m = s.meta.clone();
            m.iam = new.clone();
            m.revision += 1;
            Ok((
                vec![Change::PutSecret {
                    project: p.id.clone(),
                    meta: m,
                }],
                new,
            ))
        })?;
        Ok(ok_json(&with_etag(&policy), false))
    }

    fn test_iam_permissions(&self) -> Reply {
        let body: TestIamPermissionsRequest = self.req.json()?;
        let st = self.cloud.store.read();
        let granted = match st.project(self.project_ref) {
            Some(p) => {
                let s = p.secrets.get(self.req.seg(4));
                body.permissions
                    .iter()
                    .filter(|perm| allowed(p, s, &self.who(), perm))
                    .cloned()
                    .collect()
            }
            None => Vec::new(),
        };
        Ok(ok_json(
            &TestIamPermissionsResponse {
                permissions: granted,
            },
            false,
        ))
    }
}

fn v_crc(b: &[u8]) -> i64 {
    crc32c::crc32c(b) as i64
}

fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if labels.len() > 64 {
        return Err(ApiError::invalid_argument(
            "A secret can have at most 64 labels.",
        ));
    }
    for (k, v) in labels {
        let ok_k = !k.is_empty()
            && k.len() <= 63
            && k.starts_with(|c: char| c.is_ascii_lowercase())
            && k.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        let ok_v = v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok_k || !ok_v {
            return Err(ApiError::invalid_argument(format!(
                "Invalid label '{k}': keys and values are lowercase letters, digits, - and _, at most 63 characters; keys start with a letter."
            )));
        }
    }
    Ok(())
}

/// Total size of a secret's annotation keys and values: less than 16 KiB.
const MAX_ANNOTATIONS_BYTES: usize = 16 * 1024;

/// Secret Manager's documented annotation rules: keys of 1 to 63 characters
/// (at most 128 bytes of UTF-8) that begin and end with a letter or digit
/// and hold only letters, digits, `-`, `_` and `.`; keys and values together
/// under 16 KiB.
fn validate_annotations(a: &BTreeMap<String, String>) -> Result<(), ApiError> {
    for k in a.keys() {
        let alnum = |c: char| c.is_ascii_alphanumeric();
        let ok = (1..=63).contains(&k.chars().count())
            && k.len() <= 128
            && k.starts_with(alnum)
            && k.ends_with(alnum)
            && k.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(ApiError::invalid_argument(format!(
                "Invalid annotation key '{k}': keys are 1 to 63 characters, begin and end with a letter or digit, and hold only letters, digits, -, _ and ."
            )));
        }
    }
    let size: usize = a.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size >= MAX_ANNOTATIONS_BYTES {
        return Err(ApiError::invalid_argument(format!(
            "The total size of annotation keys and values must be less than 16KiB; it is {size} bytes."
        )));
    }
    Ok(())
}

/// The policy's etag: a hash of its content, so any change changes it.
pub fn policy_etag(p: &Policy) -> String {
    let mut clean = p.clone();
    clean.etag.clear();
    let h = crate::crypto::sha256(&serde_json::to_vec(&clean).unwrap_or_default());
    STANDARD.encode(&h[..8])
}

pub fn with_etag(p: &Policy) -> Policy {
    let mut out = p.clone();
    out.etag = policy_etag(p);
    if out.version == 0 {
        out.version = 1;
    }
    out
}

/// Do two policy etags name the same bytes? An etag is `bytes` on the wire:
/// gcloud's generated clients send back, URL-safe, the base64 they received.
fn same_etag(given: &str, current: &str) -> bool {
    let bytes = |s: &str| decode_b64(s).unwrap_or_else(|| s.as_bytes().to_vec());
    bytes(given) == bytes(current)
}

/// The fields of `SetIamPolicyRequest` and what it holds, as Google's JSON
/// parser knows them (both the JSON and the proto spelling).
const SET_IAM_POLICY_FIELDS: &[&str] = &["policy", "updateMask", "update_mask"];
const POLICY_FIELDS: &[&str] = &[
    "version",
    "bindings",
    "auditConfigs",
    "audit_configs",
    "etag",
];
const BINDING_FIELDS: &[&str] = &["role", "members", "condition"];
const EXPR_FIELDS: &[&str] = &["expression", "title", "description", "location"];
const AUDIT_CONFIG_FIELDS: &[&str] = &["service", "auditLogConfigs", "audit_log_configs"];
const AUDIT_LOG_CONFIG_FIELDS: &[&str] =
    &["logType", "log_type", "exemptedMembers", "exempted_members"];

/// Google refuses a JSON field it does not know, naming it and where it was
/// (`Unknown name "x" at 'policy.bindings[0]': Cannot find field.`).
fn unknown_name(name: &str, at: &str) -> ApiError {
    let message = if at.is_empty() {
        format!("Invalid JSON payload received. Unknown name \"{name}\": Cannot find field.")
    } else {
        format!(
            "Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field."
        )
    };
    let mut e = ApiError::invalid_argument(message.clone());
    e.body = e.body.with_detail(ErrorDetail::BadRequest {
        field_violations: vec![FieldViolation {
            field: at.to_owned(),
            description: message,
        }],
    });
    e
}

/// The first field of `v` (an object at `at`) that is not in `known`.
fn check_fields(v: &Value, at: &str, known: &[&str]) -> Result<(), ApiError> {
    if let Value::Object(m) = v
        && let Some(k) = m.keys().find(|k| !known.contains(&k.as_str()))
    {
        return Err(unknown_name(k, at));
    }
    Ok(())
}

fn check_list(
    v: Option<&Value>,
    at: &str,
    each: impl Fn(&Value, &str) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    if let Some(Value::Array(items)) = v {
        for (i, item) in items.iter().enumerate() {
            each(item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// A setIamPolicy body as Google reads it: every field must be known (an
/// unknown one is refused, never ignored: a policy of unknown fields would
/// otherwise empty the policy) and `policy` is required.
pub fn set_iam_policy_request(req: &super::Req) -> Result<SetIamPolicyRequest, ApiError> {
    let body: Value = req.json()?;
    check_fields(&body, "", SET_IAM_POLICY_FIELDS)?;
    let Some(policy) = body.get("policy").filter(|p| !p.is_null()) else {
        let mut e = ApiError::invalid_argument("Request contains an invalid argument.");
        e.body = e.body.with_detail(ErrorDetail::BadRequest {
            field_violations: vec![FieldViolation {
                field: "policy".into(),
                description: "The policy to set is required.".into(),
            }],
        });
        return Err(e);
    };
    check_fields(policy, "policy", POLICY_FIELDS)?;
    check_list(policy.get("bindings"), "policy.bindings", |b, at| {
        check_fields(b, at, BINDING_FIELDS)?;
        if let Some(c) = b.get("condition") {
            check_fields(c, &format!("{at}.condition"), EXPR_FIELDS)?;
        }
        Ok(())
    })?;
    let audit = policy.get("auditConfigs").or(policy.get("audit_configs"));
    check_list(audit, "policy.audit_configs", |a, at| {
        check_fields(a, at, AUDIT_CONFIG_FIELDS)?;
        let logs = a.get("auditLogConfigs").or(a.get("audit_log_configs"));
        check_list(logs, &format!("{at}.audit_log_configs"), |l, at| {
            check_fields(l, at, AUDIT_LOG_CONFIG_FIELDS)
        })
    })?;
    serde_json::from_value(body)
        .map_err(|e| ApiError::invalid_argument(format!("Invalid JSON payload received. {e}")))
}

/// setIamPolicy semantics shared by every resource: a stale etag is ABORTED,
/// an invalid policy INVALID_ARGUMENT.
pub fn checked_policy_update(current: &Policy, mut new: Policy) -> Result<Policy, ApiError> {
    if !new.etag.is_empty() && !same_etag(&new.etag, &policy_etag(current)) {
        return Err(ApiError::aborted(
            "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.",
        ));
    }
    iam::validate_policy(&new).map_err(ApiError::invalid_argument)?;
    new.etag.clear();
    Ok(new)
}

/// The store's change that puts `v` as a version of the secret `s` of `p`,
/// and what the answer renders: the project, the secret id and the version.
fn put_version(
    p: &Project,
    s: &SecretEntry,
    v: Version,
) -> (Vec<Change>, (Project, String, Version)) {
    let change = Change::PutVersion {
        project: p.id.clone(),
        secret: s.meta.id.clone(),
        version: v.clone(),
    };
    (vec![change], (p.clone(), s.meta.id.clone(), v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_compare_as_bytes_in_either_base64_alphabet() {
        assert!(same_etag("_GwznjUN5uc=", "/GwznjUN5uc="));
        assert!(same_etag("/GwznjUN5uc=", "/GwznjUN5uc="));
        assert!(!same_etag("_GwznjUN5uc=", "-GwznjUN5uc="));
        assert!(!same_etag("not base64!", "/GwznjUN5uc="));
        let mut p = Policy::default();
        iam::add_binding(&mut p, "roles/viewer", "user:a@b.c");
        let stale = checked_policy_update(
            &p,
            Policy {
                etag: "AAAAAAAAAAA=".into(),
                ..p.clone()
            },
        )
        .unwrap_err();
        assert_eq!(stale.status.as_u16(), 409);
        let url_safe = policy_etag(&p).replace('/', "_").replace('+', "-");
        assert!(
            checked_policy_update(
                &p,
                Policy {
                    etag: url_safe,
                    ..p.clone()
                }
            )
            .is_ok()
        );
    }
}
