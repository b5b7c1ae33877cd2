//! IAM over the query protocol (`Action=…&Version=2010-05-08`, XML answers),
//! the calls that read and change who may do what: `GetRole`, `GetUser`,
//! `UpdateAssumeRolePolicy`, and the inline policies of roles and users
//! (`Put/Get/List/DeleteRolePolicy`, `Put/Get/List/DeleteUserPolicy`).
//!
//! IAM is a global service: the aws CLI signs its requests for service `iam`
//! and sends them to `AWS_ENDPOINT_URL_IAM` (or `AWS_ENDPOINT_URL`), which is
//! the one AWS port of the local cloud; [`handles`] tells them from STS by the
//! signature's credential scope. Every call is an IAM decision like any other
//! (`iam:PutRolePolicy` on `arn:aws:iam::ACCOUNT:role/NAME`, …), refused with
//! AWS's `AccessDenied` wording ("… on resource: role NAME because …"). A change
//! is committed to the store before it is acknowledged, and callers' policies
//! are read from the store at each request, so it decides the next request.
//! Policy documents are answered URL-encoded, as IAM does (the CLI decodes them).

use super::model::{AwsDoc, IamUser, InlinePolicies, Role};
use super::xml::Xml;
use super::{Aws, AwsError, Caller, Proto, Received, policy};
use crate::store::Change;
use axum::response::Response;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use std::collections::BTreeMap;

const NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
pub const VERSION: &str = "2010-05-08";
/// IAM's quota on a role's inline policies, all together (characters, whitespace excluded).
const ROLE_POLICY_QUOTA: usize = 10_240;
/// …and on a user's.
const USER_POLICY_QUOTA: usize = 2_048;
const MAX_ITEMS: usize = 100;

/// RFC 3986's unreserved characters stay; everything else is escaped.
const URI: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn err(status: u16, code: &str, msg: impl Into<String>) -> AwsError {
    AwsError::new(Proto::Query, status, code, msg)
}

/// The service a request's SigV4 credential scope names (`AKID/DATE/REGION/SERVICE/aws4_request`).
fn signed_service(r: &Received) -> Option<String> {
    let scope = r
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.split("Credential=").nth(1))
        .map(|c| c.split([',', ' ']).next().unwrap_or("").to_owned())
        .or_else(|| {
            form_urlencoded::parse(r.uri.query().unwrap_or("").as_bytes())
                .find(|(k, _)| k == "X-Amz-Credential")
                .map(|(_, v)| v.into_owned())
        })?;
    scope.split('/').nth(3).map(str::to_owned)
}

/// Is this query-protocol request IAM's (signed for `iam`, or asking for IAM's API version)?
pub fn handles(r: &Received) -> bool {
    signed_service(r).is_some_and(|s| s == "iam")
        || super::sts::params(r)
            .iter()
            .any(|(k, v)| k == "Version" && v == VERSION)
}

/// Does the request change IAM (so it waits on the store's fsync)?
pub fn writes(r: &Received) -> bool {
    super::sts::params(r).iter().any(|(k, v)| {
        k == "Action"
            && matches!(
                v.as_str(),
                "PutRolePolicy"
                    | "DeleteRolePolicy"
                    | "UpdateAssumeRolePolicy"
                    | "PutUserPolicy"
                    | "DeleteUserPolicy"
            )
    })
}

/// An answer; calls that return nothing (`result` false) have no Result element, as IAM answers them.
fn ok(action: &str, result: bool, body: impl FnOnce(&mut Xml)) -> Response {
    super::xml::response(NS, action, result, body)
}

fn encoded(doc: &Value) -> String {
    utf8_percent_encode(&doc.to_string(), URI).to_string()
}

/// Which principal a call names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Role,
    User,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Role => "role",
            Kind::User => "user",
        }
    }
}

pub fn dispatch(aws: &Aws, r: &Received) -> Result<Response, AwsError> {
    let p = super::sts::params(r);
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(action) = get("Action") else {
        return Err(err(400, "MissingAction", "Missing Action"));
    };
    if let Some(v) = get("Version").filter(|v| *v != VERSION) {
        return Err(err(
            400,
            "InvalidAction",
            format!("Could not find operation {action} for version {v}"),
        ));
    }
    let caller = aws.authenticate(r, "iam", Proto::Query)?;
    let (kind, op) = match action {
        "GetRole" => (Kind::Role, "Get"),
        "UpdateAssumeRolePolicy" => (Kind::Role, "UpdateTrust"),
        "PutRolePolicy" => (Kind::Role, "Put"),
        "GetRolePolicy" => (Kind::Role, "GetPolicy"),
        "ListRolePolicies" => (Kind::Role, "List"),
        "DeleteRolePolicy" => (Kind::Role, "Delete"),
        "GetUser" => (Kind::User, "Get"),
        "PutUserPolicy" => (Kind::User, "Put"),
        "GetUserPolicy" => (Kind::User, "GetPolicy"),
        "ListUserPolicies" => (Kind::User, "List"),
        "DeleteUserPolicy" => (Kind::User, "Delete"),
        other => {
            return Err(err(
                400,
                "InvalidAction",
                format!("Could not find operation {other} for version {VERSION}"),
            ));
        }
    };
    let name_key = if kind == Kind::Role {
        "RoleName"
    } else {
        "UserName"
    };
    let name = match get(name_key) {
        Some(n) => n.to_owned(),
        // GetUser without a name is the calling user.
        None if action == "GetUser" => match caller.who.arn.split_once(":user/") {
            Some((_, n)) if caller.session.is_none() => {
                n.rsplit('/').next().unwrap_or(n).to_owned()
            }
            _ => {
                return Err(err(
                    400,
                    "ValidationError",
                    "Must specify userName when calling with non-User credentials",
                ));
            }
        },
        None => {
            return Err(err(
                400,
                "MissingParameter",
                format!("The request must contain the parameter {name_key}"),
            ));
        }
    };
    check_name(&name, &format!("{}Name", kind.word()), 64)?;
    let account = caller.who.account.clone();
    let arn = match kind {
        Kind::Role => super::model::role_arn(&account, &name),
        Kind::User => super::model::user_arn(&account, &name),
    };
    authorize(&caller, &format!("iam:{action}"), &arn, kind, &name)?;
    let missing = || {
        err(
            404,
            "NoSuchEntity",
            format!("The {} with name {name} cannot be found.", kind.word()),
        )
    };
    let no_policy = |pname: &str| {
        err(
            404,
            "NoSuchEntity",
            format!(
                "The {} policy with name {pname} cannot be found.",
                kind.word()
            ),
        )
    };
    match op {
        "Get" => {
            let st = aws.cloud.store.read();
            Ok(match kind {
                Kind::Role => {
                    let role = st.aws.roles.get(&arn).ok_or_else(missing)?;
                    ok(action, true, |x| role_xml(x, role))
                }
                Kind::User => {
                    let user = st.aws.users.get(&arn).ok_or_else(missing)?;
                    ok(action, true, |x| user_xml(x, user))
                }
            })
        }
        "GetPolicy" | "List" => {
            let st = aws.cloud.store.read();
            let policies = match kind {
                Kind::Role => &st.aws.roles.get(&arn).ok_or_else(missing)?.policies,
                Kind::User => &st.aws.users.get(&arn).ok_or_else(missing)?.policies,
            };
            if op == "List" {
                return list(action, policies, get("Marker"), get("MaxItems"));
            }
            let pname = get("PolicyName").unwrap_or("");
            check_name(pname, "policyName", 128)?;
            let doc = policies.0.get(pname).ok_or_else(|| no_policy(pname))?;
            Ok(ok(action, true, |x| {
                x.leaf(&format!("{}Name", capital(kind.word())), &name);
                x.leaf("PolicyName", pname);
                x.leaf("PolicyDocument", &encoded(doc));
            }))
        }
        "UpdateTrust" => {
            let doc = document(get("PolicyDocument"), true)?;
            aws.cloud.store.write(|st| {
                let mut role = st.aws.roles.get(&arn).cloned().ok_or_else(missing)?;
                role.trust = doc.clone();
                Ok::<_, AwsError>((vec![Change::PutAws(AwsDoc::Role(role))], ()))
            })?;
            tracing::info!(caller = %caller.who.arn, role = %arn, "IAM trust policy updated");
            Ok(ok(action, false, |_| {}))
        }
        "Put" => {
            let pname = get("PolicyName").unwrap_or("").to_owned();
            check_name(&pname, "policyName", 128)?;
            let doc = document(get("PolicyDocument"), false)?;
            aws.cloud.store.write(|st| {
                let change = match kind {
                    Kind::Role => {
                        let mut role = st.aws.roles.get(&arn).cloned().ok_or_else(missing)?;
                        role.policies.0.insert(pname.clone(), doc.clone());
                        quota(&role.policies, ROLE_POLICY_QUOTA, kind, &name)?;
                        AwsDoc::Role(role)
                    }
                    Kind::User => {
                        let mut user = st.aws.users.get(&arn).cloned().ok_or_else(missing)?;
                        user.policies.0.insert(pname.clone(), doc.clone());
                        quota(&user.policies, USER_POLICY_QUOTA, kind, &name)?;
                        AwsDoc::User(user)
                    }
                };
                Ok::<_, AwsError>((vec![Change::PutAws(change)], ()))
            })?;
            tracing::info!(caller = %caller.who.arn, principal = %arn, policy = %pname, "IAM inline policy put");
            Ok(ok(action, false, |_| {}))
        }
        _ => {
            let pname = get("PolicyName").unwrap_or("").to_owned();
            check_name(&pname, "policyName", 128)?;
            let gone = || no_policy(&pname);
            aws.cloud.store.write(|st| {
                let change = match kind {
                    Kind::Role => {
                        let mut role = st.aws.roles.get(&arn).cloned().ok_or_else(missing)?;
                        role.policies.0.remove(&pname).ok_or_else(gone)?;
                        AwsDoc::Role(role)
                    }
                    Kind::User => {
                        let mut user = st.aws.users.get(&arn).cloned().ok_or_else(missing)?;
                        user.policies.0.remove(&pname).ok_or_else(gone)?;
                        AwsDoc::User(user)
                    }
                };
                Ok::<_, AwsError>((vec![Change::PutAws(change)], ()))
            })?;
            tracing::info!(caller = %caller.who.arn, principal = %arn, policy = %pname, "IAM inline policy deleted");
            Ok(ok(action, false, |_| {}))
        }
    }
}

fn capital(w: &str) -> String {
    let mut c = w.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// IAM names (roles, users, policies): 1..=`max` of `[\w+=,.@-]`.
fn check_name(n: &str, field: &str, max: usize) -> Result<(), AwsError> {
    let ok = (1..=max).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(err(
            400,
            "ValidationError",
            format!(
                "The specified value for {field} is invalid. It must contain only alphanumeric characters and/or the following: +=,.@_- and be 1 to {max} characters long."
            ),
        ))
    }
}

/// A policy document from the request: JSON, and a valid identity policy (or
/// trust policy) as the local cloud evaluates them.
fn document(text: Option<&str>, trust: bool) -> Result<Value, AwsError> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Err(err(
            400,
            "MissingParameter",
            "The request must contain the parameter PolicyDocument",
        ));
    };
    let doc: Value = serde_json::from_str(text)
        .map_err(|_| err(400, "MalformedPolicyDocument", "Syntax errors in policy."))?;
    policy::validate(&doc, trust).map_err(|m| err(400, "MalformedPolicyDocument", m))?;
    Ok(doc)
}

/// Refuses inline policies whose total size (without whitespace) passes IAM's quota.
fn quota(p: &InlinePolicies, max: usize, kind: Kind, name: &str) -> Result<(), AwsError> {
    let size: usize = p.0.values().map(|d| d.to_string().len()).sum();
    if size > max {
        return Err(err(
            409,
            "LimitExceeded",
            format!(
                "Maximum policy size of {max} bytes exceeded for {} {name}",
                kind.word()
            ),
        ));
    }
    Ok(())
}

/// The IAM decision for `action` on the role or user `arn`.
fn authorize(
    caller: &Caller,
    action: &str,
    arn: &str,
    kind: Kind,
    name: &str,
) -> Result<(), AwsError> {
    let mut ctx = BTreeMap::new();
    if caller.identity_policies.iter().any(policy::has_conditions) {
        caller.add_principal_keys(&mut ctx);
    }
    let d = caller.decide_own(action, arn, &ctx);
    if d == policy::Decision::Allow {
        return Ok(());
    }
    tracing::info!(caller = %caller.who.arn, %action, resource = %arn, "IAM denied");
    Err(err(
        403,
        "AccessDenied",
        policy::denial_message(&caller.who, action, &format!("{} {name}", kind.word()), d),
    ))
}

fn list(
    action: &str,
    p: &InlinePolicies,
    marker: Option<&str>,
    max: Option<&str>,
) -> Result<Response, AwsError> {
    let max = match max {
        None => MAX_ITEMS,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                err(
                    400,
                    "ValidationError",
                    format!("1 validation error detected: Value '{m}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000"),
                )
            })?,
    };
    let names: Vec<&String> =
        p.0.keys()
            .filter(|n| marker.is_none_or(|m| n.as_str() > m))
            .take(max + 1)
            .collect();
    let truncated = names.len() > max;
    let names = &names[..names.len().min(max)];
    Ok(ok(action, true, |x| {
        x.open("PolicyNames");
        for n in names {
            x.leaf("member", n);
        }
        x.close("PolicyNames");
        x.leaf("IsTruncated", if truncated { "true" } else { "false" });
        if truncated && let Some(last) = names.last() {
            x.leaf("Marker", last);
        }
    }))
}

/// What IAM's `Role` and `User` elements begin with: the path, the `KIND`
/// name and id, the ARN and the creation date.
fn principal_head(x: &mut Xml, kind: &str, name: &str, id: &str, arn: &str, create_ms: i64) {
    x.leaf("Path", "/");
    x.leaf(&format!("{kind}Name"), name);
    x.leaf(&format!("{kind}Id"), id);
    x.leaf("Arn", arn);
    x.leaf("CreateDate", &crate::time::rfc3339_seconds(create_ms));
}

fn role_xml(x: &mut Xml, r: &Role) {
    x.open("Role");
    principal_head(x, "Role", &r.name, &r.id, &r.arn, r.create_ms);
    x.leaf("AssumeRolePolicyDocument", &encoded(&r.trust));
    x.leaf("MaxSessionDuration", &r.max_session_secs.to_string());
    x.open("RoleLastUsed");
    x.close("RoleLastUsed");
    x.close("Role");
}

fn user_xml(x: &mut Xml, u: &IamUser) {
    x.open("User");
    principal_head(x, "User", &u.name, &u.id, &u.arn, u.create_ms);
    x.close("User");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_uri_encoded_as_iam_answers_them() {
        let doc = serde_json::json!({"Version": "2012-10-17", "Statement": []});
        let e = encoded(&doc);
        assert!(
            e.starts_with("%7B%22Statement%22%3A%5B%5D%2C%22Version%22"),
            "{e}"
        );
        assert_eq!(
            percent_encoding::percent_decode_str(&e)
                .decode_utf8()
                .unwrap(),
            doc.to_string()
        );
    }

    #[test]
    fn names_and_documents_are_checked() {
        assert!(check_name("task-read_secrets.v2@x", "policyName", 128).is_ok());
        for bad in ["", "a b", "a/b", &"x".repeat(129)] {
            let e = check_name(bad, "policyName", 128).unwrap_err();
            assert_eq!(e.code, "ValidationError");
        }
        assert_eq!(
            document(Some("{"), false).unwrap_err().code,
            "MalformedPolicyDocument"
        );
        let e = document(
            Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*"}]}"#),
            true,
        )
        .unwrap_err();
        assert!(e.message.contains("Principal"), "{}", e.message);
        assert_eq!(document(None, false).unwrap_err().code, "MissingParameter");
    }
}
