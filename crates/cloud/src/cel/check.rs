//! Checking: what can be refused before any input is seen. Every free
//! variable must be one the caller declares (or a macro's own variable in
//! its body), every function must be known and called in its style (global
//! `f(x)`, method `x.f()`) with its arity, and a literal `extract` template
//! must hold exactly one placeholder. A mapping or condition that passes is
//! stored; one that fails is refused at world load with its column.

use super::ast::{Kind, Node};
use super::error::{Fail, fail};
use super::functions::{FUNCTIONS, Style, parse_template};
use super::value::Value;

/// Static checks: known functions with the right arity, free variables
/// among `vars`, literal `extract` templates well-formed.
pub(super) fn check(node: &Node, vars: &[&str], locals: &mut Vec<String>) -> Result<(), Fail> {
    match &node.kind {
        Kind::Lit(_) => Ok(()),
        Kind::Ident(name) => {
            if locals.iter().any(|l| l == name) || vars.contains(&name.as_str()) {
                Ok(())
            } else {
                fail(
                    node.pos,
                    format!(
                        "undeclared reference to `{name}` (expected one of: {})",
                        vars.join(", ")
                    ),
                )
            }
        }
        Kind::Select(a, _) | Kind::Has(a, _) | Kind::Not(a) | Kind::Neg(a) => {
            check(a, vars, locals)
        }
        Kind::Index(a, b) | Kind::Binary(_, a, b) | Kind::And(a, b) | Kind::Or(a, b) => {
            check(a, vars, locals)?;
            check(b, vars, locals)
        }
        Kind::Cond(a, b, c) => {
            check(a, vars, locals)?;
            check(b, vars, locals)?;
            check(c, vars, locals)
        }
        Kind::List(items) => items.iter().try_for_each(|i| check(i, vars, locals)),
        Kind::MapLit(entries) => entries.iter().try_for_each(|(k, v)| {
            check(k, vars, locals)?;
            check(v, vars, locals)
        }),
        Kind::Call(target, name, args) => {
            let Some((_, style, arities)) = FUNCTIONS.iter().find(|(n, ..)| n == name) else {
                return fail(node.pos, format!("unknown function `{name}`"));
            };
            let argc = args.len() + usize::from(target.is_some());
            let style_ok = match style {
                Style::Global => target.is_none(),
                Style::Method => target.is_some(),
                Style::Both => true,
            };
            let arity_ok = match style {
                Style::Both => arities.contains(&argc) && argc >= 1,
                _ => arities.contains(&args.len()),
            };
            if !style_ok || !arity_ok {
                let shape = match style {
                    Style::Global => format!("{name}(x)"),
                    Style::Method => format!("x.{name}(…) with {} argument(s)", arities[0]),
                    Style::Both => format!("{name}(x…) or x.{name}(…)"),
                };
                return fail(
                    node.pos,
                    format!("wrong use of `{name}`: it is called as {shape}"),
                );
            }
            if name == "extract"
                && let Some(Node {
                    kind: Kind::Lit(Value::Str(t)),
                    pos,
                    ..
                }) = args.first()
            {
                parse_template(t).or_else(|m| fail(*pos, m))?;
            }
            if let Some(t) = target {
                check(t, vars, locals)?;
            }
            args.iter().try_for_each(|a| check(a, vars, locals))
        }
        Kind::Comprehension {
            range,
            var,
            body,
            filter,
            ..
        } => {
            check(range, vars, locals)?;
            locals.push(var.clone());
            let r = check(body, vars, locals)
                .and_then(|()| filter.as_ref().map_or(Ok(()), |f| check(f, vars, locals)));
            locals.pop();
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cel::testing::{message, program};
    use crate::cel::{ErrorKind, Limits, compile};

    #[test]
    fn check_errors_name_the_column() {
        assert_eq!(
            message("assertion.a.frobnicate('x')"),
            "unknown function `frobnicate` at column 13"
        );
        assert_eq!(message("frob(1)"), "unknown function `frob` at column 1");
        assert_eq!(
            message("request.x == 1"),
            "undeclared reference to `request` (expected one of: assertion, attribute, google) at column 1"
        );
        assert_eq!(
            message("(a)"),
            "undeclared reference to `a` (expected one of: assertion, attribute, google) at column 2"
        );
        assert_eq!(
            message("'a'.startsWith()"),
            "wrong use of `startsWith`: it is called as x.startsWith(…) with 1 argument(s) at column 5"
        );
        assert_eq!(program("frob(1)").unwrap_err().kind, ErrorKind::Check);
    }

    #[test]
    fn call_styles_and_arities_are_held_to_the_table() {
        for ok in [
            "size('a') == 1",
            "'a'.size() == 1",
            "matches('a', 'a')",
            "'a'.matches('a')",
            "string(1) == '1'",
            "'a'.extract('{x}') == ''",
        ] {
            program(ok).unwrap();
        }
        assert!(
            message("'a'.string()").starts_with("wrong use of `string`: it is called as string(x)")
        );
        assert!(message("startsWith('a', 'b')").starts_with("wrong use of `startsWith`"));
        assert!(
            message("size()")
                .starts_with("wrong use of `size`: it is called as size(x…) or x.size(…)")
        );
        assert!(message("'a'.size('b')").starts_with("wrong use of `size`"));
        assert!(message("'a'.lowerAscii(1)").contains("with 0 argument(s)"));
    }

    #[test]
    fn a_macro_variable_is_in_scope_only_in_its_body() {
        program("[1].exists(x, x == 1) && [2].map(y, y > 1, y * 2) == [4]").unwrap();
        assert_eq!(
            message("[1].exists(x, true) && x == 1"),
            "undeclared reference to `x` (expected one of: assertion, attribute, google) at column 24"
        );
        assert!(message("[1].exists(x, x == 1) || x.all(y, true)").contains("`x`"));
    }

    #[test]
    fn a_literal_extract_template_is_checked() {
        let bad = compile(
            "assertion.a.extract('no placeholder')",
            Limits::new(2048),
            &["assertion"],
        )
        .unwrap_err();
        assert!(
            bad.message().contains("placeholder") && bad.message().contains("column 21"),
            "{bad}"
        );
        assert_eq!(bad.kind, ErrorKind::Check);
    }
}
