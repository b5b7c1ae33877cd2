//! proto3's JSON mapping writes 64-bit integers as strings ("12345") but accepts
//! numbers too. These helpers serialise as strings and read either form.

use serde::{Deserialize, Deserializer, Serializer, de};

pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        N(i64),
    }
    match Either::deserialize(d)? {
        Either::N(n) => Ok(n),
        Either::S(s) => s
            .trim()
            .parse()
            .map_err(|_| de::Error::custom(format!("invalid int64 value {s:?}"))),
    }
}

/// The same for `Option<i64>`.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&v.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            S(String),
            N(i64),
        }
        match Option::<Either>::deserialize(d)? {
            None => Ok(None),
            Some(Either::N(n)) => Ok(Some(n)),
            Some(Either::S(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| de::Error::custom(format!("invalid int64 value {s:?}"))),
        }
    }
}
