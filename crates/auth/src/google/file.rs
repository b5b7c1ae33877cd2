//! Google credentials files (the JSON a user points GOOGLE_APPLICATION_CREDENTIALS
//! at, or gcloud writes as its ADC file), read into typed configurations.
//!
//! Fields are taken out of the parsed JSON one by one so every error names the
//! field at fault, and secret fields (client secret, refresh token, private key,
//! cached token) move straight into [`Secret`]s. Whatever is left of the JSON is
//! wiped when dropped. Types keyway knows but does not handle yet are named with
//! enough detail for the user to recognise their file; unknown types are errors.
//! The `wire` crate's file structs are not used here: they require fields Google's
//! libraries treat as optional, and their plain `String`s would hold secrets.

use super::doc::{Doc, FileError, invalid, unsupported, wipe};
use super::jwt;
use crate::error::ConfigProblem;
use aws_lc_rs::signature::RsaKeyPair;
use keyway_core::{Env, Secret, vars};
use serde_json::Value;

/// Google's token endpoint, and the audience of every JWT-bearer assertion.
pub(crate) const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// What a credentials file holds, ready to use.
pub(crate) enum CredentialsFile {
    AuthorizedUser(AuthorizedUserConfig),
    ServiceAccount(ServiceAccountConfig),
    ExternalAccount(super::external::ExternalAccountConfig),
    /// With its `source_credentials`, a file of their own.
    Impersonated(
        super::impersonated::ImpersonatedConfig,
        Box<CredentialsFile>,
    ),
}

pub(crate) struct AuthorizedUserConfig {
    pub client_id: String,
    pub client_secret: Secret<String>,
    pub refresh_token: Secret<String>,
    pub token_uri: String,
    /// The user's email, which gcloud records in the files it writes.
    pub account: Option<String>,
    pub quota_project_id: Option<String>,
    /// An access token cached in the file (`token` and RFC 3339 `expiry`), as
    /// google-auth reads it.
    pub cached: Option<(Secret<String>, i64)>,
}

pub(crate) struct ServiceAccountConfig {
    pub client_email: String,
    pub private_key_id: Option<String>,
    pub key: RsaKeyPair,
    pub token_uri: String,
    pub project_id: Option<String>,
}

/// The line (from 1) where the object key `"key"` first appears in a JSON
/// document, found by reading the document's tokens (strings are skipped
/// whole, so a value that happens to contain the key's text is not taken for
/// it): the line a user edits to fix that field.
pub(crate) fn line_of_key(doc: &[u8], key: &str) -> Option<usize> {
    let mut line = 1;
    let mut i = 0;
    while i < doc.len() {
        match doc[i] {
            b'\n' => line += 1,
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < doc.len() && doc[j] != b'"' {
                    if doc[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                let text = doc.get(start..j.min(doc.len()))?;
                let mut k = j + 1;
                while k < doc.len() && doc[k].is_ascii_whitespace() {
                    k += 1;
                }
                if text == key.as_bytes() && doc.get(k) == Some(&b':') {
                    return Some(line);
                }
                line += doc[start..j.min(doc.len())]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count();
                i = j;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The line of the first JSON syntax error in a document, if it is not JSON.
pub(crate) fn json_error_line(bytes: &Secret<Vec<u8>>) -> Option<usize> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes.expose())
        .err()
        .map(|e| e.line())
}

/// Parses a credentials file. `env` supplies the token endpoint override for
/// files without a `token_uri`.
pub(crate) fn parse(bytes: &Secret<Vec<u8>>, env: &Env) -> Result<CredentialsFile, FileError> {
    let value: Value = serde_json::from_slice(bytes.expose()).map_err(|e| FileError::Invalid {
        field: None,
        // Syntax errors carry a position, not content.
        problem: ConfigProblem::NotJson(e.to_string()),
    })?;
    let mut doc = match value {
        Value::Object(m) => Doc(m),
        mut other => {
            wipe(&mut other);
            return Err(FileError::Invalid {
                field: None,
                problem: ConfigProblem::NotAnObject,
            });
        }
    };
    parse_doc(&mut doc, env, false)
}

/// A credentials document; `nested` for an impersonated file's `source_credentials`.
fn parse_doc(doc: &mut Doc, env: &Env, nested: bool) -> Result<CredentialsFile, FileError> {
    let kind = doc.required("type")?;
    match kind.as_str() {
        "authorized_user" => authorized_user(doc, env).map(CredentialsFile::AuthorizedUser),
        "service_account" => service_account(doc, env).map(CredentialsFile::ServiceAccount),
        "external_account" => {
            super::external::parse(doc, env).map(CredentialsFile::ExternalAccount)
        }
        "impersonated_service_account" if nested => Err(invalid(
            "source_credentials",
            "the source credentials of an impersonated_service_account file cannot themselves be impersonated_service_account credentials",
        )),
        "impersonated_service_account" => {
            let (cfg, mut source) = super::impersonated::parse(doc, env)?;
            let source = parse_doc(&mut source, env, true).map_err(in_source_credentials)?;
            Ok(CredentialsFile::Impersonated(cfg, Box::new(source)))
        }
        "external_account_authorized_user" => {
            let audience = doc
                .peek("audience")
                .map(|a| format!("workforce pool audience {a}, "));
            Err(unsupported(
                kind.clone(),
                format!(
                    "{}coming with workload identity federation",
                    audience.unwrap_or_default()
                ),
            ))
        }
        "gdch_service_account" => Err(unsupported(
            kind.clone(),
            "Google Distributed Cloud Hosted; not planned".into(),
        )),
        other => Err(FileError::Invalid {
            field: Some("type"),
            problem: ConfigProblem::UnknownType(other.to_owned()),
        }),
    }
}

/// A problem in an impersonated file's `source_credentials`, said so.
fn in_source_credentials(e: FileError) -> FileError {
    match e {
        FileError::Invalid { field, problem } => FileError::Invalid {
            field,
            problem: ConfigProblem::InSourceCredentials(Box::new(problem)),
        },
        FileError::Unsupported { kind, detail } => FileError::Unsupported {
            kind,
            detail: format!("{detail} (as source_credentials)"),
        },
    }
}

/// The token endpoint: the file's `token_uri`, else gcloud's OAuth2 endpoint
/// override + `token`, else Google's.
fn token_uri(doc: &mut Doc, env: &Env) -> Result<String, FileError> {
    let uri = match doc.string("token_uri")? {
        Some(u) => u,
        None => match env.non_empty(vars::CLOUDSDK_API_ENDPOINT_OVERRIDES_OAUTH2) {
            Some(base) => format!("{}/token", base.trim_end_matches('/')),
            None => GOOGLE_TOKEN_URI.to_owned(),
        },
    };
    match url::Url::parse(&uri) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(uri),
        _ => Err(invalid(
            "token_uri",
            format!(
                "token endpoint \"{}\" is not an http(s) URL",
                crate::http::redact_url(&uri)
            ),
        )),
    }
}

fn authorized_user(doc: &mut Doc, env: &Env) -> Result<AuthorizedUserConfig, FileError> {
    let client_id = doc.required("client_id")?;
    let client_secret = doc.required_secret("client_secret")?;
    let refresh_token = doc.required_secret("refresh_token")?;
    let token_uri = token_uri(doc, env)?;
    let account = doc.string("account")?;
    let quota_project_id = doc.string("quota_project_id")?;
    let token = doc.secret("token")?;
    let expiry = doc.string("expiry")?;
    let cached = match (token, expiry) {
        (Some(t), Some(e)) => match e.parse::<jiff::Timestamp>() {
            Ok(ts) => Some((t, ts.as_second())),
            Err(_) => {
                return Err(invalid(
                    "expiry",
                    format!("field \"expiry\" is not an RFC 3339 time: {e:?}"),
                ));
            }
        },
        _ => None,
    };
    Ok(AuthorizedUserConfig {
        client_id,
        client_secret,
        refresh_token,
        token_uri,
        account,
        quota_project_id,
        cached,
    })
}

fn service_account(doc: &mut Doc, env: &Env) -> Result<ServiceAccountConfig, FileError> {
    let client_email = doc.required("client_email")?;
    let private_key = doc.required_secret("private_key")?;
    let key = jwt::rsa_key_from_pem(&private_key)
        .map_err(|r| invalid("private_key", format!("field \"private_key\": {r}")))?;
    let private_key_id = doc.string("private_key_id")?;
    let token_uri = token_uri(doc, env)?;
    let project_id = doc.string("project_id")?;
    Ok(ServiceAccountConfig {
        client_email,
        private_key_id,
        key,
        token_uri,
        project_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str, env: &Env) -> Result<CredentialsFile, FileError> {
        parse(&Secret::new(s.as_bytes().to_vec()), env)
    }

    fn invalid_field(r: Result<CredentialsFile, FileError>) -> (Option<&'static str>, String) {
        match r {
            Err(FileError::Invalid { field, problem }) => (field, problem.to_string()),
            Err(e) => panic!("unexpected {e:?}"),
            Ok(_) => panic!("parsed"),
        }
    }

    #[test]
    fn authorized_user_fixture_gets_the_default_or_overridden_endpoint() {
        let f = include_str!("../../tests/data/authorized_user.json");
        let CredentialsFile::AuthorizedUser(c) = parse_str(f, &Env::new()).unwrap() else {
            panic!()
        };
        assert_eq!(c.token_uri, GOOGLE_TOKEN_URI);
        assert_eq!(c.client_id, "123");
        assert_eq!(c.refresh_token.expose(), "alabalaportocala");
        let env = Env::new().with(
            vars::CLOUDSDK_API_ENDPOINT_OVERRIDES_OAUTH2,
            "http://127.0.0.1:9/",
        );
        let CredentialsFile::AuthorizedUser(c) = parse_str(f, &env).unwrap() else {
            panic!()
        };
        assert_eq!(c.token_uri, "http://127.0.0.1:9/token");
    }

    #[test]
    fn service_account_fixture_parses_its_pkcs1_key() {
        let f = include_str!("../../tests/data/service_account.json");
        let CredentialsFile::ServiceAccount(c) = parse_str(f, &Env::new()).unwrap() else {
            panic!()
        };
        assert_eq!(c.client_email, "service-account@example.com");
        assert_eq!(c.private_key_id.as_deref(), Some("1"));
        assert_eq!(c.token_uri, "https://accounts.google.com/o/oauth2/token");
    }

    #[test]
    fn errors_name_the_field() {
        let env = Env::new();
        assert_eq!(invalid_field(parse_str("{", &env)).0, None);
        assert_eq!(
            invalid_field(parse_str("[]", &env)).1,
            "expected a JSON object"
        );
        assert_eq!(
            invalid_field(parse_str("{}", &env)),
            (Some("type"), "missing field \"type\"".into())
        );
        let (f, r) = invalid_field(parse_str(
            r#"{"type":"authorized_user","client_id":"x","client_secret":"s"}"#,
            &env,
        ));
        assert_eq!(
            (f, r.as_str()),
            (Some("refresh_token"), "missing field \"refresh_token\"")
        );
        let (f, r) = invalid_field(parse_str(
            r#"{"type":"service_account","client_email":"e","private_key":7}"#,
            &env,
        ));
        assert_eq!(
            (f, r.as_str()),
            (
                Some("private_key"),
                "field \"private_key\" must be a string"
            )
        );
        let (f, r) = invalid_field(parse_str(r#"{"type":"nope"}"#, &env));
        assert_eq!(f, Some("type"));
        assert!(r.contains("unknown credentials type \"nope\""), "{r}");
        let (f, _) = invalid_field(parse_str(
            r#"{"type":"authorized_user","client_id":"x","client_secret":"s","refresh_token":"r","token_uri":"file:///x"}"#,
            &env,
        ));
        assert_eq!(f, Some("token_uri"));
    }

    #[test]
    fn unsupported_types_are_described() {
        let env = Env::new();
        let cases = [(
            include_str!("../../tests/data/external_account_authorized_user.json"),
            "workforce pool audience //iam.googleapis.com/locations/global/workforcePools/",
        )];
        for (json, want) in cases {
            match parse_str(json, &env) {
                Err(FileError::Unsupported { detail, .. }) => {
                    assert!(detail.contains(want), "{detail}");
                    assert!(
                        detail.ends_with("coming with workload identity federation"),
                        "{detail}"
                    );
                }
                Err(e) => panic!("{e:?}"),
                Ok(_) => panic!("parsed"),
            }
        }
    }

    #[test]
    fn keys_are_found_on_their_line_not_in_values() {
        let doc = br#"{
  "type": "external_account",
  "note": "the \"token_url\": is here only as text",
  "credential_source": {
    "url": "http://x"
  },
  "token_url": "https://evil.example/v1/token"
}"#;
        assert_eq!(line_of_key(doc, "token_url"), Some(7));
        assert_eq!(line_of_key(doc, "url"), Some(5));
        assert_eq!(line_of_key(doc, "type"), Some(2));
        assert_eq!(line_of_key(doc, "nope"), None);
        assert_eq!(
            json_error_line(&Secret::new(b"{\n\"a\": 1,\n}".to_vec())),
            Some(3)
        );
    }

    #[test]
    fn cached_token_and_expiry_are_read() {
        let f = r#"{"type":"authorized_user","client_id":"x","client_secret":"s","refresh_token":"r","token":"ya29.t","expiry":"2030-01-01T00:00:00Z","account":"u@example.com"}"#;
        let CredentialsFile::AuthorizedUser(c) = parse_str(f, &Env::new()).unwrap() else {
            panic!()
        };
        let (t, exp) = c.cached.unwrap();
        assert_eq!((t.expose().as_str(), exp), ("ya29.t", 1_893_456_000));
        assert_eq!(c.account.as_deref(), Some("u@example.com"));
    }
}
