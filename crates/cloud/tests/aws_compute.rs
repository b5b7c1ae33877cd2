//! AWS compute identities over loopback HTTP: IMDSv2 per EC2 instance (session
//! token required), the ECS credentials endpoint per task (authorization token
//! required, task role only), ECS's start-time `secrets` resolution with the
//! execution role, and seed 001's world end to end on the cloud side.

use keyway_cloud::aws::compute;
use keyway_testkit::{Creds, Local, NOW, xml};
use serde_json::{Value, json};

const WORLD: &str = r#"
[[aws_account]]
id = "111111111111"

[[aws_role]]
account = "111111111111"
name = "web-role"
trust = { Statement = [{ Effect = "Allow", Principal = { Service = "ec2.amazonaws.com" }, Action = "sts:AssumeRole" }] }
policies = ['{"Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]}']

[[aws_role]]
account = "111111111111"
name = "task-role"
trust = '{"Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}'
policies = ['{"Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]}']

[[aws_role]]
account = "111111111111"
name = "exec-role"
trust = '{"Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}'
policies = ['{"Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "arn:aws:secretsmanager:us-east-1:111111111111:secret:db-*"}]}']

[[ec2_instance]]
account = "111111111111"
name = "web-1"
region = "us-east-1"
role = "web-role"

[[ec2_instance]]
account = "111111111111"
name = "bare-1"
region = "us-east-1"

[[ecs_task]]
account = "111111111111"
name = "api"
region = "us-east-1"
task_role = "task-role"
execution_role = "exec-role"
secrets = [
  { name = "DB_PASS", value_from = "arn:aws:secretsmanager:us-east-1:111111111111:secret:db:password::" },
  { name = "DB_JSON", value_from = "db" },
]

[[ecs_task]]
account = "111111111111"
name = "no-role"
region = "us-east-1"
execution_role = "exec-role"

[[ecs_task]]
account = "111111111111"
name = "denied"
region = "us-east-1"
task_role = "task-role"
execution_role = "exec-role"
secrets = [{ name = "API_KEY", value_from = "api-key" }]

[[aws_secret]]
account = "111111111111"
region = "us-east-1"
name = "db"
versions = [{ string = '{"user":"app","password":"hunter2"}' }]

[[aws_secret]]
account = "111111111111"
region = "us-east-1"
name = "api-key"
versions = [{ string = "k-123" }]
"#;

#[tokio::test]
async fn imdsv2_requires_a_session_token_and_serves_the_instance_role() {
    let e = Local::start(WORLD).await;
    let imds = &e.ep().ec2["web-1"].imds;
    let get = |path: &str, token: Option<&str>| {
        let mut r = e.http.get(format!("{imds}{path}"));
        if let Some(t) = token {
            r = r.header("x-aws-ec2-metadata-token", t);
        }
        r.send()
    };
    let r = get("latest/meta-data/iam/security-credentials/", None)
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "IMDSv1 is refused");
    let r = e
        .http
        .put(format!("{imds}latest/api/token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "a token needs a TTL");
    let r = e
        .http
        .put(format!("{imds}latest/api/token"))
        .header("X-aws-ec2-metadata-token-ttl-seconds", "21600")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let token = r.text().await.unwrap();
    let r = get("latest/meta-data/iam/security-credentials/", Some("forged"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    for path in [
        "latest/meta-data/iam/security-credentials/",
        "latest/meta-data/iam/security-credentials",
    ] {
        let r = get(path, Some(&token)).await.unwrap();
        assert_eq!(r.text().await.unwrap(), "web-role");
    }
    let v: Value = get(
        "latest/meta-data/iam/security-credentials/web-role",
        Some(&token),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(v["Code"], "Success");
    assert_eq!(v["Type"], "AWS-HMAC");
    assert!(
        v["AccessKeyId"].as_str().unwrap().starts_with("ASIA")
            && v["Expiration"].as_str().unwrap().ends_with('Z')
    );
    let again: Value = get(
        "latest/meta-data/iam/security-credentials/web-role",
        Some(&token),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        again["AccessKeyId"], v["AccessKeyId"],
        "IMDS hands out the same credentials until near expiry"
    );
    let r = get(
        "latest/meta-data/iam/security-credentials/other-role",
        Some(&token),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(
        get("latest/meta-data/placement/region", Some(&token))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "us-east-1"
    );
    let doc: Value = get("latest/dynamic/instance-identity/document", Some(&token))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["accountId"], "111111111111");
    let id = doc["instanceId"].as_str().unwrap().to_owned();
    // The credentials work, as a session of the role named after the instance.
    let c = Creds {
        akid: v["AccessKeyId"].as_str().unwrap().into(),
        secret: v["SecretAccessKey"].as_str().unwrap().into(),
        token: v["Token"].as_str().map(str::to_owned),
    };
    let (s, x) = e.sts(&c, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(s, 200, "{x}");
    assert_eq!(
        xml(&x, "Arn"),
        format!("arn:aws:sts::111111111111:assumed-role/web-role/{id}")
    );
    // A token expires with its TTL; an instance without a profile has no iam/.
    let bare = &e.ep().ec2["bare-1"].imds;
    let t2 = e
        .http
        .put(format!("{bare}latest/api/token"))
        .header("X-aws-ec2-metadata-token-ttl-seconds", "60")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = e
        .http
        .get(format!("{bare}latest/meta-data/iam/security-credentials/"))
        .header("x-aws-ec2-metadata-token", &t2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    e.clock.advance_secs(61);
    let r = e
        .http
        .get(format!("{bare}latest/meta-data/instance-id"))
        .header("x-aws-ec2-metadata-token", &t2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn ecs_endpoint_needs_the_token_and_serves_the_task_role_only() {
    let e = Local::start(WORLD).await;
    let t = &e.ep().tasks["api"];
    let start = compute::start_task(&e.aws, "api").unwrap();
    let token = start.auth_token.clone().unwrap();
    let url = format!("{}{}", t.agent, t.credentials_path.as_ref().unwrap());
    let r = e.http.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = e
        .http
        .get(&url)
        .header("Authorization", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = e
        .http
        .get(format!("{}/v2/credentials/not-the-id", t.agent))
        .header("Authorization", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = e
        .http
        .get(&url)
        .header("Authorization", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["RoleArn"], "arn:aws:iam::111111111111:role/task-role");
    let c = Creds {
        akid: v["AccessKeyId"].as_str().unwrap().into(),
        secret: v["SecretAccessKey"].as_str().unwrap().into(),
        token: v["Token"].as_str().map(str::to_owned),
    };
    let (s, x) = e.sts(&c, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(s, 200, "{x}");
    assert!(
        xml(&x, "Arn").starts_with("arn:aws:sts::111111111111:assumed-role/task-role/"),
        "{x}"
    );
    // The task role reads what the execution role may not.
    let (s, v) = e
        .sm(
            &c,
            "us-east-1",
            "GetSecretValue",
            json!({"SecretId": "api-key"}),
        )
        .await;
    assert_eq!((s, v["SecretString"].as_str()), (200, Some("k-123")));
    let meta: Value = e
        .http
        .get(format!("{}{}/task", t.agent, t.metadata_path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["LaunchType"], "FARGATE");
    assert!(
        meta["TaskARN"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:ecs:us-east-1:111111111111:task/default/")
    );
    // Without a task role there is no credentials endpoint and no token.
    assert!(e.ep().tasks["no-role"].credentials_path.is_none());
    assert!(
        compute::start_task(&e.aws, "no-role")
            .unwrap()
            .auth_token
            .is_none()
    );
}

#[tokio::test]
async fn task_secrets_resolve_with_the_execution_role_at_start() {
    let e = Local::start(WORLD).await;
    let s = compute::start_task(&e.aws, "api").unwrap();
    assert_eq!(
        s.secrets,
        vec![
            ("DB_PASS".to_owned(), "hunter2".to_owned()),
            (
                "DB_JSON".to_owned(),
                r#"{"user":"app","password":"hunter2"}"#.to_owned()
            )
        ]
    );
    assert!(
        !format!("{s:?}").contains("hunter2"),
        "Debug must not print secret values"
    );
    let err = compute::start_task(&e.aws, "denied").unwrap_err();
    assert!(
        err.starts_with("ResourceInitializationError: unable to pull secrets or registry auth:"),
        "{err}"
    );
    assert!(
        err.contains(
            "AccessDeniedException: User: arn:aws:sts::111111111111:assumed-role/exec-role/"
        ),
        "{err}"
    );
    assert!(err.contains("is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:111111111111:secret:api-key-"), "{err}");
    assert!(!err.contains("k-123"));
    // Through the control endpoint, as `keyway cloud env --task` calls it.
    let url = format!("{}/_keyway/ecs/start-task", e.ep().aws);
    let r = e
        .http
        .post(&url)
        .json(&json!({"task": "api"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = e
        .http
        .post(&url)
        .bearer_auth(&e.ep().control_token)
        .json(&json!({"task": "denied"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("ResourceInitializationError")
    );
    let r = e
        .http
        .post(&url)
        .bearer_auth(&e.ep().control_token)
        .json(&json!({"task": "api"}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["secrets"][0], json!(["DB_PASS", "hunter2"]));
    // The json-key form fails clearly when the key is absent.
    assert_eq!(
        compute::parse_value_from(
            "arn:aws:secretsmanager:us-east-1:1:secret:db-AbCdEf:k:AWSPREVIOUS:"
        )
        .unwrap()
        .stage
        .as_deref(),
        Some("AWSPREVIOUS")
    );
    assert!(compute::parse_value_from("arn:aws:ssm:us-east-1:1:parameter/x").is_err());
}

#[test]
fn world_errors_name_the_table_and_key() {
    let bad = WORLD.replace(
        "Service = \"ec2.amazonaws.com\"",
        "Service = \"lambda.amazonaws.com\"",
    );
    let e = keyway_cloud::world::parse("w.toml", &bad).unwrap_err();
    assert!(
        e.to_string()
            .contains("[[ec2_instance]] 'web-1' key `role`")
            && e.to_string().contains("ec2.amazonaws.com"),
        "{e}"
    );
    assert_eq!(e.line, 23, "the line of the [[ec2_instance]] table: {e}");
    let bad = WORLD.replace("id = \"111111111111\"", "id = \"1111\"");
    let e = keyway_cloud::world::parse("w.toml", &bad).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("w.toml:2: [[aws_account]] key `id`"),
        "{e}"
    );
    let bad = WORLD.replace(
        "task_role = \"task-role\"\nexecution_role = \"exec-role\"\nsecrets = [\n",
        "task_role = \"exec-rol\"\nexecution_role = \"exec-role\"\nsecrets = [\n",
    );
    let e = keyway_cloud::world::parse("w.toml", &bad).unwrap_err();
    assert!(
        e.to_string()
            .contains("[[ecs_task]] 'api' key `task_role`: no [[aws_role]] 'exec-rol'"),
        "{e}"
    );
    let bad = WORLD.replace(
        "Action = \"sts:AssumeRole\" }]",
        "Actions = \"sts:AssumeRole\" }]",
    );
    let e = keyway_cloud::world::parse("w.toml", &bad).unwrap_err();
    assert!(e.to_string().contains("key `trust`"), "{e}");
    // The EC2 launch type: the instance must be in the task's account and region.
    let on = |instance: &str| {
        WORLD.replace(
            "name = \"no-role\"\nregion = \"us-east-1\"\n",
            &format!("name = \"no-role\"\nregion = \"us-east-1\"\ninstance = \"{instance}\"\n"),
        )
    };
    let w = keyway_cloud::world::parse("w.toml", &on("bare-1")).unwrap();
    let t = w.aws.tasks.iter().find(|t| t.name == "no-role").unwrap();
    assert_eq!(t.instance.as_deref(), Some("bare-1"));
    let e = keyway_cloud::world::parse("w.toml", &on("web-2")).unwrap_err();
    assert!(
        e.to_string().contains(
            "[[ecs_task]] 'no-role' key `instance`: no [[ec2_instance]] 'web-2' in account 111111111111 and region us-east-1"
        ),
        "{e}"
    );
}

#[tokio::test]
async fn seed_001_world_loads_and_the_key_reaches_the_task() {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/seed-001.toml"
    ))
    .unwrap();
    let w = keyway_cloud::world::parse("seed-001.toml", &src).unwrap();
    assert_eq!(w.aws.tasks.len(), 2);
    let e = Local::start(&src).await;
    let token_uri = format!("{}/token", e.ep().google);
    // ECS injects KEY with the execution role: the key file as minted, live token_uri.
    let s = compute::start_task(&e.aws, "wevox-batch").unwrap();
    let (name, value) = &s.secrets[0];
    assert_eq!(name, "KEY");
    let key: Value = serde_json::from_str(value).unwrap();
    assert_eq!(key["type"], "service_account");
    assert_eq!(
        key["client_email"],
        "wevox-batch@wevox-analytics.iam.gserviceaccount.com"
    );
    assert_eq!(key["token_uri"], token_uri.as_str());
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(e.path.join("keys/wevox-batch-key.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk["private_key_id"], key["private_key_id"]);
    // The task role reads the same secret through Secrets Manager.
    let t = &e.ep().tasks["wevox-batch"];
    let url = format!("{}{}", t.agent, t.credentials_path.as_ref().unwrap());
    let v: Value = e
        .http
        .get(&url)
        .header("Authorization", s.auth_token.as_ref().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let c = Creds {
        akid: v["AccessKeyId"].as_str().unwrap().into(),
        secret: v["SecretAccessKey"].as_str().unwrap().into(),
        token: v["Token"].as_str().map(str::to_owned),
    };
    let (st, v) = e
        .sm(
            &c,
            "ap-northeast-1",
            "GetSecretValue",
            json!({"SecretId": "wevox/gcp-credentials"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["SecretString"].as_str(), Some(value.as_str()));
    // The first task definition: KEY is injected, but the containers get no credentials.
    assert!(t.credentials_path.is_some());
    assert!(
        e.ep().tasks["wevox-batch-no-task-role"]
            .credentials_path
            .is_none()
    );
    let s2 = compute::start_task(&e.aws, "wevox-batch-no-task-role").unwrap();
    assert!(s2.auth_token.is_none() && s2.secrets.len() == 1);
}

#[tokio::test]
async fn short_token_worlds_shorten_aws_sessions_and_ec2_tasks_reach_their_node() {
    let world = format!(
        "[settings]\ntoken_lifetime_secs = 60\n{}",
        WORLD.replace(
            "name = \"no-role\"\nregion = \"us-east-1\"\n",
            "name = \"no-role\"\nregion = \"us-east-1\"\ninstance = \"web-1\"\n",
        )
    );
    let e = Local::start(&world).await;
    let imds = e.ep().ec2["web-1"].imds.clone();
    // The EC2 launch type: the task's containers reach the node's IMDS; Fargate's do not.
    assert_eq!(
        e.ep().tasks["no-role"].node_imds.as_deref(),
        Some(imds.as_str())
    );
    assert_eq!(e.ep().tasks["api"].node_imds, None);
    // Every AWS session lives as long as the world's tokens: the instance's,
    // a task's and STS's are all issued by one Aws::issue.
    let c = e
        .aws
        .issue("arn:aws:iam::111111111111:role/web-role", "i-1", 6 * 3600)
        .unwrap();
    assert_eq!(c.expiration_secs, NOW + 60);
    assert_eq!(
        c.expiration(),
        keyway_cloud::time::rfc3339_seconds((NOW + 60) * 1000)
    );
    // Without the setting, the requested lifetime stands.
    let plain = Local::open(WORLD);
    let c = plain
        .aws
        .issue("arn:aws:iam::111111111111:role/web-role", "i-1", 6 * 3600)
        .unwrap();
    assert_eq!(c.expiration_secs, NOW + 6 * 3600);
}
