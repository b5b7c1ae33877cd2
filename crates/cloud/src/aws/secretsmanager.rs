//! AWS Secrets Manager over JSON 1.1: CreateSecret, PutSecretValue,
//! GetSecretValue, DescribeSecret, ListSecrets, ListSecretVersionIds,
//! BatchGetSecretValue, DeleteSecret and RestoreSecret.
//!
//! Secrets are found by name (in the caller's account and the region of the
//! request's credential scope), by full ARN or by partial ARN (without the
//! 6-character suffix). Staging labels move as AWS moves them: a new
//! AWSCURRENT version pushes the old one to AWSPREVIOUS, and a label lives on
//! one version at a time. Every call is an IAM decision over the caller's
//! identity policies and the secret's resource policy.

use super::model::{AwsSecret, SecretVersion, Tag};
use super::{Aws, AwsError, Caller, Proto, Received, ok_json, policy};
use crate::store::{Change, StoreError};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyway_wire::aws::secretsmanager as wire;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const CURRENT: &str = "AWSCURRENT";
pub const PREVIOUS: &str = "AWSPREVIOUS";
const MAX_VERSIONS: usize = 100;
const MAX_SIZE: usize = 65536;

fn e(code: &str, msg: impl Into<String>) -> AwsError {
    AwsError::new(Proto::Json, 400, code, msg)
}

fn not_found() -> AwsError {
    e(
        "ResourceNotFoundException",
        "Secrets Manager can't find the specified secret.",
    )
}

fn marked_for_deletion() -> AwsError {
    e(
        "InvalidRequestException",
        "You can't perform this operation on the secret because it was marked for deletion.",
    )
}

fn internal(cause: &dyn std::fmt::Display) -> AwsError {
    AwsError::internal(Proto::Json, cause)
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Seals a version's payload, bound to the secret's ARN and the version id.
pub fn seal(
    store: &crate::store::Store,
    arn: &str,
    version: &str,
    data: &[u8],
) -> Result<String, StoreError> {
    Ok(STANDARD.encode(
        store
            .master
            .seal(format!("aws-secret:{arn}:{version}").as_bytes(), data)?,
    ))
}

pub fn open(
    store: &crate::store::Store,
    arn: &str,
    v: &SecretVersion,
) -> Result<zeroize::Zeroizing<Vec<u8>>, AwsError> {
    let raw = STANDARD.decode(&v.sealed).map_err(|e| internal(&e))?;
    store
        .master
        .open(format!("aws-secret:{arn}:{}", v.id).as_bytes(), &raw)
        .map_err(|e| internal(&e))
}

pub fn dispatch(aws: &Aws, r: &Received, op: &str) -> Result<Response, AwsError> {
    let caller = aws.authenticate(r, "secretsmanager", Proto::Json)?;
    let body: &[u8] = if r.body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &r.body
    };
    let b: Value = serde_json::from_slice(body).map_err(|err| {
        e(
            "SerializationException",
            format!("The request body is not valid JSON: {err}"),
        )
    })?;
    let sm = Sm {
        aws,
        caller: &caller,
        b: &b,
    };
    match op {
        "CreateSecret" => sm.create(),
        "PutSecretValue" => sm.put_value(),
        "GetSecretValue" => sm.get_value(),
        "DescribeSecret" => sm.describe(),
        "ListSecrets" => sm.list(),
        "ListSecretVersionIds" => sm.list_versions(),
        "BatchGetSecretValue" => sm.batch_get(),
        "DeleteSecret" => sm.delete(),
        "RestoreSecret" => sm.restore(),
        other => Err(e(
            "UnknownOperationException",
            format!("The operation {other} is not served by the local cloud."),
        )),
    }
}

struct Sm<'a> {
    aws: &'a Aws,
    caller: &'a Caller,
    b: &'a Value,
}

/// Finds a secret by name, full ARN or partial ARN, as `caller` would.
pub fn resolve<'s>(
    st: &'s super::model::AwsState,
    caller: &Caller,
    id: &str,
    now_ms: i64,
) -> Option<&'s AwsSecret> {
    let s = if let Some(rest) = id.strip_prefix("arn:aws:secretsmanager:") {
        let mut p = rest.splitn(4, ':');
        let (region, account, kind, name) = (p.next()?, p.next()?, p.next()?, p.next()?);
        if kind != "secret" || region != caller.region {
            return None;
        }
        st.secrets.get(id).or_else(|| {
            st.secret_names
                .get(&(account.to_owned(), region.to_owned(), name.to_owned()))
                .and_then(|a| st.secrets.get(a))
        })?
    } else {
        st.secret_names
            .get(&(
                caller.who.account.clone(),
                caller.region.clone(),
                id.to_owned(),
            ))
            .and_then(|a| st.secrets.get(a))?
    };
    // Past its recovery window a deleted secret is gone.
    s.deletion_ms.is_none_or(|d| d > now_ms).then_some(s)
}

/// The IAM decision for `action` on a secret (or on the ARN a missing one would have).
pub fn authorize(
    caller: &Caller,
    action: &str,
    s: Option<&AwsSecret>,
    resource: &str,
    extra: &[(&str, &str)],
) -> Result<(), AwsError> {
    let mut ctx = BTreeMap::new();
    // The context is read by conditions only: without any, leave it empty.
    let conditions = caller.identity_policies.iter().any(policy::has_conditions)
        || s.and_then(|s| s.policy.as_ref())
            .is_some_and(policy::has_conditions);
    if conditions {
        context(&mut ctx, caller, s, extra);
    }
    let account = s.map(|s| s.account.as_str()).unwrap_or(&caller.who.account);
    let d = policy::decide(
        &caller.who,
        &caller.identity_policies,
        s.and_then(|s| s.policy.as_ref()),
        account,
        action,
        resource,
        &ctx,
    );
    if d == policy::Decision::Allow {
        Ok(())
    } else {
        Err(e(
            "AccessDeniedException",
            policy::denial_message(&caller.who, action, resource, d),
        ))
    }
}

/// The condition keys of a Secrets Manager request.
fn context(
    ctx: &mut BTreeMap<String, String>,
    caller: &Caller,
    s: Option<&AwsSecret>,
    extra: &[(&str, &str)],
) {
    ctx.insert(
        "aws:PrincipalArn".to_owned(),
        caller
            .who
            .principal_arns
            .first()
            .cloned()
            .unwrap_or_default(),
    );
    ctx.insert(
        "aws:PrincipalAccount".to_owned(),
        caller.who.account.clone(),
    );
    ctx.insert("aws:RequestedRegion".to_owned(), caller.region.clone());
    if let Some(s) = s {
        ctx.insert("secretsmanager:SecretId".to_owned(), s.arn.clone());
        for t in &s.tags {
            ctx.insert(
                format!("secretsmanager:ResourceTag/{}", t.key),
                t.value.clone(),
            );
            ctx.insert(format!("aws:ResourceTag/{}", t.key), t.value.clone());
        }
    }
    for (k, v) in extra {
        ctx.insert((*k).to_owned(), (*v).to_owned());
    }
}

fn str_field<'v>(b: &'v Value, k: &str) -> Result<Option<&'v str>, AwsError> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(e(
            "SerializationException",
            format!("STRING_VALUE can not be converted to {k}"),
        )),
    }
}

fn required<'v>(b: &'v Value, k: &str, field: &str) -> Result<&'v str, AwsError> {
    str_field(b, k)?.ok_or_else(|| {
        e("ValidationException", format!("1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"))
    })
}

/// The payload of Create/PutSecretValue: (bytes, binary?).
fn payload(b: &Value) -> Result<Option<(Vec<u8>, bool)>, AwsError> {
    let (s, bin) = (str_field(b, "SecretString")?, str_field(b, "SecretBinary")?);
    let out = match (s, bin) {
        (Some(_), Some(_)) => {
            return Err(e(
                "InvalidParameterException",
                "You can't specify both a binary secret value and a string secret value in the same secret.",
            ));
        }
        (Some(s), None) => Some((s.as_bytes().to_vec(), false)),
        (None, Some(b)) => Some((
            STANDARD.decode(b.trim()).map_err(|_| {
                e(
                    "SerializationException",
                    "SecretBinary is not valid base64.",
                )
            })?,
            true,
        )),
        (None, None) => None,
    };
    if out.as_ref().is_some_and(|(d, _)| d.len() > MAX_SIZE) {
        return Err(e(
            "InvalidParameterException",
            "The secret value exceeds the maximum size of 65536 bytes.",
        ));
    }
    Ok(out)
}

fn client_token(b: &Value) -> Result<String, AwsError> {
    match str_field(b, "ClientRequestToken")? {
        Some(t) if (32..=64).contains(&t.len()) => Ok(t.to_owned()),
        Some(t) => Err(e(
            "ValidationException",
            format!(
                "1 validation error detected: Value '{t}' at 'clientRequestToken' failed to satisfy constraint: Member must have length greater than or equal to 32"
            ),
        )),
        None => super::uuid4().map_err(|err| internal(&err)),
    }
}

/// Adds `v` to `s`, moving staging labels as AWS does.
pub fn add_version(s: &mut AwsSecret, v: SecretVersion) {
    if v.stages.iter().any(|x| x == CURRENT) {
        for o in &mut s.versions {
            o.stages.retain(|x| x != PREVIOUS);
        }
        for o in &mut s.versions {
            if o.stages.iter().any(|x| x == CURRENT) {
                o.stages.push(PREVIOUS.to_owned());
            }
        }
    }
    for o in &mut s.versions {
        o.stages.retain(|x| !v.stages.contains(x));
    }
    s.versions.push(v);
    while s.versions.len() > MAX_VERSIONS {
        match s.versions.iter().position(|o| o.stages.is_empty()) {
            Some(i) => {
                s.versions.remove(i);
            }
            None => break,
        }
    }
}

fn value_response(
    aws: &Aws,
    s: &AwsSecret,
    v: &SecretVersion,
) -> Result<wire::GetSecretValueResponse, AwsError> {
    let data = open(&aws.cloud.store, &s.arn, v)?;
    let (string, binary) = if v.binary {
        (None, Some(STANDARD.encode(&*data)))
    } else {
        (Some(String::from_utf8_lossy(&data).into_owned()), None)
    };
    Ok(wire::GetSecretValueResponse {
        arn: s.arn.clone(),
        name: s.name.clone(),
        version_id: v.id.clone(),
        secret_string: string,
        secret_binary: binary,
        version_stages: v.stages.clone(),
        created_date: secs(v.create_ms),
    })
}

/// GetSecretValue's answer, borrowed from the store (the same JSON as
/// [`wire::GetSecretValueResponse`], without copying the record).
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct ValueOut<'a> {
    #[serde(rename = "ARN")]
    arn: &'a str,
    name: &'a str,
    version_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_string: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_binary: Option<&'a str>,
    version_stages: &'a [String],
    created_date: f64,
}

fn value_json(aws: &Aws, s: &AwsSecret, v: &SecretVersion) -> Result<Response, AwsError> {
    let data = open(&aws.cloud.store, &s.arn, v)?;
    let text;
    let (secret_string, secret_binary) = if v.binary {
        text = zeroize::Zeroizing::new(STANDARD.encode(&*data));
        (None, Some(text.as_str()))
    } else {
        text = zeroize::Zeroizing::new(String::from_utf8_lossy(&data).into_owned());
        (Some(text.as_str()), None)
    };
    let out = ValueOut {
        arn: &s.arn,
        name: &s.name,
        version_id: &v.id,
        secret_string,
        secret_binary,
        version_stages: &v.stages,
        created_date: secs(v.create_ms),
    };
    Ok(ok_json(&out))
}

/// Picks the version GetSecretValue answers with.
pub fn pick<'s>(
    s: &'s AwsSecret,
    version_id: Option<&str>,
    stage: Option<&str>,
) -> Result<&'s SecretVersion, AwsError> {
    match (version_id, stage) {
        (Some(id), st) => {
            let v = s.versions.iter().find(|v| v.id == id).ok_or_else(|| {
                e(
                    "ResourceNotFoundException",
                    format!(
                        "Secrets Manager can't find the specified secret value for VersionId: {id}"
                    ),
                )
            })?;
            match st {
                Some(st) if !v.stages.iter().any(|x| x == st) => Err(e(
                    "ResourceNotFoundException",
                    format!(
                        "Secrets Manager can't find the specified secret value for staging label: {st} and VersionId: {id}"
                    ),
                )),
                _ => Ok(v),
            }
        }
        (None, st) => {
            let st = st.unwrap_or(CURRENT);
            s.version_with_stage(st)
                .ok_or_else(|| e("ResourceNotFoundException", format!("Secrets Manager can't find the specified secret value for staging label: {st}")))
        }
    }
}

fn entry(s: &AwsSecret) -> wire::SecretListEntry {
    wire::SecretListEntry {
        arn: s.arn.clone(),
        name: s.name.clone(),
        description: s.description.clone(),
        kms_key_id: s.kms_key_id.clone(),
        rotation_enabled: false,
        last_changed_date: secs(s.changed_ms),
        deleted_date: s.deleted_ms.map(secs),
        tags: s
            .tags
            .iter()
            .map(|t| wire::Tag {
                key: t.key.clone(),
                value: t.value.clone(),
            })
            .collect(),
        secret_versions_to_stages: s
            .versions
            .iter()
            .filter(|v| !v.stages.is_empty())
            .map(|v| (v.id.clone(), v.stages.clone()))
            .collect(),
        created_date: secs(s.create_ms),
        primary_region: None,
    }
}

fn valid_name(n: &str) -> bool {
    (1..=512).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
}

fn page(b: &Value, max_default: usize) -> Result<(usize, usize), AwsError> {
    let max = match b.get("MaxResults").and_then(Value::as_i64) {
        None => max_default,
        Some(m) if (1..=100).contains(&m) => m as usize,
        Some(m) => {
            return Err(e(
                "ValidationException",
                format!(
                    "1 validation error detected: Value '{m}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 100"
                ),
            ));
        }
    };
    let start = match str_field(b, "NextToken")? {
        None => 0,
        Some(t) => STANDARD
            .decode(t)
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .and_then(|s| s.strip_prefix("kw:").and_then(|n| n.parse().ok()))
            .ok_or_else(|| {
                e(
                    "InvalidNextTokenException",
                    "The NextToken value is invalid.",
                )
            })?,
    };
    Ok((start, max))
}

fn next_token(start: usize, max: usize, total: usize) -> Option<String> {
    (start + max < total).then(|| STANDARD.encode(format!("kw:{}", start + max)))
}

/// ListSecrets' filters: keys AND-ed, values OR-ed, prefix matches, `!` negates.
fn filter_matches(filters: &[wire::Filter], s: &AwsSecret) -> bool {
    filters.iter().all(|f| {
        let fields: Vec<&str> = match f.key.as_str() {
            "name" => vec![&s.name],
            "description" => s.description.as_deref().into_iter().collect(),
            "tag-key" => s.tags.iter().map(|t| t.key.as_str()).collect(),
            "tag-value" => s.tags.iter().map(|t| t.value.as_str()).collect(),
            "primary-region" => vec![&s.region],
            "all" => {
                let mut v: Vec<&str> = vec![&s.name];
                v.extend(s.description.as_deref());
                v.extend(
                    s.tags
                        .iter()
                        .flat_map(|t| [t.key.as_str(), t.value.as_str()]),
                );
                v
            }
            _ => Vec::new(),
        };
        let (neg, pos): (Vec<&String>, Vec<&String>) =
            f.values.iter().partition(|v| v.starts_with('!'));
        let pos_ok = pos.is_empty()
            || pos
                .iter()
                .any(|p| fields.iter().any(|x| x.starts_with(p.as_str())));
        let neg_ok = neg
            .iter()
            .all(|n| !fields.iter().any(|x| x.starts_with(&n[1..])));
        pos_ok && neg_ok
    })
}

fn parse_filters(b: &Value) -> Result<Vec<wire::Filter>, AwsError> {
    let f: Vec<wire::Filter> = match b.get("Filters") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|err| e("SerializationException", err.to_string()))?,
    };
    for x in &f {
        if ![
            "name",
            "description",
            "tag-key",
            "tag-value",
            "primary-region",
            "owning-service",
            "all",
        ]
        .contains(&x.key.as_str())
        {
            return Err(e(
                "ValidationException",
                format!(
                    "1 validation error detected: Value '{}' at 'filters.1.member.key' failed to satisfy constraint: Member must satisfy enum value set: [all, name, tag-key, description, owning-service, primary-region, tag-value]",
                    x.key
                ),
            ));
        }
    }
    Ok(f)
}

impl Sm<'_> {
    fn now(&self) -> i64 {
        self.aws.cloud.clock.now_millis()
    }

    fn guess_arn(&self, id: &str) -> String {
        if id.starts_with("arn:") {
            id.to_owned()
        } else {
            format!(
                "arn:aws:secretsmanager:{}:{}:secret:{id}",
                self.caller.region, self.caller.who.account
            )
        }
    }

    /// Resolves and authorises; a missing secret is reported only to a caller allowed to know.
    fn find(&self, action: &str, id: &str) -> Result<AwsSecret, AwsError> {
        let st = self.aws.cloud.store.read();
        match resolve(&st.aws, self.caller, id, self.now()) {
            Some(s) => {
                authorize(self.caller, action, Some(s), &s.arn, &[])?;
                Ok(s.clone())
            }
            None => {
                authorize(self.caller, action, None, &self.guess_arn(id), &[])?;
                Err(not_found())
            }
        }
    }

    fn write(&self, change: Change) -> Result<(), AwsError> {
        self.aws
            .cloud
            .store
            .write(|_| Ok::<_, StoreError>((vec![change], ())))
            .map_err(|err| internal(&err))
    }

    fn create(&self) -> Result<Response, AwsError> {
        let name = required(self.b, "Name", "name")?;
        if !valid_name(name) {
            return Err(e(
                "ValidationException",
                format!(
                    "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!  Got: {name}"
                ),
            ));
        }
        let data = payload(self.b)?;
        let token = client_token(self.b)?;
        let tags: Vec<Tag> = match self.b.get("Tags") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|err| e("SerializationException", err.to_string()))?,
        };
        super::model::check_tags(&tags)?;
        let c = self.caller;
        let suffix = super::random_alnum(6).map_err(|err| internal(&err))?;
        let arn = super::model::secret_arn(&c.region, &c.who.account, name, &suffix);
        authorize(
            c,
            "secretsmanager:CreateSecret",
            None,
            &arn,
            &[("secretsmanager:Name", name)],
        )?;
        let now = self.now();
        let sealed = match &data {
            Some((d, _)) => {
                Some(seal(&self.aws.cloud.store, &arn, &token, d).map_err(|err| internal(&err))?)
            }
            None => None,
        };
        let mut s = AwsSecret {
            arn: arn.clone(),
            account: c.who.account.clone(),
            region: c.region.clone(),
            name: name.to_owned(),
            description: str_field(self.b, "Description")?.map(str::to_owned),
            kms_key_id: str_field(self.b, "KmsKeyId")?.map(str::to_owned),
            tags,
            create_ms: now,
            changed_ms: now,
            deletion_ms: None,
            deleted_ms: None,
            policy: None,
            versions: Vec::new(),
        };
        if let (Some(sealed), Some((_, binary))) = (sealed, &data) {
            s.versions.push(SecretVersion {
                id: token.clone(),
                stages: vec![CURRENT.into()],
                create_ms: now,
                binary: *binary,
                sealed,
                key_ref: None,
            });
        }
        let has_version = !s.versions.is_empty();
        self.aws
            .cloud
            .store
            .write(|st| {
                let key = (c.who.account.clone(), c.region.clone(), name.to_owned());
                if let Some(existing) = st.aws.secret_names.get(&key).and_then(|a| st.aws.secrets.get(a)) {
                    if existing.deletion_ms.is_some_and(|d| d > now) {
                        return Err(e("InvalidRequestException", "You can't create this secret because a secret with this name is already scheduled for deletion."));
                    }
                    if existing.deletion_ms.is_none() {
                        return Err(e("ResourceExistsException", format!("The operation failed because the secret {name} already exists.")));
                    }
                }
                // A secret past its recovery window is purged as the name is reused.
                let mut ch = Vec::new();
                if let Some(old) = st.aws.secret_names.get(&key) {
                    ch.push(Change::DeleteAws { kind: "aws_secret", key: old.clone() });
                }
                ch.push(Change::PutAws(super::model::AwsDoc::Secret(s.clone())));
                Ok((ch, ()))
            })
            .map_err(|err: AwsError| err)?;
        let mut out = json!({"ARN": arn, "Name": name});
        if has_version {
            out["VersionId"] = json!(token);
        }
        Ok(ok_json(&out))
    }

    fn put_value(&self) -> Result<Response, AwsError> {
        let id = required(self.b, "SecretId", "secretId")?;
        let (data, binary) = payload(self.b)?.ok_or_else(|| {
            e(
                "InvalidRequestException",
                "You must provide either SecretString or SecretBinary.",
            )
        })?;
        let token = client_token(self.b)?;
        let stages: Vec<String> = match self.b.get("VersionStages") {
            None | Some(Value::Null) => vec![CURRENT.into()],
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|err| e("SerializationException", err.to_string()))?,
        };
        let s = self.find("secretsmanager:PutSecretValue", id)?;
        if s.deletion_ms.is_some() {
            return Err(marked_for_deletion());
        }
        let sealed =
            seal(&self.aws.cloud.store, &s.arn, &token, &data).map_err(|err| internal(&err))?;
        let now = self.now();
        let arn = s.arn.clone();
        let out = self.aws.cloud.store.write(|st| {
            let Some(cur) = st.aws.secrets.get(&arn) else {
                return Err(not_found());
            };
            let mut s = cur.clone();
            if let Some(existing) = s.versions.iter().find(|v| v.id == token) {
                // Idempotent retry with the same token and value; anything else is refused.
                let same = open(&self.aws.cloud.store, &s.arn, existing)
                    .map(|d| *d == data && existing.binary == binary)
                    .unwrap_or(false);
                if same {
                    return Ok((vec![], existing.stages.clone()));
                }
                return Err(e(
                    "ResourceExistsException",
                    "You can't modify an existing version, you can only create a new version.",
                ));
            }
            add_version(
                &mut s,
                SecretVersion {
                    id: token.clone(),
                    stages: stages.clone(),
                    create_ms: now,
                    binary,
                    sealed,
                    key_ref: None,
                },
            );
            s.changed_ms = now;
            Ok((
                vec![Change::PutAws(super::model::AwsDoc::Secret(s))],
                stages.clone(),
            ))
        })?;
        Ok(ok_json(
            &json!({"ARN": s.arn, "Name": s.name, "VersionId": token, "VersionStages": out}),
        ))
    }

    fn get_value(&self) -> Result<Response, AwsError> {
        let id = required(self.b, "SecretId", "secretId")?;
        let (vid, stage) = (
            str_field(self.b, "VersionId")?,
            str_field(self.b, "VersionStage")?,
        );
        let mut extra = Vec::new();
        if let Some(s) = stage {
            extra.push(("secretsmanager:VersionStage", s));
        }
        if let Some(v) = vid {
            extra.push(("secretsmanager:VersionId", v));
        }
        let st = self.aws.cloud.store.read();
        let Some(s) = resolve(&st.aws, self.caller, id, self.now()) else {
            authorize(
                self.caller,
                "secretsmanager:GetSecretValue",
                None,
                &self.guess_arn(id),
                &extra,
            )?;
            return Err(not_found());
        };
        authorize(
            self.caller,
            "secretsmanager:GetSecretValue",
            Some(s),
            &s.arn,
            &extra,
        )?;
        if s.deletion_ms.is_some() {
            return Err(marked_for_deletion());
        }
        let v = pick(s, vid, stage)?;
        value_json(self.aws, s, v)
    }

    fn describe(&self) -> Result<Response, AwsError> {
        let id = required(self.b, "SecretId", "secretId")?;
        let s = self.find("secretsmanager:DescribeSecret", id)?;
        let mut v = serde_json::to_value(entry(&s)).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            if let Some(x) = m.remove("SecretVersionsToStages") {
                m.insert("VersionIdsToStages".into(), x);
            }
            if let Some(d) = s.deletion_ms {
                m.insert("DeletedDate".into(), json!(secs(s.deleted_ms.unwrap_or(d))));
            }
        }
        Ok(ok_json(&v))
    }

    fn list(&self) -> Result<Response, AwsError> {
        authorize(self.caller, "secretsmanager:ListSecrets", None, "*", &[])?;
        let filters = parse_filters(self.b)?;
        let include_deleted = self
            .b
            .get("IncludePlannedDeletion")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let desc = str_field(self.b, "SortOrder")? == Some("desc");
        let (start, max) = page(self.b, 100)?;
        let now = self.now();
        let st = self.aws.cloud.store.read();
        let mut all: Vec<&AwsSecret> = st
            .aws
            .secrets
            .values()
            .filter(|s| s.account == self.caller.who.account && s.region == self.caller.region)
            .filter(|s| {
                s.deletion_ms.is_none_or(|d| d > now)
                    && (include_deleted || s.deletion_ms.is_none())
            })
            .filter(|s| filter_matches(&filters, s))
            .collect();
        all.sort_by(|a, b| a.create_ms.cmp(&b.create_ms).then(a.name.cmp(&b.name)));
        if desc {
            all.reverse();
        }
        let list: Vec<wire::SecretListEntry> =
            all.iter().skip(start).take(max).map(|s| entry(s)).collect();
        let mut out = json!({"SecretList": list});
        if let Some(t) = next_token(start, max, all.len()) {
            out["NextToken"] = json!(t);
        }
        Ok(ok_json(&out))
    }

    fn list_versions(&self) -> Result<Response, AwsError> {
        let id = required(self.b, "SecretId", "secretId")?;
        let s = self.find("secretsmanager:ListSecretVersionIds", id)?;
        let include_deprecated = self
            .b
            .get("IncludeDeprecated")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let (start, max) = page(self.b, 100)?;
        let mut vs: Vec<&SecretVersion> = s
            .versions
            .iter()
            .filter(|v| include_deprecated || !v.stages.is_empty())
            .collect();
        vs.reverse();
        let versions: Vec<Value> = vs
            .iter()
            .skip(start)
            .take(max)
            .map(|v| json!({"VersionId": v.id, "VersionStages": v.stages, "CreatedDate": secs(v.create_ms)}))
            .collect();
        let mut out = json!({"Versions": versions, "ARN": s.arn, "Name": s.name});
        if let Some(t) = next_token(start, max, vs.len()) {
            out["NextToken"] = json!(t);
        }
        Ok(ok_json(&out))
    }

    fn batch_get(&self) -> Result<Response, AwsError> {
        let req: wire::BatchGetSecretValueRequest = serde_json::from_value(self.b.clone())
            .map_err(|err| e("SerializationException", err.to_string()))?;
        authorize(
            self.caller,
            "secretsmanager:BatchGetSecretValue",
            None,
            "*",
            &[],
        )?;
        let now = self.now();
        let st = self.aws.cloud.store.read();
        let mut out = wire::BatchGetSecretValueResponse::default();
        let one = |id: &str, s: Option<&AwsSecret>, out: &mut wire::BatchGetSecretValueResponse| {
            let r = match s {
                None => authorize(
                    self.caller,
                    "secretsmanager:GetSecretValue",
                    None,
                    &self.guess_arn(id),
                    &[],
                )
                .and(Err(not_found())),
                Some(s) => authorize(
                    self.caller,
                    "secretsmanager:GetSecretValue",
                    Some(s),
                    &s.arn,
                    &[],
                )
                .and_then(|_| {
                    if s.deletion_ms.is_some() {
                        Err(marked_for_deletion())
                    } else {
                        Ok(())
                    }
                })
                .and_then(|_| pick(s, None, None))
                .and_then(|v| value_response(self.aws, s, v)),
            };
            match r {
                Ok(v) => out.secret_values.push(v),
                Err(err) => out.errors.push(wire::ApiErrorType {
                    secret_id: id.to_owned(),
                    error_code: err.code,
                    message: err.message,
                }),
            }
        };
        match (&req.secret_id_list, &req.filters) {
            (Some(_), Some(_)) => {
                return Err(e(
                    "InvalidParameterException",
                    "Either 'SecretIdList' or 'Filters' must be provided, but not both.",
                ));
            }
            (None, None) => {
                return Err(e(
                    "InvalidParameterException",
                    "Either 'SecretIdList' or 'Filters' must be provided.",
                ));
            }
            (Some(ids), None) => {
                if ids.is_empty() || ids.len() > 20 {
                    return Err(e(
                        "InvalidParameterException",
                        "SecretIdList must contain between 1 and 20 entries.",
                    ));
                }
                if req.max_results.is_some() {
                    return Err(e(
                        "InvalidParameterException",
                        "MaxResults can only be used with Filters.",
                    ));
                }
                for id in ids {
                    one(id, resolve(&st.aws, self.caller, id, now), &mut out);
                }
            }
            (None, Some(filters)) => {
                authorize(self.caller, "secretsmanager:ListSecrets", None, "*", &[])?;
                let (start, max) = page(self.b, 20)?;
                let all: Vec<&AwsSecret> = st
                    .aws
                    .secrets
                    .values()
                    .filter(|s| {
                        s.account == self.caller.who.account
                            && s.region == self.caller.region
                            && s.deletion_ms.is_none()
                    })
                    .filter(|s| filter_matches(filters, s))
                    .collect();
                for s in all.iter().skip(start).take(max) {
                    one(&s.arn, Some(s), &mut out);
                }
                out.next_token = next_token(start, max, all.len());
            }
        }
        Ok(ok_json(&out))
    }

    fn delete(&self) -> Result<Response, AwsError> {
        let id = required(self.b, "SecretId", "secretId")?;
        let force = self
            .b
            .get("ForceDeleteWithoutRecovery")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let window = self.b.get("RecoveryWindowInDays").and_then(Value::as_i64);
        if force && window.is_some() {
            return Err(e(
                "InvalidParameterException",
                "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
            ));
        }
        let days = window.unwrap_or(30);
        if !(7..=30).contains(&days) {
            return Err(e(
                "InvalidParameterException",
                "RecoveryWindowInDays value must be between 7 and 30 days (inclusive).",
            ));
        }
        let s = self.find("secretsmanager:DeleteSecret", id)?;
        let now = self.now();
        if force {
            self.write(Change::DeleteAws {
                kind: "aws_secret",
                key: s.arn.clone(),
            })?;
            return Ok(ok_json(
                &json!({"ARN": s.arn, "Name": s.name, "DeletionDate": secs(now)}),
            ));
        }
        if s.deletion_ms.is_some() {
            return Err(marked_for_deletion());
        }
        let mut d = s.clone();
        d.deletion_ms = Some(now + days * 86_400_000);
        d.deleted_ms = Some(now);
        self.write(Change::PutAws(super::model::AwsDoc::Secret(d.clone())))?;
        Ok(ok_json(
            &json!({"ARN": d.arn, "Name": d.name, "DeletionDate": secs(d.deletion_ms.unwrap_or(now))}),
        ))
    }

    fn restore(&self) -> Result<Response, AwsError> {
        let id = required(self.b, "SecretId", "secretId")?;
        let mut s = self.find("secretsmanager:RestoreSecret", id)?;
        if s.deletion_ms.is_some() {
            s.deletion_ms = None;
            s.deleted_ms = None;
            s.changed_ms = self.now();
            self.write(Change::PutAws(super::model::AwsDoc::Secret(s.clone())))?;
        }
        Ok(ok_json(&json!({"ARN": s.arn, "Name": s.name})))
    }
}

impl From<StoreError> for AwsError {
    fn from(e: StoreError) -> Self {
        internal(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str, stages: &[&str]) -> SecretVersion {
        SecretVersion {
            id: id.into(),
            stages: stages.iter().map(|s| s.to_string()).collect(),
            create_ms: 0,
            binary: false,
            sealed: String::new(),
            key_ref: None,
        }
    }

    #[test]
    fn stages_move_as_aws_moves_them() {
        let mut s = AwsSecret {
            arn: "a".into(),
            account: "1".into(),
            region: "r".into(),
            name: "n".into(),
            description: None,
            kms_key_id: None,
            tags: vec![],
            create_ms: 0,
            changed_ms: 0,
            deletion_ms: None,
            deleted_ms: None,
            policy: None,
            versions: vec![v("1", &[CURRENT])],
        };
        add_version(&mut s, v("2", &[CURRENT]));
        assert_eq!(s.versions[0].stages, vec![PREVIOUS]);
        add_version(&mut s, v("3", &["AWSPENDING"]));
        assert_eq!(
            s.version_with_stage(CURRENT).map(|v| v.id.as_str()),
            Some("2")
        );
        add_version(&mut s, v("4", &[CURRENT]));
        assert!(s.versions[0].stages.is_empty());
        assert_eq!(s.versions[1].stages, vec![PREVIOUS]);
        assert_eq!(s.versions[2].stages, vec!["AWSPENDING"]);
    }
}
