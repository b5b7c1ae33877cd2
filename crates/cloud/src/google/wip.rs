//! IAM v1, the read half of workload identity pools and providers:
//! `GET /v1/projects/P/locations/global/workloadIdentityPools/POOL` and
//! `…/POOL/providers/ID` (the world file declares them; nothing creates them over the API).

use super::{
    ApiError, CLOUD_PLATFORM, CLOUD_PLATFORM_RO, Reply, Req, authenticate, ok_json, require_scope,
};
use crate::cloud::Cloud;
use crate::iam;
use crate::store::{WiPool, WiProvider, WiTrust};
use serde_json::json;

const SERVICE: &str = "iam.googleapis.com";
const IAM_SCOPE: &str = "https://www.googleapis.com/auth/iam";

pub fn dispatch(cloud: &Cloud, req: &Req) -> Reply {
    let s: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let (op, perm, provider) = match (s.as_slice(), &req.method, req.verb.as_deref()) {
        (
            [
                "v1",
                "projects",
                _,
                "locations",
                "global",
                "workloadIdentityPools",
                _,
            ],
            &axum::http::Method::GET,
            None,
        ) => (
            "GetWorkloadIdentityPool",
            "iam.workloadIdentityPools.get",
            None,
        ),
        (
            [
                "v1",
                "projects",
                _,
                "locations",
                "global",
                "workloadIdentityPools",
                _,
                "providers",
                id,
            ],
            &axum::http::Method::GET,
            None,
        ) => (
            "GetWorkloadIdentityPoolProvider",
            "iam.workloadIdentityPoolProviders.get",
            Some(*id),
        ),
        _ => return Err(ApiError::unknown_path(&req.method, &req.path)),
    };
    let method = format!("google.iam.v1.WorkloadIdentityPools.{op}");
    let caller = authenticate(cloud, req, SERVICE, &method)?;
    require_scope(
        &caller,
        &[CLOUD_PLATFORM, CLOUD_PLATFORM_RO, IAM_SCOPE],
        SERVICE,
        &method,
    )?;
    let resource = req.path.trim_start_matches("/v1/").to_owned();
    let st = cloud.store.read();
    let p = st
        .project(req.seg(2))
        .filter(|p| iam::grants(&p.iam, &caller.principal(), perm))
        .ok_or_else(|| ApiError::permission_denied(perm, &resource))?;
    let pool_name = format!(
        "projects/{}/locations/global/workloadIdentityPools/{}",
        p.number,
        req.seg(6)
    );
    let pool = st
        .wi_pools
        .get(&WiPool::key(&p.id, req.seg(6)))
        .ok_or_else(|| {
            ApiError::not_found(format!("Requested entity was not found. ({pool_name})"))
        })?;
    let Some(id) = provider else {
        return Ok(ok_json(
            &json!({
                "name": pool_name,
                "displayName": pool.display_name,
                "state": "ACTIVE",
                "disabled": pool.disabled,
            }),
            false,
        ));
    };
    let pr = st
        .wi_providers
        .get(&WiProvider::key(&p.id, &pool.id, id))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Requested entity was not found. ({pool_name}/providers/{id})"
            ))
        })?;
    let mut body = json!({
        "name": format!("{pool_name}/providers/{id}"),
        "displayName": pr.display_name,
        "state": "ACTIVE",
        "disabled": pr.disabled,
        "attributeMapping": pr.attribute_mapping,
    });
    if let Some(c) = &pr.attribute_condition {
        body["attributeCondition"] = c.clone().into();
    }
    match &pr.trust {
        WiTrust::Aws { account_id } => body["aws"] = json!({ "accountId": account_id }),
        WiTrust::Oidc {
            issuer_uri,
            allowed_audiences,
            jwks_json,
        } => {
            let mut o = json!({ "issuerUri": issuer_uri });
            if !allowed_audiences.is_empty() {
                o["allowedAudiences"] = json!(allowed_audiences);
            }
            if let Some(j) = jwks_json {
                o["jwksJson"] = j.clone().into();
            }
            body["oidc"] = o;
        }
    }
    Ok(ok_json(&body, false))
}
