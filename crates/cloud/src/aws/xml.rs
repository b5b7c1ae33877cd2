//! The XML of the query protocol's answers (STS, IAM), written element by element.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

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

/// A successful answer of the query protocol: `<ACTIONResponse xmlns=NS>`
/// holding `<ACTIONResult>` (written by `body`; left out when `result` is
/// false, as for IAM's writes) and the request id, as `text/xml`.
pub fn response(ns: &str, action: &str, result: bool, body: impl FnOnce(&mut Xml)) -> Response {
    let mut x = Xml::new();
    x.open(&format!("{action}Response xmlns=\"{ns}\""));
    if result {
        x.open(&format!("{action}Result"));
        body(&mut x);
        x.close(&format!("{action}Result"));
    }
    x.open("ResponseMetadata");
    x.leaf("RequestId", &super::ids::uuid4().unwrap_or_default());
    x.close("ResponseMetadata");
    x.close(&format!("{action}Response"));
    let mut r = x.finish().into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    r
}
