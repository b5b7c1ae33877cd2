//! What both clouds refuse, through their routers in process: a setIamPolicy body with
//! unknown fields (or no policy) leaves the policy as it was, with Google's
//! error; an allow policy of more than 1,500 principals, Secret Manager
//! annotations beyond their documented limits, and Secrets Manager tags
//! beyond 50 or beyond their lengths are refused with each cloud's error.

use keyway_testkit::CLOUD_PLATFORM as CP;
use keyway_testkit::Local;
use serde_json::{Value, json};

const WORLD: &str = include_str!("worlds/api_limits.toml");

async fn google(e: &Local, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let token = e.token("user:owner@example.com", &[CP]);
    e.google.call(method, path, Some(&token), body).await
}

const SECRET: &str = "/v1/projects/proj-l/secrets/s";

async fn secret_policy(e: &Local) -> Value {
    let (s, p) = google(e, "GET", &format!("{SECRET}:getIamPolicy"), None).await;
    assert_eq!(s, 200, "{p}");
    p
}

#[tokio::test]
async fn set_iam_policy_refuses_unknown_fields_and_a_missing_policy() {
    let e = Local::open(WORLD);
    let grant = json!({"policy": {"bindings": [
        {"role": "roles/secretmanager.secretAccessor", "members": ["user:owner@example.com"]}
    ]}});
    let (s, b) = google(&e, "POST", &format!("{SECRET}:setIamPolicy"), Some(grant)).await;
    assert_eq!(s, 200, "{b}");
    let before = secret_policy(&e).await;
    assert_eq!(before["bindings"].as_array().unwrap().len(), 1);

    let cases = [
        (
            json!({"policy": {"bindingz": []}}),
            "Invalid JSON payload received. Unknown name \"bindingz\" at 'policy': Cannot find field.",
            Some("policy"),
        ),
        (
            json!({"polciy": {"bindings": []}}),
            "Invalid JSON payload received. Unknown name \"polciy\": Cannot find field.",
            None,
        ),
        (
            json!({"policy": {"bindings": [{"role": "roles/owner", "member": ["user:x@example.com"]}]}}),
            "Invalid JSON payload received. Unknown name \"member\" at 'policy.bindings[0]': Cannot find field.",
            Some("policy.bindings[0]"),
        ),
        (
            json!({}),
            "Request contains an invalid argument.",
            Some("policy"),
        ),
    ];
    for (body, message, field) in cases {
        let (s, b) = google(&e, "POST", &format!("{SECRET}:setIamPolicy"), Some(body)).await;
        assert_eq!(s, 400, "{b}");
        assert_eq!(b["error"]["status"], "INVALID_ARGUMENT", "{b}");
        assert_eq!(b["error"]["message"], message, "{b}");
        let v = &b["error"]["details"][0];
        assert_eq!(
            v["@type"], "type.googleapis.com/google.rpc.BadRequest",
            "{b}"
        );
        assert_eq!(v["fieldViolations"][0]["field"].as_str(), field, "{b}");
        // Nothing was applied.
        assert_eq!(secret_policy(&e).await, before);
    }
    // The same rule on the project's policy.
    let (s, b) = google(
        &e,
        "POST",
        "/v1/projects/proj-l:setIamPolicy",
        Some(json!({"policy": {"bindingz": []}})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    // An empty policy, spelled out, is a valid policy (it removes every binding).
    let (s, b) = google(
        &e,
        "POST",
        &format!("{SECRET}:setIamPolicy"),
        Some(json!({"policy": {}})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert!(secret_policy(&e).await.get("bindings").is_none());
}

#[tokio::test]
async fn a_policy_holds_at_most_1500_principals() {
    let e = Local::open(WORLD);
    let members =
        |n: usize| -> Vec<String> { (0..n).map(|i| format!("user:u{i}@example.com")).collect() };
    let body = |n: usize| {
        json!({"policy": {"bindings": [
            {"role": "roles/secretmanager.secretAccessor", "members": members(n - 1)},
            {"role": "roles/secretmanager.viewer", "members": ["user:owner@example.com"]}
        ]}})
    };
    let (s, b) = google(
        &e,
        "POST",
        &format!("{SECRET}:setIamPolicy"),
        Some(body(1500)),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    for n in [1501, 20_000] {
        let (s, b) = google(&e, "POST", &format!("{SECRET}:setIamPolicy"), Some(body(n))).await;
        assert_eq!(s, 400, "{b}");
        assert_eq!(b["error"]["status"], "INVALID_ARGUMENT");
        let want = format!(
            "The number of members in the policy ({}) is larger than the maximum allowed size 1,500.",
            if n == 1501 { "1,501" } else { "20,000" }
        );
        assert_eq!(b["error"]["message"], want.as_str());
    }
    let kept = secret_policy(&e).await;
    assert_eq!(
        kept["bindings"][0]["members"].as_array().unwrap().len(),
        1499
    );
}

#[tokio::test]
async fn annotations_stay_within_secret_managers_limits() {
    let e = Local::open(WORLD);
    let create = |id: &str, annotations: Value| json!({"replication": {"automatic": {}}, "annotations": annotations, "secretId": id});
    let post = |id: &'static str, a: Value| {
        let e = &e;
        let body = create(id, a);
        async move {
            google(
                e,
                "POST",
                &format!("/v1/projects/proj-l/secrets?secretId={id}"),
                Some(body),
            )
            .await
        }
    };
    let (s, b) = post("ok", json!({"mount.path": "/etc/app", "Owner_1": "x"})).await;
    assert_eq!(s, 200, "{b}");
    for (id, a) in [
        ("bad-start", json!({"-x": "v"})),
        ("bad-char", json!({"a/b": "v"})),
        ("too-long-key", json!({"k".repeat(64): "v"})),
        ("too-big", json!({"big": "v".repeat(16 * 1024)})),
    ] {
        let (s, b) = post(id, a).await;
        assert_eq!(s, 400, "{id}: {b}");
        assert_eq!(b["error"]["status"], "INVALID_ARGUMENT", "{b}");
    }
    // And through an update.
    let (s, b) = google(
        &e,
        "PATCH",
        "/v1/projects/proj-l/secrets/ok?updateMask=annotations",
        Some(json!({"annotations": {"big": "v".repeat(20_000)}})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
}

#[tokio::test]
async fn secrets_manager_takes_at_most_50_tags_of_bounded_length() {
    let e = Local::open(WORLD);
    let a = e.user("111111111111", "admin");
    let r = "us-east-1";
    let tags = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"Key": format!("k{i}"), "Value": "v"}))
            .collect()
    };
    let (s, v) = e
        .sm(
            &a,
            r,
            "CreateSecret",
            json!({"Name": "fifty", "SecretString": "x", "Tags": tags(50)}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    for n in [51, 10_000] {
        let (s, v) = e
            .sm(
                &a,
                r,
                "CreateSecret",
                json!({"Name": format!("many-{n}"), "SecretString": "x", "Tags": tags(n)}),
            )
            .await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(v["__type"], "LimitExceededException", "{v}");
    }
    for (tag, field, bound) in [
        (
            json!({"Key": "k".repeat(129), "Value": "v"}),
            "key",
            "less than or equal to 128",
        ),
        (
            json!({"Key": "", "Value": "v"}),
            "key",
            "greater than or equal to 1",
        ),
        (
            json!({"Key": "k", "Value": "v".repeat(257)}),
            "value",
            "less than or equal to 256",
        ),
    ] {
        let (s, v) = e
            .sm(&a, r, "CreateSecret", json!({"Name": "long", "SecretString": "x", "Tags": [{"Key": "ok", "Value": "ok"}, tag]}))
            .await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(v["__type"], "ValidationException", "{v}");
        let msg = v["message"]
            .as_str()
            .or(v["Message"].as_str())
            .unwrap_or_default();
        assert!(msg.contains(&format!("at 'tags.2.member.{field}'")), "{v}");
        assert!(
            msg.contains(&format!("Member must have length {bound}")),
            "{v}"
        );
    }
    // None of the refused secrets exists.
    let (s, v) = e
        .sm(&a, r, "DescribeSecret", json!({"SecretId": "many-51"}))
        .await;
    assert_eq!(
        (s, v["__type"].as_str()),
        (400, Some("ResourceNotFoundException"))
    );
}

#[test]
fn a_world_file_declares_at_most_50_tags_per_aws_secret() {
    let world = |tags: usize| {
        let t: Vec<String> = (0..tags).map(|i| format!("k{i} = \"v\"")).collect();
        format!(
            "[[aws_account]]\nid = \"111111111111\"\n\n[[aws_secret]]\naccount = \"111111111111\"\nregion = \"us-east-1\"\nname = \"tagged\"\ntags = {{ {} }}\n",
            t.join(", ")
        )
    };
    keyway_cloud::world::parse("w.toml", &world(50)).unwrap();
    let e = keyway_cloud::world::parse("w.toml", &world(51)).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("w.toml:") && msg.contains("51 tags") && msg.contains("at most 50"),
        "{msg}"
    );
}
