//! Amazon ECS over JSON 1.1 (`X-Amz-Target:
//! AmazonEC2ContainerServiceV20141113.OP`): `RegisterTaskDefinition` and
//! `DescribeTaskDefinition`, so the fix for a task without a task role (or
//! with the wrong one) is what it is on AWS: a new revision of the task
//! definition with `taskRoleArn` set.
//!
//! Each world-declared `[[ecs_task]]` is revision 1 of its family, and runs
//! like a scheduled task whose target names the family without a revision:
//! its next start (`keyway cloud env --task`) runs the newest ACTIVE revision
//! (see [`super::compute::start_task`]). The local task runs the first
//! container of the definition; its `secrets` and `environment` are that
//! container's. Passing a role in `taskRoleArn` or `executionRoleArn` needs
//! `iam:PassRole` on it, as on AWS.

use super::model::{AwsDoc, EcsTask, TaskDefinition};
use super::{Aws, AwsError, Caller, Proto, Received, ok_json, policy};
use crate::store::Change;
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113";

fn client(msg: impl Into<String>) -> AwsError {
    AwsError::new(Proto::Json, 400, "ClientException", msg)
}

/// The definition a world-declared task runs as revision 1 of its family.
pub fn world_definition(t: &EcsTask) -> TaskDefinition {
    let mut container = json!({
        "name": t.name,
        "image": "keyway-local",
        "essential": true,
    });
    if !t.secrets.is_empty() {
        container["secrets"] = t
            .secrets
            .iter()
            .map(|s| json!({"name": s.name, "valueFrom": s.value_from}))
            .collect();
    }
    if !t.environment.is_empty() {
        container["environment"] = t
            .environment
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
    }
    let mut d = json!({
        "containerDefinitions": [container],
        "networkMode": "awsvpc",
        "requiresCompatibilities": [if t.instance.is_some() { "EC2" } else { "FARGATE" }],
        "cpu": "256",
        "memory": "512",
    });
    if let Some(a) = &t.task_role_arn {
        d["taskRoleArn"] = a.clone().into();
    }
    if let Some(a) = &t.execution_role_arn {
        d["executionRoleArn"] = a.clone().into();
    }
    TaskDefinition {
        account: t.account.clone(),
        region: t.region.clone(),
        family: t.family.clone(),
        revision: t.revision,
        status: "ACTIVE".into(),
        registered_ms: t.create_ms,
        registered_by: format!("arn:aws:iam::{}:root", t.account),
        definition: d,
    }
}

pub fn dispatch(aws: &Aws, r: &Received, op: &str) -> Result<Response, AwsError> {
    let caller = aws.authenticate(r, "ecs", Proto::Json)?;
    let body: &[u8] = if r.body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &r.body
    };
    let b: Value = serde_json::from_slice(body).map_err(|err| {
        AwsError::new(
            Proto::Json,
            400,
            "SerializationException",
            format!("The request body is not valid JSON: {err}"),
        )
    })?;
    match op {
        "RegisterTaskDefinition" => register(aws, &caller, &b),
        "DescribeTaskDefinition" => describe(aws, &caller, &b),
        other => Err(AwsError::new(
            Proto::Json,
            400,
            "UnknownOperationException",
            format!("The operation {other} is not served by the local cloud."),
        )),
    }
}

/// The IAM decision for `action` on `resource`, with AWS's AccessDeniedException wording.
fn authorize(caller: &Caller, action: &str, resource: &str) -> Result<(), AwsError> {
    let d = caller.decide_own(action, resource, &BTreeMap::new());
    if d == policy::Decision::Allow {
        return Ok(());
    }
    tracing::info!(caller = %caller.who.arn, %action, %resource, "ECS denied");
    Err(AwsError::new(
        Proto::Json,
        400,
        "AccessDeniedException",
        policy::denial_message(&caller.who, action, resource, d),
    ))
}

/// A role given by name or ARN, as its ARN in the caller's account.
fn role_arn(caller: &Caller, v: &str) -> Result<String, AwsError> {
    if v.starts_with("arn:") {
        if !v.starts_with("arn:aws:iam::") || !v.contains(":role/") {
            return Err(client(format!(
                "Role is not valid: '{v}' is not an IAM role ARN."
            )));
        }
        return Ok(v.to_owned());
    }
    Ok(super::model::role_arn(&caller.who.account, v))
}

fn register(aws: &Aws, caller: &Caller, b: &Value) -> Result<Response, AwsError> {
    authorize(caller, "ecs:RegisterTaskDefinition", "*")?;
    let family = b.get("family").and_then(Value::as_str).unwrap_or("");
    if family.is_empty()
        || family.len() > 255
        || !family
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    {
        return Err(client(
            "Family contains invalid characters: up to 255 letters (uppercase and lowercase), numbers, hyphens, and underscores are allowed.",
        ));
    }
    let containers = b
        .get("containerDefinitions")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| client("Container list cannot be empty."))?;
    for c in containers {
        for (field, what) in [("name", "Container.name"), ("image", "Container.image")] {
            if c.get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(client(format!("{what} should not be null or empty.")));
            }
        }
        for s in c
            .get("secrets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if s.get("name").and_then(Value::as_str).is_none()
                || s.get("valueFrom").and_then(Value::as_str).is_none()
            {
                return Err(client("Secrets must have a name and a valueFrom."));
            }
        }
    }
    let mut definition = serde_json::Map::new();
    for (k, v) in b.as_object().into_iter().flatten() {
        if k != "family" && k != "tags" {
            definition.insert(k.clone(), v.clone());
        }
    }
    for field in ["taskRoleArn", "executionRoleArn"] {
        if let Some(v) = b
            .get(field)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
        {
            let arn = role_arn(caller, v)?;
            // Handing a role to ECS is passing it: iam:PassRole on the role.
            authorize(caller, "iam:PassRole", &arn)?;
            definition.insert(field.to_owned(), arn.into());
        }
    }
    let region = caller.region.clone();
    let account = caller.who.account.clone();
    let now = aws.cloud.clock.now_millis();
    let d = aws.cloud.store.write(|st| {
        // Revisions count on from the family's highest, tasks' own included.
        let top = st
            .aws
            .task_defs
            .values()
            .filter(|d| d.account == account && d.region == region && d.family == family)
            .map(|d| d.revision)
            .chain(
                st.aws
                    .tasks
                    .values()
                    .filter(|t| t.account == account && t.region == region && t.family == family)
                    .map(|t| t.revision),
            )
            .max()
            .unwrap_or(0);
        let d = TaskDefinition {
            account: account.clone(),
            region: region.clone(),
            family: family.to_owned(),
            revision: top + 1,
            status: "ACTIVE".into(),
            registered_ms: now,
            registered_by: caller.who.arn.clone(),
            definition: Value::Object(definition.clone()),
        };
        Ok::<_, AwsError>((vec![Change::PutAws(AwsDoc::TaskDef(d.clone()))], d))
    })?;
    tracing::info!(caller = %caller.who.arn, task_definition = %d.arn(), "ECS task definition registered");
    Ok(ok_json(&json!({
        "taskDefinition": render(&d),
        "tags": b.get("tags").cloned().unwrap_or_else(|| json!([])),
    })))
}

fn describe(aws: &Aws, caller: &Caller, b: &Value) -> Result<Response, AwsError> {
    authorize(caller, "ecs:DescribeTaskDefinition", "*")?;
    let want = b
        .get("taskDefinition")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| client("taskDefinition can not be blank."))?;
    // `family`, `family:revision` or the full ARN.
    let short = want
        .strip_prefix("arn:aws:ecs:")
        .and_then(|r| r.split_once(":task-definition/"))
        .map(|(_, f)| f)
        .unwrap_or(want);
    let (family, revision) = match short.rsplit_once(':') {
        Some((f, r)) => (
            f,
            Some(
                r.parse::<u32>()
                    .map_err(|_| client(format!("Invalid revision number. Number: {r}")))?,
            ),
        ),
        None => (short, None),
    };
    let st = aws.cloud.store.read();
    let (account, region) = (&caller.who.account, &caller.region);
    let d = match revision {
        Some(n) => st
            .aws
            .task_defs
            .get(&TaskDefinition::key(account, region, family, n)),
        None => st.aws.latest_task_def(account, region, family),
    }
    .ok_or_else(|| client("Unable to describe task definition."))?;
    Ok(ok_json(&json!({ "taskDefinition": render(d), "tags": [] })))
}

/// A `TaskDefinition` as ECS returns it: what was registered, plus what ECS adds.
fn render(d: &TaskDefinition) -> Value {
    let mut v = d.definition.clone();
    v["taskDefinitionArn"] = d.arn().into();
    v["family"] = d.family.clone().into();
    v["revision"] = d.revision.into();
    v["status"] = d.status.clone().into();
    v["registeredAt"] = (d.registered_ms as f64 / 1000.0).into();
    v["registeredBy"] = d.registered_by.clone().into();
    v["compatibilities"] = json!(["EC2", "FARGATE"]);
    for (k, empty) in [
        ("volumes", json!([])),
        ("placementConstraints", json!([])),
        ("requiresAttributes", json!([])),
    ] {
        if v.get(k).is_none() {
            v[k] = empty;
        }
    }
    v
}
