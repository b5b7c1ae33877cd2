//! The AWS half of the store's state: accounts, IAM users and their access keys,
//! roles, EC2 instances, ECS tasks and Secrets Manager secrets. Each is a JSON
//! document in the store's `docs` table (kinds `aws_*`); secret payloads and
//! access-key secrets are sealed with the master key before they are stored.

use super::error::{AwsError, Proto};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    #[serde(default)]
    pub alias: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IamUser {
    pub account: String,
    pub name: String,
    pub arn: String,
    /// `AIDA…`
    pub id: String,
    /// Inline identity policies by name.
    #[serde(default)]
    pub policies: InlinePolicies,
    #[serde(default)]
    pub create_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessKey {
    /// `AKIA…`
    pub id: String,
    pub user_arn: String,
    /// The secret access key, sealed with the master key (base64).
    pub sealed_secret: String,
    pub create_ms: i64,
    #[serde(default = "active")]
    pub status: String,
}

fn active() -> String {
    "Active".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Role {
    pub account: String,
    pub name: String,
    pub arn: String,
    /// `AROA…`
    pub id: String,
    /// The trust policy (who may assume the role).
    pub trust: Value,
    /// Inline identity policies by name.
    #[serde(default)]
    pub policies: InlinePolicies,
    pub max_session_secs: i64,
    #[serde(default)]
    pub create_ms: i64,
}

/// A principal's inline policies (`PutRolePolicy`, `PutUserPolicy`), by name.
/// The world declares them without names; they are called `policy-1`,
/// `policy-2`, … in the order written (so is a list in a store written before
/// policies had names).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(transparent)]
pub struct InlinePolicies(pub BTreeMap<String, Value>);

impl InlinePolicies {
    pub fn from_unnamed(docs: &[Value]) -> Self {
        InlinePolicies(
            docs.iter()
                .enumerate()
                .map(|(i, d)| (format!("policy-{}", i + 1), d.clone()))
                .collect(),
        )
    }

    /// The documents, for a policy decision.
    pub fn documents(&self) -> Vec<Value> {
        self.0.values().cloned().collect()
    }
}

impl<'de> Deserialize<'de> for InlinePolicies {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Named(BTreeMap<String, Value>),
            Unnamed(Vec<Value>),
        }
        Ok(match Stored::deserialize(d)? {
            Stored::Named(m) => InlinePolicies(m),
            Stored::Unnamed(v) => InlinePolicies::from_unnamed(&v),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ec2Instance {
    pub name: String,
    pub account: String,
    pub region: String,
    pub availability_zone: String,
    /// `i-…` (17 hex digits).
    pub instance_id: String,
    pub instance_type: String,
    /// The instance profile's role (its ARN), if any.
    pub role_arn: Option<String>,
    pub create_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSecret {
    pub name: String,
    pub value_from: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EcsTask {
    pub name: String,
    pub account: String,
    pub region: String,
    pub cluster: String,
    pub family: String,
    pub revision: u32,
    /// 32 hex digits, as Fargate task ids are.
    pub task_id: String,
    /// The id in `/v2/credentials/ID` (a UUID).
    pub credentials_id: String,
    pub task_role_arn: Option<String>,
    pub execution_role_arn: Option<String>,
    /// The EC2 instance the task runs on (the EC2 launch type); `None`: Fargate.
    #[serde(default)]
    pub instance: Option<String>,
    #[serde(default)]
    pub secrets: Vec<TaskSecret>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    pub create_ms: i64,
}

impl EcsTask {
    pub fn task_arn(&self) -> String {
        format!(
            "arn:aws:ecs:{}:{}:task/{}/{}",
            self.region, self.account, self.cluster, self.task_id
        )
    }
}

/// A registered ECS task definition revision (`RegisterTaskDefinition`, or a
/// world-declared task's definition, which is revision 1 of its family).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskDefinition {
    pub account: String,
    pub region: String,
    pub family: String,
    pub revision: u32,
    /// `ACTIVE` (or `INACTIVE` once deregistered).
    pub status: String,
    pub registered_ms: i64,
    /// The ARN of who registered it.
    pub registered_by: String,
    /// The registered fields as given (`containerDefinitions`, `taskRoleArn`,
    /// `executionRoleArn`, `networkMode`, `cpu`, `memory`, …), role names
    /// already made ARNs.
    pub definition: Value,
}

impl TaskDefinition {
    pub fn key(account: &str, region: &str, family: &str, revision: u32) -> String {
        format!("{account}/{region}/{family}:{revision}")
    }

    pub fn arn(&self) -> String {
        format!(
            "arn:aws:ecs:{}:{}:task-definition/{}:{}",
            self.region, self.account, self.family, self.revision
        )
    }

    fn str_field(&self, k: &str) -> Option<String> {
        self.definition
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    pub fn task_role_arn(&self) -> Option<String> {
        self.str_field("taskRoleArn")
    }

    pub fn execution_role_arn(&self) -> Option<String> {
        self.str_field("executionRoleArn")
    }

    /// The container the local task runs: the first of `containerDefinitions`.
    fn container(&self) -> Option<&Value> {
        self.definition
            .get("containerDefinitions")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
    }

    /// Its `secrets` (`name` → `valueFrom`).
    pub fn secrets(&self) -> Vec<TaskSecret> {
        self.container()
            .and_then(|c| c.get("secrets"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| {
                        Some(TaskSecret {
                            name: s.get("name")?.as_str()?.to_owned(),
                            value_from: s.get("valueFrom")?.as_str()?.to_owned(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Its `environment` (`name` → `value`).
    pub fn environment(&self) -> BTreeMap<String, String> {
        self.container()
            .and_then(|c| c.get("environment"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| {
                        Some((
                            e.get("name")?.as_str()?.to_owned(),
                            e.get("value")?.as_str()?.to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value")]
    pub value: String,
}

fn e(code: &str, msg: impl Into<String>) -> AwsError {
    AwsError::new(Proto::Json, 400, code, msg)
}

/// Tags per secret (a Secrets Manager quota).
pub const MAX_TAGS: usize = 50;
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;

/// The documented tag limits: at most 50 tags (a quota, so
/// LimitExceededException), keys of 1 to 128 and values of 0 to 256
/// characters (the API's length constraints, so AWS's validation message).
pub fn check_tags(tags: &[Tag]) -> Result<(), AwsError> {
    if tags.len() > MAX_TAGS {
        return Err(e(
            "LimitExceededException",
            format!(
                "The request failed because it would exceed one of the Secrets Manager quotas: {} tags, at most {MAX_TAGS} per secret.",
                tags.len()
            ),
        ));
    }
    for (i, t) in tags.iter().enumerate() {
        let n = i + 1;
        let key = t.key.chars().count();
        let too = |what: &str, v: &str, bound: &str| {
            e(
                "ValidationException",
                format!(
                    "1 validation error detected: Value '{v}' at 'tags.{n}.member.{what}' failed to satisfy constraint: Member must have length {bound}"
                ),
            )
        };
        if key == 0 {
            return Err(too("key", &t.key, "greater than or equal to 1"));
        }
        if key > MAX_TAG_KEY {
            return Err(too(
                "key",
                &t.key,
                &format!("less than or equal to {MAX_TAG_KEY}"),
            ));
        }
        if t.value.chars().count() > MAX_TAG_VALUE {
            return Err(too(
                "value",
                &t.value,
                &format!("less than or equal to {MAX_TAG_VALUE}"),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretVersion {
    pub id: String,
    pub stages: Vec<String>,
    pub create_ms: i64,
    /// `SecretBinary` rather than `SecretString`.
    pub binary: bool,
    /// The payload sealed with the master key (base64), bound to ARN and version id.
    pub sealed: String,
    /// A world-declared Google service-account key whose JSON this version holds;
    /// re-rendered at each start (the key file embeds the live token endpoint).
    #[serde(default)]
    pub key_ref: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AwsSecret {
    pub arn: String,
    pub account: String,
    pub region: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub kms_key_id: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    pub create_ms: i64,
    pub changed_ms: i64,
    /// Set while scheduled for deletion: when it will be deleted.
    #[serde(default)]
    pub deletion_ms: Option<i64>,
    /// When DeleteSecret was called.
    #[serde(default)]
    pub deleted_ms: Option<i64>,
    #[serde(default)]
    pub policy: Option<Value>,
    /// Oldest first.
    pub versions: Vec<SecretVersion>,
}

impl AwsSecret {
    pub fn version_with_stage(&self, stage: &str) -> Option<&SecretVersion> {
        self.versions
            .iter()
            .find(|v| v.stages.iter().any(|s| s == stage))
    }
}

/// An IAM OpenID Connect identity provider (`CreateOpenIDConnectProvider`):
/// tokens whose `iss` is `https://{url}` may be exchanged by
/// AssumeRoleWithWebIdentity when one of their audiences is in `client_ids`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OidcProvider {
    pub account: String,
    /// `arn:aws:iam::ACCOUNT:oidc-provider/HOST[/PATH]`.
    pub arn: String,
    /// The issuer without its scheme (`oidc.example.com/id/ABC`), as IAM keeps it.
    pub url: String,
    pub client_ids: Vec<String>,
    /// The signing keys (a JWKS document) given inline, or the file to read them from at each use.
    #[serde(default)]
    pub jwks: Option<Value>,
    #[serde(default)]
    pub jwks_file: Option<String>,
}

/// One AWS document, as stored.
#[derive(Debug, Clone)]
pub enum AwsDoc {
    Account(Account),
    User(IamUser),
    Key(AccessKey),
    Role(Role),
    Ec2(Ec2Instance),
    Task(EcsTask),
    Secret(AwsSecret),
    OidcProvider(OidcProvider),
    TaskDef(TaskDefinition),
}

impl AwsDoc {
    pub fn kind(&self) -> &'static str {
        match self {
            AwsDoc::Account(_) => "aws_account",
            AwsDoc::User(_) => "aws_user",
            AwsDoc::Key(_) => "aws_key",
            AwsDoc::Role(_) => "aws_role",
            AwsDoc::Ec2(_) => "aws_ec2",
            AwsDoc::Task(_) => "aws_task",
            AwsDoc::Secret(_) => "aws_secret",
            AwsDoc::OidcProvider(_) => "aws_oidc_provider",
            AwsDoc::TaskDef(_) => "aws_task_def",
        }
    }

    pub fn key(&self) -> String {
        match self {
            AwsDoc::Account(a) => a.id.clone(),
            AwsDoc::User(u) => u.arn.clone(),
            AwsDoc::Key(k) => k.id.clone(),
            AwsDoc::Role(r) => r.arn.clone(),
            AwsDoc::Ec2(i) => i.name.clone(),
            AwsDoc::Task(t) => t.name.clone(),
            AwsDoc::Secret(s) => s.arn.clone(),
            AwsDoc::OidcProvider(p) => p.arn.clone(),
            AwsDoc::TaskDef(d) => TaskDefinition::key(&d.account, &d.region, &d.family, d.revision),
        }
    }

    pub fn to_json(&self) -> String {
        let r = match self {
            AwsDoc::Account(x) => serde_json::to_string(x),
            AwsDoc::User(x) => serde_json::to_string(x),
            AwsDoc::Key(x) => serde_json::to_string(x),
            AwsDoc::Role(x) => serde_json::to_string(x),
            AwsDoc::Ec2(x) => serde_json::to_string(x),
            AwsDoc::Task(x) => serde_json::to_string(x),
            AwsDoc::Secret(x) => serde_json::to_string(x),
            AwsDoc::OidcProvider(x) => serde_json::to_string(x),
            AwsDoc::TaskDef(x) => serde_json::to_string(x),
        };
        // Plain structs of strings, numbers and JSON values: serialisation cannot fail.
        r.unwrap_or_default()
    }

    /// Parses a stored document; `None` if `kind` is not an AWS kind.
    pub fn parse(kind: &str, body: &str) -> Option<Result<AwsDoc, serde_json::Error>> {
        Some(match kind {
            "aws_account" => serde_json::from_str(body).map(AwsDoc::Account),
            "aws_user" => serde_json::from_str(body).map(AwsDoc::User),
            "aws_key" => serde_json::from_str(body).map(AwsDoc::Key),
            "aws_role" => serde_json::from_str(body).map(AwsDoc::Role),
            "aws_ec2" => serde_json::from_str(body).map(AwsDoc::Ec2),
            "aws_task" => serde_json::from_str(body).map(AwsDoc::Task),
            "aws_secret" => serde_json::from_str(body).map(AwsDoc::Secret),
            "aws_oidc_provider" => serde_json::from_str(body).map(AwsDoc::OidcProvider),
            "aws_task_def" => serde_json::from_str(body).map(AwsDoc::TaskDef),
            _ => return None,
        })
    }
}

/// Everything the cloud knows about its AWS half, in memory.
#[derive(Debug, Default)]
pub struct AwsState {
    pub accounts: BTreeMap<String, Account>,
    /// By ARN.
    pub users: BTreeMap<String, IamUser>,
    /// By access key id.
    pub keys: BTreeMap<String, AccessKey>,
    /// By ARN.
    pub roles: BTreeMap<String, Role>,
    /// By world name.
    pub ec2: BTreeMap<String, Ec2Instance>,
    /// By world name.
    pub tasks: BTreeMap<String, EcsTask>,
    /// By ARN.
    pub secrets: BTreeMap<String, AwsSecret>,
    /// (account, region, name) → ARN.
    pub secret_names: BTreeMap<(String, String, String), String>,
    /// IAM OIDC providers, by ARN.
    pub oidc_providers: BTreeMap<String, OidcProvider>,
    /// ECS task definitions, by `ACCOUNT/REGION/FAMILY:REVISION`.
    pub task_defs: BTreeMap<String, TaskDefinition>,
}

impl AwsState {
    pub fn apply(&mut self, d: AwsDoc) {
        match d {
            AwsDoc::Account(a) => {
                self.accounts.insert(a.id.clone(), a);
            }
            AwsDoc::User(u) => {
                self.users.insert(u.arn.clone(), u);
            }
            AwsDoc::Key(k) => {
                self.keys.insert(k.id.clone(), k);
            }
            AwsDoc::Role(r) => {
                self.roles.insert(r.arn.clone(), r);
            }
            AwsDoc::Ec2(i) => {
                self.ec2.insert(i.name.clone(), i);
            }
            AwsDoc::Task(t) => {
                self.tasks.insert(t.name.clone(), t);
            }
            AwsDoc::Secret(s) => {
                self.secret_names.insert(
                    (s.account.clone(), s.region.clone(), s.name.clone()),
                    s.arn.clone(),
                );
                self.secrets.insert(s.arn.clone(), s);
            }
            AwsDoc::OidcProvider(p) => {
                self.oidc_providers.insert(p.arn.clone(), p);
            }
            AwsDoc::TaskDef(d) => {
                self.task_defs.insert(
                    TaskDefinition::key(&d.account, &d.region, &d.family, d.revision),
                    d,
                );
            }
        }
    }

    pub fn remove(&mut self, kind: &str, key: &str) {
        match kind {
            "aws_secret" => {
                if let Some(s) = self.secrets.remove(key) {
                    self.secret_names.remove(&(s.account, s.region, s.name));
                }
            }
            "aws_key" => {
                self.keys.remove(key);
            }
            _ => {}
        }
    }

    /// The newest ACTIVE revision of a task definition family.
    pub fn latest_task_def(
        &self,
        account: &str,
        region: &str,
        family: &str,
    ) -> Option<&TaskDefinition> {
        self.task_defs
            .values()
            .filter(|d| {
                d.account == account
                    && d.region == region
                    && d.family == family
                    && d.status == "ACTIVE"
            })
            .max_by_key(|d| d.revision)
    }

    pub fn role_by_name(&self, account: &str, name: &str) -> Option<&Role> {
        self.roles.get(&role_arn(account, name))
    }
}

pub fn oidc_provider_arn(account: &str, url: &str) -> String {
    format!("arn:aws:iam::{account}:oidc-provider/{url}")
}

pub fn role_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role/{name}")
}

pub fn user_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:user/{name}")
}

pub fn secret_arn(region: &str, account: &str, name: &str, suffix: &str) -> String {
    format!("arn:aws:secretsmanager:{region}:{account}:secret:{name}-{suffix}")
}

/// The role name of a role ARN (`arn:aws:iam::ACCT:role/path/NAME` → `NAME`).
pub fn role_name_of(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}
