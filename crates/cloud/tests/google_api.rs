//! The Google APIs of the local cloud, driven through its router in process: Google's
//! order of decisions (401, scope 403, IAM 403, then 404), Secret Manager's
//! resource semantics, and Compute's stop-before-setServiceAccount rule.

mod common;

use common::key_from_pem;
use keyway_core::clock::ManualClock;
use keyway_testkit::CLOUD_PLATFORM as CP;
use keyway_testkit::{Bearer, Local};
use serde_json::{Value, json};

const WORLD: &str = include_str!("worlds/google_api.toml");

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

/// A service-account key minted through the IAM API, ready to sign.
struct Key {
    /// The key file.
    file: Value,
    pair: aws_lc_rs::signature::RsaKeyPair,
}

impl Key {
    /// Mints a key of [`SA`] as the owner.
    async fn mint(e: &Local) -> Key {
        use base64::Engine;
        let (s, b) = user(e, "owner").post(&keys(SA), json!({})).await;
        assert_eq!(s, 200, "{b}");
        let b64 = base64::engine::general_purpose::STANDARD;
        let file: Value =
            serde_json::from_slice(&b64.decode(b["privateKeyData"].as_str().unwrap()).unwrap())
                .unwrap();
        let pair = key_from_pem(file["private_key"].as_str().unwrap());
        Key { file, pair }
    }

    /// A JWT of these claims, signed as google-auth signs them.
    fn sign(&self, claims: Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.file["private_key_id"]});
        keyway_cloud::crypto::sign_rs256(&self.pair, &header, &claims).unwrap()
    }
}

/// What tokeninfo says of an answer's `access_token`.
async fn tokeninfo(e: &Local, answer: &Value) -> Value {
    let t = answer["access_token"].as_str().unwrap();
    let path = format!("/tokeninfo?access_token={t}");
    e.google.get(&path, &[]).await.json()
}

/// The IAM API's path of `sa`'s keys.
fn keys(sa: &str) -> String {
    format!("/v1/projects/proj-alpha/serviceAccounts/{sa}/keys")
}

/// The Google APIs called as `user:{who}@example.com` with cloud-platform.
fn user<'a>(e: &'a Local, who: &str) -> Bearer<'a> {
    e.google
        .bearer(e.token(&format!("user:{who}@example.com"), &[CP]))
}

const SA: &str = "1111111111-compute@developer.gserviceaccount.com";
const LATEST: &str = "/v1/projects/proj-alpha/secrets/db-pass/versions/latest:access";

fn reason(v: &Value) -> &str {
    v["error"]["details"][0]["reason"].as_str().unwrap_or("")
}

#[tokio::test]
async fn decisions_come_in_googles_order() {
    let e = env();
    let (s, b) = e.google.call("GET", LATEST, None, None).await;
    assert_eq!(
        (s, b["error"]["status"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    assert_eq!(reason(&b), "CREDENTIALS_MISSING");

    // Scope is checked before IAM: even the owner is refused without cloud-platform.
    let narrow = e.token(
        "user:owner@example.com",
        &["https://www.googleapis.com/auth/devstorage.read_only"],
    );
    let cases = [
        (
            "ya29.not-a-token".to_owned(),
            401,
            "ACCESS_TOKEN_TYPE_UNSUPPORTED",
            None,
        ),
        (
            narrow,
            403,
            "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            Some("Request had insufficient authentication scopes."),
        ),
        (
            e.token("user:nobody@example.com", &[CP]),
            403,
            "IAM_PERMISSION_DENIED",
            Some(
                "Permission 'secretmanager.versions.access' denied for resource 'projects/proj-alpha/secrets/db-pass/versions/latest' (or it may not exist).",
            ),
        ),
    ];
    for (token, status, why, message) in cases {
        let (s, b) = e.google.bearer(token).get(LATEST).await;
        assert_eq!((s, reason(&b)), (status, why), "{b}");
        if let Some(message) = message {
            assert_eq!(b["error"]["message"], message);
        }
    }

    let (s, b) = user(&e, "reader").get(LATEST).await;
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
    let (nobody, owner) = (user(&e, "nobody"), user(&e, "owner"));
    let missing = "/v1/projects/proj-alpha/secrets/no-such/versions/1:access";
    let (s1, b1) = nobody.get(missing).await;
    let (s2, _) = nobody
        .get("/v1/projects/proj-alpha/secrets/db-pass/versions/1:access")
        .await;
    assert_eq!((s1, s2), (403, 403));
    assert_eq!(reason(&b1), "IAM_PERMISSION_DENIED");
    let (s, b) = owner.get(missing).await;
    assert_eq!(s, 404, "{b}");
    assert_eq!(b["error"]["status"], "NOT_FOUND");
    // Secret-level grants do not leak other secrets: reader may not see no-such either.
    assert_eq!(user(&e, "reader").get(missing).await.0, 403);
    // An unknown project is a denial, not a 404.
    let (s, _) = owner
        .get("/v1/projects/other-proj/secrets/db-pass/versions/1:access")
        .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn version_lifecycle_and_latest() {
    let e = env();
    let owner = user(&e, "owner");
    let v = "/v1/projects/proj-alpha/secrets/db-pass/versions";
    // Disabling the latest version makes `latest` fail, not fall back.
    let (s, b) = owner.post(&format!("{v}/2:disable"), json!({})).await;
    assert_eq!((s, b["state"].as_str()), (200, Some("DISABLED")), "{b}");
    let (s, b) = owner.get(&format!("{v}/latest:access")).await;
    assert_eq!(s, 400);
    assert_eq!(b["error"]["status"], "FAILED_PRECONDITION");
    assert!(b["error"]["message"].as_str().unwrap().contains("DISABLED"));
    // A stale etag is refused.
    let stale = json!({"etag": "\"stale\""});
    owner
        .expect(&[
            ("POST", format!("{v}/2:enable"), Some(stale), 409),
            ("POST", format!("{v}/2:enable"), Some(json!({})), 200),
        ])
        .await;
    let (s, b) = owner.post(&format!("{v}/1:destroy"), json!({})).await;
    assert_eq!((s, b["state"].as_str()), (200, Some("DESTROYED")));
    assert!(b["destroyTime"].is_string());
    owner
        .expect(&[
            ("GET", format!("{v}/1:access"), None, 400),
            // A destroyed version cannot come back.
            ("POST", format!("{v}/1:enable"), Some(json!({})), 400),
            ("GET", format!("{v}/7"), None, 404),
            ("GET", format!("{v}/0"), None, 400),
        ])
        .await;
    // Enum encoding as Google's generated REST clients ask for it.
    let (_, b) = owner
        .get(&format!("{v}/1?%24alt=json%3Benum-encoding%3Dint"))
        .await;
    assert_eq!(b["state"], 3);
}

#[tokio::test]
async fn add_version_checks_crc_size_and_base64() {
    let e = env();
    let owner = user(&e, "owner");
    let add = "/v1/projects/proj-alpha/secrets/db-pass:addVersion";
    use base64::Engine;
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let data = b"third";
    let with_crc =
        |crc: u32| json!({"payload": {"data": b64(data), "dataCrc32c": crc.to_string()}});
    let (s, b) = owner.post(add, with_crc(crc32c::crc32c(data) ^ 1)).await;
    assert_eq!(
        (s, b["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
    let (s, b) = owner.post(add, with_crc(crc32c::crc32c(data))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["name"], "projects/1111111111/secrets/db-pass/versions/3",
        "the bad add stored nothing"
    );
    assert_eq!(b["clientSpecifiedPayloadChecksum"], true);
    let payload = |data: String| Some(json!({"payload": {"data": data}}));
    owner
        .expect(&[("POST", add.into(), payload(b64(&vec![7u8; 65536])), 200)])
        .await;
    let (s, b) = owner
        .post(add, json!({"payload": {"data": b64(&vec![7u8; 65537])}}))
        .await;
    assert_eq!(s, 400);
    assert!(b["error"]["message"].as_str().unwrap().contains("64KiB"));
    owner
        .expect(&[("POST", add.into(), payload("***".into()), 400)])
        .await;
    let r = e
        .google
        .send(
            http::Request::post(add)
                .header(
                    "authorization",
                    format!("Bearer {}", e.token("user:owner@example.com", &[CP])),
                )
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
    let owner = user(&e, "owner");
    let base = "/v1/projects/proj-alpha/secrets";
    for i in 0..7 {
        let team = if i % 2 == 0 { "a" } else { "b" };
        let body = json!({"replication": {"automatic": {}}, "labels": {"team": team}});
        let (s, b) = owner.post(&format!("{base}?secretId=s-{i}"), body).await;
        assert_eq!(s, 200, "{b}");
    }
    let automatic = || Some(json!({"replication": {"automatic": {}}}));
    owner
        .expect(&[
            ("POST", format!("{base}?secretId=s-0"), automatic(), 409),
            (
                "POST",
                format!("{base}?secretId=bad%2Fid"),
                automatic(),
                400,
            ),
            (
                "POST",
                format!("{base}?secretId=norepl"),
                Some(json!({})),
                400,
            ),
        ])
        .await;
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let (s, b) = owner
            .get(&format!("{base}?pageSize=3&pageToken={token}"))
            .await;
        assert_eq!(s, 200);
        assert_eq!(b["totalSize"], 8);
        for sec in b["secrets"].as_array().unwrap() {
            let name = sec["name"].as_str().unwrap();
            seen.push(name.rsplit('/').next().unwrap().to_owned());
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
    let (_, b) = owner.get(&format!("{base}?filter=labels.team%3Da")).await;
    assert_eq!(b["secrets"].as_array().unwrap().len(), 4);
    let (s, b) = owner
        .call(
            "PATCH",
            &format!("{base}/s-1?updateMask=labels"),
            Some(json!({"labels": {"team": "c"}})),
        )
        .await;
    assert_eq!((s, b["labels"]["team"].as_str()), (200, Some("c")));
    owner
        .expect(&[
            // The update mask is required.
            (
                "PATCH",
                format!("{base}/s-1"),
                Some(json!({"labels": {}})),
                400,
            ),
            ("DELETE", format!("{base}/s-1"), None, 200),
            ("GET", format!("{base}/s-1"), None, 404),
        ])
        .await;
}

#[tokio::test]
async fn iam_policies_with_etags_grant_and_test() {
    let e = env();
    let (owner, nobody) = (user(&e, "owner"), user(&e, "nobody"));
    let res = "/v1/projects/proj-alpha/secrets/db-pass";
    let (s, p) = owner.get(&format!("{res}:getIamPolicy")).await;
    assert_eq!(s, 200);
    let etag = p["etag"].as_str().unwrap().to_owned();
    let mut policy = p.clone();
    policy["bindings"].as_array_mut().unwrap().push(json!({"role": "roles/secretmanager.secretAccessor", "members": ["user:nobody@example.com"]}));
    let set = format!("{res}:setIamPolicy");
    let (s, _) = nobody.post(&set, json!({"policy": policy})).await;
    assert_eq!(s, 403, "nobody may not set the policy");
    let (s, b) = owner.post(&set, json!({"policy": policy})).await;
    assert_eq!(s, 200, "{b}");
    assert_ne!(b["etag"].as_str().unwrap(), etag);
    // The old etag is now stale.
    let (s, b) = owner.post(&set, json!({"policy": policy})).await;
    assert_eq!((s, b["error"]["status"].as_str()), (409, Some("ABORTED")));
    let (s, _) = nobody.get(&format!("{res}/versions/1:access")).await;
    assert_eq!(s, 200, "the grant took effect");
    let (s, b) = nobody
        .post(
            &format!("{res}:testIamPermissions"),
            json!({"permissions": ["secretmanager.versions.access", "secretmanager.versions.add"]}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["permissions"], json!(["secretmanager.versions.access"]));
    // Invalid policies are refused.
    let bindings = |role: &str, member: &str| {
        Some(json!({"policy": {"bindings": [{"role": role, "members": [member]}]}}))
    };
    owner
        .expect(&[
            (
                "POST",
                set.clone(),
                bindings("roles/nope", "user:a@b.c"),
                400,
            ),
            ("POST", set.clone(), bindings("roles/viewer", "bob"), 400),
        ])
        .await;
    // Project level through Resource Manager.
    let project = "/v1/projects/proj-alpha:getIamPolicy";
    let (s, p) = owner.post(project, json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(p["bindings"][0]["role"], "roles/owner");
    assert_eq!(nobody.post(project, json!({})).await.0, 403);
}

#[tokio::test]
async fn compute_requires_stop_before_changing_scopes() {
    let e = env();
    let owner = user(&e, "owner");
    let inst = "/compute/v1/projects/proj-alpha/zones/us-central1-a/instances/vm-one";
    let (s, b) = owner.get(inst).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("RUNNING")));
    let sa = b["serviceAccounts"][0]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(sa, SA);
    let scopes = b["serviceAccounts"][0]["scopes"].as_array().unwrap();
    assert!(!scopes.iter().any(|s| s == CP));
    let body = json!({"email": sa, "scopes": [CP]});
    let (s, b) = owner
        .post(&format!("{inst}/setServiceAccount"), body.clone())
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, op) = owner.call("POST", &format!("{inst}/stop"), None).await;
    assert_eq!((s, op["status"].as_str()), (200, Some("DONE")));
    let ops = "/compute/v1/projects/proj-alpha/zones/us-central1-a/operations";
    let (s, got) = owner
        .get(&format!("{ops}/{}", op["name"].as_str().unwrap()))
        .await;
    assert_eq!((s, got["operationType"].as_str()), (200, Some("stop")));
    owner
        .expect(&[
            ("POST", format!("{inst}/setServiceAccount"), Some(body), 200),
            ("POST", format!("{inst}/start"), None, 200),
        ])
        .await;
    let (_, b) = owner.get(inst).await;
    assert_eq!(b["status"], "RUNNING");
    assert_eq!(b["serviceAccounts"][0]["scopes"], json!([CP]));
    // A reader with cloud-platform but no compute role is refused, Compute style.
    let (s, b) = user(&e, "reader")
        .call("POST", &format!("{inst}/stop"), None)
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
    assert_eq!(tokeninfo(&e, &t).await["email"], "owner@example.com");
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
    let key = Key::mint(&e).await;
    assert_eq!(key.file["type"], "service_account");
    assert_eq!(key.file["client_email"], SA);
    // Sign a JWT-bearer assertion with the private key, as google-auth would.
    let now = jiff::Timestamp::now().as_second();
    let sign = |aud: &str, exp: i64| {
        key.sign(json!({"iss": SA, "scope": CP, "aud": aud, "iat": now, "exp": exp}))
    };
    let google = &e.google;
    let grant = |a: String| async move {
        let jwt_bearer = "urn:ietf:params:oauth:grant-type:jwt-bearer";
        let form = [("grant_type", jwt_bearer), ("assertion", a.as_str())];
        google.form("/token", None, &form).await
    };
    let token_uri = "https://oauth2.googleapis.com/token";
    let r = grant(sign(token_uri, now + 3600)).await;
    assert_eq!(r.status, 200);
    assert_eq!(tokeninfo(&e, &r.json()).await["email"], SA);
    let r = grant(sign(token_uri, now + 7200)).await;
    assert_eq!(r.status, 400, "longer than an hour");
    let r = grant(sign("https://example.com/", now + 600)).await;
    assert_eq!(r.status, 400, "wrong audience");
    let good = sign(token_uri, now + 600);
    let i = good.rfind('.').unwrap() + 10;
    let mut tampered = good.into_bytes();
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let r = grant(String::from_utf8(tampered).unwrap()).await;
    assert_eq!(r.json()["error_description"], "Invalid JWT Signature.");
    // A principal without keys.create is refused.
    assert_eq!(user(&e, "nobody").post(&keys(SA), json!({})).await.0, 403);
}

#[tokio::test]
async fn self_signed_service_account_jwts_are_bearer_tokens_for_their_api() {
    let e = env();
    let key = Key::mint(&e).await;
    let now = jiff::Timestamp::now().as_second();
    let jwt = |aud: &str| {
        key.sign(json!({"iss": SA, "sub": SA, "aud": aud, "iat": now, "exp": now + 3600}))
    };
    // Authenticated as the account: IAM, not authentication, now decides.
    let as_sa = e
        .google
        .bearer(jwt("https://secretmanager.googleapis.com/"));
    let (s, b) = as_sa.get(LATEST).await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(reason(&b), "IAM_PERMISSION_DENIED");
    // Addressed to another API: not a credential here.
    let elsewhere = e.google.bearer(jwt("https://compute.googleapis.com/"));
    assert_eq!(elsewhere.get(LATEST).await.0, 401);
}

#[tokio::test]
async fn self_signed_jwts_with_a_scope_claim_need_no_audience() {
    // google-auth signs {iss, sub, scope, iat, exp} without `aud` for a
    // service-account key used with scopes; Google accepts it.
    let e = env();
    let key = Key::mint(&e).await;
    let now = jiff::Timestamp::now().as_second();
    let read_only = "https://www.googleapis.com/auth/devstorage.read_only";
    let cases = [
        (Some(CP), 403, "IAM_PERMISSION_DENIED"),
        (Some(read_only), 403, "ACCESS_TOKEN_SCOPE_INSUFFICIENT"),
        (None, 401, ""),
    ];
    for (scope, status, why) in cases {
        let mut claims = json!({"iss": SA, "sub": SA, "iat": now, "exp": now + 3600});
        if let Some(scope) = scope {
            claims["scope"] = scope.into();
        }
        let (s, b) = e.google.bearer(key.sign(claims)).get(LATEST).await;
        assert_eq!(s, status, "{scope:?}: {b}");
        if status == 403 {
            assert_eq!(reason(&b), why, "{scope:?}: {b}");
        }
    }
}
