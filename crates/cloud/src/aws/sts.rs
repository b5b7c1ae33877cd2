//! STS over the query protocol (`Action=…&Version=2011-06-15`, form body or
//! query string; XML answers): GetCallerIdentity and AssumeRole, with the
//! role's trust policy and the caller's identity policies decided as IAM does.
//! AssumeRoleWithWebIdentity answers a clear refusal until federation exists.

use super::{AwsError, Aws, Caller, Proto, Received, policy};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;

const NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// A tiny XML writer that escapes every text node.
pub struct Xml(String);

impl Default for Xml {
    fn default() -> Self {
        Self::new()
    }
}

impl Xml {
    pub fn new() -> Self {
        Xml(String::new())
    }
    /// `tag` may carry attributes (`Name xmlns="…"`); only the name is closed.
    pub fn open(&mut self, tag: &str) {
        self.0.push('<');
        self.0.push_str(tag);
        self.0.push('>');
    }
    pub fn close(&mut self, tag: &str) {
        self.0.push_str("</");
        self.0.push_str(tag);
        self.0.push('>');
    }
    pub fn leaf(&mut self, tag: &str, text: &str) {
        self.open(tag);
        for c in text.chars() {
            match c {
                '<' => self.0.push_str("&lt;"),
                '>' => self.0.push_str("&gt;"),
                '&' => self.0.push_str("&amp;"),
                '"' => self.0.push_str("&quot;"),
                '\'' => self.0.push_str("&apos;"),
                c => self.0.push(c),
            }
        }
        self.close(tag);
    }
    pub fn finish(self) -> String {
        self.0
    }
}

fn err(status: u16, code: &str, msg: impl Into<String>) -> AwsError {
    AwsError::new(Proto::Query, status, code, msg)
}

fn params(r: &Received) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = r.uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let form = r
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if form || (r.method == axum::http::Method::POST && !r.body.is_empty()) {
        out.extend(form_urlencoded::parse(&r.body).into_owned());
    }
    out
}

fn ok(action: &str, body: impl FnOnce(&mut Xml)) -> Response {
    let mut x = Xml::new();
    x.open(&format!("{action}Response xmlns=\"{NS}\""));
    x.open(&format!("{action}Result"));
    body(&mut x);
    x.close(&format!("{action}Result"));
    x.open("ResponseMetadata");
    x.leaf("RequestId", &super::uuid4().unwrap_or_default());
    x.close("ResponseMetadata");
    x.close(&format!("{action}Response"));
    let mut r = x.finish().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    r
}

pub fn dispatch(aws: &Aws, r: &Received) -> Result<Response, AwsError> {
    let p = params(r);
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(action) = get("Action") else {
        return Err(err(400, "MissingAction", "Missing Action"));
    };
    if let Some(v) = get("Version").filter(|v| *v != "2011-06-15") {
        return Err(err(400, "InvalidAction", format!("Could not find operation {action} for version {v}")));
    }
    if action == "AssumeRoleWithWebIdentity" {
        // Unsigned by design; federation (OIDC providers) is not in the local cloud yet.
        return Err(err(400, "InvalidIdentityToken", "AssumeRoleWithWebIdentity is not supported by the keyway local cloud yet: no OpenID Connect provider is configured."));
    }
    let caller = aws.authenticate(r, "sts", Proto::Query)?;
    match action {
        "GetCallerIdentity" => Ok(ok("GetCallerIdentity", |x| {
            x.leaf("Arn", &caller.who.arn);
            x.leaf("UserId", &caller.user_id);
            x.leaf("Account", &caller.who.account);
        })),
        "AssumeRole" => assume_role(aws, &caller, &get),
        other => Err(err(400, "InvalidAction", format!("Could not find operation {other} for version 2011-06-15"))),
    }
}

fn validation(field: &str, value: &str, constraint: &str) -> AwsError {
    err(400, "ValidationError", format!("1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"))
}

fn assume_role<'a>(aws: &Aws, caller: &Caller, get: &dyn Fn(&str) -> Option<&'a str>) -> Result<Response, AwsError> {
    let role_arn = get("RoleArn").ok_or_else(|| err(400, "MissingParameter", "The request must contain the parameter RoleArn"))?;
    let session = get("RoleSessionName").ok_or_else(|| err(400, "MissingParameter", "The request must contain the parameter RoleSessionName"))?;
    if !(2..=64).contains(&session.len()) {
        return Err(validation("roleSessionName", session, "Member must have length between 2 and 64"));
    }
    if !session.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b)) {
        return Err(validation("roleSessionName", session, "Member must satisfy regular expression pattern: [\\w+=,.@-]*"));
    }
    if role_arn.len() < 20 || !role_arn.starts_with("arn:") {
        return Err(validation("roleArn", role_arn, "Member must have length greater than or equal to 20"));
    }
    if get("Policy").is_some() || get("PolicyArns.member.1.arn").is_some() {
        // Fail closed: a session policy only narrows, and ignoring it would grant more than AWS does.
        return Err(err(400, "ValidationError", "Session policies (Policy, PolicyArns) are not supported by the keyway local cloud."));
    }
    let mut ctx = BTreeMap::new();
    if let Some(e) = get("ExternalId") {
        ctx.insert("sts:ExternalId".to_owned(), e.to_owned());
    }
    ctx.insert("aws:PrincipalArn".to_owned(), caller.who.principal_arns.first().cloned().unwrap_or_default());
    ctx.insert("aws:PrincipalAccount".to_owned(), caller.who.account.clone());
    let st = aws.cloud.store.read();
    let denied = || err(403, "AccessDenied", policy::denial_message(&caller.who, "sts:AssumeRole", role_arn, policy::Decision::ImplicitDeny { resource_needed: false }));
    // AWS answers the same whether the role is missing or the caller may not assume it.
    let Some(role) = st.aws.roles.get(role_arn).cloned() else { return Err(denied()) };
    drop(st);
    let d = policy::decide_trust(&caller.who, &caller.identity_policies, &role.trust, &role.account, &role.arn, &ctx);
    if d != policy::Decision::Allow {
        // The trust policy is the gate: a denial reads as AWS prints it for AssumeRole.
        let m = format!("User: {} is not authorized to perform: sts:AssumeRole on resource: {}", caller.who.arn, role.arn);
        return Err(err(403, "AccessDenied", m));
    }
    let max = if caller.session.is_some() { 3600 } else { role.max_session_secs };
    let duration = match get("DurationSeconds") {
        None => 3600.min(max),
        Some(s) => {
            let d: i64 = s.parse().map_err(|_| validation("durationSeconds", s, "Member must be a number"))?;
            if d < 900 {
                return Err(validation("durationSeconds", s, "Member must have value greater than or equal to 900"));
            }
            if d > max {
                return Err(validation(
                    "durationSeconds",
                    s,
                    &format!("The requested DurationSeconds exceeds the MaxSessionDuration set for this role ({max} seconds)."),
                ));
            }
            d
        }
    };
    let creds = aws.issue(&role.arn, session, duration).map_err(|e| AwsError::internal(Proto::Query, &e))?;
    let assumed = format!("arn:aws:sts::{}:assumed-role/{}/{session}", role.account, role.name);
    Ok(ok("AssumeRole", |x| {
        x.open("AssumedRoleUser");
        x.leaf("AssumedRoleId", &format!("{}:{session}", role.id));
        x.leaf("Arn", &assumed);
        x.close("AssumedRoleUser");
        x.open("Credentials");
        x.leaf("AccessKeyId", &creds.access_key_id);
        x.leaf("SecretAccessKey", &creds.secret_access_key);
        x.leaf("SessionToken", &creds.session_token);
        x.leaf("Expiration", &creds.expiration());
        x.close("Credentials");
    }))
}
