//! The Google APIs of the local cloud, driven through its router in process: Google's
//! order of decisions (401, scope 403, IAM 403, then 404), Secret Manager's
//! resource semantics, and Compute's stop-before-setServiceAccount rule.

use keyway_core::clock::ManualClock;
use keyway_testkit::Local;
use serde_json::{Value, json};

const WORLD: &str = r#"
[[project]]
id = "proj-alpha"
number = 1111111111

[[user]]
email = "owner@example.com"

[[user]]
email = "reader@example.com"

[[user]]
email = "nobody@example.com"

[[binding]]
resource = "projects/proj-alpha"
role = "roles/owner"
members = ["user:owner@example.com"]

[[binding]]
resource = "projects/proj-alpha/secrets/db-pass"
role = "roles/secretmanager.secretAccessor"
members = ["user:reader@example.com"]

[[instance]]
project = "proj-alpha"
zone = "us-central1-a"
name = "vm-one"

[[secret]]
project = "proj-alpha"
name = "db-pass"
versions = [{ data = "v1-value" }, { data = "v2-value" }]
"#;

const CP: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The cloud on `WORLD`, its clock at the real time (the tests sign JWTs at
/// the real time), called in process.
fn env() -> Local {
    let e = Local::open_on(
        WORLD,
        ManualClock::at_secs(jiff::Timestamp::now().as_second()),
    );
    assert!(e.seeded);
    e
}

/// Mints a service-account key through the IAM API, as the owner: the key file
/// and its private key, ready to sign.
async fn mint_key(e: &Local, owner: &str, sa: &str) -> (Value, aws_lc_rs::signature::RsaKeyPair) {
    use base64::Engine;
    let (s, b) = e
        .google
        .call(
            "POST",
            &format!("/v1/projects/proj-alpha/serviceAccounts/{sa}/keys"),
            Some(owner),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let key: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(b["privateKeyData"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let pem = key["private_key"].as_str().unwrap();
    let der = base64::engine::general_purpose::STANDARD
        .decode(
            pem.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    let pair = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    (key, pair)
}

fn reason(v: &Value) -> &str {
    v["error"]["details"][0]["reason"].as_str().unwrap_or("")
}

#[tokio::test]
async fn decisions_come_in_googles_order() {
    let e = env();
    let path = "/v1/projects/proj-alpha/secrets/db-pass/versions/latest:access";
    let (s, b) = e.google.call("GET", path, None, None).await;
    assert_eq!(
        (s, b["error"]["status"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    assert_eq!(reason(&b), "CREDENTIALS_MISSING");

    let (s, b) = e
        .google
        .call("GET", path, Some("ya29.not-a-token"), None)
        .await;
    assert_eq!(s, 401);
    assert_eq!(reason(&b), "ACCESS_TOKEN_TYPE_UNSUPPORTED");

    // Scope is checked before IAM: even the owner is refused without cloud-platform.
    let narrow = e.token(
        "user:owner@example.com",
        &["https://www.googleapis.com/auth/devstorage.read_only"],
    );
    let (s, b) = e.google.call("GET", path, Some(&narrow), None).await;
    assert_eq!(s, 403);
    assert_eq!(reason(&b), "ACCESS_TOKEN_SCOPE_INSUFFICIENT");
    assert_eq!(
        b["error"]["message"],
        "Request had insufficient authentication scopes."
    );

    let nobody = e.token("user:nobody@example.com", &[CP]);
    let (s, b) = e.google.call("GET", path, Some(&nobody), None).await;
    assert_eq!(s, 403);
    assert_eq!(reason(&b), "IAM_PERMISSION_DENIED");
    assert_eq!(
        b["error"]["message"],
        "Permission 'secretmanager.versions.access' denied for resource 'projects/proj-alpha/secrets/db-pass/versions/latest' (or it may not exist)."
    );

    let reader = e.token("user:reader@example.com", &[CP]);
    let (s, b) = e.google.call("GET", path, Some(&reader), None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["name"], "projects/1111111111/secrets/db-pass/versions/2");
    assert_eq!(b["payload"]["data"], "djItdmFsdWU="); // base64("v2-value")
    assert_eq!(
        b["payload"]["dataCrc32c"],
        crc32c::crc32c(b"v2-value").to_string()
    );
}

#[tokio::test]
async fn missing_secrets_look_like_denials_unless_the_caller_may_see() {
    let e = env();
    let nobody = e.token("user:nobody@example.com", &[CP]);
    let owner = e.token("user:owner@example.com", &[CP]);
    let missing = "/v1/projects/proj-alpha/secrets/no-such/versions/1:access";
    let (s1, b1) = e.google.call("GET", missing, Some(&nobody), None).await;
    let (s2, _) = e
        .google
        .call(
            "GET",
            "/v1/projects/proj-alpha/secrets/db-pass/versions/1:access",
            Some(&nobody),
            None,
        )
        .await;
    assert_eq!((s1, s2), (403, 403));
    assert_eq!(reason(&b1), "IAM_PERMISSION_DENIED");
    let (s, b) = e.google.call("GET", missing, Some(&owner), None).await;
    assert_eq!(s, 404, "{b}");
    assert_eq!(b["error"]["status"], "NOT_FOUND");
    // Secret-level grants do not leak other secrets: reader may not see no-such either.
    let reader = e.token("user:reader@example.com", &[CP]);
    assert_eq!(
        e.google.call("GET", missing, Some(&reader), None).await.0,
        403
    );
    // An unknown project is a denial, not a 404.
    let (s, _) = e
        .google
        .call(
            "GET",
            "/v1/projects/other-proj/secrets/db-pass/versions/1:access",
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn version_lifecycle_and_latest() {
    let e = env();
    let owner = e.token("user:owner@example.com", &[CP]);
    let v = "/v1/projects/proj-alpha/secrets/db-pass/versions";
    // Disabling the latest version makes `latest` fail, not fall back.
    let (s, b) = e
        .google
        .call(
            "POST",
            &format!("{v}/2:disable"),
            Some(&owner),
            Some(json!({})),
        )
        .await;
    assert_eq!((s, b["state"].as_str()), (200, Some("DISABLED")), "{b}");
    let (s, b) = e
        .google
        .call("GET", &format!("{v}/latest:access"), Some(&owner), None)
        .await;
    assert_eq!(s, 400);
    assert_eq!(b["error"]["status"], "FAILED_PRECONDITION");
    assert!(b["error"]["message"].as_str().unwrap().contains("DISABLED"));
    // A stale etag is refused.
    let (s, _) = e
        .google
        .call(
            "POST",
            &format!("{v}/2:enable"),
            Some(&owner),
            Some(json!({"etag": "\"stale\""})),
        )
        .await;
    assert_eq!(s, 409);
    let (s, _) = e
        .google
        .call(
            "POST",
            &format!("{v}/2:enable"),
            Some(&owner),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = e
        .google
        .call(
            "POST",
            &format!("{v}/1:destroy"),
            Some(&owner),
            Some(json!({})),
        )
        .await;
    assert_eq!((s, b["state"].as_str()), (200, Some("DESTROYED")));
    assert!(b["destroyTime"].is_string());
    let (s, _) = e
        .google
        .call("GET", &format!("{v}/1:access"), Some(&owner), None)
        .await;
    assert_eq!(s, 400);
    let (s, _) = e
        .google
        .call(
            "POST",
            &format!("{v}/1:enable"),
            Some(&owner),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 400, "a destroyed version cannot come back");
    let (s, _) = e
        .google
        .call("GET", &format!("{v}/7"), Some(&owner), None)
        .await;
    assert_eq!(s, 404);
    let (s, _) = e
        .google
        .call("GET", &format!("{v}/0"), Some(&owner), None)
        .await;
    assert_eq!(s, 400);
    // Enum encoding as Google's generated REST clients ask for it.
    let (_, b) = e
        .google
        .call(
            "GET",
            &format!("{v}/1?%24alt=json%3Benum-encoding%3Dint"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(b["state"], 3);
}

#[tokio::test]
async fn add_version_checks_crc_size_and_base64() {
    let e = env();
    let owner = e.token("user:owner@example.com", &[CP]);
    let add = "/v1/projects/proj-alpha/secrets/db-pass:addVersion";
    use base64::Engine;
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let data = b"third";
    let (s, b) = e.google.call("POST", add, Some(&owner), Some(json!({"payload": {"data": b64(data), "dataCrc32c": (crc32c::crc32c(data) ^ 1).to_string()}}))).await;
    assert_eq!(
        (s, b["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
    let (s, b) = e.google.call("POST", add, Some(&owner), Some(json!({"payload": {"data": b64(data), "dataCrc32c": crc32c::crc32c(data).to_string()}}))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["name"], "projects/1111111111/secrets/db-pass/versions/3",
        "the bad add stored nothing"
    );
    assert_eq!(b["clientSpecifiedPayloadChecksum"], true);
    let (s, _) = e
        .google
        .call(
            "POST",
            add,
            Some(&owner),
            Some(json!({"payload": {"data": b64(&vec![7u8; 65536])}})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = e
        .google
        .call(
            "POST",
            add,
            Some(&owner),
            Some(json!({"payload": {"data": b64(&vec![7u8; 65537])}})),
        )
        .await;
    assert_eq!(s, 400);
    assert!(b["error"]["message"].as_str().unwrap().contains("64KiB"));
    let (s, _) = e
        .google
        .call(
            "POST",
            add,
            Some(&owner),
            Some(json!({"payload": {"data": "***"}})),
        )
        .await;
    assert_eq!(s, 400);
    let r = e
        .google
        .send(
            http::Request::post(add)
                .header("authorization", format!("Bearer {owner}"))
                .body(b"{not json".to_vec())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 400);
    let b: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(b["error"]["status"], "INVALID_ARGUMENT");
}

#[tokio::test]
async fn secrets_create_list_page_patch_delete() {
    let e = env();
    let owner = e.token("user:owner@example.com", &[CP]);
    let base = "/v1/projects/proj-alpha/secrets";
    for i in 0..7 {
        let (s, b) = e.google.call("POST", &format!("{base}?secretId=s-{i}"), Some(&owner), Some(json!({"replication": {"automatic": {}}, "labels": {"team": if i % 2 == 0 { "a" } else { "b" }}}))).await;
        assert_eq!(s, 200, "{b}");
    }
    let (s, _) = e
        .google
        .call(
            "POST",
            &format!("{base}?secretId=s-0"),
            Some(&owner),
            Some(json!({"replication": {"automatic": {}}})),
        )
        .await;
    assert_eq!(s, 409);
    let (s, _) = e
        .google
        .call(
            "POST",
            &format!("{base}?secretId=bad%2Fid"),
            Some(&owner),
            Some(json!({"replication": {"automatic": {}}})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = e
        .google
        .call(
            "POST",
            &format!("{base}?secretId=norepl"),
            Some(&owner),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 400);
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let (s, b) = e
            .google
            .call(
                "GET",
                &format!("{base}?pageSize=3&pageToken={token}"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(s, 200);
        assert_eq!(b["totalSize"], 8);
        for sec in b["secrets"].as_array().unwrap() {
            seen.push(
                sec["name"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned(),
            );
        }
        token = b["nextPageToken"].as_str().unwrap_or("").to_owned();
        if token.is_empty() {
            break;
        }
    }
    let mut want: Vec<String> = (0..7).map(|i| format!("s-{i}")).collect();
    want.push("db-pass".into());
    want.sort();
    assert_eq!(seen, want);
    let (_, b) = e
        .google
        .call(
            "GET",
            &format!("{base}?filter=labels.team%3Da"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(b["secrets"].as_array().unwrap().len(), 4);
    let (s, b) = e
        .google
        .call(
            "PATCH",
            &format!("{base}/s-1?updateMask=labels"),
            Some(&owner),
            Some(json!({"labels": {"team": "c"}})),
        )
        .await;
    assert_eq!((s, b["labels"]["team"].as_str()), (200, Some("c")));
    let (s, _) = e
        .google
        .call(
            "PATCH",
            &format!("{base}/s-1"),
            Some(&owner),
            Some(json!({"labels": {}})),
        )
        .await;
    assert_eq!(s, 400, "update mask is required");
    let (s, _) = e
        .google
        .call("DELETE", &format!("{base}/s-1"), Some(&owner), None)
        .await;
    assert_eq!(s, 200);
    let (s, _) = e
        .google
        .call("GET", &format!("{base}/s-1"), Some(&owner), None)
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn iam_policies_with_etags_grant_and_test() {
    let e = env();
    let owner = e.token("user:owner@example.com", &[CP]);
    let nobody = e.token("user:nobody@example.com", &[CP]);
    let res = "/v1/projects/proj-alpha/secrets/db-pass";
    let (s, p) = e
        .google
        .call("GET", &format!("{res}:getIamPolicy"), Some(&owner), None)
        .await;
    assert_eq!(s, 200);
    let etag = p["etag"].as_str().unwrap().to_owned();
    let mut policy = p.clone();
    policy["bindings"].as_array_mut().unwrap().push(json!({"role": "roles/secretmanager.secretAccessor", "members": ["user:nobody@example.com"]}));
    let (s, _) = e
        .google
        .call(
            "POST",
            &format!("{res}:setIamPolicy"),
            Some(&nobody),
            Some(json!({"policy": policy})),
        )
        .await;
    assert_eq!(s, 403, "nobody may not set the policy");
    let (s, b) = e
        .google
        .call(
            "POST",
            &format!("{res}:setIamPolicy"),
            Some(&owner),
            Some(json!({"policy": policy})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_ne!(b["etag"].as_str().unwrap(), etag);
    // The old etag is now stale.
    let (s, b) = e
        .google
        .call(
            "POST",
            &format!("{res}:setIamPolicy"),
            Some(&owner),
            Some(json!({"policy": policy})),
        )
        .await;
    assert_eq!((s, b["error"]["status"].as_str()), (409, Some("ABORTED")));
    let (s, _) = e
        .google
        .call(
            "GET",
            &format!("{res}/versions/1:access"),
            Some(&nobody),
            None,
        )
        .await;
    assert_eq!(s, 200, "the grant took effect");
    let (s, b) = e.google.call("POST", &format!("{res}:testIamPermissions"), Some(&nobody), Some(json!({"permissions": ["secretmanager.versions.access", "secretmanager.versions.add"]})))
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["permissions"], json!(["secretmanager.versions.access"]));
    // Invalid policies are refused.
    let (s, _) = e.google.call("POST", &format!("{res}:setIamPolicy"), Some(&owner), Some(json!({"policy": {"bindings": [{"role": "roles/nope", "members": ["user:a@b.c"]}]}}))).await;
    assert_eq!(s, 400);
    let (s, _) = e
        .google
        .call(
            "POST",
            &format!("{res}:setIamPolicy"),
            Some(&owner),
            Some(json!({"policy": {"bindings": [{"role": "roles/viewer", "members": ["bob"]}]}})),
        )
        .await;
    assert_eq!(s, 400);
    // Project level through Resource Manager.
    let (s, p) = e
        .google
        .call(
            "POST",
            "/v1/projects/proj-alpha:getIamPolicy",
            Some(&owner),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(p["bindings"][0]["role"], "roles/owner");
    let (s, _) = e
        .google
        .call(
            "POST",
            "/v1/projects/proj-alpha:getIamPolicy",
            Some(&nobody),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn compute_requires_stop_before_changing_scopes() {
    let e = env();
    let owner = e.token("user:owner@example.com", &[CP]);
    let inst = "/compute/v1/projects/proj-alpha/zones/us-central1-a/instances/vm-one";
    let (s, b) = e.google.call("GET", inst, Some(&owner), None).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("RUNNING")));
    let sa = b["serviceAccounts"][0]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(sa, "1111111111-compute@developer.gserviceaccount.com");
    assert!(
        !b["serviceAccounts"][0]["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == CP)
    );
    let body = json!({"email": sa, "scopes": [CP]});
    let (s, b) = e
        .google
        .call(
            "POST",
            &format!("{inst}/setServiceAccount"),
            Some(&owner),
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, op) = e
        .google
        .call("POST", &format!("{inst}/stop"), Some(&owner), None)
        .await;
    assert_eq!((s, op["status"].as_str()), (200, Some("DONE")));
    let (s, got) = e
        .google
        .call(
            "GET",
            &format!(
                "/compute/v1/projects/proj-alpha/zones/us-central1-a/operations/{}",
                op["name"].as_str().unwrap()
            ),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!((s, got["operationType"].as_str()), (200, Some("stop")));
    let (s, _) = e
        .google
        .call(
            "POST",
            &format!("{inst}/setServiceAccount"),
            Some(&owner),
            Some(body),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = e
        .google
        .call("POST", &format!("{inst}/start"), Some(&owner), None)
        .await;
    assert_eq!(s, 200);
    let (_, b) = e.google.call("GET", inst, Some(&owner), None).await;
    assert_eq!(b["status"], "RUNNING");
    assert_eq!(b["serviceAccounts"][0]["scopes"], json!([CP]));
    // A reader with cloud-platform but no compute role is refused, Compute style.
    let reader = e.token("user:reader@example.com", &[CP]);
    let (s, b) = e
        .google
        .call("POST", &format!("{inst}/stop"), Some(&reader), None)
        .await;
    assert_eq!(s, 403);
    assert_eq!(b["error"]["errors"][0]["reason"], "forbidden");
}

#[tokio::test]
async fn oauth2_refresh_grant_and_tokeninfo() {
    let e = env();
    // The ADC file the cloud writes for a user is what a client would use.
    e.cloud
        .write_credential_files("http://127.0.0.1:0/token")
        .unwrap();
    let adc: Value = serde_json::from_slice(
        &std::fs::read(
            e.cloud
                .user_config_dir("owner@example.com")
                .join("application_default_credentials.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(adc["type"], "authorized_user");
    assert_eq!(adc["token_uri"], "http://127.0.0.1:0/token");
    let form = |extra: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        let mut f = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("client_id", adc["client_id"].as_str().unwrap().to_owned()),
            (
                "client_secret",
                adc["client_secret"].as_str().unwrap().to_owned(),
            ),
            (
                "refresh_token",
                adc["refresh_token"].as_str().unwrap().to_owned(),
            ),
        ];
        for (k, v) in extra {
            f.retain(|(n, _)| n != k);
            f.push((*k, v.to_string()));
        }
        f
    };
    let google = &e.google;
    let token = |extra: &[(&'static str, &str)]| {
        let f = form(extra);
        async move {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            google.form("/token", None, &pairs).await
        }
    };
    let r = token(&[]).await;
    assert_eq!(r.status, 200);
    let t = r.json();
    assert!(t["scope"].as_str().unwrap().contains(CP));
    let info = e
        .google
        .get(
            &format!(
                "/tokeninfo?access_token={}",
                t["access_token"].as_str().unwrap()
            ),
            &[],
        )
        .await
        .json();
    assert_eq!(info["email"], "owner@example.com");
    let r = token(&[("refresh_token", "1//wrong")]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_grant");
    let r = token(&[("client_secret", "wrong")]).await;
    assert_eq!(r.status, 401);
    let r = token(&[("scope", "https://www.googleapis.com/auth/gmail.readonly")]).await;
    assert_eq!(r.json()["error"], "invalid_scope");
    let r = e
        .google
        .get("/tokeninfo?access_token=ya29.bogus", &[])
        .await;
    assert_eq!(r.status, 400);
}

/// `POST /revoke` as `gcloud auth application-default revoke` sends it (the
/// token in the query, an empty form body), with Google's semantics: a
/// revoked refresh token answers invalid_grant, the access tokens minted from
/// it are refused too, a second revocation is invalid_token, and the revocation
/// survives a restart (the rewritten ADC file carries no cached token).
#[tokio::test]
async fn revoked_refresh_tokens_and_their_access_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let adc_path = |e: &Local| {
        e.cloud
            .user_config_dir("owner@example.com")
            .join("application_default_credentials.json")
    };
    let read = |e: &Local| -> Value {
        e.cloud
            .write_credential_files("http://127.0.0.1:0/token")
            .unwrap();
        serde_json::from_slice(&std::fs::read(adc_path(e)).unwrap()).unwrap()
    };
    let e = Local::open_at(dir.path(), WORLD);
    let adc = read(&e);
    let refresh = adc["refresh_token"].as_str().unwrap().to_owned();
    let cached = adc["token"].as_str().unwrap().to_owned();
    let refresh_grant = |e: &Local| {
        let adc = adc.clone();
        let refresh = refresh.clone();
        let google = e.google.clone();
        async move {
            google
                .form(
                    "/token",
                    None,
                    &[
                        ("grant_type", "refresh_token"),
                        ("client_id", adc["client_id"].as_str().unwrap()),
                        ("client_secret", adc["client_secret"].as_str().unwrap()),
                        ("refresh_token", &refresh),
                    ],
                )
                .await
        }
    };
    let fresh = refresh_grant(&e).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = "/v1/projects/proj-alpha/secrets/db-pass/versions/latest:access";
    assert_eq!(
        e.google.call("GET", secret, Some(&fresh), None).await.0,
        200
    );
    // Another user's token, and a service account's, are not touched.
    let reader = e.token("user:reader@example.com", &[CP]);

    // No token, or a GET: refused as Google does.
    let r = e.google.form("/revoke", None, &[]).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_eq!(e.google.get("/revoke?token=x", &[]).await.status, 405);

    let query = format!(
        "/revoke?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("token", &refresh)
            .finish()
    );
    let r = e.google.form(&query, None, &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json(), json!({}));

    let r = refresh_grant(&e).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_grant");
    for t in [&fresh, &cached] {
        let (s, b) = e.google.call("GET", secret, Some(t), None).await;
        assert_eq!(s, 401, "{b}");
        let info = e
            .google
            .get(&format!("/tokeninfo?access_token={t}"), &[])
            .await;
        assert_eq!(info.status, 400);
    }
    assert_eq!(
        e.google.call("GET", secret, Some(&reader), None).await.0,
        200
    );
    // Once revoked, the token is unknown.
    let r = e.google.form("/revoke", None, &[("token", &refresh)]).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_token"))
    );
    let r = e
        .google
        .form("/revoke", None, &[("token", "1//never-issued")])
        .await;
    assert_eq!(r.status, 400);

    // A service account's access token, in the form body: that token only.
    let sa = "serviceAccount:1111111111-compute@developer.gserviceaccount.com";
    let (one, two) = (e.token(sa, &[CP]), e.token(sa, &[CP, "openid"]));
    let tokeninfo = |t: &str| format!("/tokeninfo?access_token={t}");
    assert_eq!(e.google.get(&tokeninfo(&one), &[]).await.status, 200);
    let r = e.google.form("/revoke", None, &[("token", &one)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(e.google.get(&tokeninfo(&one), &[]).await.status, 400);
    assert_eq!(e.google.get(&tokeninfo(&two), &[]).await.status, 200);
    drop(e);

    // After a restart: still revoked, and the ADC file has no cached token to fall back on.
    let e = Local::open_at(dir.path(), WORLD);
    let adc = read(&e);
    assert_eq!(adc["refresh_token"].as_str(), Some(refresh.as_str()));
    assert!(
        adc.get("token").is_none() && adc.get("expiry").is_none(),
        "{adc}"
    );
    assert_eq!(refresh_grant(&e).await.json()["error"], "invalid_grant");
    assert_eq!(e.google.get(&tokeninfo(&one), &[]).await.status, 400);
    assert_eq!(e.google.get(&tokeninfo(&two), &[]).await.status, 200);
}

#[tokio::test]
async fn minted_service_account_keys_sign_in_with_jwt_bearer() {
    let e = env();
    let owner = e.token("user:owner@example.com", &[CP]);
    let sa = "1111111111-compute@developer.gserviceaccount.com";
    let (key, pair) = mint_key(&e, &owner, sa).await;
    assert_eq!(key["type"], "service_account");
    assert_eq!(key["client_email"], sa);
    // Sign a JWT-bearer assertion with the private key, as google-auth would.
    let now = jiff::Timestamp::now().as_second();
    let sign = |aud: &str, exp: i64| {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": key["private_key_id"]});
        let claims = json!({"iss": sa, "scope": CP, "aud": aud, "iat": now, "exp": exp});
        keyway_cloud::crypto::sign_rs256(&pair, &header, &claims).unwrap()
    };
    let google = &e.google;
    let grant = |a: String| async move {
        google
            .form(
                "/token",
                None,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", a.as_str()),
                ],
            )
            .await
    };
    let r = grant(sign("https://oauth2.googleapis.com/token", now + 3600)).await;
    assert_eq!(r.status, 200);
    let t = r.json();
    let info = e
        .google
        .get(
            &format!(
                "/tokeninfo?access_token={}",
                t["access_token"].as_str().unwrap()
            ),
            &[],
        )
        .await
        .json();
    assert_eq!(info["email"], sa);
    let r = grant(sign("https://oauth2.googleapis.com/token", now + 7200)).await;
    assert_eq!(r.status, 400, "longer than an hour");
    let r = grant(sign("https://example.com/", now + 600)).await;
    assert_eq!(r.status, 400, "wrong audience");
    let good = sign("https://oauth2.googleapis.com/token", now + 600);
    let i = good.rfind('.').unwrap() + 10;
    let mut tampered = good.into_bytes();
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let r = grant(String::from_utf8(tampered).unwrap()).await;
    assert_eq!(r.json()["error_description"], "Invalid JWT Signature.");
    // A principal without keys.create is refused.
    let nobody = e.token("user:nobody@example.com", &[CP]);
    let (s, _) = e
        .google
        .call(
            "POST",
            &format!("/v1/projects/proj-alpha/serviceAccounts/{sa}/keys"),
            Some(&nobody),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn self_signed_service_account_jwts_are_bearer_tokens_for_their_api() {
    let e = env();
    let owner = e.token("user:owner@example.com", &[CP]);
    let sa = "1111111111-compute@developer.gserviceaccount.com";
    let (key, pair) = mint_key(&e, &owner, sa).await;
    let now = jiff::Timestamp::now().as_second();
    let jwt = |aud: &str| {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": key["private_key_id"]});
        keyway_cloud::crypto::sign_rs256(
            &pair,
            &header,
            &json!({"iss": sa, "sub": sa, "aud": aud, "iat": now, "exp": now + 3600}),
        )
        .unwrap()
    };
    let path = "/v1/projects/proj-alpha/secrets/db-pass/versions/latest:access";
    // Authenticated as the account: IAM, not authentication, now decides.
    let (s, b) = e
        .google
        .call(
            "GET",
            path,
            Some(&jwt("https://secretmanager.googleapis.com/")),
            None,
        )
        .await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(reason(&b), "IAM_PERMISSION_DENIED");
    // Addressed to another API: not a credential here.
    let (s, _) = e
        .google
        .call(
            "GET",
            path,
            Some(&jwt("https://compute.googleapis.com/")),
            None,
        )
        .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn self_signed_jwts_with_a_scope_claim_need_no_audience() {
    // google-auth signs {iss, sub, scope, iat, exp} without `aud` for a
    // service-account key used with scopes; Google accepts it.
    let e = env();
    let owner = e.token("user:owner@example.com", &[CP]);
    let sa = "1111111111-compute@developer.gserviceaccount.com";
    let (key, pair) = mint_key(&e, &owner, sa).await;
    let now = jiff::Timestamp::now().as_second();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": key["private_key_id"]});
    let scoped = keyway_cloud::crypto::sign_rs256(
        &pair,
        &header,
        &json!({"iss": sa, "sub": sa, "scope": CP, "iat": now, "exp": now + 3600}),
    )
    .unwrap();
    let (s, b) = e
        .google
        .call(
            "GET",
            "/v1/projects/proj-alpha/secrets/db-pass/versions/latest:access",
            Some(&scoped),
            None,
        )
        .await;
    assert_eq!((s, reason(&b)), (403, "IAM_PERMISSION_DENIED"), "{b}");
    let narrow = keyway_cloud::crypto::sign_rs256(&pair, &header, &json!({"iss": sa, "sub": sa, "scope": "https://www.googleapis.com/auth/devstorage.read_only", "iat": now, "exp": now + 3600})).unwrap();
    let (s, b) = e
        .google
        .call(
            "GET",
            "/v1/projects/proj-alpha/secrets/db-pass/versions/latest:access",
            Some(&narrow),
            None,
        )
        .await;
    assert_eq!(
        (s, reason(&b)),
        (403, "ACCESS_TOKEN_SCOPE_INSUFFICIENT"),
        "{b}"
    );
    let neither = keyway_cloud::crypto::sign_rs256(
        &pair,
        &header,
        &json!({"iss": sa, "sub": sa, "iat": now, "exp": now + 3600}),
    )
    .unwrap();
    assert_eq!(
        e.google
            .call(
                "GET",
                "/v1/projects/proj-alpha/secrets/db-pass/versions/latest:access",
                Some(&neither),
                None
            )
            .await
            .0,
        401
    );
}
