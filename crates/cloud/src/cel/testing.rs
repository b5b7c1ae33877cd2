//! Helpers for the stages' tests: compile as an attribute condition is
//! compiled (4096 characters; `assertion`, `attribute`, `google`) and
//! evaluate over an assertion with empty `attribute` and `google` values,
//! so each stage's tests speak the language the way its user does.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::{Context, Error, Limits, Program, Value, compile};

pub const VARS: &[&str] = &["assertion", "attribute", "google"];

/// Compiles `src` as a condition.
pub fn program(src: &str) -> Result<Program<'_>, Error> {
    compile(src, Limits::new(4096), VARS)
}

/// The message of the compile error of `src` (panics if it compiles).
pub fn message(src: &str) -> String {
    match program(src) {
        Ok(_) => panic!("`{src}` compiled"),
        Err(e) => e.message(),
    }
}

/// The value of `src` over `assertion`.
pub fn eval(src: &str, assertion: serde_json::Value) -> Result<Value, Error> {
    let google = BTreeMap::from([
        ("subject".to_string(), Value::Str("".into())),
        ("groups".to_string(), Value::List(Rc::new(Vec::new()))),
    ]);
    let ctx = Context::new()
        .with("assertion", Value::from_json(&assertion))
        .with("attribute", Value::Map(Rc::new(BTreeMap::new())))
        .with("google", Value::Map(Rc::new(google)));
    program(src)?.evaluate(&ctx)
}

/// The bool `src` gives over `assertion` (panics on any other type).
pub fn holds(src: &str, assertion: serde_json::Value) -> Result<bool, Error> {
    match eval(src, assertion)? {
        Value::Bool(b) => Ok(b),
        other => panic!("`{src}` gave a {}", other.type_name()),
    }
}

/// The string `src` gives over `assertion` (panics on any other type).
pub fn string(src: &str, assertion: serde_json::Value) -> String {
    match eval(src, assertion) {
        Ok(Value::Str(s)) => s.to_string(),
        other => panic!("`{src}` gave {other:?}"),
    }
}
