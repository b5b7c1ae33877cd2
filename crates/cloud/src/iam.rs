//! IAM as Google decides it, for the permissions the local cloud's APIs check.
//!
//! A principal is granted a permission on a resource when some binding on the
//! resource or one of its ancestors (secret → project) names a role containing
//! the permission and a member matching the principal. Conditional bindings are
//! stored and returned, but grant nothing: the local cloud does not evaluate CEL,
//! so it fails closed rather than grant by mistake.

use keyway_wire::google::iam::{Binding, Policy};

/// Does `role` contain `permission`? Unknown roles contain nothing.
pub fn role_has(role: &str, permission: &str) -> bool {
    match role {
        "roles/owner" => EDITOR.contains(&permission) || OWNER_EXTRA.contains(&permission),
        _ => role_permissions(role).is_some_and(|p| p.contains(&permission)),
    }
}

/// Is `role` one the local cloud knows?
pub fn known_role(role: &str) -> bool {
    role == "roles/owner" || role_permissions(role).is_some()
}

/// The permissions of every role the local cloud knows except roles/owner
/// (which is roles/editor plus [`OWNER_EXTRA`], see [`role_has`]). Basic roles
/// are listed for the services the local cloud emulates only.
fn role_permissions(role: &str) -> Option<&'static [&'static str]> {
    Some(match role {
        "roles/editor" => EDITOR,
        "roles/viewer" => VIEWER,
        "roles/secretmanager.admin" => SM_ADMIN,
        "roles/secretmanager.secretAccessor" => &["secretmanager.versions.access"],
        "roles/secretmanager.secretVersionAdder" => &["secretmanager.versions.add"],
        "roles/secretmanager.secretVersionManager" => &[
            "secretmanager.versions.add",
            "secretmanager.versions.destroy",
            "secretmanager.versions.disable",
            "secretmanager.versions.enable",
            "secretmanager.versions.get",
            "secretmanager.versions.list",
            "resourcemanager.projects.get",
        ],
        "roles/secretmanager.viewer" => &[
            "secretmanager.locations.get",
            "secretmanager.locations.list",
            "secretmanager.secrets.get",
            "secretmanager.secrets.list",
            "secretmanager.versions.get",
            "secretmanager.versions.list",
            "resourcemanager.projects.get",
        ],
        "roles/iam.serviceAccountUser" => &[
            "iam.serviceAccounts.actAs",
            "iam.serviceAccounts.get",
            "iam.serviceAccounts.list",
            "resourcemanager.projects.get",
        ],
        "roles/iam.serviceAccountTokenCreator" => TOKEN_CREATOR,
        "roles/iam.workloadIdentityUser" => TOKEN_CREATOR,
        "roles/iam.serviceAccountKeyAdmin" => &[
            "iam.serviceAccountKeys.create",
            "iam.serviceAccountKeys.delete",
            "iam.serviceAccountKeys.get",
            "iam.serviceAccountKeys.list",
            "iam.serviceAccounts.get",
            "iam.serviceAccounts.list",
        ],
        "roles/compute.instanceAdmin.v1" => &[
            "compute.instances.get",
            "compute.instances.list",
            "compute.instances.start",
            "compute.instances.stop",
            "compute.instances.setServiceAccount",
            "compute.zoneOperations.get",
        ],
        "roles/compute.viewer" => &["compute.instances.get", "compute.instances.list", "compute.zoneOperations.get"],
        _ => return None,
    })
}

const TOKEN_CREATOR: &[&str] = &[
    "iam.serviceAccounts.get",
    "iam.serviceAccounts.getAccessToken",
    "iam.serviceAccounts.getOpenIdToken",
    "iam.serviceAccounts.implicitDelegation",
    "iam.serviceAccounts.signBlob",
    "iam.serviceAccounts.signJwt",
];

const SM_ADMIN: &[&str] = &[
    "secretmanager.locations.get",
    "secretmanager.locations.list",
    "secretmanager.secrets.create",
    "secretmanager.secrets.delete",
    "secretmanager.secrets.get",
    "secretmanager.secrets.getIamPolicy",
    "secretmanager.secrets.list",
    "secretmanager.secrets.setIamPolicy",
    "secretmanager.secrets.update",
    "secretmanager.versions.access",
    "secretmanager.versions.add",
    "secretmanager.versions.destroy",
    "secretmanager.versions.disable",
    "secretmanager.versions.enable",
    "secretmanager.versions.get",
    "secretmanager.versions.list",
    "resourcemanager.projects.get",
];

const VIEWER: &[&str] = &[
    "compute.instances.get",
    "compute.instances.list",
    "compute.zoneOperations.get",
    "iam.serviceAccounts.get",
    "iam.serviceAccounts.list",
    "iam.serviceAccountKeys.get",
    "iam.serviceAccountKeys.list",
    "resourcemanager.projects.get",
    "resourcemanager.projects.getIamPolicy",
    "secretmanager.locations.get",
    "secretmanager.locations.list",
    "secretmanager.secrets.get",
    "secretmanager.secrets.list",
    "secretmanager.versions.get",
    "secretmanager.versions.list",
];

const EDITOR: &[&str] = &[
    "compute.instances.get",
    "compute.instances.list",
    "compute.instances.setServiceAccount",
    "compute.instances.start",
    "compute.instances.stop",
    "compute.zoneOperations.get",
    "iam.serviceAccounts.actAs",
    "iam.serviceAccounts.get",
    "iam.serviceAccounts.list",
    "iam.serviceAccountKeys.create",
    "iam.serviceAccountKeys.delete",
    "iam.serviceAccountKeys.get",
    "iam.serviceAccountKeys.list",
    "resourcemanager.projects.get",
    "resourcemanager.projects.getIamPolicy",
    "secretmanager.locations.get",
    "secretmanager.locations.list",
    "secretmanager.secrets.create",
    "secretmanager.secrets.delete",
    "secretmanager.secrets.get",
    "secretmanager.secrets.list",
    "secretmanager.secrets.update",
    "secretmanager.versions.access",
    "secretmanager.versions.add",
    "secretmanager.versions.destroy",
    "secretmanager.versions.disable",
    "secretmanager.versions.enable",
    "secretmanager.versions.get",
    "secretmanager.versions.list",
];

/// What roles/owner has beyond roles/editor (owner = editor + these).
const OWNER_EXTRA: &[&str] = &[
    "iam.serviceAccounts.getAccessToken",
    "iam.serviceAccounts.getIamPolicy",
    "iam.serviceAccounts.getOpenIdToken",
    "iam.serviceAccounts.implicitDelegation",
    "iam.serviceAccounts.setIamPolicy",
    "iam.serviceAccounts.signBlob",
    "iam.serviceAccounts.signJwt",
    "resourcemanager.projects.setIamPolicy",
    "secretmanager.secrets.getIamPolicy",
    "secretmanager.secrets.setIamPolicy",
];

/// Is `member` (as written in a binding) a syntactically valid IAM member?
pub fn valid_member(member: &str) -> bool {
    if member == "allUsers" || member == "allAuthenticatedUsers" {
        return true;
    }
    if member.starts_with("principal://") || member.starts_with("principalSet://") {
        return member.len() > "principal://".len();
    }
    match member.split_once(':') {
        Some(("user" | "serviceAccount" | "group", email)) => {
            email.contains('@') && !email.starts_with('@') && !email.ends_with('@')
        }
        Some(("domain", d)) => !d.is_empty() && d.contains('.'),
        _ => false,
    }
}

/// Does binding member `m` match the authenticated principal `who`
/// (written `user:EMAIL` or `serviceAccount:EMAIL`)?
pub fn member_matches(m: &str, who: &str) -> bool {
    if m == who || m == "allUsers" || m == "allAuthenticatedUsers" {
        return true;
    }
    if let Some(domain) = m.strip_prefix("domain:") {
        if let Some((_, email)) = who.split_once(':') {
            return email.rsplit_once('@').is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain));
        }
    }
    false
}

/// Does `policy` grant `permission` to `who`? Conditional bindings grant nothing.
pub fn grants(policy: &Policy, who: &str, permission: &str) -> bool {
    policy.bindings.iter().any(|b| binding_grants(b, who, permission))
}

fn binding_grants(b: &Binding, who: &str, permission: &str) -> bool {
    b.condition.is_none() && role_has(&b.role, permission) && b.members.iter().any(|m| member_matches(m, who))
}

/// Checks a policy a caller wants to set. Returns a description of the first problem.
pub fn validate_policy(p: &Policy) -> Result<(), String> {
    for (i, b) in p.bindings.iter().enumerate() {
        if !known_role(&b.role) {
            return Err(format!("Role {} is not supported for this resource.", b.role));
        }
        if b.members.is_empty() {
            return Err(format!("Binding {i} for role {} has no members.", b.role));
        }
        for m in &b.members {
            if !valid_member(m) {
                return Err(format!("Invalid member '{m}' in binding for role {}.", b.role));
            }
        }
        if b.condition.is_some() && p.version < 3 {
            return Err("Policies with conditions must have version 3.".into());
        }
    }
    Ok(())
}

/// Adds `member` to `role` in `policy` (as `gcloud ... add-iam-policy-binding` does).
pub fn add_binding(policy: &mut Policy, role: &str, member: &str) {
    if let Some(b) = policy.bindings.iter_mut().find(|b| b.role == role && b.condition.is_none()) {
        if !b.members.iter().any(|m| m == member) {
            b.members.push(member.to_owned());
        }
    } else {
        policy.bindings.push(Binding { role: role.to_owned(), members: vec![member.to_owned()], condition: None });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(role: &str, member: &str) -> Policy {
        let mut p = Policy::default();
        add_binding(&mut p, role, member);
        p
    }

    #[test]
    fn accessor_grants_access_only() {
        let p = policy("roles/secretmanager.secretAccessor", "serviceAccount:vm@p.iam.gserviceaccount.com");
        assert!(grants(&p, "serviceAccount:vm@p.iam.gserviceaccount.com", "secretmanager.versions.access"));
        assert!(!grants(&p, "serviceAccount:vm@p.iam.gserviceaccount.com", "secretmanager.versions.add"));
        assert!(!grants(&p, "user:vm@p.iam.gserviceaccount.com", "secretmanager.versions.access"));
    }

    #[test]
    fn owner_is_not_viewer_and_viewer_cannot_read_payloads() {
        let p = policy("roles/viewer", "user:a@example.com");
        assert!(grants(&p, "user:a@example.com", "secretmanager.secrets.get"));
        assert!(!grants(&p, "user:a@example.com", "secretmanager.versions.access"));
    }

    #[test]
    fn special_members() {
        assert!(member_matches("allUsers", "user:x@y.z"));
        assert!(member_matches("domain:example.com", "user:x@Example.com"));
        assert!(!member_matches("domain:example.com", "user:x@example.org"));
        assert!(valid_member("principalSet://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/*"));
        assert!(!valid_member("bob"));
        assert!(!valid_member("user:"));
    }

    #[test]
    fn conditions_grant_nothing() {
        let mut p = policy("roles/owner", "user:a@b.c");
        p.bindings[0].condition = Some(keyway_wire::google::iam::Expr {
            expression: "true".into(),
            title: None,
            description: None,
        });
        assert!(!grants(&p, "user:a@b.c", "secretmanager.versions.access"));
    }

    #[test]
    fn every_basic_role_is_a_superset_of_the_one_below() {
        for p in VIEWER {
            assert!(role_has("roles/editor", p), "{p} in viewer but not editor");
        }
        for p in EDITOR.iter().chain(OWNER_EXTRA) {
            assert!(role_has("roles/owner", p), "{p} not in owner");
        }
        // Editors may not change IAM policies or read them on secrets; owners may.
        assert!(!role_has("roles/editor", "secretmanager.secrets.setIamPolicy"));
        assert!(role_has("roles/owner", "secretmanager.secrets.setIamPolicy"));
        assert!(!role_has("roles/nonesuch", "secretmanager.versions.access"));
    }
}
