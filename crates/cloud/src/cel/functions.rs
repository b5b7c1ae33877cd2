//! The functions and methods an expression may call: the table the checker
//! holds calls against (name, call style, arities) and their evaluation:
//! `size`, `startsWith`, `endsWith`, `contains`, `matches` (RE2 syntax on
//! regex-automata's linear-time engine, size-bounded, compiled once per
//! pattern per evaluation), `lowerAscii`, `upperAscii`, `split`, Google's
//! `extract('prefix{name}suffix')`, and the conversions `string`, `int`,
//! `double`. Results are bounded by [`MAX_STRING`] and [`MAX_LIST`];
//! compiling a regex is charged to the step budget.

use std::rc::Rc;

use regex_automata::meta::Regex;

use super::error::{Fail, fail};
use super::limits::{Budget, MAX_LIST, MAX_REGEX_NFA, MAX_STRING};
use super::value::Value;

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Style {
    Global,
    Method,
    Both,
}

pub(super) const FUNCTIONS: &[(&str, Style, &[usize])] = &[
    ("size", Style::Both, &[0, 1]),
    ("startsWith", Style::Method, &[1]),
    ("endsWith", Style::Method, &[1]),
    ("contains", Style::Method, &[1]),
    ("matches", Style::Both, &[1, 2]),
    ("lowerAscii", Style::Method, &[0]),
    ("upperAscii", Style::Method, &[0]),
    ("split", Style::Method, &[1]),
    ("extract", Style::Method, &[1]),
    ("string", Style::Global, &[1]),
    ("int", Style::Global, &[1]),
    ("double", Style::Global, &[1]),
];

/// Regexes compiled so far in one evaluation, by pattern.
#[derive(Default)]
pub(super) struct Regexes(Vec<(Rc<str>, Rc<Regex>)>);

impl Regexes {
    fn get(
        &mut self,
        pattern: &Rc<str>,
        pos: usize,
        budget: &mut Budget,
    ) -> Result<Rc<Regex>, Fail> {
        if let Some((_, re)) = self.0.iter().find(|(p, _)| p == pattern) {
            return Ok(re.clone());
        }
        // Compiling costs far more than a step; so does keeping many.
        budget.charge(1000 + pattern.len() as u64, pos)?;
        let re = Rc::new(regex(pattern).or_else(|m| fail(pos, m))?);
        if self.0.len() < 16 {
            self.0.push((pattern.clone(), re.clone()));
        }
        Ok(re)
    }
}

/// Calls `name` on `vals` (the receiver first when `method`).
pub(super) fn call(
    name: &str,
    method: bool,
    mut vals: Vec<Value>,
    pos: usize,
    budget: &mut Budget,
    regexes: &mut Regexes,
) -> Result<Value, Fail> {
    let types = || vals_types(&vals);
    let no_overload = |t: String| -> Result<Value, Fail> {
        let shape = if method {
            format!("{{{t}}}.{name}()")
        } else {
            format!("{name}({t})")
        };
        fail(pos, format!("no such overload: {shape}"))
    };
    match (name, vals.as_slice()) {
        ("size", [v]) => match v {
            Value::Str(s) => Ok(Value::Int(s.chars().count() as i64)),
            Value::List(l) => Ok(Value::Int(l.len() as i64)),
            Value::Map(m) => Ok(Value::Int(m.len() as i64)),
            _ => no_overload(types()),
        },
        ("startsWith", [Value::Str(s), Value::Str(p)]) => Ok(Value::Bool(s.starts_with(&**p))),
        ("endsWith", [Value::Str(s), Value::Str(p)]) => Ok(Value::Bool(s.ends_with(&**p))),
        ("contains", [Value::Str(s), Value::Str(p)]) => Ok(Value::Bool(s.contains(&**p))),
        ("matches", [Value::Str(s), Value::Str(re)]) => {
            let re = regexes.get(re, pos, budget)?;
            Ok(Value::Bool(re.is_match(s.as_bytes())))
        }
        ("lowerAscii", [Value::Str(s)]) => bounded(s.to_ascii_lowercase(), pos),
        ("upperAscii", [Value::Str(s)]) => bounded(s.to_ascii_uppercase(), pos),
        ("split", [Value::Str(s), Value::Str(sep)]) => {
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars()
                    .take(MAX_LIST + 1)
                    .map(|c| Value::Str(c.to_string().into()))
                    .collect()
            } else {
                s.split(&**sep)
                    .take(MAX_LIST + 1)
                    .map(|p| Value::Str(p.into()))
                    .collect()
            };
            if parts.len() > MAX_LIST {
                return fail(
                    pos,
                    format!("split() would produce more than {MAX_LIST} elements"),
                );
            }
            Ok(Value::List(Rc::new(parts)))
        }
        ("extract", [Value::Str(s), Value::Str(t)]) => {
            let (prefix, suffix) = parse_template(t).or_else(|m| fail(pos, m))?;
            Ok(Value::Str(extract(s, prefix, suffix).into()))
        }
        ("string", [v]) => match v {
            Value::Str(_) => Ok(vals.swap_remove(0)),
            Value::Int(i) => Ok(Value::Str(i.to_string().into())),
            Value::Double(d) => Ok(Value::Str(d.to_string().into())),
            Value::Bool(b) => Ok(Value::Str(b.to_string().into())),
            _ => no_overload(types()),
        },
        ("int", [v]) => match v {
            Value::Int(_) => Ok(vals.swap_remove(0)),
            Value::Str(s) => s
                .parse::<i64>()
                .map(Value::Int)
                .or_else(|_| fail(pos, "int() of a string that is not an integer")),
            Value::Double(d) => {
                if d.is_finite() && *d > -9.223_372_036_854_776e18 && *d < 9.223_372_036_854_776e18
                {
                    Ok(Value::Int(d.trunc() as i64))
                } else {
                    fail(pos, "int() of a double out of range")
                }
            }
            Value::Bool(b) => Ok(Value::Int(i64::from(*b))),
            _ => no_overload(types()),
        },
        ("double", [v]) => match v {
            Value::Double(_) => Ok(vals.swap_remove(0)),
            Value::Int(i) => Ok(Value::Double(*i as f64)),
            Value::Str(s) => s
                .parse::<f64>()
                .map(Value::Double)
                .or_else(|_| fail(pos, "double() of a string that is not a number")),
            _ => no_overload(types()),
        },
        _ if FUNCTIONS.iter().any(|(n, ..)| *n == name) => no_overload(types()),
        _ => fail(pos, format!("unknown function `{name}`")),
    }
}

fn vals_types(vals: &[Value]) -> String {
    vals.iter()
        .map(Value::type_name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn bounded(s: String, pos: usize) -> Result<Value, Fail> {
    if s.len() > MAX_STRING {
        return fail(pos, format!("the result exceeds {MAX_STRING} bytes"));
    }
    Ok(Value::Str(s.into()))
}

/// Splits an `extract` template `prefix{name}suffix` into its literal parts.
pub(super) fn parse_template(t: &str) -> Result<(&str, &str), String> {
    let bad = || {
        "the extract() template must hold exactly one `{name}` placeholder, as in 'assumed-role/{role}/'".to_string()
    };
    let open = t.find('{').ok_or_else(bad)?;
    let close = t[open..].find('}').map(|c| open + c).ok_or_else(bad)?;
    let name = &t[open + 1..close];
    let (prefix, suffix) = (&t[..open], &t[close + 1..]);
    if name.is_empty() || name.contains('{') || suffix.contains(['{', '}']) || prefix.contains('}')
    {
        return Err(bad());
    }
    Ok((prefix, suffix))
}

/// Google's `extract`: the text after the first occurrence of `prefix` up to
/// the next occurrence of `suffix` (the end of the string when `suffix` is
/// empty); the empty string when either is absent.
fn extract<'s>(s: &'s str, prefix: &str, suffix: &str) -> &'s str {
    let Some(at) = s.find(prefix) else {
        return "";
    };
    let rest = &s[at + prefix.len()..];
    if suffix.is_empty() {
        return rest;
    }
    match rest.find(suffix) {
        Some(end) => &rest[..end],
        None => "",
    }
}

fn regex(pattern: &str) -> Result<Regex, String> {
    if pattern.len() > MAX_STRING {
        return Err(format!("the regular expression exceeds {MAX_STRING} bytes"));
    }
    Regex::builder()
        .configure(
            Regex::config()
                .nfa_size_limit(Some(MAX_REGEX_NFA))
                .onepass_size_limit(Some(MAX_REGEX_NFA))
                .hybrid_cache_capacity(2 * MAX_REGEX_NFA)
                .dfa_size_limit(Some(MAX_REGEX_NFA)),
        )
        .syntax(regex_automata::util::syntax::Config::new().nest_limit(64))
        .build(pattern)
        .map_err(|e| {
            let detail = e
                .syntax_error()
                .map_or_else(|| e.to_string(), |s| s.to_string());
            // The syntax error spans lines (it draws the pattern); keep the first.
            let first = detail
                .lines()
                .find(|l| l.starts_with("error:"))
                .unwrap_or("too large or invalid");
            format!(
                "invalid regular expression: {}",
                first.trim_start_matches("error: ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cel::ErrorKind;
    use crate::cel::testing::{eval, holds, string};
    use serde_json::json;

    #[test]
    fn extract_follows_googles_template_rule() {
        let e =
            |s: &str, t: &str| string(&format!("assertion.s.extract('{t}')"), json!({ "s": s }));
        let arn = "arn:aws:sts::1:assumed-role/r1/s1";
        assert_eq!(e(arn, "assumed-role/{role}/"), "r1");
        assert_eq!(e(arn, "{account_arn}assumed-role/"), "arn:aws:sts::1:");
        assert_eq!(e(arn, "assumed-role/{rest}"), "r1/s1");
        assert_eq!(e(arn, "federated-user/{u}/"), "");
        assert_eq!(
            e("projects/p/buckets/b1/objects/o", "/buckets/{name}/"),
            "b1"
        );
    }

    #[test]
    fn templates_hold_exactly_one_placeholder() {
        assert_eq!(parse_template("a/{x}/b"), Ok(("a/", "/b")));
        assert_eq!(parse_template("{x}"), Ok(("", "")));
        for bad in ["", "x", "{}", "{a}{b}", "a}{x}", "{x", "{{x}}", "{x}}"] {
            assert!(parse_template(bad).is_err(), "{bad}");
        }
        // A computed template is checked when it is used.
        let e = eval("'a'.extract(assertion.t)", json!({"t": "none"})).unwrap_err();
        assert!(
            e.message()
                .starts_with("the extract() template must hold exactly one `{name}` placeholder"),
            "{e}"
        );
        assert_eq!(e.kind, ErrorKind::Evaluation);
    }

    #[test]
    fn string_functions() {
        let a = json!({"s": "Héllo"});
        for expr in [
            "size(assertion.s) == 5 && assertion.s.size() == 5",
            "assertion.s.startsWith('Hé') && assertion.s.endsWith('lo') && assertion.s.contains('éll')",
            "assertion.s.lowerAscii() == 'héllo' && assertion.s.upperAscii() == 'HéLLO'",
            "'a,,b'.split(',') == ['a', '', 'b'] && 'ab'.split('') == ['a', 'b']",
            "matches(assertion.s, '^H.llo$') && !assertion.s.matches('^h')",
        ] {
            assert!(holds(expr, a.clone()).unwrap(), "{expr}");
        }
        assert!(holds("int('-3') == -3 && int(2.9) == 2 && int(true) == 1 && double('1.5') == 1.5 && double(2) == 2.0", json!({})).unwrap());
        assert!(holds("string(1.5) == '1.5' && string('s') == 's'", json!({})).unwrap());
    }

    #[test]
    fn wrong_types_name_the_overload() {
        let a = json!({"n": 3, "s": "x", "l": ["a"]});
        let e = |c: &str| eval(c, a.clone()).unwrap_err().message();
        assert_eq!(
            e("assertion.n.startsWith('x')"),
            "no such overload: {int, string}.startsWith() at column 13"
        );
        assert_eq!(e("size(1) == 1"), "no such overload: size(int) at column 1");
        assert_eq!(
            e("int(1e19) == 1"),
            "int() of a double out of range at column 1"
        );
        assert_eq!(
            e("int('x') == 1"),
            "int() of a string that is not an integer at column 1"
        );
        assert!(e("assertion.s.matches('(')").starts_with("invalid regular expression"));
    }

    #[test]
    fn produced_sizes_and_regexes_are_bounded() {
        let e = eval(
            "size(assertion.s.split('')) > 0",
            json!({"s": "x".repeat(10000)}),
        )
        .unwrap_err();
        assert!(e.message().contains("more than 4096 elements"), "{e}");
        let e = eval(
            "assertion.s.lowerAscii() == ''",
            json!({"s": "x".repeat(MAX_STRING + 1)}),
        )
        .unwrap_err();
        assert!(e.message().contains("exceeds 65536 bytes"), "{e}");
        // A huge regex is refused, a pathological one runs in linear time.
        let e = eval("'a'.matches('(a{1000}){1000}')", json!({})).unwrap_err();
        assert!(e.message().starts_with("invalid regular expression"), "{e}");
        assert!(
            !holds(
                "assertion.s.matches('(a+)+$')",
                json!({"s": format!("{}b", "a".repeat(60000))})
            )
            .unwrap()
        );
    }

    #[test]
    fn a_regex_is_compiled_once_per_pattern_and_charged() {
        let mut budget = Budget::new(u64::MAX);
        let mut regexes = Regexes::default();
        let p: Rc<str> = "^a+$".into();
        let first = regexes.get(&p, 0, &mut budget).unwrap();
        let again = regexes.get(&p, 0, &mut budget).unwrap();
        assert!(Rc::ptr_eq(&first, &again));
        let mut poor = Budget::new(1000);
        let e = Regexes::default().get(&p, 3, &mut poor).unwrap_err();
        assert!(matches!(e, Fail::Exhausted { pos: 3 }), "{e:?}");
    }
}
