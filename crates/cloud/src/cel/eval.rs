//! Evaluation: a checked tree and a [`Context`] of variables to a value,
//! within a step budget. Every node visited and every comprehension
//! iteration costs a step, and operators over strings, lists and maps cost
//! in proportion to their size, so a hostile expression or input stops with
//! "evaluation exceeds the work limit" instead of hanging. `&&`, `||`,
//! `all` and `exists` absorb errors as CEL specifies (a decisive operand
//! wins over an error on the other side), except a spent budget, which
//! nothing absorbs. Integer arithmetic is checked; an overflow is an error.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::ast::{BinOp, Kind, Macro, Node};
use super::error::{Fail, fail, shorten};
use super::functions::{Regexes, call};
use super::limits::{Budget, MAX_LIST, MAX_STRING};
use super::value::{Value, equals};

/// The variables an evaluation sees, by name.
#[derive(Debug, Clone, Default)]
pub struct Context {
    vars: Vec<(String, Value)>,
}

impl Context {
    pub fn new() -> Context {
        Context::default()
    }

    /// This context with `name` bound to `value` (replacing an earlier binding).
    pub fn with(mut self, name: &str, value: Value) -> Context {
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => self.vars.push((name.to_string(), value)),
        }
        self
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// Evaluates `root` over `ctx`, spending at most `max_steps` steps.
pub(super) fn evaluate(root: &Node, ctx: &Context, max_steps: u64) -> Result<Value, Fail> {
    let mut env = Env {
        ctx,
        locals: Vec::new(),
        budget: Budget::new(max_steps),
        regexes: Regexes::default(),
    };
    eval(root, &mut env)
}

struct Env<'a> {
    ctx: &'a Context,
    /// Comprehension variables in scope, innermost last.
    locals: Vec<(String, Value)>,
    budget: Budget,
    regexes: Regexes,
}

impl Env<'_> {
    fn charge(&mut self, n: u64, pos: usize) -> Result<(), Fail> {
        self.budget.charge(n, pos)
    }
}

/// The work an operation over `v` does, in steps: strings are scanned
/// (a step per 64 bytes), lists and maps walked (a step per element).
fn cost(v: &Value) -> u64 {
    match v {
        Value::Str(s) => s.len() as u64 / 64,
        Value::List(l) => l.len() as u64,
        Value::Map(m) => m.len() as u64,
        _ => 0,
    }
}

fn eval(node: &Node, env: &mut Env) -> Result<Value, Fail> {
    env.charge(1, node.pos)?;
    let pos = node.pos;
    match &node.kind {
        Kind::Lit(v) => Ok(v.clone()),
        Kind::Ident(name) => {
            if let Some((_, v)) = env.locals.iter().rev().find(|(n, _)| n == name) {
                return Ok(v.clone());
            }
            match env.ctx.get(name) {
                Some(v) => Ok(v.clone()),
                None => fail(pos, format!("undeclared reference to `{name}`")),
            }
        }
        Kind::Select(operand, field) => {
            let v = eval(operand, env)?;
            match v {
                Value::Map(m) => match m.get(field) {
                    Some(x) => Ok(x.clone()),
                    None => fail(pos, format!("no such key: `{field}`")),
                },
                other => fail(
                    pos,
                    format!("cannot select field `{field}` from a {}", other.type_name()),
                ),
            }
        }
        Kind::Has(operand, field) => match eval(operand, env)? {
            Value::Map(m) => Ok(Value::Bool(m.contains_key(field))),
            other => fail(
                pos,
                format!(
                    "has() cannot test field `{field}` of a {}",
                    other.type_name()
                ),
            ),
        },
        Kind::Index(operand, index) => {
            let v = eval(operand, env)?;
            let i = eval(index, env)?;
            match (&v, &i) {
                (Value::List(l), Value::Int(n)) => {
                    match usize::try_from(*n).ok().and_then(|n| l.get(n)) {
                        Some(x) => Ok(x.clone()),
                        None => fail(
                            pos,
                            format!("index {n} out of range for a list of {}", l.len()),
                        ),
                    }
                }
                (Value::List(l), Value::Double(d))
                    if d.fract() == 0.0 && *d >= 0.0 && (*d as usize) < l.len() =>
                {
                    Ok(l[*d as usize].clone())
                }
                (Value::Map(m), Value::Str(k)) => match m.get(&**k) {
                    Some(x) => Ok(x.clone()),
                    // Name the key only when the expression spells it out:
                    // a computed key may come from the subject token.
                    None if matches!(index.kind, Kind::Lit(_)) => {
                        fail(pos, format!("no such key: `{}`", shorten(k)))
                    }
                    None => fail(pos, "no such key (computed string key)"),
                },
                (Value::Map(_), other) => {
                    fail(pos, format!("no such key of type {}", other.type_name()))
                }
                _ => fail(
                    pos,
                    format!("cannot index a {} with a {}", v.type_name(), i.type_name()),
                ),
            }
        }
        Kind::Not(a) => match eval(a, env)? {
            Value::Bool(b) => Ok(Value::Bool(!b)),
            other => fail(pos, format!("no such overload: !{}", other.type_name())),
        },
        Kind::Neg(a) => match eval(a, env)? {
            Value::Int(i) => match i.checked_neg() {
                Some(n) => Ok(Value::Int(n)),
                None => fail(pos, "integer overflow"),
            },
            Value::Double(d) => Ok(Value::Double(-d)),
            other => fail(pos, format!("no such overload: -{}", other.type_name())),
        },
        // CEL's logical operators are commutative over errors: a decisive
        // operand on either side wins over an error or a non-bool on the other.
        Kind::And(a, b) => logic(a, b, env, false),
        Kind::Or(a, b) => logic(a, b, env, true),
        Kind::Cond(c, a, b) => match eval(c, env)? {
            Value::Bool(true) => eval(a, env),
            Value::Bool(false) => eval(b, env),
            other => fail(
                c.pos,
                format!(
                    "the condition of `?:` must be a bool, it is a {}",
                    other.type_name()
                ),
            ),
        },
        Kind::Binary(op, a, b) => {
            let x = eval(a, env)?;
            let y = eval(b, env)?;
            env.charge(cost(&x) + cost(&y), pos)?;
            binary(*op, x, y, pos)
        }
        Kind::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                out.push(eval(i, env)?);
            }
            Ok(Value::List(Rc::new(out)))
        }
        Kind::MapLit(entries) => {
            let mut out = BTreeMap::new();
            for (k, v) in entries {
                let key = match eval(k, env)? {
                    Value::Str(s) => s.to_string(),
                    other => {
                        return fail(
                            k.pos,
                            format!("map keys must be strings here, not {}", other.type_name()),
                        );
                    }
                };
                let val = eval(v, env)?;
                if out.insert(key, val).is_some() {
                    return fail(k.pos, "duplicate map key");
                }
            }
            Ok(Value::Map(Rc::new(out)))
        }
        Kind::Call(target, name, args) => {
            let mut vals = Vec::with_capacity(args.len() + 1);
            if let Some(t) = target {
                vals.push(eval(t, env)?);
            }
            for a in args {
                vals.push(eval(a, env)?);
            }
            env.charge(vals.iter().map(cost).sum(), pos)?;
            call(
                name,
                target.is_some(),
                vals,
                pos,
                &mut env.budget,
                &mut env.regexes,
            )
        }
        Kind::Comprehension {
            kind,
            range,
            var,
            body,
            filter,
        } => comprehension(*kind, range, var, body, filter.as_deref(), env, pos),
    }
}

fn logic(a: &Node, b: &Node, env: &mut Env, is_or: bool) -> Result<Value, Fail> {
    let decisive = is_or; // `true` decides `||`, `false` decides `&&`
    let op = if is_or { "||" } else { "&&" };
    let left = match eval(a, env) {
        Ok(Value::Bool(x)) if x == decisive => return Ok(Value::Bool(decisive)),
        Ok(Value::Bool(_)) => Ok(()),
        Ok(other) => fail(
            a.pos,
            format!("no such overload: {} {op} …", other.type_name()),
        ),
        Err(e @ Fail::Exhausted { .. }) => return Err(e),
        Err(e) => Err(e),
    };
    match eval(b, env) {
        Ok(Value::Bool(x)) if x == decisive => Ok(Value::Bool(decisive)),
        Ok(Value::Bool(x)) => left.map(|()| Value::Bool(x)),
        Ok(other) => {
            left?;
            fail(
                b.pos,
                format!("no such overload: … {op} {}", other.type_name()),
            )
        }
        Err(e) => {
            left?;
            Err(e)
        }
    }
}

fn binary(op: BinOp, x: Value, y: Value, pos: usize) -> Result<Value, Fail> {
    use std::cmp::Ordering;
    let overload = |x: &Value, y: &Value, sym: &str| -> Result<Value, Fail> {
        fail(
            pos,
            format!(
                "no such overload: {} {sym} {}",
                x.type_name(),
                y.type_name()
            ),
        )
    };
    match op {
        BinOp::Eq => Ok(Value::Bool(equals(&x, &y))),
        BinOp::Ne => Ok(Value::Bool(!equals(&x, &y))),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let sym = op.symbol();
            let ord: Option<Ordering> = match (&x, &y) {
                (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
                (Value::Double(a), Value::Double(b)) => a.partial_cmp(b),
                (Value::Int(a), Value::Double(b)) => (*a as f64).partial_cmp(b),
                (Value::Double(a), Value::Int(b)) => a.partial_cmp(&(*b as f64)),
                (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
                (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
                _ => return overload(&x, &y, sym),
            };
            let r = match ord {
                None => false, // NaN
                Some(o) => match op {
                    BinOp::Lt => o == Ordering::Less,
                    BinOp::Le => o != Ordering::Greater,
                    BinOp::Gt => o == Ordering::Greater,
                    _ => o != Ordering::Less,
                },
            };
            Ok(Value::Bool(r))
        }
        BinOp::In => match &y {
            Value::List(l) => Ok(Value::Bool(l.iter().any(|e| equals(&x, e)))),
            Value::Map(m) => Ok(Value::Bool(
                matches!(&x, Value::Str(k) if m.contains_key(&**k)),
            )),
            _ => overload(&x, &y, "in"),
        },
        BinOp::Add => match (&x, &y) {
            (Value::Int(a), Value::Int(b)) => match a.checked_add(*b) {
                Some(n) => Ok(Value::Int(n)),
                None => fail(pos, "integer overflow"),
            },
            (Value::Double(a), Value::Double(b)) => Ok(Value::Double(a + b)),
            (Value::Str(a), Value::Str(b)) => {
                if a.len() + b.len() > MAX_STRING {
                    return fail(
                        pos,
                        format!("string concatenation exceeds {MAX_STRING} bytes"),
                    );
                }
                Ok(Value::Str(format!("{a}{b}").into()))
            }
            (Value::List(a), Value::List(b)) => {
                if a.len() + b.len() > MAX_LIST {
                    return fail(
                        pos,
                        format!("list concatenation exceeds {MAX_LIST} elements"),
                    );
                }
                Ok(Value::List(Rc::new(
                    a.iter().chain(b.iter()).cloned().collect(),
                )))
            }
            _ => overload(&x, &y, "+"),
        },
        BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => {
            let sym = op.symbol();
            match (&x, &y) {
                (Value::Int(a), Value::Int(b)) => {
                    if matches!(op, BinOp::Div | BinOp::Rem) && *b == 0 {
                        return fail(
                            pos,
                            if op == BinOp::Div {
                                "division by zero"
                            } else {
                                "modulus by zero"
                            },
                        );
                    }
                    let r = match op {
                        BinOp::Sub => a.checked_sub(*b),
                        BinOp::Mul => a.checked_mul(*b),
                        BinOp::Div => a.checked_div(*b),
                        _ => a.checked_rem(*b),
                    };
                    match r {
                        Some(n) => Ok(Value::Int(n)),
                        None => fail(pos, "integer overflow"),
                    }
                }
                (Value::Double(a), Value::Double(b)) if op != BinOp::Rem => {
                    Ok(Value::Double(match op {
                        BinOp::Sub => a - b,
                        BinOp::Mul => a * b,
                        _ => a / b,
                    }))
                }
                _ => overload(&x, &y, sym),
            }
        }
    }
}

fn comprehension(
    kind: Macro,
    range: &Node,
    var: &str,
    body: &Node,
    filter: Option<&Node>,
    env: &mut Env,
    pos: usize,
) -> Result<Value, Fail> {
    let items: Vec<Value> = match eval(range, env)? {
        Value::List(l) => l.iter().cloned().collect(),
        Value::Map(m) => m.keys().map(|k| Value::Str(k.as_str().into())).collect(),
        other => return fail(pos, format!("cannot iterate over a {}", other.type_name())),
    };
    let name = match kind {
        Macro::All => "all",
        Macro::Exists => "exists",
        Macro::ExistsOne => "exists_one",
        Macro::Filter => "filter",
        Macro::Map => "map",
    };
    let run = |env: &mut Env, item: Value, node: &Node| -> Result<Value, Fail> {
        env.charge(1, pos)?;
        env.locals.push((var.to_string(), item));
        let r = eval(node, env);
        env.locals.pop();
        r
    };
    let as_bool = |v: Result<Value, Fail>, node: &Node| -> Result<bool, Fail> {
        match v? {
            Value::Bool(b) => Ok(b),
            other => fail(
                node.pos,
                format!(
                    "the predicate of {name}() must be a bool, it is a {}",
                    other.type_name()
                ),
            ),
        }
    };
    match kind {
        Macro::All | Macro::Exists => {
            // Like `&&`/`||`: a decisive element wins over errors elsewhere.
            let decisive = kind == Macro::Exists;
            let mut first_err = None;
            for item in items {
                match as_bool(run(env, item, body), body) {
                    Ok(b) if b == decisive => return Ok(Value::Bool(decisive)),
                    Ok(_) => {}
                    Err(e @ Fail::Exhausted { .. }) => return Err(e),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            match first_err {
                Some(e) => Err(e),
                None => Ok(Value::Bool(!decisive)),
            }
        }
        Macro::ExistsOne => {
            let mut n = 0usize;
            for item in items {
                if as_bool(run(env, item, body), body)? {
                    n += 1;
                }
            }
            Ok(Value::Bool(n == 1))
        }
        Macro::Filter => {
            let mut out = Vec::new();
            for item in items {
                if as_bool(run(env, item.clone(), body), body)? {
                    out.push(item);
                }
            }
            Ok(Value::List(Rc::new(out)))
        }
        Macro::Map => {
            let mut out = Vec::new();
            for item in items {
                if let Some(f) = filter
                    && !as_bool(run(env, item.clone(), f), f)?
                {
                    continue;
                }
                out.push(run(env, item, body)?);
            }
            Ok(Value::List(Rc::new(out)))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cel::ErrorKind;
    use crate::cel::testing::{eval, holds};
    use serde_json::json;

    #[test]
    fn logical_operators_absorb_errors_like_cel() {
        let a = json!({"a": "x"});
        for expr in [
            "true || assertion.missing == 'y'",
            "assertion.missing == 'y' || true",
        ] {
            assert!(holds(expr, a.clone()).unwrap(), "{expr}");
        }
        assert!(!holds("assertion.missing == 'y' && false", a.clone()).unwrap());
        assert!(!holds("false && assertion.missing", a.clone()).unwrap());
        let e = holds("assertion.missing == 'y' || false", a.clone()).unwrap_err();
        assert_eq!(e.message(), "no such key: `missing` at column 11");
        assert_eq!(
            e.to_string(),
            "no such key: `missing` at column 11 in `assertion.missing == 'y' || false`"
        );
        for expr in [
            "[1, 2].exists(x, x == 2) && ['a'].all(x, x == 'a')",
            "{'k': 1}.k == 1 && [1,2][1] == 2 && (1 + 2) * 3 == 9 && 7 % 4 == 3",
            "true ? 'a' + \"b\" == 'ab' : false",
            "[1] + [2] == [1, 2] && -3 < 0 && 1 == 1.0 && 'a' < 'b'",
            "[1,2,3].filter(x, x > 1) == [2,3] && [1,2].map(x, x * 2) == [2,4]",
            "[1,2,3].exists_one(x, x == 2) && int('12') == 12 && string(true) == 'true'",
        ] {
            assert!(holds(expr, a.clone()).unwrap(), "{expr}");
        }
    }

    #[test]
    fn comprehensions_absorb_errors_like_the_operators() {
        let a = json!({"l": [{"k": 1}, {}]});
        assert!(holds("assertion.l.exists(x, x.k == 1)", a.clone()).unwrap());
        assert!(!holds("assertion.l.all(x, x.k == 2)", a.clone()).unwrap());
        let e = holds("assertion.l.all(x, x.k == 1)", a.clone()).unwrap_err();
        assert_eq!(e.message(), "no such key: `k` at column 22");
        let e = holds("assertion.l.exists_one(x, x.k == 1)", a).unwrap_err();
        assert_eq!(e.message(), "no such key: `k` at column 29");
        assert!(holds("{'a': 1, 'b': 2}.all(k, k in ['a', 'b'])", json!({})).unwrap());
        assert_eq!(
            holds("1.exists(x, true)", json!({})).unwrap_err().message(),
            "cannot iterate over a int at column 3"
        );
    }

    #[test]
    fn evaluation_errors_name_the_column_and_type() {
        let a = json!({"n": 3, "s": "x", "l": ["a"]});
        let e = |c: &str| holds(c, a.clone()).unwrap_err().message();
        assert_eq!(
            e("assertion.s + 1 == 'x1'"),
            "no such overload: string + int at column 13"
        );
        assert_eq!(
            e("assertion.l[3] == 'a'"),
            "index 3 out of range for a list of 1 at column 12"
        );
        assert_eq!(
            e("assertion.s.x == 1"),
            "cannot select field `x` from a string at column 13"
        );
        assert_eq!(e("assertion.n / 0 == 1"), "division by zero at column 13");
        assert_eq!(
            e("9223372036854775807 + 1 > 0"),
            "integer overflow at column 21"
        );
        assert_eq!(e("assertion.n % 0 == 1"), "modulus by zero at column 13");
        assert_eq!(
            e("{'a': 1, 'a': 2}.a == 1"),
            "duplicate map key at column 10"
        );
        assert_eq!(
            e("{1: 2}.a == 1"),
            "map keys must be strings here, not int at column 2"
        );
        assert_eq!(
            e("(assertion.n ? 1 : 2) == 1"),
            "the condition of `?:` must be a bool, it is a int at column 12"
        );
        assert_eq!(e("!assertion.n"), "no such overload: !int at column 1");
        assert_eq!(
            e("assertion.n || false"),
            "no such overload: int || … at column 11"
        );
    }

    #[test]
    fn produced_strings_and_lists_are_bounded() {
        // Exponential growth by doubling a string or list is cut off.
        let mut s = "assertion.s".to_string();
        for _ in 0..7 {
            s = format!("({s} + {s})");
        }
        let e = holds(&format!("size({s}) > 0"), json!({"s": "x".repeat(1000)})).unwrap_err();
        assert!(e.message().contains("exceeds 65536 bytes"), "{e}");
        let mut l = "assertion.l".to_string();
        for _ in 0..4 {
            l = format!("({l} + {l})");
        }
        let e = holds(&format!("size({l}) > 0"), json!({"l": vec![0; 500]})).unwrap_err();
        assert!(
            e.message()
                .contains("list concatenation exceeds 4096 elements"),
            "{e}"
        );
    }

    #[test]
    fn the_step_budget_stops_work_and_nothing_absorbs_it() {
        // Just below the nesting limit still evaluates (no stack trouble).
        let ok = format!("{}true{}", "(".repeat(90), ")".repeat(90));
        assert!(holds(&ok, json!({})).unwrap());
        let ors = vec!["assertion.a == 'z'"; 90].join(" || ");
        assert!(!holds(&ors, json!({"a": "y"})).unwrap());
        // Nested comprehensions over a large list exhaust the step budget, not the clock.
        let list: Vec<i64> = (0..2000).collect();
        let cubic =
            "assertion.l.exists(a, assertion.l.exists(b, assertion.l.exists(c, a + b + c < 0)))";
        let e = holds(cubic, json!({ "l": list })).unwrap_err();
        assert!(e.message().contains("work limit"), "{e}");
        assert_eq!(e.kind, ErrorKind::WorkLimit);
        for absorbing in [
            format!("{cubic} || true"),
            format!("true && ({cubic} || true)"),
            format!("[1].exists(x, {cubic}) || true"),
            format!("[false, true].exists(x, x || {cubic})"),
        ] {
            let e = holds(&absorbing, json!({ "l": list })).unwrap_err();
            assert_eq!(e.kind, ErrorKind::WorkLimit, "{absorbing}");
        }
    }

    #[test]
    fn error_messages_never_echo_values() {
        let secretish = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.sig";
        let a = json!({"tok": secretish, "n": 1});
        for c in [
            "assertion.tok + 1 == 2",
            "assertion.tok.x == 1",
            "int(assertion.tok) == 1",
            "assertion[assertion.tok] == 1",
        ] {
            let e = eval(c, a.clone()).unwrap_err();
            assert!(!e.to_string().contains(secretish), "{e}");
        }
        // A key the expression spells out is named.
        assert_eq!(
            eval("assertion['nope'] == 1", a).unwrap_err().message(),
            "no such key: `nope` at column 10"
        );
    }
}

#[cfg(test)]
mod stack {
    use crate::cel::testing::{eval, message, program};
    use serde_json::json;

    type Shape = fn(usize) -> String;

    /// Each shape of nesting at the deepest the parser accepts (one more
    /// is refused), compiled and evaluated on a 2 MiB thread, a tokio
    /// worker's stack: in a debug build too, the stack cannot run out.
    #[test]
    fn the_deepest_expressions_fit_a_2_mib_stack() {
        let shapes: [(Shape, usize); 12] = [
            (|n| format!("{}true{}", "(".repeat(n), ")".repeat(n)), 99),
            (|n| format!("{}true", "!".repeat(n)), 99),
            (|n| format!("{}1", "-".repeat(n)), 100),
            (|n| format!("{}1{}", "[".repeat(n), "]".repeat(n)), 49),
            (|n| format!("{}1{}", "{'a': ".repeat(n), "}".repeat(n)), 49),
            (|n| format!("{}1{}", "size([".repeat(n), "])".repeat(n)), 33),
            (
                |n| format!("{}true{}", "[1].exists(x, ".repeat(n), ")".repeat(n)),
                98,
            ),
            (
                |n| format!("{}true{}", "(true ? ".repeat(n), " : false)".repeat(n)),
                98,
            ),
            (|n| format!("assertion{}", ".a".repeat(n)), 99),
            (|n| format!("assertion{}", "['a']".repeat(n)), 99),
            (|n| vec!["1"; n].join(" + "), 100),
            (|n| vec!["true"; n].join(" && "), 100),
        ];
        let mut deep = json!("leaf");
        for _ in 0..99 {
            deep = json!({ "a": deep });
        }
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                for (shape, n) in shapes {
                    let src = shape(n);
                    program(&src).unwrap();
                    eval(&src, deep.clone()).unwrap();
                    assert!(message(&shape(n + 1)).contains("nests deeper than 100"));
                }
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
