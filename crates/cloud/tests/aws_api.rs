//! STS and Secrets Manager of the local cloud through its router in process, every
//! request signed with SigV4: signature errors as AWS words them, AssumeRole
//! against trust and identity policies, every Secrets Manager call with its
//! stage movement, lookups, paging and deletion, and IAM's decisions
//! (allow, implicit deny, explicit deny, resource policies).

use keyway_testkit::{Creds, Local, NOW, xml};
use serde_json::{Value, json};

pub const WORLD: &str = include_str!("worlds/aws_api.toml");

fn ty(v: &Value) -> &str {
    v["__type"].as_str().unwrap_or("")
}

fn msg(v: &Value) -> &str {
    v["Message"].as_str().unwrap_or("")
}

/// The error code of an STS answer.
fn code(x: &str) -> String {
    xml(x, "Code")
}

const GCI: &[(&str, &str)] = &[("Action", "GetCallerIdentity")];

/// AssumeRole as `c` of role `role` of 111111111111, as session `session`,
/// with `extra` parameters.
async fn assume_role(
    e: &Local,
    c: &Creds,
    role: &str,
    session: &str,
    extra: &[(&str, &str)],
) -> (u16, String) {
    let arn = format!("arn:aws:iam::111111111111:role/{role}");
    let mut params = vec![
        ("Action", "AssumeRole"),
        ("RoleArn", arn.as_str()),
        ("RoleSessionName", session),
    ];
    params.extend_from_slice(extra);
    e.sts(c, &params).await
}

/// The names in a ListSecrets answer.
fn names(v: &Value) -> Vec<&str> {
    let list = v["SecretList"].as_array().unwrap();
    list.iter().map(|x| x["Name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn signature_errors_as_aws_words_them() {
    let e = Local::open(WORLD);
    let admin = e.user("111111111111", "admin");
    let (s, x) = e.sts(&admin, GCI).await;
    assert_eq!(s, 200, "{x}");
    assert_eq!(xml(&x, "Arn"), "arn:aws:iam::111111111111:user/admin");
    assert_eq!(xml(&x, "Account"), "111111111111");
    assert!(xml(&x, "UserId").starts_with("AIDA"));

    let unknown = Creds {
        akid: "AKIAUNKNOWNUNKNOWN00".into(),
        ..admin.clone()
    };
    let wrong = Creds {
        secret: format!("{}x", admin.secret),
        ..admin.clone()
    };
    // STS's words (code, and how the message starts), then Secrets Manager's.
    let cases = [
        (
            &unknown,
            "InvalidClientTokenId",
            None,
            "UnrecognizedClientException",
        ),
        (
            &wrong,
            "SignatureDoesNotMatch",
            Some("The request signature we calculated does not match"),
            "InvalidSignatureException",
        ),
    ];
    for (c, sts_code, message, sm_type) in cases {
        let (s, x) = e.sts(c, GCI).await;
        assert_eq!((s, code(&x).as_str()), (403, sts_code), "{x}");
        if let Some(message) = message {
            assert!(xml(&x, "Message").starts_with(message), "{x}");
        }
        let (s, v) = e.sm(c, "us-east-1", "ListSecrets", json!({})).await;
        assert_eq!((s, ty(&v)), (400, sm_type), "{v}");
    }

    // More than 15 minutes off the cloud's clock.
    let (s, x) = e.sts_skew(&admin, GCI, -20 * 60).await;
    assert_eq!(
        (s, code(&x).as_str()),
        (403, "SignatureDoesNotMatch"),
        "{x}"
    );
    let message = xml(&x, "Message");
    assert!(
        message.starts_with("Signature expired: ") && message.contains("is now earlier than"),
        "{x}"
    );
    let (s, t) = e
        .sm_raw(&admin, "us-east-1", "ListSecrets", json!({}), 16 * 60)
        .await;
    assert!(
        s == 400
            && t.contains("InvalidSignatureException")
            && t.contains("Signature not yet current"),
        "{t}"
    );
    assert_eq!(e.sts_skew(&admin, GCI, 14 * 60).await.0, 200);

    // Unsigned.
    let unsigned = [("Action", "GetCallerIdentity"), ("Version", "2011-06-15")];
    let r = e.aws_api.form("/", None, &unsigned).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("MissingAuthenticationToken"));

    // Temporary credentials: the token is required, bound to its key, and expires.
    let session = e
        .assume(&admin, "arn:aws:iam::111111111111:role/deployer")
        .await;
    assert!(session.akid.starts_with("ASIA"));
    let (s, x) = e.sts(&session, GCI).await;
    assert_eq!(s, 200, "{x}");
    assert_eq!(
        xml(&x, "Arn"),
        "arn:aws:sts::111111111111:assumed-role/deployer/test"
    );
    assert!(xml(&x, "UserId").starts_with("AROA") && xml(&x, "UserId").ends_with(":test"));
    let no_token = Creds {
        token: None,
        ..session.clone()
    };
    let (s, x) = e.sts(&no_token, GCI).await;
    assert_eq!((s, code(&x).as_str()), (403, "InvalidClientTokenId"), "{x}");
    let mut forged = session.token.clone().unwrap();
    forged.insert(12, 'A');
    let forged = Creds {
        token: Some(forged),
        ..session.clone()
    };
    assert_eq!(e.sts(&forged, GCI).await.0, 403);
    e.clock.advance_secs(3601);
    let (s, x) = e.sts(&session, GCI).await;
    assert_eq!(code(&x), "ExpiredToken", "{s} {x}");
    let (_, v) = e.sm(&session, "us-east-1", "ListSecrets", json!({})).await;
    assert_eq!(ty(&v), "ExpiredTokenException", "{v}");
}

#[tokio::test]
async fn assume_role_follows_trust_and_identity_policies() {
    let e = Local::open(WORLD);
    let admin = e.user("111111111111", "admin");
    let nobody = e.user("111111111111", "nobody");
    let outsider = e.user("222222222222", "outsider");
    // Trust names the account root: the identity policy must allow sts:AssumeRole.
    let (s, x) = assume_role(&e, &nobody, "deployer", "s1", &[]).await;
    assert_eq!((s, code(&x).as_str()), (403, "AccessDenied"), "{x}");
    assert_eq!(
        xml(&x, "Message"),
        "User: arn:aws:iam::111111111111:user/nobody is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111111111111:role/deployer"
    );
    let (s, x) = assume_role(&e, &admin, "deployer", "s1", &[("DurationSeconds", "900")]).await;
    assert_eq!(s, 200, "{x}");
    assert_eq!(
        xml(&x, "Arn"),
        "arn:aws:sts::111111111111:assumed-role/deployer/s1"
    );
    assert!(xml(&x, "SessionToken").len() > 40 && xml(&x, "Expiration").ends_with('Z'));
    // Caller, role, session, more parameters: the status, and the code where it matters.
    let cases = [
        // Cross-account with an external id condition.
        (&outsider, "partner", "p1", &[][..], 403, None),
        (
            &outsider,
            "partner",
            "p1",
            &[("ExternalId", "s3cret-ext")][..],
            200,
            None,
        ),
        // A role that does not exist reads as a denial; bad input as a validation error.
        (&admin, "ghost", "s1", &[][..], 403, None),
        (
            &admin,
            "deployer",
            "bad name!",
            &[][..],
            400,
            Some("ValidationError"),
        ),
        (
            &admin,
            "deployer",
            "s2",
            &[("DurationSeconds", "7200")][..],
            400,
            Some("ValidationError"),
        ),
        // The trust policy must allow the caller, whatever its identity policy says.
        (&admin, "ecs-only", "s3", &[][..], 403, Some("AccessDenied")),
    ];
    for (c, role, session, extra, status, want) in cases {
        let (s, x) = assume_role(&e, c, role, session, extra).await;
        assert_eq!(s, status, "{role} {session} {extra:?}: {x}");
        if let Some(want) = want {
            assert_eq!(code(&x), want, "{x}");
        }
    }
    // AssumeRoleWithWebIdentity (tests/aws_web_identity.rs) still wants its parameters.
    for (action, want) in [
        ("AssumeRoleWithWebIdentity", "MissingParameter"),
        ("Frobnicate", "InvalidAction"),
    ] {
        let (s, x) = e.sts(&admin, &[("Action", action)]).await;
        assert_eq!((s, code(&x).as_str()), (400, want), "{x}");
    }
}

#[tokio::test]
async fn secrets_lifecycle_stages_lookup_and_paging() {
    let e = Local::open(WORLD);
    let admin = e.user("111111111111", "admin");
    let a = e.signed(&admin, "us-east-1");
    let (s, v) = a.sm("GetSecretValue", json!({"SecretId": "app/db"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["SecretString"], r#"{"user":"app","pass":"p1"}"#);
    assert_eq!(v["VersionStages"], json!(["AWSCURRENT"]));
    let arn = v["ARN"].as_str().unwrap().to_owned();
    let suffix = arn.rsplit('-').next().unwrap();
    assert!(
        arn.starts_with("arn:aws:secretsmanager:us-east-1:111111111111:secret:app/db-")
            && suffix.len() == 6,
        "{arn}"
    );
    // Full ARN, partial ARN, previous stage; another region has no such secret.
    let (_, v) = a.sm("GetSecretValue", json!({"SecretId": arn})).await;
    assert_eq!(v["Name"], "app/db");
    let (_, v) = a.sm("GetSecretValue", json!({"SecretId": "arn:aws:secretsmanager:us-east-1:111111111111:secret:app/db", "VersionStage": "AWSPREVIOUS"})).await;
    assert_eq!(v["SecretString"], "old-pass", "{v}");
    let (s, v) = e
        .signed(&admin, "eu-west-1")
        .sm("GetSecretValue", json!({"SecretId": "app/db"}))
        .await;
    assert_eq!(
        (s, ty(&v), msg(&v)),
        (
            400,
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret."
        )
    );
    let (_, v) = a.sm("GetSecretValue", json!({"SecretId": "shared"})).await;
    assert_eq!(v["SecretBinary"], "AAEC/w==");
    assert!(v.get("SecretString").is_none());

    // Create, put (stages move), get by id and stage.
    let (s, v) = a.sm("CreateSecret", json!({"Name": "svc/token", "SecretString": "t1", "Description": "d", "Tags": [{"Key": "team", "Value": "blue"}]})).await;
    assert_eq!(s, 200, "{v}");
    let v1 = v["VersionId"].as_str().unwrap().to_owned();
    let tok = "00000000-0000-4000-8000-000000000002";
    let put = |value: &str| json!({"SecretId": "svc/token", "SecretString": value, "ClientRequestToken": tok});
    let answers = a
        .expect(&[
            (
                "CreateSecret",
                json!({"Name": "svc/token", "SecretString": "again"}),
                400,
                "ResourceExistsException",
            ),
            (
                "CreateSecret",
                json!({"Name": "x", "SecretString": "a", "SecretBinary": "AA=="}),
                400,
                "InvalidParameterException",
            ),
            ("PutSecretValue", put("t2"), 200, ""),
            // An idempotent retry succeeds.
            ("PutSecretValue", put("t2"), 200, ""),
            (
                "PutSecretValue",
                put("other"),
                400,
                "ResourceExistsException",
            ),
        ])
        .await;
    assert_eq!(
        answers[2]["VersionStages"],
        json!(["AWSCURRENT"]),
        "{}",
        answers[2]
    );
    let (_, v) = a
        .sm(
            "PutSecretValue",
            json!({"SecretId": "svc/token", "SecretString": "t3", "VersionStages": ["AWSPENDING"]}),
        )
        .await;
    let pending = v["VersionId"].as_str().unwrap().to_owned();
    let (_, v) = a
        .sm("DescribeSecret", json!({"SecretId": "svc/token"}))
        .await;
    assert_eq!(v["VersionIdsToStages"][&v1], json!(["AWSPREVIOUS"]), "{v}");
    assert_eq!(v["VersionIdsToStages"][tok], json!(["AWSCURRENT"]));
    assert_eq!(v["VersionIdsToStages"][&pending], json!(["AWSPENDING"]));
    assert_eq!(v["Tags"], json!([{"Key": "team", "Value": "blue"}]));
    let get = |by: Value| {
        let mut body = json!({"SecretId": "svc/token"});
        body.as_object_mut()
            .unwrap()
            .extend(by.as_object().unwrap().clone());
        body
    };
    let (_, v) = a
        .sm("GetSecretValue", get(json!({"VersionStage": "AWSPENDING"})))
        .await;
    assert_eq!(v["SecretString"], "t3");
    let (_, v) = a.sm("GetSecretValue", get(json!({"VersionId": v1}))).await;
    assert_eq!(v["SecretString"], "t1");
    a.expect(&[(
        "GetSecretValue",
        get(json!({"VersionId": v1, "VersionStage": "AWSCURRENT"})),
        400,
        "ResourceNotFoundException",
    )])
    .await;
    let (_, v) = a
        .sm(
            "PutSecretValue",
            json!({"SecretId": "svc/token", "SecretString": "t4"}),
        )
        .await;
    let v4 = v["VersionId"].as_str().unwrap().to_owned();
    let (_, v) = a
        .sm("ListSecretVersionIds", json!({"SecretId": "svc/token"}))
        .await;
    let ids: Vec<&str> = v["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["VersionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "v1 lost its labels and is deprecated: {v}");
    assert!(ids.contains(&v4.as_str()) && ids.contains(&tok) && !ids.contains(&v1.as_str()));
    let (_, v) = a
        .sm(
            "ListSecretVersionIds",
            get(json!({"IncludeDeprecated": true})),
        )
        .await;
    assert_eq!(v["Versions"].as_array().unwrap().len(), 4);

    // Paging and filters.
    for i in 0..5 {
        a.sm(
            "CreateSecret",
            json!({"Name": format!("bulk/{i}"), "SecretString": "x"}),
        )
        .await;
    }
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"MaxResults": 2, "Filters": [{"Key": "name", "Values": ["bulk/"]}]});
        if let Some(t) = &token {
            body["NextToken"] = json!(t);
        }
        let (s, v) = a.sm("ListSecrets", body).await;
        assert_eq!(s, 200, "{v}");
        all.extend(names(&v).into_iter().map(str::to_owned));
        token = v["NextToken"].as_str().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(all, (0..5).map(|i| format!("bulk/{i}")).collect::<Vec<_>>());
    let filter = |key: &str, values: Value| json!({"Filters": [{"Key": key, "Values": values}]});
    let (_, v) = a
        .sm("ListSecrets", filter("tag-value", json!(["blue"])))
        .await;
    assert_eq!(names(&v).len(), 1);
    let (_, v) = a
        .sm("ListSecrets", filter("name", json!(["!bulk/", "!app/"])))
        .await;
    assert_eq!(names(&v), ["shared", "svc/token"]);
    a.expect(&[(
        "ListSecrets",
        json!({"NextToken": "garbage"}),
        400,
        "InvalidNextTokenException",
    )])
    .await;

    // BatchGetSecretValue: values and per-secret errors.
    let (s, v) = a
        .sm(
            "BatchGetSecretValue",
            json!({"SecretIdList": ["app/db", "ghost", "bulk/1"]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["SecretValues"].as_array().unwrap().len(), 2);
    assert_eq!(v["Errors"][0]["SecretId"], "ghost");
    assert_eq!(v["Errors"][0]["ErrorCode"], "ResourceNotFoundException");
    let (_, v) = a
        .sm(
            "BatchGetSecretValue",
            json!({"Filters": [{"Key": "name", "Values": ["bulk/"]}], "MaxResults": 3}),
        )
        .await;
    assert_eq!(v["SecretValues"].as_array().unwrap().len(), 3);
    assert!(v["NextToken"].is_string());

    // Delete with a recovery window, then restore; force delete frees the name.
    let token_id = json!({"SecretId": "svc/token"});
    let answers = a
        .expect(&[
            (
                "DeleteSecret",
                get(json!({"RecoveryWindowInDays": 3})),
                400,
                "InvalidParameterException",
            ),
            (
                "DeleteSecret",
                get(json!({"RecoveryWindowInDays": 7, "ForceDeleteWithoutRecovery": true})),
                400,
                "InvalidParameterException",
            ),
            (
                "DeleteSecret",
                get(json!({"RecoveryWindowInDays": 7})),
                200,
                "",
            ),
            (
                "GetSecretValue",
                token_id.clone(),
                400,
                "InvalidRequestException",
            ),
        ])
        .await;
    assert_eq!(
        answers[2]["DeletionDate"].as_f64().unwrap() as i64,
        NOW + 7 * 86400
    );
    assert!(
        msg(&answers[3]).contains("marked for deletion"),
        "{}",
        answers[3]
    );
    let (_, v) = a.sm("DescribeSecret", token_id.clone()).await;
    assert!(v["DeletedDate"].is_number(), "{v}");
    let (_, v) = a.sm("ListSecrets", filter("name", json!(["svc/"]))).await;
    assert_eq!(names(&v).len(), 0);
    let (_, v) = a.sm("ListSecrets", json!({"IncludePlannedDeletion": true, "Filters": [{"Key": "name", "Values": ["svc/"]}]})).await;
    assert_eq!(names(&v).len(), 1);
    let new = json!({"Name": "svc/token", "SecretString": "new"});
    let answers = a
        .expect(&[
            ("CreateSecret", new.clone(), 400, "InvalidRequestException"),
            ("RestoreSecret", token_id.clone(), 200, ""),
            ("GetSecretValue", token_id.clone(), 200, ""),
            (
                "DeleteSecret",
                get(json!({"ForceDeleteWithoutRecovery": true})),
                200,
                "",
            ),
            (
                "DescribeSecret",
                token_id.clone(),
                400,
                "ResourceNotFoundException",
            ),
            ("CreateSecret", new, 200, ""),
        ])
        .await;
    assert_eq!(answers[2]["SecretString"], "t4");
    // A scheduled deletion completes when its window has passed.
    a.sm(
        "DeleteSecret",
        json!({"SecretId": "bulk/0", "RecoveryWindowInDays": 7}),
    )
    .await;
    e.clock.advance_secs(7 * 86400 + 1);
    let admin = e.user("111111111111", "admin");
    e.signed(&admin, "us-east-1")
        .expect(&[(
            "DescribeSecret",
            json!({"SecretId": "bulk/0"}),
            400,
            "ResourceNotFoundException",
        )])
        .await;
}
#[tokio::test]
async fn iam_allow_deny_explicit_deny_and_resource_policies() {
    let e = Local::open(WORLD);
    let r = "us-east-1";
    let (reader_creds, nobody_creds, outsider_creds, admin_creds) = (
        e.user("111111111111", "reader"),
        e.user("111111111111", "nobody"),
        e.user("222222222222", "outsider"),
        e.user("111111111111", "admin"),
    );
    let reader = e.signed(&reader_creds, r);
    let nobody = e.signed(&nobody_creds, r);
    let outsider = e.signed(&outsider_creds, r);
    let admin = e.signed(&admin_creds, r);
    let id = |name: &str| json!({"SecretId": name});
    let denied = "AccessDeniedException";
    let answers = reader
        .expect(&[
            ("GetSecretValue", id("app/db"), 200, ""),
            // Not in the identity policy: implicit deny.
            ("DescribeSecret", id("app/db"), 400, denied),
            // An explicit deny wins over the allow.
            ("GetSecretValue", id("app/forbidden"), 400, denied),
            // Outside the allowed resources.
            ("GetSecretValue", id("shared"), 400, denied),
        ])
        .await;
    let v = &answers[1];
    assert!(msg(v).starts_with("User: arn:aws:iam::111111111111:user/reader is not authorized to perform: secretsmanager:DescribeSecret on resource: arn:aws:secretsmanager:us-east-1:111111111111:secret:app/db-"), "{v}");
    assert!(
        msg(v).ends_with(
            "because no identity-based policy allows the secretsmanager:DescribeSecret action"
        ),
        "{v}"
    );
    let v = &answers[2];
    assert!(
        msg(v).ends_with("with an explicit deny in an identity-based policy"),
        "{v}"
    );
    // Missing secrets are denials to those who may not look; a resource policy
    // naming the principal grants in the same account...
    nobody
        .expect(&[
            ("GetSecretValue", id("ghost"), 400, denied),
            ("ListSecrets", json!({}), 400, denied),
            ("GetSecretValue", id("shared"), 200, ""),
        ])
        .await;
    // ...and across accounts (by full ARN), together with the caller's identity policy.
    let (_, v) = admin.sm("DescribeSecret", id("shared")).await;
    let shared = v["ARN"].as_str().unwrap().to_owned();
    let (s, v) = outsider.sm("GetSecretValue", id(&shared)).await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = admin.sm("DescribeSecret", id("app/db")).await;
    let answers = outsider
        .expect(&[("GetSecretValue", json!({"SecretId": v["ARN"]}), 400, denied)])
        .await;
    let v = &answers[0];
    assert!(
        msg(v).ends_with(
            "because no resource-based policy allows the secretsmanager:GetSecretValue action"
        ),
        "{v}"
    );
    // Sessions act with the role's policies and are named by their session ARN.
    let s1 = e
        .assume(&admin_creds, "arn:aws:iam::111111111111:role/deployer")
        .await;
    let session = e.signed(&s1, r);
    let (s, _) = session.sm("GetSecretValue", id("app/forbidden")).await;
    assert_eq!(s, 200);
    let (_, v) = session
        .sm("CreateSecret", json!({"Name": "nope", "SecretString": "x"}))
        .await;
    assert_eq!(ty(&v), denied);
    assert!(msg(&v).starts_with("User: arn:aws:sts::111111111111:assumed-role/deployer/test is not authorized to perform: secretsmanager:CreateSecret"), "{v}");
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (arn, admin) = {
        let e = Local::open_at(dir.path(), WORLD);
        let a = e.user("111111111111", "admin");
        let marker = json!({"Name": "durable", "SecretString": "PLAINTEXT-MARKER-42"});
        let (s, v) = e.signed(&a, "us-east-1").sm("CreateSecret", marker).await;
        assert_eq!(s, 200);
        let creds =
            std::fs::read_to_string(dir.path().join("aws/users/111111111111/admin/credentials"))
                .unwrap();
        assert!(creds.contains(&a.akid) && creds.contains(&a.secret));
        (v["ARN"].as_str().unwrap().to_owned(), a)
    };
    for f in ["cloud.db", "cloud.db-wal"] {
        let raw = std::fs::read(dir.path().join(f)).unwrap_or_default();
        assert!(
            !raw.windows(19).any(|w| w == b"PLAINTEXT-MARKER-42"),
            "plaintext in {f}"
        );
    }
    // The second start does not re-seed; the same key signs, the secret is there.
    let e = Local::open_at(dir.path(), WORLD);
    assert_eq!(e.user("111111111111", "admin").akid, admin.akid);
    let (s, v) = e
        .signed(&admin, "us-east-1")
        .sm("GetSecretValue", json!({"SecretId": arn}))
        .await;
    assert_eq!(
        (s, v["SecretString"].as_str()),
        (200, Some("PLAINTEXT-MARKER-42")),
        "{v}"
    );
}
