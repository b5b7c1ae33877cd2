//! What Google's STS asks of the AWS half for Workload Identity Federation:
//! "who signed this GetCallerIdentity request?", answered exactly as the
//! emulated STS would answer the request itself (signature, clock skew,
//! session token, key status), but computed locally, with no HTTP call.

use super::{Aws, AwsError, Proto, Received};
use crate::cloud::Cloud;
use axum::body::Bytes;
use axum::http::{Method, Uri};
use std::sync::Arc;

/// The caller of a verified GetCallerIdentity request: what AWS's answer says.
#[derive(Debug, Clone, PartialEq)]
pub struct CallerIdentity {
    /// `arn:aws:iam::ACCT:user/NAME` or `arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`.
    pub arn: String,
    pub account: String,
    /// `AIDA…` for a user, `AROA…:SESSION` for a role session.
    pub user_id: String,
}

/// Verifies a serialized `sts:GetCallerIdentity` request (method, path and
/// query as sent, headers as sent, body) as the emulated STS would, and
/// returns the identity it would report. Errors are AWS's (`SignatureDoesNotMatch`,
/// `InvalidClientTokenId`, `ExpiredToken`, …).
pub fn get_caller_identity(
    cloud: Arc<Cloud>,
    method: &str,
    path_and_query: &str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> Result<CallerIdentity, AwsError> {
    let bad = |m: String| AwsError::new(Proto::Query, 400, "InvalidRequest", m);
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| bad(format!("'{method}' is not an HTTP method")))?;
    let uri: Uri = path_and_query
        .parse()
        .map_err(|_| bad("the request URL does not parse".into()))?;
    let aws = Aws::new(cloud).map_err(|e| AwsError::internal(Proto::Query, &e))?;
    let r = Received {
        method,
        uri,
        headers,
        body: Bytes::from(body),
    };
    let caller = aws.authenticate(&r, "sts", Proto::Query)?;
    Ok(CallerIdentity {
        arn: caller.who.arn,
        account: caller.who.account,
        user_id: caller.user_id,
    })
}
