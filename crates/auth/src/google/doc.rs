//! Reading a credentials document field by field: [`Doc`] takes each field
//! out of the parsed JSON (so every error names the field at fault, as a
//! [`FileError`]) and wipes whatever is left when dropped.

use crate::error::ConfigProblem;
use keyway_core::Secret;
use serde_json::{Map, Value};
use zeroize::Zeroize;

/// Why a file could not be used.
#[derive(Debug)]
pub(crate) enum FileError {
    Invalid {
        field: Option<&'static str>,
        problem: ConfigProblem,
    },
    Unsupported {
        kind: String,
        detail: String,
    },
}

/// `field` has an invalid value, described by `reason`.
pub(super) fn invalid(field: &'static str, reason: impl Into<String>) -> FileError {
    FileError::Invalid {
        field: Some(field),
        problem: ConfigProblem::Invalid(reason.into()),
    }
}

/// `field` is required and absent.
pub(super) fn missing(field: &'static str) -> FileError {
    FileError::Invalid {
        field: Some(field),
        problem: ConfigProblem::MissingField(field),
    }
}

/// `field` is not of the JSON type `expected` (e.g. "a string").
pub(super) fn wrong_type(field: &'static str, expected: &'static str) -> FileError {
    FileError::Invalid {
        field: Some(field),
        problem: ConfigProblem::WrongType { field, expected },
    }
}

/// A parsed JSON object whose string values are wiped when it is dropped.
pub(super) struct Doc(pub(super) Map<String, Value>);

impl Drop for Doc {
    fn drop(&mut self) {
        self.0.values_mut().for_each(wipe);
    }
}

/// Overwrites every string inside `v`.
pub(super) fn wipe(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(a) => a.iter_mut().for_each(wipe),
        Value::Object(o) => o.values_mut().for_each(wipe),
        _ => {}
    }
}

impl Doc {
    /// A string field; absent, null and empty all count as missing.
    pub(super) fn string(&mut self, field: &'static str) -> Result<Option<String>, FileError> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(mut other) => {
                wipe(&mut other);
                Err(wrong_type(field, "a string"))
            }
        }
    }

    pub(super) fn required(&mut self, field: &'static str) -> Result<String, FileError> {
        self.string(field)?.ok_or_else(|| missing(field))
    }

    pub(super) fn secret(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Secret<String>>, FileError> {
        Ok(self.string(field)?.map(Secret::new))
    }

    pub(super) fn required_secret(
        &mut self,
        field: &'static str,
    ) -> Result<Secret<String>, FileError> {
        self.required(field).map(Secret::new)
    }

    pub(super) fn peek(&self, field: &str) -> Option<&str> {
        self.0.get(field).and_then(Value::as_str)
    }

    pub(super) fn has(&self, field: &str) -> bool {
        self.0.get(field).is_some_and(|v| !v.is_null())
    }

    /// A nested object, taken out as a document of its own.
    pub(super) fn take_doc(&mut self, field: &'static str) -> Result<Option<Doc>, FileError> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Doc(m))),
            Some(mut other) => {
                wipe(&mut other);
                Err(wrong_type(field, "a JSON object"))
            }
        }
    }

    /// A list of strings; absent and null are empty.
    pub(super) fn string_list(&mut self, field: &'static str) -> Result<Vec<String>, FileError> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) => out.push(s),
                        mut other => {
                            wipe(&mut other);
                            return Err(wrong_type(field, "a list of strings"));
                        }
                    }
                }
                Ok(out)
            }
            Some(mut other) => {
                wipe(&mut other);
                Err(wrong_type(field, "a list of strings"))
            }
        }
    }

    /// An integer field (a JSON number, or a string of digits as some tools write).
    pub(super) fn integer(&mut self, field: &'static str) -> Result<Option<i64>, FileError> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| wrong_type(field, "an integer")),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| {
                invalid(
                    field,
                    format!("field \"{field}\" must be an integer, not {s:?}"),
                )
            }),
            Some(mut other) => {
                wipe(&mut other);
                Err(wrong_type(field, "an integer"))
            }
        }
    }

    /// The string entries of an object field (e.g. HTTP headers), as secrets:
    /// a header can carry a credential.
    pub(super) fn string_map(
        &mut self,
        field: &'static str,
    ) -> Result<Vec<(String, Secret<String>)>, FileError> {
        let Some(mut d) = self.take_doc(field)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (k, v) in std::mem::take(&mut d.0) {
            match v {
                Value::String(s) => out.push((k, Secret::new(s))),
                mut other => {
                    wipe(&mut other);
                    return Err(invalid(
                        field,
                        format!("field \"{field}\": the value of \"{k}\" must be a string"),
                    ));
                }
            }
        }
        Ok(out)
    }
}

pub(super) fn unsupported(kind: String, detail: String) -> FileError {
    FileError::Unsupported { kind, detail }
}
