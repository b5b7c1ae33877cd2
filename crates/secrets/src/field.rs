//! Taking one field out of a JSON payload (`?field=db.password`). Strings come
//! out as their text, other values as compact JSON. A binary or non-JSON payload
//! is an error that says so (without showing the payload).

use keyway_core::Secret;

pub fn extract(payload: &Secret<Vec<u8>>, path: &[String]) -> Result<Secret<Vec<u8>>, String> {
    let text = std::str::from_utf8(payload.expose()).map_err(|_| {
        format!(
            "field '{}' asked for, but the payload is binary, not JSON",
            path.join(".")
        )
    })?;
    // serde_json's error messages quote no input, only positions.
    let mut value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "field '{}' asked for, but the payload is not JSON ({e})",
            path.join(".")
        )
    })?;
    let out = lookup(&value, path);
    value.wipe();
    out
}

fn lookup(value: &serde_json::Value, path: &[String]) -> Result<Secret<Vec<u8>>, String> {
    let mut cur = value;
    for (i, key) in path.iter().enumerate() {
        let here = path[..=i].join(".");
        cur = match cur {
            serde_json::Value::Object(m) => m.get(key).ok_or_else(|| {
                let mut keys: Vec<&str> = m.keys().map(String::as_str).collect();
                keys.sort_unstable();
                format!(
                    "the JSON payload has no field '{here}' (fields there: {})",
                    keys.join(", ")
                )
            })?,
            serde_json::Value::Array(a) => {
                let idx: usize = key
                    .parse()
                    .map_err(|_| format!("'{here}': the value there is an array; use a number"))?;
                a.get(idx)
                    .ok_or_else(|| format!("'{here}': the array has {} elements", a.len()))?
            }
            _ => return Err(format!("'{here}': the value above it is not an object")),
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
        assert!(
            e.contains("no field 'pasword'") && e.contains("password, user"),
            "{e}"
        );
        assert!(!e.contains("TOPSECRET"));
        let e = extract(&j, &p("user.name")).unwrap_err();
        assert!(e.contains("not an object"), "{e}");
        let e = extract(&s(b"\xff\xfe binary"), &p("a")).unwrap_err();
        assert!(e.contains("binary"), "{e}");
        let e = extract(&s(b"TOPSECRET plain text"), &p("a")).unwrap_err();
        assert!(e.contains("not JSON") && !e.contains("TOPSECRET"), "{e}");
    }
}
