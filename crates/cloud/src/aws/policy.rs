//! IAM policy evaluation as AWS performs it for the calls the local cloud
//! serves: identity policies (a user's or a role's) and resource policies (a
//! secret's, a role's trust policy). `Action`/`NotAction`, `Resource`/
//! `NotResource` with `*` and `?` wildcards (actions case-insensitive), a
//! `Principal` in resource policies, and the common string/ARN/bool condition
//! operators. An explicit Deny anywhere wins; otherwise something must allow;
//! otherwise the default is deny.
//!
//! Same account: an identity policy's Allow suffices, and so does a resource
//! policy's Allow naming the principal itself (its ARN, its role's ARN, or `*`);
//! a resource policy naming only the account defers to identity policies.
//! Across accounts both sides must allow.

use serde_json::Value;
use std::collections::BTreeMap;

/// The principal making a request, as policies see it.
#[derive(Debug, Clone)]
pub struct Who {
    /// The ARN AWS prints in denials (`arn:aws:sts::A:assumed-role/R/S`, `arn:aws:iam::A:user/U`).
    pub arn: String,
    pub account: String,
    /// ARNs that name this principal in a `Principal` element (user ARN; for a
    /// session, the role ARN and the session ARN).
    pub principal_arns: Vec<String>,
    /// `Service` principal (`ec2.amazonaws.com`), when a service assumes a role.
    pub service: Option<String>,
    /// `Federated` principal (`accounts.google.com`, or an OIDC provider's ARN),
    /// when a web identity assumes a role.
    pub federated: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Nothing allowed; `resource_needed` when the missing Allow is a resource policy's (cross-account).
    ImplicitDeny {
        resource_needed: bool,
    },
    ExplicitDeny {
        in_resource_policy: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    None,
    Deny,
    /// Allowed, naming the principal specifically (true) or only its account (false).
    Allow(bool),
}

/// Checks a policy document's shape; returns the first problem.
pub fn validate(doc: &Value, resource_policy: bool) -> Result<(), String> {
    let stmts =
        statements(doc).ok_or("a policy needs a `Statement` (an object or a list of objects)")?;
    for (i, s) in stmts.iter().enumerate() {
        let o = s
            .as_object()
            .ok_or(format!("Statement[{i}] is not an object"))?;
        match o.get("Effect").and_then(Value::as_str) {
            Some("Allow" | "Deny") => {}
            _ => {
                return Err(format!(
                    "Statement[{i}]: `Effect` must be \"Allow\" or \"Deny\""
                ));
            }
        }
        if o.contains_key("Action") == o.contains_key("NotAction") {
            return Err(format!(
                "Statement[{i}]: set exactly one of `Action` or `NotAction`"
            ));
        }
        if resource_policy && !o.contains_key("Principal") && !o.contains_key("NotPrincipal") {
            return Err(format!(
                "Statement[{i}]: a resource policy statement needs a `Principal`"
            ));
        }
        if !resource_policy && (o.contains_key("Principal") || o.contains_key("NotPrincipal")) {
            return Err(format!(
                "Statement[{i}]: an identity policy cannot name a `Principal`"
            ));
        }
        if o.contains_key("NotPrincipal") {
            return Err(format!(
                "Statement[{i}]: `NotPrincipal` is not supported by the local cloud"
            ));
        }
        if let Some(c) = o.get("Condition") {
            let c = c
                .as_object()
                .ok_or(format!("Statement[{i}]: `Condition` must be an object"))?;
            for op in c.keys() {
                if operator(op).is_none() {
                    return Err(format!(
                        "Statement[{i}]: condition operator `{op}` is not supported by the local cloud"
                    ));
                }
            }
        }
    }
    Ok(())
}

fn statements(doc: &Value) -> Option<Vec<&Value>> {
    match doc.get("Statement")? {
        Value::Array(a) => Some(a.iter().collect()),
        v @ Value::Object(_) => Some(vec![v]),
        _ => None,
    }
}

/// Does any statement of `doc` have a `Condition`? (Only those read the request context.)
pub fn has_conditions(doc: &Value) -> bool {
    match doc.get("Statement") {
        Some(Value::Array(a)) => a.iter().any(|s| s.get("Condition").is_some()),
        Some(s @ Value::Object(_)) => s.get("Condition").is_some(),
        _ => false,
    }
}

/// The strings of a string-or-list element, without collecting them.
fn strs(v: Option<&Value>) -> impl Iterator<Item = &str> {
    let (one, many) = match v {
        Some(Value::String(s)) => (Some(s.as_str()), None),
        Some(Value::Array(a)) => (None, Some(a.iter().filter_map(Value::as_str))),
        _ => (None, None),
    };
    one.into_iter().chain(many.into_iter().flatten())
}

/// The statements of a policy document (an object or a list), without collecting them.
fn stmts(doc: &Value) -> impl Iterator<Item = &Value> {
    let (one, many) = match doc.get("Statement") {
        Some(Value::Array(a)) => (None, Some(a.iter())),
        Some(v @ Value::Object(_)) => (Some(v), None),
        _ => (None, None),
    };
    one.into_iter().chain(many.into_iter().flatten())
}

/// `*` and `?` glob match.
pub fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        // ASCII (every ARN and action): bytes, no allocation; lowercasing
        // ASCII is what Unicode lowercasing does to it.
        let eq = |a: u8, b: u8| {
            if ignore_case {
                a.eq_ignore_ascii_case(&b)
            } else {
                a == b
            }
        };
        return glob_with(pattern.as_bytes(), text.as_bytes(), b'*', b'?', eq);
    }
    let (p, t): (Vec<char>, Vec<char>) = if ignore_case {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    glob_with(&p, &t, '*', '?', |a, b| a == b)
}

fn glob_with<T: Copy + PartialEq>(
    p: &[T],
    t: &[T],
    any: T,
    one: T,
    eq: impl Fn(T, T) -> bool,
) -> bool {
    let (mut pi, mut ti, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == one || eq(p[pi], t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == any {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == any {
        pi += 1;
    }
    pi == p.len()
}

#[derive(Clone, Copy)]
enum Op {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    Bool,
    Null,
}

fn operator(name: &str) -> Option<(Op, bool)> {
    let (base, if_exists) = match name.strip_suffix("IfExists") {
        Some(b) => (b, true),
        None => (name, false),
    };
    let op = match base {
        "StringEquals" | "ArnEquals" => Op::StringEquals,
        "StringNotEquals" | "ArnNotEquals" => Op::StringNotEquals,
        "StringEqualsIgnoreCase" => Op::StringEqualsIgnoreCase,
        "StringNotEqualsIgnoreCase" => Op::StringNotEqualsIgnoreCase,
        "StringLike" | "ArnLike" => Op::StringLike,
        "StringNotLike" | "ArnNotLike" => Op::StringNotLike,
        "Bool" => Op::Bool,
        "Null" => Op::Null,
        _ => return None,
    };
    Some((op, if_exists))
}

fn conditions_hold(cond: Option<&Value>, ctx: &BTreeMap<String, String>) -> bool {
    let Some(Value::Object(ops)) = cond else {
        return true;
    };
    for (name, keys) in ops {
        let Some((op, if_exists)) = operator(name) else {
            return false;
        };
        let Some(keys) = keys.as_object() else {
            return false;
        };
        for (key, wanted) in keys {
            let wanted: Vec<String> = match wanted {
                Value::Array(a) => a.iter().map(scalar).collect(),
                v => vec![scalar(v)],
            };
            // Condition keys are case-insensitive.
            let have = ctx
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str());
            let ok = match (op, have) {
                (Op::Null, h) => wanted.iter().any(|w| (w == "true") == h.is_none()),
                (_, None) if if_exists => true,
                (Op::StringNotEquals | Op::StringNotEqualsIgnoreCase | Op::StringNotLike, None) => {
                    true
                }
                (_, None) => false,
                (Op::StringEquals, Some(h)) => wanted.iter().any(|w| w == h),
                (Op::StringNotEquals, Some(h)) => !wanted.iter().any(|w| w == h),
                (Op::StringEqualsIgnoreCase, Some(h)) => {
                    wanted.iter().any(|w| w.eq_ignore_ascii_case(h))
                }
                (Op::StringNotEqualsIgnoreCase, Some(h)) => {
                    !wanted.iter().any(|w| w.eq_ignore_ascii_case(h))
                }
                (Op::StringLike, Some(h)) => wanted.iter().any(|w| glob(w, h, false)),
                (Op::StringNotLike, Some(h)) => !wanted.iter().any(|w| glob(w, h, false)),
                (Op::Bool, Some(h)) => wanted.iter().any(|w| w.eq_ignore_ascii_case(h)),
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// How a statement's `Principal` names `who`: `None` (not at all), `Some(true)`
/// (specifically) or `Some(false)` (through its account).
fn principal_match(p: Option<&Value>, who: &Who) -> Option<bool> {
    match p? {
        Value::String(s) if s == "*" => Some(true),
        Value::Object(o) => {
            let mut best = None;
            for s in strs(o.get("AWS")) {
                let m = if s == "*" || who.principal_arns.iter().any(|a| a == s) {
                    Some(true)
                } else if s == who.account || s == format!("arn:aws:iam::{}:root", who.account) {
                    Some(false)
                } else {
                    None
                };
                best = best.max(m);
            }
            if who
                .service
                .as_ref()
                .is_some_and(|svc| strs(o.get("Service")).any(|s| s == svc))
            {
                best = Some(true);
            }
            if who
                .federated
                .as_ref()
                .is_some_and(|f| strs(o.get("Federated")).any(|s| s == f))
            {
                best = Some(true);
            }
            best
        }
        _ => None,
    }
}

fn evaluate(
    doc: &Value,
    who: &Who,
    action: &str,
    resource: &str,
    ctx: &BTreeMap<String, String>,
    resource_policy: bool,
) -> Found {
    let mut found = Found::None;
    for s in stmts(doc) {
        let specific = if resource_policy {
            match principal_match(s.get("Principal"), who) {
                Some(sp) => sp,
                None => continue,
            }
        } else {
            true
        };
        let action_hit = match s.get("Action") {
            Some(a) => strs(Some(a)).any(|p| glob(p, action, true)),
            None => !strs(s.get("NotAction")).any(|p| glob(p, action, true)),
        };
        let resource_hit = match (s.get("Resource"), s.get("NotResource")) {
            (Some(r), _) => strs(Some(r)).any(|p| glob(p, resource, false)),
            (None, Some(n)) => !strs(Some(n)).any(|p| glob(p, resource, false)),
            // A resource policy applies to the resource it is attached to.
            (None, None) => resource_policy,
        };
        if !action_hit || !resource_hit || !conditions_hold(s.get("Condition"), ctx) {
            continue;
        }
        match s.get("Effect").and_then(Value::as_str) {
            Some("Deny") => return Found::Deny,
            Some("Allow") => {
                found = match found {
                    Found::Allow(prev) => Found::Allow(prev || specific),
                    _ => Found::Allow(specific),
                }
            }
            _ => {}
        }
    }
    found
}

/// Decides `action` on `resource` (owned by `resource_account`) for `who`.
pub fn decide(
    who: &Who,
    identity: &[Value],
    resource_policy: Option<&Value>,
    resource_account: &str,
    action: &str,
    resource: &str,
    ctx: &BTreeMap<String, String>,
) -> Decision {
    let mut id = Found::None;
    for p in identity {
        match evaluate(p, who, action, resource, ctx, false) {
            Found::Deny => {
                return Decision::ExplicitDeny {
                    in_resource_policy: false,
                };
            }
            Found::Allow(_) => id = Found::Allow(true),
            Found::None => {}
        }
    }
    let res = resource_policy
        .map(|p| evaluate(p, who, action, resource, ctx, true))
        .unwrap_or(Found::None);
    if res == Found::Deny {
        return Decision::ExplicitDeny {
            in_resource_policy: true,
        };
    }
    let id_allows = id != Found::None;
    if who.account == resource_account {
        if id_allows || res == Found::Allow(true) {
            return Decision::Allow;
        }
        Decision::ImplicitDeny {
            resource_needed: false,
        }
    } else {
        match (id_allows, res) {
            (true, Found::Allow(_)) => Decision::Allow,
            (true, _) => Decision::ImplicitDeny {
                resource_needed: true,
            },
            _ => Decision::ImplicitDeny {
                resource_needed: false,
            },
        }
    }
}

/// Decides `sts:AssumeRole` on a role: unlike other resource policies, the
/// trust policy must always allow the caller (a same-account identity policy
/// alone does not suffice); naming only the caller's account defers to its
/// identity policies as well. `action` is `sts:AssumeRole` or
/// `sts:AssumeRoleWithWebIdentity` (whose caller is a `Federated` principal).
pub fn decide_trust(
    who: &Who,
    identity: &[Value],
    trust: &Value,
    role_account: &str,
    role_arn: &str,
    action: &str,
    ctx: &BTreeMap<String, String>,
) -> Decision {
    let mut id_allows = false;
    for p in identity {
        match evaluate(p, who, action, role_arn, ctx, false) {
            Found::Deny => {
                return Decision::ExplicitDeny {
                    in_resource_policy: false,
                };
            }
            Found::Allow(_) => id_allows = true,
            Found::None => {}
        }
    }
    match evaluate(trust, who, action, role_arn, ctx, true) {
        Found::Deny => Decision::ExplicitDeny {
            in_resource_policy: true,
        },
        Found::None => Decision::ImplicitDeny {
            resource_needed: true,
        },
        Found::Allow(true) if who.account == role_account => Decision::Allow,
        Found::Allow(_) if id_allows => Decision::Allow,
        Found::Allow(_) => Decision::ImplicitDeny {
            resource_needed: false,
        },
    }
}

/// AWS's AccessDenied message for a decision.
pub fn denial_message(who: &Who, action: &str, resource: &str, d: Decision) -> String {
    let head = format!(
        "User: {} is not authorized to perform: {action} on resource: {resource}",
        who.arn
    );
    match d {
        Decision::ExplicitDeny {
            in_resource_policy: false,
        } => format!("{head} with an explicit deny in an identity-based policy"),
        Decision::ExplicitDeny {
            in_resource_policy: true,
        } => format!("{head} with an explicit deny in a resource-based policy"),
        Decision::ImplicitDeny {
            resource_needed: true,
        } => format!("{head} because no resource-based policy allows the {action} action"),
        _ => format!("{head} because no identity-based policy allows the {action} action"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn who(acct: &str) -> Who {
        Who {
            arn: format!("arn:aws:iam::{acct}:user/dev"),
            account: acct.into(),
            principal_arns: vec![format!("arn:aws:iam::{acct}:user/dev")],
            service: None,
            federated: None,
        }
    }

    #[test]
    fn globs() {
        assert!(glob(
            "secretsmanager:Get*",
            "secretsmanager:GetSecretValue",
            true
        ));
        assert!(glob(
            "arn:aws:secretsmanager:*:*:secret:db-??????",
            "arn:aws:secretsmanager:us-east-1:1:secret:db-AbCdEf",
            false
        ));
        assert!(!glob("arn:*:secret:db", "arn:x:secret:dbx", false));
        assert!(glob("*", "", false));
        // ASCII compares bytes; anything else goes through Unicode lowercasing, as before.
        assert!(glob(
            "SecretsManager:get*",
            "secretsmanager:GetSecretValue",
            true
        ));
        assert!(!glob(
            "SecretsManager:get*",
            "secretsmanager:GetSecretValue",
            false
        ));
        assert!(glob("tag-é?", "tag-éa", false));
        assert!(glob("TAG-É*", "tag-éx", true));
        assert!(!glob("tag-é", "tag-e", true));
    }

    #[test]
    fn deny_wins_and_default_denies() {
        let ctx = BTreeMap::new();
        let allow = json!({"Statement": [{"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}]});
        let deny = json!({"Statement": {"Effect": "Deny", "Action": "secretsmanager:GetSecretValue", "Resource": "arn:s:*"}});
        let not = json!({"Statement": [{"Effect": "Allow", "NotAction": "secretsmanager:Delete*", "NotResource": "arn:s:y"}]});
        let w = who("111111111111");
        // The identity policies alone, in the caller's account, on `arn:s:x`.
        let decide_on = |identity: &[Value], action: &str| {
            decide(&w, identity, None, "111111111111", action, "arn:s:x", &ctx)
        };
        let get = "secretsmanager:GetSecretValue";
        assert_eq!(
            decide_on(std::slice::from_ref(&allow), get),
            Decision::Allow
        );
        assert_eq!(
            decide_on(&[allow.clone(), deny], get),
            Decision::ExplicitDeny {
                in_resource_policy: false
            }
        );
        assert_eq!(
            decide_on(&[], get),
            Decision::ImplicitDeny {
                resource_needed: false
            }
        );
        assert_eq!(decide_on(std::slice::from_ref(&not), get), Decision::Allow);
        assert_ne!(
            decide_on(&[not], "secretsmanager:DeleteSecret"),
            Decision::Allow
        );
    }

    #[test]
    fn resource_policy_specific_vs_account_and_cross_account() {
        let ctx = BTreeMap::new();
        let w = who("111111111111");
        let by_arn = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:user/dev"}, "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]});
        let by_acct = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "111111111111"}, "Action": "secretsmanager:GetSecretValue"}]});
        assert_eq!(
            decide(
                &w,
                &[],
                Some(&by_arn),
                "111111111111",
                "secretsmanager:GetSecretValue",
                "r",
                &ctx
            ),
            Decision::Allow
        );
        assert_ne!(
            decide(
                &w,
                &[],
                Some(&by_acct),
                "111111111111",
                "secretsmanager:GetSecretValue",
                "r",
                &ctx
            ),
            Decision::Allow
        );
        let allow = json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
        assert_eq!(
            decide(
                &w,
                std::slice::from_ref(&allow),
                None,
                "222222222222",
                "secretsmanager:GetSecretValue",
                "r",
                &ctx
            ),
            Decision::ImplicitDeny {
                resource_needed: true
            }
        );
        assert_eq!(
            decide(
                &w,
                &[allow],
                Some(&by_acct),
                "222222222222",
                "secretsmanager:GetSecretValue",
                "r",
                &ctx
            ),
            Decision::Allow
        );
    }

    #[test]
    fn conditions() {
        let trust = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:user/dev"}, "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "xyz"}}}]});
        let w = who("111111111111");
        let assume = |ctx: &BTreeMap<String, String>| {
            decide(
                &w,
                &[],
                Some(&trust),
                "111111111111",
                "sts:AssumeRole",
                "r",
                ctx,
            )
        };
        let mut ctx = BTreeMap::new();
        assert_ne!(assume(&ctx), Decision::Allow);
        ctx.insert("sts:ExternalId".into(), "xyz".into());
        assert_eq!(assume(&ctx), Decision::Allow);
        assert!(validate(&json!({"Statement": [{"Effect": "Allow", "Action": "*", "Condition": {"Weird": {}}}]}), false).is_err());
    }
}
