//! Cloud Resource Manager v1, the part that holds project-level IAM:
//! `projects.get`, `getIamPolicy`, `setIamPolicy`, `testIamPermissions`.

use super::secretmanager::{checked_policy_update, set_iam_policy_request, with_etag};
use super::{
    ApiError, CLOUD_PLATFORM, CLOUD_PLATFORM_RO, Reply, Req, authenticate, ok_json, require_scope,
};
use crate::cloud::Cloud;
use crate::iam;
use crate::store::Change;
use axum::http::Method;
use keyway_wire::google::iam::{TestIamPermissionsRequest, TestIamPermissionsResponse};

const SERVICE: &str = "cloudresourcemanager.googleapis.com";

pub fn dispatch(cloud: &Cloud, req: &Req) -> Reply {
    let (op, perm, write) = match (req.verb.as_deref(), &req.method) {
        (None, &Method::GET) => ("GetProject", "resourcemanager.projects.get", false),
        (Some("getIamPolicy"), &Method::POST | &Method::GET) => (
            "GetIamPolicy",
            "resourcemanager.projects.getIamPolicy",
            false,
        ),
        (Some("setIamPolicy"), &Method::POST) => (
            "SetIamPolicy",
            "resourcemanager.projects.setIamPolicy",
            true,
        ),
        (Some("testIamPermissions"), &Method::POST) => ("TestIamPermissions", "", false),
        _ => return Err(ApiError::unknown_path(&req.method, &req.path)),
    };
    let method = format!("google.cloudresourcemanager.v1.Projects.{op}");
    let caller = authenticate(cloud, req, SERVICE, &method)?;
    let scopes: &[&str] = if write {
        &[CLOUD_PLATFORM]
    } else {
        &[CLOUD_PLATFORM, CLOUD_PLATFORM_RO]
    };
    require_scope(&caller, scopes, SERVICE, &method)?;
    let pid = req.seg(2);
    let denied = || {
        ApiError::new(
            403,
            "PERMISSION_DENIED",
            "The caller does not have permission",
        )
        .legacy("forbidden")
    };
    if op == "TestIamPermissions" {
        let body: TestIamPermissionsRequest = req.json()?;
        let st = cloud.store.read();
        let granted = st
            .project(pid)
            .map(|p| {
                body.permissions
                    .iter()
                    .filter(|x| iam::grants(&p.iam, &caller.principal(), x))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        return Ok(ok_json(
            &TestIamPermissionsResponse {
                permissions: granted,
            },
            false,
        ));
    }
    if op == "SetIamPolicy" {
        let body = set_iam_policy_request(req)?;
        let policy = cloud.store.write(|st| {
            let p = st
                .project(pid)
                .filter(|p| iam::grants(&p.iam, &caller.principal(), perm))
                .ok_or_else(denied)?;
            let new = checked_policy_update(&p.iam, body.policy.clone())?;
            let mut p = p.clone();
            p.iam = new.clone();
            Ok::<_, ApiError>((vec![Change::PutProject(p)], new))
        })?;
        return Ok(ok_json(&with_etag(&policy), false));
    }
    let st = cloud.store.read();
    let p = st
        .project(pid)
        .filter(|p| iam::grants(&p.iam, &caller.principal(), perm))
        .ok_or_else(denied)?;
    if op == "GetIamPolicy" {
        return Ok(ok_json(&with_etag(&p.iam), false));
    }
    Ok(ok_json(
        &serde_json::json!({
            "projectNumber": p.number.to_string(),
            "projectId": p.id,
            "lifecycleState": "ACTIVE",
            "name": p.id,
            "createTime": crate::time::rfc3339_millis(p.create_ms),
        }),
        false,
    ))
}
