//! IAM v1, workload identity pools and providers: `GET` of a pool and of a
//! provider, `PATCH` of a provider (what `gcloud iam workload-identity-pools
//! providers update-aws|update-oidc` send: the provider with an `updateMask`),
//! and the provider's long-running operations (`…/providers/ID/operations/OP`).
//!
//! Pools and providers are declared by the world; nothing creates or deletes
//! them over the API. An update is committed to the store before it is
//! answered, and STS reads the provider from the store at every exchange, so
//! a new attribute condition or mapping decides the very next token exchange.
//! The update answers with a `google.longrunning.Operation` that is already
//! done (its `response` is the updated provider), as gcloud prints it; the
//! operation is kept in memory for `operations describe`.

use super::{
    ApiError, CLOUD_PLATFORM, CLOUD_PLATFORM_RO, Reply, Req, authenticate, ok_json, require_scope,
};
use crate::cloud::Cloud;
use crate::google::attributes;
use crate::iam;
use crate::store::{Change, WiPool, WiProvider, WiTrust};
use axum::http::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const SERVICE: &str = "iam.googleapis.com";
const IAM_SCOPE: &str = "https://www.googleapis.com/auth/iam";
const PROVIDER_TYPE: &str = "type.googleapis.com/google.iam.v1.WorkloadIdentityPoolProvider";
const METADATA_TYPE: &str =
    "type.googleapis.com/google.iam.v1.WorkloadIdentityPoolOperationMetadata";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    GetPool,
    GetProvider,
    UpdateProvider,
    GetProviderOperation,
}

pub fn dispatch(cloud: &Cloud, req: &Req) -> Reply {
    let s: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let op = match (&s[6..], &req.method, req.verb.as_deref()) {
        ([_], &Method::GET, None) => Op::GetPool,
        ([_, "providers", _], &Method::GET, None) => Op::GetProvider,
        ([_, "providers", _], &Method::PATCH, None) => Op::UpdateProvider,
        ([_, "providers", _, "operations", _], &Method::GET, None) => Op::GetProviderOperation,
        _ => return Err(ApiError::unknown_path(&req.method, &req.path)),
    };
    let (rpc, perm) = match op {
        Op::GetPool => ("GetWorkloadIdentityPool", "iam.workloadIdentityPools.get"),
        Op::GetProvider | Op::GetProviderOperation => (
            "GetWorkloadIdentityPoolProvider",
            "iam.workloadIdentityPoolProviders.get",
        ),
        Op::UpdateProvider => (
            "UpdateWorkloadIdentityPoolProvider",
            "iam.workloadIdentityPoolProviders.update",
        ),
    };
    let method = format!("google.iam.v1.WorkloadIdentityPools.{rpc}");
    let caller = authenticate(cloud, req, SERVICE, &method)?;
    let scopes: &[&str] = if op == Op::UpdateProvider {
        &[CLOUD_PLATFORM, IAM_SCOPE]
    } else {
        &[CLOUD_PLATFORM, CLOUD_PLATFORM_RO, IAM_SCOPE]
    };
    require_scope(&caller, scopes, SERVICE, &method)?;
    let resource = req.path.trim_start_matches("/v1/").to_owned();
    let (project_id, number) = {
        let st = cloud.store.read();
        let p = st
            .project(req.seg(2))
            .filter(|p| iam::grants(&p.iam, &caller.principal(), perm))
            .ok_or_else(|| ApiError::permission_denied(perm, &resource))?;
        (p.id.clone(), p.number)
    };
    let pool_id = req.seg(6);
    let pool_name = format!("projects/{number}/locations/global/workloadIdentityPools/{pool_id}");
    let not_found =
        |what: &str| ApiError::not_found(format!("Requested entity was not found. ({what})"));
    if op == Op::GetProviderOperation {
        let name = format!(
            "{pool_name}/providers/{}/operations/{}",
            req.seg(8),
            req.seg(10)
        );
        let ops = cloud.long_running.lock().unwrap_or_else(|e| e.into_inner());
        return ops
            .get(&name)
            .map(|o| ok_json(o, false))
            .ok_or_else(|| not_found(&name));
    }
    if op == Op::UpdateProvider {
        return update_provider(cloud, req, &project_id, &pool_name, &caller.member);
    }
    let st = cloud.store.read();
    let pool = st
        .wi_pools
        .get(&WiPool::key(&project_id, pool_id))
        .ok_or_else(|| not_found(&pool_name))?;
    if op == Op::GetPool {
        return Ok(ok_json(
            &json!({
                "name": pool_name,
                "displayName": pool.display_name,
                "state": "ACTIVE",
                "disabled": pool.disabled,
            }),
            false,
        ));
    }
    let id = req.seg(8);
    let pr = st
        .wi_providers
        .get(&WiProvider::key(&project_id, &pool.id, id))
        .ok_or_else(|| not_found(&format!("{pool_name}/providers/{id}")))?;
    Ok(ok_json(&render(&pool_name, pr), false))
}

/// A `WorkloadIdentityPoolProvider` resource as IAM v1 returns it.
fn render(pool_name: &str, pr: &WiProvider) -> Value {
    let mut body = json!({
        "name": format!("{pool_name}/providers/{}", pr.id),
        "displayName": pr.display_name,
        "state": "ACTIVE",
        "disabled": pr.disabled,
        "attributeMapping": pr.attribute_mapping,
    });
    if !pr.description.is_empty() {
        body["description"] = pr.description.clone().into();
    }
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
    body
}

/// The body of a provider PATCH: every field optional; only those named by
/// `updateMask` are applied.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ProviderPatch {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    attribute_mapping: Option<BTreeMap<String, String>>,
    #[serde(default)]
    attribute_condition: Option<String>,
    #[serde(default)]
    aws: Option<AwsPatch>,
    #[serde(default)]
    oidc: Option<OidcPatch>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AwsPatch {
    #[serde(default)]
    account_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct OidcPatch {
    #[serde(default)]
    issuer_uri: Option<String>,
    #[serde(default)]
    allowed_audiences: Option<Vec<String>>,
    #[serde(default)]
    jwks_json: Option<String>,
}

/// Applies `patch` to `pr` for each path of `mask` (camelCase or snake_case,
/// as FieldMasks are written). The message names the field that is wrong.
fn apply_patch(pr: &mut WiProvider, patch: ProviderPatch, mask: &str) -> Result<(), String> {
    let paths: Vec<String> = mask
        .split(',')
        .map(|p| p.trim().replace('_', "").to_ascii_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    if paths.is_empty() {
        return Err("update_mask must name at least one field.".into());
    }
    let aws = patch.aws.unwrap_or_default();
    let oidc = patch.oidc.unwrap_or_default();
    for path in &paths {
        match path.as_str() {
            "displayname" => {
                let d = patch.display_name.clone().unwrap_or_default();
                if d.chars().count() > 32 {
                    return Err("display_name must be at most 32 characters.".into());
                }
                pr.display_name = d;
            }
            "description" => {
                let d = patch.description.clone().unwrap_or_default();
                if d.chars().count() > 256 {
                    return Err("description must be at most 256 characters.".into());
                }
                pr.description = d;
            }
            "disabled" => pr.disabled = patch.disabled.unwrap_or(false),
            "attributemapping" => {
                let m = patch.attribute_mapping.clone().unwrap_or_default();
                if !m.contains_key("google.subject") {
                    return Err("attribute_mapping must map google.subject.".into());
                }
                attributes::validate_mapping(&m)
                    .map_err(|e| format!("Invalid attribute_mapping: {e}."))?;
                pr.attribute_mapping = m;
            }
            "attributecondition" => {
                let c = patch
                    .attribute_condition
                    .clone()
                    .filter(|c| !c.trim().is_empty());
                if let Some(c) = &c {
                    attributes::validate_condition(c)
                        .map_err(|e| format!("Invalid attribute_condition: {e}."))?;
                }
                pr.attribute_condition = c;
            }
            "aws" | "aws.accountid" => match &mut pr.trust {
                WiTrust::Aws { account_id } => {
                    let a = aws.account_id.clone().unwrap_or_default();
                    if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(format!(
                            "aws.account_id '{a}' is not a 12-digit AWS account id."
                        ));
                    }
                    *account_id = a;
                }
                WiTrust::Oidc { .. } => {
                    return Err("The provider is an OIDC provider; aws cannot be updated.".into());
                }
            },
            "oidc" | "oidc.issueruri" | "oidc.allowedaudiences" | "oidc.jwksjson" => {
                let WiTrust::Oidc {
                    issuer_uri,
                    allowed_audiences,
                    jwks_json,
                } = &mut pr.trust
                else {
                    return Err("The provider is an AWS provider; oidc cannot be updated.".into());
                };
                let whole = path == "oidc";
                if whole || path == "oidc.issueruri" {
                    let u = oidc.issuer_uri.clone().unwrap_or_default();
                    if !u.starts_with("https://") {
                        return Err(format!("oidc.issuer_uri '{u}' must be an https:// URL."));
                    }
                    *issuer_uri = u;
                }
                if whole || path == "oidc.allowedaudiences" {
                    *allowed_audiences = oidc.allowed_audiences.clone().unwrap_or_default();
                }
                if whole || path == "oidc.jwksjson" {
                    let j = oidc.jwks_json.clone().filter(|j| !j.is_empty());
                    if let Some(j) = &j {
                        let v: Value = serde_json::from_str(j)
                            .map_err(|e| format!("oidc.jwks_json is not JSON: {e}."))?;
                        if !v.get("keys").is_some_and(Value::is_array) {
                            return Err(
                                "oidc.jwks_json must be a JWKS: an object with a `keys` array."
                                    .into(),
                            );
                        }
                    }
                    *jwks_json = j;
                }
            }
            other => {
                return Err(format!(
                    "Invalid update_mask path '{other}'. Updatable fields: display_name, description, disabled, attribute_mapping, attribute_condition, aws, oidc."
                ));
            }
        }
    }
    Ok(())
}

fn update_provider(
    cloud: &Cloud,
    req: &Req,
    project_id: &str,
    pool_name: &str,
    caller: &str,
) -> Reply {
    let mask = req
        .q("updateMask")
        .or_else(|| req.q("update_mask"))
        .unwrap_or("")
        .to_owned();
    if mask.trim().is_empty() {
        return Err(ApiError::invalid_argument("update_mask is required."));
    }
    let id = req.seg(8).to_owned();
    let name = format!("{pool_name}/providers/{id}");
    let updated = cloud.store.write(|st| {
        let key = WiProvider::key(project_id, req.seg(6), &id);
        let mut pr = st.wi_providers.get(&key).cloned().ok_or_else(|| {
            ApiError::not_found(format!("Requested entity was not found. ({name})"))
        })?;
        let patch: ProviderPatch = req.json()?;
        apply_patch(&mut pr, patch, &mask).map_err(ApiError::invalid_argument)?;
        Ok::<_, ApiError>((vec![Change::PutWiProvider(pr.clone())], pr))
    })?;
    tracing::info!(%caller, provider = %name, mask = %mask, "workload identity pool provider updated");
    let op_id = crate::crypto::random_hex(16).map_err(|e| ApiError::internal(&e))?;
    let op_name = format!("{name}/operations/{op_id}");
    let mut response = render(pool_name, &updated);
    response["@type"] = PROVIDER_TYPE.into();
    let op = json!({
        "name": op_name,
        "metadata": { "@type": METADATA_TYPE },
        "done": true,
        "response": response,
    });
    cloud
        .long_running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(op_name, op.clone());
    Ok(ok_json(&op, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws_provider() -> WiProvider {
        WiProvider {
            project: "p".into(),
            pool: "pool".into(),
            id: "aws-provider".into(),
            display_name: String::new(),
            description: String::new(),
            disabled: false,
            trust: WiTrust::Aws {
                account_id: "111122223333".into(),
            },
            attribute_mapping: attributes::default_aws_mapping(),
            attribute_condition: Some("attribute.aws_role == 'x'".into()),
        }
    }

    fn patch(v: Value) -> ProviderPatch {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn only_the_masked_fields_change() {
        let mut pr = aws_provider();
        // gcloud sends `disabled: false` beside the condition; the mask names the condition only.
        apply_patch(
            &mut pr,
            patch(json!({"attributeCondition": "true", "disabled": true, "displayName": "x"})),
            "attributeCondition",
        )
        .unwrap();
        assert_eq!(pr.attribute_condition.as_deref(), Some("true"));
        assert!(!pr.disabled);
        assert_eq!(pr.display_name, "");
        // An empty condition removes it; snake_case paths are FieldMask paths too.
        apply_patch(&mut pr, patch(json!({})), "attribute_condition,disabled").unwrap();
        assert_eq!(pr.attribute_condition, None);
        apply_patch(
            &mut pr,
            patch(json!({"aws": {"accountId": "444455556666"}})),
            "aws.accountId",
        )
        .unwrap();
        assert_eq!(
            pr.trust,
            WiTrust::Aws {
                account_id: "444455556666".into()
            }
        );
    }

    #[test]
    fn bad_updates_name_the_field_and_change_nothing_they_refuse() {
        let mut pr = aws_provider();
        for (body, mask, want) in [
            (
                json!({"attributeCondition": "attribute.aws_role =="}),
                "attributeCondition",
                "attribute_condition",
            ),
            (
                json!({"attributeMapping": {"attribute.x": "assertion.arn"}}),
                "attributeMapping",
                "google.subject",
            ),
            (
                json!({"oidc": {"issuerUri": "https://x"}}),
                "oidc.issuerUri",
                "AWS provider",
            ),
            (json!({"aws": {"accountId": "12"}}), "aws", "12-digit"),
            (json!({}), "state", "Invalid update_mask path 'state'"),
            (json!({}), " , ", "at least one field"),
        ] {
            let before = pr.attribute_condition.clone();
            let e = apply_patch(&mut pr, patch(body), mask).unwrap_err();
            assert!(e.contains(want), "{mask}: {e}");
            assert_eq!(pr.attribute_condition, before);
        }
    }
}
