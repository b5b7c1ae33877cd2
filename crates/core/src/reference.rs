//! Secret references: one grammar for every place a secret can come from.
//!
//! ```text
//! REFERENCE   = SOURCE [ "?" OPTION *( "&" OPTION ) ] [ "#" VERSION ]
//! SOURCE      = "sm://" PROJECT "/" SECRET                         (berglas)
//!             | "gcp:secretmanager:" RESOURCE                       (secrets-init)
//!             | RESOURCE                                            (full resource name)
//!             | "//secretmanager.googleapis.com/" RESOURCE
//! RESOURCE    = "projects/" PROJECT "/secrets/" SECRET [ "/versions/" VERSION ]
//! OPTION      = "version=" VERSION                  a number, "latest", or an alias
//!             | "field=" NAME *( "." NAME )          a field of a JSON payload ("db.password")
//!             | "destination=" ( "env" | "tempfile" )   deliver as a value, or as a file
//!             | "filename=" NAME                      the file's name (implies tempfile)
//! ```
//!
//! The version may be given once (in the resource, after `#`, or as an option);
//! it defaults to `latest`. A reference names a secret; it never contains one, so
//! its [`Display`](std::fmt::Display) form is safe to print in errors and logs.
//!
//! AWS Secrets Manager has two spellings:
//!
//! ```text
//! AWS         = "arn:" PARTITION ":secretsmanager:" REGION ":" ACCOUNT ":secret:" NAME
//!                   [ ":" [JSON-KEY] ":" [VERSION-STAGE] ":" [VERSION-ID] ]   (ECS valueFrom)
//!             | "aws-sm://" ( NAME | ARN ) [ "?" OPTION ... ] [ "#" ( VERSION-ID | VERSION-STAGE ) ]
//! ```
//!
//! After `#`, a UUID-shaped value (8-4-4-4-12 hex digits, what Secrets Manager
//! mints) is a version id and anything else a staging label (`AWSPREVIOUS`);
//! the options `version-stage=` and `version-id=` say it explicitly. The ECS
//! `json-key` is the top-level JSON field (the `field=` option does the same
//! and may not be given as well). The region and account of an `aws-sm://NAME`
//! come from the environment (AWS_REGION) and the credentials.
//!
//! Only the prefixed forms (`sm://`, `gcp:secretmanager:`, `aws-sm://`,
//! `arn:aws…:secretsmanager:`) are recognised in the
//! values of inherited environment variables ([`SecretRef::parse_implicit`]);
//! a bare resource name is a reference only where one is expected.

use std::fmt;

/// Where the secret lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    GcpSecretManager {
        project: String,
        secret: String,
        version: String,
    },
    AwsSecretsManager {
        /// From the ARN; `None` means "the region keyway is configured for".
        region: Option<String>,
        /// From the ARN.
        account: Option<String>,
        /// What GetSecretValue gets as SecretId: a name, or the ARN (partial or full) without the ECS suffix.
        secret_id: String,
        /// The ECS `json-key`: a top-level field of a JSON SecretString.
        json_key: Option<String>,
        version_stage: Option<String>,
        version_id: Option<String>,
    },
}

/// How the value reaches the workload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Delivery {
    /// The value itself (an environment variable, or stdout for `keyway get`).
    #[default]
    Value,
    /// A file on tmpfs; the variable holds its path.
    File { name: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretRef {
    pub source: Reference,
    /// Path of a field in a JSON payload.
    pub field: Option<Vec<String>>,
    pub delivery: Delivery,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid secret reference '{reference}': {reason}")]
pub struct RefError {
    /// The reference as written (it names a secret, it holds no value).
    pub reference: String,
    pub reason: String,
}

fn valid_project(p: &str) -> bool {
    // Project ids (6-30 chars) or numbers.
    !p.is_empty()
        && p.len() <= 30
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_secret(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_version(v: &str) -> bool {
    v == "latest"
        || (!v.is_empty()
            && v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

impl SecretRef {
    /// A reference where one is expected (`--env NAME=REF`, `keyway get REF`).
    pub fn parse(s: &str) -> Result<SecretRef, RefError> {
        let err = |reason: String| RefError {
            reference: s.to_owned(),
            reason,
        };
        let (rest, fragment) = match s.split_once('#') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let (base, query) = match rest.split_once('?') {
            Some((a, b)) => (a, Some(b)),
            None => (rest, None),
        };
        // berglas writes the version after '#', options before or after it.
        let (fragment, query) = match (fragment.and_then(|f| f.split_once('?')), query) {
            (Some((v, q)), None) => (Some(v), Some(q)),
            _ => (fragment, query),
        };
        if base.starts_with("aws-sm://") || is_aws_arn(base) {
            return parse_aws(s, base, query, fragment);
        }
        let (project, secret, mut version) = if let Some(p) = base.strip_prefix("sm://") {
            let (project, secret) = p
                .split_once('/')
                .ok_or_else(|| err("expected sm://PROJECT/SECRET".into()))?;
            (project.to_owned(), secret.to_owned(), None)
        } else {
            let resource = base
                .strip_prefix("gcp:secretmanager:")
                .or_else(|| base.strip_prefix("//secretmanager.googleapis.com/"))
                .unwrap_or(base);
            let parts: Vec<&str> = resource.split('/').collect();
            match parts.as_slice() {
                ["projects", p, "secrets", s] => (p.to_string(), s.to_string(), None),
                ["projects", p, "secrets", s, "versions", v] => {
                    (p.to_string(), s.to_string(), Some(v.to_string()))
                }
                _ => {
                    return Err(err(
                        "expected sm://PROJECT/SECRET, gcp:secretmanager:projects/PROJECT/secrets/SECRET[/versions/VERSION] or projects/PROJECT/secrets/SECRET[/versions/VERSION]".into(),
                    ));
                }
            }
        };
        if !valid_project(&project) {
            return Err(err(format!("'{project}' is not a project id or number")));
        }
        if !valid_secret(&secret) {
            return Err(err(format!(
                "'{secret}' is not a secret name (1-255 letters, digits, - and _)"
            )));
        }
        let mut set_version = |v: &str, how: &str| -> Result<(), RefError> {
            if let Some(old) = &version {
                return Err(err(format!(
                    "the version is given twice ('{old}' and '{v}' {how})"
                )));
            }
            if !valid_version(v) {
                return Err(err(format!(
                    "'{v}' is not a version (a number, 'latest' or an alias)"
                )));
            }
            version = Some(v.to_owned());
            Ok(())
        };
        if let Some(v) = fragment {
            set_version(v, "after '#'")?;
        }
        let mut common = Common::default();
        for opt in query.unwrap_or("").split('&').filter(|o| !o.is_empty()) {
            let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
            match k {
                "version" => set_version(v, "in ?version=")?,
                _ => {
                    if !common.option(k, v).map_err(err)? {
                        return Err(err(format!(
                            "unknown option '{k}' (known: version, field, destination, filename)"
                        )));
                    }
                }
            }
        }
        let (field, delivery) = common.finish();
        Ok(SecretRef {
            source: Reference::GcpSecretManager {
                project,
                secret,
                version: version.unwrap_or_else(|| "latest".into()),
            },
            field,
            delivery,
        })
    }

    /// A reference in an inherited environment variable's value: only the
    /// prefixed forms count. `Ok(None)` means "an ordinary value".
    pub fn parse_implicit(value: &str) -> Result<Option<SecretRef>, RefError> {
        if value.starts_with("sm://")
            || value.starts_with("gcp:secretmanager:")
            || value.starts_with("aws-sm://")
            || is_aws_arn(value)
        {
            SecretRef::parse(value).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The file name to use for file delivery.
    pub fn file_name(&self, fallback: &str) -> String {
        match &self.delivery {
            Delivery::File { name: Some(n) } => n.clone(),
            _ => fallback.to_owned(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::GcpSecretManager {
                project,
                secret,
                version,
            } => write!(f, "projects/{project}/secrets/{secret}/versions/{version}"),
            Reference::AwsSecretsManager {
                secret_id,
                json_key,
                version_stage,
                version_id,
                ..
            } => {
                if secret_id.starts_with("arn:") {
                    f.write_str(secret_id)?;
                    if json_key.is_some() || version_stage.is_some() || version_id.is_some() {
                        let o = |x: &Option<String>| x.clone().unwrap_or_default();
                        write!(f, ":{}:{}:{}", o(json_key), o(version_stage), o(version_id))?;
                    }
                    Ok(())
                } else {
                    write!(f, "aws-sm://{secret_id}")?;
                    // parse_aws refuses a stage and an id together, and an id that is not UUID-shaped after '#'.
                    match (version_stage, version_id) {
                        (_, Some(id)) => write!(f, "#{id}"),
                        (Some(stage), None) => write!(f, "#{stage}"),
                        (None, None) => Ok(()),
                    }
                }
            }
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        let mut sep = '?';
        if let Some(p) = &self.field {
            write!(f, "{sep}field={}", p.join("."))?;
            sep = '&';
        }
        match &self.delivery {
            Delivery::Value => {}
            Delivery::File { name: None } => write!(f, "{sep}destination=tempfile")?,
            Delivery::File { name: Some(n) } => write!(f, "{sep}filename={n}")?,
        }
        Ok(())
    }
}

/// The options every reference takes: `field=`, `destination=`, `filename=`.
#[derive(Default)]
struct Common {
    field: Option<Vec<String>>,
    delivery: Delivery,
    file_name: Option<String>,
}

impl Common {
    /// `Ok(false)`: not one of the common options.
    fn option(&mut self, k: &str, v: &str) -> Result<bool, String> {
        match k {
            "field" => {
                let path: Vec<String> = v.split('.').map(str::to_owned).collect();
                if path.iter().any(String::is_empty) {
                    return Err(format!("field '{v}' has an empty part; write field=a.b.c"));
                }
                if v.contains('#') {
                    return Err(format!(
                        "field '{v}' contains '#', which starts the version"
                    ));
                }
                self.field = Some(path);
            }
            "destination" => match v {
                "env" | "value" => self.delivery = Delivery::Value,
                "tempfile" | "file" => self.delivery = Delivery::File { name: None },
                _ => return Err(format!("destination '{v}' is not 'env' or 'tempfile'")),
            },
            "filename" => {
                if v.is_empty() || v == "." || v == ".." || v.contains(['/', '\0', '#']) {
                    return Err(format!("filename '{v}' must be a plain file name"));
                }
                self.file_name = Some(v.to_owned());
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn finish(self) -> (Option<Vec<String>>, Delivery) {
        match self.file_name {
            Some(n) => (self.field, Delivery::File { name: Some(n) }),
            None => (self.field, self.delivery),
        }
    }
}

mod aws;
use aws::{is_aws_arn, parse_aws};

#[cfg(test)]
mod tests {
    use super::*;

    fn gcp(r: &SecretRef) -> (&str, &str, &str) {
        let Reference::GcpSecretManager {
            project,
            secret,
            version,
        } = &r.source
        else {
            panic!("not a Google reference: {r}")
        };
        (project, secret, version)
    }

    #[test]
    fn the_three_spellings_agree() {
        let a = SecretRef::parse("sm://my-proj/db-pass#3").unwrap();
        let b = SecretRef::parse("gcp:secretmanager:projects/my-proj/secrets/db-pass/versions/3")
            .unwrap();
        let c = SecretRef::parse("projects/my-proj/secrets/db-pass/versions/3").unwrap();
        let d = SecretRef::parse(
            "//secretmanager.googleapis.com/projects/my-proj/secrets/db-pass?version=3",
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(c, d);
        assert_eq!(gcp(&a), ("my-proj", "db-pass", "3"));
        assert_eq!(
            gcp(&SecretRef::parse("sm://my-proj/db-pass").unwrap()).2,
            "latest"
        );
        assert_eq!(a.to_string(), "projects/my-proj/secrets/db-pass/versions/3");
    }

    #[test]
    fn options() {
        let r =
            SecretRef::parse("sm://p-123456/cfg?field=db.password&destination=tempfile#2").unwrap();
        assert_eq!(
            r.field,
            Some(vec!["db".to_string(), "password".to_string()])
        );
        assert_eq!(r.delivery, Delivery::File { name: None });
        assert_eq!(gcp(&r).2, "2");
        // berglas order: version then options.
        let r = SecretRef::parse("sm://p-123456/key#latest?filename=key.json").unwrap();
        assert_eq!(
            r.delivery,
            Delivery::File {
                name: Some("key.json".into())
            }
        );
        assert_eq!(r.file_name("x"), "key.json");
        assert_eq!(
            r.to_string(),
            "projects/p-123456/secrets/key/versions/latest?filename=key.json"
        );
        let r = SecretRef::parse("projects/482915736104/secrets/k").unwrap();
        assert_eq!(gcp(&r).0, "482915736104");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        for (s, needle) in [
            ("sm://proj", "expected sm://PROJECT/SECRET"),
            ("sm://Bad_Proj/x", "not a project id"),
            ("sm://proj-1/bad name", "not a secret name"),
            ("sm://proj-1/x#1?version=2", "given twice"),
            ("projects/p-1/secrets/x/versions/1#2", "given twice"),
            ("sm://proj-1/x?colour=red", "unknown option 'colour'"),
            ("sm://proj-1/x?field=a..b", "empty part"),
            ("sm://proj-1/x?filename=../etc/passwd", "plain file name"),
            // Found by fuzz/secret_ref: these printed as references that read back otherwise.
            ("sm://proj-1/x#latest?filename=a#b", "plain file name"),
            ("sm://proj-1/x#1?field=a#b", "contains '#'"),
            ("sm://proj-1/x?destination=disk", "not 'env' or 'tempfile'"),
            ("hello", "expected"),
        ] {
            let e = SecretRef::parse(s).unwrap_err();
            assert!(e.to_string().contains(needle), "{s}: {e}");
            assert!(
                e.to_string().contains(s),
                "the error names the reference: {e}"
            );
        }
    }

    #[test]
    fn implicit_only_for_prefixed_forms() {
        for (s, prefixed) in [
            ("projects/p-1/secrets/x", false),
            ("hello", false),
            ("sm://p-1/x", true),
            ("gcp:secretmanager:projects/p-1/secrets/x", true),
            ("aws-sm://x", true),
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
                true,
            ),
            ("arn:aws:iam::123456789012:role/x", false),
        ] {
            assert_eq!(
                SecretRef::parse_implicit(s).unwrap().is_some(),
                prefixed,
                "{s}"
            );
        }
        assert!(SecretRef::parse_implicit("sm://nope").is_err());
        assert!(SecretRef::parse_implicit("arn:aws:secretsmanager:nope").is_err());
    }
}
