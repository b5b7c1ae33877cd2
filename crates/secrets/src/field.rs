//! Taking one field out of a JSON payload (`?field=db.password`). Strings come
//! out as their text, other values as compact JSON. A binary or non-JSON payload
//! is an error that says so (without showing the payload).

use keyway_core::Secret;

/// Why a field could not be taken from a payload. Names the field's path and
/// the payload's shape, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    #[error("field '{path}' asked for, but the payload is binary, not JSON")]
    Binary { path: String },
    /// serde_json's description, which quotes no input, only positions.
    #[error("field '{path}' asked for, but the payload is not JSON ({reason})")]
    NotJson { path: String, reason: String },
    #[error("the JSON payload has no field '{at}' (fields there: {})", fields.join(", "))]
    NoSuchField { at: String, fields: Vec<String> },
    #[error("'{at}': the value there is an array; use a number")]
    NotAnIndex { at: String },
    #[error("'{at}': the array has {len} elements")]
    OutOfRange { at: String, len: usize },
    #[error("'{at}': the value above it is not an object")]
    NotAnObject { at: String },
}

pub fn extract(payload: &Secret<Vec<u8>>, path: &[String]) -> Result<Secret<Vec<u8>>, FieldError> {
    let text = std::str::from_utf8(payload.expose()).map_err(|_| FieldError::Binary {
        path: path.join("."),
    })?;
    let mut value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| FieldError::NotJson {
            path: path.join("."),
            reason: e.to_string(),
        })?;
    let out = lookup(&value, path);
    value.wipe();
    out
}

fn lookup(value: &serde_json::Value, path: &[String]) -> Result<Secret<Vec<u8>>, FieldError> {
    let mut cur = value;
    for (i, key) in path.iter().enumerate() {
        let at = path[..=i].join(".");
        cur = match cur {
            serde_json::Value::Object(m) => match m.get(key) {
                Some(v) => v,
                None => {
                    let mut fields: Vec<String> = m.keys().cloned().collect();
                    fields.sort_unstable();
                    return Err(FieldError::NoSuchField { at, fields });
                }
            },
            serde_json::Value::Array(a) => {
                let idx: usize = key
                    .parse()
                    .map_err(|_| FieldError::NotAnIndex { at: at.clone() })?;
                a.get(idx)
                    .ok_or(FieldError::OutOfRange { at, len: a.len() })?
            }
            _ => return Err(FieldError::NotAnObject { at }),
        };
    }
    Ok(Secret::new(match cur {
        serde_json::Value::String(s) => s.as_bytes().to_vec(),
        other => serde_json::to_vec(other).unwrap_or_default(),
    }))
}

// serde_json::Value does not implement Zeroize; wipe its strings by hand.
trait Wipe {
    fn wipe(&mut self);
}

impl Wipe for serde_json::Value {
    fn wipe(&mut self) {
        match self {
            serde_json::Value::String(s) => zeroize::Zeroize::zeroize(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(Wipe::wipe),
            serde_json::Value::Object(m) => m.values_mut().for_each(Wipe::wipe),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(b: &[u8]) -> Secret<Vec<u8>> {
        Secret::new(b.to_vec())
    }

    fn p(x: &str) -> Vec<String> {
        x.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn fields() {
        let j =
            s(br#"{"db": {"password": "pw-1", "port": 5432, "hosts": ["a", "b"]}, "flag": true}"#);
        assert_eq!(extract(&j, &p("db.password")).unwrap().expose(), b"pw-1");
        assert_eq!(extract(&j, &p("db.port")).unwrap().expose(), b"5432");
        assert_eq!(extract(&j, &p("db.hosts.1")).unwrap().expose(), b"b");
        assert_eq!(extract(&j, &p("flag")).unwrap().expose(), b"true");
        assert_eq!(
            extract(&j, &p("db.hosts")).unwrap().expose(),
            br#"["a","b"]"#
        );
    }

    #[test]
    fn errors_name_the_field_not_the_value() {
        let j = s(br#"{"user": "admin", "password": "TOPSECRET"}"#);
        let e = extract(&j, &p("pasword")).unwrap_err();
        assert_eq!(
            e,
            FieldError::NoSuchField {
                at: "pasword".into(),
                fields: vec!["password".into(), "user".into()]
            }
        );
        let shown = format!("{e} {e:?}");
        assert!(
            shown.contains("no field 'pasword'") && shown.contains("password, user"),
            "{shown}"
        );
        assert!(!shown.contains("TOPSECRET"));
        let e = extract(&j, &p("user.name")).unwrap_err();
        assert_eq!(
            e,
            FieldError::NotAnObject {
                at: "user.name".into()
            }
        );
        let e = extract(&s(b"\xff\xfe binary"), &p("a")).unwrap_err();
        assert_eq!(e, FieldError::Binary { path: "a".into() });
        let e = extract(&s(b"TOPSECRET plain text"), &p("a")).unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(
            matches!(e, FieldError::NotJson { .. }) && !shown.contains("TOPSECRET"),
            "{shown}"
        );
        let arr = s(br#"{"hosts": ["a"]}"#);
        assert_eq!(
            extract(&arr, &p("hosts.x")).unwrap_err(),
            FieldError::NotAnIndex {
                at: "hosts.x".into()
            }
        );
        assert_eq!(
            extract(&arr, &p("hosts.3")).unwrap_err(),
            FieldError::OutOfRange {
                at: "hosts.3".into(),
                len: 1
            }
        );
    }
}
