//! An error in AWS's shape: the XML `ErrorResponse` of the query protocol
//! (STS, IAM) or the `{"__type", "Message"}` of JSON 1.1 (Secrets Manager),
//! with AWS's request-id and error-type headers. The model and every handler
//! return it; it knows no handler.

use super::ids::uuid4;
use super::xml::Xml;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The wire protocol a request arrived in, which decides how errors look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// STS: XML `ErrorResponse`.
    Query,
    /// Secrets Manager: `{"__type", "Message"}`.
    Json,
}

/// An error in AWS's shape.
#[derive(Debug, Clone)]
pub struct AwsError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub proto: Proto,
}

impl AwsError {
    pub fn new(proto: Proto, status: u16, code: &str, message: impl Into<String>) -> Self {
        AwsError {
            status,
            code: code.to_owned(),
            message: message.into(),
            proto,
        }
    }

    pub fn internal(proto: Proto, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error while serving an AWS request");
        let code = if proto == Proto::Json {
            "InternalServiceError"
        } else {
            "InternalFailure"
        };
        Self::new(proto, 500, code, "An internal error occurred.")
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let request_id = uuid4().unwrap_or_default();
        let (ctype, body) = match self.proto {
            Proto::Json => (
                "application/x-amz-json-1.1",
                serde_json::to_string(&keyway_wire::aws::JsonError {
                    type_: self.code.clone(),
                    message: self.message,
                })
                .unwrap_or_default(),
            ),
            Proto::Query => {
                let kind = if self.status >= 500 {
                    "Receiver"
                } else {
                    "Sender"
                };
                let mut x = Xml::new();
                x.open("ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"");
                x.open("Error");
                x.leaf("Type", kind);
                x.leaf("Code", &self.code);
                x.leaf("Message", &self.message);
                x.close("Error");
                x.leaf("RequestId", &request_id);
                x.close("ErrorResponse");
                ("text/xml", x.finish())
            }
        };
        let mut r = (status, body).into_response();
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            h.insert("x-amzn-requestid", v);
        }
        if let Ok(v) = HeaderValue::from_str(&self.code) {
            h.insert("x-amzn-errortype", v);
        }
        r
    }
}
