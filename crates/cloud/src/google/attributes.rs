//! Workload Identity Federation attribute mapping and attribute condition:
//! the part of a pool provider that turns an external credential (an AWS
//! `GetCallerIdentity` answer, a JWT's claims) into `google.subject`,
//! `google.groups` and `attribute.NAME`, then decides with a CEL condition
//! whether the credential is accepted at all.
//!
//! The expressions are compiled and evaluated by [`crate::cel`]; this file
//! holds what is Google's rather than the language's: which variables each
//! kind of expression sees, the mapping targets, and Google's documented
//! limits: a mapping expression is at most 2048 characters, a condition at
//! most 4096, `google.subject` at most 127 bytes, at most 50 custom
//! attributes named `[a-z0-9_]{1,100}`, and all mapped values together at
//! most 8 KB. The language bounds its own work beyond them (nesting, sizes,
//! a step budget), so a hostile expression or assertion cannot exhaust the
//! stack or hang.
//!
//! Pure: no IO, no clock. Error messages name the expression and the column
//! but never echo assertion values (they come from a subject token).

use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

use crate::cel::{self, Context, Limits, Value, shorten};

/// The result of applying an attribute mapping to an assertion.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mapped {
    pub subject: String,
    pub groups: Vec<String>,
    pub attributes: BTreeMap<String, String>,
}

/// A mapping or condition expression that does not parse or evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    /// The expression (shortened when very long).
    pub expression: String,
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in `{}`", self.message, self.expression)
    }
}

impl std::error::Error for ExprError {}

impl From<cel::Error> for ExprError {
    fn from(e: cel::Error) -> ExprError {
        ExprError {
            message: e.message(),
            expression: e.expression,
        }
    }
}

/// Longest attribute mapping expression Google accepts.
pub const MAX_MAPPING_EXPR: usize = 2048;
/// Longest attribute condition Google accepts.
pub const MAX_CONDITION_EXPR: usize = 4096;
/// Longest mapped `google.subject`, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 127;
/// Most custom attributes a provider may map.
pub const MAX_CUSTOM_ATTRIBUTES: usize = 50;
/// Longest custom attribute name.
pub const MAX_ATTRIBUTE_NAME: usize = 100;
/// Largest total size of all mapped values.
pub const MAX_MAPPED_BYTES: usize = 8 * 1024;

/// How a mapping expression is compiled: Google's length, the language's step budget.
const MAPPING: Limits = Limits::new(MAX_MAPPING_EXPR);
/// How a condition is compiled: Google's length, the language's step budget.
const CONDITION: Limits = Limits::new(MAX_CONDITION_EXPR);
/// The only variable a mapping expression sees.
const MAPPING_VARS: &[&str] = &["assertion"];

const SUBJECT: &str = "google.subject";
const GROUPS: &str = "google.groups";
const ATTRIBUTE_PREFIX: &str = "attribute.";

/// Google's default mapping for an AWS provider without an explicit one:
/// the caller's ARN is the subject, and `attribute.aws_role` is the role ARN
/// (the assumed-role ARN without its session name) or the ARN itself.
pub fn default_aws_mapping() -> BTreeMap<String, String> {
    BTreeMap::from([
        (SUBJECT.to_string(), "assertion.arn".to_string()),
        (
            "attribute.aws_role".to_string(),
            "assertion.arn.contains('assumed-role') \
             ? assertion.arn.extract('{account_arn}assumed-role/') + 'assumed-role/' \
             + assertion.arn.extract('assumed-role/{role_name}/') \
             : assertion.arn"
                .to_string(),
        ),
    ])
}

/// The usual OIDC mapping (Google requires OIDC providers to state one;
/// this is the one the console proposes): the token's `sub` is the subject.
pub fn default_oidc_mapping() -> BTreeMap<String, String> {
    BTreeMap::from([(SUBJECT.to_string(), "assertion.sub".to_string())])
}

/// Validates a mapping at world-load time: targets well-formed,
/// `google.subject` present, expressions within size and parse, referring
/// only to `assertion` and to known functions.
pub fn validate_mapping(mapping: &BTreeMap<String, String>) -> Result<(), ExprError> {
    check_targets(mapping)?;
    for (target, expr) in mapping {
        cel::compile(expr, MAPPING, MAPPING_VARS).map_err(|e| in_target(e.into(), target))?;
    }
    Ok(())
}

/// Validates an attribute condition: size, syntax, known functions, and
/// only the `assertion`, `attribute` and `google` variables.
pub fn validate_condition(expr: &str) -> Result<(), ExprError> {
    cel::compile(expr, CONDITION, CONDITION_VARS)?;
    Ok(())
}

const CONDITION_VARS: &[&str] = &["assertion", "attribute", "google"];

/// Applies the mapping to the assertion. Fails if `google.subject` is
/// missing, empty, not a string or longer than 127 bytes, if a value has
/// the wrong type, or if an expression fails.
pub fn map_attributes(
    mapping: &BTreeMap<String, String>,
    assertion: &serde_json::Value,
) -> Result<Mapped, ExprError> {
    check_targets(mapping)?;
    let ctx = Context::new().with("assertion", Value::from_json(assertion));
    let mut mapped = Mapped::default();
    let mut total = 0usize;
    for (target, text) in mapping {
        let program =
            cel::compile(text, MAPPING, MAPPING_VARS).map_err(|e| in_target(e.into(), target))?;
        let value = program
            .evaluate(&ctx)
            .map_err(|e| in_target(e.into(), target))?;
        let fail = |message: String| in_target(err(text, message), target);
        if target == SUBJECT {
            let Value::Str(s) = &value else {
                return Err(fail(format!(
                    "google.subject must be a string, the expression gave {}",
                    value.type_name()
                )));
            };
            if s.is_empty() {
                return Err(fail("google.subject is empty".into()));
            }
            if s.len() > MAX_SUBJECT_BYTES {
                return Err(fail(format!(
                    "google.subject is {} bytes, more than the {MAX_SUBJECT_BYTES} allowed",
                    s.len()
                )));
            }
            total += s.len();
            mapped.subject = s.to_string();
        } else if target == GROUPS {
            match &value {
                Value::Null => {}
                Value::List(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let Value::Str(g) = item else {
                            return Err(fail(format!(
                                "google.groups must be a list of strings, element {i} is {}",
                                item.type_name()
                            )));
                        };
                        total += g.len();
                        mapped.groups.push(g.to_string());
                    }
                }
                other => {
                    return Err(fail(format!(
                        "google.groups must be a list of strings, the expression gave {}",
                        other.type_name()
                    )));
                }
            }
        } else if let Some(name) = target.strip_prefix(ATTRIBUTE_PREFIX) {
            match &value {
                // A claim that maps to null leaves the attribute unset.
                Value::Null => {}
                Value::Str(s) => {
                    total += s.len();
                    mapped.attributes.insert(name.to_string(), s.to_string());
                }
                other => {
                    return Err(fail(format!(
                        "{target} must be a string, the expression gave {} (convert it with string())",
                        other.type_name()
                    )));
                }
            }
        }
        if total > MAX_MAPPED_BYTES {
            return Err(fail(format!(
                "the mapped attributes exceed {MAX_MAPPED_BYTES} bytes in total"
            )));
        }
    }
    if !mapping.contains_key(SUBJECT) {
        return Err(err(
            "",
            "the attribute mapping has no google.subject".into(),
        ));
    }
    Ok(mapped)
}

/// Evaluates an attribute condition over `assertion`, `attribute` (the
/// mapped custom attributes) and `google` (`subject`, `groups`).
/// `Ok(false)` when it evaluates to false; an error when it fails or gives
/// something other than a bool (both reject the credential).
pub fn condition_holds(
    expr: &str,
    assertion: &serde_json::Value,
    mapped: &Mapped,
) -> Result<bool, ExprError> {
    let program = cel::compile(expr, CONDITION, CONDITION_VARS)?;
    let google = BTreeMap::from([
        (
            "subject".to_string(),
            Value::Str(mapped.subject.as_str().into()),
        ),
        (
            "groups".to_string(),
            Value::List(Rc::new(
                mapped
                    .groups
                    .iter()
                    .map(|g| Value::Str(g.as_str().into()))
                    .collect(),
            )),
        ),
    ]);
    let attribute = mapped
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), Value::Str(v.as_str().into())))
        .collect();
    let ctx = Context::new()
        .with("assertion", Value::from_json(assertion))
        .with("attribute", Value::Map(Rc::new(attribute)))
        .with("google", Value::Map(Rc::new(google)));
    match program.evaluate(&ctx)? {
        Value::Bool(b) => Ok(b),
        other => Err(err(
            expr,
            format!(
                "the attribute condition must evaluate to a bool, it gave {}",
                other.type_name()
            ),
        )),
    }
}

fn check_targets(mapping: &BTreeMap<String, String>) -> Result<(), ExprError> {
    let mut custom = 0;
    for target in mapping.keys() {
        if target == SUBJECT || target == GROUPS {
            continue;
        }
        let Some(name) = target.strip_prefix(ATTRIBUTE_PREFIX) else {
            return Err(err(
                "",
                format!(
                    "attribute mapping target `{}` is not google.subject, google.groups or attribute.NAME",
                    shorten(target)
                ),
            ));
        };
        if name.is_empty()
            || name.len() > MAX_ATTRIBUTE_NAME
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(err(
                "",
                format!(
                    "attribute mapping target `{}`: the name after `attribute.` must be 1 to {MAX_ATTRIBUTE_NAME} characters of [a-z0-9_]",
                    shorten(target)
                ),
            ));
        }
        custom += 1;
    }
    if custom > MAX_CUSTOM_ATTRIBUTES {
        return Err(err(
            "",
            format!(
                "the attribute mapping has {custom} custom attributes, more than the {MAX_CUSTOM_ATTRIBUTES} allowed"
            ),
        ));
    }
    if !mapping.contains_key(SUBJECT) {
        return Err(err(
            "",
            "the attribute mapping has no google.subject".into(),
        ));
    }
    Ok(())
}

fn in_target(mut e: ExprError, target: &str) -> ExprError {
    e.message = format!("attribute mapping for {target}: {}", e.message);
    e
}

fn err(expr: &str, message: String) -> ExprError {
    ExprError {
        expression: shorten(expr),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Evaluates a condition over an assertion with an empty mapping result.
    fn cond(expr: &str, assertion: serde_json::Value) -> Result<bool, ExprError> {
        condition_holds(expr, &assertion, &Mapped::default())
    }

    fn aws_assertion(arn: &str) -> serde_json::Value {
        json!({"arn": arn, "account": "123456789012", "userid": "AROAEXAMPLE:session"})
    }

    #[test]
    fn aws_default_mapping_gives_role_arn_without_session() {
        let m = default_aws_mapping();
        validate_mapping(&m).unwrap();
        let arn = "arn:aws:sts::123456789012:assumed-role/ecs-task/7f3a9c";
        let mapped = map_attributes(&m, &aws_assertion(arn)).unwrap();
        assert_eq!(mapped.subject, arn);
        assert_eq!(
            mapped.attributes["aws_role"],
            "arn:aws:sts::123456789012:assumed-role/ecs-task"
        );
        assert!(mapped.groups.is_empty());
        let holds = |c: &str| condition_holds(c, &aws_assertion(arn), &mapped).unwrap();
        assert!(holds(
            "attribute.aws_role == 'arn:aws:sts::123456789012:assumed-role/ecs-task'"
        ));
        assert!(!holds(
            "attribute.aws_role == 'arn:aws:sts::123456789012:assumed-role/other'"
        ));
        assert!(holds(
            "assertion.arn.startsWith('arn:aws:sts::123456789012:assumed-role/')"
        ));
        assert!(holds(
            "google.subject.endsWith('/7f3a9c') && assertion.account == '123456789012'"
        ));
    }

    #[test]
    fn aws_default_mapping_keeps_a_user_arn_whole() {
        let arn = "arn:aws:iam::123456789012:user/alice";
        let mapped = map_attributes(&default_aws_mapping(), &aws_assertion(arn)).unwrap();
        assert_eq!(mapped.attributes["aws_role"], arn);
    }

    #[test]
    fn oidc_mapping_with_groups_and_custom_attributes() {
        let claims = json!({
            "sub": "repo:acme/api:ref:refs/heads/main",
            "repository": "acme/api",
            "groups": ["devs", "admins"],
            "org": {"team": "Platform"},
            "run_number": 42,
        });
        assert_eq!(
            map_attributes(&default_oidc_mapping(), &claims)
                .unwrap()
                .subject,
            claims["sub"]
        );
        let m = map(&[
            ("google.subject", "assertion.sub"),
            ("google.groups", "assertion.groups"),
            ("attribute.repository", "assertion.repository"),
            ("attribute.team", "assertion.org.team.lowerAscii()"),
            ("attribute.run", "string(assertion.run_number)"),
            ("attribute.owner", "assertion.repository.split('/')[0]"),
        ]);
        validate_mapping(&m).unwrap();
        let mapped = map_attributes(&m, &claims).unwrap();
        assert_eq!(mapped.groups, vec!["devs", "admins"]);
        assert_eq!(mapped.attributes["team"], "platform");
        assert_eq!(mapped.attributes["run"], "42");
        assert_eq!(mapped.attributes["owner"], "acme");
        let holds = |c: &str| condition_holds(c, &claims, &mapped).unwrap();
        assert!(holds("'admins' in google.groups"));
        assert!(!holds("'root' in google.groups"));
        assert!(holds(
            "attribute.repository == \"acme/api\" && assertion.run_number > 40"
        ));
        assert!(holds("google.groups.exists(g, g.startsWith('adm'))"));
        assert!(!holds("google.groups.all(g, g.startsWith('adm'))"));
        assert!(holds("has(assertion.org.team) && !has(assertion.org.lead)"));
        assert!(holds("'team' in assertion.org"));
        assert!(holds(
            "assertion.sub.matches('^repo:acme/[a-z]+:ref:refs/heads/main$')"
        ));
        assert!(holds(
            "size(assertion.groups) == 2 && assertion.groups.size() == 2"
        ));
    }

    #[test]
    fn conditions_reject_false_and_non_bool() {
        let mapped = Mapped {
            subject: "s".into(),
            ..Mapped::default()
        };
        assert!(!condition_holds("google.subject == 't'", &json!({}), &mapped).unwrap());
        let e = condition_holds("google.subject", &json!({}), &mapped).unwrap_err();
        assert!(e.message.contains("must evaluate to a bool"), "{e}");
        let e = condition_holds("attribute.nope == 'x'", &json!({}), &mapped).unwrap_err();
        assert!(e.message.starts_with("no such key: `nope`"), "{e}");
    }

    #[test]
    fn mapping_expressions_see_only_assertion() {
        let e = validate_mapping(&map(&[("google.subject", "google.subject")])).unwrap_err();
        assert!(
            e.message.starts_with(
                "attribute mapping for google.subject: undeclared reference to `google`"
            ),
            "{e}"
        );
        assert_eq!(e.expression, "google.subject");
        // Errors keep their column through the mapping.
        let e = validate_mapping(&map(&[("google.subject", "assertion.a ==")])).unwrap_err();
        assert_eq!(
            e.message,
            "attribute mapping for google.subject: unexpected end of expression at column 15"
        );
    }

    #[test]
    fn mapping_targets_and_results_are_checked() {
        let assertion = json!({"sub": "abc", "n": 5, "long": "x".repeat(128), "g": "admins"});
        let bad = |m: &[(&str, &str)]| validate_mapping(&map(m)).unwrap_err().message;
        assert!(bad(&[("attribute.x", "assertion.sub")]).contains("no google.subject"));
        assert!(
            bad(&[
                ("google.subject", "assertion.sub"),
                ("attribute.Bad", "'x'")
            ])
            .contains("[a-z0-9_]")
        );
        assert!(
            bad(&[("google.subject", "assertion.sub"), ("attribute.", "'x'")])
                .contains("[a-z0-9_]")
        );
        let long_name = format!("attribute.{}", "a".repeat(101));
        assert!(
            bad(&[("google.subject", "assertion.sub"), (&long_name, "'x'")]).contains("1 to 100")
        );
        assert!(
            bad(&[("google.subject", "assertion.sub"), ("google.email", "'x'")])
                .contains("not google.subject")
        );
        let ok_name = format!("attribute.{}", "a_9".repeat(33));
        validate_mapping(&map(&[
            ("google.subject", "assertion.sub"),
            (&ok_name, "'x'"),
        ]))
        .unwrap();
        let too_many: BTreeMap<String, String> = (0..51)
            .map(|i| (format!("attribute.a{i}"), "'x'".to_string()))
            .chain([("google.subject".to_string(), "'s'".to_string())])
            .collect();
        assert!(
            validate_mapping(&too_many)
                .unwrap_err()
                .message
                .contains("51 custom attributes")
        );

        let run = |m: &[(&str, &str)]| map_attributes(&map(m), &assertion);
        let msg = |m: &[(&str, &str)]| run(m).unwrap_err().message;
        assert!(
            msg(&[("google.subject", "assertion.n")])
                .contains("must be a string, the expression gave int")
        );
        assert!(msg(&[("google.subject", "''")]).contains("google.subject is empty"));
        assert_eq!(
            msg(&[("google.subject", "assertion.long")]),
            "attribute mapping for google.subject: google.subject is 128 bytes, more than the 127 allowed"
        );
        assert!(
            msg(&[("google.subject", "assertion.missing")])
                .contains("no such key: `missing` at column 11")
        );
        assert!(
            msg(&[("google.subject", "'s'"), ("google.groups", "assertion.g")])
                .contains("list of strings")
        );
        assert!(
            msg(&[
                ("google.subject", "'s'"),
                ("google.groups", "[assertion.n]")
            ])
            .contains("element 0 is int")
        );
        assert!(
            msg(&[("google.subject", "'s'"), ("attribute.n", "assertion.n")])
                .contains("convert it with string()")
        );
        // A null value leaves the attribute out.
        let m = run(&[("google.subject", "'s'"), ("attribute.n", "null")]).unwrap();
        assert!(m.attributes.is_empty());
        // The 8 KB total.
        let big = json!({"v": "y".repeat(5000)});
        let m = map(&[
            ("google.subject", "'s'"),
            ("attribute.a", "assertion.v"),
            ("attribute.b", "assertion.v"),
        ]);
        assert!(
            map_attributes(&m, &big)
                .unwrap_err()
                .message
                .contains("8192 bytes")
        );
    }

    #[test]
    fn googles_expression_lengths_apply() {
        let e = validate_condition(&"1".repeat(5000)).unwrap_err();
        assert!(
            e.message.contains("5000 characters, more than the 4096"),
            "{e}"
        );
        let e = validate_mapping(&map(&[(
            "google.subject",
            &format!("'{}'", "a".repeat(2100)),
        )]))
        .unwrap_err();
        assert!(e.message.contains("more than the 2048"), "{e}");
        // The limits themselves: a condition of 4096 characters and a mapping
        // expression of 2048 are accepted.
        validate_condition(&format!("'{}' != ''", "a".repeat(4096 - 8))).unwrap();
        validate_mapping(&map(&[(
            "google.subject",
            &format!("'{}'", "a".repeat(2046)),
        )]))
        .unwrap();
        assert!(validate_condition(&format!("'{}' != ''", "a".repeat(4096 - 7))).is_err());
    }

    #[test]
    fn error_messages_never_echo_assertion_values() {
        let secretish = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.sig";
        let a = json!({"tok": secretish, "n": 1});
        // The language's own errors are tested in cel::eval; here, a
        // condition that is not a bool and a mapping that fails.
        let e = cond("assertion.tok", a.clone()).unwrap_err();
        assert!(!e.to_string().contains(secretish), "{e}");
        let m = map(&[(
            "google.subject",
            "assertion.tok + assertion.tok + assertion.tok + assertion.tok",
        )]);
        let e = map_attributes(&m, &a).unwrap_err();
        assert!(!e.to_string().contains(secretish), "{e}");
    }
}
