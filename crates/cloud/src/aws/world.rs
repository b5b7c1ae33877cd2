//! The world file's AWS tables: `[[aws_account]]`, `[[aws_user]]`,
//! `[[aws_role]]`, `[[aws_oidc_provider]]`, `[[ec2_instance]]`, `[[ecs_task]]`
//! and `[[aws_secret]]`.
//! Policies may be written as JSON strings or as TOML tables. Validation
//! names the table, the entry and the key, and checks what AWS would refuse
//! when the resources were created (a task role that does not trust
//! `ecs-tasks.amazonaws.com`, an instance profile role that does not trust
//! `ec2.amazonaws.com`).

use super::policy;
use serde::Deserialize;
use serde_json::Value;
use serde_spanned::Spanned;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountDecl {
    pub id: String,
    #[serde(default)]
    pub alias: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDecl {
    pub account: String,
    pub name: String,
    /// Inline identity policies (JSON strings or tables).
    #[serde(default)]
    pub policies: Vec<Value>,
    /// How many access keys to mint (0-2, default 1), written to
    /// `DATA/aws/users/ACCOUNT/NAME/credentials` at each start.
    #[serde(default)]
    pub access_keys: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDecl {
    pub account: String,
    pub name: String,
    /// The trust policy; absent means nobody may assume the role.
    #[serde(default)]
    pub trust: Option<Value>,
    #[serde(default)]
    pub policies: Vec<Value>,
    /// MaxSessionDuration, 3600-43200 (default 3600).
    #[serde(default)]
    pub max_session_secs: Option<i64>,
}

/// An IAM OpenID Connect provider. `url` is the issuer (`https://HOST[/PATH]`);
/// the signing keys are a JWKS document given inline (`jwks`, a JSON string or
/// a table) or read from `jwks_file` at each AssumeRoleWithWebIdentity (so a
/// rotated key is picked up, as AWS refetches the issuer's keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderDecl {
    pub account: String,
    pub url: String,
    pub client_id_list: Vec<String>,
    #[serde(default)]
    pub jwks: Option<Value>,
    #[serde(default)]
    pub jwks_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2Decl {
    pub account: String,
    pub name: String,
    pub region: String,
    #[serde(default)]
    pub availability_zone: Option<String>,
    #[serde(default)]
    pub instance_type: Option<String>,
    /// The instance profile's role (name in the instance's account).
    #[serde(default)]
    pub role: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSecretDecl {
    pub name: String,
    pub value_from: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDecl {
    pub account: String,
    pub name: String,
    pub region: String,
    #[serde(default)]
    pub cluster: Option<String>,
    /// The task definition family (default: the task's name). The task's own
    /// fields are its revision 1; each start runs the family's newest ACTIVE
    /// revision (`aws ecs register-task-definition` adds one). Unique per
    /// account and region.
    #[serde(default)]
    pub family: Option<String>,
    /// The task role: what the containers' SDKs get. Absent: no credentials.
    #[serde(default)]
    pub task_role: Option<String>,
    /// The execution role: what ECS uses to pull `secrets` at start.
    #[serde(default)]
    pub execution_role: Option<String>,
    /// The EC2 launch type: the `[[ec2_instance]]` (same account and region)
    /// the task runs on. Its containers also reach the node's IMDS, so a task
    /// without a task role gets the instance profile's role from the SDKs.
    /// Absent: Fargate.
    #[serde(default)]
    pub instance: Option<String>,
    #[serde(default)]
    pub secrets: Vec<TaskSecretDecl>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretVersionDecl {
    #[serde(default)]
    pub string: Option<String>,
    #[serde(default)]
    pub binary_base64: Option<String>,
    /// The JSON of a world-declared Google service-account key (a name from
    /// some `[[service_account]]`'s `keys`), rendered with the live token endpoint.
    #[serde(default)]
    pub value_from_key: Option<String>,
    /// Default: the last version AWSCURRENT, the one before AWSPREVIOUS.
    #[serde(default)]
    pub stages: Option<Vec<String>>,
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretDecl {
    pub account: String,
    pub region: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub kms_key_id: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub policy: Option<Value>,
    #[serde(default)]
    pub versions: Vec<SecretVersionDecl>,
}

/// The raw AWS tables, as `world.rs` reads them.
#[derive(Debug, Default)]
pub struct Raw {
    pub accounts: Vec<Spanned<AccountDecl>>,
    pub users: Vec<Spanned<UserDecl>>,
    pub roles: Vec<Spanned<RoleDecl>>,
    pub oidc_providers: Vec<Spanned<OidcProviderDecl>>,
    pub ec2: Vec<Spanned<Ec2Decl>>,
    pub tasks: Vec<Spanned<TaskDecl>>,
    pub secrets: Vec<Spanned<SecretDecl>>,
}

/// A validated AWS world: policies are parsed JSON values.
#[derive(Debug, Clone, Default)]
pub struct AwsWorld {
    pub accounts: Vec<AccountDecl>,
    pub users: Vec<UserDecl>,
    pub roles: Vec<RoleDecl>,
    pub oidc_providers: Vec<OidcProviderDecl>,
    pub ec2: Vec<Ec2Decl>,
    pub tasks: Vec<TaskDecl>,
    pub secrets: Vec<SecretDecl>,
}

/// Makes the caller's error (the world file's, with its line) from a span and a message.
type Err<'a, E> = &'a dyn Fn(std::ops::Range<usize>, String) -> E;

/// A policy written as a JSON string or a TOML table → a JSON value, validated.
fn policy_value(v: &Value, resource_policy: bool) -> Result<Value, String> {
    let v = match v {
        Value::String(s) => {
            serde_json::from_str(s).map_err(|e| format!("not a JSON policy document: {e}"))?
        }
        other => other.clone(),
    };
    policy::validate(&v, resource_policy)?;
    Ok(v)
}

/// An OIDC issuer URL as IAM keeps it: `https://HOST/PATH` → `HOST/PATH` (no trailing '/').
pub fn oidc_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let rest = rest.trim_end_matches('/');
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || rest.contains(['?', '#', ' ']) || rest.len() > 255 {
        return None;
    }
    Some(rest.to_owned())
}

pub fn valid_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

fn valid_iam_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// Does the trust policy let `service` assume the role?
pub fn trusts_service(trust: &Value, account: &str, service: &str) -> bool {
    let who = policy::Who {
        arn: service.to_owned(),
        account: account.to_owned(),
        principal_arns: vec![],
        service: Some(service.to_owned()),
        federated: None,
    };
    policy::decide_trust(
        &who,
        &[],
        trust,
        account,
        &super::model::role_arn(account, "x"),
        "sts:AssumeRole",
        &BTreeMap::new(),
    ) == policy::Decision::Allow
}

pub fn validate<E>(raw: Raw, key_names: &[String], err: Err<'_, E>) -> Result<AwsWorld, E> {
    let mut w = AwsWorld::default();
    for a in raw.accounts {
        let span = a.span();
        let a = a.into_inner();
        if a.id.len() != 12 || !a.id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(
                span,
                format!(
                    "[[aws_account]] key `id`: '{}' is not a 12-digit account id",
                    a.id
                ),
            ));
        }
        if w.accounts.iter().any(|o: &AccountDecl| o.id == a.id) {
            return Err(err(
                span,
                format!("[[aws_account]] '{}': declared twice", a.id),
            ));
        }
        w.accounts.push(a);
    }
    let has = |w: &AwsWorld, id: &str| w.accounts.iter().any(|a| a.id == id);
    for u in raw.users {
        let span = u.span();
        let mut u = u.into_inner();
        if !has(&w, &u.account) {
            return Err(err(
                span,
                format!(
                    "[[aws_user]] '{}' key `account`: no [[aws_account]] has id '{}'",
                    u.name, u.account
                ),
            ));
        }
        if !valid_iam_name(&u.name) {
            return Err(err(
                span,
                format!(
                    "[[aws_user]] key `name`: '{}' must be 1-64 letters, digits or +=,.@_-",
                    u.name
                ),
            ));
        }
        if u.access_keys.is_some_and(|n| n > 2) {
            return Err(err(
                span,
                format!(
                    "[[aws_user]] '{}' key `access_keys`: IAM allows at most 2 access keys per user",
                    u.name
                ),
            ));
        }
        for (i, p) in u.policies.iter_mut().enumerate() {
            *p = policy_value(p, false).map_err(|m| {
                err(
                    span.clone(),
                    format!("[[aws_user]] '{}' key `policies[{i}]`: {m}", u.name),
                )
            })?;
        }
        if w.users
            .iter()
            .any(|o: &UserDecl| o.account == u.account && o.name == u.name)
        {
            return Err(err(
                span,
                format!(
                    "[[aws_user]] '{}': declared twice in account {}",
                    u.name, u.account
                ),
            ));
        }
        w.users.push(u);
    }
    for r in raw.roles {
        let span = r.span();
        let mut r = r.into_inner();
        if !has(&w, &r.account) {
            return Err(err(
                span,
                format!(
                    "[[aws_role]] '{}' key `account`: no [[aws_account]] has id '{}'",
                    r.name, r.account
                ),
            ));
        }
        if !valid_iam_name(&r.name) {
            return Err(err(
                span,
                format!(
                    "[[aws_role]] key `name`: '{}' must be 1-64 letters, digits or +=,.@_-",
                    r.name
                ),
            ));
        }
        if let Some(t) = &r.trust {
            r.trust = Some(policy_value(t, true).map_err(|m| {
                err(
                    span.clone(),
                    format!("[[aws_role]] '{}' key `trust`: {m}", r.name),
                )
            })?);
        }
        for (i, p) in r.policies.iter_mut().enumerate() {
            *p = policy_value(p, false).map_err(|m| {
                err(
                    span.clone(),
                    format!("[[aws_role]] '{}' key `policies[{i}]`: {m}", r.name),
                )
            })?;
        }
        if let Some(m) = r.max_session_secs.filter(|m| !(3600..=43200).contains(m)) {
            return Err(err(
                span,
                format!(
                    "[[aws_role]] '{}' key `max_session_secs`: {m} is outside 3600..=43200",
                    r.name
                ),
            ));
        }
        if w.roles
            .iter()
            .any(|o: &RoleDecl| o.account == r.account && o.name == r.name)
        {
            return Err(err(
                span,
                format!(
                    "[[aws_role]] '{}': declared twice in account {}",
                    r.name, r.account
                ),
            ));
        }
        w.roles.push(r);
    }
    for p in raw.oidc_providers {
        let span = p.span();
        let mut p = p.into_inner();
        if !has(&w, &p.account) {
            return Err(err(
                span,
                format!(
                    "[[aws_oidc_provider]] '{}' key `account`: no [[aws_account]] has id '{}'",
                    p.url, p.account
                ),
            ));
        }
        if oidc_host(&p.url).is_none() {
            return Err(err(
                span,
                format!(
                    "[[aws_oidc_provider]] key `url`: '{}' must be an https:// URL without query or fragment (the tokens' `iss`)",
                    p.url
                ),
            ));
        }
        if p.client_id_list.is_empty()
            || p.client_id_list
                .iter()
                .any(|c| c.is_empty() || c.len() > 255)
        {
            return Err(err(
                span,
                format!(
                    "[[aws_oidc_provider]] '{}' key `client_id_list`: list 1 or more audiences (1-255 characters each)",
                    p.url
                ),
            ));
        }
        match (&p.jwks, &p.jwks_file) {
            (Some(j), None) => {
                let v = match j {
                    Value::String(s) => serde_json::from_str(s).map_err(|e| {
                        err(
                            span.clone(),
                            format!(
                                "[[aws_oidc_provider]] '{}' key `jwks`: not JSON ({e})",
                                p.url
                            ),
                        )
                    })?,
                    other => other.clone(),
                };
                crate::jwt::KeySet::from_jwks(&v).map_err(|m| {
                    err(
                        span.clone(),
                        format!("[[aws_oidc_provider]] '{}' key `jwks`: {m}", p.url),
                    )
                })?;
                p.jwks = Some(v);
            }
            (None, Some(f)) => {
                let text = std::fs::read_to_string(f).map_err(|e| {
                    err(
                        span.clone(),
                        format!(
                            "[[aws_oidc_provider]] '{}' key `jwks_file`: reading {f}: {e}",
                            p.url
                        ),
                    )
                })?;
                let v: Value = serde_json::from_str(&text).map_err(|e| {
                    err(
                        span.clone(),
                        format!(
                            "[[aws_oidc_provider]] '{}' key `jwks_file`: {f} is not JSON ({e})",
                            p.url
                        ),
                    )
                })?;
                crate::jwt::KeySet::from_jwks(&v).map_err(|m| {
                    err(
                        span.clone(),
                        format!(
                            "[[aws_oidc_provider]] '{}' key `jwks_file`: {f}: {m}",
                            p.url
                        ),
                    )
                })?;
            }
            _ => {
                return Err(err(
                    span,
                    format!(
                        "[[aws_oidc_provider]] '{}': set exactly one of `jwks` or `jwks_file`",
                        p.url
                    ),
                ));
            }
        }
        let host = oidc_host(&p.url).unwrap_or_default();
        if w.oidc_providers.iter().any(|o: &OidcProviderDecl| {
            o.account == p.account && oidc_host(&o.url) == Some(host.clone())
        }) {
            return Err(err(
                span,
                format!(
                    "[[aws_oidc_provider]] '{}': declared twice in account {}",
                    p.url, p.account
                ),
            ));
        }
        w.oidc_providers.push(p);
    }
    let role = |w: &AwsWorld, account: &str, name: &str| {
        w.roles
            .iter()
            .find(|r| r.account == account && r.name == name)
            .cloned()
    };
    for i in raw.ec2 {
        let span = i.span();
        let i = i.into_inner();
        if !has(&w, &i.account) {
            return Err(err(
                span,
                format!(
                    "[[ec2_instance]] '{}' key `account`: no [[aws_account]] has id '{}'",
                    i.name, i.account
                ),
            ));
        }
        if !valid_region(&i.region) {
            return Err(err(
                span,
                format!(
                    "[[ec2_instance]] '{}' key `region`: '{}' is not a region (like us-east-1)",
                    i.name, i.region
                ),
            ));
        }
        if let Some(rn) = &i.role {
            let Some(r) = role(&w, &i.account, rn) else {
                return Err(err(
                    span,
                    format!(
                        "[[ec2_instance]] '{}' key `role`: no [[aws_role]] '{rn}' in account {}",
                        i.name, i.account
                    ),
                ));
            };
            if !r
                .trust
                .as_ref()
                .is_some_and(|t| trusts_service(t, &r.account, "ec2.amazonaws.com"))
            {
                return Err(err(
                    span,
                    format!(
                        "[[ec2_instance]] '{}' key `role`: role '{rn}' does not trust ec2.amazonaws.com (its `trust` must allow sts:AssumeRole to Principal {{ Service = \"ec2.amazonaws.com\" }})",
                        i.name
                    ),
                ));
            }
        }
        if w.ec2.iter().any(|o: &Ec2Decl| o.name == i.name) {
            return Err(err(
                span,
                format!(
                    "[[ec2_instance]] '{}': declared twice (names are unique in a world)",
                    i.name
                ),
            ));
        }
        w.ec2.push(i);
    }
    for t in raw.tasks {
        let span = t.span();
        let t = t.into_inner();
        if !has(&w, &t.account) {
            return Err(err(
                span,
                format!(
                    "[[ecs_task]] '{}' key `account`: no [[aws_account]] has id '{}'",
                    t.name, t.account
                ),
            ));
        }
        if !valid_region(&t.region) {
            return Err(err(
                span,
                format!(
                    "[[ecs_task]] '{}' key `region`: '{}' is not a region (like us-east-1)",
                    t.name, t.region
                ),
            ));
        }
        for (k, rn) in [
            ("task_role", &t.task_role),
            ("execution_role", &t.execution_role),
        ] {
            let Some(rn) = rn else { continue };
            let Some(r) = role(&w, &t.account, rn) else {
                return Err(err(
                    span,
                    format!(
                        "[[ecs_task]] '{}' key `{k}`: no [[aws_role]] '{rn}' in account {}",
                        t.name, t.account
                    ),
                ));
            };
            if !r
                .trust
                .as_ref()
                .is_some_and(|tr| trusts_service(tr, &r.account, "ecs-tasks.amazonaws.com"))
            {
                return Err(err(
                    span,
                    format!(
                        "[[ecs_task]] '{}' key `{k}`: ECS was unable to assume the role '{}' that was provided for this task: its `trust` must allow sts:AssumeRole to Principal {{ Service = \"ecs-tasks.amazonaws.com\" }}",
                        t.name, r.name
                    ),
                ));
            }
        }
        if let Some(n) = &t.instance
            && !w
                .ec2
                .iter()
                .any(|i| &i.name == n && i.account == t.account && i.region == t.region)
        {
            return Err(err(
                span,
                format!(
                    "[[ecs_task]] '{}' key `instance`: no [[ec2_instance]] '{n}' in account {} and region {}",
                    t.name, t.account, t.region
                ),
            ));
        }
        for s in &t.secrets {
            if s.name.is_empty()
                || (!s.value_from.starts_with("arn:aws:secretsmanager:")
                    && s.value_from.starts_with("arn:"))
            {
                return Err(err(
                    span,
                    format!(
                        "[[ecs_task]] '{}' key `secrets`: '{}' is not a Secrets Manager secret ARN or name (SSM parameters are not served)",
                        t.name, s.value_from
                    ),
                ));
            }
        }
        if w.tasks.iter().any(|o: &TaskDecl| o.name == t.name) {
            return Err(err(
                span,
                format!(
                    "[[ecs_task]] '{}': declared twice (names are unique in a world)",
                    t.name
                ),
            ));
        }
        // A task runs the newest revision of its family, so two tasks of one
        // family would run one definition: each declares its own.
        let family = |d: &TaskDecl| d.family.clone().unwrap_or_else(|| d.name.clone());
        if let Some(o) = w
            .tasks
            .iter()
            .find(|o| o.account == t.account && o.region == t.region && family(o) == family(&t))
        {
            return Err(err(
                span,
                format!(
                    "[[ecs_task]] '{}' key `family`: task '{}' already runs family '{}' in {} {}; each task runs the newest revision of its own family",
                    t.name,
                    o.name,
                    family(&t),
                    t.account,
                    t.region
                ),
            ));
        }
        w.tasks.push(t);
    }
    for s in raw.secrets {
        let span = s.span();
        let mut s = s.into_inner();
        if !has(&w, &s.account) {
            return Err(err(
                span,
                format!(
                    "[[aws_secret]] '{}' key `account`: no [[aws_account]] has id '{}'",
                    s.name, s.account
                ),
            ));
        }
        if !valid_region(&s.region) {
            return Err(err(
                span,
                format!(
                    "[[aws_secret]] '{}' key `region`: '{}' is not a region (like us-east-1)",
                    s.name, s.region
                ),
            ));
        }
        if s.name.is_empty()
            || s.name.len() > 512
            || !s
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
        {
            return Err(err(
                span,
                format!(
                    "[[aws_secret]] key `name`: '{}' must be 1-512 letters, digits or /_+=.@-",
                    s.name
                ),
            ));
        }
        // Secrets Manager's tag limits, as CreateSecret enforces them.
        let max = crate::aws::model::MAX_TAGS;
        if s.tags.len() > max {
            return Err(err(
                span,
                format!(
                    "[[aws_secret]] '{}' key `tags`: {} tags, Secrets Manager allows at most {max} per secret",
                    s.name,
                    s.tags.len()
                ),
            ));
        }
        if let Some((k, _)) = s
            .tags
            .iter()
            .find(|(k, v)| !(1..=128).contains(&k.chars().count()) || v.chars().count() > 256)
        {
            return Err(err(
                span,
                format!(
                    "[[aws_secret]] '{}' key `tags`: tag '{k}' needs a key of 1-128 and a value of at most 256 characters",
                    s.name
                ),
            ));
        }
        if let Some(p) = &s.policy {
            s.policy = Some(policy_value(p, true).map_err(|m| {
                err(
                    span.clone(),
                    format!("[[aws_secret]] '{}' key `policy`: {m}", s.name),
                )
            })?);
        }
        for (n, v) in s.versions.iter().enumerate() {
            let set = [
                v.string.is_some(),
                v.binary_base64.is_some(),
                v.value_from_key.is_some(),
            ]
            .iter()
            .filter(|x| **x)
            .count();
            if set != 1 {
                return Err(err(
                    span,
                    format!(
                        "[[aws_secret]] '{}' versions[{n}]: set exactly one of `string`, `binary_base64` or `value_from_key`",
                        s.name
                    ),
                ));
            }
            if let Some(k) = v.value_from_key.as_ref().filter(|k| !key_names.contains(k)) {
                return Err(err(
                    span,
                    format!(
                        "[[aws_secret]] '{}' versions[{n}] key `value_from_key`: no [[service_account]] declares a key named '{k}'",
                        s.name
                    ),
                ));
            }
            if let Some(b) = &v.binary_base64 {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .map_err(|e| err(span.clone(), format!("[[aws_secret]] '{}' versions[{n}] key `binary_base64`: not base64 ({e})", s.name)))?;
            }
            if v.id
                .as_ref()
                .is_some_and(|id| !(32..=64).contains(&id.len()))
            {
                return Err(err(
                    span,
                    format!(
                        "[[aws_secret]] '{}' versions[{n}] key `id`: a version id is 32-64 characters",
                        s.name
                    ),
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for v in &s.versions {
            for st in v.stages.iter().flatten() {
                if !seen.insert(st.clone()) {
                    return Err(err(
                        span,
                        format!(
                            "[[aws_secret]] '{}': staging label '{st}' is on more than one version",
                            s.name
                        ),
                    ));
                }
            }
        }
        if w.secrets.iter().any(|o: &SecretDecl| {
            o.account == s.account && o.region == s.region && o.name == s.name
        }) {
            return Err(err(
                span,
                format!(
                    "[[aws_secret]] '{}': declared twice in {} {}",
                    s.name, s.account, s.region
                ),
            ));
        }
        w.secrets.push(s);
    }
    Ok(w)
}
