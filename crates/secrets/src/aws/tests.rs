//! Error classification, payload decoding, and AWS's SigV4 suite run against
//! [`signature`], the signing path every keyway AWS request goes through.

use super::*;
use aws_sigv4::http_request::{PayloadChecksumKind, SessionTokenMode, UriPathNormalizationMode};
use keyway_testkit::sigv4_suite;

/// A reply with `status`, `body` and the headers given.
fn reply(status: u16, body: &[u8], headers: &[(&str, &str)]) -> Reply {
    let mut h = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        h.insert(
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    Reply {
        status,
        headers: h,
        body: Secret::new(body.to_vec()),
    }
}

/// Classification of a body with no `x-amzn-ErrorType` header, signed at 1_000_000.
fn classify(reference: &str, url: &str, status: u16, body: &[u8]) -> FetchError {
    super::classify(
        reference,
        url,
        &reply(status, body, &[]),
        keyway_auth::AwsSourceKind::Environment,
        1_000_000,
    )
}

#[test]
fn classification_follows_the_error_type() {
    let denied = br#"{"__type":"AccessDeniedException","Message":"User: arn:aws:sts::380214597362:assumed-role/wevox-batch-task/abc is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:ap-northeast-1:380214597362:secret:x-AbCdEf because no identity-based policy allows the secretsmanager:GetSecretValue action"}"#;
    match classify("r", "u", 400, denied) {
        FetchError::AwsAccessDenied { message, .. } => {
            assert!(message.starts_with("User: arn:aws:sts::380214597362:assumed-role/wevox-batch-task/abc is not authorized"));
        }
        other => panic!("{other:?}"),
    }
    let t = |ty: &str, status| {
        classify(
            "r",
            "u",
            status,
            format!(r#"{{"__type":"{ty}","Message":"m"}}"#).as_bytes(),
        )
    };
    assert!(matches!(
        t(
            "com.amazonaws.secretsmanager#ResourceNotFoundException",
            400
        ),
        FetchError::NotFound { .. }
    ));
    assert!(matches!(
        t("DecryptionFailure", 400),
        FetchError::AwsDecryption { .. }
    ));
    assert!(matches!(
        t("InvalidRequestException", 400),
        FetchError::AwsInvalidRequest { .. }
    ));
    for ty in [
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
    ] {
        assert!(matches!(t(ty, 400), FetchError::AwsRefused { .. }), "{ty}");
    }
    // A refused signature keeps both clocks: AWS's Date an hour ahead is skew.
    let r = super::classify(
        "r",
        "u",
        &reply(
            403,
            br#"{"__type":"InvalidSignatureException","message":"Signature expired"}"#,
            &[("date", "Mon, 12 Jan 1970 13:46:40 GMT")],
        ),
        keyway_auth::AwsSourceKind::Environment,
        1_000_000 - 3600,
    );
    let FetchError::AwsRefused { rejection, .. } = &r else {
        panic!("{r:?}")
    };
    assert_eq!(rejection.server_time, Some(1_000_000));
    assert_eq!(rejection.clock_skew(), Some(3600));
    assert!(
        r.to_string()
            .contains("(AWS's clock is 60 min ahead of this machine's)"),
        "{r}"
    );
    assert!(t("ThrottlingException", 400).is_transient());
    assert!(
        super::classify(
            "r",
            "u",
            &reply(
                400,
                br#"{"message":"Rate exceeded"}"#,
                &[(
                    "x-amzn-errortype",
                    "ThrottlingException:http://internal.amazon.com/coral/"
                )]
            ),
            keyway_auth::AwsSourceKind::Environment,
            0,
        )
        .is_transient(),
        "the header names the error when the body does not"
    );
    assert!(t("InternalServiceError", 500).is_transient());
    assert!(classify("r", "u", 503, b"<html/>").is_transient());
    assert!(!t("ValidationException", 400).is_transient());
}

#[test]
fn the_largest_answers_secrets_manager_can_send_fit_the_cap() {
    // 64 KiB of control characters: JSON escapes each as \u00XX.
    let string: String = std::iter::repeat_n('\u{1}', 65_536).collect();
    let binary = STANDARD.encode(vec![0xffu8; 65_536]).replace('/', "\\/");
    let arn = format!(
        "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:{}-AbCdEf",
        "n".repeat(512)
    );
    for (field, value) in [
        ("SecretString", serde_json::to_string(&string).unwrap()),
        ("SecretBinary", format!("\"{binary}\"")),
    ] {
        let body = format!(
            r#"{{"ARN":"{arn}","Name":"{}","VersionId":"{}","{field}":{value},"VersionStages":["AWSCURRENT","AWSPENDING"],"CreatedDate":1.7e9}}"#,
            "n".repeat(512),
            "v".repeat(64)
        );
        assert!(
            body.len() <= GET_SECRET_VALUE_CAP.bytes(),
            "{field}: {} > {}",
            body.len(),
            GET_SECRET_VALUE_CAP
        );
        assert_eq!(decode(body.as_bytes(), "r").unwrap().expose().len(), 65_536);
    }
}

#[test]
fn string_and_binary_payloads() {
    let s = br#"{"ARN":"a","Name":"n","VersionId":"v","SecretString":"hello","VersionStages":["AWSCURRENT"],"CreatedDate":1.0}"#;
    assert_eq!(decode(s, "r").unwrap().expose(), b"hello");
    let b = br#"{"ARN":"a","Name":"n","VersionId":"v","SecretBinary":"AP8=","VersionStages":["AWSCURRENT"],"CreatedDate":1.0}"#;
    assert_eq!(decode(b, "r").unwrap().expose(), &[0u8, 255]);
    let (value, version) = decode_versioned(b, "r").unwrap();
    assert_eq!(
        (value.expose().as_slice(), version.as_deref()),
        (&[0u8, 255][..], Some("v"))
    );
    let n = br#"{"ARN":"a","Name":"n","VersionId":"v","VersionStages":[],"CreatedDate":1.0}"#;
    assert!(matches!(decode(n, "r"), Err(FetchError::Corrupt { .. })));
    // A binary secret asked for as a JSON field: the field extractor says so.
    let e = crate::field::extract(&decode(b, "r").unwrap(), &["k".to_string()]).unwrap_err();
    assert_eq!(e, crate::field::FieldError::Binary { path: "k".into() });
}

type Parsed = (String, String, Vec<(String, String)>, String, Vec<u8>);

/// (method, path-and-query, headers without host, host, body)
fn parse_request(text: &str) -> Option<Parsed> {
    let r = sigv4_suite::parse_request(text).ok()?;
    let host = r.host()?.to_owned();
    let target = r.target();
    let mut headers = r.headers;
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case("host"));
    Some((r.method, target, headers, host, r.body))
}

#[test]
fn aws_sigv4_suite_client_direction() {
    // The suite is found from the repository; a missing suite fails the test.
    let mut ran = 0;
    let mut failures = Vec::new();
    for case in sigv4_suite::cases() {
        let name = case.name.clone();
        let (Some(req), Some(want_sig), Some(want_signed), Some(creq)) = (
            case.file("request.txt"),
            case.file("header-signature.txt"),
            case.file("header-signed-request.txt"),
            case.file("header-canonical-request.txt"),
        ) else {
            continue;
        };
        let ctx = &case.context;
        let (method, target, headers, host, body) = parse_request(&req).expect("request.txt");
        let c = &ctx["credentials"];
        let creds = AwsCredentials {
            access_key_id: c["access_key_id"].as_str().unwrap_or_default().to_owned(),
            secret_access_key: Secret::new(
                c["secret_access_key"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            session_token: c["token"].as_str().map(|t| Secret::new(t.to_owned())),
            expires_at: None,
        };
        let time: SystemTime = ctx["timestamp"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(SystemTime::from)
            .expect("timestamp");
        let mut settings = SigningSettings::default();
        settings.uri_path_normalization_mode = if ctx["normalize"].as_bool().unwrap_or(true) {
            UriPathNormalizationMode::Enabled
        } else {
            UriPathNormalizationMode::Disabled
        };
        settings.payload_checksum_kind = if ctx["sign_body"].as_bool().unwrap_or(false) {
            PayloadChecksumKind::XAmzSha256
        } else {
            PayloadChecksumKind::NoHeader
        };
        // The "-after" case adds the token after signing: it is not part of the canonical request.
        settings.session_token_mode = if creq.contains("x-amz-security-token") {
            SessionTokenMode::Include
        } else {
            SessionTokenMode::Exclude
        };
        let mut all = headers.clone();
        all.push(("host".into(), host.clone()));
        let uri = format!("https://{host}{target}");
        ran += 1;
        let result = signature(
            &method,
            &uri,
            &all,
            &body,
            &creds,
            ctx["region"].as_str().unwrap_or_default(),
            ctx["service"].as_str().unwrap_or_default(),
            time,
            settings,
        );
        if target.contains(' ') {
            // A raw space cannot be in an HTTP request-target: the signer refuses the
            // request (as keyway's HTTP stack would) instead of signing something unsendable.
            if result.is_ok() {
                failures.push(format!(
                    "{name}: a request-target with a raw space was signed"
                ));
            }
            continue;
        }
        match result {
            Ok((added, sig)) => {
                if sig != want_sig.trim() {
                    failures.push(format!("{name}: signature {sig} != {}", want_sig.trim()));
                    continue;
                }
                let auth = added
                    .iter()
                    .find(|(k, _)| k == "authorization")
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("");
                if !want_signed
                    .lines()
                    .any(|l| l.strip_prefix("Authorization:") == Some(auth))
                {
                    failures.push(format!(
                        "{name}: Authorization '{auth}' is not the one in header-signed-request.txt"
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        ran >= 30,
        "only {ran} cases found in {}",
        sigv4_suite::dir().display()
    );
    assert!(
        failures.is_empty(),
        "{} of {ran} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
