//! STS and Secrets Manager of the local cloud through its router in process, every
//! request signed with SigV4: signature errors as AWS words them, AssumeRole
//! against trust and identity policies, every Secrets Manager call with its
//! stage movement, lookups, paging and deletion, and IAM's decisions
//! (allow, implicit deny, explicit deny, resource policies).

use keyway_testkit::{Creds, Local, NOW, xml};
use serde_json::{Value, json};

pub const WORLD: &str = r#"
[[aws_account]]
id = "111111111111"

[[aws_account]]
id = "222222222222"

[[aws_user]]
account = "111111111111"
name = "admin"
policies = ['{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["secretsmanager:*", "sts:AssumeRole"], "Resource": "*"}]}']

[[aws_user]]
account = "111111111111"
name = "reader"
[[aws_user.policies]]
Version = "2012-10-17"
[[aws_user.policies.Statement]]
Effect = "Allow"
Action = "secretsmanager:GetSecretValue"
Resource = "arn:aws:secretsmanager:us-east-1:111111111111:secret:app/*"
[[aws_user.policies.Statement]]
Effect = "Deny"
Action = "secretsmanager:GetSecretValue"
Resource = "arn:aws:secretsmanager:*:*:secret:app/forbidden-??????"

[[aws_user]]
account = "111111111111"
name = "nobody"

[[aws_user]]
account = "222222222222"
name = "outsider"
policies = ['{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}']

[[aws_role]]
account = "111111111111"
name = "deployer"
trust = '{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"}, "Action": "sts:AssumeRole"}]}'
policies = ['{"Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]}']

[[aws_role]]
account = "111111111111"
name = "partner"
trust = '{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "222222222222"}, "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:ExternalId": "s3cret-ext"}}}]}'

[[aws_role]]
account = "111111111111"
name = "ecs-only"
trust = '{"Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}'

[[aws_secret]]
account = "111111111111"
region = "us-east-1"
name = "app/db"
versions = [{ string = "old-pass" }, { string = '{"user":"app","pass":"p1"}' }]

[[aws_secret]]
account = "111111111111"
region = "us-east-1"
name = "app/forbidden"
versions = [{ string = "nope" }]

[[aws_secret]]
account = "111111111111"
region = "us-east-1"
name = "shared"
versions = [{ binary_base64 = "AAEC/w==" }]
policy = '{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:user/outsider"}, "Action": "secretsmanager:GetSecretValue", "Resource": "*"}, {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:user/nobody"}, "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]}'
"#;

fn ty(v: &Value) -> &str {
    v["__type"].as_str().unwrap_or("")
}

fn msg(v: &Value) -> &str {
    v["Message"].as_str().unwrap_or("")
}

#[tokio::test]
async fn signature_errors_as_aws_words_them() {
    let e = Local::open(WORLD);
    let admin = e.user("111111111111", "admin");
    let (s, x) = e.sts(&admin, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(s, 200, "{x}");
    assert_eq!(xml(&x, "Arn"), "arn:aws:iam::111111111111:user/admin");
    assert_eq!(xml(&x, "Account"), "111111111111");
    assert!(xml(&x, "UserId").starts_with("AIDA"));

    let unknown = Creds {
        akid: "AKIAUNKNOWNUNKNOWN00".into(),
        ..admin.clone()
    };
    let (s, x) = e.sts(&unknown, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(
        (s, xml(&x, "Code").as_str()),
        (403, "InvalidClientTokenId"),
        "{x}"
    );
    let (s, v) = e.sm(&unknown, "us-east-1", "ListSecrets", json!({})).await;
    assert_eq!((s, ty(&v)), (400, "UnrecognizedClientException"), "{v}");

    let wrong = Creds {
        secret: format!("{}x", admin.secret),
        ..admin.clone()
    };
    let (s, x) = e.sts(&wrong, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(
        (s, xml(&x, "Code").as_str()),
        (403, "SignatureDoesNotMatch"),
        "{x}"
    );
    assert!(
        xml(&x, "Message").starts_with("The request signature we calculated does not match"),
        "{x}"
    );
    let (s, v) = e.sm(&wrong, "us-east-1", "ListSecrets", json!({})).await;
    assert_eq!((s, ty(&v)), (400, "InvalidSignatureException"), "{v}");

    // More than 15 minutes off the cloud's clock.
    let (s, x) = e
        .sts_skew(&admin, &[("Action", "GetCallerIdentity")], -20 * 60)
        .await;
    assert_eq!(
        (s, xml(&x, "Code").as_str()),
        (403, "SignatureDoesNotMatch"),
        "{x}"
    );
    assert!(
        xml(&x, "Message").starts_with("Signature expired: ")
            && xml(&x, "Message").contains("is now earlier than"),
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
    let (s, _) = e
        .sts_skew(&admin, &[("Action", "GetCallerIdentity")], 14 * 60)
        .await;
    assert_eq!(s, 200);

    // Unsigned.
    let r = e
        .aws_api
        .form(
            "/",
            None,
            &[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("MissingAuthenticationToken"));

    // Temporary credentials: the token is required, bound to its key, and expires.
    let session = e
        .assume(&admin, "arn:aws:iam::111111111111:role/deployer")
        .await;
    assert!(session.akid.starts_with("ASIA"));
    let (s, x) = e.sts(&session, &[("Action", "GetCallerIdentity")]).await;
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
    let (s, x) = e.sts(&no_token, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(
        (s, xml(&x, "Code").as_str()),
        (403, "InvalidClientTokenId"),
        "{x}"
    );
    let mut forged = session.token.clone().unwrap();
    forged.insert(12, 'A');
    let (s, _) = e
        .sts(
            &Creds {
                token: Some(forged),
                ..session.clone()
            },
            &[("Action", "GetCallerIdentity")],
        )
        .await;
    assert_eq!(s, 403);
    e.clock.advance_secs(3601);
    let (s, x) = e.sts(&session, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(xml(&x, "Code"), "ExpiredToken", "{s} {x}");
    let (_, v) = e.sm(&session, "us-east-1", "ListSecrets", json!({})).await;
    assert_eq!(ty(&v), "ExpiredTokenException", "{v}");
}

#[tokio::test]
async fn assume_role_follows_trust_and_identity_policies() {
    let e = Local::open(WORLD);
    let admin = e.user("111111111111", "admin");
    let nobody = e.user("111111111111", "nobody");
    let outsider = e.user("222222222222", "outsider");
    let deployer = "arn:aws:iam::111111111111:role/deployer";
    // Trust names the account root: the identity policy must allow sts:AssumeRole.
    let (s, x) = e
        .sts(
            &nobody,
            &[
                ("Action", "AssumeRole"),
                ("RoleArn", deployer),
                ("RoleSessionName", "s1"),
            ],
        )
        .await;
    assert_eq!((s, xml(&x, "Code").as_str()), (403, "AccessDenied"), "{x}");
    assert_eq!(
        xml(&x, "Message"),
        "User: arn:aws:iam::111111111111:user/nobody is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111111111111:role/deployer"
    );
    let (s, x) = e
        .sts(
            &admin,
            &[
                ("Action", "AssumeRole"),
                ("RoleArn", deployer),
                ("RoleSessionName", "s1"),
                ("DurationSeconds", "900"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{x}");
    assert_eq!(
        xml(&x, "Arn"),
        "arn:aws:sts::111111111111:assumed-role/deployer/s1"
    );
    assert!(xml(&x, "SessionToken").len() > 40 && xml(&x, "Expiration").ends_with('Z'));
    // Cross-account with an external id condition.
    let partner = "arn:aws:iam::111111111111:role/partner";
    let (s, _) = e
        .sts(
            &outsider,
            &[
                ("Action", "AssumeRole"),
                ("RoleArn", partner),
                ("RoleSessionName", "p1"),
            ],
        )
        .await;
    assert_eq!(s, 403);
    let (s, x) = e
        .sts(
            &outsider,
            &[
                ("Action", "AssumeRole"),
                ("RoleArn", partner),
                ("RoleSessionName", "p1"),
                ("ExternalId", "s3cret-ext"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{x}");
    // A role that does not exist reads as a denial; bad input as a validation error.
    let (s, _) = e
        .sts(
            &admin,
            &[
                ("Action", "AssumeRole"),
                ("RoleArn", "arn:aws:iam::111111111111:role/ghost"),
                ("RoleSessionName", "s1"),
            ],
        )
        .await;
    assert_eq!(s, 403);
    let (s, x) = e
        .sts(
            &admin,
            &[
                ("Action", "AssumeRole"),
                ("RoleArn", deployer),
                ("RoleSessionName", "bad name!"),
            ],
        )
        .await;
    assert_eq!(
        (s, xml(&x, "Code").as_str()),
        (400, "ValidationError"),
        "{x}"
    );
    let (s, x) = e
        .sts(
            &admin,
            &[
                ("Action", "AssumeRole"),
                ("RoleArn", deployer),
                ("RoleSessionName", "s2"),
                ("DurationSeconds", "7200"),
            ],
        )
        .await;
    assert_eq!(
        (s, xml(&x, "Code").as_str()),
        (400, "ValidationError"),
        "{x}"
    );
    // The trust policy must allow the caller, whatever its identity policy says.
    let (s, x) = e
        .sts(
            &admin,
            &[
                ("Action", "AssumeRole"),
                ("RoleArn", "arn:aws:iam::111111111111:role/ecs-only"),
                ("RoleSessionName", "s3"),
            ],
        )
        .await;
    assert_eq!((s, xml(&x, "Code").as_str()), (403, "AccessDenied"), "{x}");
    // AssumeRoleWithWebIdentity (tests/aws_web_identity.rs) still wants its parameters.
    let (s, x) = e
        .sts(&admin, &[("Action", "AssumeRoleWithWebIdentity")])
        .await;
    assert_eq!(
        (s, xml(&x, "Code").as_str()),
        (400, "MissingParameter"),
        "{x}"
    );
    let (s, x) = e.sts(&admin, &[("Action", "Frobnicate")]).await;
    assert_eq!((s, xml(&x, "Code").as_str()), (400, "InvalidAction"), "{x}");
}

#[tokio::test]
async fn secrets_lifecycle_stages_lookup_and_paging() {
    let e = Local::open(WORLD);
    let a = e.user("111111111111", "admin");
    let r = "us-east-1";
    let (s, v) = e
        .sm(&a, r, "GetSecretValue", json!({"SecretId": "app/db"}))
        .await;
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
    let (_, v) = e
        .sm(&a, r, "GetSecretValue", json!({"SecretId": arn}))
        .await;
    assert_eq!(v["Name"], "app/db");
    let (_, v) = e.sm(&a, r, "GetSecretValue", json!({"SecretId": "arn:aws:secretsmanager:us-east-1:111111111111:secret:app/db", "VersionStage": "AWSPREVIOUS"})).await;
    assert_eq!(v["SecretString"], "old-pass", "{v}");
    let (s, v) = e
        .sm(
            &a,
            "eu-west-1",
            "GetSecretValue",
            json!({"SecretId": "app/db"}),
        )
        .await;
    assert_eq!(
        (s, ty(&v), msg(&v)),
        (
            400,
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret."
        )
    );
    let (_, v) = e
        .sm(&a, r, "GetSecretValue", json!({"SecretId": "shared"}))
        .await;
    assert_eq!(v["SecretBinary"], "AAEC/w==");
    assert!(v.get("SecretString").is_none());

    // Create, put (stages move), get by id and stage.
    let (s, v) = e.sm(&a, r, "CreateSecret", json!({"Name": "svc/token", "SecretString": "t1", "Description": "d", "Tags": [{"Key": "team", "Value": "blue"}]})).await;
    assert_eq!(s, 200, "{v}");
    let v1 = v["VersionId"].as_str().unwrap().to_owned();
    let (s, v) = e
        .sm(
            &a,
            r,
            "CreateSecret",
            json!({"Name": "svc/token", "SecretString": "again"}),
        )
        .await;
    assert_eq!((s, ty(&v)), (400, "ResourceExistsException"));
    let (s, v) = e
        .sm(
            &a,
            r,
            "CreateSecret",
            json!({"Name": "x", "SecretString": "a", "SecretBinary": "AA=="}),
        )
        .await;
    assert_eq!((s, ty(&v)), (400, "InvalidParameterException"));
    let tok = "00000000-0000-4000-8000-000000000002";
    let (s, v) = e
        .sm(
            &a,
            r,
            "PutSecretValue",
            json!({"SecretId": "svc/token", "SecretString": "t2", "ClientRequestToken": tok}),
        )
        .await;
    assert_eq!(
        (s, &v["VersionStages"]),
        (200, &json!(["AWSCURRENT"])),
        "{v}"
    );
    let (s, _) = e
        .sm(
            &a,
            r,
            "PutSecretValue",
            json!({"SecretId": "svc/token", "SecretString": "t2", "ClientRequestToken": tok}),
        )
        .await;
    assert_eq!(s, 200, "an idempotent retry succeeds");
    let (s, v) = e
        .sm(
            &a,
            r,
            "PutSecretValue",
            json!({"SecretId": "svc/token", "SecretString": "other", "ClientRequestToken": tok}),
        )
        .await;
    assert_eq!((s, ty(&v)), (400, "ResourceExistsException"));
    let (_, v) = e
        .sm(
            &a,
            r,
            "PutSecretValue",
            json!({"SecretId": "svc/token", "SecretString": "t3", "VersionStages": ["AWSPENDING"]}),
        )
        .await;
    let pending = v["VersionId"].as_str().unwrap().to_owned();
    let (_, v) = e
        .sm(&a, r, "DescribeSecret", json!({"SecretId": "svc/token"}))
        .await;
    assert_eq!(v["VersionIdsToStages"][&v1], json!(["AWSPREVIOUS"]), "{v}");
    assert_eq!(v["VersionIdsToStages"][tok], json!(["AWSCURRENT"]));
    assert_eq!(v["VersionIdsToStages"][&pending], json!(["AWSPENDING"]));
    assert_eq!(v["Tags"], json!([{"Key": "team", "Value": "blue"}]));
    let (_, v) = e
        .sm(
            &a,
            r,
            "GetSecretValue",
            json!({"SecretId": "svc/token", "VersionStage": "AWSPENDING"}),
        )
        .await;
    assert_eq!(v["SecretString"], "t3");
    let (_, v) = e
        .sm(
            &a,
            r,
            "GetSecretValue",
            json!({"SecretId": "svc/token", "VersionId": v1}),
        )
        .await;
    assert_eq!(v["SecretString"], "t1");
    let (s, v) = e
        .sm(
            &a,
            r,
            "GetSecretValue",
            json!({"SecretId": "svc/token", "VersionId": v1, "VersionStage": "AWSCURRENT"}),
        )
        .await;
    assert_eq!((s, ty(&v)), (400, "ResourceNotFoundException"));
    let (_, v) = e
        .sm(
            &a,
            r,
            "PutSecretValue",
            json!({"SecretId": "svc/token", "SecretString": "t4"}),
        )
        .await;
    let v4 = v["VersionId"].as_str().unwrap().to_owned();
    let (_, v) = e
        .sm(
            &a,
            r,
            "ListSecretVersionIds",
            json!({"SecretId": "svc/token"}),
        )
        .await;
    let ids: Vec<&str> = v["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["VersionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "v1 lost its labels and is deprecated: {v}");
    assert!(ids.contains(&v4.as_str()) && ids.contains(&tok) && !ids.contains(&v1.as_str()));
    let (_, v) = e
        .sm(
            &a,
            r,
            "ListSecretVersionIds",
            json!({"SecretId": "svc/token", "IncludeDeprecated": true}),
        )
        .await;
    assert_eq!(v["Versions"].as_array().unwrap().len(), 4);

    // Paging and filters.
    for i in 0..5 {
        e.sm(
            &a,
            r,
            "CreateSecret",
            json!({"Name": format!("bulk/{i}"), "SecretString": "x"}),
        )
        .await;
    }
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"MaxResults": 2, "Filters": [{"Key": "name", "Values": ["bulk/"]}]});
        if let Some(t) = &token {
            body["NextToken"] = json!(t);
        }
        let (s, v) = e.sm(&a, r, "ListSecrets", body).await;
        assert_eq!(s, 200, "{v}");
        names.extend(
            v["SecretList"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["Name"].as_str().unwrap().to_owned()),
        );
        token = v["NextToken"].as_str().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(
        names,
        (0..5).map(|i| format!("bulk/{i}")).collect::<Vec<_>>()
    );
    let (_, v) = e
        .sm(
            &a,
            r,
            "ListSecrets",
            json!({"Filters": [{"Key": "tag-value", "Values": ["blue"]}]}),
        )
        .await;
    assert_eq!(v["SecretList"].as_array().unwrap().len(), 1);
    let (_, v) = e
        .sm(
            &a,
            r,
            "ListSecrets",
            json!({"Filters": [{"Key": "name", "Values": ["!bulk/", "!app/"]}]}),
        )
        .await;
    assert_eq!(
        v["SecretList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["Name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["shared", "svc/token"]
    );
    let (s, v) = e
        .sm(&a, r, "ListSecrets", json!({"NextToken": "garbage"}))
        .await;
    assert_eq!((s, ty(&v)), (400, "InvalidNextTokenException"));

    // BatchGetSecretValue: values and per-secret errors.
    let (s, v) = e
        .sm(
            &a,
            r,
            "BatchGetSecretValue",
            json!({"SecretIdList": ["app/db", "ghost", "bulk/1"]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["SecretValues"].as_array().unwrap().len(), 2);
    assert_eq!(v["Errors"][0]["SecretId"], "ghost");
    assert_eq!(v["Errors"][0]["ErrorCode"], "ResourceNotFoundException");
    let (_, v) = e
        .sm(
            &a,
            r,
            "BatchGetSecretValue",
            json!({"Filters": [{"Key": "name", "Values": ["bulk/"]}], "MaxResults": 3}),
        )
        .await;
    assert_eq!(v["SecretValues"].as_array().unwrap().len(), 3);
    assert!(v["NextToken"].is_string());

    // Delete with a recovery window, then restore; force delete frees the name.
    let (s, v) = e
        .sm(
            &a,
            r,
            "DeleteSecret",
            json!({"SecretId": "svc/token", "RecoveryWindowInDays": 3}),
        )
        .await;
    assert_eq!((s, ty(&v)), (400, "InvalidParameterException"));
    let (s, v) = e.sm(&a, r, "DeleteSecret", json!({"SecretId": "svc/token", "RecoveryWindowInDays": 7, "ForceDeleteWithoutRecovery": true})).await;
    assert_eq!((s, ty(&v)), (400, "InvalidParameterException"));
    let (s, v) = e
        .sm(
            &a,
            r,
            "DeleteSecret",
            json!({"SecretId": "svc/token", "RecoveryWindowInDays": 7}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["DeletionDate"].as_f64().unwrap() as i64, NOW + 7 * 86400);
    let (s, v) = e
        .sm(&a, r, "GetSecretValue", json!({"SecretId": "svc/token"}))
        .await;
    assert_eq!((s, ty(&v)), (400, "InvalidRequestException"));
    assert!(msg(&v).contains("marked for deletion"), "{v}");
    let (_, v) = e
        .sm(&a, r, "DescribeSecret", json!({"SecretId": "svc/token"}))
        .await;
    assert!(v["DeletedDate"].is_number(), "{v}");
    let (_, v) = e
        .sm(
            &a,
            r,
            "ListSecrets",
            json!({"Filters": [{"Key": "name", "Values": ["svc/"]}]}),
        )
        .await;
    assert_eq!(v["SecretList"].as_array().unwrap().len(), 0);
    let (_, v) = e.sm(&a, r, "ListSecrets", json!({"IncludePlannedDeletion": true, "Filters": [{"Key": "name", "Values": ["svc/"]}]})).await;
    assert_eq!(v["SecretList"].as_array().unwrap().len(), 1);
    let (s, v) = e
        .sm(
            &a,
            r,
            "CreateSecret",
            json!({"Name": "svc/token", "SecretString": "new"}),
        )
        .await;
    assert_eq!((s, ty(&v)), (400, "InvalidRequestException"));
    let (s, _) = e
        .sm(&a, r, "RestoreSecret", json!({"SecretId": "svc/token"}))
        .await;
    assert_eq!(s, 200);
    let (_, v) = e
        .sm(&a, r, "GetSecretValue", json!({"SecretId": "svc/token"}))
        .await;
    assert_eq!(v["SecretString"], "t4");
    let (s, _) = e
        .sm(
            &a,
            r,
            "DeleteSecret",
            json!({"SecretId": "svc/token", "ForceDeleteWithoutRecovery": true}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = e
        .sm(&a, r, "DescribeSecret", json!({"SecretId": "svc/token"}))
        .await;
    assert_eq!((s, ty(&v)), (400, "ResourceNotFoundException"));
    let (s, _) = e
        .sm(
            &a,
            r,
            "CreateSecret",
            json!({"Name": "svc/token", "SecretString": "new"}),
        )
        .await;
    assert_eq!(s, 200);
    // A scheduled deletion completes when its window has passed.
    e.sm(
        &a,
        r,
        "DeleteSecret",
        json!({"SecretId": "bulk/0", "RecoveryWindowInDays": 7}),
    )
    .await;
    e.clock.advance_secs(7 * 86400 + 1);
    let a = e.user("111111111111", "admin");
    let (s, v) = e
        .sm(&a, r, "DescribeSecret", json!({"SecretId": "bulk/0"}))
        .await;
    assert_eq!((s, ty(&v)), (400, "ResourceNotFoundException"));
}

#[tokio::test]
async fn iam_allow_deny_explicit_deny_and_resource_policies() {
    let e = Local::open(WORLD);
    let r = "us-east-1";
    let reader = e.user("111111111111", "reader");
    let nobody = e.user("111111111111", "nobody");
    let outsider = e.user("222222222222", "outsider");
    let (s, _) = e
        .sm(&reader, r, "GetSecretValue", json!({"SecretId": "app/db"}))
        .await;
    assert_eq!(s, 200);
    // Not in the identity policy: implicit deny.
    let (s, v) = e
        .sm(&reader, r, "DescribeSecret", json!({"SecretId": "app/db"}))
        .await;
    assert_eq!((s, ty(&v)), (400, "AccessDeniedException"));
    assert!(msg(&v).starts_with("User: arn:aws:iam::111111111111:user/reader is not authorized to perform: secretsmanager:DescribeSecret on resource: arn:aws:secretsmanager:us-east-1:111111111111:secret:app/db-"), "{v}");
    assert!(
        msg(&v).ends_with(
            "because no identity-based policy allows the secretsmanager:DescribeSecret action"
        ),
        "{v}"
    );
    // An explicit deny wins over the allow.
    let (s, v) = e
        .sm(
            &reader,
            r,
            "GetSecretValue",
            json!({"SecretId": "app/forbidden"}),
        )
        .await;
    assert_eq!((s, ty(&v)), (400, "AccessDeniedException"));
    assert!(
        msg(&v).ends_with("with an explicit deny in an identity-based policy"),
        "{v}"
    );
    // Outside the allowed resources; missing secrets are denials to those who may not look.
    let (s, v) = e
        .sm(&reader, r, "GetSecretValue", json!({"SecretId": "shared"}))
        .await;
    assert_eq!((s, ty(&v)), (400, "AccessDeniedException"));
    let (_, v) = e
        .sm(&nobody, r, "GetSecretValue", json!({"SecretId": "ghost"}))
        .await;
    assert_eq!(ty(&v), "AccessDeniedException");
    let (_, v) = e.sm(&nobody, r, "ListSecrets", json!({})).await;
    assert_eq!(ty(&v), "AccessDeniedException");
    // A resource policy naming the principal grants in the same account...
    let (s, v) = e
        .sm(&nobody, r, "GetSecretValue", json!({"SecretId": "shared"}))
        .await;
    assert_eq!(s, 200, "{v}");
    // ...and across accounts (by full ARN), together with the caller's identity policy.
    let (_, v) = e
        .sm(
            &e.user("111111111111", "admin"),
            r,
            "DescribeSecret",
            json!({"SecretId": "shared"}),
        )
        .await;
    let shared = v["ARN"].as_str().unwrap().to_owned();
    let (s, v) = e
        .sm(&outsider, r, "GetSecretValue", json!({"SecretId": shared}))
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = e
        .sm(
            &e.user("111111111111", "admin"),
            r,
            "DescribeSecret",
            json!({"SecretId": "app/db"}),
        )
        .await;
    let (s, v) = e
        .sm(
            &outsider,
            r,
            "GetSecretValue",
            json!({"SecretId": v["ARN"]}),
        )
        .await;
    assert_eq!((s, ty(&v)), (400, "AccessDeniedException"));
    assert!(
        msg(&v).ends_with(
            "because no resource-based policy allows the secretsmanager:GetSecretValue action"
        ),
        "{v}"
    );
    // Sessions act with the role's policies and are named by their session ARN.
    let admin = e.user("111111111111", "admin");
    let s1 = e
        .assume(&admin, "arn:aws:iam::111111111111:role/deployer")
        .await;
    let (s, _) = e
        .sm(
            &s1,
            r,
            "GetSecretValue",
            json!({"SecretId": "app/forbidden"}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, v) = e
        .sm(
            &s1,
            r,
            "CreateSecret",
            json!({"Name": "nope", "SecretString": "x"}),
        )
        .await;
    assert_eq!(ty(&v), "AccessDeniedException");
    assert!(msg(&v).starts_with("User: arn:aws:sts::111111111111:assumed-role/deployer/test is not authorized to perform: secretsmanager:CreateSecret"), "{v}");
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (arn, admin) = {
        let e = Local::open_at(dir.path(), WORLD);
        let a = e.user("111111111111", "admin");
        let (s, v) = e
            .sm(
                &a,
                "us-east-1",
                "CreateSecret",
                json!({"Name": "durable", "SecretString": "PLAINTEXT-MARKER-42"}),
            )
            .await;
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
        .sm(
            &admin,
            "us-east-1",
            "GetSecretValue",
            json!({"SecretId": arn}),
        )
        .await;
    assert_eq!(
        (s, v["SecretString"].as_str()),
        (200, Some("PLAINTEXT-MARKER-42")),
        "{v}"
    );
}
