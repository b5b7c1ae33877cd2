//! AWS compute identities over loopback HTTP: IMDSv2 per EC2 instance (session
//! token required), the ECS credentials endpoint per task (authorization token
//! required, task role only), ECS's start-time `secrets` resolution with the
//! execution role, and seed 001's world end to end on the cloud side.

use keyway_cloud::aws::compute;
use keyway_testkit::{Creds, Local, NOW, xml};
use serde_json::{Value, json};

const WORLD: &str = include_str!("worlds/aws_compute.toml");

const CREDS: &str = "latest/meta-data/iam/security-credentials/";

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// GET `path` of the IMDS at `imds`, with a session token or none.
async fn imds_get(e: &Local, imds: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let token = token.map(|t| ("x-aws-ec2-metadata-token", t));
    let headers: Vec<(&str, &str)> = token.into_iter().collect();
    e.request("GET", &format!("{imds}{path}"), &headers).await
}

/// PUT `latest/api/token` of the IMDS at `imds`, asking for `ttl` seconds or not.
async fn imds_token(e: &Local, imds: &str, ttl: Option<&str>) -> (u16, String) {
    let ttl = ttl.map(|t| ("X-aws-ec2-metadata-token-ttl-seconds", t));
    let headers: Vec<(&str, &str)> = ttl.into_iter().collect();
    e.request("PUT", &format!("{imds}latest/api/token"), &headers)
        .await
}

/// The control endpoint `keyway cloud env --task` calls to start `task`,
/// with the control token or without.
async fn start_task(e: &Local, task: &str, with_token: bool) -> (u16, Value) {
    let url = format!("{}/_keyway/ecs/start-task", e.ep().aws);
    let mut r = e.http.post(&url).json(&json!({ "task": task }));
    if with_token {
        r = r.bearer_auth(&e.ep().control_token);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn imdsv2_requires_a_session_token_and_serves_the_instance_role() {
    let e = Local::start(WORLD).await;
    let imds = &e.ep().ec2["web-1"].imds;
    let (s, _) = imds_get(&e, imds, CREDS, None).await;
    assert_eq!(s, 401, "IMDSv1 is refused");
    let (s, _) = imds_token(&e, imds, None).await;
    assert_eq!(s, 400, "a token needs a TTL");
    let (s, token) = imds_token(&e, imds, Some("21600")).await;
    assert_eq!(s, 200);
    let tok = Some(token.as_str());
    assert_eq!(imds_get(&e, imds, CREDS, Some("forged")).await.0, 401);
    for path in [CREDS, CREDS.trim_end_matches('/')] {
        assert_eq!(imds_get(&e, imds, path, tok).await.1, "web-role");
    }
    let web_role = format!("{CREDS}web-role");
    let v = json(&imds_get(&e, imds, &web_role, tok).await.1);
    assert_eq!(v["Code"], "Success");
    assert_eq!(v["Type"], "AWS-HMAC");
    assert!(
        v["AccessKeyId"].as_str().unwrap().starts_with("ASIA")
            && v["Expiration"].as_str().unwrap().ends_with('Z')
    );
    let again = json(&imds_get(&e, imds, &web_role, tok).await.1);
    assert_eq!(
        again["AccessKeyId"], v["AccessKeyId"],
        "IMDS hands out the same credentials until near expiry"
    );
    assert_eq!(
        imds_get(&e, imds, &format!("{CREDS}other-role"), tok)
            .await
            .0,
        404
    );
    let region = "latest/meta-data/placement/region";
    assert_eq!(imds_get(&e, imds, region, tok).await.1, "us-east-1");
    let document = "latest/dynamic/instance-identity/document";
    let doc = json(&imds_get(&e, imds, document, tok).await.1);
    assert_eq!(doc["accountId"], "111111111111");
    let id = doc["instanceId"].as_str().unwrap().to_owned();
    // The credentials work, as a session of the role named after the instance.
    let c = Creds::from_document(&v);
    let (s, x) = e.sts(&c, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(s, 200, "{x}");
    assert_eq!(
        xml(&x, "Arn"),
        format!("arn:aws:sts::111111111111:assumed-role/web-role/{id}")
    );
    // A token expires with its TTL; an instance without a profile has no iam/.
    let bare = &e.ep().ec2["bare-1"].imds;
    let (_, t2) = imds_token(&e, bare, Some("60")).await;
    assert_eq!(imds_get(&e, bare, CREDS, Some(&t2)).await.0, 404);
    e.clock.advance_secs(61);
    let instance_id = "latest/meta-data/instance-id";
    assert_eq!(imds_get(&e, bare, instance_id, Some(&t2)).await.0, 401);
}

#[tokio::test]
async fn ecs_endpoint_needs_the_token_and_serves_the_task_role_only() {
    let e = Local::start(WORLD).await;
    let t = &e.ep().tasks["api"];
    let start = compute::start_task(&e.aws, "api").unwrap();
    let token = start.auth_token.clone().unwrap();
    let url = format!("{}{}", t.agent, t.credentials_path.as_ref().unwrap());
    let other = format!("{}/v2/credentials/not-the-id", t.agent);
    for (url, authorization, status) in [
        (&url, None, 401),
        (&url, Some("wrong"), 401),
        (&other, Some(token.as_str()), 400),
    ] {
        let headers: Vec<_> = authorization
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        assert_eq!(
            e.request("GET", url, &headers).await.0,
            status,
            "{authorization:?}"
        );
    }
    let v = json(&e.request("GET", &url, &[("Authorization", &token)]).await.1);
    assert_eq!(v["RoleArn"], "arn:aws:iam::111111111111:role/task-role");
    let c = Creds::from_document(&v);
    let (s, x) = e.sts(&c, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(s, 200, "{x}");
    assert!(
        xml(&x, "Arn").starts_with("arn:aws:sts::111111111111:assumed-role/task-role/"),
        "{x}"
    );
    // The task role reads what the execution role may not.
    let (s, v) = e
        .signed(&c, "us-east-1")
        .sm("GetSecretValue", json!({"SecretId": "api-key"}))
        .await;
    assert_eq!((s, v["SecretString"].as_str()), (200, Some("k-123")));
    let task = format!("{}{}/task", t.agent, t.metadata_path);
    let meta = json(&e.request("GET", &task, &[]).await.1);
    assert_eq!(meta["LaunchType"], "FARGATE");
    let arn = meta["TaskARN"].as_str().unwrap();
    assert!(arn.starts_with("arn:aws:ecs:us-east-1:111111111111:task/default/"));
    // Without a task role there is no credentials endpoint and no token.
    assert!(e.ep().tasks["no-role"].credentials_path.is_none());
    let no_role = compute::start_task(&e.aws, "no-role").unwrap();
    assert!(no_role.auth_token.is_none());
}

#[tokio::test]
async fn task_secrets_resolve_with_the_execution_role_at_start() {
    let e = Local::start(WORLD).await;
    let s = compute::start_task(&e.aws, "api").unwrap();
    let json_secret = r#"{"user":"app","password":"hunter2"}"#;
    assert_eq!(
        s.secrets,
        [("DB_PASS", "hunter2"), ("DB_JSON", json_secret)]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
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
    assert_eq!(start_task(&e, "api", false).await.0, 401);
    let (s, v) = start_task(&e, "denied", true).await;
    assert_eq!(s, 400);
    let message = v["message"].as_str().unwrap();
    assert!(message.starts_with("ResourceInitializationError"));
    let (_, v) = start_task(&e, "api", true).await;
    assert_eq!(v["secrets"][0], json!(["DB_PASS", "hunter2"]));
    // The json-key form fails clearly when the key is absent.
    let with_stage = "arn:aws:secretsmanager:us-east-1:1:secret:db-AbCdEf:k:AWSPREVIOUS:";
    let parsed = compute::parse_value_from(with_stage).unwrap();
    assert_eq!(parsed.stage.as_deref(), Some("AWSPREVIOUS"));
    assert!(compute::parse_value_from("arn:aws:ssm:us-east-1:1:parameter/x").is_err());
}

#[test]
fn world_errors_name_the_table_and_key() {
    // What the world says, what it says instead; how the error starts (with
    // the file and line), what it names, and the line it gives.
    let cases = [
        (
            "Service = \"ec2.amazonaws.com\"",
            "Service = \"lambda.amazonaws.com\"",
            "",
            &["[[ec2_instance]] 'web-1' key `role`", "ec2.amazonaws.com"][..],
            // The line of the [[ec2_instance]] table.
            Some(23),
        ),
        (
            "id = \"111111111111\"",
            "id = \"1111\"",
            "w.toml:2: [[aws_account]] key `id`",
            &[],
            None,
        ),
        (
            "task_role = \"task-role\"\nexecution_role = \"exec-role\"\nsecrets = [\n",
            "task_role = \"exec-rol\"\nexecution_role = \"exec-role\"\nsecrets = [\n",
            "",
            &["[[ecs_task]] 'api' key `task_role`: no [[aws_role]] 'exec-rol'"],
            None,
        ),
        (
            "Action = \"sts:AssumeRole\" }]",
            "Actions = \"sts:AssumeRole\" }]",
            "",
            &["key `trust`"],
            None,
        ),
    ];
    for (from, to, starts, names, line) in cases {
        let bad = WORLD.replace(from, to);
        let e = keyway_cloud::world::parse("w.toml", &bad).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with(starts), "{e}");
        for name in names {
            assert!(text.contains(name), "{name}: {e}");
        }
        if let Some(line) = line {
            assert_eq!(e.line, line, "{e}");
        }
    }
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
    let auth = [("Authorization", s.auth_token.as_deref().unwrap())];
    let c = Creds::from_document(&json(&e.request("GET", &url, &auth).await.1));
    let (st, v) = e
        .signed(&c, "ap-northeast-1")
        .sm(
            "GetSecretValue",
            json!({"SecretId": "wevox/gcp-credentials"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["SecretString"].as_str(), Some(value.as_str()));
    // The first task definition: KEY is injected, but the containers get no credentials.
    assert!(t.credentials_path.is_some());
    let no_task_role = &e.ep().tasks["wevox-batch-no-task-role"];
    assert!(no_task_role.credentials_path.is_none());
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
