//! IAM v1, service-account keys: `keys.create` returns a new JSON key file once
//! (the cloud keeps only the public half, as Google does) and `keys.list`.

use super::{ApiError, CLOUD_PLATFORM, Reply, Req, authenticate, ok_json, require_scope};
use crate::cloud::Cloud;
use crate::iam;
use axum::http::Method;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const SERVICE: &str = "iam.googleapis.com";
const IAM_SCOPE: &str = "https://www.googleapis.com/auth/iam";

pub fn dispatch(cloud: &Cloud, req: &Req) -> Reply {
    let s: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let (op, perm) = match (s.as_slice(), &req.method) {
        (["v1", "projects", _, "serviceAccounts", _, "keys"], &Method::POST) => {
            ("CreateServiceAccountKey", "iam.serviceAccountKeys.create")
        }
        (["v1", "projects", _, "serviceAccounts", _, "keys"], &Method::GET) => {
            ("ListServiceAccountKeys", "iam.serviceAccountKeys.list")
        }
        _ => return Err(ApiError::unknown_path(&req.method, &req.path)),
    };
    let method = format!("google.iam.admin.v1.IAM.{op}");
    let caller = authenticate(cloud, req, SERVICE, &method)?;
    require_scope(&caller, &[CLOUD_PLATFORM, IAM_SCOPE], SERVICE, &method)?;
    let email = req.seg(4).to_owned();
    let resource = format!("projects/{}/serviceAccounts/{email}", req.seg(2));
    let allowed = {
        let st = cloud.store.read();
        st.service_accounts.get(&email).is_some_and(|sa| {
            iam::grants(&sa.iam, &caller.principal(), perm)
                || st
                    .projects
                    .get(&sa.project)
                    .is_some_and(|p| iam::grants(&p.iam, &caller.principal(), perm))
        })
    };
    if !allowed {
        return Err(ApiError::permission_denied(perm, &resource));
    }
    if op == "ListServiceAccountKeys" {
        let st = cloud.store.read();
        let sa = st.service_accounts.get(&email).ok_or_else(|| {
            ApiError::not_found(format!("Service account {email} does not exist."))
        })?;
        let keys: Vec<serde_json::Value> = sa
            .keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "name": format!("projects/{}/serviceAccounts/{}/keys/{}", sa.project, sa.email, k.id),
                    "validAfterTime": crate::time::rfc3339_millis(k.create_ms),
                    "keyAlgorithm": "KEY_ALG_RSA_2048",
                    "keyOrigin": "GOOGLE_PROVIDED",
                    "keyType": "USER_MANAGED",
                    "disabled": k.disabled,
                })
            })
            .collect();
        return Ok(ok_json(&serde_json::json!({ "keys": keys }), false));
    }
    let token_uri = token_uri_of(req);
    let (sa, k) = cloud
        .mint_key(&email)?
        .ok_or_else(|| ApiError::not_found(format!("Service account {email} does not exist.")))?;
    let file = cloud.key_file(&sa, &k.key_id, &k.private_pem, &token_uri);
    let json = zeroize::Zeroizing::new(serde_json::to_vec_pretty(&file).unwrap_or_default());
    let now = cloud.clock.now_millis();
    Ok(ok_json(
        &serde_json::json!({
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
