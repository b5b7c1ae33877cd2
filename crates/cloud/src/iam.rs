//! IAM as Google decides it, for the permissions the local cloud's APIs check.
//!
//! A principal is granted a permission on a resource when some binding on the
//! resource or one of its ancestors (secret → project) names a role containing
//! the permission and a member matching the principal. Conditional bindings are
//! stored and returned, but grant nothing: the local cloud does not evaluate CEL,
//! so it fails closed rather than grant by mistake.
//!
//! A federated workload (Workload Identity Federation) is a [`Principal`]
//! whose member is `principal://iam.googleapis.com/POOL/subject/SUBJECT`
//! and which carries its pool's groups and attributes, so bindings naming
//! `principalSet://iam.googleapis.com/POOL/group/G`, `…/attribute.NAME/VALUE`
//! or `…/*` match it.

use keyway_wire::google::iam::{Binding, Policy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The identity an STS token exchange gave a federated workload, as its
/// access token carries it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Federated {
    /// `projects/NUMBER/locations/global/workloadIdentityPools/POOL`.
    pub pool: String,
    /// The mapped `google.subject`.
    pub subject: String,
    /// The mapped `google.groups`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The mapped `attribute.NAME` values, by NAME.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

pub const IAM_HOST: &str = "//iam.googleapis.com/";

impl Federated {
    /// `principal://iam.googleapis.com/POOL/subject/SUBJECT`, the member that names exactly this workload.
    pub fn member(&self) -> String {
        format!("principal:{IAM_HOST}{}/subject/{}", self.pool, self.subject)
    }
}

/// Who asks, for an IAM decision: the member (`user:…`, `serviceAccount:…`,
/// `principal://…`) and, for a federated workload, its pool context.
#[derive(Debug, Clone, Copy)]
pub struct Principal<'a> {
    pub member: &'a str,
    pub federated: Option<&'a Federated>,
}

impl<'a> Principal<'a> {
    /// A principal that is not federated.
    pub fn member(member: &'a str) -> Self {
        Principal {
            member,
            federated: None,
        }
    }
}

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
        "roles/iam.workloadIdentityUser" => &[
            "iam.serviceAccounts.get",
            "iam.serviceAccounts.getAccessToken",
            "iam.serviceAccounts.getOpenIdToken",
            "iam.serviceAccounts.list",
        ],
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
        "roles/iam.serviceAccountAdmin" => &[
            "iam.serviceAccounts.create",
            "iam.serviceAccounts.delete",
            "iam.serviceAccounts.disable",
            "iam.serviceAccounts.enable",
            "iam.serviceAccounts.get",
            "iam.serviceAccounts.getIamPolicy",
            "iam.serviceAccounts.list",
            "iam.serviceAccounts.setIamPolicy",
            "iam.serviceAccounts.undelete",
            "iam.serviceAccounts.update",
            "resourcemanager.projects.get",
        ],
        "roles/iam.workloadIdentityPoolAdmin" => &[
            "iam.workloadIdentityPools.create",
            "iam.workloadIdentityPools.delete",
            "iam.workloadIdentityPools.get",
            "iam.workloadIdentityPools.list",
            "iam.workloadIdentityPools.undelete",
            "iam.workloadIdentityPools.update",
            "iam.workloadIdentityPoolProviders.create",
            "iam.workloadIdentityPoolProviders.delete",
            "iam.workloadIdentityPoolProviders.get",
            "iam.workloadIdentityPoolProviders.list",
            "iam.workloadIdentityPoolProviders.undelete",
            "iam.workloadIdentityPoolProviders.update",
            "resourcemanager.projects.get",
        ],
        "roles/iam.workloadIdentityPoolViewer" => &[
            "iam.workloadIdentityPools.get",
            "iam.workloadIdentityPools.list",
            "iam.workloadIdentityPoolProviders.get",
            "iam.workloadIdentityPoolProviders.list",
        ],
        "roles/compute.viewer" => &[
            "compute.instances.get",
            "compute.instances.list",
            "compute.zoneOperations.get",
        ],
        _ => return None,
    })
}

const TOKEN_CREATOR: &[&str] = &[
    "iam.serviceAccounts.get",
    "iam.serviceAccounts.getAccessToken",
    "iam.serviceAccounts.getOpenIdToken",
    "iam.serviceAccounts.implicitDelegation",
    "iam.serviceAccounts.list",
    "iam.serviceAccounts.signBlob",
    "iam.serviceAccounts.signJwt",
    "resourcemanager.projects.get",
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
    "iam.workloadIdentityPools.get",
    "iam.workloadIdentityPools.list",
    "iam.workloadIdentityPoolProviders.get",
    "iam.workloadIdentityPoolProviders.list",
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
    "iam.workloadIdentityPools.get",
    "iam.workloadIdentityPools.list",
    "iam.workloadIdentityPoolProviders.get",
    "iam.workloadIdentityPoolProviders.list",
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
    "iam.workloadIdentityPoolProviders.update",
    "iam.workloadIdentityPools.update",
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

/// Does binding member `m` match the authenticated principal `who`?
/// `principalSet://` members match a federated principal of their pool: all
/// of it (`/*`), a mapped group (`/group/G`) or a mapped attribute value
/// (`/attribute.NAME/VALUE`).
pub fn member_matches(m: &str, who: &Principal<'_>) -> bool {
    if m == who.member || m == "allUsers" || m == "allAuthenticatedUsers" {
        return true;
    }
    if let Some(domain) = m.strip_prefix("domain:") {
        return who.federated.is_none()
            && who.member.split_once(':').is_some_and(|(_, email)| {
                email
                    .rsplit_once('@')
                    .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain))
            });
    }
    let (Some(set), Some(f)) = (m.strip_prefix("principalSet:"), who.federated) else {
        return false;
    };
    let Some(rest) = set
        .strip_prefix(IAM_HOST)
        .and_then(|r| r.strip_prefix(f.pool.as_str()))
        .and_then(|r| r.strip_prefix('/'))
    else {
        return false;
    };
    if rest == "*" {
        return true;
    }
    if let Some(g) = rest.strip_prefix("group/") {
        return f.groups.iter().any(|x| x == g);
    }
    if let Some((name, value)) = rest
        .strip_prefix("attribute.")
        .and_then(|r| r.split_once('/'))
    {
        return f.attributes.get(name).is_some_and(|v| v == value);
    }
    false
}

/// Does `policy` grant `permission` to `who`? Conditional bindings grant nothing.
pub fn grants(policy: &Policy, who: &Principal<'_>, permission: &str) -> bool {
    policy
        .bindings
        .iter()
        .any(|b| binding_grants(b, who, permission))
}

fn binding_grants(b: &Binding, who: &Principal<'_>, permission: &str) -> bool {
    b.condition.is_none()
        && role_has(&b.role, permission)
        && b.members.iter().any(|m| member_matches(m, who))
}

/// Checks a policy a caller wants to set. Returns a description of the first problem.
/// The most principals the bindings of one allow policy may name, each
/// occurrence counted (Google IAM's documented limit).
pub const MAX_POLICY_MEMBERS: usize = 1500;

/// `n` with thousands separators, as Google writes counts in messages.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn validate_policy(p: &Policy) -> Result<(), String> {
    let members: usize = p.bindings.iter().map(|b| b.members.len()).sum();
    if members > MAX_POLICY_MEMBERS {
        return Err(format!(
            "The number of members in the policy ({}) is larger than the maximum allowed size {}.",
            grouped(members),
            grouped(MAX_POLICY_MEMBERS)
        ));
    }
    for (i, b) in p.bindings.iter().enumerate() {
        if !known_role(&b.role) {
            return Err(format!(
                "Role {} is not supported for this resource.",
                b.role
            ));
        }
        if b.members.is_empty() {
            return Err(format!("Binding {i} for role {} has no members.", b.role));
        }
        for m in &b.members {
            if !valid_member(m) {
                return Err(format!(
                    "Invalid member '{m}' in binding for role {}.",
                    b.role
                ));
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
    if let Some(b) = policy
        .bindings
        .iter_mut()
        .find(|b| b.role == role && b.condition.is_none())
    {
        if !b.members.iter().any(|m| m == member) {
            b.members.push(member.to_owned());
        }
    } else {
        policy.bindings.push(Binding {
            role: role.to_owned(),
            members: vec![member.to_owned()],
            condition: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `p` grants `perm` to the plain member `member`.
    fn member_may(p: &Policy, member: &str, perm: &str) -> bool {
        grants(p, &Principal::member(member), perm)
    }

    fn policy(role: &str, member: &str) -> Policy {
        let mut p = Policy::default();
        add_binding(&mut p, role, member);
        p
    }

    #[test]
    fn accessor_grants_access_only() {
        let p = policy(
            "roles/secretmanager.secretAccessor",
            "serviceAccount:vm@p.iam.gserviceaccount.com",
        );
        assert!(member_may(
            &p,
            "serviceAccount:vm@p.iam.gserviceaccount.com",
            "secretmanager.versions.access"
        ));
        assert!(!member_may(
            &p,
            "serviceAccount:vm@p.iam.gserviceaccount.com",
            "secretmanager.versions.add"
        ));
        assert!(!member_may(
            &p,
            "user:vm@p.iam.gserviceaccount.com",
            "secretmanager.versions.access"
        ));
    }

    #[test]
    fn owner_is_not_viewer_and_viewer_cannot_read_payloads() {
        let p = policy("roles/viewer", "user:a@example.com");
        assert!(member_may(
            &p,
            "user:a@example.com",
            "secretmanager.secrets.get"
        ));
        assert!(!member_may(
            &p,
            "user:a@example.com",
            "secretmanager.versions.access"
        ));
    }

    #[test]
    fn special_members() {
        assert!(member_matches("allUsers", &Principal::member("user:x@y.z")));
        assert!(member_matches(
            "domain:example.com",
            &Principal::member("user:x@Example.com")
        ));
        assert!(!member_matches(
            "domain:example.com",
            &Principal::member("user:x@example.org")
        ));
        assert!(valid_member(
            "principalSet://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/*"
        ));
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
        assert!(!member_may(
            &p,
            "user:a@b.c",
            "secretmanager.versions.access"
        ));
    }

    #[test]
    fn federated_principals_match_their_pool_sets_only() {
        let pool = "projects/123/locations/global/workloadIdentityPools/ci";
        let f = Federated {
            pool: pool.into(),
            subject: "arn:aws:sts::111122223333:assumed-role/build/s1".into(),
            groups: vec!["deployers".into()],
            attributes: BTreeMap::from([(
                "aws_role".into(),
                "arn:aws:sts::111122223333:assumed-role/build".into(),
            )]),
        };
        let member = f.member();
        let who = Principal {
            member: &member,
            federated: Some(&f),
        };
        // Its own subject and sets of its pool match; another pool (even one
        // whose name extends this one's) is another set.
        for (set, matches) in [
            (format!("principal://iam.googleapis.com/{pool}/subject/arn:aws:sts::111122223333:assumed-role/build/s1"), true),
            (format!("principal://iam.googleapis.com/{pool}/subject/other"), false),
            (format!("principalSet://iam.googleapis.com/{pool}/*"), true),
            (format!("principalSet://iam.googleapis.com/{pool}/group/deployers"), true),
            (format!("principalSet://iam.googleapis.com/{pool}/group/admins"), false),
            (format!("principalSet://iam.googleapis.com/{pool}/attribute.aws_role/arn:aws:sts::111122223333:assumed-role/build"), true),
            (format!("principalSet://iam.googleapis.com/{pool}/attribute.aws_role/x"), false),
            (format!("principalSet://iam.googleapis.com/{pool}2/*"), false),
            ("principalSet://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/other/*".to_owned(), false),
        ] {
            assert_eq!(member_matches(&set, &who), matches, "{set}");
        }
        // A non-federated principal is in no pool.
        assert!(!member_matches(
            &format!("principalSet://iam.googleapis.com/{pool}/*"),
            &Principal::member("user:a@b.c")
        ));
        assert!(!member_matches("domain:b.c", &who));
        let mut p = Policy::default();
        add_binding(
            &mut p,
            "roles/secretmanager.secretAccessor",
            &format!("principalSet://iam.googleapis.com/{pool}/group/deployers"),
        );
        assert!(grants(&p, &who, "secretmanager.versions.access"));
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
        assert!(!role_has(
            "roles/editor",
            "secretmanager.secrets.setIamPolicy"
        ));
        assert!(role_has(
            "roles/owner",
            "secretmanager.secrets.setIamPolicy"
        ));
        assert!(!role_has("roles/nonesuch", "secretmanager.versions.access"));
    }
}
