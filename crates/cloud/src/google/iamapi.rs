//! IAM v1, service accounts: `get` and `list` (what `gcloud iam
//! service-accounts describe/list` read), the account's own IAM policy
//! (`getIamPolicy`, `setIamPolicy`, `testIamPermissions`: who may act as it,
//! mint its tokens or change it, which is where `gcloud iam service-accounts
//! add-iam-policy-binding` grants `roles/iam.workloadIdentityUser` or
//! `roles/iam.serviceAccountTokenCreator`), and its keys: `keys.create` returns
//! a new JSON key file once (the cloud keeps only the public half, as Google
//! does) and `keys.list`.
//!
//! A permission on an account comes from its own policy or its project's. The
//! account policy is the one IAM Credentials (`generateAccessToken`,
//! `generateIdToken`) and Compute (`actAs`) consult, so a binding set here
//! takes effect on the next call.

use super::secretmanager::{checked_policy_update, with_etag};
use super::{
    ApiError, CLOUD_PLATFORM, CLOUD_PLATFORM_RO, Reply, Req, authenticate, ok_json, require_scope,
};
use crate::cloud::{Caller, Cloud};
use crate::iam;
use crate::store::{Change, ServiceAccount, State};
use axum::http::Method;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use keyway_wire::google::iam::{TestIamPermissionsRequest, TestIamPermissionsResponse};
use serde_json::json;

const SERVICE: &str = "iam.googleapis.com";
const IAM_SCOPE: &str = "https://www.googleapis.com/auth/iam";
const MAX_PAGE: usize = 100;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Get,
    List,
    GetIamPolicy,
    SetIamPolicy,
    TestIamPermissions,
    CreateKey,
    ListKeys,
}

impl Op {
    fn rpc(self) -> &'static str {
        match self {
            Op::Get => "GetServiceAccount",
            Op::List => "ListServiceAccounts",
            Op::GetIamPolicy => "GetIamPolicy",
            Op::SetIamPolicy => "SetIamPolicy",
            Op::TestIamPermissions => "TestIamPermissions",
            Op::CreateKey => "CreateServiceAccountKey",
            Op::ListKeys => "ListServiceAccountKeys",
        }
    }

    fn permission(self) -> &'static str {
        match self {
            Op::Get => "iam.serviceAccounts.get",
            Op::List => "iam.serviceAccounts.list",
            Op::GetIamPolicy => "iam.serviceAccounts.getIamPolicy",
            Op::SetIamPolicy => "iam.serviceAccounts.setIamPolicy",
            Op::TestIamPermissions => "",
            Op::CreateKey => "iam.serviceAccountKeys.create",
            Op::ListKeys => "iam.serviceAccountKeys.list",
        }
    }

    fn writes(self) -> bool {
        matches!(self, Op::SetIamPolicy | Op::CreateKey)
    }
}

pub fn dispatch(cloud: &Cloud, req: &Req) -> Reply {
    let s: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let verb = req.verb.as_deref();
    let op = match (s.as_slice(), &req.method, verb) {
        (["v1", "projects", _, "serviceAccounts"], &Method::GET, None) => Op::List,
        (["v1", "projects", _, "serviceAccounts", _], &Method::GET, None) => Op::Get,
        (["v1", "projects", _, "serviceAccounts", _], &Method::POST, Some("getIamPolicy")) => {
            Op::GetIamPolicy
        }
        (["v1", "projects", _, "serviceAccounts", _], &Method::POST, Some("setIamPolicy")) => {
            Op::SetIamPolicy
        }
        (
            ["v1", "projects", _, "serviceAccounts", _],
            &Method::POST,
            Some("testIamPermissions"),
        ) => Op::TestIamPermissions,
        (["v1", "projects", _, "serviceAccounts", _, "keys"], &Method::POST, None) => Op::CreateKey,
        (["v1", "projects", _, "serviceAccounts", _, "keys"], &Method::GET, None) => Op::ListKeys,
        _ => return Err(ApiError::unknown_path(&req.method, &req.path)),
    };
    let method = format!("google.iam.admin.v1.IAM.{}", op.rpc());
    let caller = authenticate(cloud, req, SERVICE, &method)?;
    let scopes: &[&str] = if op.writes() {
        &[CLOUD_PLATFORM, IAM_SCOPE]
    } else {
        &[CLOUD_PLATFORM, CLOUD_PLATFORM_RO, IAM_SCOPE]
    };
    require_scope(&caller, scopes, SERVICE, &method)?;
    if op == Op::List {
        return list(cloud, req, &caller);
    }
    let project_ref = req.seg(2);
    let id = req.seg(4).to_owned();
    let resource = format!("projects/{project_ref}/serviceAccounts/{id}");
    if op == Op::TestIamPermissions {
        let body: TestIamPermissionsRequest = req.json()?;
        let st = cloud.store.read();
        let granted = match find(&st, project_ref, &id) {
            Some(sa) => body
                .permissions
                .iter()
                .filter(|p| may(&st, &caller, sa, p))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        return Ok(ok_json(
            &TestIamPermissionsResponse {
                permissions: granted,
            },
            false,
        ));
    }
    let perm = op.permission();
    // Without the permission the answer is the same whether or not the account exists.
    let email = {
        let st = cloud.store.read();
        let sa = find(&st, project_ref, &id);
        let allowed = match sa {
            Some(sa) => may(&st, &caller, sa, perm),
            // `projects/-`: the project an account's email names.
            None => st
                .project(if project_ref == "-" {
                    project_of_email(&id).unwrap_or("-")
                } else {
                    project_ref
                })
                .is_some_and(|p| iam::grants(&p.iam, &caller.principal(), perm)),
        };
        if !allowed {
            return Err(super::iamcredentials::denied(perm));
        }
        sa.map(|sa| sa.email.clone())
            .ok_or_else(|| unknown(&resource))?
    };
    match op {
        Op::Get => {
            let st = cloud.store.read();
            let sa = account(&st, &email, &resource)?;
            Ok(ok_json(&render(sa), false))
        }
        Op::GetIamPolicy => {
            let st = cloud.store.read();
            let sa = account(&st, &email, &resource)?;
            Ok(ok_json(&with_etag(&sa.iam), false))
        }
        Op::SetIamPolicy => {
            let body = super::secretmanager::set_iam_policy_request(req)?;
            let policy = cloud.store.write(|st| {
                let sa = st
                    .service_accounts
                    .get(&email)
                    .filter(|sa| may(st, &caller, sa, perm))
                    .ok_or_else(|| super::iamcredentials::denied(perm))?;
                let new = checked_policy_update(&sa.iam, body.policy.clone())?;
                let mut sa = sa.clone();
                sa.iam = new.clone();
                Ok::<_, ApiError>((vec![Change::PutServiceAccount(sa)], new))
            })?;
            tracing::info!(caller = %caller.member, account = %email, "service account IAM policy set");
            Ok(ok_json(&with_etag(&policy), false))
        }
        Op::ListKeys => {
            let st = cloud.store.read();
            let sa = account(&st, &email, &resource)?;
            let keys: Vec<serde_json::Value> = sa
                .keys
                .iter()
                .map(|k| {
                    json!({
                        "name": format!("projects/{}/serviceAccounts/{}/keys/{}", sa.project, sa.email, k.id),
                        "validAfterTime": crate::time::rfc3339_millis(k.create_ms),
                        "keyAlgorithm": "KEY_ALG_RSA_2048",
                        "keyOrigin": "GOOGLE_PROVIDED",
                        "keyType": "USER_MANAGED",
                        "disabled": k.disabled,
                    })
                })
                .collect();
            Ok(ok_json(&json!({ "keys": keys }), false))
        }
        _ => create_key(cloud, req, &email),
    }
}

/// Google's answer for an account that does not exist (to a caller who may know).
fn unknown(resource: &str) -> ApiError {
    ApiError::not_found(format!("Unknown service account ({resource})."))
}

/// The account of a request whose permission was checked, by email.
fn account<'s>(st: &'s State, email: &str, resource: &str) -> Result<&'s ServiceAccount, ApiError> {
    st.service_accounts
        .get(email)
        .ok_or_else(|| unknown(resource))
}

/// The account a path names: by email or unique id, under its own project or `-`.
fn find<'s>(st: &'s State, project_ref: &str, id: &str) -> Option<&'s ServiceAccount> {
    let sa = st.service_accounts.get(id).or_else(|| {
        st.service_accounts
            .values()
            .find(|sa| !id.contains('@') && sa.unique_id == id)
    })?;
    let in_project =
        project_ref == "-" || st.project(project_ref).is_some_and(|p| p.id == sa.project);
    in_project.then_some(sa)
}

/// The project id in a user-managed account's email (`NAME@PROJECT.iam.gserviceaccount.com`).
fn project_of_email(email: &str) -> Option<&str> {
    email
        .split_once('@')?
        .1
        .strip_suffix(".iam.gserviceaccount.com")
}

/// Does the caller hold `perm` on the account (its own policy or its project's)?
fn may(st: &State, caller: &Caller, sa: &ServiceAccount, perm: &str) -> bool {
    let who = caller.principal();
    iam::grants(&sa.iam, &who, perm)
        || st
            .projects
            .get(&sa.project)
            .is_some_and(|p| iam::grants(&p.iam, &who, perm))
}

/// A `ServiceAccount` resource as IAM v1 returns it.
fn render(sa: &ServiceAccount) -> serde_json::Value {
    let mut v = json!({
        "name": format!("projects/{}/serviceAccounts/{}", sa.project, sa.email),
        "projectId": sa.project,
        "uniqueId": sa.unique_id,
        "email": sa.email,
        "oauth2ClientId": sa.unique_id,
        // The etag of the account resource (not of its policy): it changes with the account.
        "etag": STANDARD.encode(&crate::crypto::sha256(sa.email.as_bytes())[..8]),
    });
    if !sa.display_name.is_empty() {
        v["displayName"] = sa.display_name.clone().into();
    }
    v
}

fn list(cloud: &Cloud, req: &Req, caller: &Caller) -> Reply {
    let perm = Op::List.permission();
    let project_ref = req.seg(2);
    let st = cloud.store.read();
    let p = st
        .project(project_ref)
        .filter(|p| iam::grants(&p.iam, &caller.principal(), perm))
        .ok_or_else(|| super::iamcredentials::denied(perm))?;
    let size = match req.q("pageSize") {
        None | Some("") | Some("0") => MAX_PAGE,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= MAX_PAGE)
            .ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "Invalid page size {s}: it must be between 0 and {MAX_PAGE}."
                ))
            })?,
    };
    let after = match req.q("pageToken").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(
            URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::invalid_argument("The page token is invalid."))?,
        ),
    };
    let page: Vec<&ServiceAccount> = st
        .service_accounts
        .values()
        .filter(|sa| sa.project == p.id)
        .filter(|sa| {
            after
                .as_ref()
                .is_none_or(|a| sa.email.as_str() > a.as_str())
        })
        .take(size + 1)
        .collect();
    let more = page.len() > size;
    let page = &page[..page.len().min(size)];
    let mut body = json!({
        "accounts": page.iter().map(|sa| render(sa)).collect::<Vec<_>>(),
    });
    if more && let Some(last) = page.last() {
        body["nextPageToken"] = URL_SAFE_NO_PAD.encode(&last.email).into();
    }
    Ok(ok_json(&body, false))
}

fn create_key(cloud: &Cloud, req: &Req, email: &str) -> Reply {
    let token_uri = token_uri_of(req);
    let (sa, k) = cloud
        .mint_key(email)?
        .ok_or_else(|| ApiError::not_found(format!("Service account {email} does not exist.")))?;
    let file = cloud.key_file(&sa, &k.key_id, &k.private_pem, &token_uri);
    let json = zeroize::Zeroizing::new(serde_json::to_vec_pretty(&file).unwrap_or_default());
    let now = cloud.clock.now_millis();
    Ok(ok_json(
        &json!({
            "name": format!("projects/{}/serviceAccounts/{}/keys/{}", sa.project, sa.email, k.key_id),
            "privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE",
            "privateKeyData": STANDARD.encode(json.as_slice()),
            "validAfterTime": crate::time::rfc3339_millis(now),
            "validBeforeTime": "9999-12-31T23:59:59Z",
            "keyAlgorithm": "KEY_ALG_RSA_2048",
            "keyOrigin": "GOOGLE_PROVIDED",
            "keyType": "USER_MANAGED",
        }),
        false,
    ))
}

/// The token endpoint on the host the request came to, so a minted key works
/// against this local cloud.
fn token_uri_of(req: &Req) -> String {
    let host = req
        .headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}/token")
}
