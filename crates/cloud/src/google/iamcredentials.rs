//! The IAM Service Account Credentials API (`iamcredentials.googleapis.com`):
//! `generateAccessToken` and `generateIdToken` on
//! `/v1/projects/-/serviceAccounts/EMAIL`, the impersonation step of Workload
//! Identity Federation (and of `impersonated_service_account` credentials).
//!
//! The caller needs `iam.serviceAccounts.getAccessToken` (or `getOpenIdToken`)
//! on the target account, from a binding on the account's own policy or its
//! project's: roles/iam.workloadIdentityUser (for `principal://` and
//! `principalSet://` members), roles/iam.serviceAccountTokenCreator, or owner.
//! With `delegates`, every hop of the chain (caller → first delegate → … →
//! target) needs the same permission on the next account.

use super::{ApiError, CLOUD_PLATFORM, Reply, Req, authenticate, ok_json, require_scope};
use crate::cloud::{Caller, Cloud};
use crate::iam::{self, Principal};
use crate::store::{ServiceAccount, State};
use keyway_wire::google::error::reason;
use keyway_wire::google::sts::{
    GenerateAccessTokenRequest, GenerateAccessTokenResponse, GenerateIdTokenRequest,
    GenerateIdTokenResponse,
};

pub const SERVICE: &str = "iamcredentials.googleapis.com";
const IAM_SCOPE: &str = "https://www.googleapis.com/auth/iam";
/// Without the org policy `constraints/iam.allowServiceAccountCredentialLifetimeExtension`
/// (which the local cloud does not emulate), an access token lives at most an hour.
pub const MAX_LIFETIME_SECS: i64 = 3600;
const ID_TOKEN_LIFETIME_SECS: i64 = 3600;

/// Is this request one of this API's? (`…/serviceAccounts/EMAIL:generateAccessToken` or `:generateIdToken`.)
pub fn handles(req: &Req) -> bool {
    matches!(
        req.verb.as_deref(),
        Some("generateAccessToken" | "generateIdToken")
    ) && matches!(
        req.segments
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["v1", "projects", _, "serviceAccounts", _]
    )
}

/// Google's denial for this API.
pub fn denied(permission: &str) -> ApiError {
    ApiError::new(
        403,
        "PERMISSION_DENIED",
        format!("Permission '{permission}' denied on resource (or it may not exist)."),
    )
    .with_info(
        reason::IAM_PERMISSION_DENIED,
        "iam.googleapis.com",
        &[("permission", permission)],
    )
}

pub fn dispatch(cloud: &Cloud, req: &Req) -> Reply {
    if req.method != axum::http::Method::POST {
        return Err(ApiError::unknown_path(&req.method, &req.path));
    }
    let id_token = req.verb.as_deref() == Some("generateIdToken");
    let (op, perm) = if id_token {
        ("GenerateIdToken", "iam.serviceAccounts.getOpenIdToken")
    } else {
        ("GenerateAccessToken", "iam.serviceAccounts.getAccessToken")
    };
    let method = format!("google.iam.credentials.v1.IAMCredentials.{op}");
    let caller = authenticate(cloud, req, SERVICE, &method)?;
    require_scope(&caller, &[CLOUD_PLATFORM, IAM_SCOPE], SERVICE, &method)?;
    let target = req.seg(4).to_owned();
    // Both requests name the chain of delegates the caller goes through.
    let authorize_for = |delegates: &Option<Vec<String>>| {
        authorize(
            cloud,
            &caller,
            &target,
            delegates.as_deref().unwrap_or_default(),
            perm,
        )
    };
    if id_token {
        let body: GenerateIdTokenRequest = req.json()?;
        let sa = authorize_for(&body.delegates)?;
        let audience = body.audience.filter(|a| !a.is_empty()).ok_or_else(|| {
            ApiError::invalid_argument("Invalid value for audience: the audience is required.")
        })?;
        let now = cloud.clock.now_secs();
        let mut claims = serde_json::json!({
            "iss": crate::crypto::ID_TOKEN_ISSUER, "aud": audience, "azp": sa.unique_id, "sub": sa.unique_id,
            "iat": now, "exp": now + cloud.cap_lifetime(ID_TOKEN_LIFETIME_SECS),
        });
        if body.include_email == Some(true) {
            claims["email"] = sa.email.clone().into();
            claims["email_verified"] = true.into();
        }
        let token = cloud
            .sign_id_token(claims)
            .map_err(|e| ApiError::internal(&e))?;
        return Ok(ok_json(&GenerateIdTokenResponse { token }, false));
    }
    let body: GenerateAccessTokenRequest = req.json()?;
    let sa = authorize_for(&body.delegates)?;
    let scopes: Vec<String> = body
        .scope
        .unwrap_or_default()
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .collect();
    if scopes.is_empty() {
        return Err(ApiError::invalid_argument("Scope required."));
    }
    let life = match body.lifetime.as_deref() {
        None | Some("") => MAX_LIFETIME_SECS,
        Some(l) => parse_duration(l).ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "Invalid value for lifetime: '{l}' is not a duration such as \"3600s\"."
            ))
        })?,
    };
    if !(1..=MAX_LIFETIME_SECS).contains(&life) {
        return Err(ApiError::invalid_argument(format!(
            "The lifetime {life}s is outside 1s..{MAX_LIFETIME_SECS}s. Longer lifetimes need the organization policy constraints/iam.allowServiceAccountCredentialLifetimeExtension, which the local cloud does not emulate."
        )));
    }
    let (access_token, life) = cloud.mint_access_token_with_lifetime(
        &format!("serviceAccount:{}", sa.email),
        &scopes,
        &sa.unique_id,
        cloud.cap_lifetime(life),
    );
    let expire_time = crate::time::rfc3339_seconds((cloud.clock.now_secs() + life) * 1000);
    tracing::info!(caller = %caller.member, target = %sa.email, "iamcredentials issued an access token");
    Ok(ok_json(
        &GenerateAccessTokenResponse {
            access_token,
            expire_time,
        },
        false,
    ))
}

/// `"3600s"` (a protobuf Duration, fractions allowed) in whole seconds.
fn parse_duration(s: &str) -> Option<i64> {
    let n = s.trim().strip_suffix('s')?;
    let secs: f64 = n.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some(secs.ceil() as i64)
}

/// An account as `delegates` or the path name it: `EMAIL` or `projects/-/serviceAccounts/EMAIL`.
fn account_email(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

fn may(st: &State, who: &Principal<'_>, sa: &ServiceAccount, perm: &str) -> bool {
    iam::grants(&sa.iam, who, perm)
        || st
            .projects
            .get(&sa.project)
            .is_some_and(|p| iam::grants(&p.iam, who, perm))
}

/// Checks the chain caller → delegates… → target, hop by hop, and returns the target.
fn authorize(
    cloud: &Cloud,
    caller: &Caller,
    target: &str,
    delegates: &[String],
    perm: &str,
) -> Result<ServiceAccount, ApiError> {
    let st = cloud.store.read();
    let mut chain: Vec<&str> = delegates.iter().map(|d| account_email(d)).collect();
    chain.push(target);
    let mut who_member = caller.member.clone();
    let mut federated = caller.federated.as_ref();
    for email in chain {
        let Some(sa) = st.service_accounts.get(email) else {
            return Err(denied(perm));
        };
        let who = Principal {
            member: &who_member,
            federated,
        };
        if !may(&st, &who, sa, perm) {
            tracing::info!(caller = %caller.member, hop = %who_member, account = %email, %perm, "iamcredentials denied");
            return Err(denied(perm));
        }
        who_member = format!("serviceAccount:{}", sa.email);
        federated = None;
    }
    st.service_accounts
        .get(target)
        .cloned()
        .ok_or_else(|| denied(perm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_names() {
        assert_eq!(parse_duration("3600s"), Some(3600));
        assert_eq!(parse_duration("0.5s"), Some(1));
        assert_eq!(parse_duration("3600"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(
            account_email("projects/-/serviceAccounts/a@b.iam.gserviceaccount.com"),
            "a@b.iam.gserviceaccount.com"
        );
        assert_eq!(account_email("a@b"), "a@b");
    }
}
