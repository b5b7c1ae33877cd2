//! The `aws1` subject-token source of `external_account` credentials: a
//! GetCallerIdentity request to AWS STS, signed with SigV4 (the `aws-sigv4`
//! crate) by the workload's AWS credentials, serialised the way Google's STS
//! reads it (AIP-4117) and never sent to AWS: Google's STS replays it.
//!
//! AWS credentials come from keyway's own AWS chain ([`crate::aws_default`]),
//! narrowed (by its typed [`AwsChainOptions::sources`]) to what AIP-4117 allows
//! plus the ECS container endpoint: the environment (`AWS_ACCESS_KEY_ID`…),
//! then the ECS container endpoint (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`/
//! `FULL_URI` with `AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]`), then IMDSv2 at
//! the origin of the file's `url` (or `AWS_EC2_METADATA_SERVICE_ENDPOINT` when
//! set). Shared config/credentials files and web identity are not consulted
//! (so `KEYWAY_AWS_WEB_IDENTITY` and `AWS_ROLE_ARN`, meant for the chain that
//! reads AWS secrets, do not reach in here). The chain's
//! provider caches temporary credentials until shortly before they expire (the
//! ECS endpoint is rate-limited). The region is `AWS_REGION`, then
//! `AWS_DEFAULT_REGION`, then IMDS: the placement the chain already read, else
//! the file's `region_url` (an availability zone, whose last letter is dropped).
//! keyway always speaks IMDSv2 (the session token from the endpoint's
//! `/latest/api/token`), so `imdsv2_session_token_url` is checked but not needed.

use crate::context::AuthContext;
use crate::error::{AuthError, SubjectCause, SubjectFrom};
use crate::http;
use crate::{
    AwsChainOptions, AwsCredentials, AwsCredentialsProvider, AwsSourceKind, ImdsEndpoint,
    aws_default,
};
use aws_sigv4::http_request::SigningSettings;
use keyway_core::Secret;
use keyway_core::vars;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `credential_source` of an aws1 file.
#[derive(Debug, Clone)]
pub(crate) struct AwsConfig {
    pub region_url: Option<String>,
    pub url: Option<String>,
    pub verification_url: String,
}

/// AWS credentials found for an aws1 source, and the region to sign for.
pub(crate) struct AwsSubject {
    provider: AwsCredentialsProvider,
    region: String,
    region_from: String,
    verification_url: String,
}

fn fail(cause: SubjectCause) -> AuthError {
    AuthError::SubjectToken {
        from: SubjectFrom::Aws1,
        cause,
    }
}

fn aws(e: crate::AwsAuthError) -> AuthError {
    fail(SubjectCause::Aws(Box::new(e)))
}

/// `scheme://host[:port]` of a URL.
fn origin_of(raw: &str) -> Option<String> {
    let u = url::Url::parse(raw).ok()?;
    let host = match u.host()? {
        url::Host::Ipv6(ip) => format!("[{ip}]"),
        h => h.to_string(),
    };
    Some(match u.port() {
        Some(p) => format!("{}://{host}:{p}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    })
}

impl AwsSubject {
    /// Runs the AWS chain narrowed to aws1's sources and resolves the region.
    pub(crate) async fn resolve(ctx: &AuthContext, cfg: &AwsConfig) -> Result<Self, AuthError> {
        let imds = match ctx.env.non_empty(vars::AWS_EC2_METADATA_SERVICE_ENDPOINT) {
            Some(e) => Some(e.trim_end_matches('/').to_owned()),
            None => cfg.url.as_deref().and_then(origin_of),
        };
        let options = AwsChainOptions {
            sources: vec![
                AwsSourceKind::Environment,
                AwsSourceKind::EcsContainer,
                AwsSourceKind::Imds,
            ],
            imds: match &imds {
                Some(e) => ImdsEndpoint::At(e.clone()),
                None => ImdsEndpoint::Unavailable(
                    "the credential file's credential_source has no url, and AWS_EC2_METADATA_SERVICE_ENDPOINT is not set".into(),
                ),
            },
            probe_default_imds: false,
            ..AwsChainOptions::default()
        };
        let provider = aws_default(ctx, options).await.map_err(aws)?;
        let (region, region_from) = match provider.region() {
            Some((r, from)) => (r.to_owned(), from.to_owned()),
            _ => match (&cfg.region_url, &imds) {
                (Some(region_url), Some(endpoint)) => {
                    let r = crate::aws::region_of_zone_url(ctx, endpoint, region_url)
                        .await
                        .map_err(aws)?;
                    (r, format!("region_url {}", http::redact_url(region_url)))
                }
                _ => return Err(fail(SubjectCause::NoAwsRegion)),
            },
        };
        Ok(AwsSubject {
            provider,
            region,
            region_from,
            verification_url: cfg.verification_url.clone(),
        })
    }

    /// "aws1 via ECS container credentials endpoint (…), region us-east-2 (AWS_REGION)".
    pub(crate) fn describe(&self) -> String {
        format!(
            "aws1 via {}, region {} ({})",
            self.provider.source(),
            self.region,
            self.region_from
        )
    }

    /// A freshly signed subject token (the credentials are the chain's cached ones).
    pub(crate) async fn subject_token(
        &self,
        ctx: &AuthContext,
        audience: &str,
    ) -> Result<Secret<String>, AuthError> {
        let creds = self.provider.credentials().await.map_err(aws)?;
        let millis = ctx.clock.now_millis().max(0) as u64;
        let time = UNIX_EPOCH + Duration::from_millis(millis);
        subject_token(&creds, &self.region, &self.verification_url, audience, time).map_err(fail)
    }
}

/// The aws1 subject token: the signed `POST` of `verification_url` (with
/// `{region}` filled in), as JSON `{"headers":[{key,value}…],"method","url"}`
/// with keys sorted, then percent-encoded as Python's `urllib.parse.quote`
/// does. Headers come in google-auth's order: Authorization, host, x-amz-date,
/// x-amz-security-token (temporary credentials), and
/// x-goog-cloud-target-resource (the audience, added after signing as
/// google-auth does).
pub(crate) fn subject_token(
    creds: &AwsCredentials,
    region: &str,
    verification_url: &str,
    audience: &str,
    time: SystemTime,
) -> Result<Secret<String>, SubjectCause> {
    let url = verification_url.replace("{region}", region);
    let bad = || SubjectCause::BadVerificationUrl(http::redact_url(&url));
    let parsed = url::Url::parse(&url).map_err(|_| bad())?;
    let host = parsed.host_str().ok_or_else(bad)?.to_owned();
    let host = match parsed.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    };
    let service = host.split('.').next().unwrap_or_default().to_owned();
    let (added, _) = crate::aws::signature(
        "POST",
        &url,
        &[("host".into(), host.clone())],
        b"",
        creds,
        region,
        &service,
        time,
        SigningSettings::default(),
    )
    .map_err(SubjectCause::Signing)?;
    let missing = |h: &str| {
        SubjectCause::Signing(crate::aws::SigningError::Signing(format!(
            "signing produced no {h} header"
        )))
    };
    let find = |name: &str| {
        added
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let mut headers: Vec<(&str, &str)> = vec![
        (
            "Authorization",
            find("authorization").ok_or_else(|| missing("authorization"))?,
        ),
        ("host", host.as_str()),
        (
            "x-amz-date",
            find("x-amz-date").ok_or_else(|| missing("x-amz-date"))?,
        ),
    ];
    if let Some(t) = find("x-amz-security-token") {
        headers.push(("x-amz-security-token", t));
    }
    headers.push(("x-goog-cloud-target-resource", audience));
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut json = String::from("{\"headers\":[");
    for (i, (k, v)) in headers.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!("{{\"key\":{},\"value\":{}}}", q(k), q(v)));
    }
    json.push_str(&format!("],\"method\":\"POST\",\"url\":{}}}", q(&url)));
    let token = Secret::new(quote(&json));
    zeroize::Zeroize::zeroize(&mut json);
    Ok(token)
}

/// Python's `urllib.parse.quote(s, safe='/')`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn constants() -> Value {
        serde_json::from_str(include_str!(
            "../../tests/data/google-auth-test-constants.json"
        ))
        .unwrap()
    }

    fn at(ts: &str) -> SystemTime {
        let s = ts.parse::<jiff::Timestamp>().unwrap().as_second();
        UNIX_EPOCH + Duration::from_secs(s as u64)
    }

    fn creds(c: &Value) -> AwsCredentials {
        AwsCredentials {
            access_key_id: c["access_key_id"].as_str().unwrap().into(),
            secret_access_key: Secret::new(c["secret_access_key"].as_str().unwrap().into()),
            session_token: c["security_token"].as_str().map(|t| Secret::new(t.into())),
            expires_at: None,
        }
    }

    /// The Google-authored signer fixtures (2020-08-11, us-east-2: ec2 GET, sts
    /// POST with and without a session token, dynamodb POST with a body) come
    /// out of aws-sigv4 exactly. The 13 older cases port the 2011 suite, whose
    /// requests carry a `date` header instead of `x-amz-date`; aws-sigv4 always
    /// signs `x-amz-date`, so their expected signatures cannot come out of it
    /// (keyway never signs that form). They must still differ only there:
    /// same credential scope, and `x-amz-date` added to the signed headers.
    #[test]
    fn google_auth_request_signer_fixtures() {
        let c = constants();
        let cases = c["files"]["tests/test_aws.py"]["sigv4_request_signer_fixtures"]["cases"]
            .as_array()
            .unwrap();
        assert_eq!(cases.len(), 17);
        let mut exact = 0;
        for case in cases {
            let input = &case["inputs"];
            let req = &input["request"];
            let url = req["url"].as_str().unwrap();
            let host = url::Url::parse(url).unwrap().host_str().unwrap().to_owned();
            let service = host.split('.').next().unwrap().to_owned();
            let mut headers: Vec<(String, String)> = vec![("host".into(), host.clone())];
            if let Some(h) = req["headers"].as_object() {
                for (k, v) in h {
                    headers.push((k.clone(), v.as_str().unwrap().into()));
                }
            }
            let body = req["data"].as_str().unwrap_or("").as_bytes();
            let region = input["region"].as_str().unwrap();
            let (added, _) = crate::aws::signature(
                req["method"].as_str().unwrap(),
                url,
                &headers,
                body,
                &creds(&input["credentials"]),
                region,
                &service,
                at(input["timestamp_utc"].as_str().unwrap()),
                SigningSettings::default(),
            )
            .unwrap();
            let got = |n: &str| added.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            let want = &case["expected_signed_request"]["headers"];
            let want_auth = want["Authorization"].as_str().unwrap();
            let got_auth = got("authorization").unwrap();
            if want.get("date").is_some() {
                let scope = |a: &str| a.split(", ").next().unwrap().to_owned();
                assert_eq!(scope(&got_auth), scope(want_auth), "{url}");
                assert!(got_auth.contains(";x-amz-date"), "{got_auth}");
                continue;
            }
            assert_eq!(got_auth, want_auth, "{url}");
            assert_eq!(
                got("x-amz-date").as_deref(),
                want["x-amz-date"].as_str(),
                "{url}"
            );
            assert_eq!(
                got("x-amz-security-token").as_deref(),
                want["x-amz-security-token"].as_str(),
                "{url}"
            );
            exact += 1;
        }
        assert_eq!(exact, 4);
    }

    /// The subject token google-auth builds (test_aws.py, make_serialized_aws_signed_request)
    /// for the two Google-authored STS signatures, byte for byte.
    #[test]
    fn subject_token_matches_google_auth_byte_for_byte() {
        let c = constants();
        let k = &c["files"]["tests/test_aws.py"]["constants"];
        let v = |n: &str| k[n]["value"].as_str().unwrap().to_owned();
        let audience = v("AUDIENCE");
        let template = v("CRED_VERIFICATION_URL");
        let time = at("2020-08-11T06:55:22Z");
        for (token, sig) in [
            (
                Some(v("TOKEN")),
                "596aa990b792d763465d73703e684ca273c45536c6d322c31be01a41d02e5b60",
            ),
            (
                None,
                "9e722e5b7bfa163447e2a14df118b45ebd283c5aea72019bdf921d6e7dc01a9a",
            ),
        ] {
            let creds = AwsCredentials {
                access_key_id: v("ACCESS_KEY_ID"),
                secret_access_key: Secret::new(v("SECRET_ACCESS_KEY")),
                session_token: token.clone().map(Secret::new),
                expires_at: None,
            };
            let got = subject_token(&creds, "us-east-2", &template, &audience, time).unwrap();
            // Built independently, the way google-auth does: json.dumps(sort_keys, compact), then quote().
            let signed = if token.is_some() {
                "host;x-amz-date;x-amz-security-token"
            } else {
                "host;x-amz-date"
            };
            let mut headers = vec![
                serde_json::json!({"key": "Authorization", "value": format!("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20200811/us-east-2/sts/aws4_request, SignedHeaders={signed}, Signature={sig}")}),
                serde_json::json!({"key": "host", "value": "sts.us-east-2.amazonaws.com"}),
                serde_json::json!({"key": "x-amz-date", "value": "20200811T065522Z"}),
            ];
            if let Some(t) = &token {
                headers.push(serde_json::json!({"key": "x-amz-security-token", "value": t}));
            }
            headers.push(
                serde_json::json!({"key": "x-goog-cloud-target-resource", "value": audience}),
            );
            let doc = serde_json::json!({
                "headers": headers,
                "method": "POST",
                "url": "https://sts.us-east-2.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
            });
            let want = quote(&serde_json::to_string(&doc).unwrap());
            assert_eq!(got.expose(), &want);
            assert!(
                want.starts_with("%7B%22headers%22%3A%5B%7B%22key%22%3A%22Authorization%22"),
                "{want}"
            );
        }
    }

    #[test]
    fn quote_is_pythons() {
        assert_eq!(quote("a b/c?d=é~_.-"), "a%20b/c%3Fd%3D%C3%A9~_.-");
    }
}
