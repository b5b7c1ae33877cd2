//! The values an expression computes with: null, bool, int, double, string,
//! list and string-keyed map, shared by reference so selecting and passing
//! a large input does not copy it. Here too are the two rules every stage
//! agrees on: how JSON becomes a value, and CEL's equality (an int equals a
//! double of the same number; lists and maps compare element-wise).

use std::collections::BTreeMap;
use std::rc::Rc;

/// A CEL value.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(Rc<str>),
    List(Rc<Vec<Value>>),
    Map(Rc<BTreeMap<String, Value>>),
}

impl Value {
    /// CEL's name of the value's type, as error messages say it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Double(_) => "double",
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }

    /// JSON to CEL. Integers that fit stay `int` (so `assertion.n == 3` works
    /// as written); other numbers are `double`. serde_json bounds nesting at
    /// parse.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Str(s.as_str().into()),
            serde_json::Value::Array(a) => {
                Value::List(Rc::new(a.iter().map(Value::from_json).collect()))
            }
            serde_json::Value::Object(o) => Value::Map(Rc::new(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            )),
        }
    }
}

/// CEL's `==`.
pub(super) fn equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Double(x), Value::Double(y)) => x == y,
        (Value::Int(x), Value::Double(y)) | (Value::Double(y), Value::Int(x)) => {
            (*x as f64) == *y && y.fract() == 0.0 && (*y as i64) == *x
        }
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| equals(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| equals(v, w)))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_integers_stay_int_and_other_numbers_are_double() {
        let v =
            Value::from_json(&json!({"n": 3, "big": 1e300, "u": u64::MAX, "l": [null, true, "s"]}));
        let Value::Map(m) = v else {
            panic!("not a map: {v:?}")
        };
        assert!(matches!(m["n"], Value::Int(3)));
        assert!(matches!(m["big"], Value::Double(d) if d == 1e300));
        assert!(matches!(m["u"], Value::Double(_)));
        let Value::List(l) = &m["l"] else {
            panic!("not a list")
        };
        let names: Vec<_> = l.iter().map(Value::type_name).collect();
        assert_eq!(names, ["null", "bool", "string"]);
    }

    #[test]
    fn equality_is_numeric_across_int_and_double_and_deep() {
        let v = |j| Value::from_json(&j);
        assert!(equals(&Value::Int(1), &Value::Double(1.0)));
        assert!(equals(&Value::Double(1.0), &Value::Int(1)));
        assert!(!equals(&Value::Int(1), &Value::Double(1.5)));
        assert!(!equals(&Value::Double(f64::NAN), &Value::Double(f64::NAN)));
        assert!(equals(
            &v(json!({"a": [1, "x"]})),
            &v(json!({"a": [1.0, "x"]}))
        ));
        assert!(!equals(&v(json!({"a": 1})), &v(json!({"b": 1}))));
        assert!(!equals(&v(json!([1])), &v(json!([1, 2]))));
        assert!(!equals(&Value::Null, &Value::Bool(false)));
    }
}
