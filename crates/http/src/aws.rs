//! Reading what AWS answers, in its two shapes: JSON-protocol services
//! (Secrets Manager: `{"__type": "…#Code", "Message": "…"}`, or the
//! `x-amzn-ErrorType` header) and query-protocol ones (STS: XML documents,
//! `<ErrorResponse><Error><Code>…</Code><Message>…</Message></Error>` when they
//! fail). One reader for both, so every AWS call classifies errors the same
//! way, and one list of the error codes the SDKs retry.
//!
//! XML is read with `quick-xml` (entities and character references resolved,
//! namespaces ignored): the documents are small and flat, but a reader that
//! unescapes by string replacement gets `&amp;lt;` wrong.

use quick_xml::events::Event;

/// An AWS error: its code (`AccessDeniedException`, `InvalidIdentityToken`)
/// and message, as the service sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub code: AwsErrorCode,
    pub message: String,
}

impl AwsError {
    /// Whether the SDKs retry this code whatever the status (see
    /// [`AwsErrorCode::is_transient`]).
    pub fn is_transient(&self) -> bool {
        self.code.is_transient()
    }
}

/// The error codes keyway acts on, parsed once where the answer is read; any
/// other code is kept as [`AwsErrorCode::Other`]. AWS spells some codes
/// differently per protocol (query protocol `AccessDenied`/`ExpiredToken`,
/// JSON protocol `AccessDeniedException`/`ExpiredTokenException`): both
/// spellings are kept, so what AWS said can be shown as it said it, and
/// [`AwsErrorCode::kind`] says what they mean.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AwsErrorCode {
    AccessDenied,
    AccessDeniedException,
    ResourceNotFoundException,
    ExpiredToken,
    ExpiredTokenException,
    InvalidClientTokenId,
    UnrecognizedClientException,
    SignatureDoesNotMatch,
    InvalidSignatureException,
    IncompleteSignature,
    MissingAuthenticationToken,
    InvalidIdentityToken,
    IdpCommunicationError,
    IdpRejectedClaim,
    DecryptionFailure,
    InvalidRequestException,
    InvalidParameterException,
    InvalidParameterValue,
    RegionDisabledException,
    /// A throttling or server-side code the SDKs retry (the text is kept).
    Retryable(String),
    /// Any other code (or none: an empty string when the body named none).
    Other(String),
}

/// What an AWS error code means for the caller: each kind is a different fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AwsErrorKind {
    /// IAM said no: a policy must allow the action.
    AccessDenied,
    /// The resource does not exist (or not in this region/account).
    NotFound,
    /// Temporary credentials past their expiry.
    ExpiredCredentials,
    /// The access key id (or key and session token together) is not known to AWS.
    UnknownCredentials,
    /// The signature did not verify (a wrong secret key, or a clock far off).
    BadSignature,
    /// A web identity token STS refused (malformed, expired, wrong audience).
    BadIdentityToken,
    /// KMS could not decrypt.
    Decryption,
    /// The request is not valid in the resource's current state.
    InvalidRequest,
    /// Throttling or a brief server failure.
    Transient,
    Other,
}

impl AwsErrorCode {
    /// Parses a code as AWS sent it (after the `#` and before the `:` of a
    /// JSON `__type` or `x-amzn-ErrorType`).
    pub fn parse(code: &str) -> AwsErrorCode {
        use AwsErrorCode::*;
        match code {
            "AccessDenied" => AccessDenied,
            "AccessDeniedException" => AccessDeniedException,
            "ResourceNotFoundException" => ResourceNotFoundException,
            "ExpiredToken" => ExpiredToken,
            "ExpiredTokenException" => ExpiredTokenException,
            "InvalidClientTokenId" => InvalidClientTokenId,
            "UnrecognizedClientException" => UnrecognizedClientException,
            "SignatureDoesNotMatch" => SignatureDoesNotMatch,
            "InvalidSignatureException" => InvalidSignatureException,
            "IncompleteSignature" | "IncompleteSignatureException" => IncompleteSignature,
            "MissingAuthenticationToken" | "MissingAuthenticationTokenException" => {
                MissingAuthenticationToken
            }
            "InvalidIdentityToken" => InvalidIdentityToken,
            "IDPCommunicationError" => IdpCommunicationError,
            "IDPRejectedClaim" => IdpRejectedClaim,
            "DecryptionFailure" => DecryptionFailure,
            "InvalidRequestException" => InvalidRequestException,
            "InvalidParameterException" => InvalidParameterException,
            "InvalidParameterValue" => InvalidParameterValue,
            "RegionDisabledException" => RegionDisabledException,
            c if is_retryable_code(c) => Retryable(c.to_owned()),
            c => Other(c.to_owned()),
        }
    }

    /// The code as AWS spells it.
    pub fn as_str(&self) -> &str {
        use AwsErrorCode::*;
        match self {
            AccessDenied => "AccessDenied",
            AccessDeniedException => "AccessDeniedException",
            ResourceNotFoundException => "ResourceNotFoundException",
            ExpiredToken => "ExpiredToken",
            ExpiredTokenException => "ExpiredTokenException",
            InvalidClientTokenId => "InvalidClientTokenId",
            UnrecognizedClientException => "UnrecognizedClientException",
            SignatureDoesNotMatch => "SignatureDoesNotMatch",
            InvalidSignatureException => "InvalidSignatureException",
            IncompleteSignature => "IncompleteSignature",
            MissingAuthenticationToken => "MissingAuthenticationToken",
            InvalidIdentityToken => "InvalidIdentityToken",
            IdpCommunicationError => "IDPCommunicationError",
            IdpRejectedClaim => "IDPRejectedClaim",
            DecryptionFailure => "DecryptionFailure",
            InvalidRequestException => "InvalidRequestException",
            InvalidParameterException => "InvalidParameterException",
            InvalidParameterValue => "InvalidParameterValue",
            RegionDisabledException => "RegionDisabledException",
            Retryable(c) | Other(c) => c,
        }
    }

    /// What the code means (see [`AwsErrorKind`]).
    pub fn kind(&self) -> AwsErrorKind {
        use AwsErrorCode::*;
        match self {
            AccessDenied | AccessDeniedException => AwsErrorKind::AccessDenied,
            ResourceNotFoundException => AwsErrorKind::NotFound,
            ExpiredToken | ExpiredTokenException => AwsErrorKind::ExpiredCredentials,
            InvalidClientTokenId | UnrecognizedClientException => AwsErrorKind::UnknownCredentials,
            SignatureDoesNotMatch
            | InvalidSignatureException
            | IncompleteSignature
            | MissingAuthenticationToken => AwsErrorKind::BadSignature,
            InvalidIdentityToken | IdpRejectedClaim => AwsErrorKind::BadIdentityToken,
            DecryptionFailure => AwsErrorKind::Decryption,
            InvalidRequestException
            | InvalidParameterException
            | InvalidParameterValue
            | RegionDisabledException => AwsErrorKind::InvalidRequest,
            IdpCommunicationError | Retryable(_) => AwsErrorKind::Transient,
            Other(_) => AwsErrorKind::Other,
        }
    }

    /// Whether the SDKs retry this code whatever the status: throttling, and
    /// the transient failures they list (as aws-smithy-runtime does, plus STS's
    /// `IDPCommunicationError`, which the SDKs retry for web identity).
    pub fn is_transient(&self) -> bool {
        self.kind() == AwsErrorKind::Transient
    }

    /// Whether AWS named no code at all.
    pub fn is_empty(&self) -> bool {
        matches!(self, AwsErrorCode::Other(c) if c.is_empty())
    }
}

impl std::fmt::Display for AwsErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the SDKs retry `code` whatever the status.
fn is_retryable_code(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "ProvisionedThroughputExceededException"
            | "TransactionInProgressException"
            | "RequestLimitExceeded"
            | "BandwidthLimitExceeded"
            | "LimitExceededException"
            | "RequestThrottled"
            | "SlowDown"
            | "PriorRequestNotComplete"
            | "EC2ThrottledException"
            | "RequestTimeout"
            | "RequestTimeoutException"
            | "InternalFailure"
            | "InternalServiceError"
            | "InternalError"
            | "ServiceUnavailable"
    )
}

/// The error in an AWS answer: JSON (`__type`/`code` and `message`/`Message`,
/// or the `x-amzn-ErrorType` header) or XML (`Code` and `Message`). `None`
/// when the body is neither (a proxy's HTML page, an empty body).
pub fn error_of(body: &[u8], error_type_header: Option<&str>) -> Option<AwsError> {
    let header_code = error_type_header.map(code_of).filter(|c| !c.is_empty());
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) {
        let field = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| map.get(*n).and_then(|v| v.as_str()))
                .map(str::to_owned)
        };
        let code = header_code
            .map(str::to_owned)
            .or_else(|| field(&["__type", "code", "Code"]).map(|t| code_of(&t).to_owned()))?;
        let message = field(&["message", "Message", "errorMessage"]).unwrap_or_default();
        return Some(AwsError {
            code: AwsErrorCode::parse(&code),
            message,
        });
    }
    let text = std::str::from_utf8(body).ok()?;
    if text.trim_start().starts_with('<') {
        let code = xml_text(text, "Code").or_else(|| header_code.map(str::to_owned))?;
        let message = xml_text(text, "Message").unwrap_or_default();
        return Some(AwsError {
            code: AwsErrorCode::parse(&code),
            message,
        });
    }
    header_code.map(|c| AwsError {
        code: AwsErrorCode::parse(c),
        message: String::new(),
    })
}

/// `com.amazonaws.secretsmanager#AccessDeniedException` or
/// `AccessDeniedException:http://internal.amazon.com/…` → `AccessDeniedException`.
fn code_of(t: &str) -> &str {
    let t = t.rsplit('#').next().unwrap_or(t);
    t.split(':').next().unwrap_or(t).trim()
}

/// The text of the first element named `tag` (local name, any namespace),
/// entities resolved and whitespace trimmed; `None` if there is no such
/// element or the document is not well-formed up to it.
pub fn xml_text(doc: &str, tag: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_str(doc);
    let mut depth_in: Option<usize> = None;
    let mut depth = 0usize;
    let mut out = String::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                depth += 1;
                if depth_in.is_none() && e.local_name().as_ref() == tag {
                    depth_in = Some(depth);
                }
            }
            Event::Empty(e) if depth_in.is_none() && e.local_name().as_ref() == tag => {
                return Some(String::new());
            }
            Event::End(_) => {
                if depth_in == Some(depth) {
                    return Some(out.trim().to_owned());
                }
                depth = depth.saturating_sub(1);
            }
            Event::Text(t) if depth_in.is_some() => out.push_str(&t.xml10_content()),
            Event::CData(t) if depth_in.is_some() => out.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if depth_in.is_some() => match r.resolve_char_ref().ok()? {
                Some(c) => out.push(c),
                None => out.push_str(quick_xml::escape::resolve_xml_entity(&r.xml10_content())?),
            },
            Event::Eof => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_by_type_or_header() {
        let e = error_of(
            br#"{"__type":"com.amazonaws.secretsmanager#ResourceNotFoundException","Message":"Secrets Manager can't find the specified secret."}"#,
            None,
        )
        .unwrap();
        assert_eq!(e.code, AwsErrorCode::ResourceNotFoundException);
        assert_eq!(e.code.kind(), AwsErrorKind::NotFound);
        assert_eq!(
            e.message,
            "Secrets Manager can't find the specified secret."
        );
        let e = error_of(
            br#"{"message":"Rate exceeded"}"#,
            Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/"),
        )
        .unwrap();
        assert_eq!(e.code.as_str(), "ThrottlingException");
        assert!(e.is_transient());
        assert_eq!(error_of(b"<html>proxy</html", None), None);
        assert_eq!(error_of(b"", None), None);
    }

    #[test]
    fn xml_errors_and_documents() {
        let doc = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>AccessDenied</Code>
    <Message>Not authorized to perform sts:AssumeRoleWithWebIdentity &amp; more &lt;x&gt; &#233;</Message>
  </Error><RequestId>r</RequestId></ErrorResponse>"#;
        let e = error_of(doc.as_bytes(), None).unwrap();
        assert_eq!(e.code, AwsErrorCode::AccessDenied);
        assert_eq!(e.code.kind(), AwsErrorKind::AccessDenied);
        assert_eq!(
            e.message,
            "Not authorized to perform sts:AssumeRoleWithWebIdentity & more <x> é"
        );
        assert!(!e.is_transient());
        let ok = "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::1:user/u</Arn>\
                  <UserId>AIDA</UserId><Account>1</Account></GetCallerIdentityResult></GetCallerIdentityResponse>";
        assert_eq!(xml_text(ok, "Account").as_deref(), Some("1"));
        assert_eq!(
            xml_text(ok, "Arn").as_deref(),
            Some("arn:aws:iam::1:user/u")
        );
        assert_eq!(xml_text(ok, "Missing"), None);
        // Double escaping is undone once, not twice.
        assert_eq!(xml_text("<a>&amp;lt;</a>", "a").as_deref(), Some("&lt;"));
        assert_eq!(xml_text("<a>unclosed", "a"), None);
    }
}
