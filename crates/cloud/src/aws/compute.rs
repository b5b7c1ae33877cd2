//! Compute identities: one IMDSv2 server per EC2 instance and one ECS agent
//! endpoint per task, each on its own loopback port (the port identifies the
//! machine or the task, as `GCE_METADATA_HOST` does for the Google half).
//!
//! * IMDSv2: `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`
//!   issues a session token; every `GET` needs it in `X-aws-ec2-metadata-token`
//!   (401 without). The instance profile role's credentials are served under
//!   `/latest/meta-data/iam/security-credentials/ROLE`.
//! * ECS: `GET /v2/credentials/ID` with `Authorization: TOKEN` serves the
//!   **task role** only; `/v4/ID[/task]` is the task metadata endpoint.
//! * Starting a task ([`start_task`]) resolves the task definition's
//!   `secrets: valueFrom` with the **execution role**, as ECS does; a denial
//!   fails the start with ECS's `ResourceInitializationError`.

use super::model::{Ec2Instance, EcsTask};
use super::{Aws, AwsError, Proto, Received, TempCredentials, secretsmanager};
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyway_wire::aws::{ContainerCredentials, ImdsCredentials};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// Lifetime of compute credentials; they are handed out again until 15 minutes before expiry.
const CREDS_LIFETIME: i64 = 6 * 3600;
const REFRESH_BEFORE: i64 = 15 * 60;

struct Machine {
    aws: Arc<Aws>,
    /// World name of the instance or task.
    name: String,
    cache: Mutex<Option<TempCredentials>>,
}

impl Machine {
    /// The instance or task `name`, with nothing cached yet.
    fn new(aws: Arc<Aws>, name: String) -> Arc<Machine> {
        Arc::new(Machine {
            aws,
            name,
            cache: Mutex::new(None),
        })
    }

    fn credentials(&self, role_arn: &str, session: &str) -> Result<TempCredentials, String> {
        let now = self.aws.cloud.clock.now_secs();
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = c
            .as_ref()
            .filter(|t| t.claims.r == role_arn && t.expiration_secs - now > REFRESH_BEFORE)
        {
            return Ok(t.clone());
        }
        let t = self
            .aws
            .issue(role_arn, session, CREDS_LIFETIME)
            .map_err(|e| e.to_string())?;
        *c = Some(t.clone());
        Ok(t)
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut r = (status, body.into()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

fn json(v: &impl Serialize) -> Response {
    let mut r = serde_json::to_string(v).unwrap_or_default().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub fn imds_router(aws: Arc<Aws>, instance: String) -> axum::Router {
    axum::Router::new()
        .fallback(imds)
        .with_state(Machine::new(aws, instance))
}

async fn imds(
    AxState(m): AxState<Arc<Machine>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let r = imds_serve(&m, &method, &uri, &headers);
    tracing::debug!(instance = %m.name, path = %uri.path(), status = r.status().as_u16(), "imds");
    r
}

fn imds_serve(m: &Machine, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
    if headers.contains_key("x-forwarded-for") {
        return text(StatusCode::FORBIDDEN, "Forbidden");
    }
    let Some(inst) = m.aws.cloud.store.read().aws.ec2.get(&m.name).cloned() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
    };
    let path = uri.path();
    let now = m.aws.cloud.clock.now_secs();
    if path == "/latest/api/token" {
        if method != Method::PUT {
            return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        }
        let ttl = headers
            .get("x-aws-ec2-metadata-token-ttl-seconds")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok());
        let Some(ttl) = ttl.filter(|t| (1..=21600).contains(t)) else {
            return text(StatusCode::BAD_REQUEST, "Bad Request");
        };
        let mut r = text(
            StatusCode::OK,
            m.aws.opaque_token("imds", &inst.instance_id, now + ttl),
        );
        if let Ok(v) = HeaderValue::from_str(&ttl.to_string()) {
            r.headers_mut()
                .insert("x-aws-ec2-metadata-token-ttl-seconds", v);
        }
        return r;
    }
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }
    // IMDSv2 only (http-tokens = required): no session token, no answer.
    let token = headers
        .get("x-aws-ec2-metadata-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if m.aws.check_opaque_token("imds", token).as_deref() != Some(inst.instance_id.as_str()) {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let role = inst.role_arn.as_deref().map(super::model::role_name_of);
    let p = path.trim_end_matches('/');
    match p {
        "/latest" => text(StatusCode::OK, "api/\ndynamic/\nmeta-data/"),
        "/latest/meta-data" => {
            let mut s = String::from(
                "ami-id\nhostname\ninstance-id\ninstance-type\nlocal-hostname\nlocal-ipv4\nplacement/\n",
            );
            if role.is_some() {
                s.push_str("iam/\n");
            }
            text(StatusCode::OK, s.trim_end().to_owned())
        }
        "/latest/meta-data/ami-id" => text(StatusCode::OK, "ami-0keyway0local0000"),
        "/latest/meta-data/instance-id" => text(StatusCode::OK, inst.instance_id.clone()),
        "/latest/meta-data/instance-type" => text(StatusCode::OK, inst.instance_type.clone()),
        "/latest/meta-data/hostname" | "/latest/meta-data/local-hostname" => text(
            StatusCode::OK,
            format!("ip-127-0-0-1.{}.compute.internal", inst.region),
        ),
        "/latest/meta-data/local-ipv4" => text(StatusCode::OK, "127.0.0.1"),
        "/latest/meta-data/placement" => text(StatusCode::OK, "availability-zone\nregion"),
        "/latest/meta-data/placement/region" => text(StatusCode::OK, inst.region.clone()),
        "/latest/meta-data/placement/availability-zone" => {
            text(StatusCode::OK, inst.availability_zone.clone())
        }
        "/latest/dynamic" => text(StatusCode::OK, "instance-identity/"),
        "/latest/dynamic/instance-identity" => text(StatusCode::OK, "document"),
        "/latest/dynamic/instance-identity/document" => json(&identity_document(&inst)),
        "/latest/meta-data/iam" if role.is_some() => {
            text(StatusCode::OK, "info\nsecurity-credentials/")
        }
        "/latest/meta-data/iam/info" if role.is_some() => json(&serde_json::json!({
            "Code": "Success",
            "LastUpdated": crate::time::rfc3339_seconds(inst.create_ms),
            "InstanceProfileArn": format!("arn:aws:iam::{}:instance-profile/{}", inst.account, role.unwrap_or_default()),
            "InstanceProfileId": format!("AIPA{}", &URL_SAFE_NO_PAD.encode(inst.instance_id.as_bytes()).to_ascii_uppercase()[..17.min(inst.instance_id.len())]),
        })),
        "/latest/meta-data/iam/security-credentials" if role.is_some() => {
            text(StatusCode::OK, role.unwrap_or_default().to_owned())
        }
        _ => match (
            p.strip_prefix("/latest/meta-data/iam/security-credentials/"),
            &inst.role_arn,
        ) {
            (Some(asked), Some(arn)) if Some(asked) == role => {
                match m.credentials(arn, &inst.instance_id) {
                    Ok(c) => json(&ImdsCredentials {
                        code: "Success".into(),
                        last_updated: crate::time::rfc3339_seconds(c.claims.iat * 1000),
                        type_: "AWS-HMAC".into(),
                        access_key_id: c.access_key_id.clone(),
                        secret_access_key: c.secret_access_key.to_string(),
                        token: c.session_token.clone(),
                        expiration: c.expiration(),
                    }),
                    Err(e) => {
                        tracing::error!(%e, "issuing instance credentials");
                        text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
                    }
                }
            }
            _ => text(StatusCode::NOT_FOUND, "Not Found"),
        },
    }
}

fn identity_document(i: &Ec2Instance) -> serde_json::Value {
    serde_json::json!({
        "accountId": i.account, "architecture": "x86_64", "availabilityZone": i.availability_zone,
        "imageId": "ami-0keyway0local0000", "instanceId": i.instance_id, "instanceType": i.instance_type,
        "pendingTime": crate::time::rfc3339_seconds(i.create_ms), "privateIp": "127.0.0.1", "region": i.region,
        "version": "2017-09-30",
    })
}

pub fn ecs_router(aws: Arc<Aws>, task: String) -> axum::Router {
    axum::Router::new()
        .fallback(ecs)
        .with_state(Machine::new(aws, task))
}

/// The value of AWS_CONTAINER_AUTHORIZATION_TOKEN for a task.
pub fn task_auth_token(aws: &Aws, task: &EcsTask) -> String {
    URL_SAFE_NO_PAD.encode(aws.mac("ecs-auth", &task.task_id))
}

async fn ecs(AxState(m): AxState<Arc<Machine>>, uri: Uri, headers: HeaderMap) -> Response {
    let r = ecs_serve(&m, &uri, &headers);
    tracing::debug!(task = %m.name, path = %uri.path(), status = r.status().as_u16(), "ecs agent");
    r
}

fn agent_error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut r = json(&serde_json::json!({"code": code, "message": message}));
    *r.status_mut() = status;
    r
}

fn ecs_serve(m: &Machine, uri: &Uri, headers: &HeaderMap) -> Response {
    let Some(task) = m.aws.cloud.store.read().aws.tasks.get(&m.name).cloned() else {
        return agent_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "TaskStopped",
            "The task is not running.",
        );
    };
    let path = uri.path().trim_end_matches('/');
    if let Some(id) = path.strip_prefix("/v2/credentials/") {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let expected = task_auth_token(&m.aws, &task);
        if given.is_empty()
            || aws_lc_rs::constant_time::verify_slices_are_equal(
                given.as_bytes(),
                expected.as_bytes(),
            )
            .is_err()
        {
            return agent_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthorizationToken",
                "Authorization token is missing or invalid.",
            );
        }
        // Only the task role is served here; the execution role belongs to ECS itself.
        let (Some(arn), true) = (&task.task_role_arn, id == task.credentials_id) else {
            return agent_error(
                StatusCode::BAD_REQUEST,
                "InvalidIdInRequest",
                "CredentialsV2Request: Credentials not found",
            );
        };
        return match m.credentials(arn, &task.task_id) {
            Ok(c) => json(&ContainerCredentials {
                access_key_id: c.access_key_id.clone(),
                secret_access_key: c.secret_access_key.to_string(),
                token: c.session_token.clone(),
                expiration: c.expiration(),
                role_arn: Some(arn.clone()),
            }),
            Err(e) => {
                tracing::error!(%e, "issuing task credentials");
                agent_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "Internal error",
                )
            }
        };
    }
    let v4 = format!("/v4/{}", task.task_id);
    if path == v4 {
        return json(&serde_json::json!({
            "DockerId": task.task_id, "Name": task.family, "Image": "keyway-local", "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING",
            "Labels": {"com.amazonaws.ecs.cluster": task.cluster, "com.amazonaws.ecs.task-arn": task.task_arn(),
                       "com.amazonaws.ecs.task-definition-family": task.family, "com.amazonaws.ecs.task-definition-version": task.revision.to_string()},
        }));
    }
    if path == format!("{v4}/task") {
        return json(&serde_json::json!({
            "Cluster": format!("arn:aws:ecs:{}:{}:cluster/{}", task.region, task.account, task.cluster),
            "TaskARN": task.task_arn(), "Family": task.family, "Revision": task.revision.to_string(),
            "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING", "AvailabilityZone": format!("{}a", task.region), "LaunchType": "FARGATE",
        }));
    }
    agent_error(StatusCode::NOT_FOUND, "NotFound", "Not found")
}

/// What ECS hands a starting task: the auth token of its credentials endpoint
/// (if it has a task role) and its resolved `secrets`.
#[derive(Serialize, Deserialize)]
pub struct TaskStart {
    pub auth_token: Option<String>,
    /// The credentials path (`/v2/credentials/ID`), if the revision started has a task role.
    #[serde(default)]
    pub credentials_path: Option<String>,
    /// The task definition revision started (`family:revision`).
    #[serde(default)]
    pub task_definition: String,
    pub secrets: Vec<(String, String)>,
}

impl std::fmt::Debug for TaskStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskStart")
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "secrets",
                &self.secrets.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// An ECS `valueFrom`: `arn:aws:secretsmanager:R:A:secret:NAME[-SUFFIX][:json-key:version-stage:version-id]` or a name.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueFrom {
    pub secret_id: String,
    pub region: Option<String>,
    pub json_key: Option<String>,
    pub stage: Option<String>,
    pub version_id: Option<String>,
}

pub fn parse_value_from(v: &str) -> Result<ValueFrom, String> {
    if !v.starts_with("arn:") {
        return Ok(ValueFrom {
            secret_id: v.to_owned(),
            region: None,
            json_key: None,
            stage: None,
            version_id: None,
        });
    }
    let parts: Vec<&str> = v.split(':').collect();
    if parts.len() < 7
        || parts.len() > 10
        || parts[2] != "secretsmanager"
        || parts[5] != "secret"
        || parts[6].is_empty()
    {
        return Err(format!(
            "invalid secret ARN '{v}': expected arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[:json-key:version-stage:version-id]"
        ));
    }
    let opt = |i: usize| {
        parts
            .get(i)
            .filter(|s| !s.is_empty())
            .map(|s| s.to_string())
    };
    Ok(ValueFrom {
        secret_id: parts[..7].join(":"),
        region: Some(parts[3].to_owned()),
        json_key: opt(7),
        stage: opt(8),
        version_id: opt(9),
    })
}

/// Runs the newest ACTIVE revision of the task's family from now on, if one
/// was registered after the revision it runs (its roles, `secrets` and
/// `environment` change; its ids and credentials endpoint stay).
fn adopt_latest_revision(aws: &Aws, name: &str) -> Result<(), String> {
    aws.cloud
        .store
        .write(|st| {
            let Some(task) = st.aws.tasks.get(name) else {
                return Ok((vec![], ()));
            };
            let Some(d) = st
                .aws
                .latest_task_def(&task.account, &task.region, &task.family)
                .filter(|d| d.revision > task.revision)
            else {
                return Ok((vec![], ()));
            };
            let mut t = task.clone();
            t.revision = d.revision;
            t.task_role_arn = d.task_role_arn();
            t.execution_role_arn = d.execution_role_arn();
            t.secrets = d.secrets();
            t.environment = d.environment();
            tracing::info!(task = %name, task_definition = %d.arn(), "ECS task runs a new task definition revision");
            Ok::<_, crate::store::StoreError>((vec![crate::store::Change::PutAws(super::model::AwsDoc::Task(t))], ()))
        })
        .map_err(|e| format!("the local cloud could not record the task's new revision: {e}"))
}

/// Starts a task as ECS would: runs the newest revision of its family and
/// resolves that revision's `secrets` with its execution role. The error is
/// ECS's stopped reason.
pub fn start_task(aws: &Aws, name: &str) -> Result<TaskStart, String> {
    adopt_latest_revision(aws, name)?;
    let st = aws.cloud.store.read();
    let task = st
        .aws
        .tasks
        .get(name)
        .ok_or_else(|| format!("the local cloud has no ECS task '{name}'"))?;
    let fail = |arn: &str, e: &AwsError| {
        format!(
            "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm: service call has been retried 1 time(s): failed to fetch secret {arn} from secrets manager: {}: {}\n\tstatus code: {}, request id: {}",
            e.code,
            e.message,
            e.status,
            super::ids::uuid4().unwrap_or_default()
        )
    };
    let mut secrets = Vec::new();
    if !task.secrets.is_empty() {
        let exec = task.execution_role_arn.as_ref().and_then(|a| st.aws.roles.get(a)).ok_or_else(|| {
            "ResourceInitializationError: unable to pull secrets or registry auth: the task definition has `secrets` but no execution role (executionRoleArn); ECS needs one to read them".to_owned()
        })?;
        for s in &task.secrets {
            let vf = parse_value_from(&s.value_from).map_err(|e| {
                format!("ResourceInitializationError: unable to pull secrets or registry auth: {e}")
            })?;
            let region = vf.region.clone().unwrap_or_else(|| task.region.clone());
            let caller = super::session_caller(exec, &task.task_id, &region);
            let now = aws.cloud.clock.now_millis();
            let secret = secretsmanager::resolve(&st.aws, &caller, &vf.secret_id, now);
            let resource = secret
                .map(|x| x.arn.clone())
                .unwrap_or_else(|| vf.secret_id.clone());
            let value = (|| {
                let Some(secret) = secret else {
                    secretsmanager::authorize(&caller, "secretsmanager:GetSecretValue", None, &resource, &[])?;
                    return Err(AwsError::new(Proto::Json, 400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret."));
                };
                secretsmanager::authorize(&caller, "secretsmanager:GetSecretValue", Some(secret), &secret.arn, &[])?;
                if secret.deletion_ms.is_some() {
                    return Err(AwsError::new(Proto::Json, 400, "InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion."));
                }
                let v = secretsmanager::pick(secret, vf.version_id.as_deref(), vf.stage.as_deref())?;
                if v.binary {
                    return Err(AwsError::new(Proto::Json, 400, "InvalidRequestException", "the secret holds a SecretBinary value; ECS injects SecretString values only"));
                }
                let data = secretsmanager::open(&aws.cloud.store, &secret.arn, v)?;
                Ok(String::from_utf8_lossy(&data).into_owned())
            })()
            .map_err(|e| fail(&s.value_from, &e))?;
            let value = match &vf.json_key {
                None => value,
                Some(k) => {
                    let obj: serde_json::Value = serde_json::from_str(&value).map_err(|_| {
                        format!("ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm: secret {} is not a JSON object, so json key '{k}' cannot be read", s.value_from)
                    })?;
                    match obj.get(k) {
                        Some(serde_json::Value::String(x)) => x.clone(),
                        Some(other) => other.to_string(),
                        None => {
                            return Err(format!(
                                "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm: retrieved secret from Secrets Manager did not contain json key {k}"
                            ));
                        }
                    }
                }
            };
            secrets.push((s.name.clone(), value));
        }
    }
    Ok(TaskStart {
        auth_token: task
            .task_role_arn
            .as_ref()
            .map(|_| task_auth_token(aws, task)),
        credentials_path: task
            .task_role_arn
            .as_ref()
            .map(|_| format!("/v2/credentials/{}", task.credentials_id)),
        task_definition: format!("{}:{}", task.family, task.revision),
        secrets,
    })
}

#[derive(Deserialize)]
struct StartRequest {
    task: String,
}

/// `/_keyway/…`: control calls from `keyway cloud env`, guarded by the control token.
pub fn control(aws: &Aws, r: &Received) -> Result<Response, AwsError> {
    let given = r
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let expected = format!("Bearer {}", aws.control_token);
    if aws_lc_rs::constant_time::verify_slices_are_equal(given.as_bytes(), expected.as_bytes())
        .is_err()
    {
        return Ok(agent_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "a control call needs the local cloud's control token",
        ));
    }
    match (r.method.as_str(), r.uri.path()) {
        ("POST", "/_keyway/ecs/start-task") => {
            let Ok(req) = serde_json::from_slice::<StartRequest>(&r.body) else {
                return Ok(agent_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "expected {\"task\": NAME}",
                ));
            };
            Ok(match start_task(aws, &req.task) {
                Ok(s) => json(&s),
                Err(e) => agent_error(StatusCode::BAD_REQUEST, "TaskFailedToStart", &e),
            })
        }
        _ => Ok(agent_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "unknown control call",
        )),
    }
}
