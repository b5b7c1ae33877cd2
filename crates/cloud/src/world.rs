//! The world file: a declarative TOML description of the cloud a developer wants
//! to reproduce (projects, users, service accounts, VMs, IAM bindings, secrets;
//! and, in [`crate::aws::world`], AWS accounts, IAM, EC2, ECS and Secrets Manager).
//! It seeds an empty store once; after that the store is the truth and the
//! world file is not re-read (`keyway cloud up --reset` starts over). The
//! store records the digest of the file it was seeded from, and a start
//! with a different file is refused rather than silently keeping the old world.
//!
//! Every error names the file, the line and the key, because a world file is
//! written by hand.

use serde::Deserialize;
use serde_spanned::Spanned;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct WorldError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    settings: Option<Spanned<Settings>>,
    #[serde(default)]
    project: Vec<Spanned<ProjectDecl>>,
    #[serde(default)]
    user: Vec<Spanned<UserDecl>>,
    #[serde(default)]
    service_account: Vec<Spanned<ServiceAccountDecl>>,
    #[serde(default)]
    instance: Vec<Spanned<InstanceDecl>>,
    #[serde(default)]
    binding: Vec<Spanned<BindingDecl>>,
    #[serde(default)]
    secret: Vec<Spanned<SecretDecl>>,
    #[serde(default)]
    aws_account: Vec<Spanned<crate::aws::world::AccountDecl>>,
    #[serde(default)]
    aws_user: Vec<Spanned<crate::aws::world::UserDecl>>,
    #[serde(default)]
    aws_role: Vec<Spanned<crate::aws::world::RoleDecl>>,
    #[serde(default)]
    aws_oidc_provider: Vec<Spanned<crate::aws::world::OidcProviderDecl>>,
    #[serde(default)]
    ec2_instance: Vec<Spanned<crate::aws::world::Ec2Decl>>,
    #[serde(default)]
    ecs_task: Vec<Spanned<crate::aws::world::TaskDecl>>,
    #[serde(default)]
    aws_secret: Vec<Spanned<crate::aws::world::SecretDecl>>,
    #[serde(default, alias = "workload_identity_pool")]
    workload_identity_pools: Vec<Spanned<WiPoolDecl>>,
    #[serde(default, alias = "workload_identity_pool_provider")]
    workload_identity_pool_providers: Vec<Spanned<WiProviderDecl>>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Lifetime of access and ID tokens the cloud mints, in seconds (Google: 3599);
    /// below that, AWS sessions (STS, ECS, EC2 credentials) are shortened to it too.
    #[serde(default)]
    pub token_lifetime_secs: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectDecl {
    pub id: String,
    pub number: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDecl {
    pub email: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountDecl {
    pub project: String,
    /// The account id: the part before `@PROJECT.iam.gserviceaccount.com`.
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// JSON keys to mint at seed time, written to `DATA/keys/NAME.json`.
    #[serde(default)]
    pub keys: Vec<String>,
    /// The numeric unique id (`sub`/`azp` of its ID tokens); random when absent.
    /// Declare it to write an AWS trust condition on `accounts.google.com:aud`.
    #[serde(default)]
    pub unique_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceDecl {
    pub project: String,
    pub zone: String,
    pub name: String,
    #[serde(default)]
    pub status: Option<String>,
    /// `"default"` (the Compute Engine default service account, the default),
    /// an email, or `"none"`.
    #[serde(default)]
    pub service_account: Option<String>,
    /// Access scopes: URLs or gcloud aliases (`default`, `cloud-platform`, ...).
    /// Absent means `["default"]`, GCE's "Allow default access".
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub machine_type: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingDecl {
    /// `projects/ID` or `projects/ID/secrets/NAME`.
    pub resource: String,
    pub role: String,
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretDecl {
    pub project: String,
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub versions: Vec<VersionDecl>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionDecl {
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub data_base64: Option<String>,
    /// `enabled` (default), `disabled` or `destroyed`.
    #[serde(default)]
    pub state: Option<String>,
}

/// `[[workload_identity_pools]]`: a Workload Identity Federation pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WiPoolDecl {
    pub project: String,
    /// 4-32 lowercase letters, digits or hyphens (the `gcp-` prefix is Google's).
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub disabled: bool,
}

/// `[[workload_identity_pool_providers]]`: a provider of a pool; exactly one
/// of `aws` or `oidc`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WiProviderDecl {
    pub project: String,
    pub pool: String,
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub aws: Option<AwsProviderDecl>,
    #[serde(default)]
    pub oidc: Option<OidcProviderDecl>,
    /// `google.subject` / `google.groups` / `attribute.NAME` → CEL expression
    /// over `assertion`. Absent: Google's default for the provider type.
    #[serde(default)]
    pub attribute_mapping: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub attribute_condition: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsProviderDecl {
    /// The 12-digit AWS account whose callers the provider trusts.
    pub account_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderDecl {
    pub issuer_uri: String,
    /// Accepted `aud` values; empty means the provider's full resource name
    /// with an `https:` prefix, as Google does.
    #[serde(default)]
    pub allowed_audiences: Vec<String>,
    /// The issuer's keys as a JWKS document. Without it (and without
    /// `jwks_file`) the issuer must be the local cloud's own
    /// (`https://accounts.google.com`), whose signing key is used.
    #[serde(default)]
    pub jwks_json: Option<String>,
    /// A JWKS file, relative to the world file's directory.
    #[serde(default)]
    pub jwks_file: Option<String>,
}

/// A validated world. Scopes are expanded to URLs; service-account references
/// are resolved to emails.
/// A declared secret version: its payload bytes and its state.
pub type VersionPayload = (Vec<u8>, String);

#[derive(Debug, Clone, Default)]
pub struct World {
    pub settings: Settings,
    pub projects: Vec<ProjectDecl>,
    pub users: Vec<UserDecl>,
    pub service_accounts: Vec<ServiceAccountDecl>,
    pub instances: Vec<InstanceDecl>,
    pub bindings: Vec<BindingDecl>,
    /// Each secret with its versions' payloads and states.
    pub secrets: Vec<(SecretDecl, Vec<VersionPayload>)>,
    /// The AWS half (see [`crate::aws::world`]).
    pub aws: crate::aws::world::AwsWorld,
    pub wi_pools: Vec<WiPoolDecl>,
    /// Providers with their mapping defaulted and their JWKS read.
    pub wi_providers: Vec<crate::store::WiProvider>,
    /// SHA-256 (hex) of the world file's text: the store records the digest
    /// of the file it was seeded from, so a different file is noticed.
    pub source_sha256: String,
}

pub const DEFAULT_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/devstorage.read_only",
    "https://www.googleapis.com/auth/logging.write",
    "https://www.googleapis.com/auth/monitoring.write",
    "https://www.googleapis.com/auth/servicecontrol",
    "https://www.googleapis.com/auth/service.management.readonly",
    "https://www.googleapis.com/auth/trace.append",
];

pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Expands gcloud's scope aliases (`gcloud compute instances create --scopes`) to URLs.
pub fn expand_scopes(input: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for s in input {
        let s = s.trim();
        let add: Vec<String> = match s {
            "default" => DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
            "" => return Err("an empty scope".into()),
            _ if s.starts_with("https://") => vec![s.to_owned()],
            _ if s.contains('/') || s.contains(':') || s.contains(' ') => {
                return Err(format!("'{s}' is not a scope URL or alias"));
            }
            alias => vec![format!(
                "https://www.googleapis.com/auth/{}",
                match alias {
                    "compute-ro" => "compute.readonly",
                    "compute-rw" => "compute",
                    "storage-ro" => "devstorage.read_only",
                    "storage-rw" => "devstorage.read_write",
                    "storage-full" => "devstorage.full_control",
                    "logging-write" => "logging.write",
                    "monitoring-write" => "monitoring.write",
                    "service-control" => "servicecontrol",
                    "service-management" => "service.management.readonly",
                    "sql-admin" => "sqlservice.admin",
                    "userinfo-email" => "userinfo.email",
                    "trace" => "trace.append",
                    other => other,
                }
            )],
        };
        for a in add {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    Ok(out)
}

fn line_of(src: &str, offset: usize) -> usize {
    src.as_bytes()[..offset.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

pub fn load(path: &Path) -> Result<World, WorldError> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| WorldError {
        file: file.clone(),
        line: 0,
        message: format!("cannot read the world file: {e}"),
    })?;
    parse(&file, &src)
}

pub fn parse(file: &str, src: &str) -> Result<World, WorldError> {
    let raw: Raw = toml::from_str(src).map_err(|e| {
        let line = e.span().map(|s| line_of(src, s.start)).unwrap_or(0);
        let mut message = e.message().to_owned();
        // serde's type errors do not say which key; the offending line does.
        if !message.contains('`')
            && let Some(key) = src
                .lines()
                .nth(line.saturating_sub(1))
                .and_then(|l| l.split_once('='))
                .map(|(k, _)| k.trim())
            && !key.is_empty()
            && !key.starts_with('[')
        {
            message = format!("key `{key}`: {message}");
        }
        WorldError {
            file: file.to_owned(),
            line,
            message,
        }
    })?;
    let err = |span: std::ops::Range<usize>, message: String| WorldError {
        file: file.to_owned(),
        line: line_of(src, span.start),
        message,
    };

    let mut w = World {
        settings: raw.settings.map(|s| s.into_inner()).unwrap_or_default(),
        source_sha256: crate::crypto::hex(&crate::crypto::sha256(src.as_bytes())),
        ..World::default()
    };
    if let Some(l) = w.settings.token_lifetime_secs
        && !(1..=43200).contains(&l)
    {
        return Err(err(
            0..0,
            format!("[settings] key `token_lifetime_secs`: {l} is outside 1..=43200"),
        ));
    }
    for p in raw.project {
        let span = p.span();
        let p = p.into_inner();
        if !valid_project_id(&p.id) {
            return Err(err(
                span,
                format!(
                    "[[project]] key `id`: '{}' is not a valid project id (6-30 characters: lowercase letters, digits, hyphens; starts with a letter)",
                    p.id
                ),
            ));
        }
        if p.number == 0 || p.number > 999_999_999_999_999 {
            return Err(err(
                span,
                format!(
                    "[[project]] '{}' key `number`: must be a positive number of at most 15 digits",
                    p.id
                ),
            ));
        }
        if w.projects
            .iter()
            .any(|q: &ProjectDecl| q.id == p.id || q.number == p.number)
        {
            return Err(err(
                span,
                format!(
                    "[[project]] '{}': a project with this id or number is declared twice",
                    p.id
                ),
            ));
        }
        w.projects.push(p);
    }
    let has_project = |w: &World, id: &str| w.projects.iter().any(|p| p.id == id);
    let need_project = |w: &World, table: &str, name: &str, project: &str| {
        if has_project(w, project) {
            Ok(())
        } else {
            Err(format!(
                "[[{table}]] '{name}' key `project`: no [[project]] has id '{project}'"
            ))
        }
    };
    for u in raw.user {
        let span = u.span();
        let u = u.into_inner();
        if !valid_email(&u.email) {
            return Err(err(
                span,
                format!(
                    "[[user]] key `email`: '{}' is not an email address",
                    u.email
                ),
            ));
        }
        w.users.push(u);
    }
    for s in raw.service_account {
        let span = s.span();
        let s = s.into_inner();
        need_project(&w, "service_account", &s.name, &s.project)
            .map_err(|m| err(span.clone(), m))?;
        if !(6..=30).contains(&s.name.len())
            || !s
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(err(
                span,
                format!(
                    "[[service_account]] key `name`: '{}' must be 6-30 lowercase letters, digits or hyphens",
                    s.name
                ),
            ));
        }
        for k in &s.keys {
            if k.is_empty()
                || !k
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(err(
                    span.clone(),
                    format!(
                        "[[service_account]] '{}' key `keys`: '{k}' is not a usable file name (letters, digits, - and _)",
                        s.name
                    ),
                ));
            }
        }
        if let Some(u) = s
            .unique_id
            .as_ref()
            .filter(|u| !(u.len() == 21 && u.bytes().all(|b| b.is_ascii_digit())))
        {
            return Err(err(
                span,
                format!(
                    "[[service_account]] '{}' key `unique_id`: '{u}' is not a 21-digit number (Google's form)",
                    s.name
                ),
            ));
        }
        if let Some(u) = s.unique_id.as_ref().filter(|u| {
            w.service_accounts
                .iter()
                .any(|o: &ServiceAccountDecl| o.unique_id.as_ref() == Some(*u))
        }) {
            return Err(err(
                span,
                format!(
                    "[[service_account]] '{}' key `unique_id`: '{u}' is already another account's",
                    s.name
                ),
            ));
        }
        w.service_accounts.push(s);
    }
    for i in raw.instance {
        let span = i.span();
        let mut i = i.into_inner();
        need_project(&w, "instance", &i.name, &i.project).map_err(|m| err(span.clone(), m))?;
        if i.name.is_empty()
            || !i
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(err(
                span,
                format!(
                    "[[instance]] key `name`: '{}' must be lowercase letters, digits and hyphens",
                    i.name
                ),
            ));
        }
        match i.status.as_deref().map(str::to_ascii_uppercase).as_deref() {
            None | Some("RUNNING") => i.status = Some("RUNNING".into()),
            Some("TERMINATED") | Some("STOPPED") => i.status = Some("TERMINATED".into()),
            Some(other) => {
                return Err(err(
                    span,
                    format!(
                        "[[instance]] '{}' key `status`: '{other}' is not RUNNING or TERMINATED",
                        i.name
                    ),
                ));
            }
        }
        let scopes = i.scopes.clone().unwrap_or_else(|| vec!["default".into()]);
        i.scopes = Some(expand_scopes(&scopes).map_err(|e| {
            err(
                span.clone(),
                format!("[[instance]] '{}' key `scopes`: {e}", i.name),
            )
        })?);
        // Names are unique across the world (not only per zone, as on GCE) so
        // `keyway cloud env --instance NAME` is never ambiguous.
        if w.instances.iter().any(|o: &InstanceDecl| o.name == i.name) {
            return Err(err(
                span,
                format!(
                    "[[instance]] '{}': an instance with this name is already declared (names are unique in a world)",
                    i.name
                ),
            ));
        }
        w.instances.push(i);
    }
    for s in raw.secret {
        let span = s.span();
        let s = s.into_inner();
        need_project(&w, "secret", &s.name, &s.project).map_err(|m| err(span.clone(), m))?;
        if !valid_secret_id(&s.name) {
            return Err(err(
                span,
                format!(
                    "[[secret]] key `name`: '{}' must be 1-255 letters, digits, - or _",
                    s.name
                ),
            ));
        }
        let mut versions = Vec::new();
        for (n, v) in s.versions.iter().enumerate() {
            let data = match (&v.data, &v.data_base64) {
                (Some(d), None) => d.as_bytes().to_vec(),
                (None, Some(b)) => {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.decode(b.trim()).map_err(|e| {
                        err(span.clone(), format!("[[secret]] '{}' versions[{n}] key `data_base64`: not base64 ({e})", s.name))
                    })?
                }
                _ => {
                    return Err(err(
                        span.clone(),
                        format!(
                            "[[secret]] '{}' versions[{n}]: set exactly one of `data` or `data_base64`",
                            s.name
                        ),
                    ));
                }
            };
            if data.len() > 65536 {
                return Err(err(
                    span.clone(),
                    format!(
                        "[[secret]] '{}' versions[{n}]: payload is {} bytes; Secret Manager's limit is 65536",
                        s.name,
                        data.len()
                    ),
                ));
            }
            let state = match v
                .state
                .as_deref()
                .unwrap_or("enabled")
                .to_ascii_uppercase()
                .as_str()
            {
                s @ ("ENABLED" | "DISABLED" | "DESTROYED") => s.to_owned(),
                other => {
                    return Err(err(
                        span.clone(),
                        format!(
                            "[[secret]] '{}' versions[{n}] key `state`: '{other}' is not enabled, disabled or destroyed",
                            s.name
                        ),
                    ));
                }
            };
            versions.push((data, state));
        }
        if w.secrets
            .iter()
            .any(|(o, _)| o.project == s.project && o.name == s.name)
        {
            return Err(err(
                span,
                format!(
                    "[[secret]] '{}': declared twice in project '{}'",
                    s.name, s.project
                ),
            ));
        }
        w.secrets.push((s, versions));
    }
    for p in raw.workload_identity_pools {
        let span = p.span();
        let p = p.into_inner();
        need_project(&w, "workload_identity_pools", &p.id, &p.project)
            .map_err(|m| err(span.clone(), m))?;
        if !valid_wi_id(&p.id) {
            return Err(err(
                span,
                format!(
                    "[[workload_identity_pools]] key `id`: '{}' must be 4-32 lowercase letters, digits or hyphens, start with a letter, and not start with 'gcp-'",
                    p.id
                ),
            ));
        }
        if w.wi_pools
            .iter()
            .any(|o| o.project == p.project && o.id == p.id)
        {
            return Err(err(
                span,
                format!(
                    "[[workload_identity_pools]] '{}': declared twice in project '{}'",
                    p.id, p.project
                ),
            ));
        }
        w.wi_pools.push(p);
    }
    let base_dir = Path::new(file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    for p in raw.workload_identity_pool_providers {
        let span = p.span();
        let p = p.into_inner();
        w.wi_providers.push(
            validate_provider(&w, p, &base_dir)
                .map_err(|m| err(span, format!("[[workload_identity_pool_providers]] {m}")))?,
        );
    }
    for b in raw.binding {
        let span = b.span();
        let b = b.into_inner();
        let parts: Vec<&str> = b.resource.split('/').collect();
        match parts.as_slice() {
            ["projects", p] if has_project(&w, p) => {}
            ["projects", p, "secrets", s]
                if w.secrets
                    .iter()
                    .any(|(d, _)| d.project == *p && d.name == *s) => {}
            ["projects", p, "serviceAccounts", email]
                if has_project(&w, p)
                    && (w
                        .service_accounts
                        .iter()
                        .any(|s| sa_email(s) == *email && s.project == *p)
                        || w.projects
                            .iter()
                            .any(|x| x.id == *p && compute_default_sa(x.number) == *email)) => {}
            _ => {
                return Err(err(
                    span,
                    format!(
                        "[[binding]] key `resource`: '{}' is not a declared project (projects/ID), secret (projects/ID/secrets/NAME) or service account (projects/ID/serviceAccounts/EMAIL)",
                        b.resource
                    ),
                ));
            }
        }
        if !crate::iam::known_role(&b.role) {
            return Err(err(
                span,
                format!(
                    "[[binding]] key `role`: '{}' is not a role the local cloud knows",
                    b.role
                ),
            ));
        }
        for m in &b.members {
            if !crate::iam::valid_member(m) {
                return Err(err(
                    span.clone(),
                    format!(
                        "[[binding]] key `members`: '{m}' is not an IAM member (user:EMAIL, serviceAccount:EMAIL, group:EMAIL, domain:DOMAIN, allUsers, allAuthenticatedUsers, principal://..., principalSet://...)"
                    ),
                ));
            }
        }
        w.bindings.push(b);
    }
    let key_names: Vec<String> = w
        .service_accounts
        .iter()
        .flat_map(|s| s.keys.iter().cloned())
        .collect();
    let aws_raw = crate::aws::world::Raw {
        accounts: raw.aws_account,
        users: raw.aws_user,
        roles: raw.aws_role,
        oidc_providers: raw.aws_oidc_provider,
        ec2: raw.ec2_instance,
        tasks: raw.ecs_task,
        secrets: raw.aws_secret,
    };
    w.aws = crate::aws::world::validate(aws_raw, &key_names, &err)?;
    for i in &w.instances {
        match i.service_account.as_deref() {
            None | Some("default") | Some("none") => {}
            Some(email) if w.service_accounts.iter().any(|s| sa_email(s) == email) => {}
            Some(other) => {
                return Err(WorldError {
                    file: file.to_owned(),
                    line: 0,
                    message: format!(
                        "[[instance]] '{}' key `service_account`: '{other}' is not 'default', 'none' or the email of a declared [[service_account]]",
                        i.name
                    ),
                });
            }
        }
    }
    Ok(w)
}

/// Checks a provider declaration and turns it into what the store keeps.
fn validate_provider(
    w: &World,
    p: WiProviderDecl,
    base_dir: &Path,
) -> Result<crate::store::WiProvider, String> {
    use crate::google::attributes;
    use crate::store::WiTrust;
    let name = format!("'{}'", p.id);
    if !w
        .wi_pools
        .iter()
        .any(|x| x.project == p.project && x.id == p.pool)
    {
        return Err(format!(
            "{name} key `pool`: no [[workload_identity_pools]] has project '{}' and id '{}'",
            p.project, p.pool
        ));
    }
    if !valid_wi_id(&p.id) {
        return Err(format!(
            "key `id`: '{}' must be 4-32 lowercase letters, digits or hyphens, start with a letter, and not start with 'gcp-'",
            p.id
        ));
    }
    if w.wi_providers
        .iter()
        .any(|o| o.project == p.project && o.pool == p.pool && o.id == p.id)
    {
        return Err(format!("{name}: declared twice in pool '{}'", p.pool));
    }
    let trust = match (p.aws, p.oidc) {
        (Some(a), None) => {
            if a.account_id.len() != 12 || !a.account_id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "{name} key `aws.account_id`: '{}' is not a 12-digit AWS account id",
                    a.account_id
                ));
            }
            WiTrust::Aws {
                account_id: a.account_id,
            }
        }
        (None, Some(o)) => {
            if !o.issuer_uri.starts_with("https://") {
                return Err(format!(
                    "{name} key `oidc.issuer_uri`: '{}' must be an https:// URL",
                    o.issuer_uri
                ));
            }
            let jwks = match (o.jwks_json, o.jwks_file) {
                (Some(j), None) => Some(j),
                (None, Some(f)) => {
                    let path = base_dir.join(&f);
                    Some(std::fs::read_to_string(&path).map_err(|e| {
                        format!(
                            "{name} key `oidc.jwks_file`: cannot read {}: {e}",
                            path.display()
                        )
                    })?)
                }
                (None, None) => None,
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "{name}: set at most one of `oidc.jwks_json` and `oidc.jwks_file`"
                    ));
                }
            };
            match &jwks {
                Some(j) => {
                    let v: serde_json::Value = serde_json::from_str(j)
                        .map_err(|e| format!("{name} key `oidc.jwks_json`: not JSON ({e})"))?;
                    if !v.get("keys").is_some_and(|k| k.is_array()) {
                        return Err(format!(
                            "{name} key `oidc.jwks_json`: a JWKS is an object with a `keys` array"
                        ));
                    }
                }
                None if o.issuer_uri.trim_end_matches('/') == crate::crypto::ID_TOKEN_ISSUER => {}
                None => {
                    return Err(format!(
                        "{name} key `oidc`: the local cloud cannot fetch {}'s keys; give `jwks_json` or `jwks_file` (only the local cloud's own issuer, {}, needs neither)",
                        o.issuer_uri,
                        crate::crypto::ID_TOKEN_ISSUER
                    ));
                }
            }
            WiTrust::Oidc {
                issuer_uri: o.issuer_uri,
                allowed_audiences: o.allowed_audiences,
                jwks_json: jwks,
            }
        }
        _ => return Err(format!("{name}: set exactly one of `aws` or `oidc`")),
    };
    let mapping = match p.attribute_mapping {
        Some(m) => m,
        None if matches!(trust, WiTrust::Aws { .. }) => attributes::default_aws_mapping(),
        None => attributes::default_oidc_mapping(),
    };
    if !mapping.contains_key("google.subject") {
        return Err(format!(
            "{name} key `attribute_mapping`: must map `google.subject`"
        ));
    }
    attributes::validate_mapping(&mapping)
        .map_err(|e| format!("{name} key `attribute_mapping`: {e}"))?;
    let condition = p.attribute_condition.filter(|c| !c.trim().is_empty());
    if let Some(c) = &condition {
        attributes::validate_condition(c)
            .map_err(|e| format!("{name} key `attribute_condition`: {e}"))?;
    }
    Ok(crate::store::WiProvider {
        project: p.project,
        pool: p.pool,
        id: p.id,
        display_name: p.display_name.unwrap_or_default(),
        description: String::new(),
        disabled: p.disabled,
        trust,
        attribute_mapping: mapping,
        attribute_condition: condition,
    })
}

/// A workload identity pool or provider id.
pub fn valid_wi_id(id: &str) -> bool {
    (4..=32).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && !id.starts_with("gcp-")
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub fn sa_email(s: &ServiceAccountDecl) -> String {
    format!("{}@{}.iam.gserviceaccount.com", s.name, s.project)
}

pub fn compute_default_sa(project_number: u64) -> String {
    format!("{project_number}-compute@developer.gserviceaccount.com")
}

pub fn valid_project_id(id: &str) -> bool {
    (6..=30).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub fn valid_secret_id(id: &str) -> bool {
    (1..=255).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_email(e: &str) -> bool {
    matches!(e.split_once('@'), Some((l, d)) if !l.is_empty() && d.contains('.') && !e.contains(char::is_whitespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
[[project]]
id = "kaggle-gpu"
number = 123456789012

[[user]]
email = "owner@example.com"

[[instance]]
project = "kaggle-gpu"
zone = "asia-northeast1-a"
name = "kaggle-vm"

[[secret]]
project = "kaggle-gpu"
name = "wandb-api-key"
versions = [{ data = "abc" }]

[[binding]]
resource = "projects/kaggle-gpu"
role = "roles/owner"
members = ["user:owner@example.com"]
"#;

    #[test]
    fn parses_and_expands_default_scopes() {
        let w = parse("w.toml", OK).unwrap();
        assert_eq!(
            w.instances[0].scopes.as_deref().unwrap(),
            DEFAULT_SCOPES
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        );
        assert!(
            !w.instances[0]
                .scopes
                .as_ref()
                .unwrap()
                .iter()
                .any(|s| s == CLOUD_PLATFORM)
        );
        assert_eq!(w.secrets[0].1[0].0, b"abc");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let bad = OK.replace("number = 123456789012", "numbr = 1");
        let e = parse("w.toml", &bad).unwrap_err();
        assert_eq!(e.file, "w.toml");
        assert!(e.line >= 2 && e.line <= 4, "line {}", e.line);
        assert!(e.to_string().contains("numbr"), "{e}");

        let bad = OK.replace(
            "project = \"kaggle-gpu\"\nzone",
            "project = \"nope-project\"\nzone",
        );
        let e = parse("w.toml", &bad).unwrap_err();
        assert_eq!(e.line, 9, "{e}");
        assert!(
            e.to_string().contains("key `project`") && e.to_string().contains("nope-project"),
            "{e}"
        );

        let bad = OK.replace("roles/owner", "roles/wizard");
        let e = parse("w.toml", &bad).unwrap_err();
        assert!(
            e.to_string().contains("roles/wizard") && e.to_string().contains("`role`"),
            "{e}"
        );

        let bad = OK.replace("number = 123456789012", "number = \"123456789012\"");
        let e = parse("w.toml", &bad).unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.to_string().contains("key `number`"), "{e}");

        let e = parse("w.toml", "[[project]\nid=").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
    }

    #[test]
    fn workload_identity_pools_and_providers() {
        let base = format!(
            "{OK}\n[[service_account]]\nproject = \"kaggle-gpu\"\nname = \"wif-runner\"\n\n[[workload_identity_pools]]\nproject = \"kaggle-gpu\"\nid = \"aws-pool\"\n"
        );
        let provider = "\n[[workload_identity_pool_providers]]\nproject = \"kaggle-gpu\"\npool = \"aws-pool\"\nid = \"aws-prov\"\n";
        let w = parse(
            "w.toml",
            &format!("{base}{provider}aws = {{ account_id = \"111122223333\" }}\n"),
        )
        .unwrap();
        assert_eq!(w.wi_pools.len(), 1);
        assert_eq!(
            w.wi_providers[0].attribute_mapping,
            crate::google::attributes::default_aws_mapping()
        );
        // A binding on a declared service account is accepted.
        let sa_binding = "\n[[binding]]\nresource = \"projects/kaggle-gpu/serviceAccounts/wif-runner@kaggle-gpu.iam.gserviceaccount.com\"\nrole = \"roles/iam.workloadIdentityUser\"\nmembers = [\"principalSet://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aws-pool/*\"]\n";
        parse("w.toml", &format!("{base}{sa_binding}")).unwrap();
        let e = parse(
            "w.toml",
            &format!("{base}{}", sa_binding.replace("wif-runner@", "ghost-sa@")),
        )
        .unwrap_err();
        assert!(e.to_string().contains("ghost-sa@"), "{e}");
        for (bad, needle) in [
            ("aws = { account_id = \"12\" }\n", "aws.account_id"),
            ("", "exactly one of `aws` or `oidc`"),
            (
                "aws = { account_id = \"111122223333\" }\noidc = { issuer_uri = \"https://x\" }\n",
                "exactly one",
            ),
            ("oidc = { issuer_uri = \"http://x\" }\n", "https://"),
            (
                "oidc = { issuer_uri = \"https://token.example.com\" }\n",
                "jwks_json",
            ),
            (
                "oidc = { issuer_uri = \"https://x\", jwks_json = \"[]\" }\n",
                "`keys` array",
            ),
            (
                "aws = { account_id = \"111122223333\" }\nattribute_mapping = { \"attribute.x\" = \"assertion.arn\" }\n",
                "google.subject",
            ),
            (
                "aws = { account_id = \"111122223333\" }\nattribute_condition = \"assertion.arn ==\"\n",
                "attribute_condition",
            ),
        ] {
            let e = parse("w.toml", &format!("{base}{provider}{bad}")).unwrap_err();
            assert!(e.to_string().contains(needle), "{bad}: {e}");
            assert!(
                e.to_string()
                    .contains("[[workload_identity_pool_providers]]"),
                "{e}"
            );
            assert!(e.line > 20, "{e}");
        }
        let e = parse(
            "w.toml",
            &format!(
                "{base}{}aws = {{ account_id = \"111122223333\" }}\n",
                provider.replace("aws-pool", "nope-pool")
            ),
        )
        .unwrap_err();
        assert!(e.to_string().contains("key `pool`"), "{e}");
        let e = parse(
            "w.toml",
            &base.replace("id = \"aws-pool\"", "id = \"gcp-pool\""),
        )
        .unwrap_err();
        assert!(e.to_string().contains("key `id`"), "{e}");
    }

    #[test]
    fn scope_aliases() {
        let s = expand_scopes(&["cloud-platform".into(), "compute-ro".into()]).unwrap();
        assert_eq!(
            s,
            vec![
                CLOUD_PLATFORM.to_string(),
                "https://www.googleapis.com/auth/compute.readonly".to_string()
            ]
        );
        assert!(expand_scopes(&["a b".into()]).is_err());
    }
}
