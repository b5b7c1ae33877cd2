//! AWS Secrets Manager references: the ECS `valueFrom` ARN and `aws-sm://`.
//! See the grammar in the parent module.

use super::{Common, RefError, Reference, SecretRef};

/// `arn:PARTITION:secretsmanager:` (any AWS partition).
pub(super) fn is_aws_arn(s: &str) -> bool {
    let mut parts = s.splitn(4, ':');
    matches!((parts.next(), parts.next(), parts.next()), (Some("arn"), Some(p), Some("secretsmanager")) if p.starts_with("aws"))
}

fn valid_region(r: &str) -> bool {
    // us-east-1, ap-northeast-1, us-gov-west-1, cn-north-1, eu-central-2 ...
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|n| !n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit()))
}

fn valid_account(a: &str) -> bool {
    a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())
}

/// Secret names: 1-512 of letters, digits and `/_+=.@-`.
fn valid_name(n: &str) -> bool {
    (1..=512).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
}

/// Staging labels: 1-256 characters, no ':' (it separates ARN fields), '?'
/// or '#' (they end a reference's name and fragment), or control characters.
fn valid_stage(s: &str) -> bool {
    (1..=256).contains(&s.len())
        && !s.contains([':', '?', '#'])
        && !s.chars().any(char::is_control)
        && !s.contains(char::is_whitespace)
}

/// Version ids: 32-64 letters, digits and '-' (Secrets Manager mints UUIDs).
fn valid_version_id(s: &str) -> bool {
    (32..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// 8-4-4-4-12 hex digits.
fn uuid_shaped(s: &str) -> bool {
    let lens: Vec<usize> = s.split('-').map(str::len).collect();
    lens == [8, 4, 4, 4, 12] && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

struct Arn {
    base: String,
    region: String,
    account: String,
    json_key: Option<String>,
    stage: Option<String>,
    id: Option<String>,
}

fn parse_arn(arn: &str) -> Result<Arn, String> {
    let parts: Vec<&str> = arn.split(':').collect();
    const SHAPE: &str = "expected arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[:JSON-KEY:VERSION-STAGE:VERSION-ID]";
    if parts.len() < 7 {
        return Err(format!("too few parts; {SHAPE}"));
    }
    if parts[0] != "arn" || !parts[1].starts_with("aws") {
        return Err(format!("not an AWS ARN; {SHAPE}"));
    }
    if parts[2] != "secretsmanager" {
        return Err(format!(
            "service '{}' is not secretsmanager; {SHAPE}",
            parts[2]
        ));
    }
    if !valid_region(parts[3]) {
        return Err(format!(
            "'{}' is not an AWS region (like us-east-1)",
            parts[3]
        ));
    }
    if !valid_account(parts[4]) {
        return Err(format!(
            "'{}' is not an AWS account id (12 digits)",
            parts[4]
        ));
    }
    if parts[5] != "secret" {
        return Err(format!(
            "resource type '{}' is not 'secret'; {SHAPE}",
            parts[5]
        ));
    }
    if !valid_name(parts[6]) {
        return Err(format!(
            "'{}' is not a secret name (1-512 letters, digits and /_+=.@-)",
            parts[6]
        ));
    }
    let opt = |i: usize| {
        parts
            .get(i)
            .filter(|v| !v.is_empty())
            .map(|v| v.to_string())
    };
    let (json_key, stage, id) = match parts.len() {
        7 => (None, None, None),
        10 => (opt(7), opt(8), opt(9)),
        n => {
            return Err(format!(
                "{n} ':'-separated parts; after NAME come exactly three (':JSON-KEY:VERSION-STAGE:VERSION-ID', each may be empty)"
            ));
        }
    };
    if let Some(s) = stage.as_ref().filter(|s| !valid_stage(s)) {
        return Err(format!("'{s}' is not a version stage"));
    }
    if let Some(v) = id.as_ref().filter(|v| !valid_version_id(v)) {
        return Err(format!(
            "'{v}' is not a version id (32-64 letters, digits and -)"
        ));
    }
    Ok(Arn {
        base: parts[..7].join(":"),
        region: parts[3].to_owned(),
        account: parts[4].to_owned(),
        json_key,
        stage,
        id,
    })
}

/// `base` is the reference without `?options` and `#fragment`.
pub(super) fn parse_aws(
    s: &str,
    base: &str,
    query: Option<&str>,
    fragment: Option<&str>,
) -> Result<SecretRef, RefError> {
    let err = |reason: String| RefError {
        reference: s.to_owned(),
        reason,
    };
    let (mut region, mut account, secret_id, json_key, mut stage, mut id);
    let sm = base.strip_prefix("aws-sm://");
    let arn_text =
        sm.filter(|n| n.starts_with("arn:"))
            .or(if sm.is_none() { Some(base) } else { None });
    if let Some(a) = arn_text {
        let arn = parse_arn(a).map_err(err)?;
        (region, account, secret_id, json_key, stage, id) = (
            Some(arn.region),
            Some(arn.account),
            arn.base,
            arn.json_key,
            arn.stage,
            arn.id,
        );
    } else {
        let name = sm.unwrap_or_default();
        if name.is_empty() {
            return Err(err("expected aws-sm://NAME (a secret name or ARN)".into()));
        }
        if !valid_name(name) {
            return Err(err(format!(
                "'{name}' is not a secret name (1-512 letters, digits and /_+=.@-)"
            )));
        }
        (region, account, secret_id, json_key, stage, id) =
            (None, None, name.to_owned(), None, None, None);
    }
    let set = |slot: &mut Option<String>,
               what: &str,
               v: &str,
               ok: fn(&str) -> bool|
     -> Result<(), RefError> {
        if let Some(old) = slot {
            return Err(err(format!(
                "the {what} is given twice ('{old}' and '{v}')"
            )));
        }
        if !ok(v) {
            return Err(err(format!("'{v}' is not a {what}")));
        }
        *slot = Some(v.to_owned());
        Ok(())
    };
    if let Some(f) = fragment {
        if uuid_shaped(f) {
            set(&mut id, "version id", f, valid_version_id)?;
        } else {
            set(&mut stage, "version stage", f, valid_stage)?;
        }
    }
    let mut common = Common::default();
    for opt in query.unwrap_or("").split('&').filter(|o| !o.is_empty()) {
        let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
        match k {
            "version-stage" | "version_stage" => set(&mut stage, "version stage", v, valid_stage)?,
            "version-id" | "version_id" => set(&mut id, "version id", v, valid_version_id)?,
            "version" => return Err(err("AWS secrets have a version stage or a version id: write version-stage= or version-id=".into())),
            _ => {
                if !common.option(k, v).map_err(err)? {
                    return Err(err(format!("unknown option '{k}' (known: version-stage, version-id, field, destination, filename)")));
                }
            }
        }
    }
    let (field, delivery) = common.finish();
    if json_key.is_some() && field.is_some() {
        return Err(err(
            "the JSON key is given twice (in the ARN and as field=)".into(),
        ));
    }
    if !secret_id.starts_with("arn:") && stage.is_some() && id.is_some() {
        return Err(err("give a version stage or a version id, not both".into()));
    }
    if !secret_id.starts_with("arn:") {
        // Display writes a stage or an id after '#', where a UUID-shaped value reads back as an id.
        if let Some(s) = stage.as_ref().filter(|s| uuid_shaped(s)) {
            return Err(err(format!(
                "version stage '{s}' is shaped like a version id; use version-id= or the ARN form"
            )));
        }
        if let Some(v) = id.as_ref().filter(|v| !uuid_shaped(v)) {
            return Err(err(format!(
                "version id '{v}' is not UUID-shaped; use the ARN form for other ids"
            )));
        }
        region = None;
        account = None;
    }
    Ok(SecretRef {
        source: Reference::AwsSecretsManager {
            region,
            account,
            secret_id,
            json_key,
            version_stage: stage,
            version_id: id,
        },
        field,
        delivery,
    })
}

#[cfg(test)]
mod tests {
    use crate::{Delivery, Reference, SecretRef};

    type Parts<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
    );

    fn aws(r: &SecretRef) -> Parts<'_> {
        let Reference::AwsSecretsManager {
            region,
            account,
            secret_id,
            json_key,
            version_stage,
            version_id,
        } = &r.source
        else {
            panic!("not AWS: {r}")
        };
        (
            region.as_deref(),
            account.as_deref(),
            secret_id,
            json_key.as_deref(),
            version_stage.as_deref(),
            version_id.as_deref(),
        )
    }

    const ID: &str = "3fa85f64-5717-4562-b3fc-2c963f66afa6";

    #[test]
    fn ecs_value_from_arns() {
        let r = SecretRef::parse(
            "arn:aws:secretsmanager:ap-northeast-1:380214597362:secret:wevox/gcp-credentials",
        )
        .unwrap();
        assert_eq!(
            aws(&r),
            (
                Some("ap-northeast-1"),
                Some("380214597362"),
                "arn:aws:secretsmanager:ap-northeast-1:380214597362:secret:wevox/gcp-credentials",
                None,
                None,
                None
            )
        );
        assert_eq!(
            r.to_string(),
            "arn:aws:secretsmanager:ap-northeast-1:380214597362:secret:wevox/gcp-credentials"
        );
        let r = SecretRef::parse(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:my-secret-AbCdEf::AWSPREVIOUS:",
        )
        .unwrap();
        assert_eq!(
            aws(&r).2,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:my-secret-AbCdEf"
        );
        assert_eq!(
            (aws(&r).3, aws(&r).4, aws(&r).5),
            (None, Some("AWSPREVIOUS"), None)
        );
        assert_eq!(
            r.to_string(),
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:my-secret-AbCdEf::AWSPREVIOUS:"
        );
        let s = format!(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db:password::{ID}?filename=pw"
        );
        let r = SecretRef::parse(&s).unwrap();
        assert_eq!((aws(&r).3, aws(&r).5), (Some("password"), Some(ID)));
        assert_eq!(
            r.delivery,
            Delivery::File {
                name: Some("pw".into())
            }
        );
        assert_eq!(
            SecretRef::parse(&r.to_string()).unwrap(),
            r,
            "Display reads back"
        );
        let r =
            SecretRef::parse("arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x")
                .unwrap();
        assert!(r.to_string().starts_with("arn:aws-us-gov:"));
    }

    #[test]
    fn aws_sm_urls() {
        let r = SecretRef::parse("aws-sm://prod/db?field=password").unwrap();
        assert_eq!(aws(&r), (None, None, "prod/db", None, None, None));
        assert_eq!(r.field, Some(vec!["password".to_string()]));
        let r = SecretRef::parse("aws-sm://prod/db#AWSPREVIOUS").unwrap();
        assert_eq!(aws(&r).4, Some("AWSPREVIOUS"));
        assert_eq!(r.to_string(), "aws-sm://prod/db#AWSPREVIOUS");
        let r = SecretRef::parse(&format!("aws-sm://prod/db#{ID}")).unwrap();
        assert_eq!((aws(&r).4, aws(&r).5), (None, Some(ID)));
        assert_eq!(SecretRef::parse(&r.to_string()).unwrap(), r);
        let r =
            SecretRef::parse("aws-sm://prod/db?version-stage=blue&destination=tempfile").unwrap();
        assert_eq!(aws(&r).4, Some("blue"));
        assert_eq!(r.to_string(), "aws-sm://prod/db#blue?destination=tempfile");
        assert_eq!(SecretRef::parse(&r.to_string()).unwrap(), r);
        let r = SecretRef::parse("aws-sm://arn:aws:secretsmanager:eu-west-1:123456789012:secret:k")
            .unwrap();
        assert_eq!(aws(&r).0, Some("eu-west-1"));
    }

    #[test]
    fn malformed_aws_references() {
        for (s, needle) in [
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret",
                "too few parts",
            ),
            (
                "arn:aws:secretsmanager:useast1:123456789012:secret:x",
                "not an AWS region",
            ),
            (
                "arn:aws:secretsmanager:us-east-1:1234:secret:x",
                "not an AWS account id",
            ),
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:parameter:x",
                "not 'secret'",
            ),
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:x:k",
                "exactly three",
            ),
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:x:k::short",
                "not a version id",
            ),
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:x:k::?field=a",
                "given twice",
            ),
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:bad name",
                "not a secret name",
            ),
            ("aws-sm://", "expected aws-sm://NAME"),
            ("aws-sm://x#AWSCURRENT?version-stage=B", "given twice"),
            ("aws-sm://x?version=2", "version-stage= or version-id="),
            ("aws-sm://x?colour=red", "unknown option 'colour'"),
            ("aws-sm://x?filename=../x", "plain file name"),
            // Found by fuzz/secret_ref: a stage holding '?' printed as `#b?c=d`,
            // which reads back as the stage `b` and an option `c`.
            (
                "aws-sm://prod/db?version-stage=b?nation=tempfile",
                "not a version stage",
            ),
            (
                "aws-sm://p?version-stage=ba1b2c3d-4e5f-6a7b-8a9d-0e1f2a3b4c5d",
                "shaped like a version id",
            ),
        ] {
            let e = SecretRef::parse(s).unwrap_err();
            assert!(e.to_string().contains(needle), "{s}: {e}");
        }
        // Another service's ARN is not a Secrets Manager reference at all.
        assert!(SecretRef::parse("arn:aws:ssm:us-east-1:123456789012:parameter/x").is_err());
        assert!(
            SecretRef::parse_implicit("arn:aws:ssm:us-east-1:123456789012:parameter/x")
                .unwrap()
                .is_none()
        );
    }
}
